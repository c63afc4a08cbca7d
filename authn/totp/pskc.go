package totp

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
	"time"
)

// Bounds on PSKC input.
const (
	MaxPSKCBytes        = 16 << 20 // whole file
	MaxPSKCKeys         = 10000    // KeyPackage elements
	MaxPSKCElements     = 1000000  // all elements
	MaxPSKCDepth        = 32       // element nesting
	MaxPBKDF2Iterations = 5000000  // work a file may ask of PBKDF2
	maxPSKCValue        = 64 << 10 // one base64 value
	pskcNS              = "urn:ietf:params:xml:ns:keyprov:pskc"
)

// Algorithm URIs (RFC 6030 section 6 and 10, XML Encryption, XML Signature).
const (
	uriHOTP        = "urn:ietf:params:xml:ns:keyprov:pskc:hotp"
	uriAES128CBC   = "http://www.w3.org/2001/04/xmlenc#aes128-cbc"
	uriAES256CBC   = "http://www.w3.org/2001/04/xmlenc#aes256-cbc"
	uriPBKDF2      = "http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#pbkdf2"
	uriHMACSHA1    = "http://www.w3.org/2000/09/xmldsig#hmac-sha1"
	uriHMACSHA256  = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"
	uriHMACSHA512  = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha512"
	uriPKCS5SHA1   = "http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#hmac-sha1"
	uriPKCS5SHA256 = "http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#hmac-sha256"
)

// totpURIs are the spellings of the TOTP algorithm seen in the RFC 6030
// profile (draft-hoyer-keyprov-pskc-algorithm-profiles) and vendors' files.
var totpURIs = map[string]bool{
	"urn:ietf:params:xml:ns:keyprov:pskc#totp": true,
	"urn:ietf:params:xml:ns:keyprov:pskc:totp": true,
	"http://www.ietf.org/keyprov/pskc#totp":    true,
}

// macHashes maps MAC and PRF algorithm URIs to hashes.
var macHashes = map[string]func() hash.Hash{
	uriHMACSHA1:    sha1.New,
	uriPKCS5SHA1:   sha1.New,
	uriHMACSHA256:  sha256.New,
	uriPKCS5SHA256: sha256.New,
	uriHMACSHA512:  sha512.New,
}

// PSKCOptions carry what decrypts a PSKC file: the pre-shared key for files
// whose EncryptionKey is a ds:KeyName, the password for files whose
// EncryptionKey is a PBKDF2 DerivedKey. Plaintext files need neither.
type PSKCOptions struct {
	PreSharedKey []byte
	Password     []byte
}

// Token is one OTP key from a PSKC file. Its Key is ready for Match; its
// String and GoString leave the secret out.
type Token struct {
	Serial       string // DeviceInfo/SerialNo, else the Key Id
	KeyID        string // the Key's Id attribute
	Manufacturer string
	Model        string
	Issuer       string
	Key          Key   // type, secret, algorithm, digits, period, counter
	Time0        int64 // TOTP: Data/Time, T0 in Unix seconds (normally 0)
	Drift        int64 // TOTP: Data/TimeDrift, in time steps
}

// String describes the token without its secret.
func (t Token) String() string {
	return fmt.Sprintf("token %q (%s %s) %v", t.Serial, t.Manufacturer, t.Model, t.Key)
}

// GoString is String, so that %#v does not print the secret.
func (t Token) GoString() string { return "totp.Token{" + t.String() + "}" }

// PSKCError is why a PSKC file was refused. Key names the key (its position
// in the file, from 1, and its serial or Id) when one key is at fault; it is
// empty for file-level faults. It wraps ErrPSKC and, where there is one, the
// cause.
type PSKCError struct {
	Key    string
	Reason string
	Err    error
}

func (e *PSKCError) Error() string {
	parts := []string{"totp: pskc"}
	for _, p := range []string{e.Key, e.Reason} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	if e.Err != nil {
		parts = append(parts, e.Err.Error())
	}
	return strings.Join(parts, ": ")
}

// Unwrap returns ErrPSKC and the cause.
func (e *PSKCError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrPSKC, e.Err}
	}
	return []error{ErrPSKC}
}

