package totp

import (
	"bytes"
	"fmt"
	"image/png"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pquerna/otp"
	pqtotp "github.com/pquerna/otp/totp"
)

// Limits on otpauth URIs and their parts.
const (
	MaxURILen   = 2048
	MaxLabelLen = 256 // issuer or account name, in bytes
	// QR image sizes (pixels, square) that QRPNG accepts.
	MinQRSize = 64
	MaxQRSize = 2048
)

// Generate makes a new TOTP key with a secret of p.Algorithm.SecretLen()
// bytes read from rand, and its otpauth URI (the Key URI format of Google
// Authenticator, built by github.com/pquerna/otp). Neither issuer nor
// account may contain a colon.
func Generate(issuer, account string, p Params, rand io.Reader) (*Key, string, error) {
	if err := p.Validate(); err != nil {
		return nil, "", err
	}
	if err := checkLabel("issuer", issuer); err != nil {
		return nil, "", err
	}
	if err := checkLabel("account", account); err != nil {
		return nil, "", err
	}
	if rand == nil {
		return nil, "", fmt.Errorf("%w: no randomness source", ErrSecret)
	}
	secret := make([]byte, p.Algorithm.SecretLen())
	if _, err := io.ReadFull(rand, secret); err != nil {
		return nil, "", fmt.Errorf("totp: reading random secret: %w", err)
	}
	alg := map[Algorithm]otp.Algorithm{SHA1: otp.AlgorithmSHA1, SHA256: otp.AlgorithmSHA256, SHA512: otp.AlgorithmSHA512}[p.Algorithm]
	k, err := pqtotp.Generate(pqtotp.GenerateOpts{
		Issuer:      issuer,
		AccountName: account,
		Period:      uint(p.Period / time.Second),
		Secret:      secret,
		Digits:      otp.Digits(p.Digits),
		Algorithm:   alg,
	})
	if err != nil {
		return nil, "", fmt.Errorf("totp: generating key URI: %w", err)
	}
	return &Key{Type: TOTP, Secret: secret, Params: p}, k.URL(), nil
}

// URI returns the key's otpauth URI with the label "issuer:account" and the
// issuer, secret, algorithm, digits and period (TOTP) or counter (HOTP)
// parameters. ParseURI reads it back to the same key, account and issuer.
// The issuer may be empty.
func (k *Key) URI(issuer, account string) (string, error) {
	if err := k.Validate(); err != nil {
		return "", err
	}
	if err := checkLabel("account", account); err != nil {
		return "", err
	}
	label := account
	v := url.Values{}
	if issuer != "" {
		if err := checkLabel("issuer", issuer); err != nil {
			return "", err
		}
		label = issuer + ":" + account
		v.Set("issuer", issuer)
	}
	v.Set("secret", EncodeSecret(k.Secret))
	v.Set("algorithm", k.Algorithm.String())
	v.Set("digits", strconv.Itoa(k.Digits))
	if k.Type == HOTP {
		v.Set("counter", strconv.FormatUint(k.Counter, 10))
	} else {
		v.Set("period", strconv.Itoa(int(k.Period/time.Second)))
	}
	u := url.URL{Scheme: "otpauth", Host: k.Type.String(), Path: "/" + label, RawQuery: strings.ReplaceAll(v.Encode(), "+", "%20")}
	s := u.String()
	if len(s) > MaxURILen {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrURI, MaxURILen)
	}
	return s, nil
}

