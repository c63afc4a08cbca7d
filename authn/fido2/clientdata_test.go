package fido2

import (
	"bytes"
	"crypto/sha256"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
)

func TestBuildClientData(t *testing.T) {
	challenge := []byte{0xfb, 0xff, 0x00, 0x01, 0x3e, 0x3f, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49}
	cdj, h := BuildClientData(TypeCreate, challenge, DefaultRPID("ws-01.lab"))
	// The serialization of WebAuthn §5.8.1.2: members in this order, the
	// challenge base64url without padding, nothing escaped needlessly.
	want := `{"type":"webauthn.create","challenge":"-_8AAT4_QEFCQ0RFRkdISQ","origin":"pam://ws-01.lab","crossOrigin":false}`
	if string(cdj) != want {
		t.Errorf("clientDataJSON\n got %s\nwant %s", cdj, want)
	}
	if sum := sha256.Sum256([]byte(want)); !bytes.Equal(h, sum[:]) {
		t.Errorf("hash %x", h)
	}
	got, err := checkClientData(cdj, TypeCreate, challenge, "pam://ws-01.lab")
	if err != nil || !bytes.Equal(got, h) {
		t.Errorf("checkClientData: %x, %v", got, err)
	}
	cdj, _ = BuildClientData(TypeGet, challenge, "pam://a<b&c")
	if !bytes.Contains(cdj, []byte(`"origin":"pam://a<b&c"`)) {
		t.Errorf("HTML-escaped origin: %s", cdj)
	}
}

func TestCheckClientData(t *testing.T) {
	ch := []byte("sixteen byte chal")
	enc := b64(ch)
	tests := []struct {
		name string
		cdj  string
		want Reason
	}{
		{"minimal", `{"type":"webauthn.get","challenge":"` + enc + `","origin":"pam://h"}`, ""},
		{"other members ignored", `{"type":"webauthn.get","challenge":"` + enc + `","origin":"pam://h","crossOrigin":false,"tokenBinding":{"status":"present"},"x":1}`, ""},
		{"no type", `{"challenge":"` + enc + `","origin":"pam://h"}`, ErrMalformed},
		{"no challenge", `{"type":"webauthn.get","origin":"pam://h"}`, ErrMalformed},
		{"no origin", `{"type":"webauthn.get","challenge":"` + enc + `"}`, ErrMalformed},
		{"type not a string", `{"type":1,"challenge":"` + enc + `","origin":"pam://h"}`, ErrMalformed},
		{"array", `[]`, ErrMalformed},
		{"empty", ``, ErrMalformed},
		{"not UTF-8", "{\"type\":\"webauthn.get\xff\"}", ErrMalformed},
		{"standard base64", `{"type":"webauthn.get","challenge":"c2l4dGVlbiBieXRlIGNoYWw=","origin":"pam://h"}`, ErrMalformed},
		{"challenge prefix", `{"type":"webauthn.get","challenge":"` + b64(ch[:15]) + `","origin":"pam://h"}`, ErrChallengeMismatch},
		{"origin with a slash", `{"type":"webauthn.get","challenge":"` + enc + `","origin":"pam://h/"}`, ErrOriginMismatch},
		{"type case", `{"type":"WebAuthn.get","challenge":"` + enc + `","origin":"pam://h"}`, ErrWrongType},
		{"too long", `{"type":"webauthn.get","challenge":"` + enc + `","origin":"pam://h","pad":"` + string(bytes.Repeat([]byte("a"), maxClientDataJSON)) + `"}`, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := checkClientData([]byte(tc.cdj), TypeGet, ch, "pam://h")
			wantReason(t, err, tc.want)
		})
	}
}

func TestNewChallenge(t *testing.T) {
	c, err := NewChallenge(bytes.NewReader(bytes.Repeat([]byte{7}, 64)))
	if err != nil || len(c) != MinChallengeLength || c[0] != 7 {
		t.Errorf("NewChallenge = %x, %v", c, err)
	}
	boom := errors.New("no entropy")
	if _, err := NewChallenge(iotest.ErrReader(boom)); !errors.Is(err, boom) {
		t.Errorf("failing reader: %v", err)
	}
}

func TestLoadRootsDir(t *testing.T) {
	a, b := newRootCA(t, "root A"), newRootCA(t, "root B")
	pemOf := func(cas ...*testCA) []byte {
		var out []byte
		for _, ca := range cas {
			out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})...)
		}
		return out
	}
	write := func(t *testing.T, dir, name string, b []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	dir := t.TempDir()
	write(t, dir, "a.pem", pemOf(a))
	write(t, dir, "bundle.CRT", pemOf(b, a))
	write(t, dir, "README.txt", []byte("not a certificate"))
	if err := os.Mkdir(filepath.Join(dir, "sub.pem"), 0o700); err != nil {
		t.Fatal(err)
	}
	pool, err := LoadRootsDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, ca := range []*testCA{a, b} {
		leaf := ca.issue(t, attestationTemplate(t, nil), newKey(t).Public())
		if _, err := leaf.Verify(x509VerifyAt(pool)); err != nil {
			t.Errorf("leaf of %s: %v", ca.cert.Subject, err)
		}
	}

	for name, content := range map[string][]byte{
		"key.pem":      pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}),
		"garbage.pem":  []byte("garbage"),
		"trailing.pem": append(pemOf(a), "trailing"...),
		"broken.pem":   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0}}),
	} {
		bad := t.TempDir()
		write(t, bad, name, content)
		if _, err := LoadRootsDir(bad); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if _, err := LoadRootsDir(t.TempDir()); err == nil {
		t.Error("empty directory accepted")
	}
	if _, err := LoadRootsDir(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing directory accepted")
	}
}
