package fido2

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/mfad/mfad/hw/ctap2"
)

// MDS is a verified FIDO Metadata Service (MDS3) blob, read offline: the
// models it describes, by AAGUID, with their attestation roots and status.
type MDS struct {
	Number      int       // the blob's serial number, "no"
	NextUpdate  time.Time // when FIDO promises the next blob; zero if unreadable
	LegalHeader string

	byAAGUID map[[16]byte]*MDSEntry
	byKeyID  map[string]*MDSEntry
}

// MDSEntry is one authenticator model of the blob.
type MDSEntry struct {
	AAGUID      [16]byte // zero for U2F models, known by KeyIDs
	KeyIDs      []string // attestationCertificateKeyIdentifiers, lowercase hex
	Description string   // metadataStatement.description, the model name
	// Roots are metadataStatement.attestationRootCertificates. Roots that
	// do not parse are left out and counted in SkippedRoots.
	Roots        []*x509.Certificate
	SkippedRoots int
	// Status is the latest status report's status (FIDO_CERTIFIED_L1,
	// NOT_FIDO_CERTIFIED, REVOKED, ...), by effectiveDate.
	Status string
	// Revoked is set when any status report says REVOKED or a compromise
	// (see revokingStatus); RevokedBy names it. A later report does not
	// lift it: a key already in a user's hands is not updated.
	Revoked   bool
	RevokedBy string
}

// revokingStatus are the MDS3 AuthenticatorStatus values after which a
// relying party must not trust the model's attestation (FIDO Metadata
// Service v3.0 §3.1.4).
var revokingStatus = map[string]bool{
	"REVOKED":                      true,
	"ATTESTATION_KEY_COMPROMISE":   true,
	"USER_VERIFICATION_BYPASS":     true,
	"USER_KEY_REMOTE_COMPROMISE":   true,
	"USER_KEY_PHYSICAL_COMPROMISE": true,
}

// Lookup returns the entry of a model.
func (m *MDS) Lookup(aaguid [16]byte) (*MDSEntry, bool) {
	if m == nil {
		return nil, false
	}
	e, ok := m.byAAGUID[aaguid]
	return e, ok
}

// LookupKeyID returns the entry of a U2F model by the key identifier of
// its attestation certificate (see CertificateKeyID).
func (m *MDS) LookupKeyID(keyID []byte) (*MDSEntry, bool) {
	if m == nil || len(keyID) == 0 {
		return nil, false
	}
	e, ok := m.byKeyID[hex.EncodeToString(keyID)]
	return e, ok
}

// Len returns the number of models indexed.
func (m *MDS) Len() int {
	if m == nil {
		return 0
	}
	return len(m.byAAGUID) + len(m.byKeyID)
}

// Stale reports whether now is past NextUpdate: the blob still verifies,
// but a newer one with newer status reports exists.
func (m *MDS) Stale(now time.Time) bool {
	return m != nil && !m.NextUpdate.IsZero() && now.After(m.NextUpdate)
}

type mdsHeader struct {
	Alg string   `json:"alg"`
	X5C []string `json:"x5c"`
}

type mdsPayload struct {
	LegalHeader string     `json:"legalHeader"`
	No          int        `json:"no"`
	NextUpdate  string     `json:"nextUpdate"`
	Entries     []mdsEntry `json:"entries"`
}

type mdsEntry struct {
	AAGUID                               string   `json:"aaguid"`
	AttestationCertificateKeyIdentifiers []string `json:"attestationCertificateKeyIdentifiers"`
	MetadataStatement                    struct {
		Description                 string   `json:"description"`
		AttestationRootCertificates []string `json:"attestationRootCertificates"`
	} `json:"metadataStatement"`
	StatusReports []struct {
		Status        string `json:"status"`
		EffectiveDate string `json:"effectiveDate"`
	} `json:"statusReports"`
}