// Sentinel causes a PSKCError may wrap.
var (
	ErrPSKCUnsupported = errors.New("unsupported")
	ErrPSKCBadMAC      = errors.New("MAC does not match")
	ErrPSKCNoKey       = errors.New("decryption key not given")
)

func fileErr(reason string, err error) error { return &PSKCError{Reason: reason, Err: err} }

// ParsePSKC reads an RFC 6030 PSKC file and returns its HOTP and TOTP keys.
//
// Keys may be plaintext (<PlainValue>) or encrypted (<EncryptedValue>, AES-128-CBC
// or AES-256-CBC with the IV prepended, RFC 6030 section 6.1) under a
// pre-shared key (<EncryptionKey><ds:KeyName>, section 6.1) or a key derived
// from a password with PBKDF2 (<DerivedKey>, section 6.2; PRF HMAC-SHA1 by
// default, or HMAC-SHA256). Every encrypted value must carry a <ValueMAC>,
// checked before decryption with the <MACMethod> (HMAC-SHA1, -SHA256 or
// -SHA512) and its MAC key, itself encrypted under the encryption key.
//
// The file is all or nothing: an unsupported algorithm, a bad MAC, a missing
// decryption key or secret, a duplicate serial, a bad value or malformed XML
// refuses the whole file with a *PSKCError naming the reason and the key (never
// the secret), and no tokens.
func ParsePSKC(r io.Reader, opts PSKCOptions) ([]Token, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxPSKCBytes+1))
	if err != nil {
		return nil, fileErr("reading", err)
	}
	if len(data) > MaxPSKCBytes {
		return nil, fileErr(fmt.Sprintf("file larger than %d bytes", MaxPSKCBytes), nil)
	}
	if err := scanPSKC(data); err != nil {
		return nil, err
	}
	var doc pskcContainer
	if err := xml.Unmarshal(data, &doc); err != nil {
		return nil, fileErr("malformed XML", err)
	}
	if doc.XMLName.Space != pskcNS || doc.XMLName.Local != "KeyContainer" {
		return nil, fileErr("root element is not a PSKC KeyContainer", nil)
	}
	if doc.Version != "1.0" {
		return nil, fileErr(fmt.Sprintf("version %q (want 1.0)", clip(doc.Version)), ErrPSKCUnsupported)
	}
	if len(doc.KeyPackages) == 0 {
		return nil, fileErr("no KeyPackage", nil)
	}

	p := &pskcParser{doc: &doc, opts: opts}
	tokens := make([]Token, 0, len(doc.KeyPackages))
	serials := make(map[string]int, len(doc.KeyPackages))
	for i := range doc.KeyPackages {
		t, err := p.token(i, &doc.KeyPackages[i])
		if err != nil {
			return nil, err
		}
		if j, dup := serials[t.Serial]; dup {
			return nil, &PSKCError{Key: keyName(i, t.Serial), Reason: fmt.Sprintf("duplicate serial (also key %d)", j+1)}
		}
		serials[t.Serial] = i
		tokens = append(tokens, t)
	}
	return tokens, nil
}

// scanPSKC walks the tokens before decoding into structures, to bound
// depth and element counts and to refuse DTDs.
func scanPSKC(data []byte) error {
	d := xml.NewDecoder(bytes.NewReader(data))
	depth, elements, packages := 0, 0, 0
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fileErr("malformed XML", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			elements++
			if depth > MaxPSKCDepth {
				return fileErr(fmt.Sprintf("elements nested deeper than %d", MaxPSKCDepth), nil)
			}
			if elements > MaxPSKCElements {
				return fileErr(fmt.Sprintf("more than %d elements", MaxPSKCElements), nil)
			}
			if t.Name.Local == "KeyPackage" {
				packages++
				if packages > MaxPSKCKeys {
					return fileErr(fmt.Sprintf("more than %d keys", MaxPSKCKeys), nil)
				}
			}
		case xml.EndElement:
			depth--
		case xml.Directive:
			return fileErr("DTDs and directives are not allowed", nil)
		}
	}
	return nil
}

