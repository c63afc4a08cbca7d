package fido2

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
	"github.com/mfad/mfad/hw/ctap2"
)

// Attestation statement formats (WebAuthn §8, IANA "WebAuthn Attestation
// Statement Format Identifiers").
const (
	FormatPacked  = "packed"
	FormatFIDOU2F = "fido-u2f"
	FormatNone    = "none"
)

// AttestationType is what an attestation statement proves (WebAuthn §6.5.3).
type AttestationType string

const (
	// AttestationBasic: signed by an attestation key whose certificate
	// (x5c) names the authenticator model.
	AttestationBasic AttestationType = "basic"
	// AttestationSelf: signed by the credential key itself; proves only
	// that the authenticator holds the key.
	AttestationSelf AttestationType = "self"
	// AttestationNone: no statement at all.
	AttestationNone AttestationType = "none"
)

// maxChain bounds the certificates of an x5c array; real chains hold one
// to three.
const maxChain = 8

// oidFIDOGenCeAAGUID is id-fido-gen-ce-aaguid (WebAuthn §8.2.1): an
// extension of packed attestation certificates holding the AAGUID.
var oidFIDOGenCeAAGUID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 45724, 1, 1, 4}

// AttestationObject is a WebAuthn attestation object (§6.5.4): a format,
// authenticator data and a statement whose shape the format gives.
type AttestationObject struct {
	Format   string
	AuthData []byte
	AttStmt  []byte // the raw CBOR map
}

// attObjWire is the WebAuthn form with text keys, in the CTAP2 canonical
// order (shorter keys first).
type attObjWire struct {
	Fmt      string          `cbor:"fmt"`
	AttStmt  cbor.RawMessage `cbor:"attStmt"`
	AuthData []byte          `cbor:"authData"`
}

// ParseAttestationObject decodes an attestation object in either of its
// two encodings: WebAuthn's, a CBOR map with text keys "fmt", "authData"
// and "attStmt" (§6.5.4), or CTAP2's authenticatorMakeCredential response
// body, with integer keys 1, 2 and 3 (CTAP 2.1 §6.1; keys 4 and above,
// epAtt, largeBlobKey and unsigned extension outputs, are ignored). The
// statement must be a CBOR map; the authenticator data is not parsed here.
// Errors wrap ErrMalformed.
func ParseAttestationObject(b []byte) (*AttestationObject, error) {
	var m map[any]cbor.RawMessage
	if err := ctap2.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: attestation object: %w", ErrMalformed, err)
	}
	var fmtRaw, adRaw, stRaw cbor.RawMessage
	text, ints := 0, 0
	for k, v := range m {
		switch k := k.(type) {
		case string:
			text++
			switch k {
			case "fmt":
				fmtRaw = v
			case "authData":
				adRaw = v
			case "attStmt":
				stRaw = v
			default:
				return nil, fail(ErrMalformed, "attestation object member %q", k)
			}
		case uint64:
			ints++
			switch k {
			case 1:
				fmtRaw = v
			case 2:
				adRaw = v
			case 3:
				stRaw = v
			}
		default:
			return nil, fail(ErrMalformed, "attestation object key of type %T", k)
		}
	}
	if text > 0 && ints > 0 {
		return nil, fail(ErrMalformed, "attestation object mixes text and integer keys")
	}
	if fmtRaw == nil || adRaw == nil || stRaw == nil {
		return nil, fail(ErrMalformed, "attestation object lacks fmt, authData or attStmt")
	}
	o := &AttestationObject{}
	if err := ctap2.Unmarshal(fmtRaw, &o.Format); err != nil {
		return nil, fmt.Errorf("%w: fmt: %w", ErrMalformed, err)
	}
	if err := ctap2.Unmarshal(adRaw, &o.AuthData); err != nil {
		return nil, fmt.Errorf("%w: authData: %w", ErrMalformed, err)
	}
	if len(stRaw) == 0 || stRaw[0]>>5 != 5 { // major type 5: map
		return nil, fail(ErrMalformed, "attStmt is not a CBOR map")
	}
	o.AttStmt = bytes.Clone(stRaw)
	return o, nil
}

