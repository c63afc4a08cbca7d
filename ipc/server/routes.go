package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"runtime/debug"
	"time"

	"github.com/mfad/mfad/ipc/api"
)

// streamDeadline bounds a streaming answer (a backup, an event stream).
const streamDeadline = 10 * time.Minute

// Route is one row of the route table.
type Route struct {
	Method  string
	Pattern string
	Perm    Perm
	// Stream routes keep their own deadlines (not the server's write
	// timeout) and count against the per-uid stream limit.
	Stream  bool
	MaxBody int64 // 0: the server default
	// BodyAccount: the account the permission is checked against is named
	// in the request body's "account" field, not in the path. The router
	// reads the body, decides, and only then runs the handler, which
	// decodes the same bytes.
	BodyAccount bool
	// Body, on a BodyAccount route, makes the value its handler decodes
	// the body into: the router decodes it so at once (decode hands it
	// on), and falls back to reading the account alone when that fails.
	Body func() accountNamer
	// Quick routes never wait for a person or a device, so a lone
	// connection's first request may be answered on the goroutine that
	// accepted it (inline.go). QuickIf, when set, decides per request,
	// once the body is decoded.
	Quick   bool
	QuickIf func(*call) bool
	handle  func(*call) error
}

// call is one request as a handler sees it.
type call struct {
	w       http.ResponseWriter
	r       *http.Request
	p       Principal
	s       *Server
	route   *Route
	account string // the account the request names (path or body)
	body    []byte // the body, when the router read it to decide
	// decoded is the body as the route's Body, when the router decoded
	// it strictly to decide.
	decoded accountNamer
}

func (c *call) ctx() context.Context { return c.r.Context() }

// routeTable is the API: every route, its permission and its handler.
// Keep it sorted by pattern, then method.
func (s *Server) routeTable() []Route {
	return []Route{
		{Method: "GET", Pattern: api.PathAccounts, Perm: PermAdmin, handle: s.listAccounts},
		{Method: "POST", Pattern: api.PathAccounts, Perm: PermAdmin, handle: s.createAccount},
		{Method: "DELETE", Pattern: api.PathAccount, Perm: PermAdmin, handle: s.deleteAccount},
		{Method: "GET", Pattern: api.PathAccount, Perm: PermSelf, Quick: true, handle: s.getAccount},
		{Method: "PATCH", Pattern: api.PathAccount, Perm: PermAdmin, handle: s.patchAccount},
		{Method: "POST", Pattern: api.PathContact, Perm: PermSelf, handle: s.contactChange},
		{Method: "POST", Pattern: api.PathContactVerify, Perm: PermSelf, handle: s.contactVerify},
		{Method: "GET", Pattern: api.PathDevices, Perm: PermSelf, Quick: true, handle: s.listDevices},
		{Method: "POST", Pattern: api.PathDevices, Perm: PermSelf, handle: s.createDevice},
		{Method: "POST", Pattern: api.PathDeviceImport, Perm: PermAdmin, handle: s.importDevice},
		{Method: "DELETE", Pattern: api.PathDevice, Perm: PermSelf, handle: s.deleteDevice},
		{Method: "GET", Pattern: api.PathDevice, Perm: PermSelf, handle: s.getDevice},
		{Method: "POST", Pattern: api.PathDeviceActivate, Perm: PermSelf, handle: s.activateDevice},
		{Method: "POST", Pattern: api.PathDeviceDeactivate, Perm: PermSelf, handle: s.deactivateDevice},
		{Method: "POST", Pattern: api.PathDeviceReplace, Perm: PermSelf, handle: s.replaceDevice},
		{Method: "POST", Pattern: api.PathDeviceReportLost, Perm: PermSelf, handle: s.reportLost},
		{Method: "POST", Pattern: api.PathDeviceResync, Perm: PermSelf, handle: s.resyncDevice},
		{Method: "POST", Pattern: api.PathPasswordChanged, Perm: PermRoot, handle: s.passwordChanged},
		{Method: "POST", Pattern: api.PathTemporaryCode, Perm: PermAdmin, handle: s.temporaryCode},
		{Method: "GET", Pattern: api.PathBackup, Perm: PermAdmin, Stream: true, handle: s.backup},
		{Method: "POST", Pattern: api.PathBackup, Perm: PermRoot, Stream: true, handle: s.keyedBackup},
		{Method: "POST", Pattern: api.PathRotateKey, Perm: PermRoot, handle: s.rotateKey},
		{Method: "GET", Pattern: api.PathAudit, Perm: PermAdmin, handle: s.audit},
		{Method: "POST", Pattern: api.PathAuthenticate, Perm: PermSelfBody, BodyAccount: true,
			Body: func() accountNamer { return new(api.Authenticate) }, Quick: true, QuickIf: codeSignIn, handle: s.authenticate},
		{Method: "GET", Pattern: api.PathEmulators, Perm: PermAdmin, handle: s.listEmulators},
		{Method: "POST", Pattern: api.PathEmulators, Perm: PermAdmin, handle: s.addEmulator},
		{Method: "DELETE", Pattern: api.PathEmulator, Perm: PermAdmin, handle: s.removeEmulator},
		{Method: "POST", Pattern: api.PathEmulatorAction, Perm: PermAdmin, handle: s.emulatorAction},
		{Method: "GET", Pattern: api.PathEvents, Perm: PermAnyone, Stream: true, handle: s.events},
		{Method: "GET", Pattern: api.PathInfo, Perm: PermAnyone, Quick: true, handle: s.info},
		{Method: "GET", Pattern: api.PathKeys, Perm: PermAnyone, handle: s.listKeys},
		{Method: "POST", Pattern: api.PathKeyCheck, Perm: PermAdmin, handle: s.checkKey},
		{Method: "POST", Pattern: api.PathKeyPIN, Perm: PermAdmin, handle: s.keyPIN},
		{Method: "POST", Pattern: api.PathKeyReset, Perm: PermAdmin, handle: s.resetKey},
		{Method: "POST", Pattern: api.PathKeyWink, Perm: PermAdmin, handle: s.winkKey},
		{Method: "POST", Pattern: api.PathRecovery, Perm: PermSelfOrRoot, BodyAccount: true,
			Body: func() accountNamer { return new(api.RecoveryStart) }, handle: s.startRecovery},
		{Method: "POST", Pattern: api.PathRecoveryStep, Perm: PermRecoveryStarter, handle: s.recoveryStep},
		{Method: "GET", Pattern: api.PathTokens, Perm: PermAdmin, handle: s.listTokens},
		{Method: "POST", Pattern: api.PathTokensImport, Perm: PermAdmin, MaxBody: 8 << 20, handle: s.importTokens},
	}
}

