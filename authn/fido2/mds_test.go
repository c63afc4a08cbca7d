package fido2

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// mdsSigner is a throwaway MDS root with a blob signing certificate.
type mdsSigner struct {
	root  *testCA
	chain []*x509.Certificate
	key   crypto.Signer
	alg   string
}

func newMDSSigner(t testing.TB, alg string) *mdsSigner {
	t.Helper()
	root := newRootCA(t, "mfad test MDS root")
	var key crypto.Signer
	switch alg {
	case "ES256":
		key = newKey(t)
	case "RS256":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	}
	leaf := root.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "mfad test MDS signer", Organization: []string{"mfad tests"}}, KeyUsage: x509.KeyUsageDigitalSignature}, key.Public())
	return &mdsSigner{root: root, chain: []*x509.Certificate{leaf}, key: key, alg: alg}
}

// blob mints an MDS3 JWT over payload.
func (s *mdsSigner) blob(t testing.TB, payload any) []byte {
	t.Helper()
	var x5c []string
	for _, c := range s.chain {
		x5c = append(x5c, base64.StdEncoding.EncodeToString(c.Raw))
	}
	h, err := json.Marshal(map[string]any{"alg": s.alg, "typ": "JWT", "x5c": x5c})
	if err != nil {
		t.Fatal(err)
	}
	p, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	return s.sign(t, h, p)
}

// sign mints a JWT over raw header and payload bytes.
func (s *mdsSigner) sign(t testing.TB, h, p []byte) []byte {
	t.Helper()
	signed := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
	digest := sha256.Sum256([]byte(signed))
	var sig []byte
	var err error
	switch k := s.key.(type) {
	case *ecdsa.PrivateKey:
		r, ss, err := ecdsa.Sign(rand.Reader, k, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		ss.FillBytes(sig[32:])
	case *rsa.PrivateKey:
		if sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, digest[:]); err != nil {
			t.Fatal(err)
		}
	}
	return []byte(signed + "." + base64.RawURLEncoding.EncodeToString(sig) + "\n")
}

type jsonEntry = map[string]any

func entry(aaguid string, desc string, roots []*x509.Certificate, statuses ...string) jsonEntry {
	var r []string
	for _, c := range roots {
		r = append(r, base64.StdEncoding.EncodeToString(c.Raw))
	}
	var reports []map[string]string
	for i, s := range statuses {
		reports = append(reports, map[string]string{"status": s, "effectiveDate": time.Date(2024, 1, 1+i, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)})
	}
	e := jsonEntry{
		"metadataStatement": map[string]any{"description": desc, "attestationRootCertificates": r},
		"statusReports":     reports,
	}
	if aaguid != "" {
		e["aaguid"] = aaguid
	}
	return e
}

func payload(entries ...jsonEntry) map[string]any {
	return map[string]any{"legalHeader": "test blob", "no": 42, "nextUpdate": "2026-04-01", "entries": entries}
}

func TestParseMDS(t *testing.T) {
	f := newFixture(t)
	s := newMDSSigner(t, "ES256")
	u2f := entry("", "mfad U2F test key", []*x509.Certificate{f.ca.cert}, "FIDO_CERTIFIED")
	u2f["attestationCertificateKeyIdentifiers"] = []string{strings.ToUpper(hex.EncodeToString(CertificateKeyID(f.leaf)))}
	badRoot := entry("11111111-2222-3333-4444-555555555555", "a model with a broken root", nil, "NOT_FIDO_CERTIFIED")
	badRoot["metadataStatement"].(map[string]any)["attestationRootCertificates"] = []string{"AAAA", "%%%"}
	blob := s.blob(t, payload(
		entry(FormatAAGUID(testAAGUID), "mfad test key", []*x509.Certificate{f.ca.cert}, "NOT_FIDO_CERTIFIED", "FIDO_CERTIFIED_L1"),
		entry(FormatAAGUID(otherAAGUID), "a compromised key", []*x509.Certificate{f.ca.cert}, "FIDO_CERTIFIED_L1", "ATTESTATION_KEY_COMPROMISE", "UPDATE_AVAILABLE"),
		u2f, badRoot,
		entry("", "a UAF authenticator", nil, "FIDO_CERTIFIED"),
	))
	m, err := ParseMDS(blob, s.root.cert, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if m.Number != 42 || m.LegalHeader != "test blob" || !m.NextUpdate.Equal(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)) || m.Len() != 4 {
		t.Errorf("blob no %d header %q nextUpdate %s len %d", m.Number, m.LegalHeader, m.NextUpdate, m.Len())
	}
	if m.Stale(testNow) || !m.Stale(testNow.AddDate(0, 2, 0)) {
		t.Error("Stale")
	}
	e, ok := m.Lookup(testAAGUID)
	if !ok || e.Description != "mfad test key" || e.Status != "FIDO_CERTIFIED_L1" || e.Revoked || len(e.Roots) != 1 || !e.Roots[0].Equal(f.ca.cert) {
		t.Errorf("entry %+v", e)
	}
	e, ok = m.Lookup(otherAAGUID)
	if !ok || !e.Revoked || e.RevokedBy != "ATTESTATION_KEY_COMPROMISE" || e.Status != "UPDATE_AVAILABLE" {
		t.Errorf("compromised entry %+v", e)
	}
	if e, ok := m.LookupKeyID(CertificateKeyID(f.leaf)); !ok || e.Description != "mfad U2F test key" {
		t.Errorf("U2F entry %+v", e)
	}
	if e, ok := m.Lookup(mustAAGUID(t, "11111111-2222-3333-4444-555555555555")); !ok || e.SkippedRoots != 2 || len(e.Roots) != 0 {
		t.Errorf("entry with broken roots %+v", e)
	}
	if _, ok := m.Lookup([16]byte{9}); ok {
		t.Error("unknown AAGUID found")
	}
	var nilMDS *MDS
	if _, ok := nilMDS.Lookup(testAAGUID); ok || nilMDS.Len() != 0 {
		t.Error("nil MDS")
	}

	rs := newMDSSigner(t, "RS256")
	if _, err := ParseMDS(rs.blob(t, payload()), rs.root.cert, testNow); err != nil {
		t.Errorf("RS256 blob: %v", err)
	}
}

