package ctap2

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"testing"

	xhkdf "golang.org/x/crypto/hkdf"
)

// Known answers for protocol one from python-fido2's tests: a fixed
// platform key, the authenticator's key, and what setPIN, changePIN and
// getPinToken send and receive.
func TestProtocolOneKnownAnswers(t *testing.T) {
	v := loadVectors(t)
	p := ProtocolOne{}
	priv, err := ecdh.P256().NewPrivateKey(v["ec_priv"])
	if err != nil {
		t.Fatal(err)
	}
	platformKey, err := NewKeyAgreementKey(priv.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(platformKey.X, v["ec_pub_x"]) || !bytes.Equal(platformKey.Y, v["ec_pub_y"]) {
		t.Fatalf("platform key %x %x", platformKey.X, platformKey.Y)
	}
	devKey := &COSEKey{Kty: COSEKtyEC2, Alg: AlgECDHESHKDF256, Crv: COSECrvP256, X: v["dev_pub_x"], Y: v["dev_pub_y"]}
	dev, err := devKey.ECDHPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	shared, err := p.SharedSecret(priv, dev)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(shared, v["shared"]) {
		t.Fatalf("shared secret %x, want %x", shared, v["shared"])
	}

	check := func(name string, got []byte, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got, v[name]) {
			t.Errorf("%s = %x, want %x", name, got, v[name])
		}
	}
	phe, err := PINHashEnc(p, shared, "1234")
	check("pin_hash_enc_1234", phe, err)
	npe, err := NewPINEnc(p, shared, "1234")
	check("set_pin_new_pin_enc_1234", npe, err)
	check("set_pin_pin_auth", p.Authenticate(shared, npe), nil)
	npe2, err := NewPINEnc(p, shared, "4321")
	check("change_pin_new_pin_enc_4321", npe2, err)
	check("change_pin_pin_auth", p.Authenticate(shared, append(append([]byte(nil), npe2...), phe...)), nil)
	tok, err := DecryptPinUvAuthToken(p, shared, v["token_enc"])
	check("token", tok, err)

	// The authenticator's side of the same messages.
	pin, err := DecryptNewPIN(p, shared, v["set_pin_new_pin_enc_1234"])
	if err != nil || string(pin) != "1234" {
		t.Errorf("DecryptNewPIN = %q, %v", pin, err)
	}
	h, err := DecryptPINHash(p, shared, v["pin_hash_enc_1234"])
	if err != nil || !bytes.Equal(h, PINHash([]byte("1234"))) {
		t.Errorf("DecryptPINHash = %x, %v", h, err)
	}
	if err := p.Verify(shared, v["set_pin_new_pin_enc_1234"], v["set_pin_pin_auth"]); err != nil {
		t.Error(err)
	}
	bad := bytes.Clone(v["set_pin_pin_auth"])
	bad[0] ^= 1
	if err := p.Verify(shared, v["set_pin_new_pin_enc_1234"], bad); !errors.Is(err, ErrPINAuthInvalid) {
		t.Errorf("Verify of a changed pinAuth: %v", err)
	}
}

