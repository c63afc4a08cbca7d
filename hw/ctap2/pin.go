package ctap2

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"unicode/utf8"
)

// PINProtocol is a PIN/UV auth protocol, the abstract interface of
// CTAP 2.1 §6.5.4, usable by the platform and by the authenticator.
//
// SharedSecret is ecdh(): it derives the shared secret from our private
// key and the peer's public key with the protocol's KDF. Encrypt and
// Decrypt take that shared secret. Authenticate and Verify take either the
// shared secret (setPIN, changePIN) or a pinUvAuthToken (MakeCredential,
// GetAssertion). Verify returns nil or an error wrapping ErrPINAuthInvalid.
// Errors of Encrypt and Decrypt wrap ErrInvalidParameter.
type PINProtocol interface {
	Version() uint64
	SharedSecret(priv *ecdh.PrivateKey, peer *ecdh.PublicKey) ([]byte, error)
	Encrypt(sharedSecret, plaintext []byte) ([]byte, error)
	Decrypt(sharedSecret, ciphertext []byte) ([]byte, error)
	Authenticate(key, message []byte) []byte
	Verify(key, message, signature []byte) error
}

// ProtocolOne is PIN/UV auth protocol one (CTAP 2.1 §6.5.6): KDF is
// SHA-256 of the ECDH x-coordinate, AES-256-CBC with an all-zero IV,
// authenticate is the first 16 bytes of HMAC-SHA-256.
type ProtocolOne struct{}

// ProtocolTwo is PIN/UV auth protocol two (CTAP 2.1 §6.5.7): KDF is
// HKDF-SHA-256 with a salt of 32 zero bytes giving a 32-byte HMAC key
// ("CTAP2 HMAC key") then a 32-byte AES key ("CTAP2 AES key"),
// AES-256-CBC with a random IV prepended to the ciphertext, authenticate is
// the whole HMAC-SHA-256. Rand supplies the IVs; nil means crypto/rand.
type ProtocolTwo struct {
	Rand io.Reader
}

// PINProtocolByVersion returns protocol one or two. Other versions give an
// error wrapping ErrInvalidParameter (CTAP 2.1 §6.5.5.1).
func PINProtocolByVersion(v uint64) (PINProtocol, error) {
	switch v {
	case 1:
		return ProtocolOne{}, nil
	case 2:
		return ProtocolTwo{}, nil
	}
	return nil, fmt.Errorf("ctap2: pinUvAuthProtocol %d: %w", v, ErrInvalidParameter)
}

// ecdhZ computes the shared point's x-coordinate, Z.
func ecdhZ(priv *ecdh.PrivateKey, peer *ecdh.PublicKey) ([]byte, error) {
	if priv == nil || peer == nil || priv.Curve() != ecdh.P256() || peer.Curve() != ecdh.P256() {
		return nil, fmt.Errorf("ctap2: key agreement needs P-256 keys: %w", ErrInvalidParameter)
	}
	z, err := priv.ECDH(peer)
	if err != nil {
		return nil, fmt.Errorf("ctap2: key agreement: %v: %w", err, ErrInvalidParameter)
	}
	return z, nil
}

func aesCBC(key, iv, in []byte, encrypt bool) ([]byte, error) {
	if len(in)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("ctap2: AES-CBC input of %d bytes is not a whole number of blocks: %w", len(in), ErrInvalidParameter)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("ctap2: %v: %w", err, ErrInvalidParameter)
	}
	out := make([]byte, len(in))
	if encrypt {
		cipher.NewCBCEncrypter(block, iv).CryptBlocks(out, in)
	} else {
		cipher.NewCBCDecrypter(block, iv).CryptBlocks(out, in)
	}
	return out, nil
}

func hmacSHA256(key, message []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(message)
	return m.Sum(nil)
}

// Version returns 1.
func (ProtocolOne) Version() uint64 { return 1 }

// SharedSecret returns SHA-256(Z), 32 bytes.
func (ProtocolOne) SharedSecret(priv *ecdh.PrivateKey, peer *ecdh.PublicKey) ([]byte, error) {
	z, err := ecdhZ(priv, peer)
	if err != nil {
		return nil, err
	}
	s := sha256.Sum256(z)
	return s[:], nil
}

// Encrypt is AES-256-CBC with a zero IV and no padding.
func (ProtocolOne) Encrypt(sharedSecret, plaintext []byte) ([]byte, error) {
	if len(sharedSecret) != 32 {
		return nil, fmt.Errorf("ctap2: protocol one key of %d bytes: %w", len(sharedSecret), ErrInvalidParameter)
	}
	return aesCBC(sharedSecret, make([]byte, aes.BlockSize), plaintext, true)
}

