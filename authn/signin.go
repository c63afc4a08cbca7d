package authn

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mfad/mfad/authn/totp"
)

// Every way in (a TOTP/HOTP code, a code with the next code, an admin's
// temporary access code, a recovery token, a security key) is a verifier
// behind one pipeline. The pipeline alone decides whether a sign-in may
// succeed, in the write transaction that commits the outcome:
//
//  1. the account exists and is not disabled;
//  2. an expired lockout is reset, and the throttle is taken: the attempt
//     is checked and counted in this one transaction, so concurrent
//     attempts cannot compare more guesses than the policy allows;
//  3. the verifier checks the proof against the records as this
//     transaction reads them (a device lost, deactivated or marked
//     possibly cloned meanwhile no longer matches);
//  4. the outcome (counter, spent code, failure count) and its audit
//     entries commit together, and are published after the commit.
//
// A verifier only answers whether its proof matches and what it used.

// AuthRequest is one sign-in attempt. Its proof is a code (TOTP/HOTP or a
// temporary access code), a code and the next code (a drifted device's
// resync at sign-in), a recovery token, or none of these: then the
// account's security keys are asked for an assertion.
type AuthRequest struct {
	Account       string
	Code          string
	NextCode      string
	RecoveryToken string
	PIN           string // security keys
	WaitForKey    bool   // security keys
}

// NeedsTouch says the request signs in with a security key, a long
// operation that waits for a touch.
func (r AuthRequest) NeedsTouch() bool {
	return r.Code == "" && r.NextCode == "" && r.RecoveryToken == ""
}

// AuthResult is a successful sign-in.
type AuthResult struct {
	// Method is how the sign-in was proven: device, temporary_code, recovery.
	Method string
	// Device is the device used (zero for a temporary code or recovery).
	Device Device
	// ActiveDevices counts the account's active devices after the sign-in.
	ActiveDevices int
	StepUpToken   string
	StepUpExpiry  time.Time
}

// verifier checks one kind of proof inside the committing transaction.
type verifier interface {
	// action is the audit action of the attempt.
	action() string
	// source is what a success earns the step-up token with.
	source() string
	// verify checks the proof against at.devs (the account's active OTP
	// devices, or all its devices, as this transaction reads them). It
	// answers the device used (nil for a proof tied to none), a *refused
	// when the proof fails (the pipeline counts and audits it), or another
	// error (nothing commits).
	verify(at *attempt) (*Device, error)
}

// attempt is what a verifier sees of the account in the transaction.
type attempt struct {
	c *change
	a *Account
	// devs is the account's active OTP devices, or for a verifier that
	// reads them all (allDevices), all its devices.
	devs []Device
	// others counts the account's active devices not in devs.
	others int
	// accountChanged says the verifier changed a (a spent code).
	accountChanged bool
	// spent is set when the proof was one of the account's scratch codes
	// rather than what the verifier looks for: the audit action, source
	// and detail are a temporary code's.
	spent string
}

// allDevices is a verifier that looks at all the account's devices (a
// security key's); the others see its active OTP devices only, and the
// pipeline reads no more than those (Tx.ActiveOTPDevices).
type allDevices interface{ allDevices() }

// readDevices reads the devices v looks at into at.
func (at *attempt) readDevices(v verifier, account string) error {
	var err error
	if _, all := v.(allDevices); all {
		at.devs, err = at.c.Devices(account)
		return err
	}
	var active int
	at.devs, active, err = at.c.ActiveOTPDevices(account)
	at.others = active - len(at.devs)
	return err
}

// spendScratch spends code when it is one of the account's scratch codes.
func (at *attempt) spendScratch(code string) bool {
	if len(code) != 8 || normalizeDigits(code) != code {
		return false
	}
	h := hashCode(code)
	for i, sc := range at.a.ScratchCodes {
		if sameHash(h, sc) {
			at.a.ScratchCodes = append(at.a.ScratchCodes[:i:i], at.a.ScratchCodes[i+1:]...)
			at.accountChanged = true
			at.spent = fmt.Sprintf("scratch code (%d left)", len(at.a.ScratchCodes))
			return true
		}
	}
	return false
}

// refused is a proof that did not match.
type refused struct {
	err    *Error
	device string // the device it was checked against, when one
	detail string // for the audit log: never the proof itself
	// replay: a proof already used; audited, not counted as a guess.
	replay bool
}

