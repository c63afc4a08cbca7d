package fidokey_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/mfad/mfad/hw/ctap2"
	"github.com/mfad/mfad/hw/ctaphid"
	"github.com/mfad/mfad/hw/emu"
	"github.com/mfad/mfad/hw/fidokey"
)

func TestGetInfo(t *testing.T) {
	checkLeaks(t)
	_, k := attach(t, emu.Config{})
	info := k.Info()
	for _, v := range []string{ctap2.VersionFIDO20, ctap2.VersionFIDO21, ctap2.VersionU2F} {
		if !slices.Contains(info.Versions, v) {
			t.Errorf("versions %v lack %s", info.Versions, v)
		}
	}
	if !bytes.Equal(info.AAGUID, emu.AAGUID[:]) {
		t.Errorf("AAGUID %x", info.AAGUID)
	}
	if !slices.Equal(info.PinUvAuthProtocols, []uint64{2, 1}) {
		t.Errorf("pinUvAuthProtocols %v", info.PinUvAuthProtocols)
	}
	for opt, want := range map[string]bool{"rk": true, "up": true, "clientPin": false, "pinUvAuthToken": true} {
		if v, ok := info.Option(opt); !ok || v != want {
			t.Errorf("option %s = %v (present %v), want %v", opt, v, ok, want)
		}
	}
	if _, ok := info.Option("uv"); ok {
		t.Error("uv listed without built-in UV")
	}
	var algs []ctap2.COSEAlgorithm
	for _, a := range info.Algorithms {
		algs = append(algs, a.Alg)
	}
	if !slices.Equal(algs, []ctap2.COSEAlgorithm{ctap2.AlgES256, ctap2.AlgEdDSA}) {
		t.Errorf("algorithms %v", algs)
	}
	if info.MaxMsgSize == 0 {
		t.Error("no maxMsgSize")
	}

	_, k2 := attach(t, emu.Config{Options: emu.Options{NoResidentKeys: true, NoClientPIN: true, UV: true}})
	info = k2.Info()
	if v, _ := info.Option("rk"); v {
		t.Error("rk with NoResidentKeys")
	}
	if _, ok := info.Option("clientPin"); ok {
		t.Error("clientPin with NoClientPIN")
	}
	if v, _ := info.Option("uv"); !v {
		t.Error("uv missing with UV")
	}
}

