package fidocheck

import (
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/mfad/mfad/hw/ctap2"
)

// pinPrecondition says why the PIN checks cannot run, or "".
func (r *runner) pinPrecondition() string {
	if _, ok := r.info().Option(ctap2.OptionClientPIN); !ok {
		return "the key offers no PIN (option clientPin absent)"
	}
	if r.opts.PIN == "" {
		return "no PIN given: the PIN checks set the PIN they are given (or use the key's own)"
	}
	if uint64(utf8.RuneCountInString(r.opts.PIN)) < max(r.info().MinPINLength, 4) {
		return "the PIN given is shorter than the key's minPINLength"
	}
	return ""
}

// pinReady is the precondition of the PIN checks after pin.set.
func (r *runner) pinReady() (outcome, bool) {
	if why := r.pinPrecondition(); why != "" {
		return skipf("%s", why), false
	}
	if !r.pinSet() {
		return skipf("the key has no PIN (pin.set did not set one)"), false
	}
	return outcome{}, true
}

func (r *runner) pinSet() bool {
	v, _ := r.info().Option(ctap2.OptionClientPIN)
	return v
}

func checkPINSet(r *runner) outcome {
	if why := r.pinPrecondition(); why != "" {
		return skipf("%s", why)
	}
	ctx, cancel := r.op(false)
	defer cancel()
	if r.pinSet() {
		err := r.k.SetPIN(ctx, r.opts.PIN)
		r.note("setPIN on a key that has a PIN: %s", describe(err))
		if !errors.Is(err, ctap2.ErrNotAllowed) {
			return failf("setPIN on a key that already has a PIN: want CTAP2_ERR_NOT_ALLOWED, got %s", describe(err))
		}
		return pass()
	}
	minLen := int(max(r.info().MinPINLength, 4))
	short := strings.Repeat("7", minLen-1)
	err := r.k.SetPIN(ctx, short)
	r.note("setPIN with %d digits (minPINLength %d): %s", minLen-1, minLen, describe(err))
	if !errors.Is(err, ctap2.ErrPINPolicyViolation) {
		return failf("setPIN below minPINLength: want CTAP2_ERR_PIN_POLICY_VIOLATION, got %s", describe(err))
	}
	if err := r.k.SetPIN(ctx, r.opts.PIN); err != nil {
		r.note("setPIN with the PIN given: %s", describe(err))
		return errOutcome("setPIN", err)
	}
	r.note("setPIN with the PIN given: success; GetInfo clientPin is now %v", r.pinSet())
	if !r.pinSet() {
		return failf("GetInfo option clientPin is not true after setPIN")
	}
	return pass()
}

func checkPINRetries(r *runner) outcome {
	if o, ok := r.pinReady(); !ok {
		return o
	}
	ctx, cancel := r.op(false)
	defer cancel()
	before, _, err := r.k.PINRetries(ctx)
	if err != nil {
		return errOutcome("getPINRetries", err)
	}
	if before <= 1 {
		return skipf("only %d PIN retries left: the battery will not spend one", before)
	}
	_, _, err = r.k.PINToken(ctx, r.opts.PIN+"0", ctap2.PermGetAssertion, checkRPID)
	r.note("PIN retries %d; a wrong PIN: %s", before, describe(err))
	if !errors.Is(err, ctap2.ErrPINInvalid) {
		return failf("a wrong PIN: want CTAP2_ERR_PIN_INVALID, got %s", describe(err))
	}
	after, _, err := r.k.PINRetries(ctx)
	if err != nil {
		return errOutcome("getPINRetries", err)
	}
	r.note("PIN retries after the wrong PIN: %d", after)
	if after != before-1 {
		return failf("a wrong PIN took the retries from %d to %d, want %d", before, after, before-1)
	}
	if _, _, err := r.k.PINToken(ctx, r.opts.PIN, ctap2.PermGetAssertion, checkRPID); err != nil {
		return errOutcome("the right PIN after a wrong one", err)
	}
	restored, _, err := r.k.PINRetries(ctx)
	if err != nil {
		return errOutcome("getPINRetries", err)
	}
	r.note("PIN retries after the right PIN: %d", restored)
	if restored < before {
		return failf("the right PIN did not restore the retries (%d, had %d)", restored, before)
	}
	return pass()
}

