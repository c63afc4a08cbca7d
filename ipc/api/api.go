package api

import (
	"fmt"
	"time"
)

// Version of the API, the first path element.
const Version = "v1"

// Routes. Patterns use Go 1.22 ServeMux syntax.
const (
	PathInfo     = "/v1/info"
	PathAccounts = "/v1/accounts"
	PathAccount  = "/v1/accounts/{name}"
	PathAudit    = "/v1/audit"
	PathBackup   = "/v1/admin/backup"
)

// Content types.
const (
	ContentJSON    = "application/json"
	ContentProblem = "application/problem+json"
	ContentNDJSON  = "application/x-ndjson"
	ContentBackup  = "application/octet-stream"
)

// Problem is every non-2xx answer's body (RFC 9457), with a stable Code.
type Problem struct {
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Status     int            `json:"status"`
	Detail     string         `json:"detail"`
	Code       string         `json:"code"`
	RetryAfter int            `json:"retry_after,omitempty"` // seconds
	Extra      map[string]any `json:"extra,omitempty"`
}

func (p *Problem) Error() string {
	return fmt.Sprintf("%s (%s)", p.Detail, p.Code)
}

// Is lets errors.Is(err, &api.Problem{Code: X}) match by code.
func (p *Problem) Is(target error) bool {
	t, ok := target.(*Problem)
	return ok && t.Code == p.Code
}

// Stable error codes (the Code of a Problem).
const (
	CodeInternal             = "internal"
	CodeInvalidRequest       = "invalid_request"
	CodeNotFound             = "not_found"
	CodeAccountExists        = "account_exists"
	CodePermissionDenied     = "permission_denied"
	CodeStepUpRequired       = "step_up_required"
	CodeDeviceLimitReached   = "device_limit_reached"
	CodeDeviceOutOfSync      = "device_out_of_sync"
	CodeInvalidCode          = "invalid_code"
	CodeLockedOut            = "locked_out"
	CodeRetryLater           = "retry_later"
	CodeResyncNotApplicable  = "resync_not_applicable"
	CodeDeviceNotPending     = "device_not_pending"
	CodeDeviceExpired        = "device_expired"
	CodeClockOff             = "device_clock_off"
	CodeTokenNotInInventory  = "token_not_in_inventory"
	CodeTokenAssigned        = "token_already_assigned"
	CodeImportRefused        = "import_refused"
	CodeNoActiveDevice       = "no_active_device"
	CodeRecoveryPending      = "recovery_pending"
	CodeStoreBusy            = "store_busy"
	CodeAccountHasDevices    = "account_has_devices"
	CodeDeviceStateConflict  = "device_state_conflict"
	CodeUnsupportedType      = "unsupported_device_type"
	CodeTooManyConnections   = "too_many_connections"
	CodeTooManyStreams       = "too_many_streams"
	CodeRequestTooLarge      = "request_too_large"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeUnsupportedMediaType = "unsupported_media_type"
)

// Info answers GET /v1/info.
type Info struct {
	Version   string    `json:"version"`
	API       string    `json:"api"`
	StartedAt time.Time `json:"started_at"`
	Store     StoreInfo `json:"store"`
	Drivers   []string  `json:"drivers"`
	Keys      int       `json:"keys"`
	Emulators bool      `json:"emulators"`
	Caller    Caller    `json:"caller"`
}

// StoreInfo describes the database.
type StoreInfo struct {
	Backend string `json:"backend"`
	Path    string `json:"path"`
	Schema  int    `json:"schema"`
}

// Caller is how the daemon sees the peer that asked.
type Caller struct {
	UID   uint32 `json:"uid"`
	Name  string `json:"name,omitempty"`
	Admin bool   `json:"admin"`
}

// Account is an account as the API shows it.
type Account struct {
	Name           string    `json:"name"`
	Kind           string    `json:"kind"`
	Email          string    `json:"email,omitempty"`
	EmailVerified  bool      `json:"email_verified"`
	Phone          string    `json:"phone,omitempty"`
	PhoneVerified  bool      `json:"phone_verified"`
	Flags          []string  `json:"flags"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	FailedAttempts int       `json:"failed_attempts"`
	LockedUntil    time.Time `json:"locked_until,omitzero"`
}

// CreateAccount is the body of POST /v1/accounts.
type CreateAccount struct {
	Name          string   `json:"name"`
	Kind          string   `json:"kind,omitempty"` // default member
	Email         string   `json:"email,omitempty"`
	EmailVerified bool     `json:"email_verified,omitempty"`
	Phone         string   `json:"phone,omitempty"`
	PhoneVerified bool     `json:"phone_verified,omitempty"`
	Flags         []string `json:"flags,omitempty"`
}

// PatchAccount is the body of PATCH /v1/accounts/{name}; absent fields stay.
type PatchAccount struct {
	Kind          *string   `json:"kind,omitempty"`
	Email         *string   `json:"email,omitempty"`
	EmailVerified *bool     `json:"email_verified,omitempty"`
	Phone         *string   `json:"phone,omitempty"`
	PhoneVerified *bool     `json:"phone_verified,omitempty"`
	Flags         *[]string `json:"flags,omitempty"`
	Unlock        bool      `json:"unlock,omitempty"`
}

// AccountList answers GET /v1/accounts.
type AccountList struct {
	Accounts []Account `json:"accounts"`
}

// AuditEvent is one audit entry.
type AuditEvent struct {
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	ActorUID uint32    `json:"actor_uid"`
	Actor    string    `json:"actor,omitempty"`
	Action   string    `json:"action"`
	Outcome  string    `json:"outcome"`
	Account  string    `json:"account,omitempty"`
	Device   string    `json:"device,omitempty"`
	Detail   string    `json:"detail,omitempty"`
}

// AuditPage answers GET /v1/audit?after=SEQ&limit=N. Next is the cursor
// for the following page (the last Seq), or the same after when empty.
type AuditPage struct {
	Events []AuditEvent `json:"events"`
	Next   uint64       `json:"next"`
}
