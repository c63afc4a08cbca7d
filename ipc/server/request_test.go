package server

import (
	"bytes"
	"testing"

	"github.com/mfad/mfad/ipc/api"
)

// The bodies mfad's own clients send take the hand path: ipc/client's
// (encoding/json) and pam_mfad's (its build(), no blanks).
func TestDecodeAuthenticatePlainBodies(t *testing.T) {
	for body, want := range map[string]api.Authenticate{
		`{"account":"alice","code":"123456"}`:                           {Account: "alice", Code: "123456"},
		`{"account":"alice","code":"123456","next_code":"654321"}`:      {Account: "alice", Code: "123456", NextCode: "654321"},
		`{"account":"alice","recovery_token":"r-1"}`:                    {Account: "alice", RecoveryToken: "r-1"},
		` { "account" : "bob" , "pin" : "1234", "wait_for_key": true }`: {Account: "bob", PIN: "1234", WaitForKey: true},
		`{"account":"bob","wait_for_key":false}` + "\n":                 {Account: "bob"},
		`{}`: {},
	} {
		var got api.Authenticate
		if !decodeAuthenticate([]byte(body), &got) || got != want {
			t.Errorf("%s: %+v, want %+v by hand", body, got, want)
		}
	}
}

// What the hand path does not take is left to decodeStrict whole: it must
// refuse, not guess.
func TestDecodeAuthenticateLeavesTheRest(t *testing.T) {
	for _, body := range []string{
		``, `[]`, `{`, `{"account":"a"`, `{"account":"a"}{}`, `{"account":"a"} x`,
		`{"Account":"a"}`,                   // another letter case: encoding/json matches it
		`{"account":"a","account":"b"}`,     // repeated: encoding/json keeps the last
		`{"account":"a\u0062"}`,             // an escape
		`{"account":"é"}`,                   // not ASCII
		`{"account":null}`, `{"account":1}`, // not a string
		`{"wait_for_key":"true"}`, `{"wait_for_key":truex}`,
		`{"account":"a",}`, `{"extra":"x"}`,
	} {
		var got api.Authenticate
		if decodeAuthenticate([]byte(body), &got) {
			t.Errorf("%q taken by hand as %+v", body, got)
		}
	}
}

// FuzzDecodeAuthenticate holds the hand path to decodeStrict: whatever it
// takes, decodeStrict takes too, whole, with the same result.
func FuzzDecodeAuthenticate(f *testing.F) {
	f.Add([]byte(`{"account":"alice","code":"123456"}`))
	f.Add([]byte(` {"account" :"a", "next_code":"1","pin":"2","recovery_token":"3","wait_for_key":true} `))
	f.Add([]byte(`{"account":"a","account":"b"}`))
	f.Add([]byte(`{"Code":"1"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var fast api.Authenticate
		if !decodeAuthenticate(body, &fast) {
			return
		}
		var std api.Authenticate
		rest, err := decodeStrict(body, &std)
		if err != nil || len(bytes.TrimLeft(rest, " \t\r\n")) != 0 {
			t.Fatalf("%q: taken by hand as %+v, refused by decodeStrict (%v, rest %q)", body, fast, err, rest)
		}
		if fast != std {
			t.Fatalf("%q: by hand %+v, decodeStrict %+v", body, fast, std)
		}
	})
}
