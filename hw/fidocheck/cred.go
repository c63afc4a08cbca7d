package fidocheck

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"

	"github.com/mfad/mfad/hw/ctap2"
)

// The relying party the battery registers with. ".invalid" (RFC 2606)
// cannot collide with a real site; the fixed user id makes the resident
// check overwrite its own credential on every run instead of filling the
// key.
const (
	checkRPID  = "battery.mfad.invalid"
	otherRPID  = "other.mfad.invalid"
	checkUser  = "mfad-battery"
	checkUser2 = "mfad-battery-2"
)

// credential is a credential the battery made.
type credential struct {
	id    []byte
	pub   crypto.PublicKey
	alg   ctap2.COSEAlgorithm
	rpID  string
	flags ctap2.AuthDataFlags
	ext   []byte // authData extension outputs, raw CBOR
}

func clientDataHash(label string) []byte {
	var nonce [16]byte
	rand.Read(nonce[:])
	h := sha256.Sum256(append([]byte("mfad battery "+label+" "), nonce[:]...))
	return h[:]
}

func descriptors(ids ...[]byte) []ctap2.CredentialDescriptor {
	var out []ctap2.CredentialDescriptor
	for _, id := range ids {
		out = append(out, ctap2.CredentialDescriptor{Type: ctap2.CredentialTypePublicKey, ID: id})
	}
	return out
}

// makeCredRequest builds a MakeCredential request of the battery.
func (r *runner) makeCredRequest(alg ctap2.COSEAlgorithm, rk bool, exclude [][]byte, opts map[string]bool) *ctap2.MakeCredentialRequest {
	user := checkUser
	if rk {
		user = checkUser2
	}
	req := &ctap2.MakeCredentialRequest{
		ClientDataHash:   clientDataHash("register"),
		RP:               &ctap2.RPEntity{ID: checkRPID, Name: "mfad battery"},
		User:             &ctap2.UserEntity{ID: []byte(user), Name: user, DisplayName: "mfad conformance battery"},
		PubKeyCredParams: []ctap2.CredentialParameter{{Type: ctap2.CredentialTypePublicKey, Alg: alg}},
		ExcludeList:      descriptors(exclude...),
		Options:          opts,
	}
	if rk {
		if req.Options == nil {
			req.Options = map[string]bool{}
		}
		req.Options[ctap2.OptionResidentKey] = true
	}
	return req
}

// pinAuth adds a pinUvAuthParam made with Options.PIN to a request, when
// the key has a PIN and the caller gave it.
func (r *runner) pinAuth(perm ctap2.Permission, rpID string, cdh []byte) ([]byte, uint64, error) {
	ctx, cancel := r.op(false)
	defer cancel()
	proto, token, err := r.k.PINToken(ctx, r.opts.PIN, perm, rpID)
	if err != nil {
		return nil, 0, err
	}
	return ctap2.PinUvAuthParam(proto, token, cdh), proto.Version(), nil
}

// needsPIN reports why credential checks cannot run without a PIN, or "".
func (r *runner) needsPIN() string {
	if v, _ := r.info().Option(ctap2.OptionClientPIN); !v || r.opts.PIN != "" {
		return ""
	}
	if v, _ := r.info().Option(ctap2.OptionMakeCredUvNotRqd); v {
		return ""
	}
	return "the key has a PIN and asks for it to make credentials: give the PIN to run this check"
}

