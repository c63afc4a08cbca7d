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

	PathRotateKey = "/v1/admin/rotate-key"

	PathPasswordChanged = "/v1/accounts/{name}/password-changed"

	PathDeviceDeactivate = "/v1/accounts/{name}/devices/{id}/deactivate"
	PathDeviceReplace    = "/v1/accounts/{name}/devices/{id}/replace"
	PathDeviceReportLost = "/v1/accounts/{name}/devices/{id}/report-lost"
	PathTemporaryCode    = "/v1/accounts/{name}/temporary-code"
	PathContact          = "/v1/accounts/{name}/contact"
	PathContactVerify    = "/v1/accounts/{name}/contact/verify"
	PathRecovery         = "/v1/recovery"
	PathRecoveryStep     = "/v1/recovery/{id}/{step}" // email, phone, resend

	PathKeys           = "/v1/keys"
	PathKeyWink        = "/v1/keys/{id}/wink"
	PathKeyPIN         = "/v1/keys/{id}/pin"
	PathKeyReset       = "/v1/keys/{id}/reset"
	PathKeyCheck       = "/v1/keys/{id}/check"
	PathEmulators      = "/v1/emulators"
	PathEmulator       = "/v1/emulators/{id}"
	PathEmulatorAction = "/v1/emulators/{id}/{action}" // touch, unplug, plug, fault
	PathEvents         = "/v1/events"

	PathDevices        = "/v1/accounts/{name}/devices"
	PathDevice         = "/v1/accounts/{name}/devices/{id}"
	PathDeviceActivate = "/v1/accounts/{name}/devices/{id}/activate"
	PathDeviceResync   = "/v1/accounts/{name}/devices/{id}/resync"
	PathDeviceImport   = "/v1/accounts/{name}/devices/import"
	PathAuthenticate   = "/v1/authenticate"
	PathTokens         = "/v1/tokens"
	PathTokensImport   = "/v1/tokens/import"
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
	Type       string `json:"type"`
	Title      string `json:"title"`
	Status     int    `json:"status"`
	Detail     string `json:"detail"`
	Code       string `json:"code"`
	RetryAfter int    `json:"retry_after,omitempty"` // seconds
	// Hint suggests the next step; "resync": the device's clock may be
	// off, so ask for the next code too and send both (code, next_code).
	Hint  string         `json:"hint,omitempty"`
	Extra map[string]any `json:"extra,omitempty"`
}

func (p *Problem) Error() string {
	return fmt.Sprintf("%s (%s)", p.Detail, p.Code)
}

// Is lets errors.Is(err, &api.Problem{Code: X}) match by code.
func (p *Problem) Is(target error) bool {
	t, ok := target.(*Problem)
	return ok && t.Code == p.Code
}

// Hints of a Problem.
const HintResync = "resync"

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
	CodeCodeAlreadyUsed      = "code_already_used"
	CodeAccountDisabled      = "account_disabled"
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
	CodeStoreOffline         = "store_offline"
	CodeBackupElsewhere      = "backup_elsewhere"
	CodeAccountHasDevices    = "account_has_devices"
	CodeDeviceStateConflict  = "device_state_conflict"
	CodeUnsupportedType      = "unsupported_device_type"
	CodeTooManyConnections   = "too_many_connections"
	CodeTooManyStreams       = "too_many_streams"
	CodeRequestTooLarge      = "request_too_large"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeNoKeyPresent         = "no_key_present"
	CodeNoKeyTouched         = "no_key_touched"
	CodePINRequired          = "pin_required"
	CodeInvalidPIN           = "invalid_pin"
	CodePINBlocked           = "pin_blocked"
	CodeCredentialExcluded   = "credential_excluded"
	CodeAttestationRefused   = "attestation_refused"
	CodeEmulatedKeyRefused   = "emulated_key_refused"
	CodePossiblyCloned       = "possibly_cloned"
	CodeKeyError             = "key_error"
	CodeKeyNotFound          = "key_not_found"
	CodeEmulatorsDisabled    = "emulators_disabled"
	CodeResetWindow          = "reset_window_passed"
	CodeRecoveryNeedsAdmin   = "recovery_needs_admin"
	CodeRecoveryWrongStep    = "recovery_wrong_step"
	CodeRecoveryAborted      = "recovery_aborted"
	CodeRecoveryDelivery     = "recovery_delivery_failed"
	CodeContactNotPending    = "contact_not_pending"
	CodeKeyRemoved           = "key_removed"
	CodeKeyNotRotatable      = "key_not_rotatable"
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
	Clock     Clock     `json:"clock"`
	Caller    Caller    `json:"caller"`
	// Goroutines is the daemon's goroutine count (a leak shows here).
	Goroutines int `json:"goroutines"`
}

