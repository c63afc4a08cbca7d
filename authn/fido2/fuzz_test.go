package fido2

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
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

// FuzzParseMDS: an MDS3 blob is a file an administrator downloads. Nothing
// in it may panic the daemon: arbitrary bytes as the whole blob, and an
// arbitrary payload and header signed by the trusted signer (so that the
// payload's parsing is reached, as it is for a blob from a compromised or
// careless publisher). Every refusal is one of ParseMDS's errors, and a
// blob that parses answers lookups.
func FuzzParseMDS(f *testing.F) {
	s := newMDSSigner(f, "ES256")
	good := s.blob(f, payload(entry("cb69481e-8ff7-4039-93ec-0a2729a154a8", "YubiKey 5 Series", nil, "FIDO_CERTIFIED"),
		jsonEntry{"attestationCertificateKeyIdentifiers": []string{strings.Repeat("ab", 20)}}))
	hdr := []byte(`{"alg":"ES256","typ":"JWT"}`)
	f.Add(good, []byte(`{"entries":[{"aaguid":"x"}]}`), hdr)
	f.Add([]byte("a.b.c"), []byte(`{"entries":[{"aaguid":"cb69481e-8ff7-4039-93ec-0a2729a154a8"},{"aaguid":"cb69481e8ff7403993ec0a2729a154a8"}]}`), []byte(`{"alg":"RS256"}`))
	f.Add([]byte{}, []byte(`{"nextUpdate":"2026-13-45","entries":[{"metadataStatement":{"attestationRootCertificates":["!!", "AAAA"]}}]}`), []byte(`{"alg":"none"}`))
	now := time.Now()
	kinds := []error{ErrMalformed, ErrUntrustedMetadata, ErrBadSignature, ErrUnsupportedAlgorithm}
	check := func(t *testing.T, blob []byte) {
		m, err := ParseMDS(blob, s.root.cert, now)
		if err != nil {
			for _, k := range kinds {
				if errors.Is(err, k) {
					return
				}
			}
			t.Fatalf("refusal of no known kind: %v", err)
		}
		m.Lookup([16]byte{})
		m.LookupKeyID(make([]byte, 20))
		_ = m.Len()
		_ = m.Stale(now)
	}
	f.Fuzz(func(t *testing.T, raw, payload, header []byte) {
		check(t, raw)
		// The trusted signer's chain in whatever header the input gives,
		// when it is a JSON object; else the input as the header itself.
		var h map[string]any
		if json.Unmarshal(header, &h) == nil && h != nil {
			var x5c []string
			for _, c := range s.chain {
				x5c = append(x5c, base64.StdEncoding.EncodeToString(c.Raw))
			}
			h["x5c"] = x5c
			if _, ok := h["alg"]; !ok {
				h["alg"] = "ES256"
			}
			header, _ = json.Marshal(h)
		}
		check(t, s.sign(t, header, payload))
	})
}