func mustAAGUID(t testing.TB, s string) [16]byte {
	t.Helper()
	a, err := ParseAAGUID(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestParseMDSRefusals(t *testing.T) {
	s := newMDSSigner(t, "ES256")
	good := s.blob(t, payload(entry(FormatAAGUID(testAAGUID), "k", nil, "FIDO_CERTIFIED")))
	parts := strings.Split(strings.TrimSpace(string(good)), ".")
	join := func(p ...string) []byte { return []byte(strings.Join(p, ".")) }
	flipSig := func() []byte {
		sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
		sig[10] ^= 1
		return join(parts[0], parts[1], base64.RawURLEncoding.EncodeToString(sig))
	}
	otherPayload := base64.RawURLEncoding.EncodeToString([]byte(`{"no":43,"entries":[]}`))

	expiredSigner := newMDSSigner(t, "ES256")
	tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: "expired MDS signer"}, NotBefore: testNow.AddDate(-2, 0, 0), NotAfter: testNow.AddDate(0, 0, -1)}
	expiredSigner.chain = []*x509.Certificate{expiredSigner.root.issue(t, tmpl, expiredSigner.key.Public())}

	hs := *s
	hs.alg = "HS256"
	noChain := *s
	noChain.chain = nil
	dup := s.blob(t, payload(entry(FormatAAGUID(testAAGUID), "a", nil), entry(FormatAAGUID(testAAGUID), "b", nil)))
	badAAGUID := s.blob(t, payload(entry("not-an-aaguid", "a", nil)))

	tests := []struct {
		name string
		blob []byte
		root *x509.Certificate
		now  time.Time
		want Reason
	}{
		{"bad signature", flipSig(), s.root.cert, testNow, ErrBadSignature},
		{"payload swapped", join(parts[0], otherPayload, parts[2]), s.root.cert, testNow, ErrBadSignature},
		{"short signature", join(parts[0], parts[1], parts[2][:20]), s.root.cert, testNow, ErrBadSignature},
		{"untrusted chain", good, newRootCA(t, "another MDS root").cert, testNow, ErrUntrustedMetadata},
		{"expired signer", expiredSigner.blob(t, payload()), expiredSigner.root.cert, testNow, ErrUntrustedMetadata},
		{"after the root's end", good, s.root.cert, testNow.AddDate(5, 0, 0), ErrUntrustedMetadata},
		{"alg HS256", hs.blob(t, payload()), s.root.cert, testNow, ErrUnsupportedAlgorithm},
		{"no x5c", noChain.blob(t, payload()), s.root.cert, testNow, ErrMalformed},
		{"two parts", join(parts[0], parts[1]), s.root.cert, testNow, ErrMalformed},
		{"header not base64", join("!!", parts[1], parts[2]), s.root.cert, testNow, ErrMalformed},
		{"header not JSON", join(base64.RawURLEncoding.EncodeToString([]byte("{")), parts[1], parts[2]), s.root.cert, testNow, ErrMalformed},
		{"empty", nil, s.root.cert, testNow, ErrMalformed},
		{"duplicate AAGUID", dup, s.root.cert, testNow, ErrMalformed},
		{"bad AAGUID", badAAGUID, s.root.cert, testNow, ErrMalformed},
		{"no root", good, nil, testNow, ErrInvalidPolicy},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseMDS(tc.blob, tc.root, tc.now)
			if err != nil {
				t.Log(err)
			}
			wantReason(t, err, tc.want)
			if m != nil {
				t.Error("an MDS with an error")
			}
		})
	}
}