// Marshal encodes the object in the WebAuthn form (text keys), the form
// mfad stores and WebAuthn libraries read. A nil AttStmt is an empty map.
func (o *AttestationObject) Marshal() ([]byte, error) {
	st := cbor.RawMessage(o.AttStmt)
	if len(st) == 0 {
		st = cbor.RawMessage{0xa0}
	}
	b, err := ctap2.Marshal(attObjWire{Fmt: o.Format, AttStmt: st, AuthData: o.AuthData})
	if err != nil {
		return nil, fmt.Errorf("%w: attestation object: %w", ErrMalformed, err)
	}
	return b, nil
}

// Statement is what a verified attestation statement shows.
type Statement struct {
	Format string
	Type   AttestationType
	// Alg is the statement's signature algorithm: the attStmt alg of
	// packed, ES256 for fido-u2f, zero for none.
	Alg ctap2.COSEAlgorithm
	// Chain is the x5c array, attestation certificate first; empty for
	// self attestation and none.
	Chain []*x509.Certificate
}

// VerifyStatement checks an attestation statement by the verification
// procedure of its format (WebAuthn §8.2 packed, §8.6 fido-u2f, §8.7 none)
// over the authenticator data and clientDataHash: the signature, and for
// packed and fido-u2f the requirements on the attestation certificate.
// It is not a registration check: it neither reads client data nor
// checks the relying party, flags or trust roots (see VerifyRegistration).
// A lab uses it to check what a key answers to a known clientDataHash.
func VerifyStatement(obj *AttestationObject, clientDataHash []byte) (*Statement, error) {
	if obj == nil {
		return nil, fail(ErrMalformed, "no attestation object")
	}
	ad, err := ctap2.ParseAuthData(obj.AuthData)
	if err != nil {
		return nil, fmt.Errorf("%w: authData: %w", ErrMalformed, err)
	}
	if ad.AttestedCredential == nil {
		return nil, fail(ErrMalformed, "authData without attested credential data (AT flag clear)")
	}
	pub, alg, err := ad.AttestedCredential.Key()
	if err != nil {
		if errors.Is(err, ctap2.ErrUnsupportedAlgorithm) {
			return nil, fmt.Errorf("%w: credential key: %w", ErrUnsupportedAlgorithm, err)
		}
		return nil, fmt.Errorf("%w: credential key: %w", ErrMalformed, err)
	}
	return verifyStatement(obj, ad, pub, alg, clientDataHash)
}

func verifyStatement(obj *AttestationObject, ad *ctap2.AuthData, credKey crypto.PublicKey, credAlg ctap2.COSEAlgorithm, cdh []byte) (*Statement, error) {
	if len(cdh) != sha256.Size {
		return nil, fail(ErrMalformed, "clientDataHash of %d bytes", len(cdh))
	}
	switch obj.Format {
	case FormatPacked:
		return verifyPacked(obj, ad, credKey, credAlg, cdh)
	case FormatFIDOU2F:
		return verifyFIDOU2F(obj, ad, credKey, cdh)
	case FormatNone:
		var m map[string]cbor.RawMessage
		if err := ctap2.Unmarshal(obj.AttStmt, &m); err != nil {
			return nil, fmt.Errorf("%w: attStmt: %w", ErrMalformed, err)
		}
		if len(m) != 0 {
			return nil, fail(ErrMalformed, "attStmt of format none is not empty")
		}
		return &Statement{Format: FormatNone, Type: AttestationNone}, nil
	}
	return nil, fail(ErrUnsupportedFormat, "attestation format %q", obj.Format)
}

// parseStatement decodes attStmt, refusing members outside allowed.
func parseStatement(raw []byte, allowed ...string) (*ctap2.AttestationStatement, error) {
	var m map[string]cbor.RawMessage
	if err := ctap2.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%w: attStmt: %w", ErrMalformed, err)
	}
