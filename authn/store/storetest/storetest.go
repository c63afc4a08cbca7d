// Package storetest is the behaviour suite every authn.Store backend
// passes: the Tx contract authn relies on, run unchanged against bbolt and
// PostgreSQL.
//
// It may import authn and the standard library.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfad/mfad/authn"
)

// Backend opens stores on one database per test.
type Backend struct {
	// New prepares a fresh, empty database for t and returns an opener:
	// every store it opens works on that same database (bbolt closes the
	// previous one first when its file lock demands it).
	New func(t *testing.T) Opener
	// Shared says two stores may be open on one database at once (a fleet).
	Shared bool
}

// Opener opens a store on the test's database with key and an audit
// retention (0: the backend's default).
type Opener func(key []byte, retention uint64) (authn.Store, io.Closer, error)

// Key is the suite's master key; OtherKey another one.
func Key() []byte      { return bytes.Repeat([]byte{7}, 32) }
func OtherKey() []byte { return bytes.Repeat([]byte{9}, 32) }

// Run runs every contract test against b.
func Run(t *testing.T, b Backend) {
	tests := []struct {
		name string
		f    func(*testing.T, Backend)
	}{
		{"AccountRoundTripAndDelete", accountRoundTripAndDelete},
		{"DevicesAndSecrets", devicesAndSecrets},
		{"ActiveOTPDevices", activeOTPDevices},
		{"Tokens", tokens},
		{"AnotherKeyNeverOpensSecrets", anotherKey},
		{"FailedUpdateLeavesNothing", failedUpdateLeavesNothing},
		{"UpdatePanicIsAnError", updatePanicIsAnError},
		{"AuditRetentionAndPaging", auditRetentionAndPaging},
		{"CounterMovesOnce", counterMovesOnce},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.f(t, b) })
	}
}

func open(t *testing.T, o Opener, retention uint64) authn.Store {
	t.Helper()
	s, c, err := o(Key(), retention)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return s
}

