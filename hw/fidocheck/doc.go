// Package fidocheck is the lab's conformance battery for security keys: it
// runs named checks over a [fidokey.Key] (and, for the transport checks,
// over raw CTAPHID frames on the key's connection) and returns, for each
// check, its id, name, the CTAP 2.1 section it tests, a verdict (pass,
// fail, or skip with the reason) and what it observed.
//
// The checks cover CTAPHID (INIT and channel allocation, PING echo at the
// frame boundaries, invalid and busy channels, wrong sequence, message
// timeout, KEEPALIVE and CANCEL during a wait for the user), GetInfo (its
// members and their consistency with each other and with CTAPHID),
// MakeCredential and GetAssertion (ES256 and EdDSA, non-resident and
// resident, exclude and allow lists, user presence, relying-party binding,
// signature counter), the hmac-secret and credProtect extensions where
// the key offers them, U2F REGISTER and AUTHENTICATE over CTAPHID_MSG, and,
// only when the caller allows destructive checks, the PIN (set, minimum
// length, wrong PIN, token, change), credential management (enumerate
// and delete resident credentials) and authenticatorReset with its
// replug-within-10-seconds rule.
//
// The software key (hw/emu) is the battery's reference: the battery passes
// on it, and every fault it can inject makes some check fail.
//
// It owns no I/O of its own beyond the key's connection; reports (JSON,
// JUnit) are formatted by its callers from [Report].
//
// Imports: hw/fidokey, hw/ctap2, hw/ctaphid, github.com/fxamacker/cbor/v2
// (extension inputs are raw CBOR) and the standard library.
package fidocheck