// Protocol two's KDF, checked against golang.org/x/crypto/hkdf as a second
// implementation, and its IV handling with a fixed IV source.
func TestProtocolTwoDerivation(t *testing.T) {
	a, _ := ecdh.P256().GenerateKey(rand.Reader)
	b, _ := ecdh.P256().GenerateKey(rand.Reader)
	z, err := a.ECDH(b.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 64)
	for i, info := range []string{"CTAP2 HMAC key", "CTAP2 AES key"} {
		if _, err := io.ReadFull(xhkdf.New(sha256.New, z, make([]byte, 32), []byte(info)), want[32*i:32*(i+1)]); err != nil {
			t.Fatal(err)
		}
	}
	p := ProtocolTwo{Rand: bytes.NewReader(bytes.Repeat([]byte{0xA5}, 16))}
	shared, err := p.SharedSecret(a, b.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(shared, want) {
		t.Fatalf("shared secret %x, want %x", shared, want)
	}
	other, err := p.SharedSecret(b, a.PublicKey())
	if err != nil || !bytes.Equal(other, shared) {
		t.Fatalf("the two sides disagree: %v", err)
	}
	p1, _ := ProtocolOne{}.SharedSecret(a, b.PublicKey())
	if z := sha256.Sum256(z); !bytes.Equal(p1, z[:]) {
		t.Error("protocol one shared secret is not SHA-256(Z)")
	}

	ct, err := p.Encrypt(shared, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	if len(ct) != 48 || !bytes.Equal(ct[:16], bytes.Repeat([]byte{0xA5}, 16)) {
		t.Fatalf("ciphertext %x does not start with the IV", ct)
	}
	pt, err := p.Decrypt(shared, ct)
	if err != nil || !bytes.Equal(pt, make([]byte, 32)) {
		t.Fatalf("decrypt %x, %v", pt, err)
	}
	// authenticate uses the HMAC half of the shared secret, or a whole token.
	if !bytes.Equal(p.Authenticate(shared, []byte("m")), p.Authenticate(shared[:32], []byte("m"))) || len(p.Authenticate(shared, nil)) != 32 {
		t.Error("protocol two authenticate does not use the first 32 bytes")
	}
	if _, err := p.Encrypt(shared, make([]byte, 32)); err == nil {
		t.Error("encrypt with an exhausted IV source succeeded")
	}
}

func TestPINProtocolErrors(t *testing.T) {
	for _, p := range []PINProtocol{ProtocolOne{}, ProtocolTwo{}} {
		keyLen := 32 * int(p.Version())
		shared := bytes.Repeat([]byte{7}, keyLen)
		if _, err := p.Encrypt(shared, make([]byte, 15)); !errors.Is(err, ErrInvalidParameter) {
			t.Errorf("v%d: encrypt of a partial block: %v", p.Version(), err)
		}
		if _, err := p.Decrypt(shared, make([]byte, 8)); !errors.Is(err, ErrInvalidParameter) {
			t.Errorf("v%d: decrypt of a partial block: %v", p.Version(), err)
		}
		if _, err := p.Encrypt(shared[:16], make([]byte, 16)); !errors.Is(err, ErrInvalidParameter) {
			t.Errorf("v%d: encrypt with a short key: %v", p.Version(), err)
		}
		if err := p.Verify(shared, []byte("m"), nil); !errors.Is(err, ErrPINAuthInvalid) {
			t.Errorf("v%d: verify of an empty signature: %v", p.Version(), err)
		}
		for _, pin := range []string{"123", strings.Repeat("1", 64), "12\xff4"} {
			if _, err := NewPINEnc(p, shared, pin); !errors.Is(err, ErrPINPolicyViolation) {
				t.Errorf("v%d: NewPINEnc(%q): %v", p.Version(), pin, err)
			}
		}
		// "ñññ1" is 4 code points in 7 bytes: allowed.
		if _, err := NewPINEnc(p, shared, "ñññ1"); err != nil {
			t.Errorf("v%d: NewPINEnc of a 4-character PIN: %v", p.Version(), err)
		}
		// A padded PIN with bytes after the first zero is refused.
		junk := make([]byte, 64)
		copy(junk, "1234\x00x")
		enc, _ := p.Encrypt(shared, junk)
		if _, err := DecryptNewPIN(p, shared, enc); !errors.Is(err, ErrPINPolicyViolation) {
			t.Errorf("v%d: padding with junk: %v", p.Version(), err)
		}
		enc, _ = p.Encrypt(shared, make([]byte, 32))
		if _, err := DecryptNewPIN(p, shared, enc); !errors.Is(err, ErrInvalidParameter) {
			t.Errorf("v%d: 32-byte padded PIN: %v", p.Version(), err)
		}
		enc, _ = p.Encrypt(shared, make([]byte, 48))
		if _, err := DecryptPinUvAuthToken(p, shared, enc); !errors.Is(err, ErrMalformed) {
			t.Errorf("v%d: 48-byte token: %v", p.Version(), err)
		}
	}
	if _, err := PINProtocolByVersion(3); !errors.Is(err, ErrInvalidParameter) {
		t.Errorf("protocol 3: %v", err)
	}
	if _, _, err := Encapsulate(ProtocolOne{}, &COSEKey{Kty: COSEKtyEC2, Crv: COSECrvP256, X: make([]byte, 32), Y: make([]byte, 32)}); !errors.Is(err, ErrMalformed) {
		t.Errorf("encapsulate with an off-curve key: %v", err)
	}
}

// authenticatorForTest is the device side of ClientPIN, as far as a test
// of the protocol needs it: one key agreement key, one PIN hash, one token.
type authenticatorForTest struct {
	key     *ecdh.PrivateKey
	pinHash []byte
	token   []byte
}

func (a *authenticatorForTest) handle(t *testing.T, frame []byte) []byte {
	t.Helper()
	req, err := ParseRequest(frame)
	if err != nil {
		return EncodeError(StatusOf(err))
	}
	r := req.ClientPIN
	p, err := PINProtocolByVersion(r.PinUvAuthProtocol)
	if err != nil {
		return EncodeError(StatusOf(err))
	}
	var resp ClientPINResponse
	if r.SubCommand == PINGetKeyAgreement {
		resp.KeyAgreement, _ = NewKeyAgreementKey(a.key.PublicKey())
		out, err := EncodeResponse(&resp)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	peer, err := r.KeyAgreement.ECDHPublicKey()
	if err != nil {
		return EncodeError(ErrInvalidParameter)
	}
	shared, err := p.SharedSecret(a.key, peer)
	if err != nil {
		return EncodeError(StatusOf(err))
	}
	switch r.SubCommand {
	case PINSet, PINChange:
		msg := r.NewPINEnc
		if r.SubCommand == PINChange {
			msg = append(append([]byte(nil), r.NewPINEnc...), r.PINHashEnc...)
		}
		if err := p.Verify(shared, msg, r.PinUvAuthParam); err != nil {
			return EncodeError(StatusOf(err))
		}
		if r.SubCommand == PINChange {
			h, err := DecryptPINHash(p, shared, r.PINHashEnc)
			if err != nil || !bytes.Equal(h, a.pinHash) {
				return EncodeError(ErrPINInvalid)
			}
		}
		pin, err := DecryptNewPIN(p, shared, r.NewPINEnc)
		if err != nil {
			return EncodeError(StatusOf(err))
		}
		a.pinHash = PINHash(pin)
		return []byte{StatusOK}
	case PINGetToken, PINGetTokenUsingPinWithPermissions:
		h, err := DecryptPINHash(p, shared, r.PINHashEnc)
		if err != nil || !bytes.Equal(h, a.pinHash) {
			return EncodeError(ErrPINInvalid)
		}
		if resp.PinUvAuthToken, err = p.Encrypt(shared, a.token); err != nil {
			t.Fatal(err)
		}
		out, err := EncodeResponse(&resp)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	return EncodeError(ErrInvalidSubcommand)
}

// The platform and the authenticator, each built from this package, agree
// through encoded frames: setPIN, changePIN, getPinToken, then a
// pinUvAuthParam that the authenticator verifies with its token.
func TestPINProtocolRoundTrip(t *testing.T) {
	for _, p := range []PINProtocol{ProtocolOne{}, ProtocolTwo{}} {
		key, _ := ecdh.P256().GenerateKey(rand.Reader)
		dev := &authenticatorForTest{key: key, token: bytes.Repeat([]byte{0x3C}, 32)}
		call := func(req *ClientPINRequest) (*ClientPINResponse, error) {
			frame, err := EncodeCommand(CmdClientPIN, req)
			if err != nil {
				t.Fatal(err)
			}
			return ParseClientPINResponse(dev.handle(t, frame))
		}
		ka, err := call(&ClientPINRequest{PinUvAuthProtocol: p.Version(), SubCommand: PINGetKeyAgreement})
		if err != nil {
			t.Fatal(err)
		}
		set, err := SetPINRequest(p, ka.KeyAgreement, "1234")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := call(set); err != nil {
			t.Fatalf("v%d setPIN: %v", p.Version(), err)
		}
		if !bytes.Equal(dev.pinHash, PINHash([]byte("1234"))) {
			t.Fatalf("v%d: authenticator stored %x", p.Version(), dev.pinHash)
		}
		tampered := *set
		tampered.NewPINEnc = bytes.Clone(set.NewPINEnc)
		tampered.NewPINEnc[len(tampered.NewPINEnc)-1] ^= 1
		if _, err := call(&tampered); !errors.Is(err, ErrPINAuthInvalid) {
			t.Errorf("v%d setPIN with a changed newPinEnc: %v", p.Version(), err)
		}
		wrong, err := ChangePINRequest(p, ka.KeyAgreement, "9999", "56789")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := call(wrong); !errors.Is(err, ErrPINInvalid) {
			t.Errorf("v%d changePIN with a wrong PIN: %v", p.Version(), err)
		}
		change, err := ChangePINRequest(p, ka.KeyAgreement, "1234", "56789")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := call(change); err != nil {
			t.Fatalf("v%d changePIN: %v", p.Version(), err)
		}
		for _, perms := range []Permission{0, PermMakeCredential | PermGetAssertion} {
			req, shared, err := GetPINTokenRequest(p, ka.KeyAgreement, "56789", perms, "example.org")
			if err != nil {
				t.Fatal(err)
			}
			if (perms == 0) != (req.SubCommand == PINGetToken) || (req.Permissions == nil) != (perms == 0) || req.Permissions != nil && *req.Permissions != perms {
				t.Errorf("subcommand %d permissions %v", req.SubCommand, req.Permissions)
			}
			resp, err := call(req)
			if err != nil {
				t.Fatalf("v%d token: %v", p.Version(), err)
			}
			tok, err := DecryptPinUvAuthToken(p, shared, resp.PinUvAuthToken)
			if err != nil || !bytes.Equal(tok, dev.token) {
				t.Fatalf("v%d token %x, %v", p.Version(), tok, err)
			}
			cdh := sha256.Sum256([]byte("clientData"))
			param := PinUvAuthParam(p, tok, cdh[:])
			if err := p.Verify(dev.token, cdh[:], param); err != nil {
				t.Errorf("v%d pinUvAuthParam: %v", p.Version(), err)
			}
			if err := p.Verify(dev.token, cdh[1:], param); !errors.Is(err, ErrPINAuthInvalid) {
				t.Errorf("v%d pinUvAuthParam over other data: %v", p.Version(), err)
			}
		}
		old, _, _ := GetPINTokenRequest(p, ka.KeyAgreement, "1234", 0, "")
		if _, err := call(old); !errors.Is(err, ErrPINInvalid) {
			t.Errorf("v%d token with the old PIN: %v", p.Version(), err)
		}
	}
}
