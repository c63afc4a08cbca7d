package authn_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/authn/totp"
)

// timePSKC is a plaintext PSKC file with one time-based token, as TOTP
// token vendors ship them.
func timePSKC(serial string, secret []byte) []byte {
	return []byte(`<?xml version="1.0" encoding="UTF-8"?>
<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">
 <KeyPackage>
  <DeviceInfo><Manufacturer>Lab</Manufacturer><SerialNo>` + serial + `</SerialNo><Model>T6</Model></DeviceInfo>
  <Key Id="` + serial + `" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:totp">
   <AlgorithmParameters><ResponseFormat Length="6" Encoding="DECIMAL"/></AlgorithmParameters>
   <Data><Secret><PlainValue>` + b64(secret) + `</PlainValue></Secret><TimeInterval><PlainValue>30</PlainValue></TimeInterval></Data>
  </Key>
 </KeyPackage>
</KeyContainer>`)
}

func TestHardwareTokens(t *testing.T) {
	f := newFixture(t)
	secret := []byte("0123456789abcdefghij")
	toks, err := f.svc.ImportTokens(f.ctx, f.admin, timePSKC("T-100", secret), totp.PSKCOptions{})
	if err != nil || len(toks) != 1 || toks[0].Serial != "T-100" || toks[0].OTP.Event || toks[0].Secret != nil {
		t.Fatalf("import: %+v %v", toks, err)
	}
	// The same serial twice is refused whole.
	_, err = f.svc.ImportTokens(f.ctx, f.admin, timePSKC("T-100", secret), totp.PSKCOptions{})
	wantCode(t, err, authn.CodeImportRefused)

	// RFC 6030's HOTP example (figure 3), event-based.
	fig3, err := os.ReadFile(filepath.Join("totp", "testdata", "rfc6030-figure3.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.ImportTokens(f.ctx, f.admin, fig3, totp.PSKCOptions{}); err != nil {
		t.Fatal(err)
	}
	// A file with an unsupported algorithm is refused with the reason, and imports nothing.
	fig5, _ := os.ReadFile(filepath.Join("totp", "testdata", "rfc6030-figure5.xml"))
	_, err = f.svc.ImportTokens(f.ctx, f.admin, fig5, totp.PSKCOptions{})
	if e := wantCode(t, err, authn.CodeImportRefused); !strings.Contains(e.Detail, "unsupported") {
		t.Errorf("refusal does not say why: %s", e.Detail)
	}
	if all, _ := f.svc.Tokens(); len(all) != 2 {
		t.Fatalf("inventory: %+v", all)
	}

	// Assign the TOTP token; it activates with two consecutive codes.
	e, err := f.svc.Enroll(f.ctx, f.admin, "dave", authn.EnrollRequest{Type: authn.DeviceHardwareOTP, Serial: "T-100"})
	if err != nil || e.Secret != nil || e.URI != "" {
		t.Fatalf("assign: %+v %v", e, err)
	}
	_, err = f.svc.Enroll(f.ctx, f.admin, "erin", authn.EnrollRequest{Type: authn.DeviceHardwareOTP, Serial: "T-100"})
	wantCode(t, err, authn.CodeTokenAssigned)
	_, err = f.svc.Enroll(f.ctx, f.admin, "erin", authn.EnrollRequest{Type: authn.DeviceHardwareOTP, Serial: "nope"})
	wantCode(t, err, authn.CodeTokenNotInInventory)
	if _, err := f.svc.Activate(f.ctx, f.admin, "dave", e.Device.ID, authn.CodePair{Code1: f.code(secret, -1), Code2: f.code(secret, 0)}); err != nil {
		t.Fatal(err)
	}
	f.clk.Add(30 * time.Second)
	if _, err := f.svc.Authenticate(f.ctx, f.admin, authn.AuthRequest{Account: "dave", Code: f.code(secret, 0)}, nil); err != nil {
		t.Fatal(err)
	}

	// The HOTP token: RFC 4226's secret, counter 0 onwards.
	hsecret := []byte("12345678901234567890")
	he, err := f.svc.Enroll(f.ctx, f.admin, "erin", authn.EnrollRequest{Type: authn.DeviceHardwareOTP, Serial: "987654321"})
	if err != nil {
		t.Fatal(err)
	}
	hp := totp.Params{Algorithm: totp.SHA1, Digits: 8, Period: 30 * time.Second}
	hcode := func(c uint64) string { return totp.Code(hsecret, hp, c) }
	if _, err := f.svc.Activate(f.ctx, f.admin, "erin", he.Device.ID, authn.CodePair{Code1: hcode(0), Code2: hcode(1)}); err != nil {
		t.Fatalf("HOTP activation: %v", err)
	}
	for _, tc := range []struct {
		c    uint64
		want string
	}{{1, authn.CodeCodeAlreadyUsed}, {2, ""}, {2, authn.CodeCodeAlreadyUsed}, {12, ""}, {30, authn.CodeInvalidCode}} {
		_, err := f.svc.Authenticate(f.ctx, f.admin, authn.AuthRequest{Account: "erin", Code: hcode(tc.c)}, nil)
		if tc.want == "" && err != nil {
			t.Errorf("HOTP counter %d: %v", tc.c, err)
		} else if tc.want != "" {
			wantCode(t, err, tc.want)
		}
	}
	// A token that jumped ahead resyncs forward.
	if _, err := f.svc.Resync(f.ctx, f.admin, "erin", he.Device.ID, authn.CodePair{Code1: hcode(500), Code2: hcode(501)}); err != nil {
		t.Fatalf("HOTP resync: %v", err)
	}
	if _, err := f.svc.Authenticate(f.ctx, f.admin, authn.AuthRequest{Account: "erin", Code: hcode(503)}, nil); err != nil {
		t.Fatalf("after HOTP resync: %v", err)
	}
}
