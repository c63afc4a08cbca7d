package fido2

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/mfad/mfad/hw/ctap2"
)

// asr is one assertion as an authenticator and a client would make it.
type asr struct {
	key       *credKey
	credID    []byte
	cdType    string
	challenge []byte
	origin    string
	rpIDHash  [32]byte
	flags     ctap2.AuthDataFlags
	signCount uint32
	flipSig   bool
	signer    *credKey // signs instead of key when set
}

var assertChallenge = []byte("assertion-challenge-0123456789")

func newAsr(key *credKey, count uint32) *asr {
	return &asr{
		key: key, credID: []byte("cred-1"), cdType: TypeGet, challenge: assertChallenge, origin: testRPID,
		rpIDHash: rpIDHash(testRPID), flags: ctap2.FlagUP, signCount: count,
	}
}

func (a *asr) build(t testing.TB) AssertionInput {
	t.Helper()
	cdj, _ := BuildClientData(a.cdType, a.challenge, a.origin)
	ad := authData(t, &ctap2.AuthData{RPIDHash: a.rpIDHash, Flags: a.flags, SignCount: a.signCount})
	cdh := sha256.Sum256(cdj)
	signer := a.key
	if a.signer != nil {
		signer = a.signer
	}
	sig := sign(t, signer.signer, append(append([]byte(nil), ad...), cdh[:]...))
	if a.flipSig {
		sig[len(sig)-1] ^= 0x04
	}
	return AssertionInput{CredentialID: a.credID, AuthData: ad, Signature: sig, ClientDataJSON: cdj}
}

func TestVerifyAssertion(t *testing.T) {
	es := newCredKey(t, ctap2.AlgES256)
	ed := newCredKey(t, ctap2.AlgEdDSA)
	other := newCredKey(t, ctap2.AlgES256)

	tests := []struct {
		name      string
		key       *credKey
		stored    uint32
		newCount  uint32
		mut       func(a *asr)
		storedMut func(c *StoredCredential)
		uv        bool
		want      Reason
	}{
		{name: "valid ES256", key: es, stored: 41, newCount: 42},
		{name: "valid EdDSA", key: ed, stored: 7, newCount: 8},
		{name: "counter jumps forward", key: es, stored: 1, newCount: 1 << 30},
		{name: "first use after registration at zero", key: es, stored: 0, newCount: 1},
		{name: "counters zero allowed", key: es, stored: 0, newCount: 0},
		{name: "counters zero allowed EdDSA", key: ed, stored: 0, newCount: 0},
		{name: "UV required and set", key: es, stored: 1, newCount: 2, mut: func(a *asr) { a.flags |= ctap2.FlagUV }, uv: true},
		{name: "no stored id: any credential id", key: es, stored: 1, newCount: 2, storedMut: func(c *StoredCredential) { c.ID = nil }, mut: func(a *asr) { a.credID = []byte("whatever") }},

		{name: "counter equal", key: es, stored: 42, newCount: 42, want: ErrCounterNotIncreasing},
		{name: "counter lower", key: es, stored: 42, newCount: 41, want: ErrCounterNotIncreasing},
		{name: "counter back to zero", key: es, stored: 42, newCount: 0, want: ErrCounterNotIncreasing},
		{name: "counter lower EdDSA", key: ed, stored: 9, newCount: 3, want: ErrCounterNotIncreasing},
		{name: "flipped signature", key: es, stored: 1, newCount: 2, mut: func(a *asr) { a.flipSig = true }, want: ErrBadSignature},
		{name: "flipped signature EdDSA", key: ed, stored: 1, newCount: 2, mut: func(a *asr) { a.flipSig = true }, want: ErrBadSignature},
		{name: "flipped signature with a stale counter", key: es, stored: 5, newCount: 5, mut: func(a *asr) { a.flipSig = true }, want: ErrBadSignature},
		{name: "signed by another key", key: es, stored: 1, newCount: 2, mut: func(a *asr) { a.signer = other }, want: ErrBadSignature},
		{name: "wrong rpId", key: es, stored: 1, newCount: 2, mut: func(a *asr) { a.rpIDHash = rpIDHash("pam://other-host") }, want: ErrRPIDMismatch},
		{name: "wrong rpId EdDSA", key: ed, stored: 1, newCount: 2, mut: func(a *asr) { a.rpIDHash = rpIDHash("pam://other-host") }, want: ErrRPIDMismatch},
		{name: "UP clear", key: es, stored: 1, newCount: 2, mut: func(a *asr) { a.flags = ctap2.FlagUV }, want: ErrUserNotPresent},
		{name: "UV required but clear", key: es, stored: 1, newCount: 2, uv: true, want: ErrUserNotVerified},
		{name: "wrong challenge", key: es, stored: 1, newCount: 2, mut: func(a *asr) { a.challenge = []byte("an old challenge, replayed") }, want: ErrChallengeMismatch},
		{name: "registration client data", key: es, stored: 1, newCount: 2, mut: func(a *asr) { a.cdType = TypeCreate }, want: ErrWrongType},
		{name: "wrong origin", key: es, stored: 1, newCount: 2, mut: func(a *asr) { a.origin = "pam://other-host" }, want: ErrOriginMismatch},
		{name: "other credential id", key: es, stored: 1, newCount: 2, mut: func(a *asr) { a.credID = []byte("cred-2") }, want: ErrCredentialMismatch},
		{name: "stored alg disagrees with key", key: es, stored: 1, newCount: 2, storedMut: func(c *StoredCredential) { c.Alg = ctap2.AlgEdDSA }, want: ErrUnsupportedAlgorithm},
		{name: "stored key garbage", key: es, stored: 1, newCount: 2, storedMut: func(c *StoredCredential) { c.PublicKey = []byte{0xa1} }, want: ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAsr(tc.key, tc.newCount)
			if tc.mut != nil {
				tc.mut(a)
			}
			stored := StoredCredential{ID: []byte("cred-1"), PublicKey: tc.key.cose, Alg: tc.key.alg, SignCount: tc.stored}
			if tc.storedMut != nil {
				tc.storedMut(&stored)
			}
			got, err := VerifyAssertion(stored, a.build(t), AssertionExpect{RPID: testRPID, Challenge: assertChallenge, RequireUV: tc.uv})
			if err != nil {
				t.Log(err)
			}
			wantReason(t, err, tc.want)
			if (err == nil || tc.want == ErrCounterNotIncreasing) && got != tc.newCount {
				t.Errorf("new count %d, want %d", got, tc.newCount)
			}
		})
	}
}

