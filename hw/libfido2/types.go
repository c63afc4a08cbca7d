package libfido2

import (
	"errors"

	"github.com/mfad/mfad/hw/ctap2"
)

// ErrUnsupported is returned by every call of a build without cgo, where
// libfido2 cannot be linked.
var ErrUnsupported = errors.New("libfido2: not in this build (needs cgo and libfido2-dev)")

// MakeCredentialParams are the inputs of MakeCredential.
type MakeCredentialParams struct {
	ClientDataHash []byte
	RP             ctap2.RPEntity
	User           ctap2.UserEntity
	// Algorithm is the credential's algorithm; zero means ES256.
	Algorithm   ctap2.COSEAlgorithm
	ResidentKey bool
	UV          bool
	PIN         string
}

// GetAssertionParams are the inputs of GetAssertion.
type GetAssertionParams struct {
	RPID           string
	ClientDataHash []byte
	AllowList      [][]byte
	// UP asks for a touch; false sends up=false.
	UP  bool
	UV  bool
	PIN string
}