// wrap enforces the route's permission and limits, then runs its handler.
func (s *Server) wrap(rt *Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := r.Context().Value(principalKey{}).(*identity)
		if !ok || id == nil {
			writeProblem(w, newProblem(http.StatusForbidden, api.CodePermissionDenied, "peer credentials unknown"))
			return
		}
		p := id.principal()
		c := &call{w: w, r: r, p: p, s: s, route: rt, account: r.PathValue("name")}
		limit := rt.MaxBody
		if limit == 0 {
			limit = s.cfg.MaxBodyBytes
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		if rt.BodyAccount {
			// The account is in the body: read it once, bounded, and decide
			// before any handler runs; decode hands the same bytes on.
			account, err := c.readBodyAccount()
			if err != nil {
				writeProblem(w, problemOf(err))
				return
			}
			c.account = account
		}
		if !allowed(rt.Perm, p, c.account) {
			s.deny(c)
			return
		}
		if iw, ok := w.(*inlineWriter); ok && rt.QuickIf != nil && !rt.QuickIf(c) {
			iw.status = statusHandOff // net/http runs it, from the bytes sent
			return
		}
		if rt.Stream {
			if err := s.streams.acquire(p.UID); err != nil {
				writeProblem(w, &api.Problem{Type: "about:blank", Title: "Too Many Requests", Status: http.StatusTooManyRequests,
					Code: api.CodeTooManyStreams, Detail: "too many open streams: " + err.Error(), RetryAfter: 1})
				return
			}
			defer s.streams.release(p.UID)
			rc := http.NewResponseController(w)
			rc.SetWriteDeadline(time.Now().Add(streamDeadline))
		}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("handler panicked", "route", rt.Method+" "+rt.Pattern, "panic", v, "stack", string(debug.Stack()))
				writeProblem(w, newProblem(http.StatusInternalServerError, api.CodeInternal, "internal error"))
			}
		}()
		if err := rt.handle(c); err != nil && !errors.Is(err, errAnswered) {
			p := problemOf(err)
			if p.Status >= 500 {
				s.log.Error("request failed", "route", rt.Method+" "+rt.Pattern, "uid", c.p.UID, "err", err)
			}
			writeProblem(w, p)
		}
	})
}

func (s *Server) deny(c *call) {
	s.log.Info("permission denied", "route", c.route.Method+" "+c.route.Pattern, "uid", c.p.UID, "account", c.account)
	writeProblem(c.w, newProblem(http.StatusForbidden, api.CodePermissionDenied,
		fmt.Sprintf("%s %s needs %s permission", c.route.Method, c.route.Pattern, c.route.Perm)))
}

// errAnswered means the handler path already wrote the answer.
var errAnswered = errors.New("server: answered")

// accountNamer is a request body that names the account it acts on.
type accountNamer interface{ AccountName() string }

