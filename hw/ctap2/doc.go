// Package ctap2 is the CTAP2 data model of mfad: command bytes, status codes,
// the CBOR request and response structures of authenticatorGetInfo,
// MakeCredential, GetAssertion, GetNextAssertion, ClientPIN, Reset and
// Selection, authenticator data, COSE public keys, and PIN/UV auth
// protocols one and two, each for both the platform and the authenticator.
//
// It is pure: it does no I/O and keeps no state. Both sides of the wire use
// it. The host-side key driver (hw/fidokey) builds command frames with
// [EncodeCommand] and reads answers with [ParseResponse] and the typed
// ParseXxx helpers; the software authenticator (hw/emu) reads requests with
// [ParseRequest] and answers with [EncodeResponse] or a [StatusError].
// Bytes from a peer never make it panic: a malformed message is an error
// that wraps [ErrMalformed] on the host side, or a [StatusError] the device
// side can send back as it is.
//
// The package declares [Transport], the one method it needs from a CTAPHID
// channel (hw/ctaphid.Channel satisfies it), so that it never imports a
// transport.
//
// CBOR is the CTAP2 canonical encoding (CTAP 2.1 §8 "Message Encoding"),
// produced and read by one shared mode ([Marshal], [Unmarshal]); decoding
// is bounded in depth and size and rejects duplicate map keys.
//
// Imports: github.com/fxamacker/cbor/v2, golang.org/x/crypto and the
// standard library only.
package ctap2
