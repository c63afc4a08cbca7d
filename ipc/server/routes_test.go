package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mfad/mfad/ipc/api"
)

// TestRouteTableSorted keeps the route table sorted by pattern, then
// method, as its comment says, so that a route is found (and a duplicate
// seen) at a glance.
func TestRouteTableSorted(t *testing.T) {
	rs := Table()
	for i := 1; i < len(rs); i++ {
		a, b := rs[i-1], rs[i]
		if a.Pattern > b.Pattern || a.Pattern == b.Pattern && a.Method >= b.Method {
			t.Errorf("route table out of order: %s %s comes before %s %s", a.Method, a.Pattern, b.Method, b.Pattern)
		}
	}
}

// TestSelfBodyRoutesReadTheBody: a self-body route without BodyAccount
// would be decided on an empty account (admins only), which is not what
// its permission says.
func TestSelfBodyRoutesReadTheBody(t *testing.T) {
	for _, r := range (&Server{}).routeTable() {
		if r.Perm == PermSelfBody && !r.BodyAccount {
			t.Errorf("%s %s is self-body but does not set BodyAccount", r.Method, r.Pattern)
		}
	}
}

// TestBodyAccountDecidedBeforeHandler: the permission of a route that
// names its account in the body is decided by the router, so a handler
// that never decodes the body is still out of another user's reach; a
// handler that decodes gets the bytes the router read.
func TestBodyAccountDecidedBeforeHandler(t *testing.T) {
	s := New(Config{}, Backends{})
	var reached []string
	blind := &Route{Method: "POST", Pattern: "/test/blind", Perm: PermSelfBody, BodyAccount: true,
		handle: func(c *call) error {
			reached = append(reached, c.p.Name)
			writeJSON(c.w, http.StatusOK, map[string]string{"ok": "yes"})
			return nil
		}}
	decoding := &Route{Method: "POST", Pattern: "/test/decoding", Perm: PermSelfOrRoot, BodyAccount: true,
		handle: func(c *call) error {
			var b api.Authenticate
			if err := c.decode(&b); err != nil {
				return err
			}
			reached = append(reached, c.p.Name+":"+b.Account)
			writeJSON(c.w, http.StatusOK, map[string]string{"account": b.Account})
			return nil
		}}
	// The same route whose body the router decodes at once.
	decoded := *decoding
	decoded.Pattern, decoded.Body = "/test/decoded", func() accountNamer { return new(api.Authenticate) }
	alice := Principal{UID: 1000, Name: "alice"}
	bob := Principal{UID: 1001, Name: "bob"}
	nameless := Principal{UID: 1002}
	admin := Principal{UID: 1003, Name: "adm", Admin: true}
	root := Principal{UID: 0, Name: "root", Admin: true}
	cases := []struct {
		rt     *Route
		p      Principal
		body   string
		status int
		code   string
	}{
		{blind, alice, `{"account":"alice"}`, 200, ""},
		{blind, bob, `{"account":"alice"}`, 403, api.CodePermissionDenied},
		{blind, nameless, `{"account":""}`, 403, api.CodePermissionDenied},
		{blind, nameless, `{}`, 403, api.CodePermissionDenied},
		{blind, bob, `{"account":"bob","account":"alice"}`, 403, api.CodePermissionDenied},
		{blind, bob, `{"ACCOUNT":"alice"}`, 403, api.CodePermissionDenied},
		{blind, admin, `{"account":"alice"}`, 200, ""},
		{blind, bob, `{"account":`, 400, api.CodeInvalidRequest},
		{blind, bob, `{"account":"alice","pad":"` + strings.Repeat("x", 70<<10) + `"}`, 413, api.CodeRequestTooLarge},
		{decoding, alice, `{"account":"alice","code":"123456"}`, 200, ""},
		{decoding, bob, `{"account":"alice","code":"123456"}`, 403, api.CodePermissionDenied},
		{decoding, admin, `{"account":"alice"}`, 403, api.CodePermissionDenied}, // self-or-root: admins do not qualify
		{decoding, root, `{"account":"alice"}`, 200, ""},
	}
	// A route whose router decodes the body answers as one whose handler
	// does, whatever the body.
	for _, p := range []Principal{alice, bob, admin, root} {
		for _, body := range []string{`{"account":"alice","code":"123456"}`, `{"account":"alice","code":"1"}}`,
			`{"account":"alice","bogus":1}`, `{"account":"alice"} {"account":"bob"}`, `{"account":"alice"}` + "\n\t ",
			`{"Account":"alice"}`, `{"account":"bob","account":"alice"}`, `{"account":"alice","code":7}`, ``, `[]`, `null`} {
			var want int
			for _, rt := range []*Route{decoding, &decoded} {
				r := httptest.NewRequest("POST", rt.Pattern, strings.NewReader(body))
				r.Header.Set("Content-Type", api.ContentJSON)
				w := httptest.NewRecorder()
				s.wrap(rt).ServeHTTP(w, withPrincipalForTest(r, p))
				if rt == decoding {
					want = w.Code
				} else if w.Code != want {
					t.Errorf("%q as %q: %d decoded by the router, %d by the handler", body, p.Name, w.Code, want)
				}
			}
		}
	}
	cases = append(cases, struct {
		rt     *Route
		p      Principal
		body   string
		status int
		code   string
	}{&decoded, alice, `{"account":"alice","code":"123456"}`, 200, ""})
	for i, tc := range cases {
		reached = nil
		r := httptest.NewRequest("POST", tc.rt.Pattern, strings.NewReader(tc.body))
		r.Header.Set("Content-Type", api.ContentJSON)
		r = withPrincipalForTest(r, tc.p)
		w := httptest.NewRecorder()
		s.wrap(tc.rt).ServeHTTP(w, r)
		var p api.Problem
		json.Unmarshal(w.Body.Bytes(), &p)
		if w.Code != tc.status || p.Code != tc.code {
			t.Errorf("case %d (%s as %q): %d %q, want %d %q", i, tc.rt.Pattern, tc.p.Name, w.Code, p.Code, tc.status, tc.code)
		}
		if (tc.status == 200) != (len(reached) == 1) {
			t.Errorf("case %d (%s as %q): handler reached %v", i, tc.rt.Pattern, tc.p.Name, reached)
		}
	}
}