func checkPINToken(r *runner) outcome {
	if o, ok := r.pinReady(); !ok {
		return o
	}
	c, err := r.makeCredential(r.makeCredRequest(ctap2.AlgES256, false, nil, nil), "MakeCredential with a pinUvAuthToken")
	if err != nil {
		return errOutcome("MakeCredential with a pinUvAuthToken", err)
	}
	if !c.flags.Has(ctap2.FlagUV) {
		return failf("a credential made with a pinUvAuthToken lacks the UV flag")
	}
	req := r.makeCredRequest(ctap2.AlgES256, false, nil, nil)
	req.PinUvAuthParam, req.PinUvAuthProtocol = make([]byte, 16), 1
	if r.info().SupportsPinUvAuthProtocol(2) {
		req.PinUvAuthParam, req.PinUvAuthProtocol = make([]byte, 32), 2
	}
	ctx, cancel := r.op(false)
	defer cancel()
	err = ctap2.Call(ctx, r.k.Channel(), ctap2.CmdMakeCredential, req, nil, nil)
	r.note("MakeCredential with a forged pinUvAuthParam: %s", describe(err))
	if !errors.Is(err, ctap2.ErrPINAuthInvalid) {
		return failf("a forged pinUvAuthParam: want CTAP2_ERR_PIN_AUTH_INVALID, got %s", describe(err))
	}
	if v, _ := r.info().Option(ctap2.OptionPinUvAuthToken); !v || !r.fido21() {
		r.note("getPinUvAuthTokenUsingPinWithPermissions not tried: the key does not offer pinUvAuthToken")
		return pass()
	}
	proto, ka, err := r.k.KeyAgreement(ctx)
	if err != nil {
		return errOutcome("getKeyAgreement", err)
	}
	tokReq, _, err := ctap2.GetPINTokenRequest(proto, ka, r.opts.PIN, ctap2.PermGetAssertion, checkRPID)
	if err != nil {
		return errOutcome("building a token request", err)
	}
	tokReq.Permissions = nil
	err = ctap2.Call(ctx, r.k.Channel(), ctap2.CmdClientPIN, tokReq, &ctap2.ClientPINResponse{}, nil)
	r.note("getPinUvAuthTokenUsingPinWithPermissions without permissions: %s", describe(err))
	if !errors.Is(err, ctap2.ErrMissingParameter) {
		return failf("getPinUvAuthTokenUsingPinWithPermissions without permissions: want CTAP2_ERR_MISSING_PARAMETER (§6.5.5.7.2 step 1), got %s", describe(err))
	}
	return pass()
}

func checkPINChange(r *runner) outcome {
	if o, ok := r.pinReady(); !ok {
		return o
	}
	ctx, cancel := r.op(false)
	defer cancel()
	interim := r.opts.PIN + "42"
	if err := r.k.ChangePIN(ctx, r.opts.PIN, interim); err != nil {
		r.note("changePIN: %s", describe(err))
		return errOutcome("changePIN", err)
	}
	if _, _, err := r.k.PINToken(ctx, interim, ctap2.PermGetAssertion, checkRPID); err != nil {
		r.note("a token with the new PIN: %s", describe(err))
		return errOutcome("a pinUvAuthToken with the new PIN", err)
	}
	r.note("changePIN to an interim PIN: success; a token with it: success")
	if err := r.k.ChangePIN(ctx, interim, r.opts.PIN); err != nil {
		return errOutcome("changePIN back to the PIN given", err)
	}
	r.note("changePIN back to the PIN given: success")
	return pass()
}

