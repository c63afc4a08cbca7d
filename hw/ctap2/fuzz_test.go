package ctap2

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"testing"
)

// seedResponses adds the recorded and published response frames.
func seedResponses(f *testing.F) {
	for _, frame := range loadWiredata(f) {
		f.Add(frame)
	}
	v := loadVectors(f)
	for _, name := range []string{"packed_attobj", "mc_resp", "ga_resp"} {
		f.Add(append([]byte{0}, v[name]...))
	}
	f.Add([]byte{})
	f.Add([]byte{0x31})
}

// reencodeStable checks that a decoded value encodes, that the encoding
// decodes into a fresh value of the same type, and that this value
// encodes to the same bytes.
func reencodeStable[T any](t *testing.T, v *T) {
	t.Helper()
	b, err := Marshal(v)
	if err != nil {
		t.Fatalf("decoded value does not encode: %v", err)
	}
	var again T
	if err := Unmarshal(b, &again); err != nil {
		t.Fatalf("re-encoding %x does not decode: %v", b, err)
	}
	b2, err := Marshal(&again)
	if err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("encoding is not stable:\n%x\n%x (%v)", b, b2, err)
	}
}

func FuzzParseGetInfo(f *testing.F) {
	seedResponses(f)
	f.Fuzz(func(t *testing.T, frame []byte) {
		info, err := ParseGetInfo(frame)
		if err != nil {
			return
		}
		reencodeStable(t, info)
	})
}

func FuzzParseMakeCredentialResponse(f *testing.F) {
	seedResponses(f)
	f.Fuzz(func(t *testing.T, frame []byte) {
		resp, err := ParseMakeCredentialResponse(frame)
		if err != nil {
			return
		}
		reencodeStable(t, resp)
		if ad, err := ParseAuthData(resp.AuthData); err == nil && ad.AttestedCredential != nil {
			_, _, _ = ad.AttestedCredential.Key()
		}
		_, _ = ParseAttestationStatement(resp.AttStmt)
	})
}

func FuzzParseGetAssertionResponse(f *testing.F) {
	seedResponses(f)
	f.Fuzz(func(t *testing.T, frame []byte) {
		resp, err := ParseGetAssertionResponse(frame)
		if err != nil {
			return
		}
		reencodeStable(t, resp)
		_, _ = ParseAuthData(resp.AuthData)
	})
}

func FuzzParseAuthData(f *testing.F) {
	for _, frame := range loadWiredata(f) {
		var r struct {
			AuthData []byte `cbor:"2,keyasint"`
		}
		if ParseResponse(frame, &r) == nil && r.AuthData != nil {
			f.Add(r.AuthData)
		}
	}
	f.Add(make([]byte, 37))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ad, err := ParseAuthData(b)
		if err != nil {
			return
		}
		// The format leaves no freedom: what parses re-encodes exactly.
		again, err := ad.Marshal()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encoded to %x, %v", again, err)
		}
		if ad.AttestedCredential != nil {
			if pub, alg, err := ad.AttestedCredential.Key(); err == nil {
				_ = VerifySignature(pub, alg, b, b)
			}
		}
	})
}

func FuzzParseCOSEKey(f *testing.F) {
	k, _ := ecdh.P256().GenerateKey(rand.Reader)
	for _, alg := range []COSEAlgorithm{AlgECDHESHKDF256} {
		b, _ := MarshalCOSEKey(k.PublicKey(), alg)
		f.Add(b)
	}
	f.Add(unhex(f, "a5010203262001215820643566c206dd00227005fa5de69320616ca268043a38f08bde2e9dc45a5cafaf225820171353b2932434703726aae579fa6542432861fe591e481ea22d63997e1a5290"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pub, alg, err := ParseCOSEKey(b)
		if err != nil {
			return
		}
		if _, err := MarshalCOSEKey(pub, alg); err != nil {
			t.Fatalf("parsed key does not encode: %v", err)
		}
	})
}

func FuzzParseRequest(f *testing.F) {
	for _, c := range []Command{CmdGetInfo, CmdReset, CmdGetNextAssertion, CmdSelection} {
		f.Add([]byte{byte(c)})
	}
	ka, _ := ecdh.P256().GenerateKey(rand.Reader)
	kaCOSE, _ := NewKeyAgreementKey(ka.PublicKey())
	set, _ := SetPINRequest(ProtocolTwo{}, kaCOSE, "1234")
	change, _ := ChangePINRequest(ProtocolOne{}, kaCOSE, "1234", "4321")
	tok, _, _ := GetPINTokenRequest(ProtocolTwo{}, kaCOSE, "1234", PermGetAssertion, "example.org")
	for _, req := range []*ClientPINRequest{set, change, tok, {PinUvAuthProtocol: 1, SubCommand: PINGetRetries}} {
		b, _ := EncodeCommand(CmdClientPIN, req)
		f.Add(b)
	}
	mc, _ := EncodeCommand(CmdMakeCredential, &MakeCredentialRequest{
		ClientDataHash:   make([]byte, 32),
		RP:               &RPEntity{ID: "pam://host"},
		User:             &UserEntity{ID: []byte("alice"), Name: "alice"},
		PubKeyCredParams: []CredentialParameter{{Type: CredentialTypePublicKey, Alg: AlgES256}, {Type: CredentialTypePublicKey, Alg: AlgEdDSA}},
		ExcludeList:      []CredentialDescriptor{{Type: CredentialTypePublicKey, ID: []byte{1}}},
		Options:          map[string]bool{"rk": false},
	})
	ga, _ := EncodeCommand(CmdGetAssertion, &GetAssertionRequest{
		RPID:           "pam://host",
		ClientDataHash: make([]byte, 32),
		AllowList:      []CredentialDescriptor{{Type: CredentialTypePublicKey, ID: []byte{1}, Transports: []string{"usb"}}},
		Options:        map[string]bool{"up": true},
	})
	f.Add(mc)
	f.Add(ga)
	cm, _ := EncodeCommand(CmdCredentialManagement, &CredentialManagementRequest{
		SubCommand:        CredMgmtSubCommand(1),
		Params:            []byte{0xa1, 0x01, 0x41, 0x00},
		PinUvAuthProtocol: 2,
		PinUvAuthParam:    make([]byte, 32),
	})
	f.Add(cm)
	f.Fuzz(func(t *testing.T, frame []byte) {
		r, err := ParseRequest(frame)
		if err != nil {
			if StatusOf(err) == ErrOther {
				t.Fatalf("error without a status: %v", err)
			}
			return
		}
		var params any
		switch {
		case r.MakeCredential != nil:
			params = r.MakeCredential
		case r.GetAssertion != nil:
			params = r.GetAssertion
		case r.ClientPIN != nil:
			params = r.ClientPIN
			_, _ = r.ClientPIN.KeyAgreement.ECDHPublicKey()
		case r.CredMgmt != nil:
			params = r.CredMgmt
		}
		again, err := EncodeCommand(r.Command, params)
		if err != nil {
			t.Fatalf("parsed request does not encode: %v", err)
		}
		if _, err := ParseRequest(again); err != nil {
			t.Fatalf("re-encoded request %x does not parse: %v", again, err)
		}
	})
}
