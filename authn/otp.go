package authn

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mfad/mfad/authn/totp"
)

// Audit actions of OTP devices.
const (
	ActDeviceEnroll   = "device.enroll"
	ActDeviceActivate = "device.activate"
	ActDeviceResync   = "device.resync"
	ActDeviceExpire   = "device.expire"
	ActAuthenticate   = "authenticate"
	ActTokenImport    = "token.import"
)

// EnrollRequest begins an enrollment.
type EnrollRequest struct {
	Type   DeviceType
	Label  string
	Serial string       // hardware-otp: the inventory token to assign
	Params *totp.Params // totp: optional, default SHA-1, 6 digits, 30 s
}

// Enrollment is the answer to a new enrollment. Secret, URI and QR are
// shown once, here, and never again.
type Enrollment struct {
	Device Device
	Secret []byte
	URI    string
	QRPNG  []byte
}

func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// countDevices returns how many devices hold a slot (every state) and how
// many are active, dropping expired pending enrollments from t.
func (s *Service) countDevices(t Tx, actor Actor, account string, now time.Time) (slots, active int, err error) {
	devs, err := t.Devices(account)
	if err != nil {
		return 0, 0, err
	}
	for _, d := range devs {
		if d.State == StatePending && !d.ExpiresAt.IsZero() && now.After(d.ExpiresAt) {
			if err := s.dropPending(t, actor, &d, "enrollment expired"); err != nil {
				return 0, 0, err
			}
			continue
		}
		slots++
		if d.State == StateActive {
			active++
		}
	}
	return slots, active, nil
}

// dropPending deletes a pending device and frees its hardware token.
func (s *Service) dropPending(t Tx, actor Actor, d *Device, why string) error {
	if err := t.DeleteDevice(d.Account, d.ID); err != nil {
		return err
	}
	if d.Serial != "" {
		if tok, err := t.Token(d.Serial); err == nil && tok.DeviceID == d.ID {
			tok.AssignedTo, tok.DeviceID = "", ""
			if err := t.PutToken(tok); err != nil {
				return err
			}
		}
	}
	return s.audit(t, actor, AuditEvent{Action: ActDeviceExpire, Account: d.Account, Device: d.ID, Detail: why})
}

// authorizeChange decides whether actor may change account's devices:
// admins always; the account's own user while it never had a device
// (bootstrap), and otherwise only with a step-up token bound to their uid
// and this account. It creates the account (as a member) on a first
// enrollment when create is set, and returns it.
func (s *Service) authorizeChange(t Tx, actor Actor, name string, now time.Time, create bool) (*Account, error) {
	a, err := t.Account(name)
	if errors.Is(err, ErrNotFound) && create {
		if err := ValidateName(name); err != nil {
			return nil, err
		}
		a = &Account{Name: name, Kind: KindMember, CreatedAt: now, UpdatedAt: now}
		if err := t.PutAccount(a); err != nil {
			return nil, err
		}
		if err := s.audit(t, actor, AuditEvent{Action: ActAccountCreate, Account: name, Detail: "kind=member (first enrollment)"}); err != nil {
			return nil, err
		}
		return a, nil
	}
	if err != nil {
		return nil, err
	}
	devs, err := t.Devices(name)
	if err != nil {
		return nil, err
	}
	return a, s.mayChange(actor, a, devs, now)
}

// checkChange is authorizeChange without writing: for long operations
// (a touch) that must be refused before they start.
func (s *Service) checkChange(t Tx, actor Actor, name string, now time.Time) error {
	a, err := t.Account(name)
	if errors.Is(err, ErrNotFound) {
		return ValidateName(name)
	}
	if err != nil {
		return err
	}
	devs, err := t.Devices(name)
	if err != nil {
		return err
	}
	return s.mayChange(actor, a, devs, now)
}

