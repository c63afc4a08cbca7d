package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfad/mfad/authn/store/postgres/pgtest"
	"github.com/mfad/mfad/authn/totp"
	"github.com/mfad/mfad/ipc/api"
	"github.com/mfad/mfad/ipc/client"
)

// fleet is two daemons ("workstations") on one PostgreSQL database, with
// their own sockets and state directories and the fleet's master key.
type fleet struct {
	a, b  *world
	key   []byte
	pg    *pgtest.Server
	dsn   string
	extra string // more configuration for both daemons
}

func newFleet(t *testing.T, extra ...string) *fleet {
	t.Helper()
	needRoot(t)
	pg, err := pgtest.Start(pgtest.Need(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Close)
	dsn, err := pg.CreateDB()
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{key: make([]byte, 32), pg: pg, dsn: dsn, extra: strings.Join(extra, "\n")}
	rand.Read(f.key)
	// A reads its DSN (and password) from dsn_file, B has it inline.
	dsnFile := filepath.Join(t.TempDir(), "dsn")
	if err := os.WriteFile(dsnFile, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.a = &world{t: t, d: startDaemon(t, f.stateDir(t, f.key), f.config(fmt.Sprintf("dsn_file = %q\nhost = \"ws-a\"", dsnFile)))}
	f.b = &world{t: t, d: startDaemon(t, f.stateDir(t, f.key), f.config(fmt.Sprintf("dsn = %q\nhost = \"ws-b\"", dsn)))}
	return f
}

func (f *fleet) config(dsnLine string) string {
	return fmt.Sprintf("admin_group = %q\n%s\n[store]\nbackend = \"postgres\"\nauto_migrate = true\n%s\n", adminGroup, f.extra, dsnLine)
}

// stateDir makes a state directory holding key as mfad.key.
func (f *fleet) stateDir(t *testing.T, key []byte) string {
	dir, err := os.MkdirTemp(work, "state-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o700)
	if err := os.WriteFile(filepath.Join(dir, "mfad.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// refusedCode asserts a refused sign-in: a code already spent is
// invalid_code or code_already_used, never a success.
func refusedCode(t *testing.T, a answer, what string) {
	t.Helper()
	if a.Status == 200 || (a.Code != api.CodeInvalidCode && a.Code != "code_already_used") {
		t.Fatalf("%s: got %d %s (%s), want a refused code", what, a.Status, a.Code, a.Body)
	}
}

// TestFleetTwoDaemonsOnePostgres: an account enrolled on A signs in on B;
// the code B accepted is refused on A; a device enrolled on B and reported
// lost on A is refused on B at once; both report the store online; a host
// with another master key is refused at start.
func TestFleetTwoDaemonsOnePostgres(t *testing.T) {
	f := newFleet(t)
	me := userSelf
	f.a.must(f.a.as("", "POST", "/v1/accounts", fmt.Sprintf(`{"name":%q,"kind":"member"}`, me), nil), 201)
	d1, s1 := f.a.enrollTOTP(me, me, "")

	awayFromStepEdge()
	code := oathtool(t, s1, time.Now().Add(30*time.Second))
	var res api.AuthResult
	f.b.must(f.b.as(me, "POST", "/v1/authenticate", fmt.Sprintf(`{"account":%q,"code":%q}`, me, code), &res), 200)
	if res.Device == nil || res.Device.ID != d1 {
		t.Fatalf("B signed in with %+v, want %s", res.Device, d1)
	}
	refusedCode(t, f.a.as(me, "POST", "/v1/authenticate", fmt.Sprintf(`{"account":%q,"code":%q}`, me, code), nil), "the code B accepted, on A")
	refusedCode(t, f.b.as(me, "POST", "/v1/authenticate", fmt.Sprintf(`{"account":%q,"code":%q}`, me, code), nil), "the code B accepted, on B")

	// A second device, enrolled on B with B's step-up.
	d2, s2 := f.b.enrollTOTP(me, me, res.StepUpToken)
	var list api.DeviceList
	f.a.must(f.a.as(me, "GET", "/v1/accounts/"+me+"/devices", "", &list), 200)
	if len(list.Devices) != 2 {
		t.Fatalf("A sees %d devices, want 2: %+v", len(list.Devices), list.Devices)
	}
	// Reported lost on A: its next, never used, code is refused on B.
	f.a.must(f.a.as(me, "POST", fmt.Sprintf("/v1/accounts/%s/devices/%s/report-lost", me, d2), "", nil), 200)
	awayFromStepEdge()
	lostCode := oathtool(t, s2, time.Now().Add(30*time.Second))
	a := f.b.as(me, "POST", "/v1/authenticate", fmt.Sprintf(`{"account":%q,"code":%q}`, me, lostCode), nil)
	if a.Status == 200 {
		t.Fatalf("B accepted a code of the device reported lost on A: %s", a.Body)
	}
	f.b.must(f.b.as(me, "GET", "/v1/accounts/"+me+"/devices/"+d2, "", nil), 200)

	// Both daemons say where they keep the store and that it answers.
	for name, w := range map[string]*world{"A": f.a, "B": f.b} {
		var info api.Info
		w.must(w.as("", "GET", "/v1/info", "", &info), 200)
		if info.Store.Backend != "postgres" || info.Store.State != "online" || strings.Contains(info.Store.Path, f.pg.Password) {
			t.Errorf("%s: /v1/info store = %+v", name, info.Store)
		}
		out, errs, code := mfactl(t, w.d.sock, "info")
		if code != 0 || !strings.Contains(out, "postgres (online)") {
			t.Errorf("%s: mfactl info: %d %s %s", name, code, out, errs)
		}
	}
	// The fleet's database is backed up with PostgreSQL's tools: mfad says
	// so before streaming anything.
	f.a.refused(f.a.as("", "GET", "/v1/admin/backup", "", nil), api.CodeBackupElsewhere)

	// The audit entries of both hosts are in the one log.
	var page api.AuditPage
	f.b.must(f.b.as("", "GET", "/v1/audit?limit=1000", "", &page), 200)
	var lostOnA bool
	for _, e := range page.Events {
		lostOnA = lostOnA || (e.Device == d2 && strings.Contains(e.Action, "lost"))
	}
	if !lostOnA {
		t.Errorf("B's audit lacks the loss reported on A: %+v", page.Events)
	}

	// The database stops: both daemons keep running, say so, and refuse
	// sign-ins (no offline cache yet); it comes back: both are online again.
	if err := f.pg.Stop(); err != nil {
		t.Fatal(err)
	}
	for name, w := range map[string]*world{"A": f.a, "B": f.b} {
		var info api.Info
		w.must(w.as("", "GET", "/v1/info", "", &info), 200)
		if info.Store.State != "offline" || info.Store.OfflineSince == nil {
			t.Errorf("%s: /v1/info with the database stopped: %+v", name, info.Store)
		}
		if out, _, _ := mfactl(t, w.d.sock, "info"); !strings.Contains(out, "postgres (offline since ") {
			t.Errorf("%s: mfactl info with the database stopped: %s", name, out)
		}
		a := w.as(me, "POST", "/v1/authenticate", fmt.Sprintf(`{"account":%q,"code":"123456"}`, me), nil)
		if a.Status/100 != 5 || strings.Contains(string(a.Body), f.pg.Password) {
			t.Errorf("%s: sign-in with the database stopped: %d %s", name, a.Status, a.Body)
		}
	}
	if err := f.pg.Restart(); err != nil {
		t.Fatal(err)
	}
	for name, w := range map[string]*world{"A": f.a, "B": f.b} {
		var info api.Info
		w.must(w.as("", "GET", "/v1/info", "", &info), 200)
		if info.Store.State != "online" {
			t.Errorf("%s: /v1/info after the database came back: %+v", name, info.Store)
		}
		w.must(w.as(me, "GET", "/v1/accounts/"+me+"/devices", "", nil), 200)
	}

	// A host with another key is refused at start, naming the fix.
	other := make([]byte, 32)
	rand.Read(other)
	dir := f.stateDir(t, other)
	cfg := filepath.Join(dir, "mfad.toml")
	os.WriteFile(cfg, []byte(f.config(fmt.Sprintf("dsn = %q", f.dsn))), 0o644)
	var stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(binDir, "mfad"), "--config", cfg, "--state-dir", dir, "--socket", filepath.Join(dir, "s.sock"))
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "another master key") {
		t.Errorf("daemon with another key: %v\n%s", err, stderr.String())
	}
	if strings.Contains(stderr.String(), f.pg.Password) {
		t.Errorf("the refusal shows the database password: %s", stderr.String())
	}
}

// TestFleetBadDatabaseRefusedAtStart: a wrong password and a database
// with a newer schema are each a refusal to start that names the fix.
func TestFleetBadDatabaseRefusedAtStart(t *testing.T) {
	f := newFleet(t)
	run := func(dsn, want string) {
		t.Helper()
		dir := f.stateDir(t, f.key)
		cfg := filepath.Join(dir, "mfad.toml")
		os.WriteFile(cfg, []byte(f.config(fmt.Sprintf("dsn = %q", dsn))), 0o644)
		var stderr bytes.Buffer
		cmd := exec.Command(filepath.Join(binDir, "mfad"), "--config", cfg, "--state-dir", dir, "--socket", filepath.Join(dir, "s.sock"))
		cmd.Stderr = &stderr
		if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), want) {
			t.Errorf("dsn %q: %v, want %q in\n%s", dsn, err, want, stderr.String())
		}
		if strings.Contains(stderr.String(), "password=") || strings.Contains(stderr.String(), "s3cret") {
			t.Errorf("the refusal shows the DSN's password: %s", stderr.String())
		}
	}
	run(strings.Replace(f.dsn, "password="+f.pg.Password, "password=wrong", 1), "password authentication failed")
	run(strings.Replace(f.dsn, "password="+f.pg.Password, "password=wrong", 1), "check [store] dsn or dsn_file")
	run("postgres://mfad:s3cret@[::1:5432/mfad", "[store] dsn")
	run(strings.Replace(f.dsn, "dbname=", "dbname=nosuch", 1), "does not exist")
	out, err := exec.Command(filepath.Join(binDir, "mfad"), "migrate", "--config", "/nonexistent.toml").CombinedOutput()
	if err == nil {
		t.Errorf("migrate without a config: %s", out)
	}

	// A fresh database without auto_migrate: refused, naming mfad migrate;
	// mfad migrate brings it up (once), and the daemon then starts.
	fresh, err := f.pg.CreateDB()
	if err != nil {
		t.Fatal(err)
	}
	manual := fmt.Sprintf("admin_group = %q\n[store]\nbackend = \"postgres\"\ndsn = %q\n", adminGroup, fresh)
	dir := f.stateDir(t, f.key)
	cfg := filepath.Join(dir, "mfad.toml")
	os.WriteFile(cfg, []byte(manual), 0o644)
	var stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(binDir, "mfad"), "--config", cfg, "--state-dir", dir, "--socket", filepath.Join(dir, "s.sock"))
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "mfad migrate") {
		t.Errorf("a database never migrated, without auto_migrate: %v\n%s", err, stderr.String())
	}
	for i, want := range []string{"migrated schema v0 to v1", "schema v1 is current"} {
		out, err := exec.Command(filepath.Join(binDir, "mfad"), "migrate", "--config", cfg).CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) || strings.Contains(string(out), f.pg.Password) {
			t.Errorf("mfad migrate #%d: %v %s, want %q", i+1, err, out, want)
		}
	}
	d := startDaemon(t, dir, manual)
	var info api.Info
	(&world{t: t, d: d}).must((&world{t: t, d: d}).as("", "GET", "/v1/info", "", &info), 200)
	if info.Store.Schema != 1 || info.Store.State != "online" {
		t.Errorf("after mfad migrate: %+v", info.Store)
	}
	d.stop()

	psql := exec.Command(filepath.Join(pgtest.Bin(), "psql"), "-X", "-q", f.dsn, "-c", "UPDATE mfad_meta SET value = '99' WHERE key = 'schema'")
	if out, err := psql.CombinedOutput(); err != nil {
		t.Fatalf("psql: %v %s", err, out)
	}
	run(f.dsn, "newer than this mfad")
}

