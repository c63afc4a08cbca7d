package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/mfad/mfad/ipc/api"
)

// A successful sign-in is mfad's most frequent answer. It is written by
// hand into a pooled buffer, byte for byte what encoding/json writes for
// api.AuthResult (answer_test.go holds the two equal), and its headers are
// set without allocating.

var answerBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// The header values of a JSON answer, shared: net/http only reads them.
var (
	hdrJSON    = []string{api.ContentJSON}
	hdrNoStore = []string{"no-store"}
)

// writeAuthResult answers 200 with r.
func writeAuthResult(w http.ResponseWriter, r *api.AuthResult) {
	bp := answerBufs.Get().(*[]byte)
	b, ok := appendAuthResult((*bp)[:0], r)
	if !ok {
		answerBufs.Put(bp)
		writeJSON(w, http.StatusOK, r)
		return
	}
	h := w.Header()
	h["Content-Type"] = hdrJSON
	h["Cache-Control"] = hdrNoStore
	w.WriteHeader(http.StatusOK)
	w.Write(b)
	if cap(b) <= 4096 {
		*bp = b
		answerBufs.Put(bp)
	}
}

// appendAuthResult appends r as encoding/json's Encoder writes it (with
// its newline); ok is false for what it does not write by hand (a time
// outside years 0-9999, which encoding/json refuses).
func appendAuthResult(b []byte, r *api.AuthResult) ([]byte, bool) {
	if y := r.StepUpExpiry.Year(); y < 0 || y > 9999 {
		return b, false
	}
	b = append(b, `{"ok":`...)
	b = strconv.AppendBool(b, r.OK)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, r.Method)
	b = append(b, `,"account":`...)
	b = appendJSONString(b, r.Account)
	if d := r.Device; d != nil {
		b = append(b, `,"device":{"id":`...)
		b = appendJSONString(b, d.ID)
		b = append(b, `,"type":`...)
		b = appendJSONString(b, d.Type)
		if d.Label != "" {
			b = append(b, `,"label":`...)
			b = appendJSONString(b, d.Label)
		}
		b = append(b, '}')
	}
	b = append(b, `,"step_up_token":`...)
	b = appendJSONString(b, r.StepUpToken)
	b = append(b, `,"step_up_expires_at":"`...)
	b = r.StepUpExpiry.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if r.Warning != "" {
		b = append(b, `,"warning":`...)
		b = appendJSONString(b, r.Warning)
	}
	return append(b, "}\n"...), true
}

// appendJSONString appends s as a JSON string the way encoding/json does:
// printable ASCII other than " \ < > & as is, anything else through
// encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
