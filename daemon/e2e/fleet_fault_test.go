package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mfad/mfad/authn/store/postgres/pgtest"
	"github.com/mfad/mfad/authn/totp"
	"github.com/mfad/mfad/ipc/api"
	"github.com/mfad/mfad/ipc/client"
)

// kill9 kills the daemon as a crash would (SIGKILL: no shutdown, no
// flush), then starts it again on the same state directory and
// configuration.
func (d *daemon) kill9AndRestart() {
	d.t.Helper()
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.exited
	d.start(d.args...)
}

// psql runs one query on the fleet's database and returns its rows,
// unaligned, one a line.
func (f *fleet) psql(t *testing.T, query string) []string {
	t.Helper()
	out, err := exec.Command(filepath.Join(pgtest.Bin(), "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", f.dsn, "-c", query).CombinedOutput()
	if err != nil {
		t.Fatalf("psql %q: %v %s", query, err, out)
	}
	return strings.Fields(strings.TrimSpace(string(out)))
}

func (f *fleet) psqlInt(t *testing.T, query string) int64 {
	t.Helper()
	rows := f.psql(t, query)
	if len(rows) != 1 {
		t.Fatalf("psql %q: %v, want one value", query, rows)
	}
	n, err := strconv.ParseInt(rows[0], 10, 64)
	if err != nil {
		t.Fatalf("psql %q: %v", query, err)
	}
	return n
}

// outcome classes a sign-in's answer as a client sees it.
type outcome int

const (
	accepted outcome = iota
	spent            // code_already_used or invalid_code: refused, definitely
	offline          // store_offline: refused, definitely
	unknown          // a 5xx or a broken connection: it may have committed
)

func classify(err error) (outcome, string) {
	var p *api.Problem
	switch {
	case err == nil:
		return accepted, ""
	case errors.As(err, &p) && (p.Code == api.CodeCodeAlreadyUsed || p.Code == api.CodeInvalidCode):
		return spent, p.Code
	case errors.As(err, &p) && p.Code == api.CodeStoreOffline:
		return offline, p.Code
	case errors.As(err, &p) && p.Status/100 != 5:
		return -1, fmt.Sprintf("%d %s: %s", p.Status, p.Code, p.Detail)
	}
	return unknown, err.Error()
}

// TestFleetDatabaseStoppedUnderLoad: clients sign in without pause on two
// daemons of one database, with HOTP codes (each client its own token,
// alternating daemons), a TOTP device and a security key (a software key
// on A). Under this load B is killed (SIGKILL) and started again; then
// PostgreSQL is stopped as in a crash; A is killed while the database is
// down and starts again offline from its cache; the database comes back.
//
// Afterwards: every sign-in a client saw accepted is in the database (the
// counters at least as far, the audit log holding as many successes); no
// code was accepted twice, then or when every accepted code is sent again
// to both daemons; the security key signed in all along, its offline
// sign-ins replayed from A's durable queue (which is empty at the end)
// with their original time and A's name, its counter merged as a maximum
// and not taken for a clone.
func TestFleetDatabaseStoppedUnderLoad(t *testing.T) {
	f := newFleet(t, "[lockout]\nmax_failures = 1000000\nlockout_after = 1000001\n[emulator]\nenabled = true\nattach = [\"key\"]")
	ctx := context.Background()
	ca := f.a.d.client()
	defer ca.Close()

	// Six HOTP tokens, each on an account of its own, activated with
	// counters 0 and 1.
	const nHOTP = 6
	secrets := make([][]byte, nHOTP)
	var pskc strings.Builder
	pskc.WriteString(`<?xml version="1.0" encoding="UTF-8"?><KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">`)
	for i := range secrets {
		secrets[i] = make([]byte, 20)
		rand.Read(secrets[i])
		fmt.Fprintf(&pskc, `<KeyPackage><DeviceInfo><Manufacturer>e2e</Manufacturer><SerialNo>LOAD-%d</SerialNo></DeviceInfo>`+
			`<Key Id="LOAD-%d" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp"><AlgorithmParameters><ResponseFormat Length="6" Encoding="DECIMAL"/></AlgorithmParameters>`+
			`<Data><Secret><PlainValue>%s</PlainValue></Secret><Counter><PlainValue>0</PlainValue></Counter></Data></Key></KeyPackage>`,
			i, i, base64.StdEncoding.EncodeToString(secrets[i]))
	}
	pskc.WriteString(`</KeyContainer>`)
	if _, err := ca.ImportTokens(ctx, api.TokenImport{PSKC: pskc.String()}); err != nil {
		t.Fatal(err)
	}
	hotp := func(i int, c uint64) string {
		return totp.Code(secrets[i], totp.Params{Algorithm: totp.SHA1, Digits: 6}, c)
	}
	hotpAccount := func(i int) string { return fmt.Sprintf("load-hotp-%d", i) }
	for i := range nHOTP {
		if _, err := ca.CreateAccount(ctx, api.CreateAccount{Name: hotpAccount(i), Kind: "member"}); err != nil {
			t.Fatal(err)
		}
		e, err := ca.AddDevice(ctx, hotpAccount(i), api.CreateDevice{Type: "hardware-otp", Serial: fmt.Sprintf("LOAD-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ca.ActivateDevice(ctx, hotpAccount(i), e.Device.ID, api.CodePair{Code1: hotp(i, 0), Code2: hotp(i, 1)}); err != nil {
			t.Fatal(err)
		}
	}
	// A TOTP device (codes computed here, checked against oathtool at
	// enrollment).
	const totpAccount, keyAccount = "load-totp", "load-key"
	for _, n := range []string{totpAccount, keyAccount} {
		if _, err := ca.CreateAccount(ctx, api.CreateAccount{Name: n, Kind: "member"}); err != nil {
			t.Fatal(err)
		}
	}
	// Activated with the codes of three and two steps ago (oathtool's), so
	// that the window around now holds three fresh codes.
	var enr api.Enrollment
	f.a.must(f.a.as("", "POST", "/v1/accounts/"+totpAccount+"/devices", `{"type":"totp"}`, &enr), 201)
	awayFromStepEdge()
	now := time.Now()
	f.a.must(f.a.as("", "POST", fmt.Sprintf("/v1/accounts/%s/devices/%s/activate", totpAccount, enr.Device.ID),
		fmt.Sprintf(`{"code1":%q,"code2":%q}`, oathtool(t, enr.Secret, now.Add(-90*time.Second)), oathtool(t, enr.Secret, now.Add(-60*time.Second))), nil), 200)
	totpB32 := enr.Secret
	totpSecret, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.TrimRight(strings.ToUpper(totpB32), "="))
	if err != nil {
		t.Fatal(err)
	}
	// A security key: A's software key "key".
	if _, err := ca.AddKeyDevice(ctx, keyAccount, api.CreateDevice{Label: "key"}, nil); err != nil {
		t.Fatalf("enroll the software key: %v", err)
	}
	if _, err := ca.AuthenticateKey(ctx, api.Authenticate{Account: keyAccount}, nil); err != nil {
		t.Fatalf("sign in with the software key: %v", err)
	}

	// The load.
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		odd      []string
		dbDown   atomic.Bool // between the database's stop and its restart
		unknowns = map[string]int{}
	)
	report := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(odd) < 20 {
			odd = append(odd, fmt.Sprintf(format, args...))
		}
	}
	daemons := []*daemon{f.a.d, f.b.d}
	pause := func() { time.Sleep(5 * time.Millisecond) }

	// codeClient sends account's codes in order, alternating daemons: due
	// says which code is worth sending next (false: none yet). A definite
	// refusal (store_offline) or an unknown outcome sends the same code
	// again, to the other daemon; a spent code (refused because an attempt
	// whose answer this client never saw used it, or because it never
	// matched) moves on. acked counts the acceptances of each code.
	codeClient := func(account string, turn int, code func(uint64) string, due func(next uint64) (uint64, bool), acked map[uint64]int) {
		defer wg.Done()
		var next uint64
		for ; !stop.Load(); turn++ {
			n, ok := due(next)
			if !ok {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			next = n
			c := &client.Client{Socket: daemons[turn%2].sock}
			_, err := c.Authenticate(ctx, api.Authenticate{Account: account, Code: code(next)})
			c.Close()
			switch o, why := classify(err); o {
			case accepted:
				mu.Lock()
				acked[next]++
				mu.Unlock()
				next++
			case spent:
				next++
			case offline:
				pause()
			case unknown:
				mu.Lock()
				unknowns[account]++
				mu.Unlock()
				pause()
			default:
				report("%s: %s", account, why)
				pause()
			}
		}
	}
	// HOTP: each token's codes from counter 2 on.
	acked := make([]map[uint64]int, nHOTP)
	for i := range nHOTP {
		acked[i] = map[uint64]int{}
		wg.Add(1)
		go codeClient(hotpAccount(i), i, func(c uint64) string { return hotp(i, c) },
			func(next uint64) (uint64, bool) { return max(next, 2), true }, acked[i])
	}
	// TOTP: the codes of the verification window, a step either side of
	// now.
	totpAcked := map[uint64]int{}
	wg.Add(1)
	go codeClient(totpAccount, 0, func(step uint64) string { return totp.Code(totpSecret, totp.DefaultParams, step) },
		func(next uint64) (uint64, bool) {
			now := uint64(totp.StepAt(time.Now(), 30*time.Second))
			next = max(next, now-1)
			return next, next <= now+1
		}, totpAcked)
	// The security key, on A, one sign-in after the other.
	// keyAckedOffline counts those begun and answered while the database
	// was stopped.
	var keyAcked, keyAckedOffline int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			c := &client.Client{Socket: f.a.d.sock}
			down := dbDown.Load()
			_, err := c.AuthenticateKey(ctx, api.Authenticate{Account: keyAccount}, nil)
			c.Close()
			switch o, why := classify(err); o {
			case accepted:
				mu.Lock()
				keyAcked++
				if down && dbDown.Load() {
					keyAckedOffline++
				}
				mu.Unlock()
			case unknown:
				mu.Lock()
				unknowns[keyAccount]++
				mu.Unlock()
				pause()
			default:
				report("%s: %d %s", keyAccount, o, why) // offline too: a cached key signs in
				pause()
			}
		}
	}()

	count := func(what string) int {
		mu.Lock()
		defer mu.Unlock()
		switch what {
		case "hotp":
			n := 0
			for i := range acked {
				n += len(acked[i])
			}
			return n
		case "key":
			return keyAcked
		}
		return keyAckedOffline
	}
	waitFor := func(what string, atLeast int) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); count(what) < atLeast; {
			if time.Now().After(deadline) {
				stop.Store(true)
				wg.Wait()
				t.Fatalf("load: %d %s sign-ins, want %d; odd answers: %v", count(what), what, atLeast, odd)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	waitFor("hotp", 60)
	waitFor("key", 3)
	// B crashes under load and starts again.
	f.b.d.kill9AndRestart()
	waitFor("hotp", count("hotp")+60)

	// The database stops as in a crash, in the middle of sign-ins.
	keyBefore := f.psqlInt(t, fmt.Sprintf(`SELECT sign_count FROM credentials WHERE account = '%s'`, keyAccount))
	stoppedAt := time.Now()
	if err := f.pg.Stop(); err != nil {
		t.Fatal(err)
	}
	// Sign-ins begun from now on cannot reach the database.
	dbDown.Store(true)
	hotpAtStop := count("hotp")
	waitFor("offline", 3)
	// A crashes while offline, with sign-ins queued, and starts again
	// without the database: offline, from its cache.
	f.a.d.kill9AndRestart()
	var info api.Info
	f.a.must(f.a.as("", "GET", "/v1/info", "", &info), 200)
	if info.Store.State != "offline" || info.Store.OfflineSince == nil {
		t.Errorf("A started without its database: /v1/info store %+v, want offline", info.Store)
	}
	if out, _, _ := mfactl(t, f.a.d.sock, "info"); !strings.Contains(out, "postgres (offline since ") {
		t.Errorf("A started without its database: mfactl info:\n%s", out)
	}
	waitFor("offline", count("offline")+3)
	if n := count("hotp"); n > hotpAtStop+2*nHOTP {
		t.Errorf("%d HOTP codes accepted with the database stopped (at most the %d in flight, once each, may have finished)", n-hotpAtStop, nHOTP)
	}

	if err := f.pg.Restart(); err != nil {
		t.Fatal(err)
	}
	// Sign-ins answered until now were answered offline; the replay comes
	// later, once A sees the database again.
	dbDown.Store(false)
	restartedAt := time.Now()
	hotpAtRestart := count("hotp")
	waitFor("hotp", hotpAtRestart+60)
	waitFor("key", count("key")+3)
	stop.Store(true)
	wg.Wait()
	for _, o := range odd {
		t.Error(o)
	}

	// A replays its queue once it sees the database again: wait until the
	// audit log holds every acknowledged key sign-in.
	keyOK := fmt.Sprintf(`SELECT count(*) FROM audit WHERE account = '%s' AND action = 'authenticate' AND outcome = 'ok'`, keyAccount)
	for deadline := time.Now().Add(30 * time.Second); f.psqlInt(t, keyOK) < int64(keyAcked+1) && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("accepted: %d HOTP codes (%d after the database came back), %d TOTP steps, %d key sign-ins (%d offline); unknown outcomes %v",
		count("hotp"), count("hotp")-hotpAtRestart, len(totpAcked), keyAcked, keyAckedOffline, unknowns)

	// No acknowledged sign-in lost.
	for i := range nHOTP {
		var most uint64
		for c := range acked[i] {
			most = max(most, c)
		}
		last := f.psqlInt(t, fmt.Sprintf(`SELECT last_counter FROM devices WHERE account = '%s'`, hotpAccount(i)))
		if uint64(last) < most {
			t.Errorf("%s: the database's counter is %d, below %d that a client saw accepted", hotpAccount(i), last, most)
		}
		ok := f.psqlInt(t, fmt.Sprintf(`SELECT count(*) FROM audit WHERE account = '%s' AND action = 'authenticate' AND outcome = 'ok'`, hotpAccount(i)))
		if ok < int64(len(acked[i])) || ok > int64(len(acked[i])+unknowns[hotpAccount(i)]) {
			t.Errorf("%s: %d successes in the audit log, clients saw %d accepted (and %d unknown outcomes)", hotpAccount(i), ok, len(acked[i]), unknowns[hotpAccount(i)])
		}
	}
	for i, acc := range append(acked, totpAcked) {
		for c, n := range acc {
			if n > 1 {
				t.Errorf("token %d: the code of counter %d was accepted %d times", i, c, n)
			}
		}
	}
	totpOK := f.psqlInt(t, fmt.Sprintf(`SELECT count(*) FROM audit WHERE account = '%s' AND action = 'authenticate' AND outcome = 'ok'`, totpAccount))
	if totpOK < int64(len(totpAcked)) {
		t.Errorf("TOTP: %d successes in the audit log, clients saw %d", totpOK, len(totpAcked))
	}
	// +1: the sign-in before the load.
	if ok := f.psqlInt(t, keyOK); ok < int64(keyAcked+1) || ok > int64(keyAcked+1+unknowns[keyAccount]) {
		t.Errorf("security key: %d successes in the audit log, the client saw %d accepted (and %d unknown outcomes)", ok, keyAcked+1, unknowns[keyAccount])
	}

	// The offline sign-ins kept their time and host.
	early := f.psqlInt(t, fmt.Sprintf(`SELECT count(*) FROM audit WHERE account = '%s' AND outcome = 'ok' AND host = 'ws-a'
		AND detail LIKE '%%(offline)' AND time >= '%s' AND time < '%s'`, keyAccount, stoppedAt.UTC().Format(time.RFC3339Nano), restartedAt.UTC().Format(time.RFC3339Nano)))
	if early < int64(keyAckedOffline) {
		t.Errorf("%d offline key sign-ins in the audit log with their time while the database was down and A's name, want at least %d (down %s to %s):\n%s",
			early, keyAckedOffline, stoppedAt.UTC().Format(time.RFC3339Nano), restartedAt.UTC().Format(time.RFC3339Nano),
			strings.Join(f.psql(t, fmt.Sprintf(`SELECT seq||','||host||','||time||','||replace(coalesce(detail, ''), ' ', '_') FROM audit WHERE account = '%s' ORDER BY seq`, keyAccount)), "\n"))
	}
	if cloned := f.psql(t, fmt.Sprintf(`SELECT possibly_cloned, sign_count >= %d FROM credentials WHERE account = '%s'`, keyBefore+int64(keyAckedOffline), keyAccount)); len(cloned) != 1 || cloned[0] != "f|t" {
		t.Errorf("the key's credential after reconciling (possibly_cloned, count merged): %v", cloned)
	}

	// No code accepted twice: the accepted codes, sent again, are refused
	// by both daemons (the last 30 of each token: older ones lie below
	// its look-ahead window anyway).
	for i := range nHOTP {
		for c := range acked[i] {
			if len(acked[i]) > 30 && acked[i][c+30] > 0 {
				continue
			}
			for _, d := range daemons {
				cl := &client.Client{Socket: d.sock}
				_, err := cl.Authenticate(ctx, api.Authenticate{Account: hotpAccount(i), Code: hotp(i, c)})
				cl.Close()
				if o, why := classify(err); o != spent {
					t.Errorf("%s: counter %d accepted before, sent again: %v %s", hotpAccount(i), c, o, why)
				}
			}
		}
	}
	for _, w := range []*world{f.a, f.b} {
		var info api.Info
		w.must(w.as("", "GET", "/v1/info", "", &info), 200)
		if info.Store.State != "online" {
			t.Errorf("after the database came back: %+v", info.Store)
		}
	}

	// A's queue is empty.
	f.a.d.stop()
	db, err := bolt.Open(filepath.Join(f.a.d.state, "mfad-local.db"), 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte("queue")); b == nil || b.Stats().KeyN != 0 {
			t.Errorf("A's offline queue after reconciling: %v", b)
		}
		return nil
	})
}

