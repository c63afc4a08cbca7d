package totp

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func FuzzParsePSKC(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.xml")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add((&pskcSpec{keys: totpSpecs([]byte("secret-secret-secret-secret"))}).build(f))
	f.Add([]byte(`<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc"><KeyPackage/></KeyContainer>`))
	psk := bytes.Repeat([]byte{0x12, 0x34, 0x56, 0x78, 0x90}, 4)[:16]
	f.Add((&pskcSpec{enc: "psk", psk: psk, macKey: []byte("mac-key-mac-key-mac!"), keys: totpSpecs([]byte("secret-secret-secret-secret"))}).build(f))
	opts := []PSKCOptions{
		{},
		{PreSharedKey: mustHex("12345678901234567890123456789012")},
		{Password: []byte("qwerty")},
		{PreSharedKey: psk},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, o := range opts {
			toks, err := ParsePSKC(bytes.NewReader(data), o)
			if err != nil {
				if toks != nil {
					t.Fatalf("error %v with %d tokens", err, len(toks))
				}
				var pe *PSKCError
				if !errors.Is(err, ErrPSKC) || !errors.As(err, &pe) {
					t.Fatalf("error %v is not a *PSKCError", err)
				}
				continue
			}
			if len(toks) == 0 {
				t.Fatal("no error and no tokens")
			}
			seen := map[string]bool{}
			for _, tok := range toks {
				if err := tok.Key.Validate(); err != nil {
					t.Fatalf("token %v: %v", tok, err)
				}
				if tok.Serial == "" || seen[tok.Serial] {
					t.Fatalf("empty or duplicate serial %q", tok.Serial)
				}
				seen[tok.Serial] = true
			}
		}
	})
}

func FuzzParseURI(f *testing.F) {
	for _, s := range []string{
		"otpauth://totp/ACME%20Co:john.doe@email.com?secret=" + secret20 + "&issuer=ACME%20Co&algorithm=SHA1&digits=6&period=30",
		"otpauth://hotp/Lab:carol?secret=" + secret20 + "&counter=42",
		"otpauth://totp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3Q%3D%3D%3D%3D&digits=8&algorithm=sha512&period=60",
		"otpauth://totp/a%2Fb%3Fc?secret=" + secret20,
		"otpauth://totp/Lab:%20%20bob?secret=" + strings.ToLower(secret20),
		"otpauth://totp/a?secret=GEZDGNBVGY3TQOJQ",
		"https://example.org/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, account, issuer, err := ParseURI(s)
		if err != nil {
			if k != nil {
				t.Fatal("error with a key")
			}
			if !errors.Is(err, ErrURI) && !errors.Is(err, ErrSecret) && !errors.Is(err, ErrParams) {
				t.Fatalf("unclassed error %v", err)
			}
			return
		}
		if err := k.Validate(); err != nil {
			t.Fatalf("parsed key does not validate: %v", err)
		}
		// Marshal, parse again: the same key, account and issuer.
		u, err := k.URI(issuer, account)
		if err != nil {
			t.Fatalf("URI(%q, %q): %v", issuer, account, err)
		}
		k2, a2, i2, err := ParseURI(u)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", u, err)
		}
		if !keysEqual(k, k2) || a2 != account || i2 != issuer {
			t.Fatalf("round trip %q -> %q: %v %q %q vs %v %q %q", s, u, k, account, issuer, k2, a2, i2)
		}
		// Marshalling is canonical: a second round gives the same text.
		if u2, err := k2.URI(i2, a2); err != nil || u2 != u {
			t.Fatalf("not canonical: %q then %q (%v)", u, u2, err)
		}
	})
}

func FuzzCompare(f *testing.F) {
	for _, s := range []string{"123456", " 123 456 ", "12345678", "1234\t5678", "", "12a456", "１２３４５６", "000000", "1234567"} {
		f.Add(s, "123456", 6)
		f.Add(s, "12345678", 8)
	}
	f.Fuzz(func(t *testing.T, typed, want string, digits int) {
		norm, ok := NormalizeCode(typed, digits)
		if ok {
			if len(norm) != digits {
				t.Fatalf("NormalizeCode(%q, %d) = %q", typed, digits, norm)
			}
			for i := 0; i < len(norm); i++ {
				if norm[i] < '0' || norm[i] > '9' {
					t.Fatalf("NormalizeCode(%q) = %q has a non-digit", typed, norm)
				}
			}
			if strings.NewReplacer(" ", "", "\t", "").Replace(typed) != norm {
				t.Fatalf("NormalizeCode(%q) = %q is not the input without spaces", typed, norm)
			}
		}
		wantOK := len(want) == digits
		if wantOK {
			_, wantOK = NormalizeCode(want, digits)
		}
		got := EqualCode(typed, want, digits)
		if got != (ok && wantOK && norm == want) {
			t.Fatalf("EqualCode(%q, %q, %d) = %v; normalised %q, %v", typed, want, digits, got, norm, ok)
		}
	})
}
