package totp

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base32"
	"errors"
	"fmt"
	"hash"
	"strings"
	"time"
)

// Error classes. Every error of the package wraps one of them (with %w) so
// that callers can class it with errors.Is; none carries a secret.
var (
	// ErrParams: an unsupported algorithm, digit count or period.
	ErrParams = errors.New("totp: invalid parameters")
	// ErrSecret: a secret that is missing, badly encoded or of a bad length.
	ErrSecret = errors.New("totp: invalid secret")
	// ErrURI: an otpauth URI that does not follow the Key URI format.
	ErrURI = errors.New("totp: invalid otpauth URI")
	// ErrPSKC: a PSKC file that is refused (see PSKCError for the key).
	ErrPSKC = errors.New("totp: invalid PSKC file")
)

// Secret lengths in bytes. RFC 4226 section 4, R6: the shared secret MUST be
// at least 128 bits; 160 bits is recommended.
const (
	MinSecretLen = 16
	MaxSecretLen = 128
)

// Algorithm is the HMAC hash of RFC 6238 section 1.2. The zero value is not
// a valid algorithm, so that a forgotten field fails validation.
type Algorithm int

// The hash functions RFC 6238 names.
const (
	SHA1 Algorithm = iota + 1
	SHA256
	SHA512
)

// String returns the otpauth spelling: "SHA1", "SHA256", "SHA512".
func (a Algorithm) String() string {
	switch a {
	case SHA1:
		return "SHA1"
	case SHA256:
		return "SHA256"
	case SHA512:
		return "SHA512"
	}
	return fmt.Sprintf("Algorithm(%d)", int(a))
}

// ParseAlgorithm accepts "SHA1", "SHA256" and "SHA512" in any case, also
// spelt "SHA-256", "HMAC-SHA256" or "hmac-sha256".
func ParseAlgorithm(s string) (Algorithm, error) {
	n := strings.ToUpper(strings.TrimSpace(s))
	n = strings.TrimPrefix(n, "HMAC")
	n = strings.TrimLeft(n, "-_ ")
	n = strings.ReplaceAll(n, "-", "")
	switch n {
	case "SHA1":
		return SHA1, nil
	case "SHA256":
		return SHA256, nil
	case "SHA512":
		return SHA512, nil
	}
	return 0, fmt.Errorf("%w: unsupported algorithm %q (want SHA1, SHA256 or SHA512)", ErrParams, clip(s))
}

func (a Algorithm) valid() bool { return a >= SHA1 && a <= SHA512 }

func (a Algorithm) newHash() func() hash.Hash {
	switch a {
	case SHA256:
		return sha256.New
	case SHA512:
		return sha512.New
	default:
		return sha1.New
	}
}

// SecretLen is the secret length Generate uses: the hash's output size
// (20 bytes for SHA-1, 32 for SHA-256, 64 for SHA-512), as in RFC 6238
// Appendix B.
func (a Algorithm) SecretLen() int {
	switch a {
	case SHA256:
		return 32
	case SHA512:
		return 64
	}
	return 20
}

// Type tells HOTP (counter-based) from TOTP (time-based) keys.
type Type int

// Key types.
const (
	TOTP Type = iota
	HOTP
)

// String returns "totp" or "hotp", the otpauth host names.
func (t Type) String() string {
	switch t {
	case TOTP:
		return "totp"
	case HOTP:
		return "hotp"
	}
	return fmt.Sprintf("Type(%d)", int(t))
}

// Params are a key's code parameters.
type Params struct {
	Algorithm Algorithm
	Digits    int           // 6 or 8
	Period    time.Duration // TOTP time step: 30 s or 60 s; zero for HOTP
}

// DefaultParams are the parameters every authenticator app understands.
var DefaultParams = Params{Algorithm: SHA1, Digits: 6, Period: 30 * time.Second}

// Validate checks TOTP parameters: a known algorithm, 6 or 8 digits and a
// 30 or 60 second period.
func (p Params) Validate() error {
	if err := p.validateCode(); err != nil {
		return err
	}
	if p.Period != 30*time.Second && p.Period != 60*time.Second {
		return fmt.Errorf("%w: period %v (want 30s or 60s)", ErrParams, p.Period)
	}
	return nil
}

// validateCode checks what Code needs: algorithm and digits.
func (p Params) validateCode() error {
	if !p.Algorithm.valid() {
		return fmt.Errorf("%w: unsupported algorithm %v (want SHA1, SHA256 or SHA512)", ErrParams, p.Algorithm)
	}
	if p.Digits != 6 && p.Digits != 8 {
		return fmt.Errorf("%w: %d digits (want 6 or 8)", ErrParams, p.Digits)
	}
	return nil
}

// Key is an OTP key: the shared secret with its parameters. For HOTP keys
// Period is zero and Counter is the next counter the token will use; for TOTP
// keys Counter is zero.
//
// A Key's String and GoString methods leave the secret out, so that a Key
// printed by mistake does not leak it.
type Key struct {
	Type   Type
	Secret []byte
	Params
	Counter uint64
}