func update(t *testing.T, s authn.Store, fn func(authn.Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func otpDevice(account, id string) *authn.Device {
	return &authn.Device{ID: id, Account: account, Type: authn.DeviceTOTP, State: authn.StateActive,
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Secret: []byte("0123456789abcdefghij"),
		OTP: &authn.OTPState{Algorithm: "SHA1", Digits: 6, Period: 30, LastCounter: 100, Used: true, Drift: -1}}
}

func accountRoundTripAndDelete(t *testing.T, b Backend) {
	s := open(t, b.New(t), 0)
	a := &authn.Account{Name: "alice", Kind: authn.KindOwner, Email: "a@example.org", Flags: []string{authn.FlagDisabled},
		FailedAttempts: 2, LockedUntil: time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)}
	update(t, s, func(t authn.Tx) error {
		if err := t.PutAccount(a); err != nil {
			return err
		}
		if err := t.PutAccount(&authn.Account{Name: "bob", Kind: authn.KindMember}); err != nil {
			return err
		}
		return t.PutDevice(otpDevice("alice", "d1"))
	})
	s.View(func(tx authn.Tx) error {
		got, err := tx.Account("alice")
		if err != nil || got.Email != a.Email || got.Kind != authn.KindOwner || !got.HasFlag(authn.FlagDisabled) ||
			got.FailedAttempts != 2 || !got.LockedUntil.Equal(a.LockedUntil) {
			t.Errorf("Account = %+v, %v", got, err)
		}
		if _, err := tx.Account("carol"); !errors.Is(err, authn.ErrNotFound) {
			t.Errorf("missing account: %v, want ErrNotFound", err)
		}
		all, err := tx.Accounts()
		if err != nil || len(all) != 2 {
			t.Errorf("Accounts = %v, %v", all, err)
		}
		return nil
	})
	update(t, s, func(t authn.Tx) error { return t.DeleteAccount("alice") })
	s.View(func(tx authn.Tx) error {
		if _, err := tx.Account("alice"); !errors.Is(err, authn.ErrNotFound) {
			t.Errorf("deleted account: %v", err)
		}
		if devs, err := tx.Devices("alice"); err != nil || len(devs) != 0 {
			t.Errorf("devices survived account deletion: %v %v", devs, err)
		}
		return nil
	})
}

func devicesAndSecrets(t *testing.T, b Backend) {
	s := open(t, b.New(t), 0)
	fido := &authn.Device{ID: "k1", Account: "alice", Type: authn.DeviceFIDO, State: authn.StatePending,
		FIDO: &authn.FIDOState{CredentialID: []byte{1, 2, 3}, PublicKey: []byte{4, 5}, Alg: -7, AAGUID: "x", SignCount: 9}}
	update(t, s, func(t authn.Tx) error {
		if err := t.PutAccount(&authn.Account{Name: "alice", Kind: authn.KindOwner}); err != nil {
			return err
		}
		if err := t.PutDevice(otpDevice("alice", "d1")); err != nil {
			return err
		}
		return t.PutDevice(fido)
	})
	s.View(func(tx authn.Tx) error {
		d, err := tx.Device("alice", "d1")
		if err != nil || !bytes.Equal(d.Secret, otpDevice("", "").Secret) || *d.OTP != *otpDevice("", "").OTP ||
			!d.CreatedAt.Equal(otpDevice("", "").CreatedAt) {
			t.Errorf("Device = %+v, %v", d, err)
		}
		k, err := tx.Device("alice", "k1")
		if err != nil || k.Secret != nil || k.FIDO == nil || !bytes.Equal(k.FIDO.CredentialID, []byte{1, 2, 3}) || k.FIDO.SignCount != 9 {
			t.Errorf("FIDO device = %+v, %v", k, err)
		}
		devs, err := tx.Devices("alice")
		if err != nil || len(devs) != 2 {
			t.Errorf("Devices = %d, %v", len(devs), err)
		}
		if _, err := tx.Device("alice", "nope"); !errors.Is(err, authn.ErrNotFound) {
			t.Errorf("missing device: %v", err)
		}
		if devs, err := tx.Devices("nobody"); err != nil || len(devs) != 0 {
			t.Errorf("Devices of an unknown account = %v, %v", devs, err)
		}
		return nil
	})
	// State changes and deletion.
	update(t, s, func(t authn.Tx) error {
		d, err := t.Device("alice", "k1")
		if err != nil {
			return err
		}
		d.State, d.FIDO.SignCount = authn.StateActive, 10
		return t.PutDevice(d)
	})
	update(t, s, func(t authn.Tx) error { return t.DeleteDevice("alice", "d1") })
	err := s.Update(context.Background(), func(t authn.Tx) error { return t.DeleteDevice("alice", "d1") })
	if !errors.Is(err, authn.ErrNotFound) {
		t.Errorf("deleting an absent device: %v, want ErrNotFound", err)
	}
	s.View(func(tx authn.Tx) error {
		devs, _ := tx.Devices("alice")
		if len(devs) != 1 || devs[0].State != authn.StateActive || devs[0].FIDO.SignCount != 10 {
			t.Errorf("after changes: %+v", devs)
		}
		return nil
	})
}

// activeOTPDevices: what a sign-in reads of an account's devices is its
// active OTP devices as Devices has them, secrets opened, and how many of
// its devices are active, security keys included.
func activeOTPDevices(t *testing.T, b Backend) {
	s := open(t, b.New(t), 0)
	hotp := otpDevice("alice", "d2")
	hotp.Type, hotp.OTP.Event, hotp.OTP.Period = authn.DeviceHardwareOTP, true, 0
	pending, off := otpDevice("alice", "d3"), otpDevice("alice", "d4")
	pending.State, off.State = authn.StatePending, authn.StateDeactivated
	key := func(id string, state authn.DeviceState) *authn.Device {
		return &authn.Device{ID: id, Account: "alice", Type: authn.DeviceFIDO, State: state,
			FIDO: &authn.FIDOState{CredentialID: []byte(id), PublicKey: []byte{4, 5}, Alg: -7, AAGUID: "x", SignCount: 9}}
	}
	update(t, s, func(t authn.Tx) error {
		if err := t.PutAccount(&authn.Account{Name: "alice", Kind: authn.KindOwner}); err != nil {
			return err
		}
		for _, d := range []*authn.Device{key("k1", authn.StateActive), otpDevice("alice", "d1"), hotp, pending, off,
			key("k2", authn.StateDeactivated), key("k3", authn.StateActive)} {
			if err := t.PutDevice(d); err != nil {
				return err
			}
		}
		return nil
	})
	s.View(func(tx authn.Tx) error {
		otps, active, err := tx.ActiveOTPDevices("alice")
		if err != nil || active != 4 || len(otps) != 2 {
			t.Fatalf("ActiveOTPDevices = %d devices, %d active, %v; want d1 and d2, 4 active", len(otps), active, err)
		}
		for _, d := range otps {
			want, err := tx.Device("alice", d.ID)
			if err != nil || (d.ID != "d1" && d.ID != "d2") || !reflect.DeepEqual(&d, want) || len(d.Secret) == 0 {
				t.Errorf("ActiveOTPDevices has %+v, Device %+v (%v)", d, want, err)
			}
		}
		if otps, active, err := tx.ActiveOTPDevices("nobody"); err != nil || len(otps) != 0 || active != 0 {
			t.Errorf("ActiveOTPDevices of an unknown account = %v, %d, %v", otps, active, err)
		}
		return nil
	})
}

func tokens(t *testing.T, b Backend) {
	s := open(t, b.New(t), 0)
	tok := &authn.Token{Serial: "S1", Manufacturer: "Acme", OTP: authn.OTPState{Algorithm: "SHA1", Digits: 6, Event: true, LastCounter: 5},
		ImportedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Secret: []byte("tokensecret")}
	update(t, s, func(t authn.Tx) error {
		if err := t.PutToken(tok); err != nil {
			return err
		}
		return t.PutToken(&authn.Token{Serial: "S2", Secret: []byte("other")})
	})
	s.View(func(tx authn.Tx) error {
		got, err := tx.Token("S1")
		if err != nil || !bytes.Equal(got.Secret, tok.Secret) || got.OTP != tok.OTP || got.Manufacturer != "Acme" {
			t.Errorf("Token = %+v, %v", got, err)
		}
		if all, err := tx.Tokens(); err != nil || len(all) != 2 {
			t.Errorf("Tokens = %v, %v", all, err)
		}
		if _, err := tx.Token("S9"); !errors.Is(err, authn.ErrNotFound) {
			t.Errorf("missing token: %v", err)
		}
		return nil
	})
	update(t, s, func(t authn.Tx) error { return t.DeleteToken("S2") })
	s.View(func(tx authn.Tx) error {
		if all, _ := tx.Tokens(); len(all) != 1 {
			t.Errorf("after delete: %v", all)
		}
		return nil
	})
}

// anotherKey: a store opened with another master key either refuses to
// open or fails to read a secret; it never returns one.
func anotherKey(t *testing.T, b Backend) {
	o := b.New(t)
	s, c, err := o(Key(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(context.Background(), func(t authn.Tx) error {
		if err := t.PutAccount(&authn.Account{Name: "a", Kind: authn.KindOwner}); err != nil {
			return err
		}
		return t.PutDevice(otpDevice("a", "x"))
	}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	s2, c2, err := o(OtherKey(), 0)
	if err != nil {
		return // refused at open
	}
	defer c2.Close()
	err = s2.View(func(tx authn.Tx) error {
		d, err := tx.Device("a", "x")
		if err == nil {
			t.Errorf("device opened under another key: secret %q", d.Secret)
		}
		return err
	})
	if err == nil {
		t.Error("View under another key succeeded")
	}
}

func failedUpdateLeavesNothing(t *testing.T, b Backend) {
	s := open(t, b.New(t), 0)
	var wg sync.WaitGroup
	errs := make([]error, 32)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Update(context.Background(), func(t authn.Tx) error {
				if err := t.PutAccount(&authn.Account{Name: fmt.Sprintf("u%d", i), Kind: authn.KindMember}); err != nil {
					return err
				}
				if i%8 == 0 {
					return fmt.Errorf("refused %d", i)
				}
				return nil
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if (i%8 == 0) != (err != nil) {
			t.Errorf("update %d: err = %v", i, err)
		}
		if i%8 == 0 && err != nil && err.Error() != fmt.Sprintf("refused %d", i) {
			t.Errorf("update %d: err = %v, want fn's own error", i, err)
		}
	}
	s.View(func(tx authn.Tx) error {
		accts, _ := tx.Accounts()
		if len(accts) != 28 {
			t.Errorf("got %d accounts, want 28 (failed updates must leave nothing)", len(accts))
		}
		return nil
	})
}

func updatePanicIsAnError(t *testing.T, b Backend) {
	s := open(t, b.New(t), 0)
	if err := s.Update(context.Background(), func(authn.Tx) error { panic("boom") }); err == nil {
		t.Fatal("panic in update was not reported")
	}
	update(t, s, func(t authn.Tx) error { return t.PutAccount(&authn.Account{Name: "ok", Kind: authn.KindMember}) })
}

func auditRetentionAndPaging(t *testing.T, b Backend) {
	s := open(t, b.New(t), 5)
	for i := range 12 {
		update(t, s, func(t authn.Tx) error {
			e := &authn.AuditEvent{Action: fmt.Sprintf("a%d", i), Outcome: "ok", ActorUID: 1000, Account: "alice",
				Time: time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC)}
			if err := t.AppendAudit(e); err != nil {
				return err
			}
			if e.Seq == 0 {
				return errors.New("AppendAudit assigned no Seq")
			}
			return nil
		})
	}
	s.View(func(tx authn.Tx) error {
		all, err := tx.Audit(0, 100)
		if err != nil || len(all) != 5 || all[0].Action != "a7" || all[4].Action != "a11" {
			t.Errorf("retained %+v, %v", all, err)
			return nil
		}
		for i := 1; i < len(all); i++ {
			if all[i].Seq <= all[i-1].Seq {
				t.Errorf("audit not in Seq order: %+v", all)
			}
		}
		if e := all[4]; e.ActorUID != 1000 || e.Account != "alice" || !e.Time.Equal(time.Date(2026, 1, 1, 0, 0, 11, 0, time.UTC)) {
			t.Errorf("entry = %+v", e)
		}
		page, _ := tx.Audit(all[1].Seq, 2)
		if len(page) != 2 || page[0].Seq != all[2].Seq || page[1].Seq != all[3].Seq {
			t.Errorf("page after %d = %+v", all[1].Seq, page)
		}
		return nil
	})
}

// counterMovesOnce is replay protection at the store's level: many
// updates (on two stores when the backend is shared, as two hosts) each
// read a device and accept "its" counter only if no one moved it since the
// read, as authn does. Exactly one wins each round.
func counterMovesOnce(t *testing.T, b Backend) {
	o := b.New(t)
	stores := []authn.Store{open(t, o, 0)}
	if b.Shared {
		stores = append(stores, open(t, o, 0))
	}
	update(t, stores[0], func(t authn.Tx) error {
		if err := t.PutAccount(&authn.Account{Name: "alice", Kind: authn.KindOwner}); err != nil {
			return err
		}
		return t.PutDevice(otpDevice("alice", "d1"))
	})
	for round := range 5 {
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var read authn.OTPState
				stores[i%len(stores)].View(func(tx authn.Tx) error {
					d, err := tx.Device("alice", "d1")
					if err == nil {
						read = *d.OTP
					}
					return err
				})
				won := false
				err := stores[i%len(stores)].Update(context.Background(), func(tx authn.Tx) error {
					won = false
					d, err := tx.Device("alice", "d1")
					if err != nil {
						return err
					}
					if *d.OTP != read || d.OTP.LastCounter != uint64(100+round) {
						return nil // moved since the read: refused
					}
					d.OTP.LastCounter++
					won = true
					return tx.PutDevice(d)
				})
				if err != nil {
					t.Error(err)
				}
				if won {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Fatalf("round %d: the counter moved for %d updates, want exactly 1", round, n)
		}
	}
	stores[0].View(func(tx authn.Tx) error {
		if d, _ := tx.Device("alice", "d1"); d == nil || d.OTP.LastCounter != 105 {
			t.Errorf("final counter %+v", d)
		}
		return nil
	})
}
