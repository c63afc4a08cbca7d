package server

import (
	"encoding/json"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mfad/mfad/ipc/api"
)

// longOpDeadline bounds a long operation's answer (a touch times out at 30 s by default).
const longOpDeadline = 2 * time.Minute

// wantsStream reports whether the client asked for NDJSON progress.
func (c *call) wantsStream() bool {
	for _, part := range strings.Split(c.r.Header.Get("Accept"), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == api.ContentNDJSON {
			return true
		}
	}
	return false
}

// beginLong turns the request into a long one: it takes a stream slot of
// the caller's uid and lifts the server's write timeout for a deadline of
// its own. The returned function gives the slot back.
func (c *call) beginLong(deadline time.Duration) (func(), error) {
	if err := c.s.streams.acquire(c.p.UID); err != nil {
		return nil, &api.Problem{Type: "about:blank", Title: "Too Many Requests", Status: http.StatusTooManyRequests,
			Code: api.CodeTooManyStreams, Detail: "too many long operations open: " + err.Error(), RetryAfter: 1}
	}
	http.NewResponseController(c.w).SetWriteDeadline(time.Now().Add(deadline))
	return func() { c.s.streams.release(c.p.UID) }, nil
}

// ndjson writes one JSON object per line, flushed, from any goroutine.
type ndjson struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
}

func newNDJSON(w http.ResponseWriter) *ndjson {
	return &ndjson{w: w, rc: http.NewResponseController(w)}
}

func (n *ndjson) write(v any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.started {
		n.w.Header().Set("Content-Type", api.ContentNDJSON)
		n.w.Header().Set("Cache-Control", "no-store")
		n.w.WriteHeader(http.StatusOK)
		n.started = true
	}
	json.NewEncoder(n.w).Encode(v)
	n.rc.Flush()
}

// progress streams an operation's events.
func (n *ndjson) progress(event string, fields map[string]any) {
	e := api.Event{Event: event}
	if s, ok := fields["status"].(string); ok {
		e.Status = s
	}
	if k, ok := fields["keys"].(int); ok {
		e.Keys = k
	}
	if c, ok := fields["check"].(*api.KeyCheckResult); ok {
		e.Check = c
	}
	if m, ok := fields["message"].(string); ok {
		e.Message = m
	}
	n.write(e)
}

// result writes the last line: {"event":"result","ok":true, ...fields of v}
// or {"event":"result","ok":false,"error":{problem}}.
func (n *ndjson) result(v any, err error) {
	if err != nil {
		f := false
		n.write(api.Event{Event: "result", OK: &f, Error: problemOf(err)})
		return
	}
	m := map[string]any{}
	if b, err := json.Marshal(v); err == nil {
		json.Unmarshal(b, &m)
	}
	m["event"], m["ok"] = "result", true
	n.write(m)
}

// runLong runs a long operation, streaming its progress when the client
// asked for NDJSON, and answers v (or the error) at the end.
func (c *call) runLong(op func(progress func(string, map[string]any)) (any, error)) error {
	return c.runLongFor(longOpDeadline, op)
}

// runLongFor is runLong with a deadline of its own, for operations that
// wait for the user more than once.
func (c *call) runLongFor(deadline time.Duration, op func(progress func(string, map[string]any)) (any, error)) error {
	release, err := c.beginLong(deadline)
	if err != nil {
		return err
	}
	defer release()
	if !c.wantsStream() {
		v, err := op(nil)
		if err != nil {
			return err
		}
		writeJSON(c.w, http.StatusOK, v)
		return nil
	}
	out := newNDJSON(c.w)
	v, err := op(out.progress)
	if err != nil {
		if p := problemOf(err); p.Status >= 500 {
			c.s.log.Error("long operation failed", "route", c.route.Method+" "+c.route.Pattern, "uid", c.p.UID, "err", err)
		}
	}
	out.result(v, err)
	return nil
}
