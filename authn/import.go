package authn

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mfad/mfad/authn/totp"
	"github.com/mfad/mfad/hw/ctap2"
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
	// ScratchCodes (google-authenticator's emergency codes, 8 digits)
	// become single-use temporary codes of the account that do not expire.
	ScratchCodes []string
	// Source names the tool, for the audit log.
	Source string
	// DryRun checks everything and writes nothing.
	DryRun bool
}

// maxScratchCodes bounds the emergency codes an account may hold
// (google-authenticator makes 5, at most 10).
const maxScratchCodes = 10

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
	if len(req.ScratchCodes) > maxScratchCodes {
		return nil, Errorf(ClassInvalid, CodeInvalidRequest, "at most %d scratch codes", maxScratchCodes)
	}
	var scratch [][]byte
	for _, c := range req.ScratchCodes {
		if n := normalizeDigits(c); len(n) != 8 || len(c) != 8 {
			return nil, Errorf(ClassInvalid, CodeInvalidRequest, "a scratch code is 8 digits")
		}
		scratch = append(scratch, hashCode(c))
	}
	return s.addImported(ctx, actor, account, req.DryRun, scratch, func(d *Device) string {
		if len(d.Secret) > 0 && subtle.ConstantTimeCompare(d.Secret, secret) == 1 {
			return "this secret"
		}
		return ""
	}, func(now time.Time) (*Device, string) {
		d := &Device{ID: newID(), Account: account, Type: DeviceTOTP, State: StateActive, Label: req.Label,
			CreatedAt: now, ActivatedAt: now, Secret: secret,
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
		return d, detail
	})
}

// addImported writes the device build makes as an active device of
// account, in one change, with the scratch codes (hashed) that come with
// it: the account must exist, no device of it may be the same (dup names
// what they share), and a slot must be free. A dry run checks the same
// and writes nothing.
func (s *Service) addImported(ctx context.Context, actor Actor, account string, dryRun bool, scratch [][]byte,
	dup func(*Device) string, build func(now time.Time) (*Device, string)) (*Device, error) {
	var out *Device
	err := s.write(ctx, actor, func(c *change) error {
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
		for i := range devs {
			if what := dup(&devs[i]); what != "" {
				return Errorf(ClassConflict, CodeDeviceStateConflict, "%s already has %s (device %s): nothing to import", account, what, devs[i].ID)
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
		d, detail := build(c.now)
		out = d
		if dryRun {
			return errDryRun
		}
		a.EverEnrolled = true
		if len(scratch) > 0 {
			if len(a.ScratchCodes)+len(scratch) > maxScratchCodes {
				return Errorf(ClassConflict, CodeDeviceLimitReached, "%s would hold more than %d scratch codes", account, maxScratchCodes)
			}
			a.ScratchCodes = append(a.ScratchCodes, scratch...)
			detail += fmt.Sprintf(" scratch_codes=%d (single use, no expiry)", len(scratch))
		}
		if err := c.putAccountIf(true, a); err != nil {
			return err
		}
		if err := c.PutDevice(d); err != nil {
			return err
		}
		return c.audit(AuditEvent{Action: ActDeviceImport, Account: account, Device: d.ID, Detail: detail})
	})
	if err != nil && !errors.Is(err, errDryRun) {
		return nil, err
	}
	dev := *out
	dev.Secret = nil
	return &dev, nil
}

// FIDOImport is a security key credential registered by another tool
// (pam-u2f's u2f_keys): the same physical key signs in with mfad at once.
// There is no attestation to check: the device is marked imported.
type FIDOImport struct {
	Label        string
	CredentialID []byte
	// PublicKey is the raw key as pam-u2f keeps it: for ES256 the point
	// X||Y (64 bytes) or 0x04||X||Y (65), for EdDSA the 32-byte key.
	PublicKey []byte
	Alg       string // es256 or eddsa
	// Origin is the relying party the credential was made for; it must be
	// mfad's, or sign-in could never find the credential.
	Origin string
	Source string
	DryRun bool
}

// ImportFIDO adds an active security key device from a credential another
// tool registered (admins only, by the route).
func (s *Service) ImportFIDO(ctx context.Context, actor Actor, account string, req FIDOImport) (*Device, error) {
	if len(req.Label) > 64 {
		return nil, Errorf(ClassInvalid, CodeInvalidRequest, "label is longer than 64 characters")
	}
	if len(req.CredentialID) == 0 || len(req.CredentialID) > 1024 {
		return nil, Errorf(ClassInvalid, CodeInvalidRequest, "credential id must be 1 to 1024 bytes")
	}
	if req.Origin != s.fido.RPID {
		return nil, Errorf(ClassInvalid, CodeInvalidRequest,
			"the credential was made for %q, and mfad's relying party is %q: it could never sign in here (set [fido] rp_id on a fresh store, or enroll the key again)", req.Origin, s.fido.RPID)
	}
	cose, alg, err := coseOf(req.PublicKey, req.Alg)
	if err != nil {
		return nil, Errorf(ClassInvalid, CodeInvalidRequest, "public key: %v", err)
	}
	return s.addImported(ctx, actor, account, req.DryRun, nil, func(d *Device) string {
		if d.FIDO != nil && subtle.ConstantTimeCompare(d.FIDO.CredentialID, req.CredentialID) == 1 {
			return "this credential"
		}
		return ""
	}, func(now time.Time) (*Device, string) {
		return &Device{ID: newID(), Account: account, Type: DeviceFIDO, State: StateActive, Label: req.Label,
			CreatedAt: now, ActivatedAt: now,
			FIDO: &FIDOState{CredentialID: req.CredentialID, PublicKey: cose, Alg: int64(alg),
				AAGUID: "00000000-0000-0000-0000-000000000000", Format: "none", AttestationType: "none",
				Verdict: "imported from " + req.Source + ": no attestation"}}, "type=fido imported (no attestation) from=" + req.Source
	})
}

// coseOf encodes a raw public key as a COSE_Key.
func coseOf(raw []byte, alg string) ([]byte, ctap2.COSEAlgorithm, error) {
	switch alg {
	case "es256":
		point := raw
		if len(raw) == 64 {
			point = append([]byte{4}, raw...)
		}
		if len(point) != 65 || point[0] != 4 {
			return nil, 0, fmt.Errorf("an es256 key is 64 or 65 bytes, not %d", len(raw))
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
		if err != nil {
			return nil, 0, err
		}
		b, err := ctap2.MarshalCOSEKey(pub, ctap2.AlgES256)
		return b, ctap2.AlgES256, err
	case "eddsa":
		if len(raw) != ed25519.PublicKeySize {
			return nil, 0, fmt.Errorf("an eddsa key is %d bytes, not %d", ed25519.PublicKeySize, len(raw))
		}
		b, err := ctap2.MarshalCOSEKey(ed25519.PublicKey(raw), ctap2.AlgEdDSA)
		return b, ctap2.AlgEdDSA, err
	}
	return nil, 0, fmt.Errorf("algorithm %q is not supported (es256 and eddsa are)", alg)
}
