package fido2

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/mfad/mfad/hw/ctap2"
)

// reg is one registration as an authenticator and a client would make it;
// a test mutates it before build signs and encodes it.
type reg struct {
	// client data
	cdType, cdOrigin string
	challenge        []byte
	clientData       []byte // when set, used as it is
	// authenticator data
	rpIDHash  [32]byte
	flags     ctap2.AuthDataFlags
	signCount uint32
	aaguid    [16]byte
	credID    []byte
	cred      *credKey
	noAT      bool
	// statement
	format   string
	x5c      []*x509.Certificate
	attKey   crypto.Signer // nil: self attestation (packed) or none
	stmtAlg  ctap2.COSEAlgorithm
	extraSt  bool // add an unknown attStmt member
	noneStmt []byte
	// after signing
	flipSig  bool
	ctapKeys bool                // CTAP2 integer keys
	pieces   bool                // give fmt, authData, attStmt apart
	postObj  func([]byte) []byte // applied to the encoded object
}

// fixture is the throwaway PKI of a registration test.
type fixture struct {
	ca, otherCA  *testCA
	attKey       crypto.Signer
	leaf         *x509.Certificate
	challenge    []byte
	trustedRoots *x509.CertPool
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{ca: newRootCA(t, "mfad test attestation root"), otherCA: newRootCA(t, "someone else's root")}
	f.attKey = newKey(t)
	f.leaf = f.ca.issue(t, attestationTemplate(t, testAAGUID[:]), f.attKey.Public())
	f.challenge = []byte("0123456789abcdef-challenge")
	f.trustedRoots = x509.NewCertPool()
	f.trustedRoots.AddCert(f.ca.cert)
	return f
}

// packed returns a valid packed basic registration of an ES256 credential.
func (f *fixture) packed(t testing.TB) *reg {
	return &reg{
		cdType: TypeCreate, cdOrigin: testRPID, challenge: f.challenge,
		rpIDHash: rpIDHash(testRPID), flags: ctap2.FlagUP | ctap2.FlagUV, signCount: 0,
		aaguid: testAAGUID, credID: []byte("credential-id-0123456789"), cred: newCredKey(t, ctap2.AlgES256),
		format: FormatPacked, x5c: []*x509.Certificate{f.leaf}, attKey: f.attKey, stmtAlg: ctap2.AlgES256,
	}
}

func (r *reg) build(t testing.TB) AttestationInput {
	t.Helper()
	cdj := r.clientData
	if cdj == nil {
		cdj, _ = BuildClientData(r.cdType, r.challenge, r.cdOrigin)
	}
	cdh := sha256.Sum256(cdj)
	ad := &ctap2.AuthData{RPIDHash: r.rpIDHash, Flags: r.flags, SignCount: r.signCount}
	if !r.noAT {
		ad.AttestedCredential = &ctap2.AttestedCredentialData{AAGUID: r.aaguid, CredentialID: r.credID, PublicKey: r.cred.cose}
	}
	adb := authData(t, ad)
	var st ctap2.AttestationStatement
	for _, c := range r.x5c {
		st.X5C = append(st.X5C, c.Raw)
	}
	switch r.format {
	case FormatFIDOU2F:
		pub, _, err := ctap2.ParseCOSEKey(r.cred.cose)
		if err != nil {
			t.Fatal(err)
		}
		var point []byte
		switch k := pub.(type) {
		case ed25519.PublicKey:
			point = k
		case *ecdsa.PublicKey:
			if point, err = k.Bytes(); err != nil {
				t.Fatal(err)
			}
		}
		msg := append([]byte{0}, r.rpIDHash[:]...)
		msg = append(append(append(msg, cdh[:]...), r.credID...), point...)
		st.Sig = sign(t, r.attKey, msg)
	default:
		signer := r.attKey
		if signer == nil {
			signer = r.cred.signer
		}
		st.Alg = r.stmtAlg
		st.Sig = sign(t, signer, append(append([]byte(nil), adb...), cdh[:]...))
	}
	if r.flipSig {
		st.Sig[len(st.Sig)/2] ^= 0x01
	}
	var stb []byte
	var err error
	if r.format == FormatNone {
		stb = r.noneStmt
		if stb == nil {
			stb = []byte{0xa0}
		}
	} else if r.extraSt {
		stb, err = ctap2.Marshal(map[string]any{"alg": int64(st.Alg), "sig": st.Sig, "x5c": st.X5C, "ecdaaKeyId": []byte{1}})
	} else {
		stb, err = ctap2.Marshal(&st)
	}
	if err != nil {
		t.Fatal(err)
	}
	if r.pieces {
		return AttestationInput{Format: r.format, AuthData: adb, AttStmt: stb, ClientDataJSON: cdj}
	}
	var obj []byte
	if r.ctapKeys {
		obj, err = ctap2.Marshal(&ctap2.MakeCredentialResponse{Fmt: r.format, AuthData: adb, AttStmt: stb})
	} else {
		obj, err = (&AttestationObject{Format: r.format, AuthData: adb, AttStmt: stb}).Marshal()
	}
	if err != nil {
		t.Fatal(err)
	}
	if r.postObj != nil {
		obj = r.postObj(obj)
	}
	return AttestationInput{AttestationObject: obj, ClientDataJSON: cdj}
}

