package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/mfad/mfad/ipc/api"
	"github.com/mfad/mfad/ipc/server"
)

// wantPerm is the permission each route must carry, written out here
// independently of the route table so that a changed permission fails.
var wantPerm = map[string]string{
	"DELETE /v1/accounts/{name}/devices/{id}":           "self",
	"POST /v1/accounts/{name}/devices/{id}/deactivate":  "self",
	"POST /v1/accounts/{name}/devices/{id}/replace":     "self",
	"POST /v1/accounts/{name}/devices/{id}/report-lost": "self",
	"POST /v1/accounts/{name}/temporary-code":           "admin",
	"POST /v1/accounts/{name}/contact":                  "self",
	"POST /v1/accounts/{name}/contact/verify":           "self",
	"POST /v1/recovery":                                 "self-or-root",
	"POST /v1/recovery/{id}/{step}":                     "recovery-starter",
	"GET /v1/keys":                                      "anyone",
	"POST /v1/keys/{id}/wink":                           "admin",
	"POST /v1/keys/{id}/pin":                            "admin",
	"POST /v1/keys/{id}/reset":                          "admin",
	"POST /v1/keys/{id}/check":                          "admin",
	"GET /v1/emulators":                                 "admin",
	"POST /v1/emulators":                                "admin",
	"DELETE /v1/emulators/{id}":                         "admin",
	"POST /v1/emulators/{id}/{action}":                  "admin",
	"GET /v1/events":                                    "anyone",
	"POST /v1/accounts/{name}/password-changed":         "root",
	"GET /v1/accounts":                                  "admin",
	"POST /v1/accounts":                                 "admin",
	"GET /v1/accounts/{name}":                           "self",
	"PATCH /v1/accounts/{name}":                         "admin",
	"DELETE /v1/accounts/{name}":                        "admin",
	"GET /v1/admin/backup":                              "admin",
	"POST /v1/admin/backup":                             "root",
	"POST /v1/admin/rotate-key":                         "root",
	"GET /v1/audit":                                     "admin",
	"GET /v1/info":                                      "anyone",
	"GET /v1/accounts/{name}/devices":                   "self",
	"POST /v1/accounts/{name}/devices":                  "self",
	"POST /v1/accounts/{name}/devices/import":           "admin",
	"GET /v1/accounts/{name}/devices/{id}":              "self",
	"POST /v1/accounts/{name}/devices/{id}/activate":    "self",
	"POST /v1/accounts/{name}/devices/{id}/resync":      "self",
	"POST /v1/authenticate":                             "self-body",
	"GET /v1/tokens":                                    "admin",
	"POST /v1/tokens/import":                            "admin",
}

// mayCall says who passes each permission: root, the admin-group member,
// the account's own user, another user.
var mayCall = map[string]map[string]bool{
	"anyone":       {"": true, userAdmin: true, userSelf: true, userOther: true},
	"self":         {"": true, userAdmin: true, userSelf: true},
	"self-body":    {"": true, userAdmin: true, userSelf: true},
	"admin":        {"": true, userAdmin: true},
	"root":         {"": true},
	"self-or-root": {"": true, userSelf: true},
	// any peer reaches a recovery, which then refuses all but its starter
	"recovery-starter": {"": true, userAdmin: true, userSelf: true, userOther: true},
}

func TestEveryRouteHasItsPermission(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range server.Table() {
		k := r.Method + " " + r.Pattern
		seen[k] = true
		want, ok := wantPerm[k]
		if !ok {
			t.Errorf("route %s is not listed in wantPerm: add it with its permission and an authorization case", k)
			continue
		}
		if r.Perm.String() != want {
			t.Errorf("route %s has permission %s, want %s", k, r.Perm, want)
		}
	}
	for k := range wantPerm {
		if !seen[k] {
			t.Errorf("wantPerm lists %s but the server has no such route", k)
		}
	}
}