func (s *Service) mayChange(actor Actor, a *Account, devs []Device, now time.Time) error {
	if actor.Admin {
		return nil
	}
	source, stepped := s.stepUps.lookup(actor.StepUp, actor.UID, a.Name, now)
	active := 0
	for _, d := range devs {
		if d.State == StateActive {
			active++
		}
	}
	switch {
	case active > 0 && !stepped:
		return Errorf(ClassForbidden, CodeStepUpRequired,
			"%s has an active device: sign in with it first (POST /v1/authenticate) and send the step_up_token as Authorization: Bearer", a.Name)
	case active == 0 && a.EverEnrolled && !(stepped && (source == SourceTemporaryCode || source == SourceRecovery)):
		// Recovery pending: a session alone, or a step-up earned with a
		// device since lost, is not enough.
		return Errorf(ClassForbidden, CodeRecoveryPending,
			"%s has no active device left: enrolling again needs a temporary access code from an admin (members) or the e-mail and phone recovery (owners)", a.Name)
	}
	return nil
}

// Enroll begins an OTP enrollment: a virtual TOTP device with a new secret,
// or a hardware token assigned from the inventory. The device is pending
// until activated with two consecutive codes.
func (s *Service) Enroll(ctx context.Context, actor Actor, account string, req EnrollRequest) (*Enrollment, error) {
	return s.enroll(ctx, actor, account, req, "")
}