// TestFleetStartWithoutDatabase: with the database stopped, a host that
// never used it is refused at start, naming the fix; a host that did
// starts offline (TestFleetDatabaseStoppedUnderLoad signs in on it).
func TestFleetStartWithoutDatabase(t *testing.T) {
	f := newFleet(t)
	if err := f.pg.Stop(); err != nil {
		t.Fatal(err)
	}
	dir := f.stateDir(t, f.key)
	cfg := filepath.Join(dir, "mfad.toml")
	os.WriteFile(cfg, []byte(f.config(fmt.Sprintf("dsn = %q", f.dsn))), 0o644)
	var stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(binDir, "mfad"), "--config", cfg, "--state-dir", dir, "--socket", filepath.Join(dir, "s.sock"))
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "never used that database") ||
		!strings.Contains(stderr.String(), "start the database") || strings.Contains(stderr.String(), f.pg.Password) {
		t.Errorf("a new host with the database stopped: %v\n%s", err, stderr.String())
	}
	// B, which was online, stops and starts again while the database is
	// down: offline, and online by itself once the database is back.
	f.b.d.stop()
	f.b.d.start(f.b.d.args...)
	var info api.Info
	f.b.must(f.b.as("", "GET", "/v1/info", "", &info), 200)
	if info.Store.State != "offline" {
		t.Errorf("B started without its database: %+v", info.Store)
	}
	f.b.refused(f.b.as("", "POST", "/v1/accounts", `{"name":"load-new","kind":"member"}`, nil), api.CodeStoreOffline)
	if err := f.pg.Restart(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		f.b.must(f.b.as("", "GET", "/v1/info", "", &info), 200)
		if info.Store.State == "online" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B did not go online once the database was back: %+v\n%s", info.Store, f.b.d.stderr.String())
		}
	}
	f.b.must(f.b.as("", "POST", "/v1/accounts", `{"name":"load-new","kind":"member"}`, nil), 201)
}
