// Package emu is mfad's software FIDO2 authenticator: the device side of
// CTAP2 and U2F behind a CTAPHID server, so that a [ctaphid.Server] whose
// Handler is an [*Authenticator] is a security key. Attached in-process to
// one end of [ctaphid.Pipe] (see [Attach]), it is reached by the host stack
// (hw/fidokey -> hw/ctap2 -> hw/ctaphid) exactly as real hardware is, at the
// HID report boundary.
//
// It owns:
//
//   - the authenticator: GetInfo, MakeCredential (ES256, EdDSA, resident and
//     non-resident credentials, excludeList, packed attestation, the
//     credProtect and hmac-secret extensions),
//     GetAssertion and GetNextAssertion, credential management (metadata,
//     enumeration, deletion, user update), ClientPIN with PIN/UV auth
//     protocols one and two, Reset (only within 10 s of power-up) and
//     Selection (CTAP 2.1 §6), plus U2F REGISTER, AUTHENTICATE and VERSION
//     over CTAPHID_MSG (FIDO U2F Raw Message Formats);
//   - its identity: the fixed [AAGUID] and an attestation CA of its own,
//     generated on first use, that issues the batch certificate signing every
//     attestation, so that relying parties can recognise software keys
//     (DESIGN.md, "Software keys are not keys");
//   - user presence, approved at once or waiting for [Authenticator.Touch];
//   - its state (keys, resident credentials, sign counter, PIN hash and
//     retries), kept through the [Persister] interface it declares; the
//     daemon backs it with its sealed store, tests with [NewMemory] or
//     [FilePersister];
//   - fault injection ([Fault]): no answer, CTAP errors, corrupt frames,
//     counter rollback (a cloned key), slow keepalive.
//
// Non-resident credential ids and U2F key handles carry the credential's
// private key sealed with AES-256-GCM under the emulator's wrapping key, with
// the rpIdHash (U2F: the application parameter) as additional data, so
// that a handle only opens for the relying party it was made for.
//
// Bytes from the host never make it panic: every malformed request is
// answered with a CTAP2 status or a U2F status word.
//
// Imports: hw/ctap2, hw/ctaphid, github.com/fxamacker/cbor/v2,
// golang.org/x/crypto and the standard library only.
package emu
