package postgres

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/authn/store/postgres/pgtest"
	"github.com/mfad/mfad/authn/store/storetest"
	"github.com/mfad/mfad/authn/totp"
)

// stoppable is the package's second cluster, for the tests that stop and
// start their server (the shared one serves the rest); TestMain closes it.
var stoppable *pgtest.Server

// ownCluster returns the stoppable cluster, running, with a fresh database.
func ownCluster(t *testing.T) (*pgtest.Server, string) {
	t.Helper()
	bin := pgtest.Need(t)
	if stoppable == nil {
		srv, err := pgtest.Start(bin)
		if err != nil {
			t.Fatal(err)
		}
		stoppable = srv
	}
	if !stoppable.Running() {
		if err := stoppable.Restart(); err != nil {
			t.Fatal(err)
		}
	}
	dsn, err := stoppable.CreateDB()
	if err != nil {
		t.Fatal(err)
	}
	return stoppable, dsn
}

func wantOffline(t *testing.T, err error, what string) {
	t.Helper()
	var e *authn.Error
	if !errors.As(err, &e) || e.Code != CodeStoreOffline {
		t.Errorf("%s offline: %v, want %s", what, err, CodeStoreOffline)
	}
}

// signIn is what authn's pipeline writes for a security key's sign-in:
// the new signature count, the last use, an audit entry.
func signIn(s authn.Store, account, id string, count uint32, at time.Time) error {
	return s.Update(context.Background(), func(t authn.Tx) error {
		a, err := t.Account(account)
		if err != nil {
			return err
		}
		if err := t.PutAccount(a); err != nil { // unchanged: allowed offline
			return err
		}
		d, err := t.Device(account, id)
		if err != nil {
			return err
		}
		if count <= d.FIDO.SignCount {
			return errors.New("signature count did not increase")
		}
		d.FIDO.SignCount, d.LastUsedAt = count, at
		if err := t.PutDevice(d); err != nil {
			return err
		}
		return t.AppendAudit(&authn.AuditEvent{Time: at, Action: authn.ActAuthenticate, Outcome: "ok", Account: account, Device: id})
	})
}