// Decrypt inverts Encrypt.
func (ProtocolOne) Decrypt(sharedSecret, ciphertext []byte) ([]byte, error) {
	if len(sharedSecret) != 32 {
		return nil, fmt.Errorf("ctap2: protocol one key of %d bytes: %w", len(sharedSecret), ErrInvalidParameter)
	}
	return aesCBC(sharedSecret, make([]byte, aes.BlockSize), ciphertext, false)
}

// Authenticate returns LEFT(HMAC-SHA-256(key, message), 16).
func (ProtocolOne) Authenticate(key, message []byte) []byte {
	return hmacSHA256(key, message)[:16]
}

// Verify checks a 16-byte signature in constant time.
func (p ProtocolOne) Verify(key, message, signature []byte) error {
	if len(signature) != 16 || subtle.ConstantTimeCompare(p.Authenticate(key, message), signature) != 1 {
		return fmt.Errorf("ctap2: protocol one: %w", ErrPINAuthInvalid)
	}
	return nil
}

// Version returns 2.
func (ProtocolTwo) Version() uint64 { return 2 }

var hkdfSalt = make([]byte, 32)

// SharedSecret returns HKDF(Z, "CTAP2 HMAC key") || HKDF(Z, "CTAP2 AES
// key"), 64 bytes.
func (ProtocolTwo) SharedSecret(priv *ecdh.PrivateKey, peer *ecdh.PublicKey) ([]byte, error) {
	z, err := ecdhZ(priv, peer)
	if err != nil {
		return nil, err
	}
	hmacKey, err := hkdf.Key(sha256.New, z, hkdfSalt, "CTAP2 HMAC key", 32)
	if err != nil {
		return nil, fmt.Errorf("ctap2: HKDF: %w", err)
	}
	aesKey, err := hkdf.Key(sha256.New, z, hkdfSalt, "CTAP2 AES key", 32)
	if err != nil {
		return nil, fmt.Errorf("ctap2: HKDF: %w", err)
	}
	return append(hmacKey, aesKey...), nil
}

func (p ProtocolTwo) rand() io.Reader {
	if p.Rand != nil {
		return p.Rand
	}
	return rand.Reader
}

// Encrypt is AES-256-CBC under the AES half of the shared secret with a
// fresh random IV, returned as IV || ciphertext.
func (p ProtocolTwo) Encrypt(sharedSecret, plaintext []byte) ([]byte, error) {
	if len(sharedSecret) != 64 {
		return nil, fmt.Errorf("ctap2: protocol two shared secret of %d bytes: %w", len(sharedSecret), ErrInvalidParameter)
	}
	iv := make([]byte, aes.BlockSize)
	if _, err := io.ReadFull(p.rand(), iv); err != nil {
		return nil, fmt.Errorf("ctap2: IV: %w", err)
	}
	ct, err := aesCBC(sharedSecret[32:], iv, plaintext, true)
	if err != nil {
		return nil, err
	}
	return append(iv, ct...), nil
}

// Decrypt inverts Encrypt.
func (ProtocolTwo) Decrypt(sharedSecret, ciphertext []byte) ([]byte, error) {
	if len(sharedSecret) != 64 {
		return nil, fmt.Errorf("ctap2: protocol two shared secret of %d bytes: %w", len(sharedSecret), ErrInvalidParameter)
	}
	if len(ciphertext) < aes.BlockSize {
		return nil, fmt.Errorf("ctap2: protocol two ciphertext of %d bytes: %w", len(ciphertext), ErrInvalidParameter)
	}
	return aesCBC(sharedSecret[32:], ciphertext[:aes.BlockSize], ciphertext[aes.BlockSize:], false)
}

// Authenticate returns HMAC-SHA-256 under the first 32 bytes of key: the
// HMAC half of a shared secret, or a whole 32-byte pinUvAuthToken.
func (ProtocolTwo) Authenticate(key, message []byte) []byte {
	if len(key) > 32 {
		key = key[:32]
	}
	return hmacSHA256(key, message)
}

// Verify checks a 32-byte signature in constant time.
func (p ProtocolTwo) Verify(key, message, signature []byte) error {
	if len(signature) != 32 || subtle.ConstantTimeCompare(p.Authenticate(key, message), signature) != 1 {
		return fmt.Errorf("ctap2: protocol two: %w", ErrPINAuthInvalid)
	}
	return nil
}

