package emu_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/mfad/mfad/hw/ctap2"
	"github.com/mfad/mfad/hw/ctaphid"
	"github.com/mfad/mfad/hw/emu"
	"github.com/mfad/mfad/hw/fidokey"
)

func tctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func attach(t testing.TB, cfg emu.Config) (*emu.Key, ctaphid.Conn) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ek, conn, err := emu.Attach(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ek.Close()
		cancel()
	})
	return ek, conn
}

func open(t testing.TB, conn ctaphid.Conn) *fidokey.Key {
	t.Helper()
	k, err := fidokey.Open(tctx(t), conn, fidokey.DeviceInfo{Path: "emu:test"})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sum(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// TestAttestationCertificate checks the batch certificate against the
// packed attestation certificate requirements (WebAuthn §8.2.1) and its
// chain to the exported CA.
func TestAttestationCertificate(t *testing.T) {
	a, err := emu.New(emu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c := a.BatchCertificate()
	s := c.Subject
	if !slices.Equal(s.OrganizationalUnit, []string{"Authenticator Attestation"}) || len(s.Country) != 1 || len(s.Organization) != 1 || s.CommonName == "" {
		t.Errorf("subject %v", s)
	}
	if c.Version != 3 || !c.BasicConstraintsValid || c.IsCA {
		t.Errorf("version %d, basic constraints %v CA %v", c.Version, c.BasicConstraintsValid, c.IsCA)
	}
	var found bool
	for _, e := range c.Extensions {
		if e.Id.Equal(emu.OIDFIDOGenCeAAGUID) {
			found = true
			var v []byte
			if rest, err := asn1.Unmarshal(e.Value, &v); err != nil || len(rest) != 0 || !bytes.Equal(v, emu.AAGUID[:]) || e.Critical {
				t.Errorf("AAGUID extension %x (critical %v): %v", e.Value, e.Critical, err)
			}
		}
	}
	if !found {
		t.Error("no id-fido-gen-ce-aaguid extension")
	}
	blk, _ := pem.Decode(a.CACertificatePEM())
	ca, err := x509.ParseCertificate(blk.Bytes)
	if err != nil || !ca.Equal(a.CACertificate()) || !ca.IsCA {
		t.Fatalf("CA PEM: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := c.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: c.NotBefore.Add(time.Hour), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("batch certificate does not chain to the CA: %v", err)
	}
	// AAGUIDString and AAGUID agree.
	if hex.EncodeToString(emu.AAGUID[:]) != strings.ReplaceAll(emu.AAGUIDString, "-", "") {
		t.Error("AAGUIDString and AAGUID differ")
	}
}

// TestPersistence restarts an emulator on the same state file.
func TestPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "emu.state")
	const pin = "86420"
	ek, conn := attach(t, emu.Config{Persister: emu.FilePersister(path)})
	k := open(t, conn)
	ctx := tctx(t)
	if err := k.SetPIN(ctx, pin); err != nil {
		t.Fatal(err)
	}
	resp, err := k.MakeCredential(ctx, fidokey.MakeCredentialParams{
		ClientDataHash: sum("c"), RP: ctap2.RPEntity{ID: "example.org"}, User: ctap2.UserEntity{ID: []byte("u1")},
		ResidentKey: true, PIN: pin,
	})
	if err != nil {
		t.Fatal(err)
	}
	ad, _ := ctap2.ParseAuthData(resp.AuthData)
	if err := k.ChangePIN(ctx, "00000", "11111"); !errors.Is(err, ctap2.ErrPINInvalid) {
		t.Fatal(err)
	}
	ca := ek.CACertificate()
	ek.Close()

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v", fi.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(pin)) {
		t.Error("the PIN is stored in clear")
	}
	if !bytes.Contains(raw, ctap2.PINHash([]byte(pin))) {
		t.Error("the state does not hold LEFT(SHA-256(PIN), 16)")
	}

	ek2, conn2 := attach(t, emu.Config{Persister: emu.FilePersister(path)})
	k2 := open(t, conn2)
	if !ek2.CACertificate().Equal(ca) {
		t.Error("a new CA after restart")
	}
	if v, _ := k2.Info().Option("clientPin"); !v {
		t.Error("PIN lost")
	}
	if n, _, _ := k2.PINRetries(ctx); n != 7 {
		t.Errorf("retries %d after restart, want 7", n)
	}
	as, err := k2.GetAssertion(ctx, fidokey.GetAssertionParams{RPID: "example.org", ClientDataHash: sum("g"), UP: true, PIN: pin})
	if err != nil {
		t.Fatalf("resident credential after restart: %v", err)
	}
	ad2, _ := ctap2.ParseAuthData(as[0].AuthData)
	if !bytes.Equal(as[0].Credential.ID, ad.AttestedCredential.CredentialID) || ad2.SignCount <= ad.SignCount {
		t.Errorf("credential %x counter %d (registered %x at %d)", as[0].Credential.ID, ad2.SignCount, ad.AttestedCredential.CredentialID, ad.SignCount)
	}

	// A corrupt state file is an error, not a new identity.
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := emu.New(emu.Config{Persister: emu.FilePersister(path)}); err == nil {
		t.Error("corrupt state accepted")
	}
}

// TestMinPINLength sends a 3-character PIN that the platform library
// would refuse to build, straight to the handler.
func TestMinPINLength(t *testing.T) {
	a, err := emu.New(emu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := tctx(t)
	for _, tc := range []struct {
		pin  string
		want ctap2.StatusError
	}{{"123", ctap2.ErrPINPolicyViolation}, {"ab\u00e9", ctap2.ErrPINPolicyViolation}, {"1234", 0}} {
		proto := ctap2.ProtocolTwo{}
		frame, _ := ctap2.EncodeCommand(ctap2.CmdClientPIN, &ctap2.ClientPINRequest{PinUvAuthProtocol: 2, SubCommand: ctap2.PINGetKeyAgreement})
		ka, err := ctap2.ParseClientPINResponse(a.CBOR(ctx, frame, nil))
		if err != nil {
			t.Fatal(err)
		}
		platformKey, shared, err := ctap2.Encapsulate(proto, ka.KeyAgreement)
		if err != nil {
			t.Fatal(err)
		}
		padded := make([]byte, 64)
		copy(padded, tc.pin)
		enc, err := proto.Encrypt(shared, padded)
		if err != nil {
			t.Fatal(err)
		}
		frame, _ = ctap2.EncodeCommand(ctap2.CmdClientPIN, &ctap2.ClientPINRequest{
			PinUvAuthProtocol: 2, SubCommand: ctap2.PINSet, KeyAgreement: platformKey, NewPINEnc: enc, PinUvAuthParam: proto.Authenticate(shared, enc),
		})
		if got := a.CBOR(ctx, frame, nil); ctap2.StatusError(got[0]) != tc.want {
			t.Errorf("setPIN %q: status %#x, want %#x", tc.pin, got[0], byte(tc.want))
		}
	}
}

func TestPersisters(t *testing.T) {
	for name, p := range map[string]emu.Persister{
		"memory": emu.NewMemory(),
		"file":   emu.FilePersister(filepath.Join(t.TempDir(), "s")),
	} {
		b, err := p.Load()
		if err != nil || b != nil {
			t.Errorf("%s: empty Load = %q, %v", name, b, err)
		}
		for _, v := range []string{"one", "two"} {
			if err := p.Save([]byte(v)); err != nil {
				t.Fatal(err)
			}
			if b, err := p.Load(); err != nil || string(b) != v {
				t.Errorf("%s: Load = %q, %v; want %q", name, b, err, v)
			}
		}
	}
	if err := emu.FilePersister(filepath.Join(t.TempDir(), "missing", "s")).Save([]byte("x")); err == nil {
		t.Error("Save into a missing directory succeeded")
	}
}

// TestPythonFIDO2 verifies an attestation and an assertion of the
// emulator with python-fido2, an independent implementation.
func TestPythonFIDO2(t *testing.T) {
	py := ""
	for _, c := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(c, "-c", "import fido2").Run() == nil {
			py = c
			break
		}
	}
	if py == "" {
		if os.Getenv("MFAD_REQUIRE_TOOLS") == "1" {
			t.Fatal("python3-fido2 is not installed (apt-get install python3-fido2)")
		}
		t.Skip("python3-fido2 is not installed")
	}
	ek, conn := attach(t, emu.Config{})
	k := open(t, conn)
	for _, alg := range []ctap2.COSEAlgorithm{ctap2.AlgES256, ctap2.AlgEdDSA} {
		dir := t.TempDir()
		write := func(name string, b []byte) {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		clientData := func(typ, challenge string) []byte {
			b, _ := json.Marshal(map[string]any{
				"type": typ, "challenge": base64.RawURLEncoding.EncodeToString([]byte(challenge)),
				"origin": "pam://workstation", "crossOrigin": false,
			})
			return b
		}
		create := clientData("webauthn.create", "register")
		h := sha256.Sum256(create)
		resp, err := k.MakeCredential(tctx(t), fidokey.MakeCredentialParams{
			ClientDataHash: h[:], RP: ctap2.RPEntity{ID: "pam://workstation"},
			User: ctap2.UserEntity{ID: []byte("alice"), Name: "alice"}, Algorithms: []ctap2.COSEAlgorithm{alg},
		})
		if err != nil {
			t.Fatal(err)
		}
		attObj, err := cbor.Marshal(map[string]any{"fmt": resp.Fmt, "attStmt": cbor.RawMessage(resp.AttStmt), "authData": resp.AuthData})
		if err != nil {
			t.Fatal(err)
		}
		ad, _ := ctap2.ParseAuthData(resp.AuthData)
		get := clientData("webauthn.get", "sign in")
		h = sha256.Sum256(get)
		as, err := k.GetAssertion(tctx(t), fidokey.GetAssertionParams{
			RPID: "pam://workstation", ClientDataHash: h[:], AllowList: [][]byte{ad.AttestedCredential.CredentialID}, UP: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		write("attestation.cbor", attObj)
		write("create.json", create)
		write("ca.der", ek.CACertificate().Raw)
		write("get.authdata", as[0].AuthData)
		write("get.sig", as[0].Signature)
		write("get.json", get)
		out, err := exec.Command(py, "testdata/verify.py", dir, hex.EncodeToString(emu.AAGUID[:])).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "OK") {
			t.Fatalf("alg %d: python-fido2: %v\n%s", alg, err, out)
		}
		t.Logf("alg %d: python-fido2: %s", alg, strings.TrimSpace(string(out)))
	}
}