// TestMDSPolicy: the MDS supplies roots and names models under trusted,
// and a revoked model is refused even though its chain is good.
func TestMDSPolicy(t *testing.T) {
	f := newFixture(t)
	s := newMDSSigner(t, "ES256")
	revokedLeaf := f.ca.issue(t, attestationTemplate(t, otherAAGUID[:]), f.attKey.Public())
	u2fLeaf := f.ca.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "U2F EE"}}, f.attKey.Public())
	u2fEntry := entry("", "mfad U2F test key", []*x509.Certificate{f.ca.cert}, "FIDO_CERTIFIED")
	u2fEntry["attestationCertificateKeyIdentifiers"] = []string{hex.EncodeToString(CertificateKeyID(u2fLeaf))}
	m, err := ParseMDS(s.blob(t, payload(
		entry(FormatAAGUID(testAAGUID), "mfad test key", []*x509.Certificate{f.ca.cert}, "FIDO_CERTIFIED_L2"),
		entry(FormatAAGUID(otherAAGUID), "a revoked key", []*x509.Certificate{f.ca.cert}, "FIDO_CERTIFIED_L1", "REVOKED"),
		u2fEntry,
	)), s.root.cert, testNow)
	if err != nil {
		t.Fatal(err)
	}
	want := RegistrationExpect{RPID: testRPID, Challenge: f.challenge}

	// Trusted through the MDS alone.
	pol := Policy{Mode: ModeTrusted, MDS: m, Now: fixedClock}
	c, err := VerifyRegistration(f.packed(t).build(t), want, pol)
	if err != nil {
		t.Fatal(err)
	}
	if c.Model != "mfad test key" || c.Certification != "FIDO_CERTIFIED_L2" || !strings.Contains(c.Verdict, "MDS") {
		t.Errorf("model %q certification %q verdict %q", c.Model, c.Certification, c.Verdict)
	}

	// Revoked: refused under trusted even with the root in Roots too.
	r := f.packed(t)
	r.aaguid, r.x5c = otherAAGUID, []*x509.Certificate{revokedLeaf}
	pol.Roots = f.trustedRoots
	if _, err := VerifyRegistration(r.build(t), want, pol); ReasonOf(err) != ErrRevoked {
		t.Errorf("revoked model: %v", err)
	}

	// A model the MDS does not know, with no other roots: untrusted.
	r = f.packed(t)
	r.aaguid = [16]byte{1}
	r.x5c = []*x509.Certificate{f.ca.issue(t, attestationTemplate(t, r.aaguid[:]), f.attKey.Public())}
	if _, err := VerifyRegistration(r.build(t), want, Policy{Mode: ModeTrusted, MDS: m, Now: fixedClock}); ReasonOf(err) != ErrUntrustedAttestation {
		t.Errorf("unknown model: %v", err)
	}

	// A U2F model, known by its certificate's key identifier.
	r = f.packed(t)
	u2f(r, u2fLeaf)
	c, err = VerifyRegistration(r.build(t), want, Policy{Mode: ModeTrusted, MDS: m, Now: fixedClock})
	if err != nil || c.Model != "mfad U2F test key" {
		t.Errorf("U2F model: %+v, %v", c, err)
	}

	// Under self, the model is named but not proven.
	r = f.packed(t)
	self(r)
	c, err = VerifyRegistration(r.build(t), want, Policy{Mode: ModeSelf, MDS: m})
	if err != nil || c.Model != "mfad test key" || !strings.Contains(c.Verdict, "claimed") {
		t.Errorf("self with MDS: %+v, %v", c, err)
	}
}

func TestAAGUIDText(t *testing.T) {
	s := FormatAAGUID(testAAGUID)
	if s != "6d666164-2d74-6573-742d-6b65792d3031" {
		t.Errorf("FormatAAGUID = %s", s)
	}
	for _, in := range []string{s, strings.ToUpper(s), strings.ReplaceAll(s, "-", "")} {
		if a, err := ParseAAGUID(in); err != nil || a != testAAGUID {
			t.Errorf("ParseAAGUID(%q) = %x, %v", in, a, err)
		}
	}
	for _, in := range []string{"", "6d666164", s + "0", strings.ReplaceAll(s, "-", "+"), "zz666164-2d74-6573-742d-6b65792d3031"} {
		if _, err := ParseAAGUID(in); ReasonOf(err) != ErrMalformed {
			t.Errorf("ParseAAGUID(%q): %v", in, err)
		}
	}
}
