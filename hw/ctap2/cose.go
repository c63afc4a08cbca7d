package ctap2

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// COSEAlgorithm is a COSE algorithm identifier (IANA "COSE Algorithms",
// RFC 9053).
type COSEAlgorithm int64

// Algorithms this package knows.
const (
	AlgES256         COSEAlgorithm = -7   // ECDSA P-256 with SHA-256, RFC 9053 §2.1
	AlgEdDSA         COSEAlgorithm = -8   // EdDSA (Ed25519 here), RFC 9053 §2.2
	AlgECDHESHKDF256 COSEAlgorithm = -25  // ECDH-ES + HKDF-256: the label of CTAP key agreement keys, CTAP 2.1 §6.5.6
	AlgES384         COSEAlgorithm = -35  // ECDSA P-384 with SHA-384, RFC 9053 §2.1
	AlgRS256         COSEAlgorithm = -257 // RSASSA-PKCS1-v1_5 with SHA-256 (not supported for keys here)
)

// COSE key type and curve values (RFC 9053 §7, IANA "COSE Key Types",
// "COSE Elliptic Curves").
const (
	COSEKtyOKP     = 1
	COSEKtyEC2     = 2
	COSECrvP256    = 1
	COSECrvP384    = 2
	COSECrvEd25519 = 6
)

// COSEKey is an EC2 or OKP COSE_Key (RFC 9052 §7, RFC 9053 §7) with
// integer labels: kty 1, alg 3, crv -1, x -2, y -3. It is the form of the
// ClientPIN keyAgreement member and of credential public keys of the
// algorithms this package supports. Y is empty for OKP keys.
type COSEKey struct {
	Kty int64         `cbor:"1,keyasint"`
	Alg COSEAlgorithm `cbor:"3,keyasint,omitempty"`
	Crv int64         `cbor:"-1,keyasint,omitempty"`
	X   []byte        `cbor:"-2,keyasint,omitempty"`
	Y   []byte        `cbor:"-3,keyasint,omitempty"`
}

// NewKeyAgreementKey returns the COSE form of a P-256 key agreement public
// key: kty EC2, alg -25, crv P-256 (CTAP 2.1 §6.5.6 getPublicKey).
func NewKeyAgreementKey(pub *ecdh.PublicKey) (*COSEKey, error) {
	if pub == nil || pub.Curve() != ecdh.P256() {
		return nil, errors.New("ctap2: key agreement key is not a P-256 key")
	}
	b := pub.Bytes() // 0x04 || X || Y
	return &COSEKey{Kty: COSEKtyEC2, Alg: AlgECDHESHKDF256, Crv: COSECrvP256, X: b[1:33], Y: b[33:65]}, nil
}

// ECDHPublicKey returns the P-256 point of an EC2 key agreement key. The
// point must be on the curve. The alg label is not checked: CTAP 2.1 says
// it is -25, but it does not name the algorithm actually used.
func (k *COSEKey) ECDHPublicKey() (*ecdh.PublicKey, error) {
	if k == nil {
		return nil, fmt.Errorf("ctap2: key agreement key: %w", ErrMissingParameter)
	}
	if k.Kty != COSEKtyEC2 || k.Crv != COSECrvP256 || len(k.X) != 32 || len(k.Y) != 32 {
		return nil, fmt.Errorf("%w: key agreement key is not an EC2 P-256 key", ErrMalformed)
	}
	pt := make([]byte, 0, 65)
	pt = append(append(append(pt, 4), k.X...), k.Y...)
	pub, err := ecdh.P256().NewPublicKey(pt)
	if err != nil {
		return nil, fmt.Errorf("%w: key agreement key: %v", ErrMalformed, err)
	}
	return pub, nil
}

// ParseCOSEKey decodes a COSE_Key credential public key (as found in
// attested credential data) into a crypto.PublicKey: *ecdsa.PublicKey for
// ES256 (EC2, P-256) and ES384 (EC2, P-384), ed25519.PublicKey for EdDSA
// (OKP, Ed25519), *ecdh.PublicKey for an ECDH-ES+HKDF-256 P-256 key. The
// alg label is required and must agree with kty and crv; points must be on
// their curve. Other algorithms give an error wrapping
// ErrUnsupportedAlgorithm.
func ParseCOSEKey(b []byte) (crypto.PublicKey, COSEAlgorithm, error) {
	var m map[int64]cbor.RawMessage
	if err := Unmarshal(b, &m); err != nil {
		return nil, 0, fmt.Errorf("ctap2: COSE key: %w", err)
	}
	return coseKeyFromMap(m)
}

