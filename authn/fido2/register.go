package fido2

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mfad/mfad/hw/ctap2"
)

// Mode is how much an attestation must prove for a registration to pass.
type Mode string

const (
	// ModeNone accepts every format mfad knows, "none" included: the
	// credential is bound to the account, the model is not known.
	ModeNone Mode = "none"
	// ModeSelf needs a valid attestation signature, self or basic; it
	// refuses "none". The model is claimed, not proven.
	ModeSelf Mode = "self"
	// ModeTrusted needs basic attestation whose certificate chains, at
	// Policy.Now, to Policy.Roots or to a root the MDS lists for that
	// model, and a model the MDS does not list as revoked.
	ModeTrusted Mode = "trusted"
)

// Policy decides which attestations a registration accepts.
type Policy struct {
	Mode Mode
	// Roots are the trusted attestation roots of ModeTrusted (see
	// LoadRootsDir). MDS roots of the authenticator's model are added.
	Roots *x509.CertPool
	// AllowedAAGUIDs, when not empty, lists the only authenticator
	// models accepted, in every mode. Under ModeNone and ModeSelf the
	// AAGUID is what the authenticator claims; only ModeTrusted proves it.
	AllowedAAGUIDs [][16]byte
	// MDS, when set, names models (Credential.Model) and, under
	// ModeTrusted, supplies their roots and refuses revoked ones.
	MDS *MDS
	// Now is the clock certificate validity is checked against; required
	// by ModeTrusted.
	Now func() time.Time
}

func (p *Policy) validate() error {
	switch p.Mode {
	case ModeNone, ModeSelf:
	case ModeTrusted:
		if p.Now == nil {
			return fail(ErrInvalidPolicy, "mode trusted without a clock")
		}
		if p.Roots == nil && p.MDS == nil {
			return fail(ErrInvalidPolicy, "mode trusted without roots or MDS")
		}
	default:
		return fail(ErrInvalidPolicy, "unknown mode %q", p.Mode)
	}
	return nil
}

// AttestationInput is what a MakeCredential ceremony produced: the
// attestation object, either whole (AttestationObject, in WebAuthn or
// CTAP2 form, see ParseAttestationObject) or in pieces (Format, AuthData,
// AttStmt), and the clientDataJSON whose hash the authenticator signed.
type AttestationInput struct {
	AttestationObject []byte
	Format            string
	AuthData          []byte
	AttStmt           []byte // raw CBOR map; empty means an empty map
	ClientDataJSON    []byte
}

func (in *AttestationInput) object() (*AttestationObject, error) {
	if len(in.AttestationObject) > 0 {
		if in.Format != "" || in.AuthData != nil || in.AttStmt != nil {
			return nil, fail(ErrMalformed, "attestation object given both whole and in pieces")
		}
		return ParseAttestationObject(in.AttestationObject)
	}
	st := in.AttStmt
	if len(st) == 0 {
		st = []byte{0xa0}
	}
	return &AttestationObject{Format: in.Format, AuthData: in.AuthData, AttStmt: st}, nil
}

// RegistrationExpect is what the relying party asked for.
type RegistrationExpect struct {
	RPID      string // e.g. DefaultRPID(hostname)
	Origin    string // clientData.origin; empty means RPID
	Challenge []byte
	RequireUV bool
}

// Credential is a verified registration: what to store and what the
// attestation showed.
type Credential struct {
	ID        []byte
	PublicKey []byte           // COSE_Key, as the authenticator sent it
	Key       crypto.PublicKey // PublicKey parsed
	Alg       ctap2.COSEAlgorithm
	AAGUID    [16]byte
	SignCount uint32
	Flags     ctap2.AuthDataFlags // UP, UV, BE, BS of the registration

	Format          string
	AttestationType AttestationType
	Chain           []*x509.Certificate // x5c, attestation certificate first
	// TrustPath is the verified chain, root last, under ModeTrusted.
	TrustPath []*x509.Certificate
	// Model and Certification come from the MDS entry of the AAGUID, if
	// any (the description and the latest status report).
	Model         string
	Certification string
	// Verdict says in one line why the policy accepted the credential.
	Verdict string

	// AttestationObject (WebAuthn form) and ClientDataJSON are the signed
	// bytes, to store so that an audit can verify the registration again.
	AttestationObject []byte
	ClientDataJSON    []byte
}

// Credential key algorithms mfad registers.
func credentialAlgAllowed(a ctap2.COSEAlgorithm) bool {
	return a == ctap2.AlgES256 || a == ctap2.AlgEdDSA
}

