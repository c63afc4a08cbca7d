package main

import (
	"errors"
	"strings"
	"testing"
)

// tokenOut is fido2-token -I (libfido2 1.12) on the software key, from a
// VM test run.
const tokenOut = `proto: 0x02
major: 0x01
minor: 0x00
build: 0x00
caps: 0x05 (wink, cbor, msg)
version strings: U2F_V2, FIDO_2_0, FIDO_2_1
extension strings: credProtect, hmac-secret
transport strings: usb
algorithms: es256 (public-key), eddsa (public-key)
aaguid: 6d6661642d656d752d736f66746b6579
options: rk, up, noplat, credMgmt, noclientPin, pinUvAuthToken
fwversion: 0x1
maxmsgsiz: 7609
maxcredcntlst: 16
maxcredlen: 63
maxlargeblob: 0
remaining rk(s): 98
minpinlen: 4
pin protocols: 2, 1
pin retries: 8
pin change required: false
uv retries: undefined
`

// report is a battery report on the same key, cut down to what crosscheck
// reads (getinfo.fields' observations as hw/fidocheck writes them).
const report = `{"version":1,"reports":[{"key":{"vendor_id":4617,"product_id":1,
 "aaguid":"6d666164-2d65-6d75-2d73-6f66746b6579","versions":["U2F_V2","FIDO_2_0","FIDO_2_1"]},
 "results":[
  {"id":"getinfo.fields","result":"pass","observed":[
   "versions [U2F_V2 FIDO_2_0 FIDO_2_1], extensions [credProtect hmac-secret]",
   "aaguid 6d666164-2d65-6d75-2d73-6f66746b6579, options map[clientPin:false credMgmt:true pinUvAuthToken:true plat:false rk:true up:true]",
   "maxMsgSize 7609, pinUvAuthProtocols [2 1], transports [usb], minPINLength 4, firmwareVersion 1"]},
  {"id":"cred.es256","result":"pass"},
  {"id":"cred.eddsa","result":"fail","reason":"MakeCredential: CTAP2_ERR_UNSUPPORTED_ALGORITHM"},
  {"id":"u2f.register","result":"skip","reason":"the key offers no U2F"}]}]}`

func TestCrosscheckGetInfo(t *testing.T) {
	v, err := readVerdicts([]byte(report))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenInfo(tokenOut)
	if err != nil {
		t.Fatal(err)
	}
	bat, err := batteryInfo(v.observed["getinfo.fields"])
	if err != nil {
		t.Fatal(err)
	}
	if d := tok.diff(bat); len(d) > 0 {
		t.Fatalf("the same GetInfo differs: %v\n%v\n%v", d, tok, bat)
	}
	if !tok.Options["rk"] || tok.Options["clientPin"] || tok.MaxMsgSize != 7609 || len(tok.PinProtocols) != 2 {
		t.Fatalf("fido2-token -I read as %v", tok)
	}

	// Each member that differs is found.
	for _, change := range []struct{ from, to, member string }{
		{"noclientPin", "clientPin", "options"},
		{", pinUvAuthToken\n", "\n", "options"},
		{"FIDO_2_1\n", "FIDO_2_1, FIDO_2_2\n", "versions"},
		{"credProtect, hmac-secret", "hmac-secret", "extensions"},
		{"6d6661642d656d752d736f66746b6579", "6d6661642d656d752d736f66746b6570", "aaguid"},
		{"maxmsgsiz: 7609", "maxmsgsiz: 1200", "maxMsgSize"},
		{"pin protocols: 2, 1", "pin protocols: 1", "pinUvAuthProtocols"},
	} {
		other, err := tokenInfo(strings.Replace(tokenOut, change.from, change.to, 1))
		if err != nil {
			t.Fatal(err)
		}
		d := other.diff(bat)
		if len(d) != 1 || !strings.HasPrefix(d[0], change.member) {
			t.Errorf("%q -> %q: diff %v, want one in %s", change.from, change.to, d, change.member)
		}
	}
	// An option named with "no" in front (CTAP 2.1 noMcGaPermissionsWithClientPin).
	odd, err := tokenInfo(strings.Replace(tokenOut, "pinUvAuthToken", "pinUvAuthToken, noMcGaPermissionsWithClientPin, nonoMcGaPermissionsWithClientPin", 1))
	if err != nil || odd.Options["noMcGaPermissionsWithClientPin"] {
		t.Fatalf("noMcGa options: %v %v", odd.Options, err)
	}

	if _, err := tokenInfo("proto: 0x02\n"); err == nil {
		t.Error("fido2-token -I output without aaguid accepted")
	}
	if _, err := batteryInfo(v.observed["getinfo.fields"][:2]); err == nil {
		t.Error("observations without maxMsgSize accepted")
	}
	if _, err := readVerdicts([]byte(`{"reports":[]}`)); err == nil {
		t.Error("a report on no key accepted")
	}
}

func TestCrosscheckAgreement(t *testing.T) {
	v, err := readVerdicts([]byte(report))
	if err != nil {
		t.Fatal(err)
	}
	toolErr := errors.New("fido2-cred -M: exit status 1")
	for _, tc := range []struct {
		checks []string
		flow   error
		ok     bool
	}{
		{[]string{"cred.es256"}, nil, true},
		{[]string{"cred.es256"}, toolErr, false},             // the battery passes, the tools fail
		{[]string{"cred.eddsa"}, nil, false},                 // the tools pass, the battery fails
		{[]string{"cred.eddsa"}, toolErr, true},              // both fail
		{[]string{"cred.es256", "u2f.register"}, nil, false}, // a skip is not a pass
		{[]string{"cred.counter"}, nil, false},               // not in the report
	} {
		if ok, msg := agreement(v, tc.checks, tc.flow); ok != tc.ok {
			t.Errorf("%v with flow error %v: agree %v (%s), want %v", tc.checks, tc.flow, ok, msg, tc.ok)
		}
	}
}
