package emu

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"

	"github.com/fxamacker/cbor/v2"

	"github.com/mfad/mfad/hw/ctap2"
)

// Extension identifiers the authenticator supports (CTAP 2.1 §12).
const (
	extCredProtect = "credProtect" // §12.1 Credential Protection
	extHMACSecret  = "hmac-secret" // §12.5 HMAC Secret
)

// credProtect levels, CTAP 2.1 §12.1.
const (
	protectUVOptional       = 1 // userVerificationOptional
	protectUVOptionalWithID = 2 // userVerificationOptionalWithCredentialIDList
	protectUVRequired       = 3 // userVerificationRequired
)

// Credential id flag bits beside credFlagResident (the header is
// authenticated, so they cannot be changed without breaking the id).
const (
	credFlagHMACSecret = 0x02 // made with hmac-secret: true
	credProtectShift   = 2    // bits 2-3: the credProtect level (0: none asked, as 1)
	credProtectMask    = 0x03
)

// protectLevel is the credProtect level of a credential id's flags.
func protectLevel(flags byte) int {
	if l := int(flags>>credProtectShift) & credProtectMask; l != 0 {
		return l
	}
	return protectUVOptional
}

// usableWithoutUV applies credProtect to a credential found for a
// GetAssertion without user verification (CTAP 2.1 §12.1): level 3 never,
// level 2 only when the platform named it in the allow list.
func usableWithoutUV(flags byte, inAllowList bool) bool {
	switch protectLevel(flags) {
	case protectUVRequired:
		return false
	case protectUVOptionalWithID:
		return inAllowList
	}
	return true
}

// mcExtensions are the MakeCredential extension inputs the authenticator
// acts on; others are ignored (CTAP 2.1 §6.1.2 step 9).
type mcExtensions struct {
	protect int
	hmac    bool
}

func parseMCExtensions(raw map[string]cbor.RawMessage) (mcExtensions, error) {
	var e mcExtensions
	if b, ok := raw[extCredProtect]; ok {
		var level uint64
		if err := cbor.Unmarshal(b, &level); err != nil || level < protectUVOptional || level > protectUVRequired {
			return e, fmt.Errorf("emu: credProtect: %w", ctap2.ErrInvalidParameter)
		}
		e.protect = int(level)
	}
	if b, ok := raw[extHMACSecret]; ok {
		if err := cbor.Unmarshal(b, &e.hmac); err != nil {
			return e, fmt.Errorf("emu: hmac-secret: %w", ctap2.ErrCBORUnexpectedType)
		}
	}
	return e, nil
}

// flags are the credential id flag bits these inputs ask for.
func (e mcExtensions) flags() byte {
	f := byte(e.protect) << credProtectShift
	if e.hmac {
		f |= credFlagHMACSecret
	}
	return f
}

// output is the authenticator data extensions map of a new credential,
// nil when no extension was asked for.
func (e mcExtensions) output() ([]byte, error) {
	m := map[string]any{}
	if e.protect != 0 {
		m[extCredProtect] = e.protect
	}
	if e.hmac {
		m[extHMACSecret] = true
	}
	if len(m) == 0 {
		return nil, nil
	}
	return ctap2.Marshal(m)
}

// hmacSecretInput is the hmac-secret GetAssertion input (CTAP 2.1 §12.5).
type hmacSecretInput struct {
	KeyAgreement *ctap2.COSEKey `cbor:"1,keyasint"`
	SaltEnc      []byte         `cbor:"2,keyasint"`
	SaltAuth     []byte         `cbor:"3,keyasint"`
	Protocol     uint64         `cbor:"4,keyasint,omitempty"`
}

// hmacRequest is a verified hmac-secret input: the shared secret and the
// one or two 32-byte salts.
type hmacRequest struct {
	proto  ctap2.PINProtocol
	shared []byte
	salts  []byte
}

// parseHMACSecret checks a GetAssertion's hmac-secret input: the platform
// key agreement key with the authenticator's, saltAuth over saltEnc, and
// one or two salts (CTAP 2.1 §12.5, authenticator processing). nil when
// the request has none. Called with a.mu held.
func (a *Authenticator) parseHMACSecret(raw map[string]cbor.RawMessage) (*hmacRequest, error) {
	b, ok := raw[extHMACSecret]
	if !ok {
		return nil, nil
	}
	var in hmacSecretInput
	if err := cbor.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("emu: hmac-secret: %w", ctap2.ErrCBORUnexpectedType)
	}
	if in.KeyAgreement == nil || in.SaltEnc == nil || in.SaltAuth == nil {
		return nil, fmt.Errorf("emu: hmac-secret: %w", ctap2.ErrMissingParameter)
	}
	version := in.Protocol
	if version == 0 {
		version = 1
	}
	proto, err := ctap2.PINProtocolByVersion(version)
	if err != nil {
		return nil, fmt.Errorf("emu: hmac-secret: %w", ctap2.ErrInvalidParameter)
	}
	shared, err := a.shared(proto, in.KeyAgreement)
	if err != nil {
		return nil, err
	}
	if err := proto.Verify(shared, in.SaltEnc, in.SaltAuth); err != nil {
		return nil, fmt.Errorf("emu: hmac-secret saltAuth: %w", ctap2.ErrPINAuthInvalid)
	}
	salts, err := proto.Decrypt(shared, in.SaltEnc)
	if err != nil || (len(salts) != 32 && len(salts) != 64) {
		return nil, fmt.Errorf("emu: hmac-secret salts: %w", ctap2.ErrInvalidLength)
	}
	return &hmacRequest{proto: proto, shared: shared, salts: salts}, nil
}

// output computes the encrypted hmac-secret output for a credential: HMAC
// of each salt under the credential's CredRandom, which is derived from
// the wrapping key, the credential id and whether the user was verified
// (the two CredRandoms of §12.5), so non-resident credentials need no
// state.
func (h *hmacRequest) output(wrapKey, credID []byte, uv bool) ([]byte, error) {
	mac := hmac.New(sha256.New, wrapKey)
	mac.Write([]byte(extHMACSecret))
	if uv {
		mac.Write([]byte{1})
	} else {
		mac.Write([]byte{0})
	}
	mac.Write(credID)
	credRandom := mac.Sum(nil)
	var out []byte
	for i := 0; i < len(h.salts); i += 32 {
		m := hmac.New(sha256.New, credRandom)
		m.Write(h.salts[i : i+32])
		out = m.Sum(out)
	}
	return h.proto.Encrypt(h.shared, out)
}
