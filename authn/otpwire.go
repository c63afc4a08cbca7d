package authn

import (
	"time"

	"github.com/mfad/mfad/authn/totp"
)

// What callers above authn (the API server) need of OTP parameters and
// secrets, so that they never import authn/totp themselves.

// OTPParams are a TOTP device's algorithm, digits and period.
type OTPParams = totp.Params

// PSKCOptions carry what decrypts a PSKC token file (a pre-shared key or
// a password).
type PSKCOptions = totp.PSKCOptions

// ParseOTPParams turns the parameters a client asked for at enrollment
// into OTPParams: zero values take the defaults (SHA1, 6 digits, 30 s), and
// nil means the client asked for none. Digits and period are checked at
// enrollment; an unknown algorithm is refused here.
func ParseOTPParams(algorithm string, digits, periodSeconds int) (*OTPParams, error) {
	if algorithm == "" && digits == 0 && periodSeconds == 0 {
		return nil, nil
	}
	p := totp.DefaultParams
	if algorithm != "" {
		alg, err := totp.ParseAlgorithm(algorithm)
		if err != nil {
			return nil, Errorf(ClassInvalid, CodeInvalidRequest, "algorithm must be SHA1, SHA256 or SHA512")
		}
		p.Algorithm = alg
	}
	if digits != 0 {
		p.Digits = digits
	}
	if periodSeconds != 0 {
		p.Period = time.Duration(periodSeconds) * time.Second
	}
	return &p, nil
}

// EncodeSecret is the form in which authenticator apps take a secret:
// base32 without padding.
func EncodeSecret(secret []byte) string { return totp.EncodeSecret(secret) }