// makeCredential runs MakeCredential (with the PIN when the key needs it)
// and checks the attestation object: authData's rpIdHash, UP, attested
// credential data with the key's AAGUID and the requested algorithm, and
// the attestation signature.
func (r *runner) makeCredential(req *ctap2.MakeCredentialRequest, what string) (*credential, error) {
	if v, _ := r.info().Option(ctap2.OptionClientPIN); v && r.opts.PIN != "" {
		p, v, err := r.pinAuth(ctap2.PermMakeCredential, req.RP.ID, req.ClientDataHash)
		if err != nil {
			return nil, fmt.Errorf("pinUvAuthToken: %w", err)
		}
		req.PinUvAuthParam, req.PinUvAuthProtocol = p, v
	}
	ctx, cancel := r.op(true)
	defer cancel()
	var resp ctap2.MakeCredentialResponse
	if err := ctap2.Call(ctx, r.k.Channel(), ctap2.CmdMakeCredential, req, &resp, r.keepalive(what)); err != nil {
		return nil, err
	}
	ad, err := ctap2.ParseAuthData(resp.AuthData)
	if err != nil {
		return nil, err
	}
	if want := sha256.Sum256([]byte(req.RP.ID)); ad.RPIDHash != want {
		return nil, fmt.Errorf("authData rpIdHash %x is not SHA-256(%q)", ad.RPIDHash[:8], req.RP.ID)
	}
	if !ad.Flags.Has(ctap2.FlagUP) {
		return nil, errors.New("authData of a new credential without the UP flag")
	}
	if ad.AttestedCredential == nil {
		return nil, errors.New("authData without attested credential data")
	}
	if !bytes.Equal(ad.AttestedCredential.AAGUID[:], r.info().AAGUID) {
		return nil, fmt.Errorf("attested AAGUID %s differs from GetInfo's %s", FormatAAGUID(ad.AttestedCredential.AAGUID[:]), FormatAAGUID(r.info().AAGUID))
	}
	pub, alg, err := ad.AttestedCredential.Key()
	if err != nil {
		return nil, fmt.Errorf("credential public key: %w", err)
	}
	if alg != req.PubKeyCredParams[0].Alg {
		return nil, fmt.Errorf("credential algorithm %d, asked for %d", alg, req.PubKeyCredParams[0].Alg)
	}
	how, err := verifyAttestation(&resp, ad, pub, alg, req.ClientDataHash)
	if err != nil {
		return nil, fmt.Errorf("attestation (%s): %w", resp.Fmt, err)
	}
	c := &credential{id: ad.AttestedCredential.CredentialID, pub: pub, alg: alg, rpID: req.RP.ID, flags: ad.Flags, ext: ad.Extensions}
	r.note("%s: %s attestation %s; credential id of %d bytes, counter %d, flags %#02x", what, resp.Fmt, how, len(c.id), ad.SignCount, byte(ad.Flags))
	r.counters[hex.EncodeToString(c.id)] = ad.SignCount
	return c, nil
}

// verifyAttestation checks the attestation signature: packed with x5c
// (the leaf's key) or self (the credential's key), fido-u2f, or none.
func verifyAttestation(resp *ctap2.MakeCredentialResponse, ad *ctap2.AuthData, credPub crypto.PublicKey, credAlg ctap2.COSEAlgorithm, cdh []byte) (string, error) {
	if resp.Fmt == "none" {
		return "(nothing to verify)", nil
	}
	st, err := ctap2.ParseAttestationStatement(resp.AttStmt)
	if err != nil {
		return "", err
	}
	switch resp.Fmt {
	case "packed":
		msg := append(append([]byte(nil), resp.AuthData...), cdh...)
		if len(st.X5C) == 0 {
			if st.Alg != credAlg {
				return "", fmt.Errorf("self attestation alg %d, credential alg %d", st.Alg, credAlg)
			}
			return "self, signature verified", ctap2.VerifySignature(credPub, credAlg, msg, st.Sig)
		}
		cert, err := x509.ParseCertificate(st.X5C[0])
		if err != nil {
			return "", fmt.Errorf("x5c[0]: %w", err)
		}
		if err := ctap2.VerifySignature(cert.PublicKey, st.Alg, msg, st.Sig); err != nil {
			return "", err
		}
		return fmt.Sprintf("by %q, signature verified", cert.Subject.CommonName), nil
	case "fido-u2f":
		if len(st.X5C) != 1 {
			return "", fmt.Errorf("fido-u2f with %d certificates", len(st.X5C))
		}
		cert, err := x509.ParseCertificate(st.X5C[0])
		if err != nil {
			return "", fmt.Errorf("x5c[0]: %w", err)
		}
		ec, ok := credPub.(*ecdsa.PublicKey)
		if !ok || ec.Curve != elliptic.P256() {
			return "", errors.New("fido-u2f needs a P-256 credential key")
		}
		point, err := ec.ECDH()
		if err != nil {
			return "", err
		}
		msg := []byte{0}
		msg = append(msg, ad.RPIDHash[:]...)
		msg = append(msg, cdh...)
		msg = append(msg, ad.AttestedCredential.CredentialID...)
		msg = append(msg, point.Bytes()...)
		if err := ctap2.VerifySignature(cert.PublicKey, ctap2.AlgES256, msg, st.Sig); err != nil {
			return "", err
		}
		return fmt.Sprintf("by %q, signature verified", cert.Subject.CommonName), nil
	}
	return "(format not verified by the battery)", nil
}