func (r *refused) Error() string { return r.err.Error() }

// Authenticate signs an account in with the request's proof.
func (s *Service) Authenticate(ctx context.Context, actor Actor, req AuthRequest, progress Progress) (*AuthResult, error) {
	var v verifier
	switch {
	case req.RecoveryToken != "":
		v = s.recoveryTokenVerifier(actor, req.Account, req.RecoveryToken)
	case req.NextCode != "":
		v = &codePairVerifier{s: s, code: req.Code, next: req.NextCode}
	case req.Code != "":
		if tc, ok := looksLikeTempCode(req.Code); ok {
			v = tempCodeVerifier{code: tc}
		} else {
			v = &codeVerifier{s: s, code: req.Code}
		}
	default:
		var err error
		if v, err = s.touchKey(ctx, actor, req, progress); err != nil {
			return nil, err
		}
	}
	return s.signIn(ctx, actor, req.Account, v)
}

// signIn is the pipeline.
func (s *Service) signIn(ctx context.Context, actor Actor, account string, v verifier) (*AuthResult, error) {
	var res *AuthResult
	err := s.write(context.WithoutCancel(ctx), actor, func(c *change) error {
		res = nil
		a, err := c.Account(account)
		if err != nil {
			return err
		}
		if err := s.gate(c, a, v.action()); err != nil {
			return err
		}
		if c.refusal != nil {
			return nil
		}
		at := &attempt{c: c, a: a}
		if err := at.readDevices(v, account); err != nil {
			return err
		}
		dev, err := v.verify(at)
		var no *refused
		if errors.As(err, &no) {
			c.refuse(no.err)
			ev := AuditEvent{Action: v.action(), Device: no.device, Detail: no.detail}
			if no.replay {
				ev.Account, ev.Outcome = a.Name, "fail"
				if err := c.putAccountIf(at.accountChanged, a); err != nil {
					return err
				}
				return c.audit(ev)
			}
			return c.fail(a, ev)
		}
		if err != nil {
			return err
		}
		if a.FailedAttempts != 0 || !a.LastFailureAt.IsZero() {
			a.FailedAttempts, a.LastFailureAt = 0, time.Time{}
			at.accountChanged = true
		}
		if err := c.putAccountIf(at.accountChanged, a); err != nil {
			return err
		}
		ev := AuditEvent{Action: v.action(), Account: a.Name}
		res = &AuthResult{Method: v.source()}
		if at.spent != "" {
			ev.Action, ev.Detail, res.Method = ActTempCodeUsed, at.spent, SourceTemporaryCode
		}
		if dev != nil {
			dev.LastUsedAt = c.now
			if err := c.PutDevice(dev); err != nil {
				return err
			}
			ev.Device, ev.Detail = dev.ID, "type="+string(dev.Type)
			res.Device = *dev
			res.Device.Secret = nil
		}
		res.ActiveDevices = at.others
		for _, d := range at.devs {
			if d.ID == res.Device.ID {
				d = res.Device
			}
			if d.State == StateActive {
				res.ActiveDevices++
			}
		}
		return c.audit(ev)
	})
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	if o := res.Device.OTP; o != nil && !o.Event {
		s.clock.observe(res.Device.ID, o.Drift, o.Period, now)
	}
	ttl := s.policy.StepUpTTL
	if res.Method == SourceRecovery {
		ttl = s.policy.RecoverySession
	}
	res.StepUpToken, res.StepUpExpiry = s.stepUps.issue(actor.UID, account, res.Method, now, ttl)
	return res, nil
}

// gate is the part of the pipeline before any proof is looked at: a
// disabled account is refused, an expired lockout reset, and an account
// that must wait is refused (audited, and costing nothing more). A refusal
// is recorded on c; an error aborts.
func (s *Service) gate(c *change, a *Account, action string) error {
	if a.HasFlag(FlagDisabled) {
		c.refuse(errDisabled(a.Name))
		return c.audit(AuditEvent{Action: action, Account: a.Name, Outcome: "fail", Detail: CodeAccountDisabled})
	}
	reset := resetExpiredLock(a, c.now)
	if err := s.throttle(a, c.now); err != nil {
		c.refuse(err)
		return c.audit(AuditEvent{Action: action, Account: a.Name, Outcome: "fail", Detail: AsError(err).Code})
	}
	return c.putAccountIf(reset, a)
}

