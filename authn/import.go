package authn

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mfad/mfad/authn/totp"
)

// ActDeviceImport is the audit action of a device brought over from
// another tool (google-authenticator's file, an otpauth:// URI).
const ActDeviceImport = "device.import"

// OTPImport is an OTP secret a user already has in an authenticator,
// brought over as an active device: the user goes on using the same app
// or token, with no activation.
type OTPImport struct {
	Label  string
	Secret string // base32, as the tools write it
	HOTP   bool
	// Algorithm, Digits and Period (seconds, TOTP): zero for the defaults.
	Algorithm string
	Digits    int
	Period    int
	// Counter (HOTP) is the next counter the token will use.
	Counter uint64
	// UsedSteps (TOTP) are time steps whose codes were already used (the
	// tool's replay list): nothing at or below the highest is accepted.
	UsedSteps []uint64
	// Source names the tool, for the audit log.
	Source string
	// DryRun checks everything and writes nothing.
	DryRun bool
}

// errDryRun ends a dry run's transaction without committing it.
var errDryRun = errors.New("authn: dry run")

// ImportOTP adds an active TOTP or HOTP device with a secret the account's
// user already holds (admins only, by the route). It refuses a secret the
// account already has on another device, and a ninth device.
func (s *Service) ImportOTP(ctx context.Context, actor Actor, account string, req OTPImport) (*Device, error) {
	if len(req.Label) > 64 {
		return nil, Errorf(ClassInvalid, CodeInvalidRequest, "label is longer than 64 characters")
	}
	secret, err := totp.DecodeSecret(req.Secret)
	if err != nil {
		return nil, Errorf(ClassInvalid, CodeInvalidRequest, "secret: %v", err)
	}
	p, err := ParseOTPParams(req.Algorithm, req.Digits, req.Period)
	if err != nil {
		return nil, err
	}
	params := totp.DefaultParams
	if p != nil {
		params = *p
	}
	check := totp.Key{Type: totp.TOTP, Secret: secret, Params: params}
	if req.HOTP {
		check.Type, check.Period = totp.HOTP, 0
	}
	if err := check.Validate(); err != nil {
		return nil, Errorf(ClassInvalid, CodeInvalidRequest, "%v", err)
	}
	if req.HOTP && len(req.UsedSteps) > 0 {
		return nil, Errorf(ClassInvalid, CodeInvalidRequest, "used steps apply to TOTP devices")
	}
	if !req.HOTP && req.Counter != 0 {
		return nil, Errorf(ClassInvalid, CodeInvalidRequest, "a counter applies to HOTP devices")
	}
	var out *Device
	err = s.write(ctx, actor, func(c *change) error {
		out = nil
		a, err := c.Account(account)
		if errors.Is(err, ErrNotFound) {
			return Errorf(ClassNotFound, CodeNotFound, "no account %s: create it first (mfactl account create %s)", account, account)
		}
		if err != nil {
			return err
		}
		devs, err := c.Devices(account)
		if err != nil {
			return err
		}
		for _, d := range devs {
			if len(d.Secret) > 0 && subtle.ConstantTimeCompare(d.Secret, secret) == 1 {
				return Errorf(ClassConflict, CodeDeviceStateConflict, "%s already has this secret (device %s): nothing to import", account, d.ID)
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
		d := &Device{ID: newID(), Account: account, Type: DeviceTOTP, State: StateActive, Label: req.Label,
			CreatedAt: c.now, ActivatedAt: c.now, Secret: secret,
			OTP: &OTPState{Algorithm: params.Algorithm.String(), Digits: params.Digits, Period: int(params.Period / time.Second)}}
		detail := "type=totp"
		if req.HOTP {
			d.OTP.Event, d.OTP.Period = true, 0
			d.OTP.LastCounter = req.Counter
			detail = fmt.Sprintf("type=hotp counter=%d", req.Counter)
		} else if len(req.UsedSteps) > 0 {
			d.OTP.LastCounter, d.OTP.Used = slices.Max(req.UsedSteps), true
			detail += fmt.Sprintf(" used_steps=%d", len(req.UsedSteps))
		}
		if req.Source != "" {
			detail += " from=" + req.Source
		}
		if req.DryRun {
			out = d
			return errDryRun
		}
		a.EverEnrolled = true
		if err := c.putAccountIf(true, a); err != nil {
			return err
		}
		if err := c.PutDevice(d); err != nil {
			return err
		}
		out = d
		return c.audit(AuditEvent{Action: ActDeviceImport, Account: account, Device: d.ID, Detail: detail})
	})
	if err != nil && !errors.Is(err, errDryRun) {
		return nil, err
	}
	dev := *out
	dev.Secret = nil
	return &dev, nil
}