// Encapsulate is the platform's half of key agreement (CTAP 2.1 §6.5.4
// encapsulate): it makes a fresh P-256 key, agrees on a shared secret with
// the authenticator's key agreement key (from getKeyAgreement) and returns
// the platform key to send as keyAgreement, and the shared secret.
func Encapsulate(p PINProtocol, authenticatorKey *COSEKey) (platformKey *COSEKey, sharedSecret []byte, err error) {
	peer, err := authenticatorKey.ECDHPublicKey()
	if err != nil {
		return nil, nil, err
	}
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("ctap2: key agreement key: %w", err)
	}
	sharedSecret, err = p.SharedSecret(priv, peer)
	if err != nil {
		return nil, nil, err
	}
	platformKey, err = NewKeyAgreementKey(priv.PublicKey())
	if err != nil {
		return nil, nil, err
	}
	return platformKey, sharedSecret, nil
}

// PIN limits, CTAP 2.1 §6.5.1 "PIN Composition Requirements".
const (
	MinPINCodePoints = 4  // the smallest minPINLength
	MaxPINBytes      = 63 // UTF-8 bytes, so that the padded PIN ends in a zero
	paddedPINLen     = 64
)

// PINHash returns LEFT(SHA-256(pin), 16), what setPIN stores and
// getPinToken compares.
func PINHash(pin []byte) []byte {
	h := sha256.Sum256(pin)
	return h[:16]
}

// checkPIN applies the platform's PIN rules: at least 4 code points, at
// most 63 bytes of UTF-8.
func checkPIN(pin string) error {
	if !utf8.ValidString(pin) || utf8.RuneCountInString(pin) < MinPINCodePoints || len(pin) > MaxPINBytes {
		return fmt.Errorf("ctap2: PIN must be 4 to 63 bytes of UTF-8 with at least 4 characters: %w", ErrPINPolicyViolation)
	}
	return nil
}

// PINHashEnc returns encrypt(sharedSecret, LEFT(SHA-256(pin), 16)), the
// pinHashEnc of changePIN and getPinToken.
func PINHashEnc(p PINProtocol, sharedSecret []byte, pin string) ([]byte, error) {
	return p.Encrypt(sharedSecret, PINHash([]byte(pin)))
}

// NewPINEnc returns encrypt(sharedSecret, pin padded with zeros to 64
// bytes), the newPinEnc of setPIN and changePIN. The PIN must pass the
// platform's rules, else the error wraps ErrPINPolicyViolation.
func NewPINEnc(p PINProtocol, sharedSecret []byte, pin string) ([]byte, error) {
	if err := checkPIN(pin); err != nil {
		return nil, err
	}
	padded := make([]byte, paddedPINLen)
	copy(padded, pin)
	return p.Encrypt(sharedSecret, padded)
}

