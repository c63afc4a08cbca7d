package authn

import (
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"sync"
	"time"
)

// Audit actions of owner recovery (seed points 3-5).
const (
	ActRecoveryStart = "recovery.start"
	ActRecoveryEmail = "recovery.email"
	ActRecoveryPhone = "recovery.phone"
	ActRecoveryAuth  = "authenticate.recovery"
	ActRecoveryAbort = "recovery.abort"
)

// Recovery stages.
const (
	StageEmail = "email"
	StagePhone = "phone"
	StageDone  = "done"
)

// recovery is one owner's alternative-factor recovery in progress. It
// lives in memory: a restart abandons it, which only costs a new start.
type recovery struct {
	id        string
	account   string
	uid       uint32 // the uid that started it; nobody else may use it
	stage     string
	codeHash  []byte // of the code sent for the current stage
	codeUntil time.Time
	attempts  int
	resends   int
	expires   time.Time
	token     string // once done: the recovery token (kept to make it single-use at sign-in)
	signedIn  bool
}

type recoveries struct {
	mu sync.Mutex
	m  map[string]*recovery
}

func newRecoveries() *recoveries { return &recoveries{m: map[string]*recovery{}} }

// RecoveryStatus answers the recovery routes.
type RecoveryStatus struct {
	ID        string
	Account   string
	Stage     string
	Sent      string // where the current code went, masked
	ExpiresAt time.Time
	// Token is set once both codes were proven: it signs the owner in
	// once (/v1/authenticate) and serves as step-up until ExpiresAt.
	Token string
}

func randomDigits(n int) string {
	max := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
	v, _ := rand.Int(rand.Reader, max)
	return fmt.Sprintf("%0*d", n, v)
}

func maskEmail(e string) string {
	at := 0
	for i, r := range e {
		if r == '@' {
			at = i
		}
	}
	if at <= 1 {
		return "***" + e[at:]
	}
	return e[:1] + "***" + e[at:]
}

func maskPhone(p string) string {
	if len(p) <= 2 {
		return "***"
	}
	return "*** " + p[len(p)-2:]
}

// StartRecovery begins an owner's recovery with alternative factors: a
// code to the account's verified e-mail, then one to its verified phone.
// Members, and owners without verified contacts or without configured
// channels, are told that only an admin can help.
func (s *Service) StartRecovery(ctx context.Context, actor Actor, account string) (*RecoveryStatus, error) {
	now := s.now().UTC()
	a, err := s.Account(account)
	if err != nil {
		return nil, err
	}
	switch {
	case a.HasFlag(FlagDisabled):
		return nil, errDisabled(account)
	case a.Kind != KindOwner:
		return nil, Errorf(ClassForbidden, CodeRecoveryNeedsAdmin,
			"%s is a member account: only an admin can help (ask one to deactivate the device and issue a temporary access code)", account)
	case !a.EmailVerified || !a.PhoneVerified:
		return nil, Errorf(ClassForbidden, CodeRecoveryNeedsAdmin,
			"%s has no verified e-mail and phone: only an admin can help (ask one to deactivate the device)", account)
	case s.mailer == nil || s.phone == nil:
		return nil, Errorf(ClassForbidden, CodeRecoveryNeedsAdmin,
			"this host has no e-mail or phone channel configured for recovery: only an admin can help")
	}
	if err := s.throttle(a, now); err != nil {
		return nil, err
	}
	if err := s.takeSend(actor, account, sendCode); err != nil {
		return nil, err
	}
	code := randomDigits(8)
	r := &recovery{id: newID(), account: account, uid: actor.UID, stage: StageEmail, codeHash: hashCode(code),
		codeUntil: now.Add(s.policy.RecoveryCodeTTL), expires: now.Add(2 * s.policy.RecoveryCodeTTL)}
	if err := s.sendRecoveryCode(ctx, a, r, code); err != nil {
		return nil, err
	}
	s.recov.mu.Lock()
	for id, old := range s.recov.m {
		if old.account == account || !now.Before(old.expires) {
			delete(s.recov.m, id)
		}
	}
	s.recov.m[r.id] = r
	s.recov.mu.Unlock()
	s.RecordAudit(ctx, actor, AuditEvent{Action: ActRecoveryStart, Account: account, Detail: "e-mail code sent to " + maskEmail(a.Email)})
	return &RecoveryStatus{ID: r.id, Account: account, Stage: StageEmail, Sent: maskEmail(a.Email), ExpiresAt: r.codeUntil}, nil
}

