package ctap2

import (
	"crypto"
	"encoding/binary"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// AuthDataFlags is the flags byte of authenticator data (WebAuthn §6.1
// "Authenticator Data").
type AuthDataFlags byte

// Flag bits, WebAuthn §6.1. Bits 1 and 5 are reserved.
const (
	FlagUP AuthDataFlags = 0x01 // user present
	FlagUV AuthDataFlags = 0x04 // user verified
	FlagBE AuthDataFlags = 0x08 // backup eligible
	FlagBS AuthDataFlags = 0x10 // backed up
	FlagAT AuthDataFlags = 0x40 // attested credential data included
	FlagED AuthDataFlags = 0x80 // extension data included
)

// Has reports whether all bits of f2 are set in f.
func (f AuthDataFlags) Has(f2 AuthDataFlags) bool { return f&f2 == f2 }

// Sizes of the fixed parts of authenticator data (WebAuthn §6.1, §6.5.1).
const (
	authDataMinLen = 32 + 1 + 4
	aaguidLen      = 16
	// MaxCredentialIDLength is WebAuthn's bound on credentialIdLength (§6.5.1).
	MaxCredentialIDLength = 1023
)

// AttestedCredentialData is the attested credential data of authenticator
// data (WebAuthn §6.5.1). PublicKey is the credential public key as raw
// COSE_Key CBOR; see ParseCOSEKey or AttestedCredentialData.Key.
type AttestedCredentialData struct {
	AAGUID       [16]byte
	CredentialID []byte
	PublicKey    []byte
}

// Key decodes the credential public key.
func (c *AttestedCredentialData) Key() (crypto.PublicKey, COSEAlgorithm, error) {
	return ParseCOSEKey(c.PublicKey)
}

// AuthData is parsed authenticator data (WebAuthn §6.1). Extensions is the
// raw CBOR map of extension outputs, nil when the ED flag is clear.
type AuthData struct {
	RPIDHash           [32]byte
	Flags              AuthDataFlags
	SignCount          uint32
	AttestedCredential *AttestedCredentialData
	Extensions         []byte
}

// ParseAuthData parses authenticator data strictly: the AT flag is set
// exactly when attested credential data follows, the ED flag exactly when
// an extensions map follows, the credential public key is one CBOR map with
// integer labels, the extensions one CBOR map with text keys, and no byte
// is left over. Errors wrap ErrMalformed.
func ParseAuthData(b []byte) (*AuthData, error) {
	if len(b) < authDataMinLen {
		return nil, fmt.Errorf("%w: authData is %d bytes, need at least %d", ErrMalformed, len(b), authDataMinLen)
	}
	a := &AuthData{
		Flags:     AuthDataFlags(b[32]),
		SignCount: binary.BigEndian.Uint32(b[33:37]),
	}
	copy(a.RPIDHash[:], b[:32])
	rest := b[authDataMinLen:]
	if a.Flags.Has(FlagAT) {
		if len(rest) < aaguidLen+2 {
			return nil, fmt.Errorf("%w: authData: attested credential data truncated", ErrMalformed)
		}
		c := &AttestedCredentialData{}
		copy(c.AAGUID[:], rest[:aaguidLen])
		n := int(binary.BigEndian.Uint16(rest[aaguidLen:]))
		rest = rest[aaguidLen+2:]
		if n > MaxCredentialIDLength {
			return nil, fmt.Errorf("%w: authData: credentialIdLength %d exceeds %d", ErrMalformed, n, MaxCredentialIDLength)
		}
		if len(rest) < n {
			return nil, fmt.Errorf("%w: authData: credential id truncated (%d of %d bytes)", ErrMalformed, len(rest), n)
		}
		c.CredentialID = append([]byte(nil), rest[:n]...)
		rest = rest[n:]
		var key map[int64]cbor.RawMessage
		after, err := unmarshalFirst(rest, &key)
		if err != nil {
			return nil, fmt.Errorf("ctap2: authData: credential public key: %w", err)
		}
		c.PublicKey = append([]byte(nil), rest[:len(rest)-len(after)]...)
		rest = after
		a.AttestedCredential = c
	}
	if a.Flags.Has(FlagED) {
		var ext map[string]cbor.RawMessage
		after, err := unmarshalFirst(rest, &ext)
		if err != nil {
			return nil, fmt.Errorf("ctap2: authData: extensions: %w", err)
		}
		a.Extensions = append([]byte(nil), rest[:len(rest)-len(after)]...)
		rest = after
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: authData: %d trailing bytes", ErrMalformed, len(rest))
	}
	return a, nil
}

// Marshal encodes authenticator data. The AT and ED flags are taken from
// the presence of AttestedCredential and Extensions, whatever Flags says;
// the other bits of Flags are kept. The public key and extensions must be
// single CBOR maps.
func (a *AuthData) Marshal() ([]byte, error) {
	flags := a.Flags &^ (FlagAT | FlagED)
	b := make([]byte, authDataMinLen, 256)
	copy(b, a.RPIDHash[:])
	binary.BigEndian.PutUint32(b[33:37], a.SignCount)
	if c := a.AttestedCredential; c != nil {
		flags |= FlagAT
		if len(c.CredentialID) > MaxCredentialIDLength {
			return nil, fmt.Errorf("ctap2: authData: credential id of %d bytes exceeds %d", len(c.CredentialID), MaxCredentialIDLength)
		}
		var key map[int64]cbor.RawMessage
		if err := Unmarshal(c.PublicKey, &key); err != nil {
			return nil, fmt.Errorf("ctap2: authData: credential public key: %w", err)
		}
		b = append(b, c.AAGUID[:]...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(c.CredentialID)))
		b = append(b, c.CredentialID...)
		b = append(b, c.PublicKey...)
	}
	if a.Extensions != nil {
		flags |= FlagED
		var ext map[string]cbor.RawMessage
		if err := Unmarshal(a.Extensions, &ext); err != nil {
			return nil, fmt.Errorf("ctap2: authData: extensions: %w", err)
		}
		b = append(b, a.Extensions...)
	}
	b[32] = byte(flags)
	return b, nil
}