// TestOfflineFIDOSignInsAndReconcile: with the database stopped, a host
// signs in the security keys of accounts it saw recently and refuses
// everything else with store_offline; on reconnect its outcomes reach the
// database (counters as maxima, audit entries with their original time and
// host), and a counter that went backwards across hosts flags the key.
func TestOfflineFIDOSignInsAndReconcile(t *testing.T) {
	srv, dsn := ownCluster(t)
	ctx := context.Background()
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0).UTC()}
	a, err := openOpts(dsn, storetest.Key(), Options{Host: "ws-a", Now: clk.Now, ProbeEvery: time.Hour,
		LocalPath: filepath.Join(t.TempDir(), "local.db"), Offline: OfflineOptions{FIDO: true, MaxAge: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := openOpts(dsn, storetest.Key(), Options{Host: "ws-b", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	key := &authn.Device{ID: "k1", Account: "alice", Type: authn.DeviceFIDO, State: authn.StateActive,
		FIDO: &authn.FIDOState{CredentialID: []byte{1}, PublicKey: []byte{2}, Alg: -7, SignCount: 10}}
	if err := b.Update(ctx, func(t authn.Tx) error {
		for _, n := range []string{"alice", "bob"} {
			if err := t.PutAccount(&authn.Account{Name: n, Kind: authn.KindMember}); err != nil {
				return err
			}
		}
		if err := t.PutDevice(key); err != nil {
			return err
		}
		bobKey := *key
		bobKey.Account = "bob"
		if err := t.PutDevice(&bobKey); err != nil {
			return err
		}
		return t.PutDevice(&authn.Device{ID: "t1", Account: "alice", Type: authn.DeviceTOTP, State: authn.StateActive,
			Secret: []byte("0123456789abcdefghij"), OTP: &authn.OTPState{Algorithm: "SHA1", Digits: 6, Period: 30}})
	}); err != nil {
		t.Fatal(err)
	}
	// A sees alice (as a sign-in reads her), never bob.
	if err := a.View(func(t authn.Tx) error {
		if _, err := t.Account("alice"); err != nil {
			return err
		}
		_, err := t.Devices("alice")
		return err
	}); err != nil {
		t.Fatal(err)
	}

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute)
	t1 := clk.Now()
	if err := signIn(a, "alice", "k1", 11, t1); err != nil {
		t.Fatalf("security key sign-in offline: %v", err)
	}
	if online, since := a.Status(); online || since.IsZero() {
		t.Errorf("status offline: online=%v since=%v", online, since)
	}
	a.View(func(tx authn.Tx) error {
		devs, err := tx.Devices("alice")
		if err != nil || len(devs) != 1 || devs[0].ID != "k1" || devs[0].FIDO.SignCount != 11 {
			t.Errorf("alice's devices offline: %+v %v (only the key, at its new count)", devs, err)
		}
		_, err = tx.Account("bob")
		wantOffline(t, err, "an account never seen on this host")
		return nil
	})
	if err := signIn(a, "alice", "k1", 11, t1); err == nil {
		t.Error("the same signature count accepted twice offline")
	}
	wantOffline(t, a.Update(ctx, func(t authn.Tx) error {
		acct, _ := t.Account("alice")
		acct.FailedAttempts++
		return t.PutAccount(acct)
	}), "counting a failure")
	wantOffline(t, a.Update(ctx, func(t authn.Tx) error {
		return t.PutDevice(&authn.Device{ID: "new", Account: "alice", Type: authn.DeviceFIDO, FIDO: &authn.FIDOState{}})
	}), "enrolling")
	wantOffline(t, a.Update(ctx, func(t authn.Tx) error {
		d, _ := t.Device("alice", "k1")
		d.State = authn.StateDeactivated
		return t.PutDevice(d)
	}), "deactivating")
	wantOffline(t, a.Update(ctx, func(t authn.Tx) error { return t.DeleteAccount("alice") }), "deleting")

	// Back online: the outcome reaches the database with its time and host.
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := a.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	b.Pool().Reset() // its connections died with the server
	var count int64
	var host string
	var at time.Time
	if err := b.Pool().QueryRow(ctx, `SELECT c.sign_count, a.host, a.time FROM credentials c, audit a
		WHERE c.device_id = 'k1' AND c.account = 'alice' AND a.device = 'k1' AND a.detail LIKE '%(offline)'`).Scan(&count, &host, &at); err != nil {
		t.Fatalf("offline sign-in not in the database: %v", err)
	}
	if count != 11 || host != "ws-a" || !at.Equal(t1) {
		t.Errorf("reconciled: count %d host %s time %v, want 11 ws-a %v", count, host, at, t1)
	}
	if a.cache.pending() != 0 {
		t.Errorf("%d entries still queued after reconciling", a.cache.pending())
	}
	b.View(func(tx authn.Tx) error {
		if d, err := tx.Device("alice", "k1"); err != nil || d.FIDO.PossiblyCloned || !d.LastUsedAt.Equal(t1) {
			t.Errorf("key after reconciling this host's own offline use: %+v %v %v, want not flagged", d.FIDO, d.LastUsedAt, err)
		}
		return nil
	})

	// Offline again: A accepts 12; meanwhile the fleet had seen 12 before
	// that (on B): a counter going backwards across hosts.
	srv.Stop()
	clk.Add(time.Minute)
	if err := signIn(a, "alice", "k1", 12, clk.Now()); err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	if err := a.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := signIn(b, "alice", "k1", 12, clk.Now().Add(-30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := a.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	b.View(func(tx authn.Tx) error {
		d, err := tx.Device("alice", "k1")
		if err != nil || !d.FIDO.PossiblyCloned {
			t.Errorf("key after a counter went backwards across hosts: %+v %v, want possibly_cloned", d.FIDO, err)
		}
		return nil
	})

	// Past the maximum age, a cached account is not used offline.
	srv.Stop()
	clk.Add(2 * time.Hour)
	wantOffline(t, signIn(a, "alice", "k1", 20, clk.Now()), "an account seen too long ago")
}

// TestOfflineOTP: with offline codes turned on, a TOTP device that signed
// in on this host signs in offline with its next code (once), and the
// counter reaches the fleet on reconnect; a host with offline codes off
// refuses the code with store_offline.
func TestOfflineOTP(t *testing.T) {
	srv, dsn := ownCluster(t)
	ctx := context.Background()
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0).UTC()}
	open := func(name string, off OfflineOptions) *host {
		st, err := openOpts(dsn, storetest.Key(), Options{Host: name, Now: clk.Now, ProbeEvery: time.Hour,
			LocalPath: filepath.Join(t.TempDir(), "local.db"), Offline: off})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return &host{st: st, svc: authn.NewService(st, authn.Config{Now: clk.Now, Policy: authn.Policy{MaxFailures: 100, LockoutAfter: 100}})}
	}
	a := open("ws-a", OfflineOptions{FIDO: true, OTP: true, MaxAge: time.Hour})
	b := open("ws-b", OfflineOptions{FIDO: true, MaxAge: time.Hour})
	d, secret := enroll(t, a, clk)
	clk.Add(30 * time.Second)
	if _, err := b.svc.Authenticate(ctx, alice, authn.AuthRequest{Account: "alice", Code: code(clk, secret, 0)}, nil); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	clk.Add(30 * time.Second)
	c := code(clk, secret, 0)
	wantOffline(t, func() error {
		_, err := b.svc.Authenticate(ctx, alice, authn.AuthRequest{Account: "alice", Code: c}, nil)
		return err
	}(), "a code on a host with offline codes off")
	if _, err := a.svc.Authenticate(ctx, alice, authn.AuthRequest{Account: "alice", Code: c}, nil); err != nil {
		t.Fatalf("a code offline on the host the device signed in on: %v", err)
	}
	if _, err := a.svc.Authenticate(ctx, alice, authn.AuthRequest{Account: "alice", Code: c}, nil); err == nil {
		t.Fatal("the same code accepted twice offline")
	}

	srv.Restart()
	if err := a.st.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.st.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	b.st.Pool().Reset()
	b.st.View(func(tx authn.Tx) error {
		got, err := tx.Device("alice", d.ID)
		if err != nil || got.OTP.LastCounter != uint64(totp.StepAt(clk.Now(), 30*time.Second)) {
			t.Errorf("device after reconciling: %+v %v, want the counter of the offline code", got.OTP, err)
		}
		return nil
	})
	if _, err := b.svc.Authenticate(ctx, alice, authn.AuthRequest{Account: "alice", Code: c}, nil); err == nil {
		t.Fatal("the code used offline on A was accepted on B after reconciling")
	}
}

// TestStartOffline: a host that was online with the database and keeps an
// offline cache starts while the database is out of reach: offline, its
// key checked against the key-check value it kept, its security keys
// signing in, the fleet's settings answered from its copy. Once the
// database answers it checks the schema and key before going online (a
// newer schema keeps it offline, saying why) and then replays its queue. A
// host that never used the database, one without an offline cache, and
// one with another key are refused, each naming the fix.
func TestStartOffline(t *testing.T) {
	srv, dsn := ownCluster(t)
	ctx := context.Background()
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0).UTC()}
	local := filepath.Join(t.TempDir(), "local.db")
	var logs syncLog
	opts := Options{Host: "ws-a", Now: clk.Now, ProbeEvery: time.Hour, LocalPath: local,
		Offline: OfflineOptions{FIDO: true, MaxAge: time.Hour}, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	a, err := openOpts(dsn, storetest.Key(), opts)
	if err != nil {
		t.Fatal(err)
	}
	key := &authn.Device{ID: "k1", Account: "alice", Type: authn.DeviceFIDO, State: authn.StateActive,
		FIDO: &authn.FIDOState{CredentialID: []byte{1}, PublicKey: []byte{2}, Alg: -7, SignCount: 10}}
	if err := a.Update(ctx, func(t authn.Tx) error {
		if err := t.PutAccount(&authn.Account{Name: "alice", Kind: authn.KindMember}); err != nil {
			return err
		}
		return t.PutDevice(key)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetMetaOnce("rp_id", "pam://fleet"); err != nil {
		t.Fatal(err)
	}
	if err := a.View(func(t authn.Tx) error { _, err := t.Devices("alice"); return err }); err != nil {
		t.Fatal(err)
	}
	a.Close()

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	refused := func(what string, key []byte, o Options, want string) {
		t.Helper()
		s, err := openOpts(dsn, key, o)
		if err == nil {
			s.Close()
			t.Fatalf("%s: opened with the database stopped", what)
		}
		if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "password=") {
			t.Errorf("%s: %v, want %q", what, err, want)
		}
	}
	fresh := opts
	fresh.LocalPath = filepath.Join(t.TempDir(), "other.db")
	refused("a host that never used the database", storetest.Key(), fresh, "never used that database")
	noCache := opts
	noCache.Offline = OfflineOptions{}
	refused("a host without an offline cache", storetest.Key(), noCache, "[store.offline]")
	other := storetest.Key()
	other[0] ^= 1
	refused("a host with another key", other, opts, "another master key")

	a, err = openOpts(dsn, storetest.Key(), opts)
	if err != nil {
		t.Fatalf("start offline with a cache: %v", err)
	}
	defer a.Close()
	if online, since := a.Status(); online || !since.Equal(clk.Now()) {
		t.Errorf("status after an offline start: online=%v since=%v", online, since)
	}
	if rp, err := a.SetMetaOnce("rp_id", "pam://elsewhere"); err != nil || rp != "pam://fleet" {
		t.Errorf("the fleet's rp_id offline: %q %v", rp, err)
	}
	wantOffline(t, func() error { _, err := a.SetMetaOnce("never_read", "x"); return err }(), "a setting never read")
	clk.Add(time.Minute)
	t1 := clk.Now()
	if err := signIn(a, "alice", "k1", 11, t1); err != nil {
		t.Fatalf("a security key after an offline start: %v", err)
	}

	// The database answers again, with a schema newer than this mfad: the
	// host stays offline and says why.
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	setSchema := func(v string) {
		t.Helper()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `UPDATE mfad_meta SET value = $1 WHERE key = 'schema'`, v); err != nil {
			t.Fatal(err)
		}
	}
	setSchema("99")
	if err := a.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	a.recheck(ctx)
	if online, _ := a.Status(); online {
		t.Fatal("online on a database with a newer schema")
	}
	if !strings.Contains(logs.String(), "newer than this mfad") {
		t.Errorf("the log does not say why the host stays offline:\n%s", logs.String())
	}
	if err := signIn(a, "alice", "k1", 12, clk.Now()); err != nil {
		t.Fatalf("offline while the database cannot be used: %v", err)
	}

	setSchema("1")
	a.recheck(ctx)
	if online, _ := a.Status(); !online {
		t.Fatalf("still offline once the database can be used:\n%s", logs.String())
	}
	if err := a.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	var count int64
	var offline int
	if err := a.Pool().QueryRow(ctx, `SELECT (SELECT sign_count FROM credentials WHERE account = 'alice'),
		(SELECT count(*) FROM audit WHERE host = 'ws-a' AND detail LIKE '%(offline)')`).Scan(&count, &offline); err != nil {
		t.Fatal(err)
	}
	if count != 12 || offline != 2 || a.cache.pending() != 0 {
		t.Errorf("after reconnecting: sign_count %d, %d offline entries, %d queued; want 12, 2, 0", count, offline, a.cache.pending())
	}
}

// syncLog is a log destination safe for the prober's goroutine.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