// DecryptNewPIN is the authenticator's side of NewPINEnc: it decrypts
// newPinEnc, checks the 64-byte padding and returns the PIN bytes without
// it. It does not apply minPINLength, which is the authenticator's policy.
func DecryptNewPIN(p PINProtocol, sharedSecret, newPINEnc []byte) ([]byte, error) {
	padded, err := p.Decrypt(sharedSecret, newPINEnc)
	if err != nil {
		return nil, err
	}
	if len(padded) != paddedPINLen {
		return nil, fmt.Errorf("ctap2: padded PIN of %d bytes: %w", len(padded), ErrInvalidParameter)
	}
	pin := padded
	if i := bytes.IndexByte(padded, 0); i >= 0 {
		pin = padded[:i]
		if !allZero(padded[i:]) {
			return nil, fmt.Errorf("ctap2: PIN padding is not zeros: %w", ErrPINPolicyViolation)
		}
	}
	if len(pin) > MaxPINBytes {
		return nil, fmt.Errorf("ctap2: PIN of %d bytes: %w", len(pin), ErrPINPolicyViolation)
	}
	return pin, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// DecryptPINHash is the authenticator's side of PINHashEnc: it returns the
// 16-byte PIN hash to compare with the stored one.
func DecryptPINHash(p PINProtocol, sharedSecret, pinHashEnc []byte) ([]byte, error) {
	h, err := p.Decrypt(sharedSecret, pinHashEnc)
	if err != nil {
		return nil, err
	}
	if len(h) != 16 {
		return nil, fmt.Errorf("ctap2: PIN hash of %d bytes: %w", len(h), ErrInvalidParameter)
	}
	return h, nil
}

// DecryptPinUvAuthToken decrypts the pinUvAuthToken of a getPinToken or
// getPinUvAuthTokenUsing...WithPermissions response. A token is 16 or 32
// bytes (protocol one) or 32 bytes (protocol two); anything else wraps
// ErrMalformed.
func DecryptPinUvAuthToken(p PINProtocol, sharedSecret, tokenEnc []byte) ([]byte, error) {
	t, err := p.Decrypt(sharedSecret, tokenEnc)
	if err != nil {
		return nil, fmt.Errorf("%w: pinUvAuthToken: %w", ErrMalformed, err)
	}
	if len(t) != 32 && !(len(t) == 16 && p.Version() == 1) {
		return nil, fmt.Errorf("%w: pinUvAuthToken of %d bytes", ErrMalformed, len(t))
	}
	return t, nil
}

// PinUvAuthParam returns authenticate(token, clientDataHash), the
// pinUvAuthParam of MakeCredential and GetAssertion (CTAP 2.1 §6.1.1,
// §6.2.1).
func PinUvAuthParam(p PINProtocol, token, clientDataHash []byte) []byte {
	return p.Authenticate(token, clientDataHash)
}

// SetPINRequest builds a setPIN request (CTAP 2.1 §6.5.5.5) for the
// authenticator's key agreement key: a fresh platform key, newPinEnc and
// pinUvAuthParam = authenticate(sharedSecret, newPinEnc).
func SetPINRequest(p PINProtocol, authenticatorKey *COSEKey, pin string) (*ClientPINRequest, error) {
	platformKey, shared, err := Encapsulate(p, authenticatorKey)
	if err != nil {
		return nil, err
	}
	newPINEnc, err := NewPINEnc(p, shared, pin)
	if err != nil {
		return nil, err
	}
	return &ClientPINRequest{
		PinUvAuthProtocol: p.Version(),
		SubCommand:        PINSet,
		KeyAgreement:      platformKey,
		NewPINEnc:         newPINEnc,
		PinUvAuthParam:    p.Authenticate(shared, newPINEnc),
	}, nil
}

// ChangePINRequest builds a changePIN request (CTAP 2.1 §6.5.5.6):
// pinUvAuthParam = authenticate(sharedSecret, newPinEnc || pinHashEnc).
func ChangePINRequest(p PINProtocol, authenticatorKey *COSEKey, currentPIN, newPIN string) (*ClientPINRequest, error) {
	platformKey, shared, err := Encapsulate(p, authenticatorKey)
	if err != nil {
		return nil, err
	}
	newPINEnc, err := NewPINEnc(p, shared, newPIN)
	if err != nil {
		return nil, err
	}
	pinHashEnc, err := PINHashEnc(p, shared, currentPIN)
	if err != nil {
		return nil, err
	}
	return &ClientPINRequest{
		PinUvAuthProtocol: p.Version(),
		SubCommand:        PINChange,
		KeyAgreement:      platformKey,
		NewPINEnc:         newPINEnc,
		PINHashEnc:        pinHashEnc,
		PinUvAuthParam:    p.Authenticate(shared, append(append([]byte(nil), newPINEnc...), pinHashEnc...)),
	}, nil
}

// GetPINTokenRequest builds a request for a pinUvAuthToken with the PIN:
// getPinToken (CTAP 2.1 §6.5.5.7.1) when permissions is zero, else
// getPinUvAuthTokenUsingPinWithPermissions (§6.5.5.7.2) with rpID, which
// may be empty. It returns the shared secret needed to decrypt the token
// in the response (DecryptPinUvAuthToken).
func GetPINTokenRequest(p PINProtocol, authenticatorKey *COSEKey, pin string, permissions Permission, rpID string) (req *ClientPINRequest, sharedSecret []byte, err error) {
	platformKey, shared, err := Encapsulate(p, authenticatorKey)
	if err != nil {
		return nil, nil, err
	}
	pinHashEnc, err := PINHashEnc(p, shared, pin)
	if err != nil {
		return nil, nil, err
	}
	req = &ClientPINRequest{
		PinUvAuthProtocol: p.Version(),
		SubCommand:        PINGetToken,
		KeyAgreement:      platformKey,
		PINHashEnc:        pinHashEnc,
	}
	if permissions != 0 {
		req.SubCommand = PINGetTokenUsingPinWithPermissions
		req.Permissions = &permissions
		req.RPID = rpID
	}
	return req, shared, nil
}