// ParseURI reads an otpauth URI strictly: type totp or hotp; a label
// "account" or "issuer:account"; a base32 secret (with or without padding);
// algorithm SHA1/SHA256/SHA512 (default SHA1); digits 6 or 8 (default 6);
// for totp a period of 30 or 60 (default 30) and no counter; for hotp a
// counter and no period. An issuer parameter must agree with the label's
// issuer. Each parameter may appear once; unknown parameters (image, color,
// ...) are ignored. Errors wrap ErrURI, ErrSecret or ErrParams and never
// contain the secret.
func ParseURI(s string) (key *Key, account, issuer string, err error) {
	if len(s) > MaxURILen {
		return nil, "", "", fmt.Errorf("%w: longer than %d bytes", ErrURI, MaxURILen)
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, "", "", fmt.Errorf("%w: not a URL", ErrURI) // url errors quote the input, secret included
	}
	if u.Scheme != "otpauth" {
		return nil, "", "", fmt.Errorf("%w: scheme %q (want otpauth)", ErrURI, clip(u.Scheme))
	}
	if u.Opaque != "" || u.User != nil || u.Fragment != "" || u.Port() != "" {
		return nil, "", "", fmt.Errorf("%w: not of the form otpauth://TYPE/LABEL?PARAMETERS", ErrURI)
	}
	k := &Key{}
	switch u.Host {
	case "totp":
		k.Type = TOTP
	case "hotp":
		k.Type = HOTP
	default:
		return nil, "", "", fmt.Errorf("%w: type %q (want totp or hotp)", ErrURI, clip(u.Host))
	}

	label := strings.TrimPrefix(u.Path, "/")
	if i := strings.IndexByte(label, ':'); i >= 0 {
		issuer, account = label[:i], strings.TrimLeft(label[i+1:], " ")
		if err := checkLabel("issuer", issuer); err != nil {
			return nil, "", "", err
		}
	} else {
		account = label
	}
	if err := checkLabel("account", account); err != nil {
		return nil, "", "", err
	}

	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, "", "", fmt.Errorf("%w: bad query string", ErrURI)
	}
	get := func(name string) (string, bool, error) {
		vs, ok := q[name]
		if !ok {
			return "", false, nil
		}
		if len(vs) != 1 {
			return "", false, fmt.Errorf("%w: parameter %s given %d times", ErrURI, name, len(vs))
		}
		return vs[0], true, nil
	}

	if v, ok, err := get("issuer"); err != nil {
		return nil, "", "", err
	} else if ok {
		if err := checkLabel("issuer", v); err != nil {
			return nil, "", "", err
		}
		if issuer != "" && issuer != v {
			return nil, "", "", fmt.Errorf("%w: issuer parameter %q differs from label issuer %q", ErrURI, clip(v), clip(issuer))
		}
		issuer = v
	}

	sec, ok, err := get("secret")
	if err != nil {
		return nil, "", "", err
	}
	if !ok {
		return nil, "", "", fmt.Errorf("%w: no secret", ErrSecret)
	}
	if k.Secret, err = DecodeSecret(sec); err != nil {
		return nil, "", "", err
	}

	k.Algorithm = SHA1
	if v, ok, err := get("algorithm"); err != nil {
		return nil, "", "", err
	} else if ok {
		switch strings.ToUpper(v) {
		case "SHA1":
			k.Algorithm = SHA1
		case "SHA256":
			k.Algorithm = SHA256
		case "SHA512":
			k.Algorithm = SHA512
		default:
			return nil, "", "", fmt.Errorf("%w: algorithm %q (want SHA1, SHA256 or SHA512)", ErrParams, clip(v))
		}
	}

	k.Digits = 6
	if v, ok, err := get("digits"); err != nil {
		return nil, "", "", err
	} else if ok {
		switch v {
		case "6":
			k.Digits = 6
		case "8":
			k.Digits = 8
		default:
			return nil, "", "", fmt.Errorf("%w: digits %q (want 6 or 8)", ErrParams, clip(v))
		}
	}

	period, hasPeriod, err := get("period")
	if err != nil {
		return nil, "", "", err
	}
	counter, hasCounter, err := get("counter")
	if err != nil {
		return nil, "", "", err
	}
	switch k.Type {
	case TOTP:
		if hasCounter {
			return nil, "", "", fmt.Errorf("%w: counter given for a totp key", ErrURI)
		}
		k.Period = 30 * time.Second
		if hasPeriod {
			switch period {
			case "30":
			case "60":
				k.Period = 60 * time.Second
			default:
				return nil, "", "", fmt.Errorf("%w: period %q (want 30 or 60)", ErrParams, clip(period))
			}
		}
	case HOTP:
		if hasPeriod {
			return nil, "", "", fmt.Errorf("%w: period given for an hotp key", ErrURI)
		}
		if !hasCounter {
			return nil, "", "", fmt.Errorf("%w: hotp key without counter", ErrURI)
		}
		if !isDecimal(counter) {
			return nil, "", "", fmt.Errorf("%w: counter %q is not a decimal number", ErrURI, clip(counter))
		}
		if k.Counter, err = strconv.ParseUint(counter, 10, 64); err != nil {
			return nil, "", "", fmt.Errorf("%w: counter %q out of range", ErrURI, clip(counter))
		}
	}
	if err := k.Validate(); err != nil {
		return nil, "", "", err
	}
	return k, account, issuer, nil
}

// QRPNG renders uri as a size×size PNG QR code (error correction level M)
// with github.com/pquerna/otp. The URI must pass ParseURI.
func QRPNG(uri string, size int) ([]byte, error) {
	if _, _, _, err := ParseURI(uri); err != nil {
		return nil, err
	}
	if size < MinQRSize || size > MaxQRSize {
		return nil, fmt.Errorf("%w: QR size %d (want %d to %d)", ErrParams, size, MinQRSize, MaxQRSize)
	}
	k, err := otp.NewKeyFromURL(uri)
	if err != nil {
		return nil, fmt.Errorf("%w: not a URL", ErrURI)
	}
	img, err := k.Image(size, size)
	if err != nil {
		return nil, fmt.Errorf("totp: rendering QR code: %v", err) // barcode errors never hold the URI
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("totp: encoding PNG: %w", err)
	}
	return buf.Bytes(), nil
}

// checkLabel validates an issuer or account name: non-empty, UTF-8, without
// colons or control characters, at most MaxLabelLen bytes, and not starting
// with a space (a space after the colon is the label separator's).
func checkLabel(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty %s", ErrURI, what)
	case len(s) > MaxLabelLen:
		return fmt.Errorf("%w: %s longer than %d bytes", ErrURI, what, MaxLabelLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s is not UTF-8", ErrURI, what)
	case strings.ContainsRune(s, ':'):
		return fmt.Errorf("%w: %s %q contains a colon", ErrURI, what, clip(s))
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return fmt.Errorf("%w: %s contains a control character", ErrURI, what)
	case s[0] == ' ':
		return fmt.Errorf("%w: %s starts with a space", ErrURI, what)
	}
	return nil
}

func isDecimal(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