// readBody reads the request body once (bounded by the route's limit)
// after checking that it is JSON, and keeps it for decode.
func (c *call) readBody() ([]byte, error) {
	if c.body != nil {
		return c.body, nil
	}
	if ct := c.r.Header.Get("Content-Type"); ct != "" && ct != api.ContentJSON {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != api.ContentJSON {
			return nil, newProblem(http.StatusUnsupportedMediaType, api.CodeUnsupportedMediaType,
				"send the body as "+api.ContentJSON+" (curl: --json or -H 'Content-Type: application/json')")
		}
	}
	var body []byte
	var err error
	if n := c.r.ContentLength; n > 0 && n <= 4096 {
		// The stated length (net/http holds the body to it): one read
		// into a buffer of that size, not io.ReadAll's growing one.
		body = make([]byte, n)
		_, err = io.ReadFull(c.r.Body, body)
	} else {
		body, err = io.ReadAll(c.r.Body)
	}
	if err != nil {
		return nil, err // problemOf answers 413 for a body over the limit
	}
	if body == nil {
		body = []byte{}
	}
	c.body = body
	return body, nil
}

// readBodyAccount reads the body and returns the account its "account"
// field names ("" when it names none), matching fields as decode does
// (encoding/json: the last of repeated keys, any letter case); decode
// refuses a body whose account is not the one decided on all the same.
// A route with a Body has it decoded here as decode would, when that
// succeeds and the rest is blank (so that the account read alone would
// be the same), sparing the handler's decode a second pass.
func (c *call) readBodyAccount() (string, error) {
	body, err := c.readBody()
	if err != nil {
		return "", err
	}
	if c.route.Body != nil {
		v := c.route.Body()
		if a, ok := v.(*api.Authenticate); ok && decodeAuthenticate(body, a) {
			c.decoded = v
			return a.Account, nil
		}
		if rest, err := decodeStrict(body, v); err == nil && len(bytes.TrimLeft(rest, " \t\r\n")) == 0 {
			c.decoded = v
			return v.AccountName(), nil
		}
	}
	var named struct {
		Account string `json:"account"`
	}
	if err := json.Unmarshal(body, &named); err != nil {
		return "", newProblem(http.StatusBadRequest, api.CodeInvalidRequest, "malformed JSON body: "+jsonErr(err))
	}
	return named.Account, nil
}

// decodeStrict decodes one JSON value of body into v, refusing unknown
// fields and a second value, and returns what follows it.
func decodeStrict(body []byte, v any) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return nil, newProblem(http.StatusBadRequest, api.CodeInvalidRequest, "malformed JSON body: "+jsonErr(err))
	}
	if dec.More() {
		return nil, newProblem(http.StatusBadRequest, api.CodeInvalidRequest, "malformed JSON body: more than one value")
	}
	return body[dec.InputOffset():], nil
}

// decode reads a strict JSON body into v: JSON content type, no unknown
// fields, one value. On a body-account route the permission was decided
// by the router on these same bytes; a body that names another account
// than the one decided on is refused.
func (c *call) decode(v any) error {
	if dst, ok := v.(*api.Authenticate); ok {
		if src, ok := c.decoded.(*api.Authenticate); ok {
			*dst = *src // a sign-in's, without reflect
			return nil
		}
	}
	if c.decoded != nil {
		if dst, src := reflect.ValueOf(v), reflect.ValueOf(c.decoded); dst.Type() == src.Type() {
			dst.Elem().Set(src.Elem()) // what the router decided on
			return nil
		}
	}
	body, err := c.readBody()
	if err != nil {
		return err
	}
	if _, err := decodeStrict(body, v); err != nil {
		return err
	}
	if c.route.BodyAccount {
		if n, ok := v.(accountNamer); !ok || n.AccountName() != c.account {
			c.s.deny(c)
			return errAnswered
		}
	}
	return nil
}

// jsonErr describes a decoding error without echoing the input.
func jsonErr(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return "empty body"
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q must be %s", te.Field, te.Type)
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return fmt.Sprintf("body larger than %d bytes", mbe.Limit)
	}
	msg := err.Error()
	if len(msg) > 120 {
		msg = msg[:120]
	}
	return msg
}

// notFound answers paths no route has, and methods a path does not take.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	var methods []string
	for _, m := range []string{"GET", "POST", "PATCH", "PUT", "DELETE"} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pat := s.mux.Handler(probe); pat != "/" && pat != "" {
			methods = append(methods, m)
		}
	}
	if len(methods) > 0 {
		w.Header().Set("Allow", joinComma(methods))
		writeProblem(w, newProblem(http.StatusMethodNotAllowed, api.CodeMethodNotAllowed,
			fmt.Sprintf("%s does not take %s (allowed: %s)", r.URL.Path, r.Method, joinComma(methods))))
		return
	}
	writeProblem(w, newProblem(http.StatusNotFound, api.CodeNotFound, "no such route: "+r.Method+" "+r.URL.Path))
}

func joinComma(s []string) string {
	var b bytes.Buffer
	for i, x := range s {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(x)
	}
	return b.String()
}

// RouteInfo describes one route for tests and documentation.
type RouteInfo struct {
	Method  string
	Pattern string
	Perm    Perm
	Stream  bool
}

// Table returns the route table without building a server.
func Table() []RouteInfo {
	rs := (&Server{}).routeTable()
	out := make([]RouteInfo, len(rs))
	for i, r := range rs {
		out[i] = RouteInfo{r.Method, r.Pattern, r.Perm, r.Stream}
	}
	return out
}