next:
	for k := range m {
		for _, a := range allowed {
			if k == a {
				continue next
			}
		}
		return nil, fail(ErrMalformed, "attStmt member %q", k)
	}
	st, err := ctap2.ParseAttestationStatement(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(st.X5C) > maxChain {
		return nil, fail(ErrMalformed, "x5c of %d certificates", len(st.X5C))
	}
	return st, nil
}

func parseChain(x5c [][]byte) ([]*x509.Certificate, error) {
	chain := make([]*x509.Certificate, 0, len(x5c))
	for i, der := range x5c {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fail(ErrMalformed, "x5c[%d]: %v", i, err)
		}
		chain = append(chain, c)
	}
	return chain, nil
}

// verifyPacked is WebAuthn §8.2 "Packed Attestation Statement Format",
// verification procedure.
func verifyPacked(obj *AttestationObject, ad *ctap2.AuthData, credKey crypto.PublicKey, credAlg ctap2.COSEAlgorithm, cdh []byte) (*Statement, error) {
	st, err := parseStatement(obj.AttStmt, "alg", "sig", "x5c")
	if err != nil {
		return nil, err
	}
	if st.Alg == 0 {
		return nil, fail(ErrMalformed, "packed attStmt without alg")
	}
	signed := make([]byte, 0, len(obj.AuthData)+len(cdh))
	signed = append(append(signed, obj.AuthData...), cdh...)
	if len(st.X5C) == 0 {
		// Self attestation: the credential key signs, under its own alg.
		if st.Alg != credAlg {
			return nil, fail(ErrUnsupportedAlgorithm, "self attestation alg %d, credential alg %d", st.Alg, credAlg)
		}
		if err := verifySig("packed self attestation", credKey, st.Alg, signed, st.Sig); err != nil {
			return nil, err
		}
		return &Statement{Format: FormatPacked, Type: AttestationSelf, Alg: st.Alg}, nil
	}
	chain, err := parseChain(st.X5C)
	if err != nil {
		return nil, err
	}
	leaf := chain[0]
	if err := verifySig("packed attestation", leaf.PublicKey, st.Alg, signed, st.Sig); err != nil {
		return nil, err
	}
	if err := checkPackedCert(leaf, ad.AttestedCredential.AAGUID); err != nil {
		return nil, err
	}
	return &Statement{Format: FormatPacked, Type: AttestationBasic, Alg: st.Alg, Chain: chain}, nil
}

// checkPackedCert applies WebAuthn §8.2.1 "Certificate Requirements for
// Packed Attestation Statements" to the attestation certificate.
func checkPackedCert(c *x509.Certificate, aaguid [16]byte) error {
	s := c.Subject
	switch {
	case c.Version != 3:
		return fail(ErrBadCertificate, "attestation certificate version %d, want 3", c.Version)
	case len(s.Country) != 1 || len(s.Country[0]) != 2:
		return fail(ErrBadCertificate, "attestation certificate Subject-C %q is not one ISO 3166 code", s.Country)
	case len(s.Organization) != 1 || s.Organization[0] == "":
		return fail(ErrBadCertificate, "attestation certificate Subject-O %q", s.Organization)
	case len(s.OrganizationalUnit) != 1 || s.OrganizationalUnit[0] != "Authenticator Attestation":
		return fail(ErrBadCertificate, "attestation certificate Subject-OU %q, want \"Authenticator Attestation\"", s.OrganizationalUnit)
	case s.CommonName == "":
		return fail(ErrBadCertificate, "attestation certificate without Subject-CN")
	case c.BasicConstraintsValid && c.IsCA:
		return fail(ErrBadCertificate, "attestation certificate is a CA")
	}
	for _, e := range c.Extensions {
		if !e.Id.Equal(oidFIDOGenCeAAGUID) {
			continue
		}
		if e.Critical {
			return fail(ErrBadCertificate, "id-fido-gen-ce-aaguid is critical")
		}
		var v []byte
		rest, err := asn1.Unmarshal(e.Value, &v)
		if err != nil || len(rest) != 0 || len(v) != 16 {
			return fail(ErrBadCertificate, "id-fido-gen-ce-aaguid is not a 16-byte OCTET STRING")
		}
		if !bytes.Equal(v, aaguid[:]) {
			return fail(ErrBadCertificate, "certificate AAGUID %x, authenticator data AAGUID %x", v, aaguid)
		}
	}
	return nil
}