// TestAuthorizationMatrix calls every route as uid 0, an admin-group
// member, the account's own user and another user, each a real uid in
// its own process, and checks each gets exactly what the table says.
func TestAuthorizationMatrix(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, "", "admin_group = \""+adminGroup+"\"\n")
	ctx := context.Background()
	ensure := func() {
		_, err := d.client().CreateAccount(ctx, api.CreateAccount{Name: userSelf, Kind: "member"})
		if err != nil && !errors.Is(err, &api.Problem{Code: api.CodeAccountExists}) {
			t.Fatal(err)
		}
	}
	n := 0
	for _, r := range server.Table() {
		perm := wantPerm[r.Method+" "+r.Pattern]
		for _, who := range []string{userOther, userSelf, userAdmin, ""} {
			ensure()
			n++
			path := strings.NewReplacer("{name}", userSelf, "{id}", "0123456789abcdef", "{action}", "touch", "{step}", "email").Replace(r.Pattern)
			if r.Pattern == "/v1/events" {
				continue // a stream: its permission is tested in TestEventsStream
			}
			body := ""
			switch r.Method + " " + r.Pattern {
			case "POST /v1/accounts":
				body = fmt.Sprintf(`{"name":"mfad-e2e-new%d"}`, n)
			case "PATCH /v1/accounts/{name}":
				body = `{"email":"alice@example.org"}`
			case "POST /v1/accounts/{name}/devices":
				body = `{"type":"totp"}`
			case "POST /v1/accounts/{name}/devices/{id}/activate", "POST /v1/accounts/{name}/devices/{id}/resync":
				body = `{"code1":"123456","code2":"654321"}`
			case "POST /v1/authenticate":
				body = `{"account":"` + userSelf + `","code":"123456"}`
			case "POST /v1/keys/{id}/pin":
				body = `{"pin":"123456"}`
			case "POST /v1/emulators":
				body = fmt.Sprintf(`{"name":"e2e-%d"}`, n)
			case "POST /v1/accounts/{name}/devices/{id}/replace":
				body = `{"type":"totp"}`
			case "POST /v1/accounts/{name}/contact":
				body = `{"email":"new@example.org"}`
			case "POST /v1/accounts/{name}/contact/verify", "POST /v1/recovery/{id}/{step}":
				body = `{"code":"123456"}`
			case "POST /v1/recovery":
				body = `{"account":"` + userSelf + `"}`
			case "POST /v1/tokens/import":
				body = `{"pskc":"<x/>"}`
			case "POST /v1/accounts/{name}/devices/import":
				body = `{"kind":"totp","secret":"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ","dry_run":true}`
			}
			got := callAs(t, who, d.sock, r.Method, path, body)
			name := who
			if name == "" {
				name = "root"
			}
			if mayCall[perm][who] {
				if got.Status == 403 && got.Code == api.CodePermissionDenied || got.Status >= 500 {
					t.Errorf("%s %s as %s (%s): refused %d %s, want allowed", r.Method, path, name, perm, got.Status, got.Code)
				}
			} else if got.Status != 403 || got.Code != api.CodePermissionDenied {
				t.Errorf("%s %s as %s (%s): got %d %s, want 403 permission_denied", r.Method, path, name, perm, got.Status, got.Code)
			}
		}
	}
}

// TestUserCannotGrantThemselvesPower: kind, verified marks and flags
// change only through admin routes.
func TestUserCannotGrantThemselvesPower(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, "", "admin_group = \""+adminGroup+"\"\n")
	ctx := context.Background()
	if _, err := d.client().CreateAccount(ctx, api.CreateAccount{Name: userSelf, Kind: "member",
		Email: "a@example.org", Phone: "+1 555 0100", Flags: []string{"password_change_required"}}); err != nil {
		t.Fatal(err)
	}
	p := "/v1/accounts/" + userSelf
	for _, body := range []string{`{"kind":"owner"}`, `{"email_verified":true,"phone_verified":true}`, `{"flags":[]}`, `{"unlock":true}`} {
		got := callAs(t, userSelf, d.sock, "PATCH", p, body)
		if got.Status != 403 || got.Code != api.CodePermissionDenied {
			t.Errorf("PATCH %s by its user: %d %s, want 403 permission_denied", body, got.Status, got.Code)
		}
	}
	a, err := d.client().Account(ctx, userSelf)
	if err != nil {
		t.Fatal(err)
	}
	if a.Kind != "member" || a.EmailVerified || a.PhoneVerified || len(a.Flags) != 1 {
		t.Errorf("account changed by its user: %+v", a)
	}
	// The user still reads their own account, and not another's.
	if got := callAs(t, userSelf, d.sock, "GET", p, ""); got.Status != 200 {
		t.Errorf("user reading own account: %d %s", got.Status, got.Code)
	}
	if got := callAs(t, userOther, d.sock, "GET", p, ""); got.Status != 403 {
		t.Errorf("other user reading the account: %d %s", got.Status, got.Code)
	}
	// An admin-group member may.
	if got := callAs(t, userAdmin, d.sock, "PATCH", p, `{"kind":"owner"}`); got.Status != 200 {
		t.Errorf("admin PATCH: %d %s", got.Status, got.Code)
	}
}

