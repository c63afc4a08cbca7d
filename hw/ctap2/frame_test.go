package ctap2

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

func TestCanonicalGetAssertionRequest(t *testing.T) {
	req := &GetAssertionRequest{
		RPID:              "a",
		ClientDataHash:    bytes.Repeat([]byte{0x11}, 32),
		AllowList:         []CredentialDescriptor{{Type: CredentialTypePublicKey, ID: []byte{1, 2}}},
		Options:           map[string]bool{"uv": true, "up": false},
		PinUvAuthParam:    bytes.Repeat([]byte{0xAB}, 16),
		PinUvAuthProtocol: 1,
	}
	frame, err := EncodeCommand(CmdGetAssertion, req)
	if err != nil {
		t.Fatal(err)
	}
	want := unhex(t, "02 a6"+
		"01 6161"+
		"02 5820"+strings.Repeat("11", 32)+
		"03 81 a2 626964 420102 6474797065 6a7075626c69632d6b6579"+
		"05 a2 627570 f4 627576 f5"+
		"06 50"+strings.Repeat("ab", 16)+
		"07 01")
	if !bytes.Equal(frame, want) {
		t.Fatalf("frame\n got %x\nwant %x", frame, want)
	}
	parsed, err := ParseRequest(frame)
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Command != CmdGetAssertion || !reflect.DeepEqual(parsed.GetAssertion, req) {
		t.Fatalf("parsed %+v", parsed.GetAssertion)
	}
	if v, ok := parsed.GetAssertion.Option("up"); v || !ok {
		t.Error("option up")
	}
}

func TestCanonicalMakeCredentialRequest(t *testing.T) {
	req := &MakeCredentialRequest{
		ClientDataHash:   []byte{0xCD},
		RP:               &RPEntity{ID: "example.org", Name: "Ex"},
		User:             &UserEntity{ID: []byte{1}, Name: "n", DisplayName: "D"},
		PubKeyCredParams: []CredentialParameter{{Type: CredentialTypePublicKey, Alg: AlgES256}},
		Extensions: map[string]cbor.RawMessage{
			"hmac-secret": {0xf5},
			"credProtect": {0x02},
		},
		Options: map[string]bool{"uv": false, "rk": true},
	}
	frame, err := EncodeCommand(CmdMakeCredential, req)
	if err != nil {
		t.Fatal(err)
	}
	// Map keys: integers ascending; text keys shorter first, then bytewise
	// ("id" < "name" < "displayName", "credProtect" < "hmac-secret").
	want := unhex(t, "01 a6"+
		"01 41cd"+
		"02 a2 626964 6b6578616d706c652e6f7267 646e616d65 624578"+
		"03 a3 626964 4101 646e616d65 616e 6b646973706c61794e616d65 6144"+
		"04 81 a2 63616c67 26 6474797065 6a7075626c69632d6b6579"+
		"06 a2 6b6372656450726f74656374 02 6b686d61632d736563726574 f5"+
		"07 a2 62726b f5 627576 f4")
	if !bytes.Equal(frame, want) {
		t.Fatalf("frame\n got %x\nwant %x", frame, want)
	}
	parsed, err := ParseRequest(frame)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(parsed.MakeCredential, req) {
		t.Fatalf("parsed %+v", parsed.MakeCredential)
	}
	again, _ := EncodeCommand(CmdMakeCredential, parsed.MakeCredential)
	if !bytes.Equal(again, frame) {
		t.Error("encode(decode(frame)) differs")
	}
}

// A request whose map keys are out of order and whose integers are longer
// than needed is accepted, and re-encodes canonically.
func TestNonCanonicalRequestReencodes(t *testing.T) {
	frame := unhex(t, "06 a2 1802 02 190001 01")
	r, err := ParseRequest(frame)
	if err != nil {
		t.Fatal(err)
	}
	if r.ClientPIN.SubCommand != PINGetKeyAgreement || r.ClientPIN.PinUvAuthProtocol != 1 {
		t.Fatalf("parsed %+v", r.ClientPIN)
	}
	again, _ := EncodeCommand(CmdClientPIN, r.ClientPIN)
	if want := unhex(t, "06 a2 0101 0202"); !bytes.Equal(again, want) {
		t.Errorf("re-encoded %x, want %x", again, want)
	}
}

