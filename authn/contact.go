package authn

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// ActContact records contact changes.
const (
	ActContactRequest = "account.contact_request"
	ActContactVerify  = "account.contact_verify"
)

// PendingContact is a change of e-mail or phone waiting for the code sent
// to the new address or number.
type PendingContact struct {
	Kind      string    `json:"kind"` // email or phone
	Value     string    `json:"value"`
	CodeHash  []byte    `json:"code_hash"`
	ExpiresAt time.Time `json:"expires_at"`
	Attempts  int       `json:"attempts"`
}

var errOwnerPhone = Errorf(ClassForbidden, CodePermissionDenied, "changing an owner account's phone needs an admin (as for an AWS root user's phone)")

// ContactChange asks to change the account's e-mail or phone.
type ContactChange struct {
	Email string
	Phone string
}

// RequestContactChange sends a code to the new e-mail address or phone
// number; the change takes effect once the code comes back. The account's
// own user needs a step-up when the account has an active device; changing
// an owner's phone needs an admin (as AWS requires for a root user's phone).
func (s *Service) RequestContactChange(ctx context.Context, actor Actor, account string, c ContactChange) (string, error) {
	if (c.Email == "") == (c.Phone == "") {
		return "", Errorf(ClassInvalid, CodeInvalidRequest, "give either email or phone")
	}
	if err := validateContact(c.Email, c.Phone); err != nil {
		return "", err
	}
	now := s.now().UTC()
	kind, value := "email", c.Email
	if c.Phone != "" {
		kind, value = "phone", c.Phone
	}
	if kind == "email" && s.mailer == nil || kind == "phone" && s.phone == nil {
		return "", Errorf(ClassForbidden, CodeRecoveryNeedsAdmin, "no %s channel is configured on this host: ask an admin to record the change", kind)
	}
	if kind == "phone" && !actor.Admin && !s.phoneAllowed(value) {
		return "", Errorf(ClassInvalid, CodeInvalidRequest, "this host accepts phone numbers starting with %s only; ask an admin to record another", strings.Join(s.policy.PhonePrefixes, ", "))
	}
	// Refusals come first, so that they do not spend the send budget.
	if err := s.store.View(func(t Tx) error {
		if err := s.checkChange(t, actor, account, now); err != nil {
			return err
		}
		a, err := t.Account(account)
		if err == nil && kind == "phone" && a.Kind == KindOwner && !actor.Admin {
			return errOwnerPhone
		}
		return err
	}); err != nil {
		return "", err
	}
	if err := s.takeSend(actor, account, sendCode); err != nil {
		return "", err
	}
	code := randomDigits(6)
	err := s.write(ctx, actor, func(c *change) error {
		a, err := s.authorizeChange(c, account, false)
		if err != nil {
			return err
		}
		if kind == "phone" && a.Kind == KindOwner && !actor.Admin {
			return errOwnerPhone
		}
		a.PendingContact = &PendingContact{Kind: kind, Value: value, CodeHash: hashCode(code), ExpiresAt: now.Add(s.policy.RecoveryCodeTTL)}
		if err := c.putAccountIf(true, a); err != nil {
			return err
		}
		return c.audit(AuditEvent{Action: ActContactRequest, Account: account, Detail: kind + " change requested"})
	})
	if err != nil {
		return "", err
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if kind == "email" {
		err = s.mailer.SendMail(sctx, value, "mfad: confirm your new e-mail address",
			fmt.Sprintf("Confirm this address for mfad account %s with the code %s (valid %d minutes).", account, code, int(s.policy.RecoveryCodeTTL/time.Minute)))
	} else {
		err = s.phone.SendCode(sctx, value, account, code)
	}
	if err != nil {
		s.log.Error("contact code not delivered", "account", account, "kind", kind, "err", err)
		return "", Errorf(ClassUnavailable, CodeRecoveryDelivery, "the code could not be delivered to the new %s", kind)
	}
	if kind == "email" {
		return maskEmail(value), nil
	}
	return maskPhone(value), nil
}

// VerifyContactChange applies the pending change when code matches; the
// new contact is then verified.
func (s *Service) VerifyContactChange(ctx context.Context, actor Actor, account, code string) (*Account, error) {
	var out *Account
	err := s.write(ctx, actor, func(c *change) error {
		out = nil
		a, err := s.authorizeChange(c, account, false)
		if err != nil {
			return err
		}
		if err := s.gate(c, a, ActContactVerify); err != nil || c.refusal != nil {
			return err
		}
		p := a.PendingContact
		if p == nil || !c.now.Before(p.ExpiresAt) {
			return Errorf(ClassConflict, CodeContactNotPending, "no contact change is waiting for a code (it may have expired)")
		}
		if !sameHash(hashCode(normalizeDigits(code)), p.CodeHash) {
			p.Attempts++
			if p.Attempts >= s.policy.RecoveryAttempts {
				a.PendingContact = nil
			}
			c.refuse(Errorf(ClassForbidden, CodeInvalidCode, "wrong code for the new %s", p.Kind))
			return c.fail(a, AuditEvent{Action: ActContactVerify, Detail: p.Kind + " code refused"})
		}
		if p.Kind == "email" {
			a.Email, a.EmailVerified = p.Value, true
		} else {
			a.Phone, a.PhoneVerified = p.Value, true
		}
		a.PendingContact = nil
		if err := c.putAccountIf(true, a); err != nil {
			return err
		}
		out = a
		return c.audit(AuditEvent{Action: ActContactVerify, Account: account, Detail: p.Kind + " changed and verified"})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
