package authn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/mfad/mfad/authn/fido2"
)

// Actor is who asks for a change: the peer as ipc/server identified it.
type Actor struct {
	UID   uint32
	Name  string // Unix user name of UID ("" when it has none)
	Admin bool   // uid 0 or a member of the admin group
	// StepUp is the bearer token the request carried, if any.
	StepUp string
}

// Root reports whether the actor is uid 0.
func (a Actor) Root() bool { return a.UID == 0 }

// Config is the domain's policy.
type Config struct {
	Now    func() time.Time
	Logger *slog.Logger
	Policy Policy
	// FIDO is the relying-party policy; Keys the connected security keys
	// (nil: no security key driver).
	FIDO FIDOPolicy
	Keys KeyRing
	// OnAudit sees every audit event once it is committed (the event stream).
	OnAudit func(AuditEvent)
	// Mailer and Phone deliver notices and recovery codes (nil: not configured).
	Mailer Mailer
	Phone  Phone
}

// Service is the domain's entry point: every use case is one method.
type Service struct {
	store   Store
	now     func() time.Time
	log     *slog.Logger
	policy  Policy
	stepUps *stepUps
	clock   *clockWatch
	fido    FIDOPolicy
	keys    KeyRing
	onAudit func(AuditEvent)
	mailer  Mailer
	phone   Phone
	recov   *recoveries
	sends   *sendLimits
}

// NewService returns a Service over store.
func NewService(store Store, cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	svc := &Service{store: store, now: cfg.Now, log: cfg.Logger, policy: cfg.Policy.withDefaults(),
		stepUps: newStepUps(), clock: newClockWatch(cfg.Logger), fido: cfg.FIDO, keys: cfg.Keys, onAudit: cfg.OnAudit,
		mailer: cfg.Mailer, phone: cfg.Phone, recov: newRecoveries(), sends: newSendLimits()}
	if svc.fido.TouchTimeout == 0 {
		svc.fido.TouchTimeout = 30 * time.Second
	}
	if svc.fido.RPID == "" {
		svc.fido.RPID = "pam://localhost"
	}
	if svc.fido.Attestation.Mode == "" {
		svc.fido.Attestation.Mode = fido2.ModeSelf
	}
	return svc
}

// NewAccount is what an admin supplies to create an account.
type NewAccount struct {
	Name          string
	Kind          Kind
	Email         string
	EmailVerified bool
	Phone         string
	PhoneVerified bool
	Flags         []string
}

