package authn

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"fmt"
	"strings"
	"time"
)

// Audit actions of the device lifecycle and recovery.
const (
	ActDeactivate    = "device.deactivate"
	ActDelete        = "device.delete"
	ActReplace       = "device.replace"
	ActReportLost    = "device.report_lost"
	ActTempCode      = "account.temporary_code"
	ActTempCodeUsed  = "authenticate.temporary_code"
	ActTokenRetired  = "token.retire"
	ActTokenReturned = "token.return"
)

// Mailer sends an e-mail; Phone sends a short code to a phone. The daemon
// backs them with daemon/notify; nil means the channel is not configured.
type Mailer interface {
	SendMail(ctx context.Context, to, subject, body string) error
}

// Phone delivers a code to a phone number.
type Phone interface {
	SendCode(ctx context.Context, phone, account, code string) error
}

// notice e-mails the account about an action on it (best effort: a failed
// notice is logged, never fatal, and never carries a secret).
func (s *Service) notice(ctx context.Context, a *Account, subject, body string) {
	if s.mailer == nil || a == nil || a.Email == "" {
		return
	}
	if err := s.takeSend(Actor{Admin: true}, a.Name, sendNotice); err != nil {
		s.log.Warn("account notice not sent: too many this hour", "account", a.Name, "subject", subject)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := s.mailer.SendMail(ctx, a.Email, subject, body+"\n\n-- mfad on "+s.policy.Issuer+"\n"); err != nil {
		s.log.Warn("account notice not sent", "account", a.Name, "subject", subject, "err", err)
	}
}

// retireToken takes a lost or deleted hardware token's serial out of use
// for good (a thief may hold it and its seed).
func (c *change) retireToken(d *Device, why string) error {
	if d.Serial == "" {
		return nil
	}
	tok, err := c.Token(d.Serial)
	if err != nil {
		return nil // not from the inventory
	}
	tok.AssignedTo, tok.DeviceID, tok.Retired = "", "", true
	if err := c.PutToken(tok); err != nil {
		return err
	}
	return c.audit(AuditEvent{Action: ActTokenRetired, Account: d.Account, Device: d.ID, Detail: "serial=" + d.Serial + " " + why})
}

// Deactivate takes a device out of use without deleting it (AWS:
// DeactivateMFADevice). Admins need no step-up; the account's user does.
func (s *Service) Deactivate(ctx context.Context, actor Actor, account, id string) (*Device, error) {
	var out *Device
	var a *Account
	err := s.write(ctx, actor, func(c *change) error {
		var err error
		if a, err = s.authorizeChange(c, account, false); err != nil {
			return err
		}
		d, err := c.Device(account, id)
		if err != nil {
			return err
		}
		if d.State != StateActive {
			return Errorf(ClassConflict, CodeDeviceStateConflict, "device %s is %s; only an active device can be deactivated", id, d.State)
		}
		d.State, d.DeactivatedAt = StateDeactivated, c.now
		if err := c.PutDevice(d); err != nil {
			return err
		}
		out = d
		return c.audit(AuditEvent{Action: ActDeactivate, Account: account, Device: id, Detail: "type=" + string(d.Type) + serialDetail(d.Serial)})
	})
	if err != nil {
		return nil, err
	}
	if actor.Admin && actor.Name != account {
		s.notice(ctx, a, "mfad: a device of yours was deactivated",
			fmt.Sprintf("An administrator (%s) deactivated MFA device %s of account %s at %s.", actorName(actor), id, account, out.DeactivatedAt.Format(time.RFC1123)))
	}
	out.Secret = nil
	return out, nil
}

func actorName(a Actor) string {
	if a.Name != "" {
		return a.Name
	}
	return fmt.Sprintf("uid %d", a.UID)
}

// DeleteOptions qualify a deletion.
type DeleteOptions struct {
	// ReturnToInventory puts a hardware token's serial back in the
	// inventory: only an admin who has the token back in hand says so.
	ReturnToInventory bool
}

// Delete removes a device. As in AWS, a device must be deactivated first
// (a pending enrollment may be deleted at once). The audit log keeps its
// history. A hardware token's serial is retired unless an admin returns it
// to the inventory.
func (s *Service) Delete(ctx context.Context, actor Actor, account, id string, opts DeleteOptions) error {
	if opts.ReturnToInventory && !actor.Admin {
		return Errorf(ClassForbidden, CodePermissionDenied, "only an admin with the token in hand can return it to the inventory")
	}
	return s.write(ctx, actor, func(c *change) error {
		if _, err := s.authorizeChange(c, account, false); err != nil {
			return err
		}
		d, err := c.Device(account, id)
		if err != nil {
			return err
		}
		if d.State == StateActive {
			return Errorf(ClassConflict, CodeDeviceStateConflict, "device %s is active: deactivate it before deleting it", id)
		}
		return c.deleteDevice(d, opts)
	})
}

// deleteDevice removes d and settles its hardware token.
func (c *change) deleteDevice(d *Device, opts DeleteOptions) error {
	if err := c.DeleteDevice(d.Account, d.ID); err != nil {
		return err
	}
	detail := "type=" + string(d.Type) + serialDetail(d.Serial)
	if d.Serial != "" {
		if opts.ReturnToInventory {
			if tok, err := c.Token(d.Serial); err == nil && !tok.Retired {
				tok.AssignedTo, tok.DeviceID = "", ""
				if err := c.PutToken(tok); err != nil {
					return err
				}
				detail += " returned to inventory"
			}
		} else if err := c.retireToken(d, "(deleted without being returned)"); err != nil {
			return err
		}
	}
	return c.audit(AuditEvent{Action: ActDelete, Account: d.Account, Device: d.ID, Detail: detail})
}

// ReportLost is what a user does when a device is lost, stolen or broken:
// it deactivates the device, retires a hardware token's serial, flags the
// account for a password change (seed point 6) and tells the account's
// e-mail. It needs no step-up: it only takes access away.
func (s *Service) ReportLost(ctx context.Context, actor Actor, account, id string) (*Device, error) {
	var out *Device
	var a *Account
	err := s.write(ctx, actor, func(c *change) error {
		var err error
		if a, err = c.Account(account); err != nil {
			return err
		}
		d, err := c.Device(account, id)
		if err != nil {
			return err
		}
		if d.State == StateActive {
			d.State, d.DeactivatedAt = StateDeactivated, c.now
		}
		if err := c.PutDevice(d); err != nil {
			return err
		}
		if err := c.retireToken(d, "(reported lost)"); err != nil {
			return err
		}
		a.SetFlag(FlagPasswordChangeRequired, true)
		if err := c.putAccountIf(true, a); err != nil {
			return err
		}
		out = d
		return c.audit(AuditEvent{Action: ActReportLost, Account: account, Device: id, Detail: "type=" + string(d.Type) + serialDetail(d.Serial) + "; password change required"})
	})
	if err != nil {
		return nil, err
	}
	s.notice(ctx, a, "mfad: a device of yours was reported lost",
		fmt.Sprintf("MFA device %s of account %s was reported lost by %s at %s and deactivated.\n"+
			"Change your password once a replacement is set up: whoever holds the device may also know it.", id, account, actorName(actor), s.now().UTC().Format(time.RFC1123)))
	out.Secret = nil
	return out, nil
}

// Replace deactivates and deletes the old device and begins the new
// enrollment in one transaction (its slot is free, so it works at eight
// devices). The new device need not be of the old one's type.
func (s *Service) Replace(ctx context.Context, actor Actor, account, id string, req EnrollRequest) (*Enrollment, error) {
	return s.enroll(ctx, actor, account, req, id)
}

// TemporaryCode is an admin-issued single-use access code.
type TemporaryCode struct {
	Code      string
	ExpiresAt time.Time
}

// tempCodeAlphabet is base32 without padding: easy to read out and type.
var tempCodeEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// TempCodeLen is the length of a temporary access code (100 bits).
const TempCodeLen = 20

func hashCode(code string) []byte {
	h := sha256.Sum256([]byte(code))
	return h[:]
}

// IssueTemporaryCode gives a member (or an owner an admin helps) a
// single-use code to sign in once and enroll a new device (seed point 7).
// It is shown once, stored hashed, expires, and stops working once a new
// device is activated.
func (s *Service) IssueTemporaryCode(ctx context.Context, actor Actor, account string, ttl time.Duration) (*TemporaryCode, error) {
	if ttl <= 0 {
		ttl = s.policy.TempCodeTTL
	}
	raw := make([]byte, TempCodeLen*5/8)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	code := tempCodeEncoding.EncodeToString(raw)
	now := s.now().UTC()
	out := &TemporaryCode{Code: code, ExpiresAt: now.Add(ttl)}
	var a *Account
	err := s.write(ctx, actor, func(c *change) error {
		var err error
		if a, err = c.Account(account); err != nil {
			return err
		}
		a.TempCode = &TempCodeState{Hash: hashCode(code), ExpiresAt: out.ExpiresAt, IssuedBy: actorName(actor)}
		if err := c.putAccountIf(true, a); err != nil {
			return err
		}
		return c.audit(AuditEvent{Action: ActTempCode, Account: account, Detail: "expires " + out.ExpiresAt.Format(time.RFC3339)})
	})
	if err != nil {
		return nil, err
	}
	s.notice(ctx, a, "mfad: a temporary access code was issued for your account",
		fmt.Sprintf("An administrator (%s) issued a temporary access code for account %s at %s, valid until %s.\n"+
			"It signs you in once, so that you can enroll a new device. If you did not ask for it, tell your administrators.",
			actorName(actor), account, now.Format(time.RFC1123), out.ExpiresAt.Format(time.RFC1123)))
	return out, nil
}

// TempCodeState is the hashed temporary code an account holds.
type TempCodeState struct {
	Hash      []byte    `json:"hash"`
	ExpiresAt time.Time `json:"expires_at"`
	IssuedBy  string    `json:"issued_by"`
}

// looksLikeTempCode says whether typed could be a temporary code rather
// than a 6- or 8-digit OTP.
func looksLikeTempCode(typed string) (string, bool) {
	c := strings.ToUpper(strings.Join(strings.Fields(strings.ReplaceAll(typed, "-", " ")), ""))
	if len(c) != TempCodeLen {
		return "", false
	}
	if _, err := tempCodeEncoding.DecodeString(c); err != nil {
		return "", false
	}
	return c, true
}

// sameHash compares two hashes in constant time.
func sameHash(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// removeForReplace deactivates and deletes the device being replaced, in
// the replacement's transaction; a hardware token's serial is retired.
func (c *change) removeForReplace(account, id, newType string) error {
	d, err := c.Device(account, id)
	if err != nil {
		return err
	}
	if d.State == StateActive {
		d.State, d.DeactivatedAt = StateDeactivated, c.now
	}
	if err := c.deleteDevice(d, DeleteOptions{}); err != nil {
		return err
	}
	return c.audit(AuditEvent{Action: ActReplace, Account: account, Device: id, Detail: fmt.Sprintf("%s replaced by a new %s", d.Type, newType)})
}
