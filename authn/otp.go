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
func (s *Service) countDevices(c *change, account string) (slots, active int, err error) {
	devs, err := c.Devices(account)
	if err != nil {
		return 0, 0, err
	}
	for _, d := range devs {
		if d.State == StatePending && !d.ExpiresAt.IsZero() && c.now.After(d.ExpiresAt) {
			if err := c.dropPending(&d, "enrollment expired"); err != nil {
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
func (c *change) dropPending(d *Device, why string) error {
	if err := c.DeleteDevice(d.Account, d.ID); err != nil {
		return err
	}
	if d.Serial != "" {
		if tok, err := c.Token(d.Serial); err == nil && tok.DeviceID == d.ID {
			tok.AssignedTo, tok.DeviceID = "", ""
			if err := c.PutToken(tok); err != nil {
				return err
			}
		}
	}
	return c.audit(AuditEvent{Action: ActDeviceExpire, Account: d.Account, Device: d.ID, Detail: why})
}

// authorizeChange decides whether actor may change account's devices:
// admins always; the account's own user while it never had a device
// (bootstrap), and otherwise only with a step-up token bound to their uid
// and this account. It creates the account (as a member) on a first
// enrollment when create is set, and returns it.
func (s *Service) authorizeChange(c *change, name string, create bool) (*Account, error) {
	a, err := c.Account(name)
	if errors.Is(err, ErrNotFound) && create {
		if err := ValidateName(name); err != nil {
			return nil, err
		}
		a = &Account{Name: name, Kind: KindMember, CreatedAt: c.now, UpdatedAt: c.now}
		if err := c.PutAccount(a); err != nil {
			return nil, err
		}
		if err := c.audit(AuditEvent{Action: ActAccountCreate, Account: name, Detail: "kind=member (first enrollment)"}); err != nil {
			return nil, err
		}
		return a, nil
	}
	if err != nil {
		return nil, err
	}
	devs, err := c.Devices(name)
	if err != nil {
		return nil, err
	}
	return a, s.mayChange(c.actor, a, devs, c.now)
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
	if a.HasFlag(FlagDisabled) {
		return errDisabled(a.Name)
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
	err := s.write(ctx, actor, func(c *change) error {
		out = nil
		if _, err := s.authorizeChange(c, account, replaceID == ""); err != nil {
			return err
		}
		if replaceID != "" {
			if err := c.removeForReplace(account, replaceID, string(req.Type)); err != nil {
				return err
			}
		}
		slots, _, err := s.countDevices(c, account)
		if err != nil {
			return err
		}
		if slots >= MaxDevices {
			return Errorf(ClassConflict, CodeDeviceLimitReached,
				"%s already has %d devices (the limit, counting pending and deactivated ones); delete or replace one first", account, MaxDevices)
		}
		d := &Device{ID: newID(), Account: account, Type: req.Type, State: StatePending, Label: req.Label,
			CreatedAt: c.now, ExpiresAt: c.now.Add(s.policy.PendingTTL)}
		if key != nil {
			d.Secret = key.Secret
			d.OTP = &OTPState{Algorithm: key.Algorithm.String(), Digits: key.Digits, Period: int(key.Period / time.Second)}
		} else {
			tok, err := c.Token(req.Serial)
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
			if err := c.PutToken(tok); err != nil {
				return err
			}
			otp := tok.OTP
			d.Serial, d.Secret, d.OTP = tok.Serial, tok.Secret, &otp
		}
		if err := c.PutDevice(d); err != nil {
			return err
		}
		out = &Enrollment{Device: *d}
		return c.audit(AuditEvent{Action: ActDeviceEnroll, Account: account, Device: d.ID, Detail: "type=" + string(d.Type) + serialDetail(d.Serial)})
	})
	if err != nil {
		return nil, err
	}
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
	var out *Device
	action := ActDeviceResync
	if activate {
		action = ActDeviceActivate
	}
	err := s.write(ctx, actor, func(c *change) error {
		out = nil
		a, err := c.Account(account)
		if err != nil {
			return err
		}
		if a.HasFlag(FlagDisabled) && !actor.Admin {
			return errDisabled(a.Name)
		}
		if err := s.gate(c, a, action); err != nil || c.refusal != nil {
			return err
		}
		d, err := c.Device(account, id)
		if err != nil {
			return err
		}
		if d.Type == DeviceFIDO {
			return Errorf(ClassInvalid, CodeResyncNotApplicable, "security keys do not drift: there is nothing to resync (AWS: FIDO security keys never go out of sync)")
		}
		switch {
		case activate && d.State != StatePending:
			return Errorf(ClassConflict, CodeDeviceNotPending, "device %s is %s, not pending", id, d.State)
		case activate && c.now.After(d.ExpiresAt):
			c.refuse(Errorf(ClassConflict, CodeDeviceExpired, "the enrollment of %s expired; start a new one", id))
			return c.dropPending(d, "enrollment expired")
		case !activate && d.State != StateActive:
			return Errorf(ClassConflict, CodeDeviceStateConflict, "device %s is %s; only active devices resync", id, d.State)
		}
		if wait := s.resyncWait(d, c.now); !activate && wait > 0 {
			e := Errorf(ClassTooMany, CodeRetryLater, "device %s used its %d resync attempts this hour", id, s.policy.ResyncBudget)
			e.RetryAfter = wait
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
		step := totp.StepAt(c.now, key.Period)
		win := s.resyncWindow(d, key, c.now)
		if activate && !d.OTP.Event {
			win = totp.Window{Center: step, Behind: s.policy.ActivationWindow, Ahead: s.policy.ActivationWindow, Min: minCounter(d.OTP)}
		}
		counter2, ok := key.FindConsecutive(c1, c2, win)
		if !ok {
			ev := AuditEvent{Action: action, Device: id, Detail: "codes not found"}
			refusal := Errorf(ClassForbidden, CodeInvalidCode, "the two codes were not found as consecutive codes of device %s", id)
			if activate && !d.OTP.Event {
				// Two consecutive codes are no oracle (a random pair
				// matches with odds near 2·10⁻⁹): say how far off the
				// device's clock is, so that the user can set it.
				wide := totp.Window{Center: step, Behind: s.policy.ResyncWindow, Ahead: s.policy.ResyncWindow}
				if found, ok := key.FindConsecutive(c1, c2, wide); ok {
					drift := totp.Drift(found, step)
					refusal = Errorf(ClassForbidden, CodeClockOff, "the device's clock is off by %d s (%d steps), more than activation allows (±%d steps); set its clock, or activate and then resync",
						drift*int64(d.OTP.Period), drift, s.policy.ActivationWindow)
					refusal.Extra = map[string]any{"drift_steps": drift, "drift_seconds": drift * int64(d.OTP.Period)}
					ev.Detail = fmt.Sprintf("device clock off by %d steps", drift)
				}
			}
			if !activate {
				s.spendResync(d, c.now)
				if err := c.PutDevice(d); err != nil {
					return err
				}
			}
			c.refuse(refusal)
			return c.fail(a, ev)
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
			d.State, d.ActivatedAt, d.ExpiresAt = StateActive, c.now, time.Time{}
			a.EverEnrolled = true
			a.TempCode = nil // a new device ends the temporary code's use
		}
		a.FailedAttempts, a.LastFailureAt = 0, time.Time{}
		if err := c.putAccountIf(true, a); err != nil {
			return err
		}
		if err := c.PutDevice(d); err != nil {
			return err
		}
		out = d
		return c.audit(ev)
	})
	if err != nil {
		return nil, err
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
	err = s.write(ctx, actor, func(c *change) error {
		out = nil
		serials := make([]string, 0, len(parsed))
		for _, p := range parsed {
			if _, err := c.Token(p.Serial); err == nil {
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
			if err := c.PutToken(&tok); err != nil {
				return err
			}
			tok.Secret = nil
			out = append(out, tok)
			serials = append(serials, p.Serial)
		}
		return c.audit(AuditEvent{Action: ActTokenImport, Detail: fmt.Sprintf("%d tokens: %s", len(serials), strings.Join(serials, " "))})
	})
	if err != nil {
		return nil, err
	}
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
