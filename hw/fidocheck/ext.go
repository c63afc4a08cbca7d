package fidocheck

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"

	"github.com/mfad/mfad/hw/ctap2"
)

// Extension identifiers (CTAP 2.1 §12) and the relying party of the
// credProtect check, kept apart so that its hidden credential is the only
// one discovery could find there.
const (
	extCredProtect = "credProtect"
	extHMACSecret  = "hmac-secret"
	protectRPID    = "protect.battery.mfad.invalid"
)

// extOutputs are the extension outputs of authenticator data.
type extOutputs struct {
	CredProtect uint64          `cbor:"credProtect,omitempty"`
	HMACSecret  cbor.RawMessage `cbor:"hmac-secret,omitempty"`
}

func parseExt(raw []byte) (*extOutputs, error) {
	var out extOutputs
	if len(raw) == 0 {
		return &out, nil
	}
	if err := ctap2.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("extension outputs: %w", err)
	}
	return &out, nil
}

// extPrecondition says why an extension check cannot run, or "".
func (r *runner) extPrecondition(ext string) string {
	if !contains(r.info().Extensions, ext) {
		return fmt.Sprintf("the key does not offer %s (GetInfo extensions %v)", ext, r.info().Extensions)
	}
	if v, _ := r.info().Option(ctap2.OptionClientPIN); v {
		return "the key has a PIN: the extension checks run on keys without one"
	}
	return ""
}

// makeWithExt makes a credential with extension inputs.
func (r *runner) makeWithExt(rpID string, rk bool, in map[string]any, what string) (*credential, *extOutputs, error) {
	req := r.makeCredRequest(ctap2.AlgES256, rk, nil, nil)
	req.RP.ID = rpID
	req.Extensions = map[string]cbor.RawMessage{}
	for k, v := range in {
		b, err := ctap2.Marshal(v)
		if err != nil {
			return nil, nil, err
		}
		req.Extensions[k] = b
	}
	c, err := r.makeCredential(req, what)
	if err != nil {
		return nil, nil, err
	}
	out, err := parseExt(c.ext)
	if err != nil {
		return nil, nil, err
	}
	return c, out, nil
}

// hmacSecretInput is the hmac-secret GetAssertion input (CTAP 2.1 §12.5).
type hmacSecretInput struct {
	KeyAgreement *ctap2.COSEKey `cbor:"1,keyasint"`
	SaltEnc      []byte         `cbor:"2,keyasint"`
	SaltAuth     []byte         `cbor:"3,keyasint"`
	Protocol     uint64         `cbor:"4,keyasint,omitempty"`
}

// hmacOutput asks a credential for its hmac-secret outputs of salts (one
// or two 32-byte salts) and returns them decrypted.
func (r *runner) hmacOutput(c *credential, salts []byte, what string) ([]byte, error) {
	ctx, cancel := r.op(false)
	proto, ka, err := r.k.KeyAgreement(ctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("getKeyAgreement: %w", err)
	}
	platformKey, shared, err := ctap2.Encapsulate(proto, ka)
	if err != nil {
		return nil, err
	}
	saltEnc, err := proto.Encrypt(shared, salts)
	if err != nil {
		return nil, err
	}
	in, err := ctap2.Marshal(&hmacSecretInput{KeyAgreement: platformKey, SaltEnc: saltEnc,
		SaltAuth: proto.Authenticate(shared, saltEnc), Protocol: proto.Version()})
	if err != nil {
		return nil, err
	}
	a, err := r.getAssertionExt(c.rpID, [][]byte{c.id}, nil, []*credential{c}, what, map[string]cbor.RawMessage{extHMACSecret: in})
	if err != nil {
		return nil, err
	}
	out, err := parseExt(a.ext)
	if err != nil {
		return nil, err
	}
	var enc []byte
	if len(out.HMACSecret) == 0 || ctap2.Unmarshal(out.HMACSecret, &enc) != nil {
		return nil, errors.New("the assertion carries no hmac-secret output")
	}
	plain, err := proto.Decrypt(shared, enc)
	if err != nil {
		return nil, fmt.Errorf("decrypting the hmac-secret output: %w", err)
	}
	if len(plain) != len(salts) {
		return nil, fmt.Errorf("hmac-secret output of %d bytes for %d bytes of salt", len(plain), len(salts))
	}
	return plain, nil
}

