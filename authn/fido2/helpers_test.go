package fido2

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfad/mfad/hw/ctap2"
)

// testNow is the clock of every test: certificates are minted around it.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fixedClock() time.Time { return testNow }

const testRPID = "pam://workstation.example"

var (
	testAAGUID  = [16]byte{0x6d, 0x66, 0x61, 0x64, 0x2d, 0x74, 0x65, 0x73, 0x74, 0x2d, 0x6b, 0x65, 0x79, 0x2d, 0x30, 0x31}
	otherAAGUID = [16]byte{0xee, 0xee, 0xee, 0xee, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
)

// testCA is a throwaway certification authority minted by a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var serial atomic.Int64

func nextSerial() *big.Int { return big.NewInt(1000 + serial.Add(1)) }

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newRootCA mints a self-signed root valid a year around testNow.
func newRootCA(t testing.TB, name string) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"mfad tests"}},
		NotBefore:             testNow.Add(-365 * 24 * time.Hour),
		NotAfter:              testNow.Add(365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: c, key: key}
}

// issue signs tmpl for pub; zero validity means a year around testNow.
func (ca *testCA) issue(t testing.TB, tmpl *x509.Certificate, pub crypto.PublicKey) *x509.Certificate {
	t.Helper()
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = nextSerial()
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = testNow.Add(-30 * 24 * time.Hour)
		tmpl.NotAfter = testNow.Add(300 * 24 * time.Hour)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// intermediate mints a CA below ca.
func (ca *testCA) intermediate(t testing.TB, name string) *testCA {
	t.Helper()
	key := newKey(t)
	c := ca.issue(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: name, Organization: []string{"mfad tests"}},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}, &key.PublicKey)
	return &testCA{cert: c, key: key}
}

// attestationTemplate follows WebAuthn §8.2.1; aaguid nil leaves the
// id-fido-gen-ce-aaguid extension out.
func attestationTemplate(t testing.TB, aaguid []byte) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		Subject: pkix.Name{
			Country:            []string{"SE"},
			Organization:       []string{"mfad test keys"},
			OrganizationalUnit: []string{"Authenticator Attestation"},
			CommonName:         "mfad test key attestation",
		},
		BasicConstraintsValid: true,
		IsCA:                  false,
		KeyUsage:              x509.KeyUsageDigitalSignature,
	}
	if aaguid != nil {
		v, err := asn1.Marshal(aaguid)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.ExtraExtensions = []pkix.Extension{{Id: oidFIDOGenCeAAGUID, Value: v}}
	}
	return tmpl
}

// sign signs message as an authenticator does under alg.
func sign(t testing.TB, key crypto.Signer, message []byte) []byte {
	t.Helper()
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		h := sha256.Sum256(message)
		sig, err := ecdsa.SignASN1(rand.Reader, k, h[:])
		if err != nil {
			t.Fatal(err)
		}
		return sig
	case ed25519.PrivateKey:
		return ed25519.Sign(k, message)
	case *rsa.PrivateKey:
		h := sha256.Sum256(message)
		sig, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, h[:])
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	t.Fatalf("key %T", key)
	return nil
}

// credKey is an authenticator's credential key.
type credKey struct {
	signer crypto.Signer
	alg    ctap2.COSEAlgorithm
	cose   []byte
}

func newCredKey(t testing.TB, alg ctap2.COSEAlgorithm) *credKey {
	t.Helper()
	var signer crypto.Signer
	switch alg {
	case ctap2.AlgES256:
		signer = newKey(t)
	case ctap2.AlgEdDSA:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		signer = k
	case ctap2.AlgES384:
		k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		signer = k
	}
	cose, err := ctap2.MarshalCOSEKey(signer.Public(), alg)
	if err != nil {
		t.Fatal(err)
	}
	return &credKey{signer: signer, alg: alg, cose: cose}
}

func authData(t testing.TB, ad *ctap2.AuthData) []byte {
	t.Helper()
	b, err := ad.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rpIDHash(rpID string) [32]byte { return sha256.Sum256([]byte(rpID)) }

// wantReason fails unless err wraps want (nil want: err must be nil).
func wantReason(t testing.TB, err error, want Reason) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %s", err, want)
	}
	if got := ReasonOf(err); got != want {
		t.Fatalf("ReasonOf = %q, want %q (%v)", got, want, err)
	}
}

func x509VerifyAt(roots *x509.CertPool) x509.VerifyOptions {
	return x509.VerifyOptions{Roots: roots, CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
}