func (s *Service) sendRecoveryCode(ctx context.Context, a *Account, r *recovery, code string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var err error
	if r.stage == StageEmail {
		err = s.mailer.SendMail(ctx, a.Email, "mfad: your account recovery code",
			fmt.Sprintf("Someone (hopefully you) is recovering the mfad account %s because its MFA device is lost or broken.\n\n"+
				"Recovery code: %s\n\nIt expires in %d minutes. After this code, a second code goes to the account's phone.\n"+
				"If you did not start this, tell your administrators. (Look in the spam folder if this arrived there.)",
				a.Name, code, int(s.policy.RecoveryCodeTTL/time.Minute)))
	} else {
		err = s.phone.SendCode(ctx, a.Phone, a.Name, code)
	}
	if err != nil {
		s.log.Error("recovery code not delivered", "account", a.Name, "stage", r.stage, "err", err)
		return Errorf(ClassUnavailable, CodeRecoveryDelivery, "the %s code could not be delivered; try again later or ask an admin", r.stage)
	}
	return nil
}

// recoveryFor returns the recovery id, checking that actor started it.
func (s *Service) recoveryFor(actor Actor, id string, now time.Time) (*recovery, error) {
	s.recov.mu.Lock()
	defer s.recov.mu.Unlock()
	r := s.recov.m[id]
	if r == nil || !now.Before(r.expires) {
		delete(s.recov.m, id)
		return nil, Errorf(ClassNotFound, CodeNotFound, "no recovery %s in progress (it may have expired: start again)", id)
	}
	if r.uid != actor.UID {
		return nil, Errorf(ClassForbidden, CodePermissionDenied, "recovery %s belongs to the user who started it", id)
	}
	return r, nil
}

// recoveryOf returns the recovery id, that actor started, and its
// account, which must not be disabled.
func (s *Service) recoveryOf(actor Actor, id string, now time.Time) (*recovery, *Account, error) {
	r, err := s.recoveryFor(actor, id, now)
	if err != nil {
		return nil, nil, err
	}
	a, err := s.Account(r.account)
	if err != nil {
		return nil, nil, err
	}
	if a.HasFlag(FlagDisabled) {
		return nil, nil, errDisabled(a.Name)
	}
	return r, a, nil
}

// ResendRecoveryCode sends the current stage's code again (a new one).
func (s *Service) ResendRecoveryCode(ctx context.Context, actor Actor, id string) (*RecoveryStatus, error) {
	now := s.now().UTC()
	r, a, err := s.recoveryOf(actor, id, now)
	if err != nil {
		return nil, err
	}
	s.recov.mu.Lock()
	if r.resends >= s.policy.RecoveryResends || r.stage == StageDone {
		s.recov.mu.Unlock()
		return nil, Errorf(ClassTooMany, CodeRetryLater, "no more resends for this recovery: start again later")
	}
	if err := s.takeSend(actor, r.account, sendCode); err != nil {
		s.recov.mu.Unlock()
		return nil, err
	}
	r.resends++
	code := randomDigits(8)
	if r.stage == StagePhone {
		code = randomDigits(6)
	}
	r.codeHash, r.codeUntil, r.attempts = hashCode(code), now.Add(s.policy.RecoveryCodeTTL), 0
	s.recov.mu.Unlock()
	if err := s.sendRecoveryCode(ctx, a, r, code); err != nil {
		return nil, err
	}
	return s.recoveryStatus(r, a), nil
}

func (s *Service) recoveryStatus(r *recovery, a *Account) *RecoveryStatus {
	st := &RecoveryStatus{ID: r.id, Account: r.account, Stage: r.stage, ExpiresAt: r.codeUntil}
	switch r.stage {
	case StageEmail:
		st.Sent = maskEmail(a.Email)
	case StagePhone:
		st.Sent = maskPhone(a.Phone)
	}
	return st
}

