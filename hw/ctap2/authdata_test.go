package ctap2

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

func testAuthData(t *testing.T) *AuthData {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pk, err := MarshalCOSEKey(&k.PublicKey, AlgES256)
	if err != nil {
		t.Fatal(err)
	}
	ext, _ := Marshal(map[string]any{"credProtect": 2})
	return &AuthData{
		RPIDHash:  sha256.Sum256([]byte("pam://host")),
		Flags:     FlagUP | FlagUV | FlagBE,
		SignCount: 0x01020304,
		AttestedCredential: &AttestedCredentialData{
			AAGUID:       [16]byte{1, 2, 3},
			CredentialID: bytes.Repeat([]byte{0xCC}, 48),
			PublicKey:    pk,
		},
		Extensions: ext,
	}
}

func TestAuthDataRoundTrip(t *testing.T) {
	a := testAuthData(t)
	b, err := a.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if AuthDataFlags(b[32]) != FlagUP|FlagUV|FlagBE|FlagAT|FlagED || binary.BigEndian.Uint32(b[33:]) != 0x01020304 {
		t.Fatalf("header %x", b[:37])
	}
	got, err := ParseAuthData(b)
	if err != nil {
		t.Fatal(err)
	}
	a.Flags |= FlagAT | FlagED
	if !reflect.DeepEqual(got, a) {
		t.Fatalf("parsed %+v\nwant %+v", got, a)
	}
	if !got.Flags.Has(FlagUP|FlagUV) || got.Flags.Has(FlagBS) {
		t.Error("Flags.Has")
	}
	// Without attested credential data and extensions: 37 bytes, AT and ED
	// cleared whatever Flags said.
	short := &AuthData{RPIDHash: a.RPIDHash, Flags: FlagUP | FlagAT | FlagED, SignCount: 7}
	b, err = short.Marshal()
	if err != nil || len(b) != 37 || AuthDataFlags(b[32]) != FlagUP {
		t.Fatalf("short authData %x, %v", b, err)
	}
	if _, err := (&AuthData{Extensions: []byte{0x80}}).Marshal(); err == nil {
		t.Error("extensions that are not a map were encoded")
	}
}

func TestParseAuthDataMalformed(t *testing.T) {
	good, err := testAuthData(t).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	attOnly, _ := (&AuthData{AttestedCredential: testAuthData(t).AttestedCredential}).Marshal()
	set := func(b []byte, i int, v byte) []byte {
		b = bytes.Clone(b)
		b[i] = v
		return b
	}
	for name, b := range map[string][]byte{
		"empty":                  nil,
		"36 bytes":               good[:36],
		"AT without data":        set(good[:37], 32, byte(FlagAT)),
		"ED without extensions":  set(good[:37], 32, byte(FlagED)),
		"truncated aaguid":       good[:37+10],
		"truncated id":           good[:37+18+20],
		"id length past the end": set(good, 37+16, 0x03),
		"id length over 1023":    set(set(good, 37+16, 0x04), 37+17, 0x00),
		"truncated key":          good[:37+18+48+10],
		"AT data but ED unset":   set(good, 32, byte(FlagAT)),
		"trailing byte":          append(bytes.Clone(attOnly), 0),
		"extensions not a map":   append(bytes.Clone(set(attOnly, 32, byte(FlagAT|FlagED))), 0x80),
		"extensions integer key": append(set(good[:37], 32, byte(FlagED)), 0xa1, 0x01, 0x01),
	} {
		if _, err := ParseAuthData(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
