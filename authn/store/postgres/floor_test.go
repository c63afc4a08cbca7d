package postgres

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/authn/store/postgres/pgtest"
	"github.com/mfad/mfad/authn/store/storetest"
)

// TestFloorRefusesCodesSeenBeforeARestore: the database is set back to
// before a sign-in (a restore to an older point); the host that accepted
// the code refuses it again from its own floor, while a host without that
// memory would accept it.
func TestFloorRefusesCodesSeenBeforeARestore(t *testing.T) {
	dsn := pgtest.DB(t)
	ctx := context.Background()
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0).UTC()}
	open := func(name, floorPath string) *host {
		st, err := openOpts(dsn, storetest.Key(), Options{Host: name, LocalPath: floorPath})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return &host{st: st, svc: authn.NewService(st, authn.Config{Now: clk.Now, Policy: authn.Policy{MaxFailures: 100, LockoutAfter: 100}})}
	}
	floorPath := filepath.Join(t.TempDir(), "floor.db")
	a := open("ws-a", floorPath)
	d, secret := enroll(t, a, clk)

	var before []byte
	if err := a.st.Pool().QueryRow(ctx, `SELECT record FROM devices WHERE id = $1`, d.ID).Scan(&before); err != nil {
		t.Fatal(err)
	}
	clk.Add(30 * time.Second)
	c := code(clk, secret, 0)
	if _, err := a.svc.Authenticate(ctx, alice, authn.AuthRequest{Account: "alice", Code: c}, nil); err != nil {
		t.Fatal(err)
	}
	restore := func() {
		t.Helper()
		if _, err := a.st.Pool().Exec(ctx, `UPDATE devices SET record = $1 WHERE id = $2`, before, d.ID); err != nil {
			t.Fatal(err)
		}
	}
	restore()
	// The floor survives a restart of the host.
	a.st.Close()
	a = open("ws-a", floorPath)
	_, err := a.svc.Authenticate(ctx, alice, authn.AuthRequest{Account: "alice", Code: c}, nil)
	if ec := errCode(err); ec != authn.CodeInvalidCode && ec != "code_already_used" {
		t.Fatalf("the host that accepted the code, after the restore: %v, want it refused", err)
	}
	// A host that never saw the code has nothing but the restored database.
	restore()
	b := open("ws-b", "")
	if _, err := b.svc.Authenticate(ctx, alice, authn.AuthRequest{Account: "alice", Code: c}, nil); err != nil {
		t.Fatalf("a host without the floor refused the code (the restore did not set the counter back?): %v", err)
	}
}

// TestFloorSignCount: a security key's signature count is raised to the
// floor too, and the floor never goes down.
func TestFloorSignCount(t *testing.T) {
	f, err := openFloor(filepath.Join(t.TempDir(), "floor.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	k := floorKey("alice", "k1")
	if err := f.raise(map[string]floorVal{k: {signCount: 40}}); err != nil {
		t.Fatal(err)
	}
	f.raise(map[string]floorVal{k: {signCount: 12}})
	d := &authn.Device{Account: "alice", ID: "k1", FIDO: &authn.FIDOState{SignCount: 30}}
	f.apply(d)
	if d.FIDO.SignCount != 40 {
		t.Fatalf("sign count %d, want the floor's 40", d.FIDO.SignCount)
	}
	other := &authn.Device{Account: "alice", ID: "k2", FIDO: &authn.FIDOState{SignCount: 3}}
	f.apply(other)
	if other.FIDO.SignCount != 3 {
		t.Fatalf("another key raised to %d", other.FIDO.SignCount)
	}
}
