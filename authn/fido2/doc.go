// Package fido2 owns mfad's relying-party checks for FIDO2 and U2F
// security keys: the WebAuthn client data mfad builds (the workstation is
// the relying party, rpId "pam://<hostname>" by default, origin the same),
// registration (VerifyRegistration: client data, rpIdHash, flags, the
// attestation statement of formats packed with x5c or self, fido-u2f and
// none, and a Policy of mode none, self or trusted with trust roots, an
// AAGUID allow-list and an offline FIDO MDS3 blob), and assertion
// (VerifyAssertion: client data, rpIdHash, flags, signature, and the sign
// counter that reveals cloned keys).
//
// It is pure: no I/O, no clock, no randomness of its own. The clock
// (Policy.Now, ParseMDS's now), trust roots and randomness (NewChallenge)
// come from the caller. LoadRootsDir, which reads a directory of PEM
// files for the daemon's configuration, is the one exception.
//
// Input from a peer never panics: every refusal is an error wrapping one
// Reason (ErrMalformed, ErrBadSignature, ErrRPIDMismatch, ...), a stable
// code that authn maps to its own errors. It talks to no authenticator:
// hw/fidokey produces the bytes, authn stores the Credential.
//
// Imports: hw/ctap2 (authenticator data, COSE keys, signatures, the CTAP2
// CBOR mode), github.com/fxamacker/cbor/v2, golang.org/x/crypto and the
// standard library only. A test keeps this true.
package fido2
