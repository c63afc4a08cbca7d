package authn

import "time"

// DeviceType is one of the three kinds of MFA device an account may hold.
type DeviceType string

const (
	DeviceTOTP        DeviceType = "totp"         // a virtual authenticator app
	DeviceHardwareOTP DeviceType = "hardware-otp" // a vendor token seeded from a PSKC file
	DeviceFIDO        DeviceType = "fido"         // a FIDO2/U2F security key
)

// DeviceState is a device's place in its lifecycle. Deleted devices are
// removed from the store; the audit log keeps their history.
type DeviceState string

const (
	StatePending     DeviceState = "pending"
	StateActive      DeviceState = "active"
	StateDeactivated DeviceState = "deactivated"
)

// MaxDevices is the per-account cap over every type and every state but
// deleted (seed point 2).
const MaxDevices = 8

// Device is one MFA device of an account.
type Device struct {
	ID            string      `json:"id"`
	Account       string      `json:"account"`
	Type          DeviceType  `json:"type"`
	State         DeviceState `json:"state"`
	Label         string      `json:"label,omitempty"`
	Serial        string      `json:"serial,omitempty"`
	CreatedAt     time.Time   `json:"created_at"`
	ExpiresAt     time.Time   `json:"expires_at,omitzero"` // pending only
	ActivatedAt   time.Time   `json:"activated_at,omitzero"`
	DeactivatedAt time.Time   `json:"deactivated_at,omitzero"`
	LastUsedAt    time.Time   `json:"last_used_at,omitzero"`

	OTP  *OTPState  `json:"otp,omitempty"`
	FIDO *FIDOState `json:"fido,omitempty"`

	// Resync attempts have their own budget per hour.
	ResyncFailures    int       `json:"resync_failures,omitempty"`
	ResyncWindowStart time.Time `json:"resync_window_start,omitzero"`

	// Secret is the OTP seed. The store seals it at rest and it never
	// leaves the daemon after enrollment.
	Secret []byte `json:"-"`
}

// OTPState is what a TOTP or HOTP device needs besides its secret.
type OTPState struct {
	Event     bool   `json:"event,omitempty"` // HOTP (counter-based) rather than TOTP
	Algorithm string `json:"algorithm"`       // SHA1, SHA256, SHA512
	Digits    int    `json:"digits"`
	Period    int    `json:"period,omitempty"` // seconds, TOTP only
	// LastCounter is the device's own last accepted counter (time step
	// with drift included, or HOTP counter). Nothing at or below it is
	// accepted again.
	LastCounter uint64 `json:"last_counter"`
	// Used says LastCounter was accepted; until then it is the first
	// counter the device may use (a fresh HOTP token's counter).
	Used bool `json:"used"`
	// Drift is the learned offset, in steps, of the device's clock from
	// the host's (TOTP only).
	Drift int64 `json:"drift"`
}

// Token is a hardware OTP token in the inventory, imported from a vendor
// seed file and waiting to be (or already) assigned to an account.
type Token struct {
	Serial       string    `json:"serial"`
	Manufacturer string    `json:"manufacturer,omitempty"`
	Model        string    `json:"model,omitempty"`
	OTP          OTPState  `json:"otp"`
	ImportedAt   time.Time `json:"imported_at"`
	AssignedTo   string    `json:"assigned_to,omitempty"`
	DeviceID     string    `json:"device_id,omitempty"`
	Retired      bool      `json:"retired,omitempty"`
	Secret       []byte    `json:"-"`
}