// VerifyRegistration verifies a MakeCredential result as a WebAuthn relying
// party does (WebAuthn §7.1 "Registering a New Credential"): client data
// of type webauthn.create with the issued challenge and the relying
// party's origin; rpIdHash = SHA-256(RPID); UP set, and UV when required;
// attested credential data with an ES256 or EdDSA key; the attestation
// statement by its format (VerifyStatement); then the policy. Every
// refusal wraps one Reason.
func VerifyRegistration(att AttestationInput, want RegistrationExpect, policy Policy) (*Credential, error) {
	if err := policy.validate(); err != nil {
		return nil, err
	}
	if want.RPID == "" {
		return nil, fail(ErrInvalidPolicy, "no rpId")
	}
	origin := want.Origin
	if origin == "" {
		origin = want.RPID
	}
	cdh, err := checkClientData(att.ClientDataJSON, TypeCreate, want.Challenge, origin)
	if err != nil {
		return nil, err
	}
	obj, err := att.object()
	if err != nil {
		return nil, err
	}
	c, err := verifyRegistration(obj, cdh, want, &policy)
	if err != nil {
		return nil, err
	}
	c.ClientDataJSON = bytes.Clone(att.ClientDataJSON)
	return c, nil
}

// verifyRegistration is VerifyRegistration after the client data: it
// takes the clientDataHash.
func verifyRegistration(obj *AttestationObject, cdh []byte, want RegistrationExpect, policy *Policy) (*Credential, error) {
	ad, err := ctap2.ParseAuthData(obj.AuthData)
	if err != nil {
		return nil, fmt.Errorf("%w: authData: %w", ErrMalformed, err)
	}
	if err := checkAuthData(ad, want.RPID, want.RequireUV); err != nil {
		return nil, err
	}
	acd := ad.AttestedCredential
	if acd == nil {
		return nil, fail(ErrMalformed, "authData without attested credential data (AT flag clear)")
	}
	if len(acd.CredentialID) == 0 {
		return nil, fail(ErrMalformed, "empty credential id")
	}
	key, alg, err := ctap2.ParseCOSEKey(acd.PublicKey)
	switch {
	case errors.Is(err, ctap2.ErrUnsupportedAlgorithm):
		return nil, fmt.Errorf("%w: credential key: %w", ErrUnsupportedAlgorithm, err)
	case err != nil:
		return nil, fmt.Errorf("%w: credential key: %w", ErrMalformed, err)
	case !credentialAlgAllowed(alg):
		return nil, fail(ErrUnsupportedAlgorithm, "credential key alg %d; mfad registers ES256 (-7) and EdDSA (-8)", alg)
	}
	st, err := verifyStatement(obj, ad, key, alg, cdh)
	if err != nil {
		return nil, err
	}
	c := &Credential{
		ID:              bytes.Clone(acd.CredentialID),
		PublicKey:       bytes.Clone(acd.PublicKey),
		Key:             key,
		Alg:             alg,
		AAGUID:          acd.AAGUID,
		SignCount:       ad.SignCount,
		Flags:           ad.Flags,
		Format:          st.Format,
		AttestationType: st.Type,
		Chain:           st.Chain,
	}
	if err := policy.apply(c); err != nil {
		return nil, err
	}
	if c.AttestationObject, err = obj.Marshal(); err != nil {
		return nil, err
	}
	return c, nil
}

// checkAuthData checks the relying party and the flags (WebAuthn §7.1
// steps 13-16, §7.2 steps 15-18).
func checkAuthData(ad *ctap2.AuthData, rpID string, requireUV bool) error {
	if rpID == "" {
		return fail(ErrInvalidPolicy, "no rpId")
	}
	want := sha256.Sum256([]byte(rpID))
	if subtle.ConstantTimeCompare(ad.RPIDHash[:], want[:]) != 1 {
		return fail(ErrRPIDMismatch, "rpIdHash %x is not SHA-256(%q)", ad.RPIDHash, rpID)
	}
	if !ad.Flags.Has(ctap2.FlagUP) {
		return fail(ErrUserNotPresent, "UP flag clear")
	}
	if requireUV && !ad.Flags.Has(ctap2.FlagUV) {
		return fail(ErrUserNotVerified, "UV flag clear")
	}
	if ad.Flags.Has(ctap2.FlagBS) && !ad.Flags.Has(ctap2.FlagBE) {
		return fail(ErrMalformed, "BS flag set without BE")
	}
	return nil
}