func TestParseRequestErrors(t *testing.T) {
	deep := "06 a1 02" + strings.Repeat("81", 40) + "01"
	for _, tc := range []struct {
		name  string
		frame string
		want  StatusError
	}{
		{"empty", "", ErrInvalidLength},
		{"unknown command", "05", ErrInvalidCommand},
		{"vendor command", "41 a0", ErrInvalidCommand},
		{"getInfo with parameters", "04 a0", ErrInvalidLength},
		{"makeCredential without parameters", "01", ErrMissingParameter},
		{"clientPIN without subCommand", "06 a1 0101", ErrMissingParameter},
		{"makeCredential without rp", "01 a3 01 41cd 03 a1 626964 4101 04 80", ErrMissingParameter},
		{"getAssertion without clientDataHash", "02 a1 01 6161", ErrMissingParameter},
		{"allowList entry without id", "02 a3 01 6161 02 41cd 03 81 a1 6474797065 6a7075626c69632d6b6579", ErrMissingParameter},
		{"truncated", "06 a2 0101", ErrInvalidCBOR},
		{"break byte", "06 ff", ErrInvalidCBOR},
		{"duplicate key", "06 a2 0201 0202", ErrInvalidCBOR},
		{"trailing bytes", "06 a1 0202 00", ErrInvalidCBOR},
		{"indefinite map", "06 bf 0202 ff", ErrInvalidCBOR},
		{"tag", "06 c1 a1 0202", ErrInvalidCBOR},
		{"too deep", deep, ErrInvalidCBOR},
		{"array for map", "06 81 02", ErrCBORUnexpectedType},
		{"subCommand as text", "06 a1 02 6131", ErrCBORUnexpectedType},
		{"negative protocol", "06 a2 0120 0202", ErrCBORUnexpectedType},
		{"clientDataHash as int", "02 a2 01 6161 02 01", ErrCBORUnexpectedType},
	} {
		_, err := ParseRequest(unhex(t, tc.frame))
		if err == nil || StatusOf(err) != tc.want || !errors.Is(err, tc.want) {
			t.Errorf("%s: %v (status %v), want %v", tc.name, err, StatusOf(err), tc.want)
		}
	}
	for _, cmd := range []Command{CmdGetInfo, CmdReset, CmdGetNextAssertion, CmdSelection} {
		r, err := ParseRequest([]byte{byte(cmd)})
		if err != nil || r.Command != cmd || r.MakeCredential != nil || r.GetAssertion != nil || r.ClientPIN != nil {
			t.Errorf("%v: %+v, %v", cmd, r, err)
		}
	}
}