// Clock is the host clock check: when most recently verified TOTP devices
// show the same drift, the host clock, not the tokens, looks wrong.
type Clock struct {
	Verdict       string `json:"verdict"` // "ok", "host_clock_suspect" or "unknown" (too few devices)
	OffsetSeconds int64  `json:"offset_seconds,omitempty"`
	Devices       int    `json:"devices"`
	Agreeing      int    `json:"agreeing,omitempty"`
}

// StoreInfo describes the database.
type StoreInfo struct {
	Backend string `json:"backend"`
	Path    string `json:"path"`
	Schema  int    `json:"schema"`
	// State is "online" or "offline" for a shared database (postgres);
	// OfflineSince says since when it has not answered.
	State        string     `json:"state,omitempty"`
	OfflineSince *time.Time `json:"offline_since,omitempty"`
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
	// EverEnrolled: a device was activated once. Without an active device
	// such an account is recovery pending (no bootstrap enrollment).
	EverEnrolled bool `json:"ever_enrolled"`
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

// MinBackupPassphrase is the shortest passphrase a keyed backup takes.
const MinBackupPassphrase = 12

// KeyedBackup asks POST /v1/admin/backup (uid 0) for a backup that carries
// the master key, sealed under Passphrase (Argon2id, AES-256-GCM), for
// recovery on another machine. The answer is the backup file, streamed.
type KeyedBackup struct {
	Passphrase string `json:"passphrase"`
}

// KeyRotation answers POST /v1/admin/rotate-key (uid 0): every secret is
// re-sealed under a new master key, now in KeyFile; the replaced key is
// kept in OldKeyFile for backups taken before.
type KeyRotation struct {
	KeyFile    string `json:"key_file"`
	OldKeyFile string `json:"old_key_file"`
	Resealed   int    `json:"resealed"`
}

// AuditPage answers GET /v1/audit?after=SEQ&limit=N. Next is the cursor
// for the following page (the last Seq), or the same after when empty.
type AuditPage struct {
	Events []AuditEvent `json:"events"`
	Next   uint64       `json:"next"`
}

// Device is an MFA device as the API shows it (never with its secret).
type Device struct {
	ID            string    `json:"id"`
	Account       string    `json:"account"`
	Type          string    `json:"type"`
	State         string    `json:"state"`
	Label         string    `json:"label,omitempty"`
	Serial        string    `json:"serial,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	ExpiresAt     time.Time `json:"expires_at,omitzero"`
	ActivatedAt   time.Time `json:"activated_at,omitzero"`
	DeactivatedAt time.Time `json:"deactivated_at,omitzero"`
	LastUsedAt    time.Time `json:"last_used_at,omitzero"`
	OTP           *OTP      `json:"otp,omitempty"`
	FIDO          *FIDO     `json:"fido,omitempty"`
}

// FIDO describes a security key credential.
type FIDO struct {
	AAGUID          string `json:"aaguid"`
	Model           string `json:"model,omitempty"`
	Format          string `json:"format"`
	AttestationType string `json:"attestation_type"`
	Verdict         string `json:"verdict"`
	SignCount       uint32 `json:"sign_count"`
	Software        bool   `json:"software,omitempty"`
	PossiblyCloned  bool   `json:"possibly_cloned,omitempty"`
	CredentialID    []byte `json:"credential_id,omitempty"` // base64
	// Admins reading one device get the signed registration bytes, so an
	// audit can verify the attestation again (base64url, no padding).
	AttestationObject string `json:"attestation_object,omitempty"`
	ClientDataJSON    string `json:"client_data_json,omitempty"`
}

// OTP describes an OTP device's parameters and sync state.
type OTP struct {
	Kind         string `json:"kind"` // "totp" or "hotp"
	Algorithm    string `json:"algorithm"`
	Digits       int    `json:"digits"`
	Period       int    `json:"period,omitempty"`
	DriftSteps   int64  `json:"drift_steps"`
	DriftSeconds int64  `json:"drift_seconds"`
}

// DeviceList answers GET /v1/accounts/{name}/devices.
type DeviceList struct {
	Devices []Device `json:"devices"`
	// Warning is set when the account has a single active device: one
	// more avoids a lock-out when it is lost.
	Warning string `json:"warning,omitempty"`
}

// CreateDevice is the body of POST /v1/accounts/{name}/devices.
type CreateDevice struct {
	Type       string `json:"type"` // totp, hardware-otp, fido
	Label      string `json:"label,omitempty"`
	Serial     string `json:"serial,omitempty"`       // hardware-otp
	Algorithm  string `json:"algorithm,omitempty"`    // totp: SHA1 (default), SHA256, SHA512
	Digits     int    `json:"digits,omitempty"`       // totp: 6 (default) or 8
	Period     int    `json:"period,omitempty"`       // totp: 30 (default) or 60 seconds
	PIN        string `json:"pin,omitempty"`          // fido: the key's PIN, after pin_required
	WaitForKey bool   `json:"wait_for_key,omitempty"` // fido: wait for a key to be plugged in
}

// Enrollment answers a new enrollment. Secret, OTPAuthURI and QRPNG appear
// in this answer only, never again.
type Enrollment struct {
	Device     Device `json:"device"`
	Secret     string `json:"secret,omitempty"`      // base32
	OTPAuthURI string `json:"otpauth_uri,omitempty"` // for authenticator apps
	QRPNG      []byte `json:"qr_png,omitempty"`      // base64 PNG of the URI
	Next       string `json:"next"`
}

// ImportDevice is the body of POST /v1/accounts/{name}/devices/import: a
// device the account's user already has, registered by another tool,
// brought over active: an OTP secret (google-authenticator's file, an
// otpauth:// URI) or a security key credential (pam-u2f's u2f_keys). The
// answer is the Device (201), or, with DryRun, the device it would be
// (200), nothing written.
type ImportDevice struct {
	Label  string `json:"label,omitempty"`
	Kind   string `json:"kind"`             // totp, hotp or fido
	Secret string `json:"secret,omitempty"` // totp, hotp: base32
	// Algorithm (SHA1, SHA256, SHA512), Digits and Period (seconds, TOTP):
	// zero for the defaults.
	Algorithm string `json:"algorithm,omitempty"`
	Digits    int    `json:"digits,omitempty"`
	Period    int    `json:"period,omitempty"`
	// Counter (hotp) is the next counter the token will use.
	Counter uint64 `json:"counter,omitempty"`
	// UsedSteps (totp) are time steps already used: nothing at or below
	// the highest signs in again.
	UsedSteps []uint64 `json:"used_steps,omitempty"`
	// ScratchCodes (totp, hotp) are google-authenticator's emergency codes
	// (8 digits): single-use temporary codes of the account, no expiry.
	ScratchCodes []string `json:"scratch_codes,omitempty"`
	// CredentialID (fido) is the credential's id; PublicKey its raw key
	// as pam-u2f keeps it (es256: X||Y or 0x04||X||Y; eddsa: 32 bytes);
	// Alg es256 or eddsa; Origin the relying party it was made for, which
	// must be mfad's.
	CredentialID []byte `json:"credential_id,omitempty"`
	PublicKey    []byte `json:"public_key,omitempty"`
	Alg          string `json:"alg,omitempty"`
	Origin       string `json:"origin,omitempty"`
	// Source names the tool the device comes from, for the audit log.
	Source string `json:"source,omitempty"`
	DryRun bool   `json:"dry_run,omitempty"`
}

// CodePair is the body of activate and resync: two consecutive codes,
// Code2 the one the device shows now, Code1 the one before it.
type CodePair struct {
	Code1 string `json:"code1"`
	Code2 string `json:"code2"`
}

// Authenticate is the body of POST /v1/authenticate.
type Authenticate struct {
	Account string `json:"account"`
	// Code is a TOTP/HOTP code or a temporary access code; without one,
	// the account's security keys are asked for an assertion.
	Code string `json:"code,omitempty"`
	// NextCode is the code the device shows after Code: together they
	// resync a drifted device and sign in (counted against its resync
	// budget). Sent after a refusal whose problem carries "hint": "resync".
	NextCode      string `json:"next_code,omitempty"`
	PIN           string `json:"pin,omitempty"`
	WaitForKey    bool   `json:"wait_for_key,omitempty"`
	RecoveryToken string `json:"recovery_token,omitempty"`
}

// AccountName names the account the request acts on (for the router).
func (a Authenticate) AccountName() string { return a.Account }

// AuthResult answers a successful authentication.
type AuthResult struct {
	OK bool `json:"ok"`
	// Method is how the sign-in was proven: device, temporary_code or recovery.
	Method       string     `json:"method"`
	Account      string     `json:"account"`
	Device       *DeviceRef `json:"device,omitempty"`
	StepUpToken  string     `json:"step_up_token"`
	StepUpExpiry time.Time  `json:"step_up_expires_at"`
	Warning      string     `json:"warning,omitempty"`
}

// TokenImport is the body of POST /v1/tokens/import: a PSKC (RFC 6030)
// seed file and the key that decrypts it, if encrypted.
type TokenImport struct {
	PSKC         string `json:"pskc"`
	Password     string `json:"password,omitempty"`       // PBKDF2-protected files
	PreSharedKey string `json:"pre_shared_key,omitempty"` // hex, AES-128/256 pre-shared key files
}

// Token is a hardware OTP token in the inventory.
type Token struct {
	Serial       string    `json:"serial"`
	Manufacturer string    `json:"manufacturer,omitempty"`
	Model        string    `json:"model,omitempty"`
	Kind         string    `json:"kind"` // totp or hotp
	Algorithm    string    `json:"algorithm"`
	Digits       int       `json:"digits"`
	Period       int       `json:"period,omitempty"`
	ImportedAt   time.Time `json:"imported_at"`
	AssignedTo   string    `json:"assigned_to,omitempty"`
	DeviceID     string    `json:"device_id,omitempty"`
	Retired      bool      `json:"retired,omitempty"`
}

// TokenList answers GET /v1/tokens and POST /v1/tokens/import.
type TokenList struct {
	Tokens []Token `json:"tokens"`
}

// Key is a connected security key.
type Key struct {
	ID           string          `json:"id"`
	Driver       string          `json:"driver"`
	Transport    string          `json:"transport,omitempty"`
	EmulatorID   string          `json:"emulator_id,omitempty"`
	VendorID     uint16          `json:"vendor_id,omitempty"`
	ProductID    uint16          `json:"product_id,omitempty"`
	Manufacturer string          `json:"manufacturer,omitempty"`
	Product      string          `json:"product,omitempty"`
	Serial       string          `json:"serial,omitempty"`
	AAGUID       string          `json:"aaguid,omitempty"`
	Versions     []string        `json:"versions,omitempty"`
	Extensions   []string        `json:"extensions,omitempty"`
	Options      map[string]bool `json:"options,omitempty"`
	PINRetries   *int            `json:"pin_retries,omitempty"`
	// Status is "ok", or "failing" after an operation failed on the key
	// itself (framing errors, no answer); LastError says how.
	Status    string `json:"status"`
	LastError string `json:"last_error,omitempty"`
}

// KeyList answers GET /v1/keys.
type KeyList struct {
	Keys []Key `json:"keys"`
}

// KeyPIN is the body of POST /v1/keys/{id}/pin: sets the first PIN, or
// changes it when CurrentPIN is given.
type KeyPIN struct {
	PIN        string `json:"pin"`
	CurrentPIN string `json:"current_pin,omitempty"`
}

// KeyCheckRequest is the body of POST /v1/keys/{id}/check: run the
// conformance battery on a key.
type KeyCheckRequest struct {
	// Destructive allows the checks that change what the key holds: set
	// and change its PIN, make and erase credentials, reset it.
	Destructive bool `json:"destructive,omitempty"`
	// PIN is the key's PIN when it has one, or the PIN the destructive
	// checks set. It is never logged nor echoed.
	PIN string `json:"pin,omitempty"`
	// Only runs just the checks with these ids.
	Only []string `json:"only,omitempty"`
}

// KeyCheckReport answers it: the battery's verdicts on one key (the JSON
// report of docs/hardware.md).
type KeyCheckReport struct {
	Key        KeyIdentity      `json:"key"`
	Started    time.Time        `json:"started"`
	DurationMS int64            `json:"duration_ms"`
	Passed     int              `json:"passed"`
	Failed     int              `json:"failed"`
	Skipped    int              `json:"skipped"`
	Results    []KeyCheckResult `json:"results"`
}

// KeyIdentity says which key a report is about.
type KeyIdentity struct {
	ID           string `json:"id"` // the key's id in /v1/keys
	Driver       string `json:"driver"`
	Path         string `json:"path"`
	VendorID     uint16 `json:"vendor_id"`
	ProductID    uint16 `json:"product_id"`
	Manufacturer string `json:"manufacturer,omitempty"`
	Product      string `json:"product,omitempty"`
	Serial       string `json:"serial,omitempty"`
	AAGUID       string `json:"aaguid"`
	// AAGUIDDescription is the model's name from the configured offline
	// MDS3 blob, when it lists the AAGUID.
	AAGUIDDescription string `json:"aaguid_description,omitempty"`
	// Firmware is GetInfo's firmwareVersion (0 when the key gives none);
	// DeviceVersion the CTAPHID_INIT device version "major.minor.build".
	Firmware      uint64   `json:"firmware"`
	DeviceVersion string   `json:"device_version"`
	Versions      []string `json:"versions"`
}

// KeyCheckResult is one check's outcome. Result is "pass", "fail" or
// "skip"; Reason says why it failed or was skipped; Observed lists what
// the check saw. In progress events ("check_started") Result is empty.
type KeyCheckResult struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Section     string   `json:"section"`
	Touch       bool     `json:"touch,omitempty"`
	Destructive bool     `json:"destructive,omitempty"`
	Result      string   `json:"result,omitempty"`
	Reason      string   `json:"reason,omitempty"`
	Observed    []string `json:"observed,omitempty"`
	DurationMS  int64    `json:"duration_ms,omitempty"`
}

// AddEmulator is the body of POST /v1/emulators.
type AddEmulator struct {
	Name     string `json:"name"`
	Presence string `json:"presence,omitempty"` // auto (default) or manual
}

// Emulator is a software key.
type Emulator struct {
	ID       string `json:"id"`
	KeyID    string `json:"key_id"`
	Presence string `json:"presence"`
	Plugged  bool   `json:"plugged"`
	// Cancellations counts operations the key saw cancelled (CTAPHID_CANCEL).
	Cancellations int `json:"cancellations"`
	// CACertificatePEM is the key's attestation root, for relying parties
	// that trust software keys (attestation = "trusted").
	CACertificatePEM string `json:"ca_certificate_pem"`
}

// EmulatorList answers GET /v1/emulators.
type EmulatorList struct {
	Emulators []Emulator `json:"emulators"`
}

// Fault is the body of POST /v1/emulators/{id}/fault.
type Fault struct {
	Kind       string `json:"kind"` // no_answer, ctap_error, corrupt_frames, counter_rollback, slow_keepalive, clear
	Status     byte   `json:"status,omitempty"`
	Count      int    `json:"count,omitempty"`
	IntervalMS int    `json:"interval_ms,omitempty"`
}

// Event is one line of an NDJSON stream: GET /v1/events, and the progress
// of long operations (touch a key), whose last line is always a "result".
type Event struct {
	Event  string      `json:"event"`
	Status string      `json:"status,omitempty"` // keepalive: processing or up_needed
	Key    *Key        `json:"key,omitempty"`
	Audit  *AuditEvent `json:"audit,omitempty"`
	Count  int         `json:"count,omitempty"`
	Keys   int         `json:"keys,omitempty"`
	OK     *bool       `json:"ok,omitempty"`
	Result any         `json:"result,omitempty"`
	Error  *Problem    `json:"error,omitempty"`
	// Check is the check an event of POST /v1/keys/{id}/check is about
	// ("check_started", "check_done", "touch_required", "do_not_touch",
	// "replug_required"); Message says what the user must do.
	Check   *KeyCheckResult `json:"check,omitempty"`
	Message string          `json:"message,omitempty"`
}

// TemporaryCodeRequest is the body of POST /v1/accounts/{name}/temporary-code.
type TemporaryCodeRequest struct {
	TTLHours int `json:"ttl_hours,omitempty"` // default 24
}

// TemporaryCode answers it: the code is shown this once.
type TemporaryCode struct {
	Code      string    `json:"code"`
	ExpiresAt time.Time `json:"expires_at"`
}

// ContactChange is the body of POST /v1/accounts/{name}/contact: one of them.
type ContactChange struct {
	Email string `json:"email,omitempty"`
	Phone string `json:"phone,omitempty"`
}

// ContactSent answers it: where the code went (masked).
type ContactSent struct {
	SentTo string `json:"sent_to"`
	Next   string `json:"next"`
}

// Code is the body of code-proving routes.
type Code struct {
	Code string `json:"code"`
}

// RecoveryStart is the body of POST /v1/recovery.
type RecoveryStart struct {
	Account string `json:"account"`
}

// AccountName names the account the request acts on (for the router).
func (r RecoveryStart) AccountName() string { return r.Account }

// Recovery is an owner recovery's state. RecoveryToken appears once both
// codes were proven: it signs in once (/v1/authenticate) and is the
// step-up for replacing devices until ExpiresAt.
type Recovery struct {
	ID            string    `json:"id"`
	Account       string    `json:"account"`
	Stage         string    `json:"stage"` // email, phone, done
	SentTo        string    `json:"sent_to,omitempty"`
	ExpiresAt     time.Time `json:"expires_at"`
	RecoveryToken string    `json:"recovery_token,omitempty"`
}

// DeviceRef names a device in a sign-in answer (GET the device for more).
type DeviceRef struct {
	ID    string `json:"id"`
	Type  string `json:"type"`
	Label string `json:"label,omitempty"`
}
