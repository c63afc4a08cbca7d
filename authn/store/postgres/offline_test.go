package postgres

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

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
