package authn_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/authn/totp"
)

func TestImportOTP(t *testing.T) {
	f := newFixture(t)
	if _, err := f.svc.CreateAccount(f.ctx, f.admin, authn.NewAccount{Name: "alice", Kind: authn.KindMember}); err != nil {
		t.Fatal(err)
	}
	const secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	key := &totp.Key{Type: totp.TOTP, Secret: []byte("12345678901234567890"), Params: totp.DefaultParams}
	step := totp.StepAt(f.clk.Now(), 30*time.Second)

	// A dry run checks and writes nothing.
	d, err := f.svc.ImportOTP(f.ctx, f.admin, "alice", authn.OTPImport{Secret: secret, Label: "phone", DryRun: true})
	if err != nil || d.State != authn.StateActive || d.Secret != nil {
		t.Fatalf("dry run: %+v %v", d, err)
	}
	if devs, _ := f.svc.Devices("alice"); len(devs) != 0 {
		t.Fatalf("a dry run wrote %d devices", len(devs))
	}

	// The code of a step the tool saw used is refused; the next one signs in.
	d, err = f.svc.ImportOTP(f.ctx, f.admin, "alice", authn.OTPImport{Secret: secret, Label: "phone", UsedSteps: []uint64{step - 3, step}, Source: "google-authenticator"})
	if err != nil || d.State != authn.StateActive || d.OTP.LastCounter != step || !d.OTP.Used {
		t.Fatalf("import: %+v %v", d, err)
	}
	if _, err := f.svc.Authenticate(f.ctx, f.admin, authn.AuthRequest{Account: "alice", Code: key.Code(step)}, nil); err == nil {
		t.Error("a code the tool had already accepted signed in")
	}
	if res, err := f.svc.Authenticate(f.ctx, f.admin, authn.AuthRequest{Account: "alice", Code: key.Code(step + 1)}, nil); err != nil || res.Device.ID != d.ID {
		t.Errorf("sign-in with the imported device: %+v %v", res, err)
	}

	// The same secret twice is refused, as are bad secrets and a ninth device.
	if _, err := f.svc.ImportOTP(f.ctx, f.admin, "alice", authn.OTPImport{Secret: secret}); !errors.Is(err, &authn.Error{Code: authn.CodeDeviceStateConflict}) {
		t.Errorf("duplicate: %v", err)
	}
	for _, bad := range []authn.OTPImport{
		{Secret: "GEZDGNBV"},               // 40 bits
		{Secret: "not base32 at all!"},     // not base32
		{Secret: secret + "A", Digits: 9},  // digits
		{Secret: secret, Algorithm: "MD5"}, // algorithm
		{Secret: secret, HOTP: true, UsedSteps: []uint64{1}},
		{Secret: secret, Counter: 5},
	} {
		if _, err := f.svc.ImportOTP(f.ctx, f.admin, "alice", bad); !errors.Is(err, &authn.Error{Code: authn.CodeInvalidRequest}) {
			t.Errorf("%+v: %v, want invalid_request", bad, err)
		}
	}
	if _, err := f.svc.ImportOTP(f.ctx, f.admin, "nobody", authn.OTPImport{Secret: secret}); !errors.Is(err, &authn.Error{Code: authn.CodeNotFound}) {
		t.Errorf("no account: %v", err)
	}
	for i := range 7 {
		s := totp.EncodeSecret(fmt.Appendf(nil, "secret-number-%06d", i))
		if _, err := f.svc.ImportOTP(f.ctx, f.admin, "alice", authn.OTPImport{Secret: s, HOTP: true, Counter: uint64(i)}); err != nil {
			t.Fatalf("device %d: %v", i+2, err)
		}
	}
	if _, err := f.svc.ImportOTP(f.ctx, f.admin, "alice", authn.OTPImport{Secret: totp.EncodeSecret([]byte("one-too-many-secret!"))}); !errors.Is(err, &authn.Error{Code: authn.CodeDeviceLimitReached}) {
		t.Errorf("ninth device: %v", err)
	}
}

func TestImportFIDORefusals(t *testing.T) {
	f := newFixture(t)
	if _, err := f.svc.CreateAccount(f.ctx, f.admin, authn.NewAccount{Name: "alice", Kind: authn.KindMember}); err != nil {
		t.Fatal(err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	point, _ := k.PublicKey.Bytes()
	good := authn.FIDOImport{CredentialID: []byte("credential-1"), PublicKey: point[1:], Alg: "es256", Origin: "pam://localhost", Source: "pam-u2f"}
	// The fixture's relying party is the default, pam://localhost.
	d, err := f.svc.ImportFIDO(f.ctx, f.admin, "alice", good)
	if err != nil || d.FIDO == nil || d.State != authn.StateActive || d.FIDO.Format != "none" {
		t.Fatalf("import: %+v %v", d, err)
	}
	full := good
	full.CredentialID, full.PublicKey = []byte("credential-2"), point
	if _, err := f.svc.ImportFIDO(f.ctx, f.admin, "alice", full); err != nil {
		t.Errorf("65-byte point: %v", err)
	}
	for name, bad := range map[string]authn.FIDOImport{
		"duplicate":     good,
		"other origin":  {CredentialID: []byte("c3"), PublicKey: point[1:], Alg: "es256", Origin: "pam://elsewhere"},
		"rs256":         {CredentialID: []byte("c4"), PublicKey: point[1:], Alg: "rs256", Origin: "pam://localhost"},
		"short key":     {CredentialID: []byte("c5"), PublicKey: point[:20], Alg: "es256", Origin: "pam://localhost"},
		"not on curve":  {CredentialID: []byte("c6"), PublicKey: make([]byte, 64), Alg: "es256", Origin: "pam://localhost"},
		"eddsa size":    {CredentialID: []byte("c7"), PublicKey: point, Alg: "eddsa", Origin: "pam://localhost"},
		"no credential": {PublicKey: point[1:], Alg: "es256", Origin: "pam://localhost"},
	} {
		_, err := f.svc.ImportFIDO(f.ctx, f.admin, "alice", bad)
		want := authn.CodeInvalidRequest
		if name == "duplicate" {
			want = authn.CodeDeviceStateConflict
		}
		if !errors.Is(err, &authn.Error{Code: want}) {
			t.Errorf("%s: %v, want %s", name, err, want)
		}
	}
}