func (c *change) putAccountIf(changed bool, a *Account) error {
	if !changed {
		return nil
	}
	a.UpdatedAt = c.now
	return c.PutAccount(a)
}

func errDisabled(name string) *Error {
	return Errorf(ClassForbidden, CodeAccountDisabled, "account %s is disabled: an admin can enable it again (mfactl account update %s --flags ...)", name, name)
}

// codeVerifier matches a TOTP/HOTP code against the account's active OTP
// devices in the verification window only: a miss says nothing about
// where else the code might match.
type codeVerifier struct {
	s    *Service
	code string
}

func (codeVerifier) action() string { return ActAuthenticate }
func (codeVerifier) source() string { return SourceDevice }

func (v *codeVerifier) verify(at *attempt) (*Device, error) {
	p := &v.s.policy
	now := at.c.now
	otps, err := activeOTP(at.devs)
	if err != nil {
		if at.spendScratch(v.code) {
			return nil, nil
		}
		return nil, err
	}
	var replayed *Device
	for _, d := range otps {
		key, err := otpKey(d)
		if err != nil {
			return nil, err
		}
		code, ok := totp.NormalizeCode(v.code, key.Digits)
		if !ok {
			continue
		}
		if d.OTP.Event {
			if c, ok := key.Match(code, totp.Forward(minCounter(d.OTP), p.HOTPLookAhead)); ok {
				d.OTP.LastCounter, d.OTP.Used = c, true
				return d, nil
			}
			if d.OTP.Used {
				if _, ok := key.Match(code, totp.Window{Center: d.OTP.LastCounter}); ok {
					replayed = d
				}
			}
			continue
		}
		step := totp.StepAt(now, key.Period)
		win := totp.Window{Center: totp.Center(step, d.OTP.Drift), Behind: p.VerifyWindow, Ahead: p.VerifyWindow}
		c, ok := key.Match(code, win)
		if !ok {
			continue
		}
		if c < minCounter(d.OTP) {
			// A fresh match may still lie on another device, and the
			// window may hold the code twice: look once more above.
			win.Min = minCounter(d.OTP)
			if c, ok = key.Match(code, win); !ok {
				replayed = d
				continue
			}
		}
		d.OTP.LastCounter, d.OTP.Used = c, true
		d.OTP.Drift = totp.Drift(c, step)
		return d, nil
	}
	if replayed != nil {
		return nil, &refused{replay: true, device: replayed.ID, detail: "replay: code already used",
			err: Errorf(ClassForbidden, CodeCodeAlreadyUsed, "this code was used already: wait for the next code")}
	}
	if at.spendScratch(v.code) {
		return nil, nil
	}
	e := Errorf(ClassForbidden, CodeInvalidCode, "the code matches no active device of %s", at.a.Name)
	if v.s.mayHaveDrifted(otps) {
		e.Hint = HintResync
	}
	return nil, &refused{err: e, detail: "invalid code"}
}

// mayHaveDrifted says whether a refused code may come from a device whose
// clock (or counter) ran away: an event token (pressed while away), a TOTP
// device that drifted before, or a host clock that devices disagree with.
// It never looks at the code.
func (s *Service) mayHaveDrifted(otps []*Device) bool {
	for _, d := range otps {
		if d.OTP.Event || d.OTP.Drift != 0 {
			return true
		}
	}
	return len(otps) > 0 && s.clock.Verdict(s.now()).HostClockSuspect
}