// assertion is one verified assertion.
type assertion struct {
	flags   ctap2.AuthDataFlags
	counter uint32
	credID  []byte
	userID  []byte
	ext     []byte // authData extension outputs, raw CBOR
}

// getAssertion runs GetAssertion and verifies the answer against the
// credentials the battery knows: rpIdHash, signature, and records the
// counter. up nil leaves the option out (the default, true).
func (r *runner) getAssertion(rpID string, allow [][]byte, up *bool, known []*credential, what string) (*assertion, error) {
	return r.getAssertionExt(rpID, allow, up, known, what, nil)
}

// getAssertionExt is getAssertion with extension inputs.
func (r *runner) getAssertionExt(rpID string, allow [][]byte, up *bool, known []*credential, what string, ext map[string]cbor.RawMessage) (*assertion, error) {
	req := &ctap2.GetAssertionRequest{RPID: rpID, ClientDataHash: clientDataHash("sign"), AllowList: descriptors(allow...), Extensions: ext}
	if up != nil {
		req.Options = map[string]bool{ctap2.OptionUserPresence: *up}
	}
	ctx, cancel := r.op(up == nil || *up)
	defer cancel()
	var resp ctap2.GetAssertionResponse
	if err := ctap2.Call(ctx, r.k.Channel(), ctap2.CmdGetAssertion, req, &resp, r.keepalive(what)); err != nil {
		return nil, err
	}
	id := allowed(resp.Credential, allow)
	if id == nil {
		return nil, errors.New("assertion does not name its credential")
	}
	var c *credential
	for _, k := range known {
		if bytes.Equal(k.id, id) {
			c = k
		}
	}
	if c == nil {
		return nil, fmt.Errorf("assertion by credential %x…, not one the battery asked for", id[:min(8, len(id))])
	}
	ad, err := ctap2.ParseAuthData(resp.AuthData)
	if err != nil {
		return nil, err
	}
	if want := sha256.Sum256([]byte(rpID)); ad.RPIDHash != want {
		return nil, fmt.Errorf("authData rpIdHash %x… is not SHA-256(%q)", ad.RPIDHash[:8], rpID)
	}
	msg := append(append([]byte(nil), resp.AuthData...), req.ClientDataHash...)
	if err := ctap2.VerifySignature(c.pub, c.alg, msg, resp.Signature); err != nil {
		return nil, fmt.Errorf("assertion signature: %w", err)
	}
	a := &assertion{flags: ad.Flags, counter: ad.SignCount, credID: id, ext: ad.Extensions}
	if resp.User != nil {
		a.userID = resp.User.ID
	}
	r.note("%s: signature verified, counter %d, flags %#02x", what, ad.SignCount, byte(ad.Flags))
	return a, nil
}

// allowed is the credential id of an assertion, which a key may leave out
// when the allow list held exactly one.
func allowed(d *ctap2.CredentialDescriptor, allow [][]byte) []byte {
	if d != nil {
		return d.ID
	}
	if len(allow) == 1 {
		return allow[0]
	}
	return nil
}

// offers reports whether GetInfo lists alg; keys that list no algorithms
// are taken to offer ES256 only (CTAP 2.1 §6.4 algorithms).
func (r *runner) offers(alg ctap2.COSEAlgorithm) (bool, string) {
	algs := r.info().Algorithms
	if len(algs) == 0 {
		return alg == ctap2.AlgES256, "GetInfo lists no algorithms"
	}
	for _, a := range algs {
		if a.Alg == alg {
			return true, ""
		}
	}
	return false, fmt.Sprintf("GetInfo algorithms do not list %d", alg)
}