// verifyFIDOU2F is WebAuthn §8.6 "FIDO U2F Attestation Statement Format",
// verification procedure.
func verifyFIDOU2F(obj *AttestationObject, ad *ctap2.AuthData, credKey crypto.PublicKey, cdh []byte) (*Statement, error) {
	st, err := parseStatement(obj.AttStmt, "sig", "x5c")
	if err != nil {
		return nil, err
	}
	if len(st.X5C) != 1 {
		return nil, fail(ErrMalformed, "fido-u2f x5c holds %d certificates, want 1", len(st.X5C))
	}
	chain, err := parseChain(st.X5C)
	if err != nil {
		return nil, err
	}
	if p, ok := chain[0].PublicKey.(*ecdsa.PublicKey); !ok || p.Curve != elliptic.P256() {
		return nil, fail(ErrBadCertificate, "fido-u2f attestation key is not a P-256 key")
	}
	cred, ok := credKey.(*ecdsa.PublicKey)
	if !ok || cred.Curve != elliptic.P256() {
		return nil, fail(ErrUnsupportedAlgorithm, "fido-u2f credential key is not a P-256 key")
	}
	if ad.AttestedCredential.AAGUID != ([16]byte{}) {
		return nil, fail(ErrMalformed, "fido-u2f credential with AAGUID %x", ad.AttestedCredential.AAGUID)
	}
	point, err := cred.Bytes() // 0x04 || x || y
	if err != nil {
		return nil, fail(ErrMalformed, "credential key: %v", err)
	}
	id := ad.AttestedCredential.CredentialID
	msg := make([]byte, 0, 1+32+32+len(id)+len(point))
	msg = append(msg, 0x00)
	msg = append(msg, ad.RPIDHash[:]...)
	msg = append(msg, cdh...)
	msg = append(msg, id...)
	msg = append(msg, point...)
	if err := verifySig("fido-u2f attestation", chain[0].PublicKey, ctap2.AlgES256, msg, st.Sig); err != nil {
		return nil, err
	}
	return &Statement{Format: FormatFIDOU2F, Type: AttestationBasic, Alg: ctap2.AlgES256, Chain: chain}, nil
}

// minRSABits is the smallest RSA attestation key accepted.
const minRSABits = 2048

// verifySig checks sig over message with pub under alg: what
// ctap2.VerifySignature does, plus RS256 for attestation certificates and
// MDS signers. It returns nil or an error wrapping ErrBadSignature or
// ErrUnsupportedAlgorithm; what names the signature in it.
func verifySig(what string, pub crypto.PublicKey, alg ctap2.COSEAlgorithm, message, sig []byte) error {
	if alg == ctap2.AlgRS256 {
		p, ok := pub.(*rsa.PublicKey)
		if !ok || p.N == nil || p.N.BitLen() < minRSABits {
			return fail(ErrUnsupportedAlgorithm, "%s: RS256 with key %T", what, pub)
		}
		h := sha256.Sum256(message)
		if rsa.VerifyPKCS1v15(p, crypto.SHA256, h[:], sig) != nil {
			return fail(ErrBadSignature, "%s: signature does not verify", what)
		}
		return nil
	}
	switch err := ctap2.VerifySignature(pub, alg, message, sig); {
	case err == nil:
		return nil
	case errors.Is(err, ctap2.ErrSignature):
		return fail(ErrBadSignature, "%s: signature does not verify", what)
	default:
		return fmt.Errorf("%w: %s: %w", ErrUnsupportedAlgorithm, what, err)
	}
}
