package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/ipc/api"
)

// statusOf is the one translation from authn error classes to HTTP.
func statusOf(c authn.Class) int {
	switch c {
	case authn.ClassInvalid:
		return http.StatusBadRequest
	case authn.ClassNotFound:
		return http.StatusNotFound
	case authn.ClassConflict:
		return http.StatusConflict
	case authn.ClassForbidden:
		return http.StatusForbidden
	case authn.ClassTooMany:
		return http.StatusTooManyRequests
	case authn.ClassUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// problemOf turns any error into the wire problem. Internal errors keep
// their cause out of the answer (it goes to the log).
func problemOf(err error) *api.Problem {
	var p *api.Problem
	if errors.As(err, &p) {
		return p
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return newProblem(http.StatusRequestEntityTooLarge, api.CodeRequestTooLarge,
			"request body is larger than "+strconv.FormatInt(mbe.Limit, 10)+" bytes")
	}
	e := authn.AsError(err)
	p = newProblem(statusOf(e.Class), e.Code, e.Detail)
	if e.RetryAfter > 0 {
		p.RetryAfter = max(1, int((e.RetryAfter+999_999_999)/1_000_000_000))
	}
	p.Hint = e.Hint
	p.Extra = e.Extra
	return p
}

func newProblem(status int, code, detail string) *api.Problem {
	return &api.Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Code: code, Detail: detail}
}

func writeProblem(w http.ResponseWriter, p *api.Problem) {
	h := w.Header()
	h.Set("Content-Type", api.ContentProblem)
	h.Set("Cache-Control", "no-store")
	if p.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(p.RetryAfter))
	}
	w.WriteHeader(p.Status)
	json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", api.ContentJSON)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