// enroll begins an OTP enrollment, first deleting the device replaceID
// (when set) in the same transaction.
func (s *Service) enroll(ctx context.Context, actor Actor, account string, req EnrollRequest, replaceID string) (*Enrollment, error) {
	if len(req.Label) > 64 {
		return nil, Errorf(ClassInvalid, CodeInvalidRequest, "label is longer than 64 characters")
	}
	now := s.now().UTC()
	var out *Enrollment
	var key *totp.Key
	var uri string
	switch req.Type {
	case DeviceTOTP:
		p := totp.DefaultParams
		if req.Params != nil {
			p = *req.Params
		}
		var err error
		key, uri, err = totp.Generate(s.policy.Issuer, account, p, rand.Reader)
		if err != nil {
			return nil, Errorf(ClassInvalid, CodeInvalidRequest, "%v", err)
		}
	case DeviceHardwareOTP:
		if req.Serial == "" {
			return nil, Errorf(ClassInvalid, CodeInvalidRequest, "a hardware-otp device needs the token's serial")
		}
	case DeviceFIDO:
		return nil, Errorf(ClassInvalid, CodeUnsupportedType, "security keys are enrolled through the FIDO routes")
	default:
		return nil, Errorf(ClassInvalid, CodeUnsupportedType, "device type must be totp or hardware-otp")
	}
	var ev AuditEvent
	var replaced []AuditEvent
	err := s.store.Update(ctx, func(t Tx) error {
		out, replaced = nil, nil
		if _, err := s.authorizeChange(t, actor, account, now, replaceID == ""); err != nil {
			return err
		}
		if replaceID != "" {
			evs, err := s.removeForReplace(t, actor, account, replaceID, string(req.Type))
			if err != nil {
				return err
			}
			replaced = evs
		}
		slots, _, err := s.countDevices(t, actor, account, now)
		if err != nil {
			return err
		}
		if slots >= MaxDevices {
			return Errorf(ClassConflict, CodeDeviceLimitReached,
				"%s already has %d devices (the limit, counting pending and deactivated ones); delete or replace one first", account, MaxDevices)
		}
		d := &Device{ID: newID(), Account: account, Type: req.Type, State: StatePending, Label: req.Label,
			CreatedAt: now, ExpiresAt: now.Add(s.policy.PendingTTL)}
		if key != nil {
			d.Secret = key.Secret
			d.OTP = &OTPState{Algorithm: key.Algorithm.String(), Digits: key.Digits, Period: int(key.Period / time.Second)}
		} else {
			tok, err := t.Token(req.Serial)
			if errors.Is(err, ErrNotFound) {
				return Errorf(ClassNotFound, CodeTokenNotInInventory, "no token with serial %q in the inventory (import its seed file first)", req.Serial)
			}
			if err != nil {
				return err
			}
			if tok.Retired {
				return Errorf(ClassConflict, CodeTokenAssigned, "token %s was retired (reported lost or its account deleted)", tok.Serial)
			}
			if tok.AssignedTo != "" {
				return Errorf(ClassConflict, CodeTokenAssigned, "token %s is already assigned", tok.Serial)
			}
			tok.AssignedTo, tok.DeviceID = account, d.ID
			if err := t.PutToken(tok); err != nil {
				return err
			}
			otp := tok.OTP
			d.Serial, d.Secret, d.OTP = tok.Serial, tok.Secret, &otp
		}
		if err := t.PutDevice(d); err != nil {
			return err
		}
		ev = AuditEvent{Action: ActDeviceEnroll, Account: account, Device: d.ID, Detail: "type=" + string(d.Type) + serialDetail(d.Serial)}
		if err := s.audit(t, actor, ev); err != nil {
			return err
		}
		out = &Enrollment{Device: *d}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, e := range replaced {
		s.logAudit(e)
	}
	s.logAudit(ev)
	if key != nil {
		out.Secret, out.URI = key.Secret, uri
		if png, err := totp.QRPNG(uri, 256); err == nil {
			out.QRPNG = png
		}
	}
	out.Device.Secret = nil
	return out, nil
}

func serialDetail(serial string) string {
	if serial == "" {
		return ""
	}
	return " serial=" + serial
}

// otpKey rebuilds the totp.Key of a device.
func otpKey(d *Device) (*totp.Key, error) {
	if d.OTP == nil || len(d.Secret) == 0 {
		return nil, fmt.Errorf("authn: device %s has no OTP state", d.ID)
	}
	alg, err := totp.ParseAlgorithm(d.OTP.Algorithm)
	if err != nil {
		return nil, err
	}
	k := &totp.Key{Type: totp.TOTP, Secret: d.Secret, Params: totp.Params{Algorithm: alg, Digits: d.OTP.Digits, Period: time.Duration(d.OTP.Period) * time.Second}}
	if d.OTP.Event {
		k.Type = totp.HOTP
		k.Period = 30 * time.Second // unused by HOTP, keeps Params valid
	}
	return k, nil
}

// minCounter is the lowest counter the device may still accept.
func minCounter(o *OTPState) uint64 {
	if o.Used {
		return o.LastCounter + 1
	}
	return o.LastCounter
}

// driftDetail tells how far a device's clock was found from the host's.
func driftDetail(steps int64, period int) map[string]any {
	return map[string]any{"drift_steps": steps, "drift_seconds": steps * int64(period)}
}

// CodePair is two consecutive codes: Code1 the earlier, Code2 the one the
// device shows now.
type CodePair struct{ Code1, Code2 string }

// Activate turns a pending OTP device active with two consecutive codes.
func (s *Service) Activate(ctx context.Context, actor Actor, account, id string, codes CodePair) (*Device, error) {
	return s.syncDevice(ctx, actor, account, id, codes, true)
}

// Resync finds two consecutive codes of an active OTP device in the wide
// window and stores the drift they show (seed point 1).
func (s *Service) Resync(ctx context.Context, actor Actor, account, id string, codes CodePair) (*Device, error) {
	return s.syncDevice(ctx, actor, account, id, codes, false)
}

func (s *Service) syncDevice(ctx context.Context, actor Actor, account, id string, codes CodePair, activate bool) (*Device, error) {
	now := s.now().UTC()
	var out *Device
	var refusal error
	var events []AuditEvent
	action := ActDeviceResync
	if activate {
		action = ActDeviceActivate
	}
	err := s.store.Update(ctx, func(t Tx) error {
		out, refusal, events = nil, nil, nil
		a, err := t.Account(account)
		if err != nil {
			return err
		}
		if resetExpiredLock(a, now) {
			if err := t.PutAccount(a); err != nil {
				return err
			}
		}
		if err := s.throttle(a, now); err != nil {
			return err
		}
		d, err := t.Device(account, id)
		if err != nil {
			return err
		}
		if d.Type == DeviceFIDO {
			return Errorf(ClassInvalid, CodeResyncNotApplicable, "security keys do not drift: there is nothing to resync (AWS: FIDO security keys never go out of sync)")
		}
		switch {
		case activate && d.State != StatePending:
			return Errorf(ClassConflict, CodeDeviceNotPending, "device %s is %s, not pending", id, d.State)
		case activate && now.After(d.ExpiresAt):
			if err := s.dropPending(t, actor, d, "enrollment expired"); err != nil {
				return err
			}
			refusal = Errorf(ClassConflict, CodeDeviceExpired, "the enrollment of %s expired; start a new one", id)
			return nil
		case !activate && d.State != StateActive:
			return Errorf(ClassConflict, CodeDeviceStateConflict, "device %s is %s; only active devices resync", id, d.State)
		}
		if !activate && d.ResyncFailures >= s.policy.ResyncBudget && now.Sub(d.ResyncWindowStart) < time.Hour {
			e := Errorf(ClassTooMany, CodeRetryLater, "device %s used its %d resync attempts this hour", id, s.policy.ResyncBudget)
			e.RetryAfter = d.ResyncWindowStart.Add(time.Hour).Sub(now)
			return e
		}
		key, err := otpKey(d)
		if err != nil {
			return err
		}
		c1, ok1 := totp.NormalizeCode(codes.Code1, key.Digits)
		c2, ok2 := totp.NormalizeCode(codes.Code2, key.Digits)
		if !ok1 || !ok2 {
			return Errorf(ClassInvalid, CodeInvalidRequest, "codes must be %d digits each", key.Digits)
		}
		step := totp.StepAt(now, key.Period)
		var win totp.Window
		switch {
		case d.OTP.Event:
			win = totp.Forward(minCounter(d.OTP), s.policy.HOTPResyncWindow)
		case activate:
			win = totp.Window{Center: step, Behind: s.policy.ActivationWindow, Ahead: s.policy.ActivationWindow, Min: minCounter(d.OTP)}
		default:
			win = totp.Window{Center: step, Behind: s.policy.ResyncWindow, Ahead: s.policy.ResyncWindow, Min: minCounter(d.OTP)}
		}
		counter2, ok := key.FindConsecutive(c1, c2, win)
		if !ok {
			ev := AuditEvent{Action: action, Device: id, Detail: "codes not found"}
			refusal = Errorf(ClassForbidden, CodeInvalidCode, "the two codes were not found as consecutive codes of device %s", id)
			if activate && !d.OTP.Event {
				wide := totp.Window{Center: step, Behind: s.policy.ResyncWindow, Ahead: s.policy.ResyncWindow}
				if c, found := key.FindConsecutive(c1, c2, wide); found {
					drift := totp.Drift(c, step)
					e := Errorf(ClassForbidden, CodeClockOff, "the device's clock is off by %d s (%d steps), more than activation allows (±%d steps); set its clock, or activate and then resync",
						drift*int64(d.OTP.Period), drift, s.policy.ActivationWindow)
					e.Extra = driftDetail(drift, d.OTP.Period)
					refusal = e
					ev.Detail = fmt.Sprintf("device clock off by %d steps", drift)
				}
			}
			if !activate {
				if now.Sub(d.ResyncWindowStart) >= time.Hour {
					d.ResyncWindowStart, d.ResyncFailures = now, 0
				}
				d.ResyncFailures++
				if err := t.PutDevice(d); err != nil {
					return err
				}
			}
			err := s.fail(t, actor, a, now, &ev)
			events = append(events, ev)
			return err
		}
		d.OTP.LastCounter, d.OTP.Used = counter2, true
		if !d.OTP.Event {
			d.OTP.Drift = totp.Drift(counter2, step)
		}
		d.ResyncFailures = 0
		ev := AuditEvent{Action: action, Account: account, Device: id}
		if !d.OTP.Event {
			ev.Detail = fmt.Sprintf("drift %d steps", d.OTP.Drift)
		}
		if activate {
			d.State, d.ActivatedAt, d.ExpiresAt = StateActive, now, time.Time{}
			a.EverEnrolled = true
			a.TempCode = nil // a new device ends the temporary code's use
		}
		a.FailedAttempts, a.LastFailureAt = 0, time.Time{}
		a.UpdatedAt = now
		if err := t.PutAccount(a); err != nil {
			return err
		}
		if err := t.PutDevice(d); err != nil {
			return err
		}
		events = append(events, ev)
		out = d
		return s.audit(t, actor, ev)
	})
	if err != nil {
		return nil, err
	}
	for _, ev := range events {
		s.logAudit(ev)
	}
	if refusal != nil {
		return nil, refusal
	}
	out.Secret = nil
	return out, nil
}

// Devices lists an account's devices (without secrets). Expired pending
// enrollments are not shown.
func (s *Service) Devices(account string) ([]Device, error) {
	var out []Device
	now := s.now()
	err := s.store.View(func(t Tx) error {
		if _, err := t.Account(account); err != nil {
			return err
		}
		devs, err := t.Devices(account)
		for _, d := range devs {
			if d.State == StatePending && now.After(d.ExpiresAt) {
				continue
			}
			d.Secret = nil
			out = append(out, d)
		}
		return err
	})
	return out, err
}

// Device returns one device without its secret.
func (s *Service) Device(account, id string) (*Device, error) {
	var out *Device
	err := s.store.View(func(t Tx) error {
		d, err := t.Device(account, id)
		if err == nil {
			d.Secret = nil
			out = d
		}
		return err
	})
	return out, err
}

// AuthRequest is one sign-in attempt.
type AuthRequest struct {
	Account string
	Code    string
}

// AuthResult is a successful sign-in.
type AuthResult struct {
	// Method is how the sign-in was proven: device, temporary_code, recovery.
	Method string
	// ActiveDevices counts the account's active devices at sign-in (for
	// the single-device warning); -1 when not counted.
	ActiveDevices int
	Device        Device
	StepUpToken   string
	StepUpExpiry  time.Time
}

// Authenticate verifies a code against the account's active OTP devices
// (or an admin's temporary access code). The code is matched outside the
// write transaction, so that the single writer only stores the outcome;
// the accepted counter and drift are stored in the transaction that
// accepts the code, after checking that no concurrent sign-in moved the
// device's counter meanwhile. Nothing at or below it is accepted again.
func (s *Service) Authenticate(ctx context.Context, actor Actor, req AuthRequest) (*AuthResult, error) {
	if _, ok := looksLikeTempCode(req.Code); ok {
		return s.authenticateTempCode(ctx, actor, req)
	}
	for attempt := 0; ; attempt++ {
		res, raced, err := s.authenticateOTP(ctx, actor, req)
		if !raced || attempt == 3 {
			return res, err
		}
	}
}

// otpPlan is what matching a code outside the write transaction found.
type otpPlan struct {
	clean     bool    // the account had no failed attempts and no lock when read
	matched   *Device // with its new counter and drift
	snapshot  OTPState
	outOfSync *Device
	outDrift  int64
	active    int
}

// matchOTP reads the account and its OTP devices in one read transaction
// and matches the code; throttled says the account must wait (the error).
func (s *Service) matchOTP(req AuthRequest, now time.Time) (p *otpPlan, throttled bool, err error) {
	p = &otpPlan{}
	err = s.store.View(func(t Tx) error {
		a, err := t.Account(req.Account)
		if err != nil {
			return err
		}
		if a.HasFlag(FlagDisabled) {
			return Errorf(ClassForbidden, CodePermissionDenied, "account %s is disabled", a.Name)
		}
		resetExpiredLock(a, now)
		if err := s.throttle(a, now); err != nil {
			throttled = true
			return err
		}
		p.clean = a.FailedAttempts == 0 && a.LockedUntil.IsZero()
		devs, err := t.Devices(req.Account)
		if err != nil {
			return err
		}
		var otps []*Device
		for i := range devs {
			if d := &devs[i]; d.State == StateActive {
				p.active++
				if d.OTP != nil {
					otps = append(otps, d)
				}
			}
		}
		if len(otps) == 0 {
			return Errorf(ClassConflict, CodeNoActiveDevice, "%s has no active OTP device", req.Account)
		}
		for _, d := range otps {
			key, err := otpKey(d)
			if err != nil {
				return err
			}
			code, ok := totp.NormalizeCode(req.Code, key.Digits)
			if !ok {
				continue
			}
			snap := *d.OTP
			if d.OTP.Event {
				if c, ok := key.Match(code, totp.Forward(minCounter(d.OTP), s.policy.HOTPLookAhead)); ok {
					d.OTP.LastCounter, d.OTP.Used = c, true
					p.matched, p.snapshot = d, snap
					return nil
				}
				continue
			}
			step := totp.StepAt(now, key.Period)
			center := totp.Center(step, d.OTP.Drift)
			if c, ok := key.Match(code, totp.Window{Center: center, Behind: s.policy.VerifyWindow, Ahead: s.policy.VerifyWindow, Min: minCounter(d.OTP)}); ok {
				d.OTP.LastCounter, d.OTP.Used = c, true
				d.OTP.Drift = totp.Drift(c, step)
				p.matched, p.snapshot = d, snap
				return nil
			}
			if p.outOfSync == nil {
				wide := totp.Window{Center: center, Behind: s.policy.ResyncWindow, Ahead: s.policy.ResyncWindow, Min: minCounter(d.OTP)}
				if c, ok := key.Match(code, wide); ok {
					p.outOfSync, p.outDrift = d, totp.Drift(c, step)
				}
			}
		}
		return nil
	})
	return p, throttled, err
}

// authenticateOTP is one attempt; raced says a concurrent sign-in moved the
// matched device's counter first, and the caller should try again.
func (s *Service) authenticateOTP(ctx context.Context, actor Actor, req AuthRequest) (*AuthResult, bool, error) {
	now := s.now().UTC()
	plan, throttled, err := s.matchOTP(req, now)
	if throttled {
		// Refusals while throttled are audited too, and cost nothing more.
		s.RecordAudit(ctx, actor, AuditEvent{Action: ActAuthenticate, Account: req.Account, Outcome: "fail", Detail: AsError(err).Code})
	}
	if err != nil {
		return nil, false, err
	}
	var refusal error
	var events []AuditEvent
	raced := false
	err = s.store.Update(ctx, func(t Tx) error {
		refusal, events, raced = nil, nil, false
		// A success on an account that had no failures when read does not
		// need the account (the common case: one record less to decode).
		var a *Account
		lockReset := false
		if plan.matched == nil || !plan.clean {
			var err error
			if a, err = t.Account(req.Account); err != nil {
				return err
			}
			lockReset = resetExpiredLock(a, now)
			if err := s.throttle(a, now); err != nil {
				refusal = err
				return nil
			}
		}
		if plan.matched == nil {
			ev := AuditEvent{Action: ActAuthenticate, Detail: "invalid code"}
			refusal = Errorf(ClassForbidden, CodeInvalidCode, "the code matches no active device of %s", req.Account)
			if d := plan.outOfSync; d != nil {
				ev.Device, ev.Detail = d.ID, fmt.Sprintf("device out of sync by %d steps", plan.outDrift)
				e := Errorf(ClassForbidden, CodeDeviceOutOfSync,
					"the code belongs to device %s, whose clock is %d s off: resync it with two consecutive codes", d.ID, plan.outDrift*int64(d.OTP.Period))
				e.Extra = driftDetail(plan.outDrift, d.OTP.Period)
				e.Extra["device"] = d.ID
				refusal = e
			}
			err := s.fail(t, actor, a, now, &ev)
			events = append(events, ev)
			return err
		}
		cur, err := t.Device(req.Account, plan.matched.ID)
		if err != nil {
			return err
		}
		if cur.State != StateActive || cur.OTP == nil || *cur.OTP != plan.snapshot {
			raced = true // another sign-in (or a resync) moved it: match again
			return nil
		}
		cur.OTP.LastCounter, cur.OTP.Used, cur.OTP.Drift = plan.matched.OTP.LastCounter, true, plan.matched.OTP.Drift
		cur.LastUsedAt = now
		if err := t.PutDevice(cur); err != nil {
			return err
		}
		if a != nil && (a.FailedAttempts != 0 || lockReset) {
			a.FailedAttempts, a.LastFailureAt = 0, time.Time{}
			if err := t.PutAccount(a); err != nil {
				return err
			}
		}
		ev := AuditEvent{Action: ActAuthenticate, Account: req.Account, Device: cur.ID, Detail: "type=" + string(cur.Type)}
		events = append(events, ev)
		return s.audit(t, actor, ev)
	})
	if err != nil {
		return nil, false, err
	}
	for _, ev := range events {
		s.logAudit(ev)
	}
	if raced || refusal != nil {
		return nil, raced, refusal
	}
	d := plan.matched
	if !d.OTP.Event {
		s.clock.observe(d.ID, d.OTP.Drift, d.OTP.Period, now)
	}
	res := &AuthResult{Method: SourceDevice, Device: *d, ActiveDevices: plan.active}
	res.Device.Secret = nil
	res.Device.LastUsedAt = now
	res.StepUpToken, res.StepUpExpiry = s.stepUps.issue(actor.UID, req.Account, SourceDevice, now, s.policy.StepUpTTL)
	return res, false, nil
}

// authenticateTempCode signs in with an admin's temporary access code.
func (s *Service) authenticateTempCode(ctx context.Context, actor Actor, req AuthRequest) (*AuthResult, error) {
	tc, _ := looksLikeTempCode(req.Code)
	now := s.now().UTC()
	var refusal error
	var events []AuditEvent
	err := s.store.Update(ctx, func(t Tx) error {
		refusal, events = nil, nil
		a, err := t.Account(req.Account)
		if err != nil {
			return err
		}
		resetExpiredLock(a, now)
		if err := s.throttle(a, now); err != nil {
			refusal = err
			return nil
		}
		if !s.useTempCode(t, a, tc, now) {
			ev := AuditEvent{Action: ActTempCodeUsed, Detail: "temporary code refused"}
			refusal = Errorf(ClassForbidden, CodeInvalidCode, "the temporary access code is wrong, used or expired")
			err := s.fail(t, actor, a, now, &ev)
			events = append(events, ev)
			return err
		}
		a.FailedAttempts, a.LastFailureAt = 0, time.Time{}
		if err := t.PutAccount(a); err != nil {
			return err
		}
		ev := AuditEvent{Action: ActTempCodeUsed, Account: a.Name, Detail: "signed in with a temporary access code (now spent)"}
		events = append(events, ev)
		return s.audit(t, actor, ev)
	})
	if err != nil {
		return nil, err
	}
	for _, ev := range events {
		s.logAudit(ev)
	}
	if refusal != nil {
		return nil, refusal
	}
	res := &AuthResult{Method: SourceTemporaryCode, ActiveDevices: -1}
	res.StepUpToken, res.StepUpExpiry = s.stepUps.issue(actor.UID, req.Account, SourceTemporaryCode, now, s.policy.StepUpTTL)
	return res, nil
}

// ImportTokens adds the hardware tokens of a PSKC seed file to the
// inventory. The file is refused whole on any problem, or when a serial is
// already known.
func (s *Service) ImportTokens(ctx context.Context, actor Actor, pskc []byte, opts totp.PSKCOptions) ([]Token, error) {
	parsed, err := totp.ParsePSKC(strings.NewReader(string(pskc)), opts)
	if err != nil {
		return nil, &Error{Class: ClassInvalid, Code: CodeImportRefused, Detail: "seed file refused, nothing imported: " + err.Error()}
	}
	now := s.now().UTC()
	var out []Token
	var ev AuditEvent
	err = s.store.Update(ctx, func(t Tx) error {
		out = nil
		serials := make([]string, 0, len(parsed))
		for _, p := range parsed {
			if _, err := t.Token(p.Serial); err == nil {
				return Errorf(ClassConflict, CodeImportRefused, "token %s is already in the inventory; nothing imported", p.Serial)
			} else if !errors.Is(err, ErrNotFound) {
				return err
			}
			tok := Token{Serial: p.Serial, Manufacturer: p.Manufacturer, Model: p.Model, ImportedAt: now, Secret: p.Key.Secret,
				OTP: OTPState{Event: p.Key.Type == totp.HOTP, Algorithm: p.Key.Algorithm.String(), Digits: p.Key.Digits, Period: int(p.Key.Period / time.Second)}}
			if tok.OTP.Event {
				tok.OTP.Period = 0
				tok.OTP.LastCounter = p.Key.Counter
			} else {
				tok.OTP.Drift = p.Drift
			}
			if err := t.PutToken(&tok); err != nil {
				return err
			}
			tok.Secret = nil
			out = append(out, tok)
			serials = append(serials, p.Serial)
		}
		ev = AuditEvent{Action: ActTokenImport, Detail: fmt.Sprintf("%d tokens: %s", len(serials), strings.Join(serials, " "))}
		return s.audit(t, actor, ev)
	})
	if err != nil {
		return nil, err
	}
	s.logAudit(ev)
	return out, nil
}

// Tokens lists the hardware token inventory without secrets.
func (s *Service) Tokens() ([]Token, error) {
	var out []Token
	err := s.store.View(func(t Tx) error {
		toks, err := t.Tokens()
		for _, tok := range toks {
			tok.Secret = nil
			out = append(out, tok)
		}
		return err
	})
	return out, err
}