func TestVerifyAssertionInput(t *testing.T) {
	es := newCredKey(t, ctap2.AlgES256)
	stored := StoredCredential{PublicKey: es.cose, Alg: es.alg}
	in := newAsr(es, 3).build(t)
	want := AssertionExpect{RPID: testRPID, Challenge: assertChallenge}
	if _, err := VerifyAssertion(stored, in, AssertionExpect{Challenge: assertChallenge}); ReasonOf(err) != ErrInvalidPolicy {
		t.Errorf("no rpId: %v", err)
	}
	if _, err := VerifyAssertion(stored, in, AssertionExpect{RPID: testRPID}); ReasonOf(err) != ErrInvalidPolicy {
		t.Errorf("no challenge: %v", err)
	}
	for n := 0; n < len(in.AuthData); n++ {
		bad := in
		bad.AuthData = in.AuthData[:n]
		if _, err := VerifyAssertion(stored, bad, want); ReasonOf(err) != ErrMalformed {
			t.Fatalf("authData cut to %d bytes: %v", n, err)
		}
	}
	bad := in
	bad.AuthData = append(bytes.Clone(in.AuthData), 0)
	if _, err := VerifyAssertion(stored, bad, want); ReasonOf(err) != ErrMalformed {
		t.Errorf("authData with a trailing byte: %v", err)
	}
	bad = in
	bad.Signature = nil
	if _, err := VerifyAssertion(stored, bad, want); ReasonOf(err) != ErrBadSignature {
		t.Errorf("no signature: %v", err)
	}
	// A registered ES384 key is not one mfad accepts.
	p384 := newCredKey(t, ctap2.AlgES384)
	if _, err := VerifyAssertion(StoredCredential{PublicKey: p384.cose}, newAsr(p384, 1).build(t), want); ReasonOf(err) != ErrUnsupportedAlgorithm {
		t.Errorf("ES384: %v", err)
	}
}

// TestRegisterThenAssert is the whole life of a credential: registered,
// stored, then used twice; the second use of the same counter is refused.
func TestRegisterThenAssert(t *testing.T) {
	f := newFixture(t)
	r := f.packed(t)
	c, err := VerifyRegistration(r.build(t), RegistrationExpect{RPID: testRPID, Challenge: f.challenge}, Policy{Mode: ModeTrusted, Roots: f.trustedRoots, Now: fixedClock})
	if err != nil {
		t.Fatal(err)
	}
	stored := StoredCredential{ID: c.ID, PublicKey: c.PublicKey, Alg: c.Alg, SignCount: c.SignCount}
	a := newAsr(r.cred, 1)
	a.credID = c.ID
	want := AssertionExpect{RPID: testRPID, Challenge: assertChallenge}
	n, err := VerifyAssertion(stored, a.build(t), want)
	if err != nil || n != 1 {
		t.Fatalf("first use: %d, %v", n, err)
	}
	stored.SignCount = n
	if _, err := VerifyAssertion(stored, a.build(t), want); ReasonOf(err) != ErrCounterNotIncreasing {
		t.Errorf("replayed counter: %v", err)
	}
}