func (r *runner) credRoundTrip(alg ctap2.COSEAlgorithm, name string) (*credential, outcome) {
	if why := r.needsPIN(); why != "" {
		return nil, skipf("%s", why)
	}
	if ok, why := r.offers(alg); !ok {
		return nil, skipf("%s not offered: %s", name, why)
	}
	c, err := r.makeCredential(r.makeCredRequest(alg, false, nil, nil), "MakeCredential "+name)
	if err != nil {
		r.note("MakeCredential %s: %s", name, describe(err))
		return nil, errOutcome("MakeCredential "+name, err)
	}
	a, err := r.getAssertion(checkRPID, [][]byte{c.id}, nil, []*credential{c}, "GetAssertion "+name)
	if err != nil {
		r.note("GetAssertion %s: %s", name, describe(err))
		return nil, errOutcome("GetAssertion "+name, err)
	}
	if !a.flags.Has(ctap2.FlagUP) {
		return nil, failf("assertion with user presence asked for lacks the UP flag")
	}
	r.counters[hex.EncodeToString(c.id)] = a.counter
	return c, pass()
}

func checkES256(r *runner) outcome {
	c, o := r.credRoundTrip(ctap2.AlgES256, "ES256")
	r.es256 = c
	return o
}

func checkEdDSA(r *runner) outcome {
	_, o := r.credRoundTrip(ctap2.AlgEdDSA, "EdDSA")
	return o
}

// needES256 is the precondition of the checks that use cred.es256's
// credential.
func (r *runner) needES256() (outcome, bool) {
	if r.es256 == nil {
		return skipf("needs the credential of cred.es256, which was not made"), false
	}
	return outcome{}, true
}

func checkResident(r *runner) outcome {
	if v, _ := r.info().Option(ctap2.OptionResidentKey); !v {
		return skipf("the key does not offer resident credentials (option rk)")
	}
	if why := r.needsPIN(); why != "" {
		return skipf("%s", why)
	}
	if v, _ := r.info().Option(ctap2.OptionClientPIN); v {
		return skipf("the key has a PIN: resident credentials need it for both registration and discovery; the battery does not run this check on it")
	}
	c, err := r.makeCredential(r.makeCredRequest(ctap2.AlgES256, true, nil, nil), "MakeCredential rk=true")
	if err != nil {
		r.note("MakeCredential rk=true: %s", describe(err))
		return errOutcome("MakeCredential with rk", err)
	}
	a, err := r.getAssertion(checkRPID, nil, nil, []*credential{c}, "GetAssertion without allow list")
	if err != nil {
		r.note("GetAssertion without allow list: %s", describe(err))
		return errOutcome("GetAssertion without an allow list", err)
	}
	if !bytes.Equal(a.userID, []byte(checkUser2)) {
		return failf("the discovered credential's user id is %q, want %q", a.userID, checkUser2)
	}
	r.note("the resident credential was found with its user id")
	return pass()
}

func checkExclude(r *runner) outcome {
	if o, ok := r.needES256(); !ok {
		return o
	}
	_, err := r.makeCredential(r.makeCredRequest(ctap2.AlgES256, false, [][]byte{r.randomID(), r.es256.id}, nil), "MakeCredential with the credential excluded")
	r.note("MakeCredential with an exclude list holding the key's credential: %s", describe(err))
	if !errors.Is(err, ctap2.ErrCredentialExcluded) {
		return failf("want CTAP2_ERR_CREDENTIAL_EXCLUDED, got %s", describe(err))
	}
	if _, err := r.makeCredential(r.makeCredRequest(ctap2.AlgES256, false, [][]byte{r.randomID()}, nil), "MakeCredential with a foreign exclude list"); err != nil {
		return errOutcome("MakeCredential with an exclude list of another key's credential", err)
	}
	return pass()
}

