package authn

import "time"

// Policy holds the tunable numbers of the domain. Zero fields take the
// defaults of DefaultPolicy.
type Policy struct {
	// PendingTTL is how long an enrollment may wait for activation.
	PendingTTL time.Duration
	// ActivationWindow is how many steps around now activation searches
	// for the two consecutive codes (AWS-style activation).
	ActivationWindow int
	// VerifyWindow is how many steps either side of the learned drift a
	// sign-in code is accepted.
	VerifyWindow int
	// ResyncWindow is how many steps either side resync searches, and how
	// far a sign-in with a code and the next code looks for them.
	ResyncWindow int
	// HOTPLookAhead is how many counters past the last one an event-based
	// token's code is accepted; HOTPResyncWindow bounds its forward resync.
	HOTPLookAhead    int
	HOTPResyncWindow int
	// MaxFailures failed attempts per account are free; each further one
	// must wait a doubling delay (1 s, 2 s, 4 s ...), and LockoutAfter
	// failures lock the account for LockoutDuration or until an admin unlocks it.
	MaxFailures     int
	LockoutAfter    int
	LockoutDuration time.Duration
	// ResyncBudget is how many failed resyncs a device may have per hour.
	ResyncBudget int
	// StepUpTTL is how long a step-up token from /v1/authenticate lasts.
	StepUpTTL time.Duration
	// Issuer names mfad in authenticator apps (otpauth issuer).
	Issuer string
	// TempCodeTTL is how long an admin's temporary access code lasts.
	TempCodeTTL time.Duration
	// Recovery of owner accounts: how long the e-mail and phone codes
	// last, how many attempts and resends each allows, and how long the
	// recovery session (the recovery token) lasts.
	RecoveryCodeTTL  time.Duration
	RecoveryAttempts int
	RecoveryResends  int
	RecoverySession  time.Duration
	// SendsPerAccount and SendsPerUser bound the codes and notices mfad
	// sends in an hour for one account, and at the request of one
	// (non-admin) user.
	SendsPerAccount int
	SendsPerUser    int
	// PhonePrefixes, when set, are the only number prefixes (e.g. "+1",
	// "+4930") a user may give as their phone.
	PhonePrefixes []string
}

// DefaultPolicy is what mfad ships with.
func DefaultPolicy() Policy {
	return Policy{
		PendingTTL:       10 * time.Minute,
		ActivationWindow: 10,
		VerifyWindow:     1,
		ResyncWindow:     1000,
		HOTPLookAhead:    10,
		HOTPResyncWindow: 1000,
		MaxFailures:      5,
		LockoutAfter:     10,
		LockoutDuration:  15 * time.Minute,
		ResyncBudget:     5,
		StepUpTTL:        5 * time.Minute,
		Issuer:           "mfad",
		TempCodeTTL:      24 * time.Hour,
		RecoveryCodeTTL:  15 * time.Minute,
		RecoveryAttempts: 5,
		RecoveryResends:  3,
		RecoverySession:  15 * time.Minute,
		SendsPerAccount:  5,
		SendsPerUser:     5,
	}
}

func (p Policy) withDefaults() Policy {
	d := DefaultPolicy()
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setDur(&p.PendingTTL, d.PendingTTL)
	setInt(&p.ActivationWindow, d.ActivationWindow)
	setInt(&p.VerifyWindow, d.VerifyWindow)
	setInt(&p.ResyncWindow, d.ResyncWindow)
	setInt(&p.HOTPLookAhead, d.HOTPLookAhead)
	setInt(&p.HOTPResyncWindow, d.HOTPResyncWindow)
	setInt(&p.MaxFailures, d.MaxFailures)
	setInt(&p.LockoutAfter, d.LockoutAfter)
	setDur(&p.LockoutDuration, d.LockoutDuration)
	setInt(&p.ResyncBudget, d.ResyncBudget)
	setDur(&p.StepUpTTL, d.StepUpTTL)
	setDur(&p.TempCodeTTL, d.TempCodeTTL)
	setDur(&p.RecoveryCodeTTL, d.RecoveryCodeTTL)
	setInt(&p.RecoveryAttempts, d.RecoveryAttempts)
	setInt(&p.RecoveryResends, d.RecoveryResends)
	setDur(&p.RecoverySession, d.RecoverySession)
	setInt(&p.SendsPerAccount, d.SendsPerAccount)
	setInt(&p.SendsPerUser, d.SendsPerUser)
	if p.Issuer == "" {
		p.Issuer = d.Issuer
	}
	return p
}
