package totp

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"os"
	"strings"
	"testing"
	"time"
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// RFC 6030 Figures 3, 6 and 7 all carry the RFC 4226 secret
// "12345678901234567890" for an 8-digit HOTP token with serial 987654321.
func TestPSKCRFC6030Examples(t *testing.T) {
	tests := []struct {
		file         string
		opts         PSKCOptions
		manufacturer string
		keyID        string
		issuer       string
	}{
		{"rfc6030-figure3.xml", PSKCOptions{}, "Manufacturer", "12345678", "Issuer"},
		{"rfc6030-figure6.xml", PSKCOptions{PreSharedKey: mustHex("12345678901234567890123456789012")}, "Manufacturer", "12345678", "Issuer"},
		{"rfc6030-figure7.xml", PSKCOptions{Password: []byte("qwerty")}, "TokenVendorAcme", "123456", "Example-Issuer"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			toks, err := ParsePSKC(bytes.NewReader(readTestdata(t, tc.file)), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(toks) != 1 {
				t.Fatalf("%d tokens", len(toks))
			}
			tok := toks[0]
			if tok.Serial != "987654321" || tok.Manufacturer != tc.manufacturer || tok.KeyID != tc.keyID || tok.Issuer != tc.issuer {
				t.Errorf("token %+v", tok)
			}
			k := tok.Key
			if k.Type != HOTP || string(k.Secret) != "12345678901234567890" || k.Algorithm != SHA1 || k.Digits != 8 || k.Counter != 0 || k.Period != 0 {
				t.Errorf("key %v (secret ok: %v)", k, string(k.Secret) == "12345678901234567890")
			}
			// RFC 4226 Appendix D, counter 1, 8 digits: 84755224 mod 10^6 is 755224 ... the
			// 8-digit value is checked against oathtool elsewhere; here match the key itself.
			if c, ok := k.Match(k.Code(3), Forward(k.Counter, 10)); !ok || c != 3 {
				t.Errorf("match: %d %v", c, ok)
			}
		})
	}
}

func TestPSKCRFC6030Refused(t *testing.T) {
	tests := []struct {
		file string
		opts PSKCOptions
		want []string
		is   error
	}{
		{"rfc6030-figure2.xml", PSKCOptions{}, []string{"key 1", `"12345678"`, "no ResponseFormat"}, nil},
		{"rfc6030-figure5.xml", PSKCOptions{}, []string{"key 2", "pskc:pin"}, ErrPSKCUnsupported},
		{"rfc6030-figure6.xml", PSKCOptions{}, []string{"pre-shared key", "Pre-shared-key"}, ErrPSKCNoKey},
		{"rfc6030-figure6.xml", PSKCOptions{PreSharedKey: mustHex("12345678901234567890123456789013")}, []string{"ValueMAC"}, ErrPSKCBadMAC},
		{"rfc6030-figure6.xml", PSKCOptions{PreSharedKey: make([]byte, 32)}, []string{"32 bytes", "want 16"}, nil},
		{"rfc6030-figure7.xml", PSKCOptions{}, []string{"password", "My Password 1"}, ErrPSKCNoKey},
		{"rfc6030-figure7.xml", PSKCOptions{Password: []byte("qwertz")}, []string{"ValueMAC"}, ErrPSKCBadMAC},
	}
	for _, tc := range tests {
		toks, err := ParsePSKC(bytes.NewReader(readTestdata(t, tc.file)), tc.opts)
		if err == nil || toks != nil {
			t.Errorf("%s: accepted (%d tokens)", tc.file, len(toks))
			continue
		}
		t.Logf("%s: %v", tc.file, err)
		checkPSKCErr(t, tc.file, err, tc.want, tc.is)
	}
}

func checkPSKCErr(t *testing.T, name string, err error, want []string, is error) {
	t.Helper()
	var pe *PSKCError
	if !errors.Is(err, ErrPSKC) || !errors.As(err, &pe) {
		t.Errorf("%s: error %v is not a *PSKCError wrapping ErrPSKC", name, err)
	}
	if is != nil && !errors.Is(err, is) {
		t.Errorf("%s: error %v does not wrap %v", name, err, is)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error %q does not mention %q", name, err, w)
		}
	}
	for _, leak := range []string{"12345678901234567890", "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA", testSecretB64} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("%s: error %q shows the secret", name, err)
		}
	}
}

