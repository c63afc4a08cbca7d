package authn

import (
	"fmt"
	"time"
)

// Audit actions of the brute-force guard.
const (
	ActLockout = "account.lockout"
	ActUnlock  = "account.unlock"
)

// throttle refuses an attempt on a or says it may go ahead. Past
// MaxFailures each attempt waits a doubling delay after the last failure;
// past LockoutAfter the account is locked until LockedUntil. The daemon
// never sleeps on a request: it answers at once with retry_after.
func (s *Service) throttle(a *Account, now time.Time) error {
	if now.Before(a.LockedUntil) {
		e := Errorf(ClassTooMany, CodeLockedOut, "account %s is locked after %d failed attempts; an admin can unlock it (mfactl admin unlock %s)", a.Name, a.FailedAttempts, a.Name)
		e.RetryAfter = a.LockedUntil.Sub(now)
		return e
	}
	if over := a.FailedAttempts - s.policy.MaxFailures; over >= 0 {
		wait := backoff(over)
		if next := a.LastFailureAt.Add(wait); now.Before(next) {
			e := Errorf(ClassTooMany, CodeRetryLater, "too many failed attempts on %s; wait before trying again", a.Name)
			e.RetryAfter = next.Sub(now)
			return e
		}
	}
	return nil
}

// backoff is 1 s doubling per failure past the threshold, at most 5 minutes.
func backoff(over int) time.Duration {
	if over > 8 {
		return 5 * time.Minute
	}
	return min(time.Second<<over, 5*time.Minute)
}

// resetExpiredLock starts a fresh count once a lockout has run out.
func resetExpiredLock(a *Account, now time.Time) bool {
	if !a.LockedUntil.IsZero() && !now.Before(a.LockedUntil) {
		a.FailedAttempts, a.LockedUntil = 0, time.Time{}
		return true
	}
	return false
}

// fail records one failed attempt on a (audited, never with the code),
// locking the account when it reaches LockoutAfter.
func (c *change) fail(a *Account, ev AuditEvent) error {
	p := &c.s.policy
	a.FailedAttempts++
	a.LastFailureAt = c.now
	ev.Outcome = "fail"
	ev.Account = a.Name
	if err := c.audit(ev); err != nil {
		return err
	}
	if a.FailedAttempts >= p.LockoutAfter {
		a.LockedUntil = c.now.Add(p.LockoutDuration)
		if err := c.audit(AuditEvent{Action: ActLockout, Account: a.Name, Outcome: "ok",
			Detail: fmt.Sprintf("%d failed attempts; locked until %s", a.FailedAttempts, a.LockedUntil.Format(time.RFC3339))}); err != nil {
			return err
		}
	}
	a.UpdatedAt = c.now
	return c.PutAccount(a)
}