// The document, as far as mfad reads it. Elements match by local name, so
// the usual namespace prefixes (pskc:, ds:, xenc:, xenc11:, pkcs5:) all work.
type pskcContainer struct {
	XMLName       xml.Name
	Version       string           `xml:"Version,attr"`
	EncryptionKey *pskcEncKey      `xml:"EncryptionKey"`
	MACMethod     *pskcMACMethod   `xml:"MACMethod"`
	KeyPackages   []pskcKeyPackage `xml:"KeyPackage"`
}

type pskcEncKey struct {
	KeyName    []string       `xml:"KeyName"`
	DerivedKey []pskcDerived  `xml:"DerivedKey"`
	X509Data   []pskcAnything `xml:"X509Data"`
}

type pskcAnything struct {
	XMLName xml.Name
}

type pskcDerived struct {
	Method struct {
		Algorithm string      `xml:"Algorithm,attr"`
		Params    *pskcPBKDF2 `xml:"PBKDF2-params"`
	} `xml:"KeyDerivationMethod"`
	MasterKeyName string `xml:"MasterKeyName"`
}

type pskcPBKDF2 struct {
	Salt struct {
		Specified string `xml:"Specified"`
	} `xml:"Salt"`
	IterationCount string `xml:"IterationCount"`
	KeyLength      string `xml:"KeyLength"`
	PRF            *struct {
		Algorithm string `xml:"Algorithm,attr"`
	} `xml:"PRF"`
}

type pskcMACMethod struct {
	Algorithm       string         `xml:"Algorithm,attr"`
	MACKey          *pskcEncrypted `xml:"MACKey"`
	MACKeyReference *string        `xml:"MACKeyReference"`
}

type pskcEncrypted struct {
	EncryptionMethod *struct {
		Algorithm string `xml:"Algorithm,attr"`
	} `xml:"EncryptionMethod"`
	CipherData *struct {
		CipherValue *string `xml:"CipherValue"`
	} `xml:"CipherData"`
}

type pskcKeyPackage struct {
	DeviceInfo struct {
		Manufacturer string `xml:"Manufacturer"`
		SerialNo     string `xml:"SerialNo"`
		Model        string `xml:"Model"`
	} `xml:"DeviceInfo"`
	Keys []pskcKey `xml:"Key"`
}

type pskcKey struct {
	ID         string `xml:"Id,attr"`
	Algorithm  string `xml:"Algorithm,attr"`
	Issuer     string `xml:"Issuer"`
	Parameters struct {
		Suite          []string `xml:"Suite"`
		ResponseFormat *struct {
			Length   string `xml:"Length,attr"`
			Encoding string `xml:"Encoding,attr"`
		} `xml:"ResponseFormat"`
	} `xml:"AlgorithmParameters"`
	Data struct {
		Secret       *pskcValue `xml:"Secret"`
		Counter      *pskcValue `xml:"Counter"`
		Time         *pskcValue `xml:"Time"`
		TimeInterval *pskcValue `xml:"TimeInterval"`
		TimeDrift    *pskcValue `xml:"TimeDrift"`
	} `xml:"Data"`
}

type pskcValue struct {
	PlainValue     *string        `xml:"PlainValue"`
	EncryptedValue *pskcEncrypted `xml:"EncryptedValue"`
	ValueMAC       *string        `xml:"ValueMAC"`
}

// pskcParser holds the file-wide keys, derived once.
type pskcParser struct {
	doc     *pskcContainer
	opts    PSKCOptions
	encKey  []byte // nil until needed
	macKey  []byte
	macHash func() hash.Hash
	keysErr error
	done    bool
}

// keys derives the encryption key and decrypts the MAC key, once, the first
// time a key's value is encrypted.
func (p *pskcParser) keys() ([]byte, []byte, func() hash.Hash, error) {
	if !p.done {
		p.done = true
		p.encKey, p.keysErr = p.encryptionKey()
		if p.keysErr == nil {
			p.macKey, p.macHash, p.keysErr = p.macKeyFor(p.encKey)
		}
	}
	return p.encKey, p.macKey, p.macHash, p.keysErr
}