// VerifyRecoveryCode proves one stage: the e-mail code first, then the
// phone code, each within its time and attempts. The phone stage answers
// the recovery token, flags the account for a password change (seed point
// 6) and notifies its e-mail.
func (s *Service) VerifyRecoveryCode(ctx context.Context, actor Actor, id, stage, code string) (*RecoveryStatus, error) {
	now := s.now().UTC()
	r, a, err := s.recoveryOf(actor, id, now)
	if err != nil {
		return nil, err
	}
	resetExpiredLock(a, now)
	if err := s.throttle(a, now); err != nil {
		return nil, err
	}
	// The recovery's existence, stage, attempt count and the comparison
	// are decided under one lock: concurrent guesses are compared one at
	// a time, and none after the limit.
	s.recov.mu.Lock()
	if s.recov.m[r.id] != r {
		s.recov.mu.Unlock()
		return nil, Errorf(ClassNotFound, CodeNotFound, "no recovery %s in progress (it may have ended: start again)", id)
	}
	if stage != r.stage {
		cur := r.stage
		s.recov.mu.Unlock()
		return nil, Errorf(ClassConflict, CodeRecoveryWrongStep, "this recovery is at the %s step, not %s: prove the e-mail first, then the phone", cur, stage)
	}
	ok := now.Before(r.codeUntil) && sameHash(hashCode(normalizeDigits(code)), r.codeHash)
	var phoneCode string
	var exhausted bool
	switch {
	case !ok:
		r.attempts++
		if exhausted = r.attempts >= s.policy.RecoveryAttempts; exhausted {
			delete(s.recov.m, r.id)
		}
	case stage == StageEmail:
		phoneCode = randomDigits(6)
		r.stage, r.codeHash, r.codeUntil, r.attempts, r.resends = StagePhone, hashCode(phoneCode), now.Add(s.policy.RecoveryCodeTTL), 0, 0
		r.expires = now.Add(2 * s.policy.RecoveryCodeTTL)
	default:
		r.stage, r.codeHash = StageDone, nil
		r.expires = now.Add(s.policy.RecoverySession)
	}
	expired := !now.Before(r.codeUntil)
	s.recov.mu.Unlock()
	if !ok {
		s.refuseProof(ctx, actor, r.account, proofFailed{detail: "recovery " + stage + " code refused",
			err: Errorf(ClassForbidden, CodeInvalidCode, "wrong %s code", stage)})
		switch {
		case exhausted:
			s.RecordAudit(ctx, actor, AuditEvent{Action: ActRecoveryAbort, Account: r.account, Outcome: "fail", Detail: "too many wrong " + stage + " codes"})
			return nil, Errorf(ClassTooMany, CodeRecoveryAborted, "too many wrong codes: this recovery is over; start again")
		case expired:
			return nil, Errorf(ClassForbidden, CodeInvalidCode, "the %s code expired: ask for a new one (resend)", stage)
		}
		return nil, Errorf(ClassForbidden, CodeInvalidCode, "wrong %s code", stage)
	}
	if stage == StageEmail {
		s.RecordAudit(ctx, actor, AuditEvent{Action: ActRecoveryEmail, Account: r.account, Detail: "e-mail proven; phone code sent to " + maskPhone(a.Phone)})
		if err := s.takeSend(actor, r.account, sendCode); err != nil {
			return nil, err // the phone code can be sent again (resend) once the wait is over
		}
		if err := s.sendRecoveryCode(ctx, a, r, phoneCode); err != nil {
			return nil, err
		}
		return s.recoveryStatus(r, a), nil
	}
	tok, until := s.stepUps.issue(actor.UID, r.account, SourceRecovery, now, s.policy.RecoverySession)
	s.recov.mu.Lock()
	r.token = tok
	s.recov.mu.Unlock()
	err = s.write(ctx, actor, func(c *change) error {
		acct, err := c.Account(r.account)
		if err != nil {
			return err
		}
		acct.SetFlag(FlagPasswordChangeRequired, true)
		acct.FailedAttempts, acct.LockedUntil = 0, time.Time{}
		if err := c.putAccountIf(true, acct); err != nil {
			return err
		}
		return c.audit(AuditEvent{Action: ActRecoveryPhone, Account: r.account, Detail: "phone proven; recovery session until " + until.Format(time.RFC3339) + "; password change required"})
	})
	if err != nil {
		return nil, err
	}
	s.notice(ctx, a, "mfad: your account was recovered",
		fmt.Sprintf("Account %s was recovered with its e-mail and phone at %s. Replace the lost device now, then change your password.\n"+
			"If this was not you, tell your administrators at once.", r.account, now.Format(time.RFC1123)))
	return &RecoveryStatus{ID: r.id, Account: r.account, Stage: StageDone, ExpiresAt: until, Token: tok}, nil
}

// recoveryTokenVerifier claims a recovery token for its one sign-in. The
// claim is made here, outside the store (the recovery lives in memory),
// so that a transaction run twice does not spend it twice; the pipeline
// still gates the account. The token goes on serving as step-up for the
// rest of the recovery session.
func (s *Service) recoveryTokenVerifier(actor Actor, account, token string) verifier {
	now := s.now().UTC()
	source, ok := s.stepUps.lookup(token, actor.UID, account, now)
	claimed := false
	if ok && source == SourceRecovery {
		s.recov.mu.Lock()
		for _, r := range s.recov.m {
			if r.account == account && r.token == token && !r.signedIn && now.Before(r.expires) {
				r.signedIn, claimed = true, true
			}
		}
		s.recov.mu.Unlock()
	}
	if !claimed {
		return proofFailed{detail: "recovery token refused",
			err: Errorf(ClassForbidden, CodeInvalidCode, "the recovery token is not valid for this account and user, or was used already")}
	}
	return recoveryTokenClaimed{}
}

// recoveryTokenClaimed is a recovery token claimed for this sign-in.
type recoveryTokenClaimed struct{}

func (recoveryTokenClaimed) action() string                   { return ActRecoveryAuth }
func (recoveryTokenClaimed) source() string                   { return SourceRecovery }
func (recoveryTokenClaimed) verify(*attempt) (*Device, error) { return nil, nil }

func normalizeDigits(code string) string {
	out := make([]byte, 0, len(code))
	for i := 0; i < len(code); i++ {
		if c := code[i]; c >= '0' && c <= '9' {
			out = append(out, c)
		}
	}
	return string(out)
}