func TestMakeCredentialGetAssertion(t *testing.T) {
	checkLeaks(t)
	ek, k := attach(t, emu.Config{})
	for _, tc := range []struct {
		name     string
		alg      ctap2.COSEAlgorithm
		resident bool
	}{
		{"ES256", ctap2.AlgES256, false},
		{"EdDSA", ctap2.AlgEdDSA, false},
		{"ES256 resident", ctap2.AlgES256, true},
		{"EdDSA resident", ctap2.AlgEdDSA, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mcParams(tc.name)
			p.Algorithms = []ctap2.COSEAlgorithm{tc.alg}
			p.ResidentKey = tc.resident
			c := register(t, ek, k, p)
			if c.alg != tc.alg {
				t.Fatalf("credential alg %d, want %d", c.alg, tc.alg)
			}
			q := cdh("sign in " + tc.name)
			as, err := k.GetAssertion(tctx(t), fidokey.GetAssertionParams{RPID: rpID, ClientDataHash: q, AllowList: [][]byte{c.id}, UP: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(as) != 1 {
				t.Fatalf("%d assertions", len(as))
			}
			ad := checkAssertion(t, c, as[0], rpID, q)
			if !ad.Flags.Has(ctap2.FlagUP) || ad.Flags.Has(ctap2.FlagUV) {
				t.Errorf("flags %08b", ad.Flags)
			}
			if ad.SignCount <= c.sign {
				t.Errorf("counter %d after %d", ad.SignCount, c.sign)
			}
			if tc.resident != (as[0].User != nil) {
				t.Errorf("user %v for resident=%v", as[0].User, tc.resident)
			}
			// The credential is bound to its RP.
			_, err = k.GetAssertion(tctx(t), fidokey.GetAssertionParams{RPID: "other.example", ClientDataHash: q, AllowList: [][]byte{c.id}, UP: true})
			if !errors.Is(err, ctap2.ErrNoCredentials) {
				t.Errorf("other RP: %v", err)
			}
			// Silent assertion.
			as, err = k.GetAssertion(tctx(t), fidokey.GetAssertionParams{RPID: rpID, ClientDataHash: q, AllowList: [][]byte{c.id}})
			if err != nil {
				t.Fatal(err)
			}
			if ad := checkAssertion(t, c, as[0], rpID, q); ad.Flags.Has(ctap2.FlagUP) {
				t.Error("UP set on a silent assertion")
			}
		})
	}
	if n := ek.ResidentCredentials(); n != 2 {
		t.Errorf("%d resident credentials, want 2", n)
	}
}

func TestMakeCredentialErrors(t *testing.T) {
	checkLeaks(t)
	ek, k := attach(t, emu.Config{Options: emu.Options{NoResidentKeys: true}})
	c := register(t, ek, k, mcParams("alice"))

	p := mcParams("alice")
	p.ExcludeList = [][]byte{[]byte("unknown credential"), c.id}
	if _, err := k.MakeCredential(tctx(t), p); !errors.Is(err, ctap2.ErrCredentialExcluded) {
		t.Errorf("excludeList: %v", err)
	}
	p = mcParams("bob")
	p.ResidentKey = true
	if _, err := k.MakeCredential(tctx(t), p); !errors.Is(err, ctap2.ErrUnsupportedOption) {
		t.Errorf("rk without rk support: %v", err)
	}
	p = mcParams("bob")
	p.Algorithms = []ctap2.COSEAlgorithm{ctap2.AlgRS256}
	if _, err := k.MakeCredential(tctx(t), p); !errors.Is(err, ctap2.ErrUnsupportedAlgorithm) {
		t.Errorf("RS256: %v", err)
	}
	p = mcParams("bob")
	p.UV = true
	if _, err := k.MakeCredential(tctx(t), p); !errors.Is(err, ctap2.ErrInvalidOption) {
		t.Errorf("uv without built-in UV: %v", err)
	}
	var se ctap2.StatusError
	_, err := k.GetAssertion(tctx(t), fidokey.GetAssertionParams{RPID: rpID, ClientDataHash: cdh("x"), UP: true})
	if !errors.As(err, &se) || se != ctap2.ErrNoCredentials {
		t.Errorf("no resident credentials: %v", err)
	}
}

func TestBuiltInUV(t *testing.T) {
	checkLeaks(t)
	ek, k := attach(t, emu.Config{Options: emu.Options{UV: true}})
	p := mcParams("uv")
	p.UV = true
	resp, err := k.MakeCredential(tctx(t), p)
	if err != nil {
		t.Fatal(err)
	}
	c := checkAttestation(t, ek, resp, rpID, p.ClientDataHash)
	if ad, _ := ctap2.ParseAuthData(resp.AuthData); !ad.Flags.Has(ctap2.FlagUV) {
		t.Error("no UV flag")
	}
	as, err := k.GetAssertion(tctx(t), fidokey.GetAssertionParams{RPID: rpID, ClientDataHash: cdh("q"), AllowList: [][]byte{c.id}, UP: true, UV: true})
	if err != nil {
		t.Fatal(err)
	}
	if ad := checkAssertion(t, c, as[0], rpID, cdh("q")); !ad.Flags.Has(ctap2.FlagUV | ctap2.FlagUP) {
		t.Errorf("flags %08b", ad.Flags)
	}
}

func TestGetNextAssertion(t *testing.T) {
	checkLeaks(t)
	ek, k := attach(t, emu.Config{})
	var creds []credential
	for _, u := range []string{"alice", "bob"} {
		p := mcParams(u)
		p.ResidentKey = true
		creds = append(creds, register(t, ek, k, p))
	}
	// Another RP's credential is not listed.
	p := mcParams("carol")
	p.RP.ID = "other.example"
	p.ResidentKey = true
	register(t, ek, k, p)

	q := cdh("discoverable")
	as, err := k.GetAssertion(tctx(t), fidokey.GetAssertionParams{RPID: rpID, ClientDataHash: q, UP: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 2 || as[0].NumberOfCredentials != 2 {
		t.Fatalf("%d assertions, numberOfCredentials %d", len(as), as[0].NumberOfCredentials)
	}
	// Newest first: bob, then alice.
	var last uint32
	for i, want := range []struct {
		c    credential
		user string
	}{{creds[1], "id-bob"}, {creds[0], "id-alice"}} {
		ad := checkAssertion(t, want.c, as[i], rpID, q)
		if as[i].User == nil || string(as[i].User.ID) != want.user {
			t.Errorf("assertion %d: user %+v, want %s", i, as[i].User, want.user)
		}
		if ad.SignCount <= last {
			t.Errorf("assertion %d: counter %d after %d", i, ad.SignCount, last)
		}
		last = ad.SignCount
	}
	// GetNextAssertion without a GetAssertion before it.
	err = ctap2.Call(tctx(t), k.Channel(), ctap2.CmdGetNextAssertion, nil, &ctap2.GetAssertionResponse{}, nil)
	if !errors.Is(err, ctap2.ErrNotAllowed) {
		t.Errorf("lone GetNextAssertion: %v", err)
	}
}

func TestPIN(t *testing.T) {
	checkLeaks(t)
	ek, k := attach(t, emu.Config{})
	ctx := tctx(t)
	if _, err := k.MakeCredential(ctx, fidokey.MakeCredentialParams{ClientDataHash: cdh("x"), RP: ctap2.RPEntity{ID: rpID}, User: ctap2.UserEntity{ID: []byte{1}}, PIN: "1234"}); !errors.Is(err, ctap2.ErrPINNotSet) {
		t.Errorf("token without PIN: %v", err)
	}
	if err := k.SetPIN(ctx, "123"); !errors.Is(err, ctap2.ErrPINPolicyViolation) {
		t.Errorf("short PIN: %v", err)
	}
	if err := k.SetPIN(ctx, "1234"); err != nil {
		t.Fatal(err)
	}
	if v, _ := k.Info().Option("clientPin"); !v {
		t.Error("clientPin not true after setPIN")
	}
	if err := k.SetPIN(ctx, "5678"); !errors.Is(err, ctap2.ErrNotAllowed) {
		t.Errorf("second setPIN: %v", err)
	}
	if n, pc, err := k.PINRetries(ctx); err != nil || n != 8 || pc {
		t.Fatalf("retries %d %v %v", n, pc, err)
	}
	// MakeCredential needs the PIN now.
	if _, err := k.MakeCredential(ctx, mcParams("alice")); !errors.Is(err, ctap2.ErrPINRequired) {
		t.Errorf("MakeCredential without PIN: %v", err)
	}
	p := mcParams("alice")
	p.PIN = "1234"
	resp, err := k.MakeCredential(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	c := checkAttestation(t, ek, resp, rpID, p.ClientDataHash)
	if ad, _ := ctap2.ParseAuthData(resp.AuthData); !ad.Flags.Has(ctap2.FlagUV) {
		t.Error("MakeCredential with PIN: no UV flag")
	}
	q := cdh("q")
	as, err := k.GetAssertion(ctx, fidokey.GetAssertionParams{RPID: rpID, ClientDataHash: q, AllowList: [][]byte{c.id}, UP: true, PIN: "1234"})
	if err != nil {
		t.Fatal(err)
	}
	if ad := checkAssertion(t, c, as[0], rpID, q); !ad.Flags.Has(ctap2.FlagUV | ctap2.FlagUP) {
		t.Errorf("GetAssertion with PIN: flags %08b", ad.Flags)
	}
	// Without the PIN, an assertion has no UV.
	as, err = k.GetAssertion(ctx, fidokey.GetAssertionParams{RPID: rpID, ClientDataHash: q, AllowList: [][]byte{c.id}, UP: true})
	if err != nil {
		t.Fatal(err)
	}
	if ad := checkAssertion(t, c, as[0], rpID, q); ad.Flags.Has(ctap2.FlagUV) {
		t.Error("UV without PIN")
	}

	// A wrong PIN costs a retry; the right one gives them back.
	if _, err := k.GetAssertion(ctx, fidokey.GetAssertionParams{RPID: rpID, ClientDataHash: q, AllowList: [][]byte{c.id}, UP: true, PIN: "0000"}); !errors.Is(err, ctap2.ErrPINInvalid) {
		t.Errorf("wrong PIN: %v", err)
	}
	if n, _, _ := k.PINRetries(ctx); n != 7 {
		t.Errorf("retries %d after a wrong PIN", n)
	}
	if err := k.ChangePIN(ctx, "1234", "98765"); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := k.PINRetries(ctx); n != 8 {
		t.Errorf("retries %d after a right PIN", n)
	}
	if err := k.ChangePIN(ctx, "1234", "55555"); !errors.Is(err, ctap2.ErrPINInvalid) {
		t.Errorf("changePIN with the old PIN: %v", err)
	}
	if err := k.ChangePIN(ctx, "98765", "55"); !errors.Is(err, ctap2.ErrPINPolicyViolation) {
		t.Errorf("changePIN to a short PIN: %v", err)
	}

	// Soft lock: three wrong PINs in a power cycle.
	k = reopen(t, ek)
	before, _, err := k.PINRetries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := k.ChangePIN(ctx, "0000", "11111"); !errors.Is(err, ctap2.ErrPINInvalid) {
			t.Fatalf("wrong PIN %d: %v", i+1, err)
		}
	}
	if err := k.ChangePIN(ctx, "0000", "11111"); !errors.Is(err, ctap2.ErrPINAuthBlocked) {
		t.Fatalf("third wrong PIN: %v", err)
	}
	if _, err := k.GetAssertion(ctx, fidokey.GetAssertionParams{RPID: rpID, ClientDataHash: q, AllowList: [][]byte{c.id}, UP: true, PIN: "98765"}); !errors.Is(err, ctap2.ErrPINAuthBlocked) {
		t.Fatalf("right PIN while soft-locked: %v", err)
	}
	if n, pc, _ := k.PINRetries(ctx); n != before-3 || !pc {
		t.Errorf("retries %d powerCycleState %v while soft-locked", n, pc)
	}
	k = reopen(t, ek) // power cycle
	if _, err := k.GetAssertion(ctx, fidokey.GetAssertionParams{RPID: rpID, ClientDataHash: q, AllowList: [][]byte{c.id}, UP: true, PIN: "98765"}); err != nil {
		t.Fatalf("right PIN after power cycle: %v", err)
	}

	// Blocked: eight wrong PINs in a row, across power cycles.
	if n, _, _ := k.PINRetries(ctx); n != 8 {
		t.Fatalf("retries %d after the right PIN", n)
	}
	wrong := 0
	for wrong < 8 {
		err := k.ChangePIN(ctx, "0000", "11111")
		wrong++
		switch {
		case wrong == 8:
			if !errors.Is(err, ctap2.ErrPINBlocked) {
				t.Fatalf("eighth wrong PIN: %v", err)
			}
		case wrong%3 == 0:
			if !errors.Is(err, ctap2.ErrPINAuthBlocked) {
				t.Fatalf("wrong PIN %d: %v", wrong, err)
			}
			k = reopen(t, ek)
		default:
			if !errors.Is(err, ctap2.ErrPINInvalid) {
				t.Fatalf("wrong PIN %d: %v", wrong, err)
			}
		}
	}
	k = reopen(t, ek)
	if err := k.ChangePIN(ctx, "98765", "11111"); !errors.Is(err, ctap2.ErrPINBlocked) {
		t.Errorf("right PIN once blocked: %v", err)
	}
	if n, _, _ := k.PINRetries(ctx); n != 0 {
		t.Errorf("retries %d once blocked", n)
	}
}

// TestPinTokenPermissions drives ClientPIN directly, for both protocols and
// both ways of getting a token.
func TestPinTokenPermissions(t *testing.T) {
	checkLeaks(t)
	ek, k := attach(t, emu.Config{})
	ctx := tctx(t)
	if err := k.SetPIN(ctx, "24680"); err != nil {
		t.Fatal(err)
	}
	c := register(t, ek, k, func() fidokey.MakeCredentialParams { p := mcParams("alice"); p.PIN = "24680"; return p }())
	for _, proto := range []ctap2.PINProtocol{ctap2.ProtocolOne{}, ctap2.ProtocolTwo{}} {
		token := func(perms ctap2.Permission, rp string) []byte {
			t.Helper()
			var ka ctap2.ClientPINResponse
			if err := ctap2.Call(ctx, k.Channel(), ctap2.CmdClientPIN, &ctap2.ClientPINRequest{PinUvAuthProtocol: proto.Version(), SubCommand: ctap2.PINGetKeyAgreement}, &ka, nil); err != nil {
				t.Fatal(err)
			}
			req, shared, err := ctap2.GetPINTokenRequest(proto, ka.KeyAgreement, "24680", perms, rp)
			if err != nil {
				t.Fatal(err)
			}
			var resp ctap2.ClientPINResponse
			if err := ctap2.Call(ctx, k.Channel(), ctap2.CmdClientPIN, req, &resp, nil); err != nil {
				t.Fatalf("token %v %q: %v", perms, rp, err)
			}
			tok, err := ctap2.DecryptPinUvAuthToken(proto, shared, resp.PinUvAuthToken)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}
		ga := func(tok []byte, rp string) error {
			q := cdh("q")
			req := &ctap2.GetAssertionRequest{RPID: rp, ClientDataHash: q, AllowList: []ctap2.CredentialDescriptor{{Type: "public-key", ID: c.id}},
				PinUvAuthParam: ctap2.PinUvAuthParam(proto, tok, q), PinUvAuthProtocol: proto.Version()}
			var resp ctap2.GetAssertionResponse
			err := ctap2.Call(ctx, k.Channel(), ctap2.CmdGetAssertion, req, &resp, nil)
			if err == nil {
				if ad := checkAssertion(t, c, &resp, rp, q); !ad.Flags.Has(ctap2.FlagUV) {
					t.Error("no UV flag with a token")
				}
			}
			return err
		}
		mc := func(tok []byte, rp string) error {
			q := cdh("mc")
			req := &ctap2.MakeCredentialRequest{ClientDataHash: q, RP: &ctap2.RPEntity{ID: rp}, User: &ctap2.UserEntity{ID: []byte{7}},
				PubKeyCredParams: []ctap2.CredentialParameter{{Type: "public-key", Alg: ctap2.AlgES256}},
				PinUvAuthParam:   ctap2.PinUvAuthParam(proto, tok, q), PinUvAuthProtocol: proto.Version()}
			return ctap2.Call(ctx, k.Channel(), ctap2.CmdMakeCredential, req, &ctap2.MakeCredentialResponse{}, nil)
		}
		// ga bound to rpID: GetAssertion there only.
		tok := token(ctap2.PermGetAssertion, rpID)
		if err := ga(tok, rpID); err != nil {
			t.Errorf("protocol %d: ga token: %v", proto.Version(), err)
		}
		if err := mc(tok, rpID); !errors.Is(err, ctap2.ErrPINAuthInvalid) {
			t.Errorf("protocol %d: ga token used for mc: %v", proto.Version(), err)
		}
		if err := ga(tok, "other.example"); !errors.Is(err, ctap2.ErrPINAuthInvalid) {
			t.Errorf("protocol %d: ga token used for another RP: %v", proto.Version(), err)
		}
		// mc token.
		tok = token(ctap2.PermMakeCredential, rpID)
		if err := mc(tok, rpID); err != nil {
			t.Errorf("protocol %d: mc token: %v", proto.Version(), err)
		}
		// getPinToken: mc and ga.
		tok = token(0, "")
		if err := ga(tok, rpID); err != nil {
			t.Errorf("protocol %d: getPinToken for ga: %v", proto.Version(), err)
		}
		if err := mc(tok, rpID); err != nil {
			t.Errorf("protocol %d: getPinToken for mc: %v", proto.Version(), err)
		}
		// A forged pinUvAuthParam.
		if err := ga(bytes.Repeat([]byte{1}, 32), rpID); !errors.Is(err, ctap2.ErrPINAuthInvalid) {
			t.Errorf("protocol %d: wrong token: %v", proto.Version(), err)
		}
	}
	// Permissions the emulator does not grant.
	var ka ctap2.ClientPINResponse
	if err := ctap2.Call(ctx, k.Channel(), ctap2.CmdClientPIN, &ctap2.ClientPINRequest{PinUvAuthProtocol: 2, SubCommand: ctap2.PINGetKeyAgreement}, &ka, nil); err != nil {
		t.Fatal(err)
	}
	req, _, err := ctap2.GetPINTokenRequest(ctap2.ProtocolTwo{}, ka.KeyAgreement, "24680", ctap2.PermBioEnrollment, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := ctap2.Call(ctx, k.Channel(), ctap2.CmdClientPIN, req, &ctap2.ClientPINResponse{}, nil); !errors.Is(err, ctap2.ErrUnauthorizedPermission) {
		t.Errorf("be permission: %v", err)
	}
}

func TestReset(t *testing.T) {
	checkLeaks(t)
	clk := newClock()
	ek, k := attach(t, emu.Config{Now: clk.Now})
	ctx := tctx(t)
	p := mcParams("alice")
	p.ResidentKey = true
	c := register(t, ek, k, p)
	if err := k.SetPIN(ctx, "1234"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(11 * time.Second)
	if err := k.Reset(ctx, nil); !errors.Is(err, ctap2.ErrNotAllowed) {
		t.Fatalf("reset 11 s after power-up: %v", err)
	}
	k = reopen(t, ek)
	clk.Advance(9 * time.Second)
	if err := k.Reset(ctx, nil); err != nil {
		t.Fatalf("reset 9 s after power-up: %v", err)
	}
	if v, _ := k.Info().Option("clientPin"); v {
		t.Error("PIN survived reset")
	}
	if ek.ResidentCredentials() != 0 {
		t.Error("resident credentials survived reset")
	}
	if _, err := k.GetAssertion(ctx, fidokey.GetAssertionParams{RPID: rpID, ClientDataHash: cdh("q"), AllowList: [][]byte{c.id}, UP: true}); !errors.Is(err, ctap2.ErrNoCredentials) {
		t.Errorf("credential after reset: %v", err)
	}

	// Reset needs a touch.
	ek.SetPresence(emu.PresenceManual)
	k = reopen(t, ek)
	ka := newKeepalives()
	touchWhenAsked(t, ka, ek)
	if err := k.Reset(ctx, ka.On); err != nil {
		t.Fatalf("reset with touch: %v", err)
	}
}

func TestManualPresence(t *testing.T) {
	checkLeaks(t)
	ek, k := attach(t, emu.Config{Presence: emu.PresenceManual, PresenceTimeout: time.Hour})

	// Touch after the key asks for it.
	ka := newKeepalives()
	touchWhenAsked(t, ka, ek)
	p := mcParams("alice")
	p.OnKeepalive = ka.On
	c := register(t, ek, k, p)
	if !slices.Contains(ka.statuses, ctaphid.StatusUPNeeded) {
		t.Errorf("keepalives %v lack UPNEEDED", ka.statuses)
	}

	// Selection.
	ka = newKeepalives()
	touchWhenAsked(t, ka, ek)
	if err := k.Selection(tctx(t), ka.On); err != nil {
		t.Fatal(err)
	}

	// The host gives up: CTAPHID_CANCEL reaches the key.
	ka = newKeepalives()
	ctx, cancel := context.WithCancel(tctx(t))
	go func() {
		<-ka.upNeeded
		cancel()
	}()
	_, err := k.GetAssertion(ctx, fidokey.GetAssertionParams{RPID: rpID, ClientDataHash: cdh("q"), AllowList: [][]byte{c.id}, UP: true, OnKeepalive: ka.On})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled GetAssertion: %v", err)
	}
	waitFor(t, "the emulator to see the cancellation", func() bool { return ek.Cancellations() == 1 })

	// The channel still works afterwards.
	ek.SetPresence(emu.PresenceAuto)
	if _, err := k.GetAssertion(tctx(t), fidokey.GetAssertionParams{RPID: rpID, ClientDataHash: cdh("q"), AllowList: [][]byte{c.id}, UP: true}); err != nil {
		t.Fatalf("after cancel: %v", err)
	}
}

func TestPresenceTimeout(t *testing.T) {
	checkLeaks(t)
	_, k := attach(t, emu.Config{Presence: emu.PresenceManual, PresenceTimeout: 50 * time.Millisecond})
	if _, err := k.MakeCredential(tctx(t), mcParams("alice")); !errors.Is(err, ctap2.ErrUserActionTimeout) {
		t.Fatalf("no touch: %v", err)
	}
}

// waitFor polls cond (the emulator runs on its own goroutines).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestUnplug(t *testing.T) {
	checkLeaks(t)
	ek, k := attach(t, emu.Config{})
	c := register(t, ek, k, mcParams("alice"))
	ek.Unplug()
	if _, err := k.GetAssertion(tctx(t), fidokey.GetAssertionParams{RPID: rpID, ClientDataHash: cdh("q"), AllowList: [][]byte{c.id}, UP: true}); !errors.Is(err, ctaphid.ErrClosed) {
		t.Fatalf("unplugged: %v", err)
	}
	if _, err := ek.Plug(); err != nil {
		t.Fatal(err)
	}
	if _, err := ek.Plug(); !errors.Is(err, emu.ErrPlugged) {
		t.Errorf("second Plug: %v", err)
	}
	k = reopen(t, ek)
	if _, err := k.GetAssertion(tctx(t), fidokey.GetAssertionParams{RPID: rpID, ClientDataHash: cdh("q"), AllowList: [][]byte{c.id}, UP: true}); err != nil {
		t.Fatalf("plugged in again: %v", err)
	}
	if err := k.Wink(tctx(t)); err != nil || ek.Winks() != 1 {
		t.Errorf("wink: %v, %d winks", err, ek.Winks())
	}
}