// Validate checks the key's type, secret length and parameters.
func (k *Key) Validate() error {
	if len(k.Secret) < MinSecretLen || len(k.Secret) > MaxSecretLen {
		return fmt.Errorf("%w: %d bytes (want %d to %d)", ErrSecret, len(k.Secret), MinSecretLen, MaxSecretLen)
	}
	switch k.Type {
	case TOTP:
		if k.Counter != 0 {
			return fmt.Errorf("%w: a TOTP key has no counter", ErrParams)
		}
		return k.Params.Validate()
	case HOTP:
		if k.Period != 0 {
			return fmt.Errorf("%w: an HOTP key has no period", ErrParams)
		}
		return k.Params.validateCode()
	}
	return fmt.Errorf("%w: unknown key type %d", ErrParams, int(k.Type))
}

// String describes the key without its secret.
func (k Key) String() string {
	s := fmt.Sprintf("%v %v %d digits", k.Type, k.Algorithm, k.Digits)
	if k.Type == HOTP {
		return fmt.Sprintf("%s counter %d", s, k.Counter)
	}
	return fmt.Sprintf("%s %v", s, k.Period)
}

// GoString is String, so that %#v does not print the secret either.
func (k Key) GoString() string { return "totp.Key{" + k.String() + "}" }

// Code returns the code for counter (RFC 4226 section 5.3). For TOTP the
// counter is the time step (StepAt). Code never panics; parameters that
// fail Validate give "".
func Code(secret []byte, p Params, counter uint64) string {
	if p.validateCode() != nil {
		return ""
	}
	c := newCoder(secret, p)
	var b [8]byte
	return string(formatCode(&b, c.value(counter), p.Digits))
}

// Code returns the key's code for counter.
func (k *Key) Code(counter uint64) string { return Code(k.Secret, k.Params, counter) }

// StepAt returns the RFC 6238 time step T = floor((t - T0) / X) with T0 the
// Unix epoch and X the period. Times before the epoch and periods under one
// second give 0.
func StepAt(t time.Time, period time.Duration) uint64 {
	x := int64(period / time.Second)
	u := t.Unix()
	if x <= 0 || u < 0 {
		return 0
	}
	return uint64(u / x)
}

// coder computes codes for one secret, reusing its MAC and buffers.
type coder struct {
	mac hash.Hash
	mod uint32
	msg [8]byte
	sum []byte
}

func newCoder(secret []byte, p Params) *coder {
	mod := uint32(1000000)
	if p.Digits == 8 {
		mod = 100000000
	}
	return &coder{mac: hmac.New(p.Algorithm.newHash(), secret), mod: mod, sum: make([]byte, 0, 64)}
}

// value is RFC 4226 section 5.3: HMAC, dynamic truncation, modulo 10^digits.
func (c *coder) value(counter uint64) uint32 {
	for i := 7; i >= 0; i-- {
		c.msg[i] = byte(counter)
		counter >>= 8
	}
	c.mac.Reset()
	c.mac.Write(c.msg[:])
	c.sum = c.mac.Sum(c.sum[:0])
	h := c.sum
	off := h[len(h)-1] & 0x0f
	bin := uint32(h[off]&0x7f)<<24 | uint32(h[off+1])<<16 | uint32(h[off+2])<<8 | uint32(h[off+3])
	return bin % c.mod
}

// formatCode writes v as a zero-padded decimal of the given digits into b.
func formatCode(b *[8]byte, v uint32, digits int) []byte {
	for i := digits - 1; i >= 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return b[:digits]
}

var b32NoPad = base32.StdEncoding.WithPadding(base32.NoPadding)

// EncodeSecret returns the secret in base32 (RFC 4648) without padding, the
// form authenticator apps expect.
func EncodeSecret(secret []byte) string { return b32NoPad.EncodeToString(secret) }

// DecodeSecret decodes a base32 secret, with or without padding, in upper or
// lower case, ignoring spaces (people copy secrets in groups). It checks the
// length against MinSecretLen and MaxSecretLen.
func DecodeSecret(s string) ([]byte, error) {
	if len(s) > 2*MaxSecretLen*8/5+64 {
		return nil, fmt.Errorf("%w: base32 text too long", ErrSecret)
	}
	s = strings.ToUpper(strings.ReplaceAll(s, " ", ""))
	if strings.ContainsRune(s, '=') {
		if len(s)%8 != 0 {
			return nil, fmt.Errorf("%w: bad base32 padding", ErrSecret)
		}
		s = strings.TrimRight(s, "=")
	}
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrSecret)
	}
	b, err := b32NoPad.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not base32", ErrSecret)
	}
	if len(b) < MinSecretLen || len(b) > MaxSecretLen {
		return nil, fmt.Errorf("%w: %d bytes (want %d to %d)", ErrSecret, len(b), MinSecretLen, MaxSecretLen)
	}
	return b, nil
}

// clip shortens untrusted text quoted in an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