func checkReset(r *runner) outcome {
	if r.opts.Replug == nil {
		return skipf("reset needs the key unplugged and plugged in again, which this caller cannot wait for")
	}
	r.emit(Event{Kind: EventReplug, Check: r.cur.Check, Message: "unplug the key and plug it back in: a key accepts reset only within 10 seconds of power-up; then touch it when it blinks"})
	ctx, cancel := r.op(true)
	k, err := r.opts.Replug(ctx)
	cancel()
	if err != nil {
		return errOutcome("waiting for the key to come back", err)
	}
	r.k = k
	r.wait = nil
	ctx, cancel = r.op(true)
	err = k.Reset(ctx, r.keepalive("reset"))
	cancel()
	r.note("authenticatorReset after the replug: %s", describe(err))
	if err != nil {
		if errors.Is(err, ctap2.ErrNotAllowed) {
			return failf("the key refused the reset (CTAP2_ERR_NOT_ALLOWED): more than 10 s since power-up?")
		}
		return errOutcome("authenticatorReset", err)
	}
	if v, ok := k.Info().Option(ctap2.OptionClientPIN); ok {
		r.note("GetInfo clientPin after reset: %v", v)
		if v {
			return failf("the key still has a PIN after reset")
		}
	}
	if r.es256 != nil {
		up := false
		_, err := r.getAssertion(checkRPID, [][]byte{r.es256.id}, &up, []*credential{r.es256}, "GetAssertion with a credential made before the reset")
		r.note("GetAssertion with a credential made before the reset: %s", describe(err))
		if !errors.Is(err, ctap2.ErrNoCredentials) {
			return failf("a credential made before the reset: want CTAP2_ERR_NO_CREDENTIALS, got %s", describe(err))
		}
	}
	return pass()
}

// lockoutAttempts is how many consecutive wrong PINs block PIN entry
// until the key is power-cycled (CTAP 2.1 §6.5.2.1, 3).
const lockoutAttempts = 3

func checkPINLockout(r *runner) outcome {
	if o, ok := r.pinReady(); !ok {
		return o
	}
	if r.opts.Replug == nil {
		return skipf("the lockout ends only when the key is unplugged and plugged in again, which this caller cannot wait for")
	}
	ctx, cancel := r.op(false)
	before, _, err := r.k.PINRetries(ctx)
	cancel()
	if err != nil {
		return errOutcome("getPINRetries", err)
	}
	if before <= lockoutAttempts {
		return skipf("only %d PIN retries left: %d wrong PINs could block the PIN for good", before, lockoutAttempts)
	}
	wrong := r.opts.PIN + "1"
	for i := 1; i <= lockoutAttempts; i++ {
		ctx, cancel := r.op(false)
		_, _, err := r.k.PINToken(ctx, wrong, ctap2.PermGetAssertion, checkRPID)
		cancel()
		r.note("wrong PIN %d: %s", i, describe(err))
		want := ctap2.ErrPINInvalid
		if i == lockoutAttempts {
			want = ctap2.ErrPINAuthBlocked
		}
		if !errors.Is(err, want) {
			return failf("wrong PIN %d of %d in a row: want %s, got %s", i, lockoutAttempts, want.String(), describe(err))
		}
	}
	ctx, cancel = r.op(false)
	_, _, err = r.k.PINToken(ctx, r.opts.PIN, ctap2.PermGetAssertion, checkRPID)
	r.note("the right PIN while blocked: %s", describe(err))
	if !errors.Is(err, ctap2.ErrPINAuthBlocked) {
		cancel()
		return failf("the right PIN after %d wrong ones, before a power cycle: want CTAP2_ERR_PIN_AUTH_BLOCKED, got %s", lockoutAttempts, describe(err))
	}
	left, powerCycle, err := r.k.PINRetries(ctx)
	cancel()
	if err != nil {
		return errOutcome("getPINRetries", err)
	}
	r.note("PIN retries %d (were %d), powerCycleState %v", left, before, powerCycle)
	if left != before-lockoutAttempts {
		return failf("%d wrong PINs took the retries from %d to %d", lockoutAttempts, before, left)
	}
	r.emit(Event{Kind: EventReplug, Check: r.cur.Check, Message: "unplug the key and plug it back in: its PIN is blocked until it loses power"})
	ctx, cancel = r.op(true)
	k, err := r.opts.Replug(ctx)
	cancel()
	if err != nil {
		return errOutcome("waiting for the key to come back", err)
	}
	r.k, r.wait = k, nil
	ctx, cancel = r.op(false)
	defer cancel()
	if _, _, err := r.k.PINToken(ctx, r.opts.PIN, ctap2.PermGetAssertion, checkRPID); err != nil {
		r.note("the right PIN after the power cycle: %s", describe(err))
		return errOutcome("the right PIN after the power cycle", err)
	}
	restored, _, err := r.k.PINRetries(ctx)
	if err != nil {
		return errOutcome("getPINRetries", err)
	}
	r.note("after the power cycle the right PIN works; PIN retries %d", restored)
	if restored < before {
		return failf("the right PIN after the power cycle left %d retries, had %d", restored, before)
	}
	return pass()
}