// ParseMDS verifies and reads an MDS3 blob (FIDO Metadata Service v3.0
// §3.1.7): a JWT whose header carries an x5c chain that must lead to root
// at now, signed with ES256 or RS256 by the chain's first certificate.
// The payload is read only once the signature verifies. Errors wrap
// ErrMalformed, ErrUntrustedMetadata, ErrBadSignature,
// ErrUnsupportedAlgorithm or ErrInvalidPolicy (no root).
func ParseMDS(blob []byte, root *x509.Certificate, now time.Time) (*MDS, error) {
	if root == nil {
		return nil, fail(ErrInvalidPolicy, "MDS: no root certificate")
	}
	parts := strings.Split(string(bytes.TrimSpace(blob)), ".")
	if len(parts) != 3 {
		return nil, fail(ErrMalformed, "MDS: not a JWT (%d parts)", len(parts))
	}
	rawHeader, err := base64.RawURLEncoding.Strict().DecodeString(parts[0])
	if err != nil {
		return nil, fail(ErrMalformed, "MDS: header: %v", err)
	}
	var h mdsHeader
	if err := json.Unmarshal(rawHeader, &h); err != nil {
		return nil, fail(ErrMalformed, "MDS: header: %v", err)
	}
	if len(h.X5C) == 0 || len(h.X5C) > maxChain {
		return nil, fail(ErrMalformed, "MDS: header x5c of %d certificates", len(h.X5C))
	}
	chain := make([]*x509.Certificate, 0, len(h.X5C))
	for i, s := range h.X5C {
		der, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fail(ErrMalformed, "MDS: x5c[%d]: %v", i, err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fail(ErrMalformed, "MDS: x5c[%d]: %v", i, err)
		}
		chain = append(chain, c)
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return nil, fail(ErrUntrustedMetadata, "MDS signer %q: %v", chain[0].Subject, err)
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err != nil {
		return nil, fail(ErrMalformed, "MDS: signature: %v", err)
	}
	signed := []byte(parts[0] + "." + parts[1])
	if err := verifyJWS(h.Alg, chain[0], signed, sig); err != nil {
		return nil, err
	}
	rawPayload, err := base64.RawURLEncoding.Strict().DecodeString(parts[1])
	if err != nil {
		return nil, fail(ErrMalformed, "MDS: payload: %v", err)
	}
	var p mdsPayload
	if err := json.Unmarshal(rawPayload, &p); err != nil {
		return nil, fail(ErrMalformed, "MDS: payload: %v", err)
	}
	m := &MDS{
		Number:      p.No,
		LegalHeader: p.LegalHeader,
		byAAGUID:    make(map[[16]byte]*MDSEntry),
		byKeyID:     make(map[string]*MDSEntry),
	}
	if t, err := time.Parse(time.DateOnly, p.NextUpdate); err == nil {
		m.NextUpdate = t
	}
	for i := range p.Entries {
		if err := m.add(&p.Entries[i]); err != nil {
			return nil, fmt.Errorf("%w (entry %d)", err, i)
		}
	}
	return m, nil
}

func (m *MDS) add(je *mdsEntry) error {
	e := &MDSEntry{Description: je.MetadataStatement.Description}
	for _, s := range je.MetadataStatement.AttestationRootCertificates {
		der, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			e.SkippedRoots++
			continue
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			e.SkippedRoots++
			continue
		}
		e.Roots = append(e.Roots, c)
	}
	latest := ""
	for _, r := range je.StatusReports {
		if r.EffectiveDate >= latest {
			latest, e.Status = r.EffectiveDate, r.Status
		}
		if revokingStatus[r.Status] && !e.Revoked {
			e.Revoked, e.RevokedBy = true, r.Status
		}
	}
	switch {
	case je.AAGUID != "":
		a, err := ParseAAGUID(je.AAGUID)
		if err != nil {
			return err
		}
		if _, dup := m.byAAGUID[a]; dup {
			return fail(ErrMalformed, "MDS: AAGUID %s listed twice", je.AAGUID)
		}
		e.AAGUID = a
		m.byAAGUID[a] = e
	case len(je.AttestationCertificateKeyIdentifiers) > 0:
		for _, id := range je.AttestationCertificateKeyIdentifiers {
			id = strings.ToLower(id)
			if b, err := hex.DecodeString(id); err != nil || len(b) != sha1.Size {
				return fail(ErrMalformed, "MDS: attestationCertificateKeyIdentifier %q", id)
			}
			if _, dup := m.byKeyID[id]; dup {
				return fail(ErrMalformed, "MDS: key identifier %s listed twice", id)
			}
			e.KeyIDs = append(e.KeyIDs, id)
			m.byKeyID[id] = e
		}
	}
	// Entries known only by a UAF aaid are not FIDO2 or U2F models.
	return nil
}

// verifyJWS checks a JWS signature (RFC 7518 §3.3, §3.4): ES256 is the
// raw 64-byte R || S, not DER.
func verifyJWS(alg string, signer *x509.Certificate, signed, sig []byte) error {
	switch alg {
	case "ES256":
		p, ok := signer.PublicKey.(*ecdsa.PublicKey)
		if !ok || p.Curve != elliptic.P256() {
			return fail(ErrUnsupportedAlgorithm, "MDS: ES256 with key %T", signer.PublicKey)
		}
		if len(sig) != 64 {
			return fail(ErrBadSignature, "MDS: ES256 signature of %d bytes", len(sig))
		}
		h := sha256.Sum256(signed)
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		if !ecdsa.Verify(p, h[:], r, s) {
			return fail(ErrBadSignature, "MDS: signature does not verify")
		}
		return nil
	case "RS256":
		return verifySig("MDS", signer.PublicKey, ctap2.AlgRS256, signed, sig)
	}
	return fail(ErrUnsupportedAlgorithm, "MDS: JWS alg %q", alg)
}

// ParseAAGUID reads an AAGUID written as a UUID
// ("cb69481e-8ff7-4039-93ec-0a2729a154a8") or as 32 hex digits.
func ParseAAGUID(s string) ([16]byte, error) {
	var a [16]byte
	h := s
	if len(s) == 36 {
		if s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
			return a, fail(ErrMalformed, "AAGUID %q", s)
		}
		h = s[:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	}
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 16 {
		return a, fail(ErrMalformed, "AAGUID %q", s)
	}
	copy(a[:], b)
	return a, nil
}

// FormatAAGUID writes an AAGUID as a lowercase UUID.
func FormatAAGUID(a [16]byte) string {
	h := hex.EncodeToString(a[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// CertificateKeyID is the key identifier by which MDS3 names U2F models
// (attestationCertificateKeyIdentifiers): SHA-1 of the certificate's
// subjectPublicKey bit string, RFC 5280 §4.2.1.2 method (1).
func CertificateKeyID(c *x509.Certificate) []byte {
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if c == nil {
		return nil
	}
	if _, err := asn1.Unmarshal(c.RawSubjectPublicKeyInfo, &spki); err != nil {
		return nil
	}
	h := sha1.Sum(spki.PublicKey.Bytes)
	return h[:]
}