// TestOneUserCannotStarveRoot: a local user holding every connection it
// can does not stop uid 0 from being served.
func TestOneUserCannotStarveRoot(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, "", "[limits]\nconnections = 24\nconnections_root_reserved = 4\nconnections_per_uid = 16\n")
	hold := func(who string, n int) (admitted, refused int, release func()) {
		cmd := exec.Command(filepath.Join(binDir, "e2e.test"), "-test.run=^$")
		cmd.Env = []string{"MFAD_E2E_HELPER=hold", "MFAD_E2E_SOCK=" + d.sock, fmt.Sprint("MFAD_E2E_N=", n)}
		u := users[who]
		var uid, gid uint32
		fmt.Sscan(u.Uid, &uid)
		fmt.Sscan(u.Gid, &gid)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil {
			t.Fatalf("hold helper: %v", err)
		}
		fmt.Sscan(line, &admitted, &refused)
		var once sync.Once
		release = func() { once.Do(func() { stdin.Close(); cmd.Wait() }) }
		t.Cleanup(release)
		return
	}
	a1, r1, _ := hold(userOther, 40)
	if a1 != 16 || r1 != 24 {
		t.Errorf("one user: %d admitted, %d refused; want 16 and 24 (per-uid limit)", a1, r1)
	}
	a2, _, _ := hold(userSelf, 40)
	if a2 != 4 {
		t.Errorf("second user: %d admitted, want 4 (users share 20 of 24)", a2)
	}
	// Users are full; uid 0 is still served, several times at once.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := d.client()
			_, err := c.Info(context.Background())
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("root starved: %v", err)
		}
	}
	// The user's next connection gets a clear 429.
	got := callAs(t, userOther, d.sock, "GET", "/v1/info", "")
	if got.Status != 429 || got.Code != api.CodeTooManyConnections {
		t.Errorf("user over its share: %d %s, want 429 too_many_connections", got.Status, got.Code)
	}
}

// TestStreamsPerUID: a user holds at most its share of long streams; the
// next one is refused with too_many_streams, and uid 0 still streams.
func TestStreamsPerUID(t *testing.T) {
	needRoot(t)
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	d := startDaemon(t, "", "[limits]\nstreams = 8\nstreams_per_uid = 2\nstreams_root_reserved = 2\n")
	stream := func(who string) *exec.Cmd {
		cmd := exec.Command(curl, "-sN", "--unix-socket", d.sock, "http://mfad/v1/events")
		runAs(cmd, who)
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || !strings.Contains(line, "subscribed") {
			t.Fatalf("stream as %q: %q %v", who, line, err)
		}
		return cmd
	}
	stream(userOther)
	stream(userOther)
	if got := callAs(t, userOther, d.sock, "GET", "/v1/events", ""); got.Status != 429 || got.Code != api.CodeTooManyStreams {
		t.Errorf("third stream of one user: %d %s, want 429 too_many_streams", got.Status, got.Code)
	}
	stream(userSelf)
	stream(userSelf)
	stream(userAdmin)
	stream(userAdmin) // users now hold all 6 slots open to them
	if got := callAs(t, userAdmin, d.sock, "GET", "/v1/events", ""); got.Status != 429 {
		t.Errorf("a stream past the users' share: %d %s", got.Status, got.Code)
	}
	stream("") // uid 0 still streams: the reserve is its own
	stream("")
}
