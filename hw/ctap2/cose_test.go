package ctap2

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"testing"
)

func TestCOSEKeyRoundTrip(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ka, _ := ecdh.P256().GenerateKey(rand.Reader)
	msg := []byte("authData || clientDataHash")
	h256, h384 := sha256.Sum256(msg), sha512.Sum384(msg)
	sig256, _ := ecdsa.SignASN1(rand.Reader, p256, h256[:])
	sig384, _ := ecdsa.SignASN1(rand.Reader, p384, h384[:])
	for _, tc := range []struct {
		name string
		pub  crypto.PublicKey
		alg  COSEAlgorithm
		sig  []byte
	}{
		{"ES256", &p256.PublicKey, AlgES256, sig256},
		{"ES384", &p384.PublicKey, AlgES384, sig384},
		{"EdDSA", edPub, AlgEdDSA, ed25519.Sign(edPriv, msg)},
		{"ECDH", ka.PublicKey(), AlgECDHESHKDF256, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := MarshalCOSEKey(tc.pub, tc.alg)
			if err != nil {
				t.Fatal(err)
			}
			pub, alg, err := ParseCOSEKey(b)
			if err != nil {
				t.Fatal(err)
			}
			if alg != tc.alg || !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(tc.pub) {
				t.Fatalf("parsed %T alg %d", pub, alg)
			}
			again, _ := MarshalCOSEKey(pub, alg)
			if string(again) != string(b) {
				t.Errorf("re-encoded %x, want %x", again, b)
			}
			if tc.sig == nil {
				return
			}
			if err := VerifySignature(pub, alg, msg, tc.sig); err != nil {
				t.Errorf("verify: %v", err)
			}
			if err := VerifySignature(pub, alg, msg[1:], tc.sig); !errors.Is(err, ErrSignature) {
				t.Errorf("verify over other data: %v", err)
			}
		})
	}
	// Keys and algorithms that do not fit.
	if _, err := MarshalCOSEKey(&p384.PublicKey, AlgES256); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Errorf("P-384 key as ES256: %v", err)
	}
	if _, err := MarshalCOSEKey(edPub, AlgES256); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Errorf("Ed25519 key as ES256: %v", err)
	}
	if err := VerifySignature(&p384.PublicKey, AlgES256, msg, sig384); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Errorf("ES256 with a P-384 key: %v", err)
	}
	if err := VerifySignature(edPub, AlgES256, msg, sig256); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Errorf("ES256 with an Ed25519 key: %v", err)
	}
	if err := VerifySignature(ed25519.PublicKey{1, 2}, AlgEdDSA, msg, sig256); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Errorf("EdDSA with a short key: %v", err)
	}
}

// The ES256 key of python-fido2's attested credential data, and
// mutations of it.
func TestParseCOSEKeyMalformed(t *testing.T) {
	x := unhex(t, "643566c206dd00227005fa5de69320616ca268043a38f08bde2e9dc45a5cafaf")
	y := unhex(t, "171353b2932434703726aae579fa6542432861fe591e481ea22d63997e1a5290")
	valid := map[int64]any{1: 2, 3: -7, -1: 1, -2: x, -3: y}
	b, _ := Marshal(valid)
	if _, _, err := ParseCOSEKey(b); err != nil {
		t.Fatalf("valid key: %v", err)
	}
	offCurve := append([]byte(nil), y...)
	offCurve[31] ^= 1
	for _, tc := range []struct {
		name string
		edit func(m map[int64]any)
		want error
	}{
		{"no kty", func(m map[int64]any) { delete(m, 1) }, ErrMalformed},
		{"no alg", func(m map[int64]any) { delete(m, 3) }, ErrMalformed},
		{"no y", func(m map[int64]any) { delete(m, -3) }, ErrMalformed},
		{"OKP kty", func(m map[int64]any) { m[1] = 1 }, ErrMalformed},
		{"P-384 curve", func(m map[int64]any) { m[-1] = 2 }, ErrMalformed},
		{"short x", func(m map[int64]any) { m[-2] = x[:31] }, ErrMalformed},
		{"x as text", func(m map[int64]any) { m[-2] = "x" }, ErrCBORUnexpectedType},
		{"off curve", func(m map[int64]any) { m[-3] = offCurve }, ErrMalformed},
		{"RS256", func(m map[int64]any) { m[3] = -257 }, ErrUnsupportedAlgorithm},
		{"EdDSA with EC2", func(m map[int64]any) { m[3] = -8 }, ErrMalformed},
	} {
		m := map[int64]any{}
		for k, v := range valid {
			m[k] = v
		}
		tc.edit(m)
		b, err := Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := ParseCOSEKey(b); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	for name, b := range map[string][]byte{
		"empty":         nil,
		"array":         {0x80},
		"duplicate kty": unhex(t, "a2 01 02 01 02"),
		"trailing":      append(b, 0),
	} {
		if _, _, err := ParseCOSEKey(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
