package authn

import "context"

// Store is the persistence the domain needs. authn/store implements it on
// bbolt.
type Store interface {
	// View runs fn in a read-only transaction.
	View(fn func(Tx) error) error
	// Update runs fn in a durable write transaction that it may share with
	// other callers (group commit). fn may run more than once when another
	// caller's function in the same batch fails, so it must depend only on
	// the transaction's state and have no side effects outside it.
	Update(ctx context.Context, fn func(Tx) error) error
}

// Tx is one transaction's view of the store. Lookups of absent records
// return an error that errors.Is(err, ErrNotFound) matches.
type Tx interface {
	Account(name string) (*Account, error)
	Accounts() ([]Account, error)
	PutAccount(a *Account) error
	// DeleteAccount removes the account and every device record under it.
	DeleteAccount(name string) error

	Devices(account string) ([]Device, error)
	// ActiveOTPDevices is what a sign-in reads of the account's devices:
	// its active OTP devices (those Devices answers, with their secrets)
	// and how many of its devices are active, of any kind. A backend may
	// leave the other devices' records undecoded and their secrets sealed.
	ActiveOTPDevices(account string) (otps []Device, active int, err error)
	Device(account, id string) (*Device, error)
	PutDevice(d *Device) error
	DeleteDevice(account, id string) error

	Token(serial string) (*Token, error)
	Tokens() ([]Token, error)
	PutToken(t *Token) error
	DeleteToken(serial string) error

	// AppendAudit assigns e.Seq and appends it, trimming the oldest entries
	// beyond the store's retention limit.
	AppendAudit(e *AuditEvent) error
	// Audit lists entries with Seq > after, oldest first, at most limit.
	Audit(after uint64, limit int) ([]AuditEvent, error)
}

// ActiveOTP picks out of devs (an account's devices) what
// Tx.ActiveOTPDevices answers, for a backend that reads them all.
func ActiveOTP(devs []Device) (otps []Device, active int) {
	for _, d := range devs {
		if d.State != StateActive {
			continue
		}
		active++
		if d.OTP != nil {
			otps = append(otps, d)
		}
	}
	return otps, active
}