func TestVerifyRegistration(t *testing.T) {
	f := newFixture(t)
	trusted := Policy{Mode: ModeTrusted, Roots: f.trustedRoots, Now: fixedClock}

	// Certificates for the mutations.
	otherLeaf := f.otherCA.issue(t, attestationTemplate(t, testAAGUID[:]), f.attKey.Public())
	expired := attestationTemplate(t, testAAGUID[:])
	expired.NotBefore, expired.NotAfter = testNow.Add(-400*24*time.Hour), testNow.Add(-24*time.Hour)
	expiredLeaf := f.ca.issue(t, expired, f.attKey.Public())
	wrongAAGUIDLeaf := f.ca.issue(t, attestationTemplate(t, otherAAGUID[:]), f.attKey.Public())
	noExtLeaf := f.ca.issue(t, attestationTemplate(t, nil), f.attKey.Public())
	badOU := attestationTemplate(t, testAAGUID[:])
	badOU.Subject.OrganizationalUnit = []string{"Sales"}
	badOULeaf := f.ca.issue(t, badOU, f.attKey.Public())
	caTmpl := attestationTemplate(t, testAAGUID[:])
	caTmpl.IsCA, caTmpl.KeyUsage = true, x509.KeyUsageCertSign|x509.KeyUsageDigitalSignature
	caLeaf := f.ca.issue(t, caTmpl, f.attKey.Public())
	inter := f.ca.intermediate(t, "mfad test attestation intermediate")
	interLeaf := inter.issue(t, attestationTemplate(t, testAAGUID[:]), f.attKey.Public())
	u2fLeaf := f.ca.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "U2F EE"}}, f.attKey.Public())
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaLeaf := f.ca.issue(t, attestationTemplate(t, testAAGUID[:]), rsaKey.Public())

	tests := []struct {
		name     string
		mut      func(r *reg)
		pol      func(p *Policy)
		uv       bool
		want     Reason
		wantType AttestationType
	}{
		{name: "packed basic valid", wantType: AttestationBasic},
		{name: "packed basic without AAGUID extension", mut: func(r *reg) { r.x5c = []*x509.Certificate{noExtLeaf} }, wantType: AttestationBasic},
		{name: "packed basic through an intermediate", mut: func(r *reg) { r.x5c = []*x509.Certificate{interLeaf, inter.cert} }, wantType: AttestationBasic},
		{name: "CTAP2 integer keys", mut: func(r *reg) { r.ctapKeys = true }, wantType: AttestationBasic},
		{name: "in pieces", mut: func(r *reg) { r.pieces = true }, wantType: AttestationBasic},
		{name: "EdDSA credential", mut: func(r *reg) { r.cred = newCredKey(t, ctap2.AlgEdDSA) }, wantType: AttestationBasic},
		{name: "UV required and set", uv: true, wantType: AttestationBasic},
		{name: "packed RS256 attestation key", mut: func(r *reg) { r.x5c, r.attKey, r.stmtAlg = []*x509.Certificate{rsaLeaf}, rsaKey, ctap2.AlgRS256 }, wantType: AttestationBasic},
		{name: "packed RS256 flipped signature", mut: func(r *reg) {
			r.x5c, r.attKey, r.stmtAlg, r.flipSig = []*x509.Certificate{rsaLeaf}, rsaKey, ctap2.AlgRS256, true
		}, want: ErrBadSignature},
		{name: "packed RS256 claimed by an EC key", mut: func(r *reg) { r.stmtAlg = ctap2.AlgRS256 }, want: ErrUnsupportedAlgorithm},
		{name: "empty credential id", mut: func(r *reg) { r.credID = []byte{} }, want: ErrMalformed},

		{name: "wrong rpIdHash", mut: func(r *reg) { r.rpIDHash = rpIDHash("pam://elsewhere") }, want: ErrRPIDMismatch},
		{name: "flipped signature bit", mut: func(r *reg) { r.flipSig = true }, want: ErrBadSignature},
		{name: "UP clear", mut: func(r *reg) { r.flags = ctap2.FlagUV }, want: ErrUserNotPresent},
		{name: "UV required but clear", mut: func(r *reg) { r.flags = ctap2.FlagUP }, uv: true, want: ErrUserNotVerified},
		{name: "BS without BE", mut: func(r *reg) { r.flags |= ctap2.FlagBS }, want: ErrMalformed},
		{name: "wrong challenge", mut: func(r *reg) { r.challenge = []byte("another challenge, 16+ bytes") }, want: ErrChallengeMismatch},
		{name: "wrong type", mut: func(r *reg) { r.cdType = TypeGet }, want: ErrWrongType},
		{name: "wrong origin", mut: func(r *reg) { r.cdOrigin = "https://evil.example" }, want: ErrOriginMismatch},
		{name: "cross origin", mut: func(r *reg) {
			r.clientData = []byte(`{"type":"webauthn.create","challenge":"` + b64(f.challenge) + `","origin":"` + testRPID + `","crossOrigin":true}`)
		}, want: ErrOriginMismatch},
		{name: "client data not JSON", mut: func(r *reg) { r.clientData = []byte(`{"type":`) }, want: ErrMalformed},
		{name: "padded challenge", mut: func(r *reg) {
			r.clientData = []byte(`{"type":"webauthn.create","challenge":"` + b64(f.challenge) + `==","origin":"` + testRPID + `"}`)
		}, want: ErrMalformed},
		{name: "unknown format", mut: func(r *reg) { r.format = "tpm" }, want: ErrUnsupportedFormat},
		{name: "truncated CBOR", mut: func(r *reg) { r.postObj = func(b []byte) []byte { return b[:len(b)-7] } }, want: ErrMalformed},
		{name: "trailing byte", mut: func(r *reg) { r.postObj = func(b []byte) []byte { return append(b, 0) } }, want: ErrMalformed},
		{name: "AT clear", mut: func(r *reg) { r.noAT = true }, want: ErrMalformed},
		{name: "ES384 credential", mut: func(r *reg) { r.cred = newCredKey(t, ctap2.AlgES384) }, want: ErrUnsupportedAlgorithm},
		{name: "packed without alg", mut: func(r *reg) { r.stmtAlg = 0 }, want: ErrMalformed},
		{name: "packed alg does not fit the certificate key", mut: func(r *reg) { r.stmtAlg = ctap2.AlgEdDSA }, want: ErrUnsupportedAlgorithm},
		{name: "unknown attStmt member", mut: func(r *reg) { r.extraSt = true }, want: ErrMalformed},
		{name: "untrusted chain (other CA)", mut: func(r *reg) { r.x5c = []*x509.Certificate{otherLeaf} }, want: ErrUntrustedAttestation},
		{name: "untrusted chain accepted under self", mut: func(r *reg) { r.x5c = []*x509.Certificate{otherLeaf} }, pol: func(p *Policy) { p.Mode = ModeSelf }, wantType: AttestationBasic},
		{name: "expired certificate", mut: func(r *reg) { r.x5c = []*x509.Certificate{expiredLeaf} }, want: ErrUntrustedAttestation},
		{name: "intermediate missing", mut: func(r *reg) { r.x5c = []*x509.Certificate{interLeaf} }, want: ErrUntrustedAttestation},
		{name: "AAGUID not allowed", pol: func(p *Policy) { p.AllowedAAGUIDs = [][16]byte{otherAAGUID} }, want: ErrAAGUIDNotAllowed},
		{name: "AAGUID allowed", pol: func(p *Policy) { p.AllowedAAGUIDs = [][16]byte{otherAAGUID, testAAGUID} }, wantType: AttestationBasic},
		{name: "AAGUID extension mismatch", mut: func(r *reg) { r.x5c = []*x509.Certificate{wrongAAGUIDLeaf} }, want: ErrBadCertificate},
		{name: "certificate OU", mut: func(r *reg) { r.x5c = []*x509.Certificate{badOULeaf} }, want: ErrBadCertificate},
		{name: "certificate is a CA", mut: func(r *reg) { r.x5c = []*x509.Certificate{caLeaf} }, want: ErrBadCertificate},

		{name: "fido-u2f valid", mut: func(r *reg) { u2f(r, u2fLeaf) }, wantType: AttestationBasic},
		{name: "fido-u2f flipped signature", mut: func(r *reg) { u2f(r, u2fLeaf); r.flipSig = true }, want: ErrBadSignature},
		{name: "fido-u2f wrong rpIdHash", mut: func(r *reg) { u2f(r, u2fLeaf); r.rpIDHash = rpIDHash("x") }, want: ErrRPIDMismatch},
		{name: "fido-u2f non-zero AAGUID", mut: func(r *reg) { u2f(r, u2fLeaf); r.aaguid = testAAGUID }, want: ErrMalformed},
		{name: "fido-u2f two certificates", mut: func(r *reg) { u2f(r, u2fLeaf); r.x5c = append(r.x5c, f.ca.cert) }, want: ErrMalformed},
		{name: "fido-u2f EdDSA credential", mut: func(r *reg) { u2f(r, u2fLeaf); r.cred = newCredKey(t, ctap2.AlgEdDSA) }, want: ErrUnsupportedAlgorithm},
		{name: "fido-u2f untrusted", mut: func(r *reg) {
			u2f(r, f.otherCA.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "U2F EE"}}, f.attKey.Public()))
		}, want: ErrUntrustedAttestation},

		{name: "self attestation under self", mut: self, pol: func(p *Policy) { p.Mode = ModeSelf }, wantType: AttestationSelf},
		{name: "self attestation EdDSA", mut: func(r *reg) { self(r); r.cred = newCredKey(t, ctap2.AlgEdDSA); r.stmtAlg = ctap2.AlgEdDSA }, pol: func(p *Policy) { p.Mode = ModeSelf }, wantType: AttestationSelf},
		{name: "self attestation under none", mut: self, pol: func(p *Policy) { p.Mode = ModeNone }, wantType: AttestationSelf},
		{name: "self attestation under trusted", mut: self, want: ErrUntrustedAttestation},
		{name: "self attestation alg mismatch", mut: func(r *reg) { self(r); r.stmtAlg = ctap2.AlgEdDSA }, pol: func(p *Policy) { p.Mode = ModeSelf }, want: ErrUnsupportedAlgorithm},
		{name: "self attestation flipped signature", mut: func(r *reg) { self(r); r.flipSig = true }, pol: func(p *Policy) { p.Mode = ModeSelf }, want: ErrBadSignature},

		{name: "none under none", mut: none, pol: func(p *Policy) { p.Mode = ModeNone }, wantType: AttestationNone},
		{name: "none under self", mut: none, pol: func(p *Policy) { p.Mode = ModeSelf }, want: ErrUntrustedAttestation},
		{name: "none under trusted", mut: none, want: ErrUntrustedAttestation},
		{name: "none with a statement", mut: func(r *reg) { none(r); r.noneStmt = []byte{0xa1, 0x63, 's', 'i', 'g', 0x41, 0} }, pol: func(p *Policy) { p.Mode = ModeNone }, want: ErrMalformed},
		{name: "none with a statement that is no map", mut: func(r *reg) { none(r); r.noneStmt = []byte{0x80} }, pol: func(p *Policy) { p.Mode = ModeNone }, want: ErrMalformed},
		{name: "none in pieces", mut: func(r *reg) { none(r); r.pieces = true; r.noneStmt = []byte{} }, pol: func(p *Policy) { p.Mode = ModeNone }, wantType: AttestationNone},

		{name: "unknown policy mode", pol: func(p *Policy) { p.Mode = "sometimes" }, want: ErrInvalidPolicy},
		{name: "empty policy", pol: func(p *Policy) { *p = Policy{} }, want: ErrInvalidPolicy},
		{name: "trusted without clock", pol: func(p *Policy) { p.Now = nil }, want: ErrInvalidPolicy},
		{name: "trusted without roots", pol: func(p *Policy) { p.Roots = nil }, want: ErrInvalidPolicy},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := f.packed(t)
			if tc.mut != nil {
				tc.mut(r)
			}
			pol := trusted
			if tc.pol != nil {
				tc.pol(&pol)
			}
			in := r.build(t)
			want := RegistrationExpect{RPID: testRPID, Challenge: f.challenge, RequireUV: tc.uv}
			c, err := VerifyRegistration(in, want, pol)
			if err != nil {
				t.Log(err)
			}
			wantReason(t, err, tc.want)
			if err != nil {
				if c != nil {
					t.Error("a credential with an error")
				}
				return
			}
			if c.AttestationType != tc.wantType || c.Format != r.format {
				t.Errorf("attestation %s/%s, want %s/%s", c.Format, c.AttestationType, r.format, tc.wantType)
			}
			if !bytes.Equal(c.ID, r.credID) || !bytes.Equal(c.PublicKey, r.cred.cose) || c.Alg != r.cred.alg || c.AAGUID != r.aaguid || c.SignCount != r.signCount || c.Flags != r.flags|ctap2.FlagAT {
				t.Errorf("credential %+v", c)
			}
			if c.Verdict == "" || !strings.Contains(c.Verdict, string(pol.Mode)) {
				t.Errorf("verdict %q", c.Verdict)
			}
			if pol.Mode == ModeTrusted && (len(c.TrustPath) < 2 || !c.TrustPath[len(c.TrustPath)-1].Equal(f.ca.cert)) {
				t.Errorf("trust path %v", c.TrustPath)
			}
			if len(c.Chain) != len(r.x5c) {
				t.Errorf("chain of %d, want %d", len(c.Chain), len(r.x5c))
			}
			// What is stored verifies again: the audit path.
			again, err := VerifyRegistration(AttestationInput{AttestationObject: c.AttestationObject, ClientDataJSON: c.ClientDataJSON}, want, pol)
			if err != nil || !bytes.Equal(again.ID, c.ID) {
				t.Errorf("stored registration does not verify again: %v", err)
			}
		})
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// u2f turns r into a fido-u2f registration signed under cert.
func u2f(r *reg, cert *x509.Certificate) {
	r.format, r.aaguid, r.x5c, r.stmtAlg = FormatFIDOU2F, [16]byte{}, []*x509.Certificate{cert}, 0
}

