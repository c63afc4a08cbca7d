package emu_test

import (
	"context"
	"testing"

	"github.com/mfad/mfad/hw/ctap2"
	"github.com/mfad/mfad/hw/ctaphid"
	"github.com/mfad/mfad/hw/emu"
)

// cborSeeds are valid request frames of every command.
func cborSeeds(t testing.TB) [][]byte {
	a, err := emu.New(emu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ka, err := ctap2.ParseClientPINResponse(a.CBOR(context.Background(), mustEncode(t, ctap2.CmdClientPIN, &ctap2.ClientPINRequest{PinUvAuthProtocol: 2, SubCommand: ctap2.PINGetKeyAgreement}), nil))
	if err != nil {
		t.Fatal(err)
	}
	setPIN, err := ctap2.SetPINRequest(ctap2.ProtocolTwo{}, ka.KeyAgreement, "1234")
	if err != nil {
		t.Fatal(err)
	}
	changePIN, err := ctap2.ChangePINRequest(ctap2.ProtocolOne{}, ka.KeyAgreement, "1234", "5678")
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := ctap2.GetPINTokenRequest(ctap2.ProtocolTwo{}, ka.KeyAgreement, "1234", ctap2.PermGetAssertion, "example.org")
	if err != nil {
		t.Fatal(err)
	}
	cdh := make([]byte, 32)
	mc := &ctap2.MakeCredentialRequest{
		ClientDataHash: cdh, RP: &ctap2.RPEntity{ID: "example.org"}, User: &ctap2.UserEntity{ID: []byte{1}},
		PubKeyCredParams: []ctap2.CredentialParameter{{Type: "public-key", Alg: ctap2.AlgEdDSA}, {Type: "public-key", Alg: ctap2.AlgES256}},
		ExcludeList:      []ctap2.CredentialDescriptor{{Type: "public-key", ID: make([]byte, 63)}},
		Options:          map[string]bool{"rk": true},
	}
	mcPIN := *mc
	mcPIN.PinUvAuthParam, mcPIN.PinUvAuthProtocol = make([]byte, 32), 2
	ga := &ctap2.GetAssertionRequest{RPID: "example.org", ClientDataHash: cdh, AllowList: []ctap2.CredentialDescriptor{{Type: "public-key", ID: make([]byte, 63)}}, Options: map[string]bool{"up": false}}
	gaProbe := &ctap2.GetAssertionRequest{RPID: "example.org", ClientDataHash: cdh, PinUvAuthParam: []byte{}, PinUvAuthProtocol: 1}
	return [][]byte{
		mustEncode(t, ctap2.CmdGetInfo, nil),
		mustEncode(t, ctap2.CmdMakeCredential, mc),
		mustEncode(t, ctap2.CmdMakeCredential, &mcPIN),
		mustEncode(t, ctap2.CmdGetAssertion, ga),
		mustEncode(t, ctap2.CmdGetAssertion, gaProbe),
		mustEncode(t, ctap2.CmdGetNextAssertion, nil),
		mustEncode(t, ctap2.CmdClientPIN, &ctap2.ClientPINRequest{SubCommand: ctap2.PINGetRetries}),
		mustEncode(t, ctap2.CmdClientPIN, setPIN),
		mustEncode(t, ctap2.CmdClientPIN, changePIN),
		mustEncode(t, ctap2.CmdClientPIN, token),
		mustEncode(t, ctap2.CmdReset, nil),
		mustEncode(t, ctap2.CmdSelection, nil),
		{},
		{0x01, 0xa0},
	}
}

func mustEncode(t testing.TB, cmd ctap2.Command, params any) []byte {
	b, err := ctap2.EncodeCommand(cmd, params)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzHandleCBOR feeds arbitrary request frames to the authenticator: it
// must answer every one with a status byte (and a body that fits a CTAPHID
// message), never panic or block.
func FuzzHandleCBOR(f *testing.F) {
	for _, s := range cborSeeds(f) {
		f.Add(s)
	}
	a, err := emu.New(emu.Config{})
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, req []byte) {
		resp := a.CBOR(ctx, req, func(byte) {})
		if len(resp) == 0 || len(resp) > ctaphid.MaxPayload {
			t.Fatalf("response of %d bytes", len(resp))
		}
		if resp[0] == ctap2.StatusOK && len(resp) > 1 {
			var v any
			if err := ctap2.Unmarshal(resp[1:], &v); err != nil {
				t.Fatalf("response body: %v", err)
			}
		}
	})
}

// FuzzHandleMsg does the same for U2F APDUs.
func FuzzHandleMsg(f *testing.F) {
	for _, s := range [][]byte{
		{0, 3, 0, 0},
		apdu(3, 0, nil),
		apdu(1, 0, make([]byte, 64)),
		apdu(2, 7, append(make([]byte, 64), 63)),
		apdu(2, 3, append(make([]byte, 65), make([]byte, 63)...)),
		{0, 2, 3, 0, 0x41},
	} {
		f.Add(s)
	}
	a, err := emu.New(emu.Config{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, req []byte) {
		if resp := a.Msg(context.Background(), req); len(resp) < 2 {
			t.Fatalf("response of %d bytes", len(resp))
		}
	})
}
