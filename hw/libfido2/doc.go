// Package libfido2 is mfad's second FIDO2 key driver, over
// github.com/keys-pub/go-libfido2 and the system's libfido2 (Debian's
// libfido2-dev; cgo). It is the reference the native stack (hw/fidokey over
// hw/hidraw) is held against: both answer GetInfo as a
// *ctap2.GetInfoResponse and MakeCredential and GetAssertion with ctap2
// response types, so callers can compare them.
//
// It owns the translation between the two: the device list, GetInfo, the
// rebuilding of the attestation object that libfido2 hands back in pieces
// (RebuildAttestation), assertions, PIN set/change/retries, reset, and the
// serialisation of go-libfido2's calls.
//
// What libfido2 (through go-libfido2) cannot give back, and this driver
// therefore cannot keep:
//
//   - GetInfo: only versions, extensions, AAGUID, options and PIN/UV auth
//     protocols; maxMsgSize, algorithms, transports, firmwareVersion and the
//     CTAP 2.1 members are zero;
//   - MakeCredential: the attestation statement's alg (derived from the
//     attestation certificate's key, or the credential's algorithm for self
//     attestation), the certificates of x5c after the leaf, epAtt,
//     largeBlobKey and unsigned extension outputs;
//   - GetAssertion: only the first assertion (not GetNextAssertion's), the
//     user's id but not its name and display name, numberOfCredentials.
//
// Cancellation: go-libfido2 opens the device inside every call and stores
// the handle without the lock its Cancel takes, so a Cancel during a call
// is a data race (and could touch a handle being freed). This driver holds
// one mutex around every go-libfido2 call, Cancel included: a request in
// progress is never interrupted, and a caller whose ctx ends gets ctx's
// error at once while the request finishes (or times out on the key) in the
// background. The native driver (hw/fidokey) does send CTAPHID_CANCEL.
//
// Without cgo the package still builds, and every call fails with
// ErrUnsupported, so that a CGO_ENABLED=0 mfad keeps its other drivers.
//
// Imports: github.com/keys-pub/go-libfido2, hw/ctap2, hw/hidraw and the
// standard library only.
package libfido2
