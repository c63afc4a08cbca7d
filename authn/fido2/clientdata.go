package fido2

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"unicode/utf8"
)

// Client data types (WebAuthn §5.8.1 CollectedClientData.type).
const (
	TypeCreate = "webauthn.create"
	TypeGet    = "webauthn.get"
)

// MinChallengeLength is the shortest challenge NewChallenge makes and the
// ceremonies accept: WebAuthn §13.4.3 asks for at least 16 random bytes.
const MinChallengeLength = 16

// maxClientDataJSON bounds the client data a ceremony reads. mfad builds
// it itself; a few hundred bytes is normal.
const maxClientDataJSON = 4096

// DefaultRPID is the relying party id of a workstation: "pam://" followed
// by its host name, the convention of pam-u2f. The origin is the same
// string.
func DefaultRPID(hostname string) string { return "pam://" + hostname }

// NewChallenge reads a fresh MinChallengeLength-byte challenge from rand.
func NewChallenge(rand io.Reader) ([]byte, error) {
	c := make([]byte, MinChallengeLength)
	if _, err := io.ReadFull(rand, c); err != nil {
		return nil, fmt.Errorf("fido2: challenge: %w", err)
	}
	return c, nil
}

// ClientData is the collected client data of WebAuthn §5.8.1, with the
// members mfad writes and reads.
type ClientData struct {
	Type        string `json:"type"`
	Challenge   string `json:"challenge"` // base64url without padding
	Origin      string `json:"origin"`
	CrossOrigin bool   `json:"crossOrigin"`
}

// BuildClientData returns the clientDataJSON of a ceremony and its SHA-256
// hash, the clientDataHash to send to the authenticator. typ is TypeCreate
// or TypeGet, origin is the relying party id (see DefaultRPID). The members
// come in the order of WebAuthn §5.8.1.2 (type, challenge, origin,
// crossOrigin), so any WebAuthn library reads and verifies the stored
// bytes.
func BuildClientData(typ string, challenge []byte, origin string) (clientDataJSON, clientDataHash []byte) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	// Encoding a struct of strings and a bool cannot fail.
	_ = enc.Encode(ClientData{
		Type:      typ,
		Challenge: base64.RawURLEncoding.EncodeToString(challenge),
		Origin:    origin,
	})
	clientDataJSON = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	h := sha256.Sum256(clientDataJSON)
	return clientDataJSON, h[:]
}

// checkClientData parses clientDataJSON and checks it against a ceremony
// (WebAuthn §7.1 steps 5-10, §7.2 steps 9-14): the type, the challenge
// (base64url without padding, compared in constant time), the origin, and
// crossOrigin false or absent. It returns SHA-256(clientDataJSON).
func checkClientData(clientDataJSON []byte, typ string, challenge []byte, origin string) ([]byte, error) {
	if len(challenge) == 0 {
		return nil, fail(ErrInvalidPolicy, "no challenge to compare with")
	}
	if origin == "" {
		return nil, fail(ErrInvalidPolicy, "no origin to compare with")
	}
	if len(clientDataJSON) == 0 || len(clientDataJSON) > maxClientDataJSON {
		return nil, fail(ErrMalformed, "clientDataJSON of %d bytes", len(clientDataJSON))
	}
	if !utf8.Valid(clientDataJSON) {
		return nil, fail(ErrMalformed, "clientDataJSON is not UTF-8")
	}
	var cd struct {
		Type        *string `json:"type"`
		Challenge   *string `json:"challenge"`
		Origin      *string `json:"origin"`
		CrossOrigin *bool   `json:"crossOrigin"`
	}
	if err := json.Unmarshal(clientDataJSON, &cd); err != nil {
		return nil, fail(ErrMalformed, "clientDataJSON: %v", err)
	}
	if cd.Type == nil || cd.Challenge == nil || cd.Origin == nil {
		return nil, fail(ErrMalformed, "clientDataJSON lacks type, challenge or origin")
	}
	if *cd.Type != typ {
		return nil, fail(ErrWrongType, "clientData.type %q, want %q", *cd.Type, typ)
	}
	got, err := base64.RawURLEncoding.Strict().DecodeString(*cd.Challenge)
	if err != nil {
		return nil, fail(ErrMalformed, "clientData.challenge is not base64url: %v", err)
	}
	if subtle.ConstantTimeCompare(got, challenge) != 1 {
		return nil, fail(ErrChallengeMismatch, "clientData.challenge is not the one issued")
	}
	if *cd.Origin != origin {
		return nil, fail(ErrOriginMismatch, "clientData.origin %q, want %q", *cd.Origin, origin)
	}
	if cd.CrossOrigin != nil && *cd.CrossOrigin {
		return nil, fail(ErrOriginMismatch, "clientData.crossOrigin is true")
	}
	h := sha256.Sum256(clientDataJSON)
	return h[:], nil
}

// fail builds an error wrapping the reason r with a detail.
func fail(r Reason, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{r}, args...)...)
}
