package totp

import (
	"bytes"
	"errors"
	"image/png"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestGenerate(t *testing.T) {
	for _, p := range []Params{
		DefaultParams,
		{Algorithm: SHA256, Digits: 8, Period: 60 * time.Second},
		{Algorithm: SHA512, Digits: 6, Period: 30 * time.Second},
	} {
		rnd := bytes.NewReader(bytes.Repeat([]byte{0xA5}, 64))
		k, uri, err := Generate("mfad on lab-3", "alice@example.org", p, rnd)
		if err != nil {
			t.Fatal(err)
		}
		if len(k.Secret) != p.Algorithm.SecretLen() || k.Params != p || k.Type != TOTP {
			t.Errorf("%v: key %v, %d-byte secret", p, k, len(k.Secret))
		}
		if !bytes.Equal(k.Secret, bytes.Repeat([]byte{0xA5}, len(k.Secret))) {
			t.Errorf("%v: secret not read from rand", p)
		}
		got, account, issuer, err := ParseURI(uri)
		if err != nil {
			t.Fatalf("ParseURI(Generate URI): %v", err)
		}
		if account != "alice@example.org" || issuer != "mfad on lab-3" || !keysEqual(got, k) {
			t.Errorf("%v: round trip gave %v %q %q", p, got, account, issuer)
		}
	}
	if _, _, err := Generate("a:b", "c", DefaultParams, bytes.NewReader(make([]byte, 64))); !errors.Is(err, ErrURI) {
		t.Errorf("issuer with colon: %v", err)
	}
	if _, _, err := Generate("a", "", DefaultParams, bytes.NewReader(make([]byte, 64))); !errors.Is(err, ErrURI) {
		t.Errorf("empty account: %v", err)
	}
	if _, _, err := Generate("a", "b", Params{Algorithm: SHA1, Digits: 6, Period: 45 * time.Second}, bytes.NewReader(make([]byte, 64))); !errors.Is(err, ErrParams) {
		t.Errorf("45 s period: %v", err)
	}
	if _, _, err := Generate("a", "b", DefaultParams, iotest.ErrReader(errors.New("no entropy"))); err == nil {
		t.Error("failing rand accepted")
	}
	if _, _, err := Generate("a", "b", DefaultParams, bytes.NewReader(make([]byte, 5))); err == nil {
		t.Error("short rand accepted")
	}
}

func keysEqual(a, b *Key) bool {
	return a.Type == b.Type && bytes.Equal(a.Secret, b.Secret) && a.Params == b.Params && a.Counter == b.Counter
}

const secret20 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" // "12345678901234567890"

func TestParseURI(t *testing.T) {
	tests := []struct {
		uri     string
		key     Key
		account string
		issuer  string
	}{
		{"otpauth://totp/ACME%20Co:john.doe@email.com?secret=" + secret20 + "&issuer=ACME%20Co&algorithm=SHA1&digits=6&period=30",
			Key{Type: TOTP, Secret: seed20, Params: DefaultParams}, "john.doe@email.com", "ACME Co"},
		{"otpauth://totp/alice?secret=" + strings.ToLower(secret20),
			Key{Type: TOTP, Secret: seed20, Params: DefaultParams}, "alice", ""},
		{"otpauth://totp/Lab:%20%20bob?secret=" + secret20 + "&algorithm=sha256&digits=8&period=60",
			Key{Type: TOTP, Secret: seed20, Params: Params{SHA256, 8, 60 * time.Second}}, "bob", "Lab"},
		{"otpauth://totp/bob?issuer=Lab&secret=" + secret20 + "&algorithm=SHA512&image=https://example.org/x.png",
			Key{Type: TOTP, Secret: seed20, Params: Params{SHA512, 6, 30 * time.Second}}, "bob", "Lab"},
		{"otpauth://hotp/Lab:carol?secret=" + secret20 + "&counter=42",
			Key{Type: HOTP, Secret: seed20, Params: Params{SHA1, 6, 0}, Counter: 42}, "carol", "Lab"},
		// Padded base32 (17-byte secret).
		{"otpauth://totp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3Q%3D%3D%3D%3D",
			Key{Type: TOTP, Secret: []byte("12345678901234567"), Params: DefaultParams}, "x", ""},
	}
	for _, tc := range tests {
		k, account, issuer, err := ParseURI(tc.uri)
		if err != nil {
			t.Errorf("%s: %v", tc.uri, err)
			continue
		}
		if !keysEqual(k, &tc.key) || account != tc.account || issuer != tc.issuer {
			t.Errorf("%s: got %v %q %q, want %v %q %q", tc.uri, k, account, issuer, tc.key, tc.account, tc.issuer)
		}
		// Marshal and parse again.
		s, err := k.URI(issuer, account)
		if err != nil {
			t.Errorf("%s: URI: %v", tc.uri, err)
			continue
		}
		k2, a2, i2, err := ParseURI(s)
		if err != nil || !keysEqual(k, k2) || a2 != account || i2 != issuer {
			t.Errorf("%s: re-marshalled %s parses to %v %q %q %v", tc.uri, s, k2, a2, i2, err)
		}
	}
}

func TestParseURIRefused(t *testing.T) {
	s := "secret=" + secret20
	tests := []struct {
		uri  string
		is   error
		want string
	}{
		{"https://totp/a?" + s, ErrURI, "scheme"},
		{"otpauth://motp/a?" + s, ErrURI, "type"},
		{"otpauth:totp/a?" + s, ErrURI, "form"},
		{"otpauth://totp/a?" + s + "#frag", ErrURI, "form"},
		{"otpauth://user@totp/a?" + s, ErrURI, "form"},
		{"otpauth://totp/?" + s, ErrURI, "empty account"},
		{"otpauth://totp/Lab:?" + s, ErrURI, "empty account"},
		{"otpauth://totp/:bob?" + s, ErrURI, "empty issuer"},
		{"otpauth://totp/a:b:c?" + s, ErrURI, "colon"},
		{"otpauth://totp/a%00?" + s, ErrURI, "control"},
		{"otpauth://totp/A:b?" + s + "&issuer=B", ErrURI, "differs"},
		{"otpauth://totp/b?" + s + "&issuer=", ErrURI, "empty issuer"},
		{"otpauth://totp/a", ErrSecret, "no secret"},
		{"otpauth://totp/a?secret=", ErrSecret, "empty"},
		{"otpauth://totp/a?secret=GEZDGNBVGY3TQOJQ", ErrSecret, "10 bytes"},
		{"otpauth://totp/a?secret=GEZDGNBVGY3TQOJ!GEZDGNBVGY3TQOJQ", ErrSecret, "base32"},
		{"otpauth://totp/a?" + s + "&" + s, ErrURI, "secret given 2 times"},
		{"otpauth://totp/a?" + s + "&algorithm=MD5", ErrParams, "MD5"},
		{"otpauth://totp/a?" + s + "&digits=7", ErrParams, "digits"},
		{"otpauth://totp/a?" + s + "&digits=06", ErrParams, "digits"},
		{"otpauth://totp/a?" + s + "&period=45", ErrParams, "period"},
		{"otpauth://totp/a?" + s + "&period=30&period=30", ErrURI, "2 times"},
		{"otpauth://totp/a?" + s + "&counter=1", ErrURI, "counter"},
		{"otpauth://hotp/a?" + s, ErrURI, "without counter"},
		{"otpauth://hotp/a?" + s + "&counter=-1", ErrURI, "decimal"},
		{"otpauth://hotp/a?" + s + "&counter=99999999999999999999", ErrURI, "range"},
		{"otpauth://hotp/a?" + s + "&counter=1&period=30", ErrURI, "period"},
		{"otpauth://totp/a?" + s + "&x=%zz", ErrURI, "query"},
		{"otpauth://totp/" + strings.Repeat("a", MaxURILen) + "?" + s, ErrURI, "longer"},
	}
	for _, tc := range tests {
		k, _, _, err := ParseURI(tc.uri)
		if k != nil || !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.80s: got %v, want %v mentioning %q", tc.uri, err, tc.is, tc.want)
			continue
		}
		if strings.Contains(err.Error(), secret20) || strings.Contains(err.Error(), "GEZDGNBV") {
			t.Errorf("%.80s: error shows the secret: %v", tc.uri, err)
		}
	}
}

func TestQRPNG(t *testing.T) {
	_, uri, err := Generate("Lab", "alice", DefaultParams, bytes.NewReader(make([]byte, 64)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := QRPNG(uri, 256)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if r := img.Bounds(); r.Dx() != 256 || r.Dy() != 256 {
		t.Errorf("image %v", r)
	}
	for _, size := range []int{0, 10, MaxQRSize + 1} {
		if _, err := QRPNG(uri, size); err == nil {
			t.Errorf("size %d accepted", size)
		}
	}
	if _, err := QRPNG("https://example.org/", 256); !errors.Is(err, ErrURI) {
		t.Errorf("non-otpauth URI: %v", err)
	}
}
