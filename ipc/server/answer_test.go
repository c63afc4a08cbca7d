package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mfad/mfad/ipc/api"
)

func encodeStd(t testing.TB, v any) []byte {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestAuthResultAnswerIsEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 4, 16, 5, 7, 123456789, time.UTC)
	odd := []string{"", "alice", "o'brien", `quote"back\slash`, "<script>&amp;", "tab\tnew\nline\r\b\f\x00\x1f",
		"del\x7f", "é ü 日本", "\u2028\u2029", "bad\xffutf8\xc3", "emoji 🙂"}
	var cases []api.AuthResult
	for _, s := range odd {
		cases = append(cases,
			api.AuthResult{OK: true, Method: "device", Account: s, StepUpToken: "tok-" + s, StepUpExpiry: at},
			api.AuthResult{OK: true, Method: s, Account: "a", Device: &api.DeviceRef{ID: s, Type: "totp", Label: s}, StepUpExpiry: at.In(time.FixedZone("x", 3600)), Warning: s},
			api.AuthResult{Device: &api.DeviceRef{}, StepUpExpiry: time.Time{}},
		)
	}
	cases = append(cases, api.AuthResult{OK: true, StepUpExpiry: at.Truncate(time.Second)}, api.AuthResult{StepUpExpiry: at.Add(-time.Millisecond)})
	for i, c := range cases {
		got, ok := appendAuthResult(nil, &c)
		if !ok {
			t.Fatalf("case %d not written by hand", i)
		}
		if want := encodeStd(t, c); !bytes.Equal(got, want) {
			t.Errorf("case %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

func FuzzAuthResultAnswer(f *testing.F) {
	f.Add("alice", "device", "id-1", "key", "tok", "warn", int64(1800000000), true)
	f.Add("<&>", "\x00", "\xff", "", "", "", int64(-1), false)
	f.Fuzz(func(t *testing.T, account, method, id, label, token, warning string, unix int64, withDevice bool) {
		r := api.AuthResult{OK: true, Method: method, Account: account, StepUpToken: token, Warning: warning,
			StepUpExpiry: time.Unix(unix%(1<<40), unix%1e9).UTC()}
		if withDevice {
			r.Device = &api.DeviceRef{ID: id, Type: "totp", Label: label}
		}
		got, ok := appendAuthResult(nil, &r)
		var buf bytes.Buffer
		err := json.NewEncoder(&buf).Encode(r)
		if !ok {
			if err == nil {
				t.Fatalf("not written by hand, but encoding/json writes %s", buf.Bytes())
			}
			return
		}
		if err != nil || !bytes.Equal(got, buf.Bytes()) {
			t.Fatalf("got %s\nwant %s (%v)", got, buf.Bytes(), err)
		}
	})
}

func TestWriteAuthResultHeaders(t *testing.T) {
	for _, r := range []api.AuthResult{
		{OK: true, Method: "device", Account: "alice", StepUpExpiry: time.Now()},
		{OK: true, StepUpExpiry: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, // encoding/json's own path
	} {
		rec := httptest.NewRecorder()
		writeAuthResult(rec, &r)
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != api.ContentJSON || rec.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("answer %d %v", rec.Code, rec.Header())
		}
		var back api.AuthResult
		if err := json.Unmarshal(rec.Body.Bytes(), &back); r.StepUpExpiry.Year() < 10000 && (err != nil || back.Account != r.Account) {
			t.Fatalf("body %q: %v", rec.Body.Bytes(), err)
		}
	}
}