func checkHMACSecret(r *runner) outcome {
	if why := r.extPrecondition(extHMACSecret); why != "" {
		return skipf("%s", why)
	}
	var creds [2]*credential
	for i := range creds {
		c, out, err := r.makeWithExt(checkRPID, false, map[string]any{extHMACSecret: true}, fmt.Sprintf("MakeCredential %d with hmac-secret", i+1))
		if err != nil {
			return errOutcome("MakeCredential with hmac-secret", err)
		}
		var on bool
		if len(out.HMACSecret) == 0 || ctap2.Unmarshal(out.HMACSecret, &on) != nil || !on {
			return failf("MakeCredential with hmac-secret: authData does not answer hmac-secret: true")
		}
		creds[i] = c
	}
	salt1, salt2 := make([]byte, 32), make([]byte, 32)
	rand.Read(salt1)
	rand.Read(salt2)
	first, err := r.hmacOutput(creds[0], salt1, "GetAssertion with a salt")
	if err != nil {
		return errOutcome("hmac-secret", err)
	}
	again, err := r.hmacOutput(creds[0], salt1, "GetAssertion with the same salt")
	if err != nil {
		return errOutcome("hmac-secret", err)
	}
	other, err := r.hmacOutput(creds[1], salt1, "GetAssertion with the same salt, the other credential")
	if err != nil {
		return errOutcome("hmac-secret", err)
	}
	both, err := r.hmacOutput(creds[0], append(append([]byte(nil), salt1...), salt2...), "GetAssertion with two salts")
	if err != nil {
		return errOutcome("hmac-secret", err)
	}
	r.note("output for a salt %x…, the same salt again %x…, the other credential %x…", first[:4], again[:4], other[:4])
	r.note("two salts: %x… and %x…", both[:4], both[32:36])
	switch {
	case !bytes.Equal(first, again):
		return failf("the same credential and salt gave two different outputs")
	case bytes.Equal(first, other):
		return failf("two credentials gave the same output for one salt")
	case !bytes.Equal(both[:32], first):
		return failf("with two salts, the first output differs from the output of the first salt alone")
	case bytes.Equal(both[32:], both[:32]):
		return failf("two different salts gave the same output")
	}
	return pass()
}

func checkCredProtect(r *runner) outcome {
	if why := r.extPrecondition(extCredProtect); why != "" {
		return skipf("%s", why)
	}
	up := false
	made := map[int]*credential{}
	for _, level := range []int{1, 3} {
		c, out, err := r.makeWithExt(checkRPID, false, map[string]any{extCredProtect: level}, fmt.Sprintf("MakeCredential credProtect=%d", level))
		if err != nil {
			return errOutcome(fmt.Sprintf("MakeCredential with credProtect %d", level), err)
		}
		if out.CredProtect != uint64(level) {
			return failf("MakeCredential with credProtect %d: authData answers credProtect %d", level, out.CredProtect)
		}
		made[level] = c
	}
	if _, err := r.getAssertion(checkRPID, [][]byte{made[1].id}, &up, []*credential{made[1]}, "level 1 in the allow list, no UV"); err != nil {
		return errOutcome("a level 1 credential without UV", err)
	}
	_, err := r.getAssertion(checkRPID, [][]byte{made[3].id}, &up, []*credential{made[3]}, "level 3 in the allow list, no UV")
	r.note("level 3 credential in the allow list without UV: %s", describe(err))
	if !errors.Is(err, ctap2.ErrNoCredentials) {
		return failf("a level 3 credential without user verification: want CTAP2_ERR_NO_CREDENTIALS, got %s", describe(err))
	}
	if v, _ := r.info().Option(ctap2.OptionResidentKey); !v {
		r.note("level 2 not tried: the key offers no resident credentials")
		return pass()
	}
	c, out, err := r.makeWithExt(protectRPID, true, map[string]any{extCredProtect: 2}, "MakeCredential rk=true credProtect=2")
	if err != nil {
		return errOutcome("MakeCredential with rk and credProtect 2", err)
	}
	if out.CredProtect != 2 {
		return failf("MakeCredential with credProtect 2: authData answers credProtect %d", out.CredProtect)
	}
	_, err = r.getAssertion(protectRPID, nil, &up, []*credential{c}, "level 2 by discovery, no UV")
	r.note("level 2 resident credential by discovery without UV: %s", describe(err))
	if !errors.Is(err, ctap2.ErrNoCredentials) {
		return failf("a level 2 credential found by discovery without user verification: want CTAP2_ERR_NO_CREDENTIALS, got %s", describe(err))
	}
	if _, err := r.getAssertion(protectRPID, [][]byte{c.id}, &up, []*credential{c}, "level 2 in the allow list, no UV"); err != nil {
		return errOutcome("a level 2 credential in the allow list without UV", err)
	}
	return pass()
}