func TestParseResponse(t *testing.T) {
	err := ParseResponse([]byte{0x31}, nil)
	if !errors.Is(err, ErrPINInvalid) || errors.Is(err, ErrMalformed) {
		t.Errorf("status 0x31: %v", err)
	}
	var se StatusError
	if !errors.As(fmtWrap(err), &se) || se != ErrPINInvalid {
		t.Errorf("errors.As: %v", se)
	}
	if _, err := ParseGetAssertionResponse([]byte{0x2E}); err != ErrNoCredentials {
		t.Errorf("no credentials: %v", err)
	}
	for name, frame := range map[string]string{
		"empty":                  "",
		"no body":                "00",
		"bad cbor":               "00 ff",
		"getInfo without aaguid": "00 a1 01 81 68464944 4f5f325f30",
		"short aaguid":           "00 a2 01 81 6455325f56 03 4101",
	} {
		if _, err := ParseGetInfo(unhex(t, frame)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := ParseMakeCredentialResponse(unhex(t, "00 a2 01 646e6f6e65 02 40")); !errors.Is(err, ErrMalformed) {
		t.Errorf("makeCredential without attStmt: %v", err)
	}
	if _, err := ParseGetAssertionResponse(unhex(t, "00 a1 02 40")); !errors.Is(err, ErrMalformed) {
		t.Errorf("getAssertion without signature: %v", err)
	}
	if _, err := ParseAttestationStatement(unhex(t, "a0")); !errors.Is(err, ErrMalformed) {
		t.Errorf("attStmt without sig: %v", err)
	}
}

func fmtWrap(err error) error { return errors.Join(errors.New("context"), err) }

func TestStatusNames(t *testing.T) {
	for s, want := range map[StatusError]string{
		ErrPINInvalid:      "ctap2: CTAP2_ERR_PIN_INVALID (0x31)",
		ErrPINRequired:     "ctap2: CTAP2_ERR_PUAT_REQUIRED (0x36)",
		ErrKeepaliveCancel: "ctap2: CTAP2_ERR_KEEPALIVE_CANCEL (0x2D)",
		ErrInvalidCommand:  "ctap2: CTAP1_ERR_INVALID_COMMAND (0x01)",
		StatusError(0x50):  "ctap2: CTAP2_ERR_0x50 (0x50)",
		StatusError(0xE5):  "ctap2: CTAP2_ERR_EXTENSION_0xE5 (0xE5)",
		StatusError(0xF7):  "ctap2: CTAP2_ERR_VENDOR_0xF7 (0xF7)",
	} {
		if got := s.Error(); got != want {
			t.Errorf("%#x: %q, want %q", byte(s), got, want)
		}
	}
	if StatusOf(nil) != 0 || StatusOf(errors.New("x")) != ErrOther || StatusOf(fmtWrap(ErrNotAllowed)) != ErrNotAllowed {
		t.Error("StatusOf")
	}
	if CmdSelection.String() != "authenticatorSelection" || Command(0x99).String() != "command(0x99)" {
		t.Error("Command.String")
	}
}

type transportForTest struct {
	req        []byte
	keepalives []byte
	resp       []byte
}

func (f *transportForTest) CBOR(ctx context.Context, req []byte, onKeepalive func(byte)) ([]byte, error) {
	f.req = req
	for _, s := range f.keepalives {
		onKeepalive(s)
	}
	return f.resp, ctx.Err()
}

func TestCall(t *testing.T) {
	tr := &transportForTest{keepalives: []byte{1, 2}, resp: loadWiredata(t)["WIREDATA_CTAP_CBOR_INFO"]}
	var seen []byte
	var info GetInfoResponse
	if err := Call(context.Background(), tr, CmdGetInfo, nil, &info, func(s byte) { seen = append(seen, s) }); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tr.req, []byte{0x04}) || !bytes.Equal(seen, []byte{1, 2}) || len(info.Versions) == 0 {
		t.Errorf("request %x keepalives %v", tr.req, seen)
	}
	tr = &transportForTest{resp: []byte{byte(ErrOperationDenied)}}
	if err := Call(context.Background(), tr, CmdReset, nil, nil, nil); !errors.Is(err, ErrOperationDenied) {
		t.Errorf("reset: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Call(ctx, &transportForTest{resp: []byte{0}}, CmdSelection, nil, nil, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// A zero-length pinUvAuthParam is sent and read back as such; a nil one
// is left out.
func TestEmptyPinUvAuthParam(t *testing.T) {
	req := &MakeCredentialRequest{
		ClientDataHash:   []byte{1},
		RP:               &RPEntity{ID: "r"},
		User:             &UserEntity{ID: []byte{2}},
		PubKeyCredParams: []CredentialParameter{{Type: CredentialTypePublicKey, Alg: AlgES256}},
		PinUvAuthParam:   []byte{},
	}
	frame, err := EncodeCommand(CmdMakeCredential, req)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(frame, unhex(t, "08 40")) {
		t.Fatalf("frame %x has no empty pinUvAuthParam", frame)
	}
	r, err := ParseRequest(frame)
	if err != nil || r.MakeCredential.PinUvAuthParam == nil || len(r.MakeCredential.PinUvAuthParam) != 0 {
		t.Fatalf("parsed %v, %v", r.MakeCredential.PinUvAuthParam, err)
	}
	req.PinUvAuthParam = nil
	frame, _ = EncodeCommand(CmdMakeCredential, req)
	if bytes.HasSuffix(frame, unhex(t, "08 40")) {
		t.Fatalf("nil pinUvAuthParam encoded: %x", frame)
	}
}