func coseKeyFromMap(m map[int64]cbor.RawMessage) (crypto.PublicKey, COSEAlgorithm, error) {
	var kty, crv int64
	var alg COSEAlgorithm
	if err := coseLabel(m, 1, &kty); err != nil {
		return nil, 0, err
	}
	if err := coseLabel(m, 3, &alg); err != nil {
		return nil, 0, err
	}
	switch alg {
	case AlgES256, AlgES384, AlgECDHESHKDF256:
		var x, y []byte
		if err := coseLabel(m, -1, &crv); err != nil {
			return nil, 0, err
		}
		if err := coseLabel(m, -2, &x); err != nil {
			return nil, 0, err
		}
		if err := coseLabel(m, -3, &y); err != nil {
			return nil, 0, err
		}
		if kty != COSEKtyEC2 {
			return nil, 0, fmt.Errorf("%w: COSE key: alg %d needs kty EC2, have %d", ErrMalformed, alg, kty)
		}
		if alg == AlgECDHESHKDF256 {
			pub, err := (&COSEKey{Kty: kty, Alg: alg, Crv: crv, X: x, Y: y}).ECDHPublicKey()
			return pub, alg, err
		}
		curve, size, wantCrv := elliptic.P256(), 32, int64(COSECrvP256)
		if alg == AlgES384 {
			curve, size, wantCrv = elliptic.P384(), 48, COSECrvP384
		}
		if crv != wantCrv || len(x) != size || len(y) != size {
			return nil, 0, fmt.Errorf("%w: COSE key: alg %d with crv %d and %d/%d-byte coordinates", ErrMalformed, alg, crv, len(x), len(y))
		}
		pt := make([]byte, 0, 1+2*size)
		pt = append(append(append(pt, 4), x...), y...)
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, pt)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: COSE key: %v", ErrMalformed, err)
		}
		return pub, alg, nil
	case AlgEdDSA:
		var x []byte
		if err := coseLabel(m, -1, &crv); err != nil {
			return nil, 0, err
		}
		if err := coseLabel(m, -2, &x); err != nil {
			return nil, 0, err
		}
		if kty != COSEKtyOKP || crv != COSECrvEd25519 || len(x) != ed25519.PublicKeySize {
			return nil, 0, fmt.Errorf("%w: COSE key: EdDSA needs an OKP Ed25519 key", ErrMalformed)
		}
		return ed25519.PublicKey(x), alg, nil
	}
	return nil, alg, fmt.Errorf("ctap2: COSE key algorithm %d: %w", alg, ErrUnsupportedAlgorithm)
}

// coseLabel decodes the required label l of m into v.
func coseLabel(m map[int64]cbor.RawMessage, l int64, v any) error {
	raw, ok := m[l]
	if !ok {
		return fmt.Errorf("%w: COSE key: label %d missing", ErrMalformed, l)
	}
	if err := Unmarshal(raw, v); err != nil {
		return fmt.Errorf("ctap2: COSE key label %d: %w", l, err)
	}
	return nil
}

// MarshalCOSEKey encodes pub as a COSE_Key for alg: an *ecdsa.PublicKey on
// P-256 with AlgES256 or P-384 with AlgES384, an ed25519.PublicKey with
// AlgEdDSA, or a P-256 *ecdh.PublicKey with AlgECDHESHKDF256.
func MarshalCOSEKey(pub crypto.PublicKey, alg COSEAlgorithm) ([]byte, error) {
	k, err := coseKeyOf(pub, alg)
	if err != nil {
		return nil, err
	}
	return Marshal(k)
}

func coseKeyOf(pub crypto.PublicKey, alg COSEAlgorithm) (*COSEKey, error) {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		crv, size := int64(COSECrvP256), 32
		switch {
		case alg == AlgES256 && p.Curve == elliptic.P256():
		case alg == AlgES384 && p.Curve == elliptic.P384():
			crv, size = COSECrvP384, 48
		default:
			return nil, fmt.Errorf("ctap2: COSE key: ECDSA key does not fit algorithm %d: %w", alg, ErrUnsupportedAlgorithm)
		}
		b, err := p.Bytes()
		if err != nil {
			return nil, fmt.Errorf("ctap2: COSE key: %w", err)
		}
		return &COSEKey{Kty: COSEKtyEC2, Alg: alg, Crv: crv, X: b[1 : 1+size], Y: b[1+size:]}, nil
	case ed25519.PublicKey:
		if alg != AlgEdDSA || len(p) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("ctap2: COSE key: Ed25519 key with algorithm %d: %w", alg, ErrUnsupportedAlgorithm)
		}
		return &COSEKey{Kty: COSEKtyOKP, Alg: AlgEdDSA, Crv: COSECrvEd25519, X: append([]byte(nil), p...)}, nil
	case *ecdh.PublicKey:
		if alg != AlgECDHESHKDF256 {
			return nil, fmt.Errorf("ctap2: COSE key: ECDH key with algorithm %d: %w", alg, ErrUnsupportedAlgorithm)
		}
		return NewKeyAgreementKey(p)
	}
	return nil, fmt.Errorf("ctap2: COSE key: key type %T: %w", pub, ErrUnsupportedAlgorithm)
}

// ErrSignature is returned when a signature does not verify.
var ErrSignature = errors.New("ctap2: signature does not verify")

// VerifySignature checks sig over message with pub under alg: for ES256 an
// ASN.1 DER ECDSA signature over SHA-256(message) with a P-256 key, for
// ES384 the same with SHA-384 and P-384, for EdDSA an Ed25519 signature
// over message itself. It returns nil, ErrSignature, or an error wrapping
// ErrUnsupportedAlgorithm when key and algorithm do not fit.
func VerifySignature(pub crypto.PublicKey, alg COSEAlgorithm, message, sig []byte) error {
	switch alg {
	case AlgES256, AlgES384:
		p, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			break
		}
		var digest []byte
		switch {
		case alg == AlgES256 && p.Curve == elliptic.P256():
			h := sha256.Sum256(message)
			digest = h[:]
		case alg == AlgES384 && p.Curve == elliptic.P384():
			h := sha512.Sum384(message)
			digest = h[:]
		default:
			return fmt.Errorf("ctap2: algorithm %d with curve %s: %w", alg, p.Curve.Params().Name, ErrUnsupportedAlgorithm)
		}
		if !ecdsa.VerifyASN1(p, digest, sig) {
			return ErrSignature
		}
		return nil
	case AlgEdDSA:
		p, ok := pub.(ed25519.PublicKey)
		if !ok || len(p) != ed25519.PublicKeySize {
			break
		}
		if !ed25519.Verify(p, message, sig) {
			return ErrSignature
		}
		return nil
	}
	return fmt.Errorf("ctap2: algorithm %d with key %T: %w", alg, pub, ErrUnsupportedAlgorithm)
}