// pskcSpec builds a PSKC file for the tests: TOTP keys, plain or encrypted.
type pskcSpec struct {
	enc      string // "", "psk", "pbkdf2"
	cipher   string // aes128-cbc (default) or aes256-cbc
	mac      string // MACMethod algorithm URI (default hmac-sha1)
	prf      string // PBKDF2 PRF URI ("" = element empty)
	psk      []byte
	password []byte
	macKey   []byte
	keys     []pskcKeySpec
}

type pskcKeySpec struct {
	serial    string
	algorithm string // key Algorithm URI
	suite     string
	digits    string
	secret    []byte
	interval  string // "" = element absent
	time      string
	drift     string
	counter   string
	extraData string // raw XML appended inside <Data>
	noSecret  bool
}

const testSecretB64 = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0" // base64 of "secret-secret-secret-secret"

func (s *pskcSpec) build(t testing.TB) []byte {
	t.Helper()
	cipherURI := uriAES128CBC
	if s.cipher == "aes256-cbc" {
		cipherURI = uriAES256CBC
	}
	macURI := s.mac
	if macURI == "" {
		macURI = uriHMACSHA1
	}
	var encKey []byte
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc"
  xmlns:ds="http://www.w3.org/2000/09/xmldsig#" xmlns:xenc="http://www.w3.org/2001/04/xmlenc#"
  xmlns:xenc11="http://www.w3.org/2009/xmlenc11#" xmlns:pkcs5="http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#">
`)
	switch s.enc {
	case "psk":
		encKey = s.psk
		b.WriteString("<EncryptionKey><ds:KeyName>Lab key</ds:KeyName></EncryptionKey>\n")
	case "pbkdf2":
		salt := randBytes(t, 8)
		prf := sha1.New
		prfXML := "<PRF/>"
		if s.prf != "" {
			prf = sha256.New
			prfXML = fmt.Sprintf(`<PRF Algorithm=%q/>`, s.prf)
		}
		klen := 16
		if s.cipher == "aes256-cbc" {
			klen = 32
		}
		var err error
		encKey, err = pbkdf2.Key(prf, string(s.password), salt, 1000, klen)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, `<EncryptionKey><xenc11:DerivedKey>
  <xenc11:KeyDerivationMethod Algorithm="http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#pbkdf2">
   <pkcs5:PBKDF2-params><Salt><Specified>%s</Specified></Salt><IterationCount>1000</IterationCount><KeyLength>%d</KeyLength>%s</pkcs5:PBKDF2-params>
  </xenc11:KeyDerivationMethod>
  <xenc11:MasterKeyName>Lab password</xenc11:MasterKeyName>
</xenc11:DerivedKey></EncryptionKey>
`, base64.StdEncoding.EncodeToString(salt), klen, prfXML)
	}
	if encKey != nil {
		fmt.Fprintf(&b, `<MACMethod Algorithm=%q><MACKey><xenc:EncryptionMethod Algorithm=%q/>
  <xenc:CipherData><xenc:CipherValue>%s</xenc:CipherValue></xenc:CipherData></MACKey></MACMethod>
`, macURI, cipherURI, base64.StdEncoding.EncodeToString(encryptCBC(t, encKey, s.macKey)))
	}
	macHash := macHashes[macURI]
	if macHash == nil {
		macHash = sha1.New // for files with an unsupported MAC algorithm
	}
	value := func(plain []byte, text string) string {
		if encKey == nil {
			return "<PlainValue>" + text + "</PlainValue>"
		}
		ct := encryptCBC(t, encKey, plain)
		return fmt.Sprintf(`<EncryptedValue><xenc:EncryptionMethod Algorithm=%q/><xenc:CipherData><xenc:CipherValue>%s</xenc:CipherValue></xenc:CipherData></EncryptedValue><ValueMAC>%s</ValueMAC>`,
			cipherURI, base64.StdEncoding.EncodeToString(ct), base64.StdEncoding.EncodeToString(hmacOf(macHash, s.macKey, ct)))
	}
	for _, k := range s.keys {
		alg := k.algorithm
		if alg == "" {
			alg = "urn:ietf:params:xml:ns:keyprov:pskc#totp"
		}
		digits := k.digits
		if digits == "" {
			digits = "6"
		}
		fmt.Fprintf(&b, "<KeyPackage><DeviceInfo><Manufacturer>Acme</Manufacturer><SerialNo>%s</SerialNo><Model>T1</Model></DeviceInfo>\n", k.serial)
		fmt.Fprintf(&b, "<Key Id=\"id-%s\" Algorithm=%q><Issuer>Lab</Issuer><AlgorithmParameters>", k.serial, alg)
		if k.suite != "" {
			fmt.Fprintf(&b, "<Suite>%s</Suite>", k.suite)
		}
		fmt.Fprintf(&b, "<ResponseFormat Length=%q Encoding=\"DECIMAL\"/></AlgorithmParameters>\n<Data>", digits)
		if !k.noSecret {
			fmt.Fprintf(&b, "<Secret>%s</Secret>", value(k.secret, base64.StdEncoding.EncodeToString(k.secret)))
		}
		for _, f := range []struct{ name, v string }{{"Counter", k.counter}, {"Time", k.time}, {"TimeInterval", k.interval}, {"TimeDrift", k.drift}} {
			if f.v != "" {
				fmt.Fprintf(&b, "<%s><PlainValue>%s</PlainValue></%s>", f.name, f.v, f.name)
			}
		}
		b.WriteString(k.extraData)
		b.WriteString("</Data></Key></KeyPackage>\n")
	}
	b.WriteString("</KeyContainer>\n")
	return []byte(b.String())
}

func randBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// encryptCBC is XML Encryption AES-CBC: random IV prepended, PKCS#7 padding.
func encryptCBC(t testing.TB, key, plain []byte) []byte {
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	n := aes.BlockSize - len(plain)%aes.BlockSize
	padded := append(append([]byte{}, plain...), bytes.Repeat([]byte{byte(n)}, n)...)
	out := make([]byte, aes.BlockSize+len(padded))
	copy(out, randBytes(t, aes.BlockSize))
	cipher.NewCBCEncrypter(block, out[:aes.BlockSize]).CryptBlocks(out[aes.BlockSize:], padded)
	return out
}

func hmacOf(h func() hash.Hash, key, data []byte) []byte {
	m := hmac.New(h, key)
	m.Write(data)
	return m.Sum(nil)
}

func totpSpecs(secret []byte) []pskcKeySpec {
	return []pskcKeySpec{
		{serial: "T-0001", secret: secret, interval: "30", time: "0"},
		{serial: "T-0002", secret: secret, algorithm: "urn:ietf:params:xml:ns:keyprov:pskc:totp", suite: "HMAC-SHA256", digits: "8", interval: "60", drift: "-3"},
		{serial: "T-0003", secret: secret, algorithm: "http://www.ietf.org/keyprov/pskc#totp", suite: "SHA512"},
		{serial: "H-0004", secret: secret, algorithm: uriHOTP, counter: "42"},
	}
}

func TestPSKCBuiltTOTP(t *testing.T) {
	secret := []byte("secret-secret-secret-secret")
	psk128, psk256 := randBytes(t, 16), randBytes(t, 32)
	specs := map[string]*pskcSpec{
		"plain":                {keys: totpSpecs(secret)},
		"psk aes128 sha1":      {enc: "psk", psk: psk128, macKey: randBytes(t, 20), keys: totpSpecs(secret)},
		"psk aes256 sha256":    {enc: "psk", cipher: "aes256-cbc", psk: psk256, mac: uriHMACSHA256, macKey: randBytes(t, 32), keys: totpSpecs(secret)},
		"pbkdf2 sha1":          {enc: "pbkdf2", password: []byte("lab password"), macKey: randBytes(t, 20), keys: totpSpecs(secret)},
		"pbkdf2 sha256 aes256": {enc: "pbkdf2", cipher: "aes256-cbc", prf: uriHMACSHA256, password: []byte("lab password"), mac: uriHMACSHA256, macKey: randBytes(t, 32), keys: totpSpecs(secret)},
	}
	for name, spec := range specs {
		t.Run(name, func(t *testing.T) {
			opts := PSKCOptions{Password: spec.password, PreSharedKey: spec.psk}
			toks, err := ParsePSKC(bytes.NewReader(spec.build(t)), opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(toks) != 4 {
				t.Fatalf("%d tokens", len(toks))
			}
			want := []struct {
				serial string
				typ    Type
				alg    Algorithm
				digits int
				period time.Duration
				drift  int64
				ctr    uint64
			}{
				{"T-0001", TOTP, SHA1, 6, 30 * time.Second, 0, 0},
				{"T-0002", TOTP, SHA256, 8, 60 * time.Second, -3, 0},
				{"T-0003", TOTP, SHA512, 6, 30 * time.Second, 0, 0},
				{"H-0004", HOTP, SHA1, 6, 0, 0, 42},
			}
			for i, w := range want {
				tok := toks[i]
				k := tok.Key
				if tok.Serial != w.serial || tok.Manufacturer != "Acme" || tok.Model != "T1" || tok.KeyID != "id-"+w.serial || tok.Issuer != "Lab" ||
					k.Type != w.typ || k.Algorithm != w.alg || k.Digits != w.digits || k.Period != w.period || tok.Drift != w.drift || k.Counter != w.ctr || tok.Time0 != 0 {
					t.Errorf("token %d: %+v", i, tok)
				}
				if !bytes.Equal(k.Secret, secret) {
					t.Errorf("token %d: wrong secret", i)
				}
				if err := k.Validate(); err != nil {
					t.Errorf("token %d: %v", i, err)
				}
			}
		})
	}
}

// Each mutation of a good file refuses it whole.
func TestPSKCRefusedWhole(t *testing.T) {
	secret := []byte("secret-secret-secret-secret")
	psk := randBytes(t, 16)
	good := func() *pskcSpec {
		return &pskcSpec{enc: "psk", psk: psk, macKey: randBytes(t, 20), keys: totpSpecs(secret)}
	}
	goodFile := good().build(t)
	if _, err := ParsePSKC(bytes.NewReader(goodFile), PSKCOptions{PreSharedKey: psk}); err != nil {
		t.Fatalf("good file refused: %v", err)
	}
	valueMAC := func(b []byte) []byte {
		// Flip one bit of the second key's ValueMAC.
		i := bytes.Index(b, []byte("<ValueMAC>"))
		i = bytes.Index(b[i+1:], []byte("<ValueMAC>")) + i + 1 + len("<ValueMAC>")
		raw, _ := base64.StdEncoding.DecodeString(string(b[i : i+28]))
		raw[0] ^= 1
		out := append([]byte{}, b...)
		copy(out[i:], base64.StdEncoding.EncodeToString(raw))
		return out
	}
	cipherFlip := func(b []byte) []byte {
		i := bytes.LastIndex(b, []byte("<xenc:CipherValue>")) + len("<xenc:CipherValue>") + 30
		out := append([]byte{}, b...)
		out[i] ^= 'A' ^ 'B'
		if out[i] == b[i] || !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", rune(out[i])) {
			out[i] = 'Q'
			if b[i] == 'Q' {
				out[i] = 'R'
			}
		}
		return out
	}
	tests := []struct {
		name string
		file []byte
		opts PSKCOptions
		want []string
		is   error
	}{
		{"bad MAC", valueMAC(goodFile), PSKCOptions{PreSharedKey: psk}, []string{"key 2", `"T-0002"`, "ValueMAC"}, ErrPSKCBadMAC},
		{"tampered ciphertext", cipherFlip(goodFile), PSKCOptions{PreSharedKey: psk}, []string{"key 4", "ValueMAC"}, ErrPSKCBadMAC},
		{"wrong pre-shared key", goodFile, PSKCOptions{PreSharedKey: randBytes(t, 16)}, []string{"key 1", "ValueMAC"}, ErrPSKCBadMAC},
		{"missing pre-shared key", goodFile, PSKCOptions{}, []string{"Lab key"}, ErrPSKCNoKey},
		{"unsupported algorithm", func() []byte {
			s := good()
			s.keys[2].algorithm = "urn:ietf:params:xml:ns:keyprov:pskc#ocra"
			return s.build(t)
		}(), PSKCOptions{PreSharedKey: psk}, []string{"key 3", "pskc#ocra"}, ErrPSKCUnsupported},
		{"unsupported suite", func() []byte {
			s := good()
			s.keys[1].suite = "HMAC-SHA384"
			return s.build(t)
		}(), PSKCOptions{PreSharedKey: psk}, []string{"key 2", "HMAC-SHA384"}, ErrPSKCUnsupported},
		{"unsupported MAC", func() []byte {
			s := good()
			s.mac = "http://www.w3.org/2001/04/xmldsig-more#hmac-md5"
			return s.build(t)
		}(), PSKCOptions{PreSharedKey: psk}, []string{"hmac-md5"}, ErrPSKCUnsupported},
		{"missing secret", func() []byte {
			s := good()
			s.keys[3].noSecret = true
			return s.build(t)
		}(), PSKCOptions{PreSharedKey: psk}, []string{"key 4", "no Secret"}, nil},
		{"duplicate serial", func() []byte {
			s := good()
			s.keys[3].serial = "T-0001"
			return s.build(t)
		}(), PSKCOptions{PreSharedKey: psk}, []string{"key 4", "duplicate serial", "key 1"}, nil},
		{"7 digits", func() []byte {
			s := good()
			s.keys[0].digits = "7"
			return s.build(t)
		}(), PSKCOptions{PreSharedKey: psk}, []string{"key 1", "length \"7\""}, nil},
		{"45 s interval", func() []byte {
			s := good()
			s.keys[0].interval = "45"
			return s.build(t)
		}(), PSKCOptions{PreSharedKey: psk}, []string{"key 1", "TimeInterval 45"}, nil},
		{"non-numeric interval", func() []byte {
			s := good()
			s.keys[0].interval = "thirty"
			return s.build(t)
		}(), PSKCOptions{PreSharedKey: psk}, []string{"key 1", "TimeInterval"}, nil},
		{"TOTP with counter", func() []byte {
			s := good()
			s.keys[0].counter = "1"
			return s.build(t)
		}(), PSKCOptions{PreSharedKey: psk}, []string{"key 1", "Counter"}, nil},
		{"short secret", func() []byte {
			s := good()
			s.keys[1].secret = secret[:10]
			return s.build(t)
		}(), PSKCOptions{PreSharedKey: psk}, []string{"key 2", "10 bytes"}, nil},
		{"truncated XML", goodFile[:len(goodFile)*2/3], PSKCOptions{PreSharedKey: psk}, []string{"malformed XML"}, nil},
		{"empty", nil, PSKCOptions{}, nil, nil},
		{"not PSKC", []byte(`<?xml version="1.0"?><KeyContainer Version="1.0" xmlns="urn:example"><KeyPackage/></KeyContainer>`), PSKCOptions{}, []string{"not a PSKC KeyContainer"}, nil},
		{"wrong version", bytes.Replace(goodFile, []byte(`Version="1.0"`), []byte(`Version="2.0"`), 1), PSKCOptions{PreSharedKey: psk}, []string{"version"}, ErrPSKCUnsupported},
		{"no key packages", []byte(`<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc"></KeyContainer>`), PSKCOptions{}, []string{"no KeyPackage"}, nil},
		{"DTD", append([]byte(`<!DOCTYPE KeyContainer [<!ENTITY x "y">]>`), goodFile[bytes.Index(goodFile, []byte("<KeyContainer")):]...), PSKCOptions{PreSharedKey: psk}, []string{"DTD"}, nil},
		{"encrypted without MAC method", bytes.Replace(goodFile, goodFile[bytes.Index(goodFile, []byte("<MACMethod")):bytes.Index(goodFile, []byte("</MACMethod>"))+len("</MACMethod>")], nil, 1), PSKCOptions{PreSharedKey: psk}, []string{"no MACMethod"}, nil},
		{"encrypted without ValueMAC", stripValueMACs(goodFile), PSKCOptions{PreSharedKey: psk}, []string{"key 1", "without ValueMAC"}, nil},
		{"two keys in a package", bytes.Replace(goodFile, []byte("</Key></KeyPackage>"), []byte("</Key><Key/></KeyPackage>"), 1), PSKCOptions{PreSharedKey: psk}, []string{"key 1", "2 Key elements"}, nil},
		{"deep nesting", []byte(`<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">` + strings.Repeat("<a>", 40) + strings.Repeat("</a>", 40) + `</KeyContainer>`), PSKCOptions{}, []string{"nested deeper"}, nil},
		{"too many keys", []byte(`<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">` + strings.Repeat("<KeyPackage/>", MaxPSKCKeys+1) + `</KeyContainer>`), PSKCOptions{}, []string{"more than 10000 keys"}, nil},
		{"too large", append(append([]byte{}, goodFile...), bytes.Repeat([]byte(" "), MaxPSKCBytes)...), PSKCOptions{PreSharedKey: psk}, []string{"larger than"}, nil},
	}
	for _, tc := range tests {
		toks, err := ParsePSKC(bytes.NewReader(tc.file), tc.opts)
		if err == nil || toks != nil {
			t.Errorf("%s: accepted (%d tokens)", tc.name, len(toks))
			continue
		}
		t.Logf("%s: %v", tc.name, err)
		checkPSKCErr(t, tc.name, err, tc.want, tc.is)
	}
}

