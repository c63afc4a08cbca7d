package ctap2

import (
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// Decoding limits. A CTAP2 message is at most a few kilobytes
// (GetInfo maxMsgSize, 1024 to 7609 bytes on real keys), so these bound
// hostile input without refusing any real exchange.
const (
	// MaxNestedLevels bounds nested arrays and maps: a request map holding
	// an extension map holding a COSE key is four levels deep.
	MaxNestedLevels = 16
	// MaxArrayElements bounds arrays such as excludeList or x5c.
	MaxArrayElements = 1024
	// MaxMapPairs bounds maps such as the GetInfo options.
	MaxMapPairs = 256
)

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	eo := cbor.CTAP2EncOptions()
	// A nil byte string or list is an empty one, never CBOR null.
	eo.NilContainers = cbor.NilContainerAsEmpty
	em, err := eo.EncMode()
	if err != nil {
		panic("ctap2: CBOR encoding options: " + err.Error()) // constant options; cannot fail at run time
	}
	dm, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		MaxNestedLevels:   MaxNestedLevels,
		MaxArrayElements:  MaxArrayElements,
		MaxMapPairs:       MaxMapPairs,
		FieldNameMatching: cbor.FieldNameMatchingCaseSensitive,
		// Authenticators may truncate user names in the middle of a UTF-8
		// sequence (CTAP 2.1 §6.1.2, user entity truncation); read them anyway.
		UTF8: cbor.UTF8DecodeInvalid,
	}.DecMode()
	if err != nil {
		panic("ctap2: CBOR decoding options: " + err.Error()) // constant options; cannot fail at run time
	}
	encMode, decMode = em, dm
}

// Marshal encodes v in CTAP2 canonical CBOR (CTAP 2.1 §8 "Message
// Encoding": shortest integer and length forms, no indefinite lengths, no
// tags, map keys sorted by length then bytewise).
func Marshal(v any) ([]byte, error) {
	b, err := encMode.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("ctap2: encode: %w", err)
	}
	return b, nil
}

// Unmarshal decodes exactly one CBOR data item from b into v, under the
// package's limits, rejecting duplicate map keys, indefinite lengths, tags
// and trailing bytes. The error wraps ErrInvalidCBOR or
// ErrCBORUnexpectedType (so a device can answer with it) and ErrMalformed.
func Unmarshal(b []byte, v any) error {
	if err := decMode.Unmarshal(b, v); err != nil {
		return cborError(err)
	}
	return nil
}

// unmarshalFirst decodes the first CBOR item of b into v and returns the
// bytes after it.
func unmarshalFirst(b []byte, v any) ([]byte, error) {
	rest, err := decMode.UnmarshalFirst(b, v)
	if err != nil {
		return nil, cborError(err)
	}
	return rest, nil
}

// cborError classes a decoder error by the status a device would answer.
func cborError(err error) error {
	var te *cbor.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("%w: %w: %v", ErrMalformed, ErrCBORUnexpectedType, err)
	}
	return fmt.Errorf("%w: %w: %v", ErrMalformed, ErrInvalidCBOR, err)
}
