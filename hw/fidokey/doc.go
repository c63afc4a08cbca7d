// Package fidokey is a connected FIDO2 security key, seen from the host:
// it opens a CTAPHID channel on a device's report stream (ctaphid.Conn from
// hw/hidraw, hw/usbhid, or the emulator's in-process pipe), reads GetInfo
// once and caches it, and runs the authenticator commands mfad needs:
// MakeCredential, GetAssertion with GetNextAssertion, ClientPIN (retries,
// set, change, and the pinUvAuthToken behind a PIN, chosen by protocol and
// CTAP version), Reset, Selection and Wink. Choosing among several keys
// (the one the user touches wins, the others get CTAPHID_CANCEL through
// their cancelled context) is the relying party's race, in authn.
//
// It is transport-level: it does not judge attestations or assertions,
// which is the relying party's work (authn/fido2). Device errors come back
// as ctap2.StatusError wrapped with %w, so callers match them with
// errors.Is (ctap2.ErrPINRequired, ctap2.ErrPINInvalid,
// ctap2.ErrNoCredentials, ...).
//
// Imports: hw/ctap2, hw/ctaphid and the standard library (the drivers
// hw/hidraw and hw/usbhid are wired in by the daemon, which hands Open a
// ctaphid.Conn).
package fidokey