// apply decides c under the policy and fills Model, Certification,
// TrustPath and Verdict.
func (p *Policy) apply(c *Credential) error {
	if len(p.AllowedAAGUIDs) > 0 && !containsAAGUID(p.AllowedAAGUIDs, c.AAGUID) {
		return fail(ErrAAGUIDNotAllowed, "AAGUID %s", FormatAAGUID(c.AAGUID))
	}
	entry := p.lookup(c)
	if entry != nil {
		c.Model, c.Certification = entry.Description, entry.Status
	}
	switch p.Mode {
	case ModeNone:
		c.Verdict = fmt.Sprintf("accepted under policy none: %s attestation (%s), not checked against roots", c.AttestationType, c.Format)
		return nil
	case ModeSelf:
		if c.AttestationType == AttestationNone {
			return fail(ErrUntrustedAttestation, "policy self needs an attestation signature; format none has none")
		}
		c.Verdict = fmt.Sprintf("accepted under policy self: %s attestation (%s) signature verified, model claimed", c.AttestationType, c.Format)
		return nil
	}
	// ModeTrusted.
	if c.AttestationType != AttestationBasic {
		return fail(ErrUntrustedAttestation, "policy trusted needs basic attestation, got %s", c.AttestationType)
	}
	roots := x509.NewCertPool()
	if p.Roots != nil {
		roots = p.Roots.Clone()
	}
	if entry != nil {
		if entry.Revoked {
			return fail(ErrRevoked, "MDS lists %q (AAGUID %s) as %s", entry.Description, FormatAAGUID(entry.AAGUID), entry.RevokedBy)
		}
		for _, r := range entry.Roots {
			roots.AddCert(r)
		}
	}
	inter := x509.NewCertPool()
	for _, ic := range c.Chain[1:] {
		inter.AddCert(ic)
	}
	now := p.Now()
	chains, err := c.Chain[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return fail(ErrUntrustedAttestation, "attestation certificate %q at %s: %v", c.Chain[0].Subject, now.UTC().Format(time.RFC3339), err)
	}
	c.TrustPath = chains[0]
	root := chains[0][len(chains[0])-1]
	c.Verdict = fmt.Sprintf("accepted under policy trusted: %s attestation chains to %q", c.Format, root.Subject)
	if entry != nil {
		c.Verdict += fmt.Sprintf("; MDS: %q, %s", entry.Description, entry.Status)
	}
	return nil
}

// lookup finds the MDS entry of c: by AAGUID, or for U2F authenticators
// (AAGUID zero) by the key identifier of an x5c certificate.
func (p *Policy) lookup(c *Credential) *MDSEntry {
	if p.MDS == nil {
		return nil
	}
	if c.AAGUID != ([16]byte{}) {
		e, _ := p.MDS.Lookup(c.AAGUID)
		return e
	}
	for _, cert := range c.Chain {
		if e, ok := p.MDS.LookupKeyID(CertificateKeyID(cert)); ok {
			return e
		}
	}
	return nil
}

func containsAAGUID(list [][16]byte, a [16]byte) bool {
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}

// LoadRootsDir reads the trusted attestation roots of a directory: every
// *.pem and *.crt file in it, each holding one or more PEM CERTIFICATE
// blocks. A file that holds anything else, or a directory without a
// single certificate, is an error, so that a typo does not leave
// ModeTrusted refusing every key without saying why. It is the one
// function of the package that touches the file system.
func LoadRootsDir(dir string) (*x509.CertPool, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("fido2: roots: %w", err)
	}
	pool := x509.NewCertPool()
	n := 0
	for _, e := range entries {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if e.IsDir() || (ext != ".pem" && ext != ".crt") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("fido2: roots: %w", err)
		}
		certs, err := parsePEMCertificates(b)
		if err != nil {
			return nil, fmt.Errorf("fido2: roots: %s: %w", path, err)
		}
		for _, c := range certs {
			pool.AddCert(c)
			n++
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("fido2: roots: no certificate in %s", dir)
	}
	return pool, nil
}

func parsePEMCertificates(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fail(ErrMalformed, "PEM block %q", blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fail(ErrMalformed, "certificate: %v", err)
		}
		certs = append(certs, c)
	}
	if len(bytes.TrimSpace(b)) != 0 {
		return nil, fail(ErrMalformed, "trailing data that is not PEM")
	}
	if len(certs) == 0 {
		return nil, fail(ErrMalformed, "no PEM certificate")
	}
	return certs, nil
}
