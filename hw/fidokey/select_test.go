package fidokey_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mfad/mfad/hw/ctap2"
	"github.com/mfad/mfad/hw/emu"
	"github.com/mfad/mfad/hw/fidokey"
)

func TestSelectByTouch(t *testing.T) {
	checkLeaks(t)
	cfg := emu.Config{Presence: emu.PresenceManual, PresenceTimeout: time.Hour}
	ekA, kA := attach(t, cfg)
	ekB, kB := attach(t, cfg)
	ekC, kC := attach(t, cfg) // holds no credential
	ekA.SetPresence(emu.PresenceAuto)
	ekB.SetPresence(emu.PresenceAuto)
	a := register(t, ekA, kA, mcParams("alice"))
	b := register(t, ekB, kB, mcParams("alice"))
	ekA.SetPresence(emu.PresenceManual)
	ekB.SetPresence(emu.PresenceManual)
	q := cdh("sign in")
	allow := [][]byte{a.id, b.id}

	// Both keys wait for a touch; the user touches B once it asks.
	upB := newKeepalives()
	touchWhenAsked(t, upB, ekB)
	won, as, err := fidokey.SelectByTouch(tctx(t), []*fidokey.Key{kA, kB}, func(ctx context.Context, k *fidokey.Key) ([]*ctap2.GetAssertionResponse, error) {
		p := fidokey.GetAssertionParams{RPID: rpID, ClientDataHash: q, AllowList: allow, UP: true}
		if k == kB {
			p.OnKeepalive = upB.On
		}
		return k.GetAssertion(ctx, p)
	})
	if err != nil {
		t.Fatal(err)
	}
	if won != kB {
		t.Fatal("the touched key did not win")
	}
	checkAssertion(t, b, as[0], rpID, q)
	waitFor(t, "key A to be cancelled", func() bool { return ekA.Cancellations() == 1 })
	if ekB.Cancellations() != 0 {
		t.Error("the winner was cancelled")
	}

	// A key without the credentials drops out at once; A is touched.
	upA := newKeepalives()
	touchWhenAsked(t, upA, ekA)
	won, as, err = fidokey.SelectAssertion(tctx(t), []*fidokey.Key{kC, kA}, fidokey.GetAssertionParams{RPID: rpID, ClientDataHash: q, AllowList: [][]byte{a.id}, UP: true, OnKeepalive: upA.On})
	if err != nil {
		t.Fatal(err)
	}
	if won != kA {
		t.Fatal("key A did not win")
	}
	checkAssertion(t, a, as[0], rpID, q)
	if ekC.Cancellations() != 0 {
		t.Error("key C waited for a touch without credentials")
	}

	// No key holds the credential.
	_, _, err = fidokey.SelectAssertion(tctx(t), []*fidokey.Key{kC, kB}, fidokey.GetAssertionParams{RPID: rpID, ClientDataHash: q, AllowList: [][]byte{a.id}, UP: true})
	if !errors.Is(err, ctap2.ErrNoCredentials) {
		t.Errorf("no credentials anywhere: %v", err)
	}
	if _, _, err := fidokey.SelectAssertion(tctx(t), nil, fidokey.GetAssertionParams{}); !errors.Is(err, fidokey.ErrNoKeys) {
		t.Errorf("no keys: %v", err)
	}

	// The caller gives up: every key is cancelled.
	ctx, cancel := context.WithCancel(tctx(t))
	waiting := newKeepalives()
	go func() {
		<-waiting.upNeeded
		cancel()
	}()
	_, _, err = fidokey.SelectAssertion(ctx, []*fidokey.Key{kB}, fidokey.GetAssertionParams{RPID: rpID, ClientDataHash: q, AllowList: allow, UP: true, OnKeepalive: waiting.On})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled selection: %v", err)
	}
	waitFor(t, "key B to be cancelled", func() bool { return ekB.Cancellations() == 1 })
}
