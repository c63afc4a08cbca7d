package fido2

import (
	"bytes"
	"testing"
	"time"

	"github.com/mfad/mfad/hw/ctap2"
)

// FuzzParseAttestationObject feeds arbitrary bytes to the attestation
// object parser and, when they parse, to the whole registration under
// every mode: nothing may panic, every refusal carries a Reason, and a
// parsed object survives Marshal and a second parse.
func FuzzParseAttestationObject(f *testing.F) {
	fx := newFixture(f)
	challenge := fx.challenge
	seeds := []*reg{fx.packed(f)}
	r := fx.packed(f)
	self(r)
	seeds = append(seeds, r)
	r = fx.packed(f)
	none(r)
	seeds = append(seeds, r)
	r = fx.packed(f)
	u2f(r, fx.leaf)
	seeds = append(seeds, r)
	r = fx.packed(f)
	r.ctapKeys = true
	seeds = append(seeds, r)
	var cdj []byte
	for _, s := range seeds {
		in := s.build(f)
		cdj = in.ClientDataJSON
		f.Add(in.AttestationObject)
	}
	_, cred := recordedMessage(f, "WIREDATA_CTAP_CBOR_CRED")
	f.Add(cred[1:]) // a real key's answer, CTAP2 integer keys
	f.Add([]byte{0xa0})
	f.Add([]byte{0xa3, 0x63, 'f', 'm', 't', 0x64, 'n', 'o', 'n', 'e'})

	policies := []Policy{
		{Mode: ModeNone},
		{Mode: ModeSelf},
		{Mode: ModeTrusted, Roots: fx.trustedRoots, Now: func() time.Time { return testNow }},
	}
	want := RegistrationExpect{RPID: testRPID, Challenge: challenge}
	f.Fuzz(func(t *testing.T, b []byte) {
		obj, err := ParseAttestationObject(b)
		if err != nil {
			if ReasonOf(err) != ErrMalformed {
				t.Fatalf("parse error without ErrMalformed: %v", err)
			}
		} else {
			again, err := obj.Marshal()
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			obj2, err := ParseAttestationObject(again)
			if err != nil || obj2.Format != obj.Format || !bytes.Equal(obj2.AuthData, obj.AuthData) || !bytes.Equal(obj2.AttStmt, obj.AttStmt) {
				t.Fatalf("round trip: %+v, %v", obj2, err)
			}
			if _, err := VerifyStatement(obj, make([]byte, 32)); err != nil && ReasonOf(err) == "" {
				t.Fatalf("VerifyStatement error without a reason: %v", err)
			}
		}
		for _, p := range policies {
			c, err := VerifyRegistration(AttestationInput{AttestationObject: b, ClientDataJSON: cdj}, want, p)
			if err != nil {
				if ReasonOf(err) == "" {
					t.Fatalf("error without a reason: %v", err)
				}
				continue
			}
			if c == nil || len(c.PublicKey) == 0 {
				t.Fatalf("accepted without a credential: %+v", c)
			}
			if p.Mode == ModeTrusted && (c.AttestationType != AttestationBasic || len(c.TrustPath) == 0) {
				t.Fatalf("trusted accepted %s attestation", c.AttestationType)
			}
		}
	})
}

// FuzzVerifyAssertion feeds arbitrary authenticator data, signatures,
// client data and stored keys to VerifyAssertion: nothing may panic,
// every refusal carries a Reason, and nothing but the seed's own signed
// bytes is accepted.
func FuzzVerifyAssertion(f *testing.F) {
	es := newCredKey(f, ctap2.AlgES256)
	ed := newCredKey(f, ctap2.AlgEdDSA)
	for _, k := range []*credKey{es, ed} {
		in := newAsr(k, 5).build(f)
		f.Add(k.cose, uint32(4), in.AuthData, in.Signature, in.ClientDataJSON)
		f.Add(k.cose, uint32(5), in.AuthData, in.Signature, in.ClientDataJSON)
	}
	f.Add([]byte{0xa0}, uint32(0), []byte{}, []byte{}, []byte(`{}`))
	want := AssertionExpect{RPID: testRPID, Challenge: assertChallenge}
	f.Fuzz(func(t *testing.T, key []byte, stored uint32, authData, sig, cdj []byte) {
		n, err := VerifyAssertion(StoredCredential{PublicKey: key, SignCount: stored}, AssertionInput{AuthData: authData, Signature: sig, ClientDataJSON: cdj}, want)
		if err != nil {
			if ReasonOf(err) == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		if (stored != 0 || n != 0) && n <= stored {
			t.Fatalf("accepted counter %d after %d", n, stored)
		}
		ad, perr := ctap2.ParseAuthData(authData)
		if perr != nil || !ad.Flags.Has(ctap2.FlagUP) {
			t.Fatalf("accepted authData %x: %v", authData, perr)
		}
	})
}
