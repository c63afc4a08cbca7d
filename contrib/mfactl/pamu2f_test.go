package main

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

var (
	u2fCred  = []byte("a credential id of some length, as keys make them")
	u2fPoint = append([]byte{4}, []byte(strings.Repeat("X", 32)+strings.Repeat("Y", 32))...)
)

func TestParsePamU2F(t *testing.T) {
	current := "alice:" + base64.StdEncoding.EncodeToString(u2fCred) + "," + base64.StdEncoding.EncodeToString(u2fPoint[1:]) + ",es256,+presence+pin" +
		":" + base64.StdEncoding.EncodeToString([]byte("second")) + "," + base64.StdEncoding.EncodeToString(make([]byte, 32)) + ",eddsa,\n"
	old := "# central authfile\n\nbob:" + base64.RawURLEncoding.EncodeToString(u2fCred) + "," + hex.EncodeToString(u2fPoint) + "\n"
	creds, err := parsePamU2F(strings.NewReader(current+old), "pam://host")
	if err != nil {
		t.Fatal(err)
	}
	if len(creds) != 3 {
		t.Fatalf("%d credentials, want 3", len(creds))
	}
	a, e, b := creds[0], creds[1], creds[2]
	if a.user != "alice" || string(a.req.CredentialID) != string(u2fCred) || len(a.req.PublicKey) != 64 || a.req.Alg != "es256" || a.options != "+presence+pin" || a.req.Origin != "pam://host" || a.req.Kind != "fido" {
		t.Errorf("current format: %+v", a)
	}
	if e.req.Alg != "eddsa" || len(e.req.PublicKey) != 32 {
		t.Errorf("second credential: %+v", e)
	}
	if b.user != "bob" || b.line != 4 || string(b.req.CredentialID) != string(u2fCred) || len(b.req.PublicKey) != 65 || b.req.Alg != "es256" {
		t.Errorf("old format: %+v", b)
	}
	pk := base64.StdEncoding.EncodeToString(u2fPoint[1:])
	for name, bad := range map[string]string{
		"no user":        ":" + pk + "," + pk + ",es256,\n",
		"no credential":  "alice\n",
		"three fields":   "alice:a,b,c\n",
		"bad handle":     "alice:!!!," + pk + ",es256,+presence\n",
		"bad key":        "alice:abcd,***,es256,+presence\n",
		"old key size":   "alice:abcd," + hex.EncodeToString(u2fPoint[:30]) + "\n",
		"unknown option": "alice:abcd," + pk + ",es256,+teleport\n",
	} {
		_, err := parsePamU2F(strings.NewReader(bad), "pam://host")
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), pk) {
			t.Errorf("%s: the error quotes the key: %v", name, err)
		}
	}
}

// FuzzParsePamU2F: any authfile is parsed or refused, never a panic.
func FuzzParsePamU2F(f *testing.F) {
	f.Add("alice:" + base64.StdEncoding.EncodeToString(u2fCred) + "," + base64.StdEncoding.EncodeToString(u2fPoint[1:]) + ",es256,+presence\n")
	f.Add("bob:" + base64.RawURLEncoding.EncodeToString(u2fCred) + "," + hex.EncodeToString(u2fPoint) + "\n")
	f.Fuzz(func(t *testing.T, s string) {
		creds, err := parsePamU2F(strings.NewReader(s), "pam://host")
		if err != nil {
			return
		}
		for _, c := range creds {
			if c.user == "" || len(c.req.CredentialID) == 0 || len(c.req.PublicKey) == 0 || c.req.Kind != "fido" {
				t.Errorf("accepted %q as %+v", s, c)
			}
		}
	})
}