func (p *pskcParser) encryptionKey() ([]byte, error) {
	ek := p.doc.EncryptionKey
	if ek == nil {
		return nil, fileErr("encrypted value but no EncryptionKey", nil)
	}
	if len(ek.X509Data) > 0 {
		return nil, fileErr("asymmetric (X509Data) encryption key", ErrPSKCUnsupported)
	}
	switch {
	case len(ek.KeyName) == 1 && len(ek.DerivedKey) == 0:
		if len(p.opts.PreSharedKey) == 0 {
			return nil, fileErr(fmt.Sprintf("file is encrypted under pre-shared key %q", clip(strings.TrimSpace(ek.KeyName[0]))), ErrPSKCNoKey)
		}
		return p.opts.PreSharedKey, nil
	case len(ek.DerivedKey) == 1 && len(ek.KeyName) == 0:
		return p.derive(&ek.DerivedKey[0])
	}
	return nil, fileErr("EncryptionKey must hold exactly one ds:KeyName or one DerivedKey", ErrPSKCUnsupported)
}

// derive is RFC 6030 section 6.2: PBKDF2 (RFC 8018) over the password.
func (p *pskcParser) derive(dk *pskcDerived) ([]byte, error) {
	m := &dk.Method
	if strings.TrimSpace(m.Algorithm) != uriPBKDF2 {
		return nil, fileErr(fmt.Sprintf("key derivation %q", clip(m.Algorithm)), ErrPSKCUnsupported)
	}
	if m.Params == nil {
		return nil, fileErr("PBKDF2 without PBKDF2-params", nil)
	}
	if len(p.opts.Password) == 0 {
		name := strings.TrimSpace(dk.MasterKeyName)
		return nil, fileErr(fmt.Sprintf("file is encrypted under a password (%q)", clip(name)), ErrPSKCNoKey)
	}
	salt, err := decodeB64(m.Params.Salt.Specified)
	if err != nil || len(salt) == 0 {
		return nil, fileErr("PBKDF2 salt missing or not base64", nil)
	}
	iter, err := strconv.Atoi(strings.TrimSpace(m.Params.IterationCount))
	if err != nil || iter < 1 || iter > MaxPBKDF2Iterations {
		return nil, fileErr(fmt.Sprintf("PBKDF2 iteration count %q (want 1 to %d)", clip(m.Params.IterationCount), MaxPBKDF2Iterations), nil)
	}
	klen, err := strconv.Atoi(strings.TrimSpace(m.Params.KeyLength))
	if err != nil || (klen != 16 && klen != 32) {
		return nil, fileErr(fmt.Sprintf("PBKDF2 key length %q (want 16 or 32)", clip(m.Params.KeyLength)), ErrPSKCUnsupported)
	}
	prf := sha1.New
	if m.Params.PRF != nil && strings.TrimSpace(m.Params.PRF.Algorithm) != "" {
		a := strings.TrimSpace(m.Params.PRF.Algorithm)
		h, ok := macHashes[a]
		if !ok || a == uriHMACSHA512 {
			return nil, fileErr(fmt.Sprintf("PBKDF2 PRF %q", clip(a)), ErrPSKCUnsupported)
		}
		prf = h
	}
	key, err := pbkdf2.Key(prf, string(p.opts.Password), salt, iter, klen)
	if err != nil {
		return nil, fileErr("PBKDF2", err)
	}
	return key, nil
}