// randomID is a credential id no key made: 64 random bytes, or fewer
// when the key says it takes no longer ids (maxCredentialIdLength).
func (r *runner) randomID() []byte {
	n := 64
	if m := r.info().MaxCredentialIDLength; m > 0 && m < 64 {
		n = int(m)
	}
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func checkAllowList(r *runner) outcome {
	if o, ok := r.needES256(); !ok {
		return o
	}
	a, err := r.getAssertion(checkRPID, [][]byte{r.randomID(), r.es256.id, r.randomID()}, nil, []*credential{r.es256}, "GetAssertion with the credential among strangers")
	if err != nil {
		return errOutcome("GetAssertion with an allow list of three", err)
	}
	if !bytes.Equal(a.credID, r.es256.id) {
		return failf("signed with another credential")
	}
	r.counters[hex.EncodeToString(a.credID)] = a.counter
	up := false
	_, err = r.getAssertion(checkRPID, [][]byte{r.randomID()}, &up, nil, "GetAssertion with only a stranger")
	r.note("GetAssertion with an allow list of an unknown credential: %s", describe(err))
	if !errors.Is(err, ctap2.ErrNoCredentials) {
		return failf("an allow list of unknown credentials: want CTAP2_ERR_NO_CREDENTIALS, got %s", describe(err))
	}
	return pass()
}

func checkUserPresence(r *runner) outcome {
	if o, ok := r.needES256(); !ok {
		return o
	}
	up := false
	a, err := r.getAssertion(checkRPID, [][]byte{r.es256.id}, &up, []*credential{r.es256}, "GetAssertion up=false")
	if err != nil {
		return errOutcome("GetAssertion with up=false", err)
	}
	if a.flags.Has(ctap2.FlagUP) {
		return failf("an assertion with up=false claims user presence (UP flag set)")
	}
	r.counters[hex.EncodeToString(a.credID)] = a.counter
	yes := true
	a, err = r.getAssertion(checkRPID, [][]byte{r.es256.id}, &yes, []*credential{r.es256}, "GetAssertion up=true")
	if err != nil {
		return errOutcome("GetAssertion with up=true", err)
	}
	if !a.flags.Has(ctap2.FlagUP) {
		return failf("an assertion with up=true lacks the UP flag")
	}
	r.counters[hex.EncodeToString(a.credID)] = a.counter
	if !r.fido21() {
		r.note("MakeCredential with up=false not tried: CTAP 2.0 key")
		return pass()
	}
	if why := r.needsPIN(); why != "" {
		r.note("MakeCredential with up=false not tried: %s", why)
		return pass()
	}
	_, err = r.makeCredential(r.makeCredRequest(ctap2.AlgES256, false, nil, map[string]bool{ctap2.OptionUserPresence: false}), "MakeCredential up=false")
	r.note("MakeCredential with up=false: %s", describe(err))
	if !errors.Is(err, ctap2.ErrInvalidOption) {
		return failf("MakeCredential with up=false: want CTAP2_ERR_INVALID_OPTION, got %s", describe(err))
	}
	return pass()
}

func checkRPBinding(r *runner) outcome {
	if o, ok := r.needES256(); !ok {
		return o
	}
	up := false
	_, err := r.getAssertion(otherRPID, [][]byte{r.es256.id}, &up, []*credential{r.es256}, "GetAssertion for another RP")
	r.note("GetAssertion for %q with a credential of %q: %s", otherRPID, checkRPID, describe(err))
	if !errors.Is(err, ctap2.ErrNoCredentials) {
		return failf("a credential used for another relying party: want CTAP2_ERR_NO_CREDENTIALS, got %s", describe(err))
	}
	return pass()
}

func checkCounter(r *runner) outcome {
	if o, ok := r.needES256(); !ok {
		return o
	}
	key := hex.EncodeToString(r.es256.id)
	prev := r.counters[key]
	var seen []uint32
	for i := range 2 {
		a, err := r.getAssertion(checkRPID, [][]byte{r.es256.id}, nil, []*credential{r.es256}, fmt.Sprintf("GetAssertion %d", i+1))
		if err != nil {
			return errOutcome("GetAssertion", err)
		}
		seen = append(seen, a.counter)
	}
	r.note("counter before %d, then %d and %d", prev, seen[0], seen[1])
	if prev == 0 && seen[0] == 0 && seen[1] == 0 {
		r.note("the key keeps no signature counter (always 0), which WebAuthn allows")
		return pass()
	}
	if seen[0] <= prev || seen[1] <= seen[0] {
		return failf("the counter did not increase: %d, then %d, then %d (a cloned key, or a counter that went back)", prev, seen[0], seen[1])
	}
	r.counters[key] = seen[1]
	return pass()
}
