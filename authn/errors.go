package authn

import (
	"errors"
	"fmt"
	"time"
)

// Class groups errors by what the caller did wrong; ipc/server has the one
// switch that turns a Class into an HTTP status.
type Class int

const (
	ClassInternal Class = iota
	ClassInvalid
	ClassNotFound
	ClassConflict
	ClassForbidden
	ClassTooMany
	ClassUnavailable
)

// Stable machine codes. They are part of the API: never rename one.
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
)

// Error is a domain error with a stable code, a class and a human detail.
// Detail never carries a secret, a code or a PIN.
type Error struct {
	Class      Class
	Code       string
	Detail     string
	RetryAfter time.Duration // > 0 when the caller should wait
	// Hint suggests the next step (HintResync); never derived from the
	// proof that was refused.
	Hint  string
	Extra map[string]any
	Err   error // wrapped cause, not shown to clients
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Detail, e.Err)
	}
	return e.Code + ": " + e.Detail
}

func (e *Error) Unwrap() error { return e.Err }

// Is matches another *Error by code, so errors.Is(err, ErrNotFound) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Errorf builds an *Error.
func Errorf(class Class, code, format string, args ...any) *Error {
	return &Error{Class: class, Code: code, Detail: fmt.Sprintf(format, args...)}
}

// HintResync: the device's clock or counter may have run away; the caller
// may send the code with the next one (AuthRequest.NextCode).
const HintResync = "resync"

// Sentinels for errors.Is.
var (
	ErrNotFound         = &Error{Class: ClassNotFound, Code: CodeNotFound}
	ErrPermissionDenied = &Error{Class: ClassForbidden, Code: CodePermissionDenied}
	ErrStepUpRequired   = &Error{Class: ClassForbidden, Code: CodeStepUpRequired}
	ErrInvalidCode      = &Error{Class: ClassForbidden, Code: CodeInvalidCode}
	ErrLockedOut        = &Error{Class: ClassTooMany, Code: CodeLockedOut}
	ErrStoreBusy        = &Error{Class: ClassUnavailable, Code: CodeStoreBusy}
)

// AsError returns err as an *Error, wrapping anything else as internal.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Class: ClassInternal, Code: CodeInternal, Detail: "internal error", Err: err}
}