// macKeyFor decrypts the MACMethod's MAC key with the encryption key.
func (p *pskcParser) macKeyFor(encKey []byte) ([]byte, func() hash.Hash, error) {
	mm := p.doc.MACMethod
	if mm == nil {
		return nil, nil, fileErr("encrypted values but no MACMethod", nil)
	}
	mm.Algorithm = strings.TrimSpace(mm.Algorithm)
	h, ok := macHashes[mm.Algorithm]
	if !ok || mm.Algorithm == uriPKCS5SHA1 || mm.Algorithm == uriPKCS5SHA256 {
		return nil, nil, fileErr(fmt.Sprintf("MAC algorithm %q", clip(mm.Algorithm)), ErrPSKCUnsupported)
	}
	if mm.MACKey == nil {
		if mm.MACKeyReference != nil {
			return nil, nil, fileErr("MACKeyReference (MAC key out of band)", ErrPSKCUnsupported)
		}
		return nil, nil, fileErr("MACMethod without MACKey", nil)
	}
	ct, err := cipherValue(mm.MACKey)
	if err != nil {
		return nil, nil, fileErr("MAC key", err)
	}
	// The MAC key is not authenticated (RFC 6030 section 6.1.1). So that
	// its padding cannot serve as an oracle, bad padding is not an error of
	// its own: the garbled key just fails every ValueMAC.
	key, err := decryptCBC(mm.MACKey.EncryptionMethod.Algorithm, encKey, ct)
	if errors.Is(err, errPadding) {
		key, err = ct[aes.BlockSize:], nil
	}
	if err != nil {
		return nil, nil, fileErr("MAC key", err)
	}
	if len(key) == 0 {
		return nil, nil, fileErr("MAC key is empty", nil)
	}
	return key, h, nil
}

func keyName(i int, serial string) string {
	if serial == "" {
		return fmt.Sprintf("key %d", i+1)
	}
	return fmt.Sprintf("key %d (serial %q)", i+1, clip(serial))
}

func (p *pskcParser) token(i int, kp *pskcKeyPackage) (Token, error) {
	t := Token{
		Serial:       strings.TrimSpace(kp.DeviceInfo.SerialNo),
		Manufacturer: strings.TrimSpace(kp.DeviceInfo.Manufacturer),
		Model:        strings.TrimSpace(kp.DeviceInfo.Model),
	}
	fail := func(reason string, err error) (Token, error) {
		var pe *PSKCError
		if errors.As(err, &pe) && pe.Key == "" {
			return Token{}, pe // a file-level fault met while reading this key
		}
		return Token{}, &PSKCError{Key: keyName(i, t.Serial), Reason: reason, Err: err}
	}
	if len(kp.Keys) != 1 {
		return fail(fmt.Sprintf("KeyPackage holds %d Key elements (want 1)", len(kp.Keys)), nil)
	}
	k := &kp.Keys[0]
	t.KeyID = strings.TrimSpace(k.ID)
	t.Issuer = strings.TrimSpace(k.Issuer)
	if t.Serial == "" {
		t.Serial = t.KeyID
	}
	if t.Serial == "" {
		return fail("no SerialNo and no Key Id", nil)
	}
	for _, s := range []string{t.Serial, t.KeyID, t.Manufacturer, t.Model, t.Issuer} {
		if len(s) > MaxLabelLen {
			return fail(fmt.Sprintf("a name is longer than %d bytes", MaxLabelLen), nil)
		}
	}

	alg := strings.TrimSpace(k.Algorithm)
	switch {
	case alg == uriHOTP:
		t.Key.Type = HOTP
	case totpURIs[alg]:
		t.Key.Type = TOTP
	default:
		return fail(fmt.Sprintf("key algorithm %q", clip(alg)), ErrPSKCUnsupported)
	}

	// Hash: AlgorithmParameters/Suite ("HMAC-SHA256", "SHA256", ...), SHA-1 by default.
	t.Key.Algorithm = SHA1
	switch len(k.Parameters.Suite) {
	case 0:
	case 1:
		a, err := ParseAlgorithm(k.Parameters.Suite[0])
		if err != nil {
			return fail(fmt.Sprintf("suite %q", clip(strings.TrimSpace(k.Parameters.Suite[0]))), ErrPSKCUnsupported)
		}
		t.Key.Algorithm = a
	default:
		return fail("more than one Suite", nil)
	}

	rf := k.Parameters.ResponseFormat
	if rf == nil {
		return fail("no ResponseFormat", nil)
	}
	if enc := strings.TrimSpace(rf.Encoding); enc != "" && enc != "DECIMAL" {
		return fail(fmt.Sprintf("response encoding %q (want DECIMAL)", clip(enc)), ErrPSKCUnsupported)
	}
	switch strings.TrimSpace(rf.Length) {
	case "6":
		t.Key.Digits = 6
	case "8":
		t.Key.Digits = 8
	default:
		return fail(fmt.Sprintf("response length %q (want 6 or 8)", clip(rf.Length)), ErrPSKCUnsupported)
	}

	d := &k.Data
	if d.Secret == nil {
		return fail("no Secret", nil)
	}
	secret, err := p.value(d.Secret)
	if err != nil {
		return fail("Secret", err)
	}
	if len(secret) < MinSecretLen || len(secret) > MaxSecretLen {
		return fail(fmt.Sprintf("secret of %d bytes (want %d to %d)", len(secret), MinSecretLen, MaxSecretLen), nil)
	}
	t.Key.Secret = secret

	intValue := func(name string, v *pskcValue) (int64, error) {
		n, err := p.intValue(v)
		if err != nil {
			_, err = fail(name, err)
		}
		return n, err
	}
	switch t.Key.Type {
	case HOTP:
		if d.Time != nil || d.TimeInterval != nil || d.TimeDrift != nil {
			return fail("HOTP key with time fields", nil)
		}
		if d.Counter != nil {
			c, err := intValue("Counter", d.Counter)
			if err != nil {
				return Token{}, err
			}
			if c < 0 {
				return fail("negative Counter", nil)
			}
			t.Key.Counter = uint64(c)
		}
	case TOTP:
		if d.Counter != nil {
			return fail("TOTP key with a Counter", nil)
		}
		t.Key.Period = 30 * time.Second // RFC 6238 section 4.1 default
		if d.TimeInterval != nil {
			x, err := intValue("TimeInterval", d.TimeInterval)
			if err != nil {
				return Token{}, err
			}
			if x != 30 && x != 60 {
				return fail(fmt.Sprintf("TimeInterval %d (want 30 or 60)", x), ErrPSKCUnsupported)
			}
			t.Key.Period = time.Duration(x) * time.Second
		}
		if d.Time != nil {
			if t.Time0, err = intValue("Time", d.Time); err != nil {
				return Token{}, err
			}
			if t.Time0 < 0 {
				return fail("negative Time", nil)
			}
		}
		if d.TimeDrift != nil {
			if t.Drift, err = intValue("TimeDrift", d.TimeDrift); err != nil {
				return Token{}, err
			}
			if t.Drift < -MaxWindow || t.Drift > MaxWindow {
				return fail(fmt.Sprintf("TimeDrift %d steps (at most %d)", t.Drift, MaxWindow), nil)
			}
		}
	}
	if err := t.Key.Validate(); err != nil {
		return fail("invalid key", err)
	}
	return t, nil
}

