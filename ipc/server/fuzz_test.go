package server

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/authn/store"
	"github.com/mfad/mfad/ipc/api"
)

// FuzzRequests sends arbitrary methods, paths and bodies through the real
// router and handlers (over a real store), as root and as a plain user:
// nothing may panic or answer 5xx, and every error is a problem.
func FuzzRequests(f *testing.F) {
	st, err := store.Open(f.TempDir(), bytes.Repeat([]byte{5}, store.KeySize), store.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	svc := authn.NewService(st, authn.Config{})
	s := New(Config{}, Backends{Accounts: svc, Devices: svc, Tokens: svc, Backup: st})
	svc.CreateAccount(context.Background(), authn.Actor{Admin: true}, authn.NewAccount{Name: "alice"})
	for _, seed := range []struct{ method, path, body string }{
		{"POST", "/v1/accounts", `{"name":"bob","kind":"owner"}`},
		{"PATCH", "/v1/accounts/alice", `{"flags":["disabled"],"email":"a@b.c"}`},
		{"POST", "/v1/authenticate", `{"account":"alice","code":"123456"}`},
		{"POST", "/v1/accounts/alice/devices", `{"type":"totp","digits":8,"period":60,"algorithm":"SHA256"}`},
		{"POST", "/v1/accounts/alice/devices/x/activate", `{"code1":"1","code2":"2"}`},
		{"POST", "/v1/tokens/import", `{"pskc":"<KeyContainer/>","pre_shared_key":"zz"}`},
		{"POST", "/v1/recovery", `{"account":"alice"}`},
		{"POST", "/v1/accounts/alice/temporary-code", `{"ttl_hours":-3}`},
		{"GET", "/v1/audit?after=18446744073709551615&limit=0", ``},
		{"DELETE", "/v1/accounts/alice/devices/..%2f..?return_to_inventory=true", ``},
	} {
		f.Add(seed.method, seed.path, seed.body, true)
		f.Add(seed.method, seed.path, seed.body, false)
	}
	f.Fuzz(func(t *testing.T, method, path, body string, root bool) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t") || len(method) == 0 || len(method) > 10 || strings.ContainsAny(method, " \r\n\t:/") {
			return // not something net/http would hand the router
		}
		req, err := http.NewRequest(method, "http://mfad"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", api.ContentJSON)
		p := Principal{UID: 1000, Name: "alice"}
		if root {
			p = Principal{UID: 0, Name: "root", Admin: true}
		}
		req = withPrincipalForTest(req, p)
		rec := httptest.NewRecorder()
		s.mux.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", method, path, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 && rec.Header().Get("Content-Type") != api.ContentProblem {
			t.Fatalf("%s %s: %d without a problem body", method, path, rec.Code)
		}
	})
}
