package fido2

import (
	"testing"

	"github.com/mfad/mfad/hw/ctap2"
)

// benchAssertion measures one sign-in check: client data, authenticator
// data, COSE key decoding and the signature.
func benchAssertion(b *testing.B, alg ctap2.COSEAlgorithm) {
	k := newCredKey(b, alg)
	in := newAsr(k, 2).build(b)
	stored := StoredCredential{ID: in.CredentialID, PublicKey: k.cose, Alg: alg, SignCount: 1}
	want := AssertionExpect{RPID: testRPID, Challenge: assertChallenge}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := VerifyAssertion(stored, in, want); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyAssertionES256(b *testing.B) { benchAssertion(b, ctap2.AlgES256) }
func BenchmarkVerifyAssertionEdDSA(b *testing.B) { benchAssertion(b, ctap2.AlgEdDSA) }

// BenchmarkVerifyRegistrationPacked measures an enrollment under
// ModeTrusted: a packed statement with a one-certificate chain.
func BenchmarkVerifyRegistrationPacked(b *testing.B) {
	f := newFixture(b)
	in := f.packed(b).build(b)
	want := RegistrationExpect{RPID: testRPID, Challenge: f.challenge}
	pol := Policy{Mode: ModeTrusted, Roots: f.trustedRoots, Now: fixedClock}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := VerifyRegistration(in, want, pol); err != nil {
			b.Fatal(err)
		}
	}
}