// value returns a Data element's bytes: the base64 PlainValue, or the
// EncryptedValue after its ValueMAC is checked and it is decrypted.
func (p *pskcParser) value(v *pskcValue) ([]byte, error) {
	switch {
	case v.PlainValue != nil && v.EncryptedValue != nil:
		return nil, errors.New("both PlainValue and EncryptedValue")
	case v.PlainValue != nil:
		b, err := decodeB64(*v.PlainValue)
		if err != nil {
			return nil, errors.New("PlainValue is not base64")
		}
		if v.ValueMAC != nil {
			if err := p.checkMAC(b, *v.ValueMAC); err != nil {
				return nil, err
			}
		}
		return b, nil
	case v.EncryptedValue != nil:
		return p.decrypt(v)
	}
	return nil, errors.New("neither PlainValue nor EncryptedValue")
}

// intValue returns an integer Data element: a decimal PlainValue, or an
// EncryptedValue holding a big-endian integer of at most 8 bytes.
func (p *pskcParser) intValue(v *pskcValue) (int64, error) {
	if v.PlainValue != nil && v.EncryptedValue == nil {
		s := strings.TrimSpace(*v.PlainValue)
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("PlainValue %q is not an integer", clip(s))
		}
		if v.ValueMAC != nil {
			if err := p.checkMAC([]byte(s), *v.ValueMAC); err != nil {
				return 0, err
			}
		}
		return n, nil
	}
	b, err := p.value(v)
	if err != nil {
		return 0, err
	}
	if len(b) == 0 || len(b) > 8 {
		return 0, fmt.Errorf("encrypted integer of %d bytes", len(b))
	}
	var n uint64
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	if len(b) < 8 && b[0]&0x80 != 0 {
		n |= ^uint64(0) << (8 * len(b)) // sign-extend
	}
	return int64(n), nil
}