// CreateAccount creates an account (admin).
func (s *Service) CreateAccount(ctx context.Context, actor Actor, n NewAccount) (*Account, error) {
	if n.Kind == "" {
		n.Kind = KindMember
	}
	if err := ValidateName(n.Name); err != nil {
		return nil, err
	}
	if err := validateKind(n.Kind); err != nil {
		return nil, err
	}
	if err := validateContact(n.Email, n.Phone); err != nil {
		return nil, err
	}
	if err := validateFlags(n.Flags); err != nil {
		return nil, err
	}
	if (n.EmailVerified && n.Email == "") || (n.PhoneVerified && n.Phone == "") {
		return nil, Errorf(ClassInvalid, CodeInvalidRequest, "a contact can be marked verified only when it is given")
	}
	now := s.now().UTC()
	a := &Account{
		Name: n.Name, Kind: n.Kind,
		Email: n.Email, EmailVerified: n.EmailVerified,
		Phone: n.Phone, PhoneVerified: n.PhoneVerified,
		CreatedAt: now, UpdatedAt: now,
	}
	for _, f := range n.Flags {
		a.SetFlag(f, true)
	}
	err := s.write(ctx, actor, func(c *change) error {
		if _, err := c.Account(a.Name); err == nil {
			return Errorf(ClassConflict, CodeAccountExists, "account %q already exists", a.Name)
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		if err := c.PutAccount(a); err != nil {
			return err
		}
		return c.audit(AuditEvent{Action: ActAccountCreate, Account: a.Name, Detail: "kind=" + string(a.Kind)})
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// Account returns one account.
func (s *Service) Account(name string) (*Account, error) {
	var a *Account
	err := s.store.View(func(t Tx) error {
		var err error
		a, err = t.Account(name)
		return err
	})
	return a, err
}

// Accounts lists every account, sorted by name.
func (s *Service) Accounts() ([]Account, error) {
	var out []Account
	err := s.store.View(func(t Tx) error {
		var err error
		out, err = t.Accounts()
		return err
	})
	slices.SortFunc(out, func(a, b Account) int { return strings.Compare(a.Name, b.Name) })
	return out, err
}

// AccountPatch changes an account (admin). Nil fields stay as they are.
type AccountPatch struct {
	Kind          *Kind
	Email         *string
	EmailVerified *bool
	Phone         *string
	PhoneVerified *bool
	Flags         *[]string
	Unlock        bool // clear the failed-attempt counter and lockout
}

// PatchAccount applies p to the account (admin).
func (s *Service) PatchAccount(ctx context.Context, actor Actor, name string, p AccountPatch) (*Account, error) {
	if p.Kind != nil {
		if err := validateKind(*p.Kind); err != nil {
			return nil, err
		}
	}
	if p.Flags != nil {
		if err := validateFlags(*p.Flags); err != nil {
			return nil, err
		}
	}
	var out *Account
	err := s.write(ctx, actor, func(c *change) error {
		a, err := c.Account(name)
		if err != nil {
			return err
		}
		var changed []string
		if p.Kind != nil && *p.Kind != a.Kind {
			a.Kind = *p.Kind
			changed = append(changed, "kind="+string(a.Kind))
		}
		if p.Email != nil && *p.Email != a.Email {
			a.Email, a.EmailVerified = *p.Email, false
			changed = append(changed, "email")
		}
		if p.Phone != nil && *p.Phone != a.Phone {
			a.Phone, a.PhoneVerified = *p.Phone, false
			changed = append(changed, "phone")
		}
		if p.EmailVerified != nil {
			a.EmailVerified = *p.EmailVerified
			changed = append(changed, "email_verified")
		}
		if p.PhoneVerified != nil {
			a.PhoneVerified = *p.PhoneVerified
			changed = append(changed, "phone_verified")
		}
		if p.Flags != nil {
			a.Flags = nil
			for _, f := range *p.Flags {
				a.SetFlag(f, true)
			}
			changed = append(changed, "flags="+strings.Join(a.Flags, ","))
		}
		unlocked := false
		if p.Unlock {
			if err := c.audit(AuditEvent{Action: ActUnlock, Account: name,
				Detail: fmt.Sprintf("cleared %d failed attempts", a.FailedAttempts)}); err != nil {
				return err
			}
			a.FailedAttempts, a.LockedUntil, a.LastFailureAt = 0, time.Time{}, time.Time{}
			unlocked = true
		}
		if err := validateContact(a.Email, a.Phone); err != nil {
			return err
		}
		if (a.EmailVerified && a.Email == "") || (a.PhoneVerified && a.Phone == "") {
			return Errorf(ClassInvalid, CodeInvalidRequest, "a contact can be marked verified only when it is set")
		}
		if err := c.putAccountIf(true, a); err != nil {
			return err
		}
		out = a
		if len(changed) == 0 && unlocked {
			return nil // only an unlock: its own entry says it
		}
		return c.audit(AuditEvent{Action: ActAccountUpdate, Account: name, Detail: strings.Join(changed, " ")})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteAccount removes an account and its devices (admin). Hardware
// tokens assigned to it are retired, not returned to the inventory.
func (s *Service) DeleteAccount(ctx context.Context, actor Actor, name string) error {
	return s.write(ctx, actor, func(c *change) error {
		if _, err := c.Account(name); err != nil {
			return err
		}
		devs, err := c.Devices(name)
		if err != nil {
			return err
		}
		for _, d := range devs {
			if d.Serial == "" {
				continue
			}
			if tok, err := c.Token(d.Serial); err == nil {
				tok.AssignedTo, tok.DeviceID, tok.Retired = "", "", true
				if err := c.PutToken(tok); err != nil {
					return err
				}
			}
		}
		if err := c.DeleteAccount(name); err != nil {
			return err
		}
		return c.audit(AuditEvent{Action: ActAccountDelete, Account: name})
	})
}

// Audit lists audit entries after seq, at most limit (1..1000).
func (s *Service) Audit(after uint64, limit int) ([]AuditEvent, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	var out []AuditEvent
	err := s.store.View(func(t Tx) error {
		var err error
		out, err = t.Audit(after, limit)
		return err
	})
	return out, err
}

// RecordAudit appends an event that is not part of another change (a
// backup, say).
func (s *Service) RecordAudit(ctx context.Context, actor Actor, e AuditEvent) error {
	return s.write(ctx, actor, func(c *change) error { return c.audit(e) })
}

// ActPasswordChanged records that the sign-in helper saw a password change.
const ActPasswordChanged = "account.password_changed"

// PasswordChanged clears password_change_required once the sign-in helper
// (uid 0, after pam_unix changed the password) reports the change (seed
// point 6). A user cannot clear their own flag: the route is root's.
func (s *Service) PasswordChanged(ctx context.Context, actor Actor, name string) (*Account, error) {
	var out *Account
	err := s.write(ctx, actor, func(c *change) error {
		a, err := c.Account(name)
		if err != nil {
			return err
		}
		ev := AuditEvent{Action: ActPasswordChanged, Account: name}
		if !a.HasFlag(FlagPasswordChangeRequired) {
			ev.Detail = "no change was required"
		}
		a.SetFlag(FlagPasswordChangeRequired, false)
		if err := c.putAccountIf(true, a); err != nil {
			return err
		}
		out = a
		return c.audit(ev)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