// TestFleetOfflineSecurityKey: with the database stopped, A signs in the
// security key of an account it saw, and refuses codes and changes with
// store_offline; B, which never saw the account, refuses it too. When the
// database is back, A's offline sign-in reaches the fleet's audit log.
func TestFleetOfflineSecurityKey(t *testing.T) {
	f := newFleet(t, "[emulator]\nenabled = true")
	me := userSelf
	f.a.must(f.a.as("", "POST", "/v1/accounts", fmt.Sprintf(`{"name":%q,"kind":"member"}`, me), nil), 201)
	_, secret := f.a.enrollTOTP(me, me, "")
	tok := f.a.signIn(me, me, secret, 1)
	f.a.must(f.a.as("", "POST", "/v1/emulators", `{"name":"key"}`, nil), 201)
	var enr api.Enrollment
	if a := f.a.as(me, "POST", "/v1/accounts/"+me+"/devices", `{"type":"fido","label":"key"}`, &enr, "Authorization: Bearer "+tok); a.Status/100 != 2 {
		t.Fatalf("enroll the key: %d %s", a.Status, a.Body)
	}
	signInKey := func(w *world) answer {
		return w.as(me, "POST", "/v1/authenticate", fmt.Sprintf(`{"account":%q}`, me), nil)
	}
	f.a.must(signInKey(f.a), 200)

	if err := f.pg.Stop(); err != nil {
		t.Fatal(err)
	}
	f.a.must(signInKey(f.a), 200)
	f.a.must(signInKey(f.a), 200)
	f.a.refused(f.a.as(me, "POST", "/v1/authenticate", fmt.Sprintf(`{"account":%q,"code":%q}`, me, oathtool(t, secret, time.Now().Add(60*time.Second))), nil), api.CodeStoreOffline)
	f.a.refused(f.a.as("", "POST", "/v1/accounts/"+me+"/devices", `{"type":"totp"}`, nil), api.CodeStoreOffline)
	f.a.refused(f.a.as("", "POST", "/v1/accounts", `{"name":"mfad-e2e-bob","kind":"member"}`, nil), api.CodeStoreOffline)
	f.b.refused(f.b.as("", "POST", "/v1/authenticate", fmt.Sprintf(`{"account":%q,"code":"123456"}`, me), nil), api.CodeStoreOffline)
	var info api.Info
	f.a.must(f.a.as("", "GET", "/v1/info", "", &info), 200)
	if info.Store.State != "offline" {
		t.Errorf("A's store while the database is stopped: %+v", info.Store)
	}

	if err := f.pg.Restart(); err != nil {
		t.Fatal(err)
	}
	// A replays its queue once it sees the database again (it asks every
	// second); B reads the outcome from the fleet's audit log.
	offline := 0
	for range 100 {
		var page api.AuditPage
		if a := f.b.as("", "GET", "/v1/audit?limit=1000", "", &page); a.Status == 200 {
			offline = 0
			for _, e := range page.Events {
				if e.Account == me && e.Action == "authenticate" && strings.HasSuffix(e.Detail, "(offline)") {
					offline++
				}
			}
		}
		if offline == 2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if offline != 2 {
		t.Fatalf("the fleet's audit log has %d of A's 2 offline sign-ins", offline)
	}
	// Online again, the key signs in (its counter merged, not taken for a
	// clone).
	f.a.must(signInKey(f.a), 200)
}

// TestFleetRaceSameCode: 2 x 32 clients, half on A and half on B, send the
// same valid HOTP code at once; the fleet accepts it exactly once, and
// every other answer is a spent code. Twenty rounds, each with the token's
// next code.
func TestFleetRaceSameCode(t *testing.T) {
	f := newFleet(t, "[lockout]\nmax_failures = 1000000\nlockout_after = 1000001")
	ctx := context.Background()
	secret := make([]byte, 20)
	rand.Read(secret)
	pskc := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?><KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">`+
		`<KeyPackage><DeviceInfo><Manufacturer>e2e</Manufacturer><SerialNo>RACE-1</SerialNo></DeviceInfo>`+
		`<Key Id="RACE-1" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp"><AlgorithmParameters><ResponseFormat Length="6" Encoding="DECIMAL"/></AlgorithmParameters>`+
		`<Data><Secret><PlainValue>%s</PlainValue></Secret><Counter><PlainValue>0</PlainValue></Counter></Data></Key></KeyPackage></KeyContainer>`,
		base64.StdEncoding.EncodeToString(secret))
	ca, cb := f.a.d.client(), f.b.d.client()
	defer ca.Close()
	defer cb.Close()
	if _, err := ca.ImportTokens(ctx, api.TokenImport{PSKC: pskc}); err != nil {
		t.Fatal(err)
	}
	me := userSelf
	if _, err := ca.CreateAccount(ctx, api.CreateAccount{Name: me, Kind: "member"}); err != nil {
		t.Fatal(err)
	}
	e, err := ca.AddDevice(ctx, me, api.CreateDevice{Type: "hardware-otp", Serial: "RACE-1"})
	if err != nil {
		t.Fatal(err)
	}
	hotp := func(c uint64) string { return totp.Code(secret, totp.Params{Algorithm: totp.SHA1, Digits: 6}, c) }
	if _, err := cb.ActivateDevice(ctx, me, e.Device.ID, api.CodePair{Code1: hotp(0), Code2: hotp(1)}); err != nil {
		t.Fatal(err)
	}
	for round := range 20 {
		code := hotp(uint64(2 + round))
		var ok atomic.Int32
		var wg sync.WaitGroup
		odd := make(chan string, 64)
		for i := range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sock := []*daemon{f.a.d, f.b.d}[i%2].sock
				c := &client.Client{Socket: sock}
				defer c.Close()
				_, err := c.Authenticate(ctx, api.Authenticate{Account: me, Code: code})
				var p *api.Problem
				switch {
				case err == nil:
					ok.Add(1)
				case errors.As(err, &p) && (p.Code == api.CodeCodeAlreadyUsed || p.Code == api.CodeInvalidCode):
				default:
					odd <- fmt.Sprint(err)
				}
			}()
		}
		wg.Wait()
		close(odd)
		for e := range odd {
			t.Errorf("round %d: %s", round, e)
		}
		if n := ok.Load(); n != 1 {
			t.Fatalf("round %d: the code was accepted %d times by two daemons on one database, want once", round, n)
		}
	}
}