// decrypt checks an EncryptedValue's MAC, then decrypts it.
func (p *pskcParser) decrypt(v *pskcValue) ([]byte, error) {
	ct, err := cipherValue(v.EncryptedValue)
	if err != nil {
		return nil, err
	}
	if v.ValueMAC == nil {
		return nil, errors.New("EncryptedValue without ValueMAC")
	}
	encKey, _, _, err := p.keys()
	if err != nil {
		return nil, err
	}
	if err := p.checkMAC(ct, *v.ValueMAC); err != nil {
		return nil, err
	}
	return decryptCBC(v.EncryptedValue.EncryptionMethod.Algorithm, encKey, ct)
}

// checkMAC compares a ValueMAC with the HMAC of data under the MAC key
// (RFC 6030 section 6.1.1: over the IV and ciphertext).
func (p *pskcParser) checkMAC(data []byte, valueMAC string) error {
	if p.doc.MACMethod == nil {
		return errors.New("ValueMAC but no MACMethod")
	}
	_, macKey, macHash, err := p.keys()
	if err != nil {
		return err
	}
	want, err := decodeB64(valueMAC)
	if err != nil {
		return errors.New("ValueMAC is not base64")
	}
	m := hmac.New(macHash, macKey)
	m.Write(data)
	if !hmac.Equal(m.Sum(nil), want) {
		return fmt.Errorf("ValueMAC: %w (wrong key or altered file)", ErrPSKCBadMAC)
	}
	return nil
}

// cipherValue returns the bytes of an EncryptedValue or MACKey after
// checking that its method is one ParsePSKC decrypts.
func cipherValue(e *pskcEncrypted) ([]byte, error) {
	if e.EncryptionMethod == nil {
		return nil, errors.New("no EncryptionMethod")
	}
	e.EncryptionMethod.Algorithm = strings.TrimSpace(e.EncryptionMethod.Algorithm)
	switch e.EncryptionMethod.Algorithm {
	case uriAES128CBC, uriAES256CBC:
	default:
		return nil, fmt.Errorf("encryption %q: %w", clip(e.EncryptionMethod.Algorithm), ErrPSKCUnsupported)
	}
	if e.CipherData == nil || e.CipherData.CipherValue == nil {
		return nil, errors.New("no CipherValue")
	}
	b, err := decodeB64(*e.CipherData.CipherValue)
	if err != nil {
		return nil, errors.New("CipherValue is not base64")
	}
	return b, nil
}

var errPadding = errors.New("bad padding")

// decryptCBC is XML Encryption's AES-CBC: the IV is the first block, the
// last byte of the plaintext counts the padding bytes (whose values XML
// Encryption leaves arbitrary).
func decryptCBC(alg string, key, ct []byte) ([]byte, error) {
	want := 16
	if alg == uriAES256CBC {
		want = 32
	}
	if len(key) != want {
		return nil, fmt.Errorf("encryption key of %d bytes for %s (want %d)", len(key), alg[strings.IndexByte(alg, '#')+1:], want)
	}
	if len(ct) < 2*aes.BlockSize || len(ct)%aes.BlockSize != 0 {
		return nil, errors.New("ciphertext length is not IV + whole blocks")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, errors.New("bad AES key")
	}
	pt := make([]byte, len(ct)-aes.BlockSize)
	cipher.NewCBCDecrypter(block, ct[:aes.BlockSize]).CryptBlocks(pt, ct[aes.BlockSize:])
	n := int(pt[len(pt)-1])
	if n < 1 || n > aes.BlockSize {
		return nil, errPadding
	}
	return pt[:len(pt)-n], nil
}

// decodeB64 decodes base64 with embedded whitespace, as XML files wrap it.
func decodeB64(s string) ([]byte, error) {
	if len(s) > maxPSKCValue {
		return nil, errors.New("value too long")
	}
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, s)
	return base64.StdEncoding.DecodeString(s)
}