func stripValueMACs(b []byte) []byte {
	s := string(b)
	for {
		i := strings.Index(s, "<ValueMAC>")
		if i < 0 {
			return []byte(s)
		}
		j := strings.Index(s, "</ValueMAC>") + len("</ValueMAC>")
		s = s[:i] + s[j:]
	}
}

func TestPSKCVendorForms(t *testing.T) {
	// Feitian/LinOTP form: ...pskc:totp, Time 0, TimeInterval 60, no Suite.
	const feitian = `<?xml version="1.0" encoding="UTF-8"?>
<KeyContainer Version="1.0" xmlns ="urn:ietf:params:xml:ns:keyprov:pskc">
  <KeyPackage>
    <DeviceInfo><Manufacturer>Feitian Technology Co.,Ltd</Manufacturer><SerialNo>2600124809778</SerialNo></DeviceInfo>
    <Key Id="2600124809778" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:totp">
      <AlgorithmParameters><ResponseFormat Length="6" Encoding="DECIMAL"/></AlgorithmParameters>
      <Data>
        <Secret><PlainValue>MRffGnGNJKmo8uSW313HCvGNIYM=</PlainValue></Secret>
        <Time><PlainValue>0</PlainValue></Time>
        <TimeInterval><PlainValue>60</PlainValue></TimeInterval>
      </Data>
      <Policy><StartDate>2012-08-01T00:00:00Z</StartDate><ExpiryDate>2037-12-31T00:00:00Z</ExpiryDate></Policy>
    </Key>
  </KeyPackage>
</KeyContainer>`
	toks, err := ParsePSKC(strings.NewReader(feitian), PSKCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	k := toks[0].Key
	if toks[0].Serial != "2600124809778" || k.Type != TOTP || k.Period != 60*time.Second || k.Algorithm != SHA1 || len(k.Secret) != 20 {
		t.Errorf("feitian: %+v", toks[0])
	}
	// No SerialNo: the Key Id names the token.
	noSerial := strings.Replace(feitian, "<SerialNo>2600124809778</SerialNo>", "", 1)
	if toks, err := ParsePSKC(strings.NewReader(noSerial), PSKCOptions{}); err != nil || toks[0].Serial != "2600124809778" {
		t.Errorf("no SerialNo: %v %v", toks, err)
	}
}