// activeOTP returns the active OTP devices, or no_active_device.
func activeOTP(devs []Device) ([]*Device, error) {
	var out []*Device
	for i := range devs {
		if d := &devs[i]; d.State == StateActive && d.OTP != nil {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		return nil, Errorf(ClassConflict, CodeNoActiveDevice, "the account has no active OTP device")
	}
	return out, nil
}

// codePairVerifier signs in with two consecutive codes found anywhere in
// the resync window (as a resync does), learning the drift: a random pair
// matches with odds near 2·10⁻⁹. It spends the device's resync budget.
type codePairVerifier struct {
	s          *Service
	code, next string
}

func (codePairVerifier) action() string { return ActAuthenticate }
func (codePairVerifier) source() string { return SourceDevice }

func (v *codePairVerifier) verify(at *attempt) (*Device, error) {
	otps, err := activeOTP(at.devs)
	if err != nil {
		return nil, err
	}
	now := at.c.now
	var tried []*Device
	var wait time.Duration
	for _, d := range otps {
		if left := v.s.resyncWait(d, now); left > 0 {
			wait = max(wait, left)
			continue
		}
		tried = append(tried, d)
		key, err := otpKey(d)
		if err != nil {
			return nil, err
		}
		c1, ok1 := totp.NormalizeCode(v.code, key.Digits)
		c2, ok2 := totp.NormalizeCode(v.next, key.Digits)
		if !ok1 || !ok2 {
			continue
		}
		if counter2, ok := key.FindConsecutive(c1, c2, v.s.resyncWindow(d, key, now)); ok {
			d.OTP.LastCounter, d.OTP.Used = counter2, true
			if !d.OTP.Event {
				d.OTP.Drift = totp.Drift(counter2, totp.StepAt(now, key.Period))
			}
			d.ResyncFailures, d.ResyncWindowStart = 0, time.Time{}
			return d, at.c.audit(AuditEvent{Action: ActDeviceResync, Account: d.Account, Device: d.ID,
				Detail: fmt.Sprintf("at sign-in; drift %d steps", d.OTP.Drift)})
		}
	}
	if len(tried) == 0 {
		e := Errorf(ClassTooMany, CodeRetryLater, "the account's OTP devices used their resync attempts this hour")
		e.RetryAfter = wait
		return nil, e
	}
	for _, d := range tried {
		v.s.spendResync(d, now)
		if err := at.c.PutDevice(d); err != nil {
			return nil, err
		}
	}
	return nil, &refused{detail: "code pair not found",
		err: Errorf(ClassForbidden, CodeInvalidCode, "the two codes were not found as consecutive codes of an active device of %s", at.a.Name)}
}

// resyncWindow is where two consecutive codes of d are looked for.
func (s *Service) resyncWindow(d *Device, key *totp.Key, now time.Time) totp.Window {
	if d.OTP.Event {
		return totp.Forward(minCounter(d.OTP), s.policy.HOTPResyncWindow)
	}
	return totp.Window{Center: totp.StepAt(now, key.Period), Behind: s.policy.ResyncWindow, Ahead: s.policy.ResyncWindow, Min: minCounter(d.OTP)}
}

// resyncWait is how long d must wait for its next resync (0: it may).
func (s *Service) resyncWait(d *Device, now time.Time) time.Duration {
	if d.ResyncFailures >= s.policy.ResyncBudget && now.Sub(d.ResyncWindowStart) < time.Hour {
		return d.ResyncWindowStart.Add(time.Hour).Sub(now)
	}
	return 0
}

// spendResync counts a failed resync of d in its hourly budget.
func (s *Service) spendResync(d *Device, now time.Time) {
	if now.Sub(d.ResyncWindowStart) >= time.Hour {
		d.ResyncWindowStart, d.ResyncFailures = now, 0
	}
	d.ResyncFailures++
}

// tempCodeVerifier spends an admin's temporary access code.
type tempCodeVerifier struct{ code string }

func (tempCodeVerifier) action() string { return ActTempCodeUsed }
func (tempCodeVerifier) source() string { return SourceTemporaryCode }

func (v tempCodeVerifier) verify(at *attempt) (*Device, error) {
	tc := at.a.TempCode
	if tc == nil || !at.c.now.Before(tc.ExpiresAt) || !sameHash(hashCode(v.code), tc.Hash) {
		return nil, &refused{detail: "temporary code refused",
			err: Errorf(ClassForbidden, CodeInvalidCode, "the temporary access code is wrong, used or expired")}
	}
	at.a.TempCode = nil
	at.accountChanged = true
	return nil, nil
}

// proofFailed is a proof that failed before reaching the store (a wrong
// PIN on the key, an assertion that does not verify): it still goes
// through the pipeline, to be counted and audited like any other.
type proofFailed struct {
	err    *Error
	device string
	detail string
}

func (proofFailed) action() string { return ActAuthenticate }
func (proofFailed) source() string { return SourceDevice }

func (p proofFailed) verify(*attempt) (*Device, error) {
	return nil, &refused{err: p.err, device: p.device, detail: p.detail}
}

// refuseProof counts a proof that failed outside the store; it answers the
// pipeline's refusal (the gate's, or err).
func (s *Service) refuseProof(ctx context.Context, actor Actor, account string, p proofFailed) error {
	_, err := s.signIn(ctx, actor, account, p)
	if err == nil {
		err = p.err
	}
	return err
}
