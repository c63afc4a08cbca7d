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
		mailer: cfg.Mailer, phone: cfg.Phone, recov: newRecoveries()}
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

// audit appends e in t and mirrors it to the log once the caller commits.
func (s *Service) audit(t Tx, actor Actor, e AuditEvent) error {
	e.Time = s.now().UTC()
	e.ActorUID = actor.UID
	e.Actor = actor.Name
	if e.Outcome == "" {
		e.Outcome = "ok"
	}
	return t.AppendAudit(&e)
}

func (s *Service) logAudit(e AuditEvent) {
	if e.Outcome == "" {
		e.Outcome = "ok"
	}
	s.log.Info("audit", "action", e.Action, "outcome", e.Outcome, "account", e.Account,
		"device", e.Device, "actor_uid", e.ActorUID, "detail", e.Detail)
	if s.onAudit != nil {
		if e.Time.IsZero() {
			e.Time = s.now().UTC()
		}
		s.onAudit(e)
	}
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
	ev := AuditEvent{Action: ActAccountCreate, Account: a.Name, Detail: "kind=" + string(a.Kind)}
	err := s.store.Update(ctx, func(t Tx) error {
		if _, err := t.Account(a.Name); err == nil {
			return Errorf(ClassConflict, CodeAccountExists, "account %q already exists", a.Name)
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		if err := t.PutAccount(a); err != nil {
			return err
		}
		return s.audit(t, actor, ev)
	})
	if err != nil {
		return nil, err
	}
	s.logAudit(ev)
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
	var ev AuditEvent
	var extra []AuditEvent
	err := s.store.Update(ctx, func(t Tx) error {
		extra = nil
		a, err := t.Account(name)
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
		if p.Unlock {
			unlock := AuditEvent{Action: ActUnlock, Account: name,
				Detail: fmt.Sprintf("cleared %d failed attempts", a.FailedAttempts)}
			a.FailedAttempts, a.LockedUntil, a.LastFailureAt = 0, time.Time{}, time.Time{}
			if err := s.audit(t, actor, unlock); err != nil {
				return err
			}
			extra = append(extra, unlock)
		}
		if err := validateContact(a.Email, a.Phone); err != nil {
			return err
		}
		if (a.EmailVerified && a.Email == "") || (a.PhoneVerified && a.Phone == "") {
			return Errorf(ClassInvalid, CodeInvalidRequest, "a contact can be marked verified only when it is set")
		}
		a.UpdatedAt = s.now().UTC()
		if err := t.PutAccount(a); err != nil {
			return err
		}
		out = a
		if len(changed) == 0 && len(extra) > 0 {
			return nil // only an unlock: its own entry says it
		}
		ev = AuditEvent{Action: ActAccountUpdate, Account: name, Detail: strings.Join(changed, " ")}
		return s.audit(t, actor, ev)
	})
	if err != nil {
		return nil, err
	}
	for _, e := range extra {
		s.logAudit(e)
	}
	if ev.Action != "" {
		s.logAudit(ev)
	}
	return out, nil
}

// DeleteAccount removes an account and its devices (admin). Hardware
// tokens assigned to it are retired, not returned to the inventory.
func (s *Service) DeleteAccount(ctx context.Context, actor Actor, name string) error {
	ev := AuditEvent{Action: ActAccountDelete, Account: name}
	err := s.store.Update(ctx, func(t Tx) error {
		if _, err := t.Account(name); err != nil {
			return err
		}
		devs, err := t.Devices(name)
		if err != nil {
			return err
		}
		for _, d := range devs {
			if d.Serial == "" {
				continue
			}
			if tok, err := t.Token(d.Serial); err == nil {
				tok.AssignedTo, tok.DeviceID, tok.Retired = "", "", true
				if err := t.PutToken(tok); err != nil {
					return err
				}
			}
		}
		if err := t.DeleteAccount(name); err != nil {
			return err
		}
		return s.audit(t, actor, ev)
	})
	if err == nil {
		s.logAudit(ev)
	}
	return err
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
	err := s.store.Update(ctx, func(t Tx) error { return s.audit(t, actor, e) })
	if err == nil {
		s.logAudit(e)
	}
	return err
}

// ActPasswordChanged records that the sign-in helper saw a password change.
const ActPasswordChanged = "account.password_changed"

// PasswordChanged clears password_change_required once the sign-in helper
// (uid 0, after pam_unix changed the password) reports the change (seed
// point 6). A user cannot clear their own flag: the route is root's.
func (s *Service) PasswordChanged(ctx context.Context, actor Actor, name string) (*Account, error) {
	var out *Account
	ev := AuditEvent{Action: ActPasswordChanged, Account: name}
	err := s.store.Update(ctx, func(t Tx) error {
		a, err := t.Account(name)
		if err != nil {
			return err
		}
		if !a.HasFlag(FlagPasswordChangeRequired) {
			ev.Detail = "no change was required"
		}
		a.SetFlag(FlagPasswordChangeRequired, false)
		a.UpdatedAt = s.now().UTC()
		if err := t.PutAccount(a); err != nil {
			return err
		}
		out = a
		return s.audit(t, actor, ev)
	})
	if err != nil {
		return nil, err
	}
	s.logAudit(ev)
	return out, nil
}
