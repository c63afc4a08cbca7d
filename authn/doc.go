// Package authn is mfad's domain: accounts, their MFA devices, the policy
// that governs them (eight devices of any mix, step-up, lockout, recovery),
// the audit trail, and the error classes every edge translates.
//
// It owns the interfaces it consumes: Store (persistence, implemented by
// authn/store) and, for security keys, the interfaces in the FIDO files.
// It may import authn/totp, authn/fido2 and the pure model hw/ctap2, and
// nothing of ipc, daemon or the hardware drivers.
package authn