// self turns r into packed self attestation.
func self(r *reg) { r.x5c, r.attKey = nil, nil }

// none turns r into format none.
func none(r *reg) { r.format, r.x5c, r.attKey = FormatNone, nil, nil }

func TestVerifyRegistrationExpectations(t *testing.T) {
	f := newFixture(t)
	in := f.packed(t).build(t)
	pol := Policy{Mode: ModeNone}
	if _, err := VerifyRegistration(in, RegistrationExpect{Challenge: f.challenge}, pol); ReasonOf(err) != ErrInvalidPolicy {
		t.Errorf("no rpId: %v", err)
	}
	if _, err := VerifyRegistration(in, RegistrationExpect{RPID: testRPID}, pol); ReasonOf(err) != ErrInvalidPolicy {
		t.Errorf("no challenge: %v", err)
	}
	// An explicit origin other than the rpId.
	r := f.packed(t)
	r.cdOrigin = "https://login.example"
	if _, err := VerifyRegistration(r.build(t), RegistrationExpect{RPID: testRPID, Origin: "https://login.example", Challenge: f.challenge}, pol); err != nil {
		t.Errorf("explicit origin: %v", err)
	}
	// Whole and in pieces at once.
	in.Format = FormatPacked
	if _, err := VerifyRegistration(in, RegistrationExpect{RPID: testRPID, Challenge: f.challenge}, pol); ReasonOf(err) != ErrMalformed {
		t.Errorf("whole and in pieces: %v", err)
	}
}
