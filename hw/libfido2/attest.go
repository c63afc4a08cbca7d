package libfido2

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/mfad/mfad/hw/ctap2"
)

// Attestation formats, WebAuthn §8.
const (
	FormatPacked = "packed"
	FormatU2F    = "fido-u2f"
	FormatNone   = "none"
)

// ErrAttestation classes attestation pieces that cannot be put together.
var ErrAttestation = errors.New("libfido2: cannot rebuild the attestation object")

// Pieces are what libfido2 returns of an authenticatorMakeCredential answer.
type Pieces struct {
	Format string
	// AuthData is the authenticator data as libfido2 keeps it: a CBOR byte
	// string wrapping it (fido_cred_authdata_ptr), or the raw bytes.
	AuthData []byte
	// Sig is the attestation signature, Cert the leaf of x5c (DER), empty
	// for self attestation.
	Sig, Cert []byte
	// CredentialAlg is the credential's algorithm (fido_cred_type).
	CredentialAlg ctap2.COSEAlgorithm
}

// RebuildAttestation puts libfido2's pieces back into the CTAP2 attestation
// object (fmt, authData, attStmt) that the native stack returns:
//
//   - packed: {alg, sig, x5c: [leaf]}, alg taken from the leaf's key (ES256,
//     ES384, EdDSA, RS256), or the credential's own algorithm without a
//     certificate (self attestation);
//   - fido-u2f: {sig, x5c: [leaf]};
//   - none: {}.
//
// The authenticator data must parse (ctap2.ParseAuthData). Errors wrap
// ErrAttestation.
func RebuildAttestation(p Pieces) (*ctap2.MakeCredentialResponse, error) {
	authData, err := unwrapAuthData(p.AuthData)
	if err != nil {
		return nil, err
	}
	ad, err := ctap2.ParseAuthData(authData)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAttestation, err)
	}
	if ad.AttestedCredential == nil {
		return nil, fmt.Errorf("%w: authenticator data without attested credential", ErrAttestation)
	}
	var stmt any
	switch p.Format {
	case FormatPacked:
		if len(p.Sig) == 0 {
			return nil, fmt.Errorf("%w: packed without a signature", ErrAttestation)
		}
		st := ctap2.AttestationStatement{Alg: p.CredentialAlg, Sig: p.Sig}
		if len(p.Cert) > 0 {
			alg, err := certAlg(p.Cert)
			if err != nil {
				return nil, err
			}
			st.Alg, st.X5C = alg, [][]byte{p.Cert}
		}
		if st.Alg == 0 {
			return nil, fmt.Errorf("%w: packed self attestation without an algorithm", ErrAttestation)
		}
		stmt = st
	case FormatU2F:
		if len(p.Sig) == 0 || len(p.Cert) == 0 {
			return nil, fmt.Errorf("%w: fido-u2f needs a signature and a certificate", ErrAttestation)
		}
		if _, err := x509.ParseCertificate(p.Cert); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrAttestation, err)
		}
		stmt = ctap2.AttestationStatement{Sig: p.Sig, X5C: [][]byte{p.Cert}}
	case FormatNone:
		stmt = map[string]any{}
	default:
		return nil, fmt.Errorf("%w: format %q", ErrAttestation, p.Format)
	}
	raw, err := ctap2.Marshal(stmt)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAttestation, err)
	}
	return &ctap2.MakeCredentialResponse{Fmt: p.Format, AuthData: authData, AttStmt: raw}, nil
}

// unwrapAuthData takes authenticator data out of the CBOR byte string
// libfido2 wraps it in; raw data (its first byte is the rpIdHash's, never a
// byte-string header of the right length) is returned as it is.
func unwrapAuthData(b []byte) ([]byte, error) {
	var inner []byte
	if err := ctap2.Unmarshal(b, &inner); err == nil {
		return inner, nil
	}
	if len(b) < 37 {
		return nil, fmt.Errorf("%w: %d bytes of authenticator data", ErrAttestation, len(b))
	}
	return b, nil
}

// certAlg is the COSE algorithm an attestation certificate's key signs with.
func certAlg(der []byte) (ctap2.COSEAlgorithm, error) {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrAttestation, err)
	}
	switch k := c.PublicKey.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return ctap2.AlgES256, nil
		case elliptic.P384():
			return ctap2.AlgES384, nil
		}
	case ed25519.PublicKey:
		return ctap2.AlgEdDSA, nil
	case *rsa.PublicKey:
		return ctap2.AlgRS256, nil
	}
	return 0, fmt.Errorf("%w: attestation key %T", ErrAttestation, c.PublicKey)
}
