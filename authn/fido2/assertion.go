package fido2

import (
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/mfad/mfad/hw/ctap2"
)

// StoredCredential is what the relying party kept from a registration.
type StoredCredential struct {
	ID        []byte // when set, the assertion must name this credential
	PublicKey []byte // COSE_Key (Credential.PublicKey)
	Alg       ctap2.COSEAlgorithm
	SignCount uint32 // the last counter accepted
}

// AssertionInput is what a GetAssertion ceremony produced.
type AssertionInput struct {
	CredentialID   []byte // the credential the authenticator used
	AuthData       []byte
	Signature      []byte
	ClientDataJSON []byte
}

// AssertionExpect is what the relying party asked for.
type AssertionExpect struct {
	RPID      string
	Origin    string // clientData.origin; empty means RPID
	Challenge []byte
	RequireUV bool
}

// VerifyAssertion verifies a GetAssertion result as a WebAuthn relying
// party does (WebAuthn §7.2 "Verifying an Authentication Assertion"):
// the credential is the stored one; client data of type webauthn.get with
// the issued challenge and the relying party's origin; rpIdHash =
// SHA-256(RPID); UP set, and UV when required; the signature over
// authData || SHA-256(clientDataJSON) with the stored key; and the
// signature counter (§6.1.1): when the stored or the new counter is not
// zero, the new one must be greater, else ErrCounterNotIncreasing (the key
// may be cloned). Two zero counters pass: some keys keep none.
//
// newCount is the counter of the authenticator data whenever it could be
// read, also with ErrCounterNotIncreasing, so that the caller can record
// it; store it only when err is nil.
func VerifyAssertion(cred StoredCredential, in AssertionInput, want AssertionExpect) (newCount uint32, err error) {
	if want.RPID == "" {
		return 0, fail(ErrInvalidPolicy, "no rpId")
	}
	if len(cred.ID) > 0 && subtle.ConstantTimeCompare(cred.ID, in.CredentialID) != 1 {
		return 0, fail(ErrCredentialMismatch, "assertion made with another credential")
	}
	origin := want.Origin
	if origin == "" {
		origin = want.RPID
	}
	cdh, err := checkClientData(in.ClientDataJSON, TypeGet, want.Challenge, origin)
	if err != nil {
		return 0, err
	}
	ad, err := ctap2.ParseAuthData(in.AuthData)
	if err != nil {
		return 0, fmt.Errorf("%w: authData: %w", ErrMalformed, err)
	}
	if err := checkAuthData(ad, want.RPID, want.RequireUV); err != nil {
		return ad.SignCount, err
	}
	key, alg, err := ctap2.ParseCOSEKey(cred.PublicKey)
	switch {
	case errors.Is(err, ctap2.ErrUnsupportedAlgorithm):
		return ad.SignCount, fmt.Errorf("%w: stored key: %w", ErrUnsupportedAlgorithm, err)
	case err != nil:
		return ad.SignCount, fmt.Errorf("%w: stored key: %w", ErrMalformed, err)
	case !credentialAlgAllowed(alg):
		return ad.SignCount, fail(ErrUnsupportedAlgorithm, "stored key alg %d", alg)
	case cred.Alg != 0 && cred.Alg != alg:
		return ad.SignCount, fail(ErrUnsupportedAlgorithm, "stored alg %d, stored key alg %d", cred.Alg, alg)
	}
	signed := make([]byte, 0, len(in.AuthData)+len(cdh))
	signed = append(append(signed, in.AuthData...), cdh...)
	if err := verifySig("assertion", key, alg, signed, in.Signature); err != nil {
		return ad.SignCount, err
	}
	if !CounterAdvances(cred.SignCount, ad.SignCount) {
		return ad.SignCount, fail(ErrCounterNotIncreasing, "sign counter %d after %d: the key may be cloned", ad.SignCount, cred.SignCount)
	}
	return ad.SignCount, nil
}

// CounterAdvances is the signature counter rule (WebAuthn §6.1.1): when
// the stored or the new counter is not zero, the new one must be greater.
// Two zero counters pass: some keys keep none.
func CounterAdvances(stored, received uint32) bool {
	return (stored == 0 && received == 0) || received > stored
}
