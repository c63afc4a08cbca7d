package fido2

import "errors"

// Reason is the stable class of a refusal. Its string is a machine code,
// part of the API (never rename one): authn maps it to its own error codes
// and the audit log records it. Every error this package returns wraps
// exactly one Reason, so errors.Is(err, ErrBadSignature) works and
// ReasonOf(err) names the class.
type Reason string

// Error implements error: "fido2: bad_signature".
func (r Reason) Error() string { return "fido2: " + string(r) }

// Refusal reasons.
const (
	// ErrMalformed: bytes from the authenticator or the client do not follow
	// WebAuthn / CTAP2 (CBOR, authenticator data, COSE key, certificate,
	// clientDataJSON, MDS blob).
	ErrMalformed Reason = "malformed"
	// ErrUnsupportedFormat: an attestation statement format other than
	// packed, fido-u2f and none (tpm, android-key, apple, ...).
	ErrUnsupportedFormat Reason = "unsupported_format"
	// ErrUnsupportedAlgorithm: a credential key other than ES256 or EdDSA,
	// or an attestation algorithm that does not fit its key.
	ErrUnsupportedAlgorithm Reason = "unsupported_algorithm"
	// ErrBadSignature: an attestation, assertion or MDS signature does not
	// verify.
	ErrBadSignature Reason = "bad_signature"
	// ErrBadCertificate: an attestation certificate breaks the format's
	// requirements (WebAuthn §8.2.1, §8.6), for example an AAGUID extension
	// that names another authenticator model.
	ErrBadCertificate Reason = "bad_attestation_certificate"
	// ErrWrongType: clientData.type is not the ceremony's.
	ErrWrongType Reason = "client_data_type_mismatch"
	// ErrChallengeMismatch: clientData.challenge is not the one issued.
	ErrChallengeMismatch Reason = "challenge_mismatch"
	// ErrOriginMismatch: clientData.origin is not the relying party's, or
	// the client data says it was made cross-origin.
	ErrOriginMismatch Reason = "origin_mismatch"
	// ErrRPIDMismatch: rpIdHash is not SHA-256 of the relying party id.
	ErrRPIDMismatch Reason = "rpid_mismatch"
	// ErrUserNotPresent: the UP flag is clear.
	ErrUserNotPresent Reason = "user_not_present"
	// ErrUserNotVerified: user verification was required and UV is clear.
	ErrUserNotVerified Reason = "user_not_verified"
	// ErrUntrustedAttestation: the attestation does not meet the policy:
	// no attestation under "self", no chain to a trusted root (or an
	// expired one) under "trusted".
	ErrUntrustedAttestation Reason = "untrusted_attestation"
	// ErrAAGUIDNotAllowed: the authenticator model is not in the allow-list.
	ErrAAGUIDNotAllowed Reason = "aaguid_not_allowed"
	// ErrRevoked: the metadata service lists the authenticator model as
	// revoked or compromised.
	ErrRevoked Reason = "authenticator_revoked"
	// ErrCredentialMismatch: the assertion names another credential than
	// the stored one.
	ErrCredentialMismatch Reason = "credential_mismatch"
	// ErrCounterNotIncreasing: the signature counter did not move forward;
	// the key may have been cloned (WebAuthn §6.1.1).
	ErrCounterNotIncreasing Reason = "counter_not_increasing"
	// ErrUntrustedMetadata: the MDS blob's certificate chain does not lead
	// to the given root at the given time.
	ErrUntrustedMetadata Reason = "untrusted_metadata"
	// ErrInvalidPolicy: the caller's policy or expectations are unusable
	// (unknown mode, no clock, no trust roots, empty challenge or rpId).
	ErrInvalidPolicy Reason = "invalid_policy"
)

// ReasonOf returns the Reason that err wraps, or "" when err is nil or
// wraps none.
func ReasonOf(err error) Reason {
	var r Reason
	if errors.As(err, &r) {
		return r
	}
	return ""
}
