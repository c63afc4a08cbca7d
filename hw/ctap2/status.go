package ctap2

import (
	"errors"
	"fmt"
)

// StatusOK is the status byte of a successful response
// (CTAP 2.1 §8.2 "Status codes", CTAP1_ERR_SUCCESS / CTAP2_OK).
const StatusOK byte = 0x00

// StatusError is a non-zero CTAP status byte (CTAP 2.1 §8.2 "Status codes").
// Values compare with ==, so errors.Is(err, ErrPINInvalid) works on any
// error that wraps one, and errors.As recovers the byte.
type StatusError byte

// Status codes, CTAP 2.1 §8.2 and CTAP 2.2 §8.2 "Status codes".
const (
	ErrInvalidCommand         StatusError = 0x01 // CTAP1_ERR_INVALID_COMMAND
	ErrInvalidParameter       StatusError = 0x02 // CTAP1_ERR_INVALID_PARAMETER
	ErrInvalidLength          StatusError = 0x03 // CTAP1_ERR_INVALID_LENGTH
	ErrInvalidSeq             StatusError = 0x04 // CTAP1_ERR_INVALID_SEQ
	ErrTimeout                StatusError = 0x05 // CTAP1_ERR_TIMEOUT
	ErrChannelBusy            StatusError = 0x06 // CTAP1_ERR_CHANNEL_BUSY
	ErrLockRequired           StatusError = 0x0A // CTAP1_ERR_LOCK_REQUIRED
	ErrInvalidChannel         StatusError = 0x0B // CTAP1_ERR_INVALID_CHANNEL
	ErrCBORUnexpectedType     StatusError = 0x11 // CTAP2_ERR_CBOR_UNEXPECTED_TYPE
	ErrInvalidCBOR            StatusError = 0x12 // CTAP2_ERR_INVALID_CBOR
	ErrMissingParameter       StatusError = 0x14 // CTAP2_ERR_MISSING_PARAMETER
	ErrLimitExceeded          StatusError = 0x15 // CTAP2_ERR_LIMIT_EXCEEDED
	ErrUnsupportedExtension   StatusError = 0x16 // CTAP2_ERR_UNSUPPORTED_EXTENSION (CTAP 2.0)
	ErrFPDatabaseFull         StatusError = 0x17 // CTAP2_ERR_FP_DATABASE_FULL
	ErrLargeBlobStorageFull   StatusError = 0x18 // CTAP2_ERR_LARGE_BLOB_STORAGE_FULL
	ErrCredentialExcluded     StatusError = 0x19 // CTAP2_ERR_CREDENTIAL_EXCLUDED
	ErrProcessing             StatusError = 0x21 // CTAP2_ERR_PROCESSING
	ErrInvalidCredential      StatusError = 0x22 // CTAP2_ERR_INVALID_CREDENTIAL
	ErrUserActionPending      StatusError = 0x23 // CTAP2_ERR_USER_ACTION_PENDING
	ErrOperationPending       StatusError = 0x24 // CTAP2_ERR_OPERATION_PENDING
	ErrNoOperations           StatusError = 0x25 // CTAP2_ERR_NO_OPERATIONS
	ErrUnsupportedAlgorithm   StatusError = 0x26 // CTAP2_ERR_UNSUPPORTED_ALGORITHM
	ErrOperationDenied        StatusError = 0x27 // CTAP2_ERR_OPERATION_DENIED
	ErrKeyStoreFull           StatusError = 0x28 // CTAP2_ERR_KEY_STORE_FULL
	ErrNotBusy                StatusError = 0x29 // CTAP2_ERR_NOT_BUSY (CTAP 2.0)
	ErrNoOperationPending     StatusError = 0x2A // CTAP2_ERR_NO_OPERATION_PENDING
	ErrUnsupportedOption      StatusError = 0x2B // CTAP2_ERR_UNSUPPORTED_OPTION
	ErrInvalidOption          StatusError = 0x2C // CTAP2_ERR_INVALID_OPTION
	ErrKeepaliveCancel        StatusError = 0x2D // CTAP2_ERR_KEEPALIVE_CANCEL
	ErrNoCredentials          StatusError = 0x2E // CTAP2_ERR_NO_CREDENTIALS
	ErrUserActionTimeout      StatusError = 0x2F // CTAP2_ERR_USER_ACTION_TIMEOUT
	ErrNotAllowed             StatusError = 0x30 // CTAP2_ERR_NOT_ALLOWED
	ErrPINInvalid             StatusError = 0x31 // CTAP2_ERR_PIN_INVALID
	ErrPINBlocked             StatusError = 0x32 // CTAP2_ERR_PIN_BLOCKED
	ErrPINAuthInvalid         StatusError = 0x33 // CTAP2_ERR_PIN_AUTH_INVALID
	ErrPINAuthBlocked         StatusError = 0x34 // CTAP2_ERR_PIN_AUTH_BLOCKED
	ErrPINNotSet              StatusError = 0x35 // CTAP2_ERR_PIN_NOT_SET
	ErrPUATRequired           StatusError = 0x36 // CTAP2_ERR_PUAT_REQUIRED (CTAP 2.0: PIN_REQUIRED)
	ErrPINPolicyViolation     StatusError = 0x37 // CTAP2_ERR_PIN_POLICY_VIOLATION
	ErrPINTokenExpired        StatusError = 0x38 // CTAP2_ERR_PIN_TOKEN_EXPIRED (reserved since CTAP 2.1)
	ErrRequestTooLarge        StatusError = 0x39 // CTAP2_ERR_REQUEST_TOO_LARGE
	ErrActionTimeout          StatusError = 0x3A // CTAP2_ERR_ACTION_TIMEOUT
	ErrUPRequired             StatusError = 0x3B // CTAP2_ERR_UP_REQUIRED
	ErrUVBlocked              StatusError = 0x3C // CTAP2_ERR_UV_BLOCKED
	ErrIntegrityFailure       StatusError = 0x3D // CTAP2_ERR_INTEGRITY_FAILURE
	ErrInvalidSubcommand      StatusError = 0x3E // CTAP2_ERR_INVALID_SUBCOMMAND
	ErrUVInvalid              StatusError = 0x3F // CTAP2_ERR_UV_INVALID
	ErrUnauthorizedPermission StatusError = 0x40 // CTAP2_ERR_UNAUTHORIZED_PERMISSION
	ErrOther                  StatusError = 0x7F // CTAP1_ERR_OTHER
	ErrSpecLast               StatusError = 0xDF // CTAP2_ERR_SPEC_LAST
	ErrExtensionFirst         StatusError = 0xE0 // CTAP2_ERR_EXTENSION_FIRST
	ErrExtensionLast          StatusError = 0xEF // CTAP2_ERR_EXTENSION_LAST
	ErrVendorFirst            StatusError = 0xF0 // CTAP2_ERR_VENDOR_FIRST
	ErrVendorLast             StatusError = 0xFF // CTAP2_ERR_VENDOR_LAST
	ErrPINRequired                        = ErrPUATRequired
)

var statusNames = map[StatusError]string{
	ErrInvalidCommand:         "CTAP1_ERR_INVALID_COMMAND",
	ErrInvalidParameter:       "CTAP1_ERR_INVALID_PARAMETER",
	ErrInvalidLength:          "CTAP1_ERR_INVALID_LENGTH",
	ErrInvalidSeq:             "CTAP1_ERR_INVALID_SEQ",
	ErrTimeout:                "CTAP1_ERR_TIMEOUT",
	ErrChannelBusy:            "CTAP1_ERR_CHANNEL_BUSY",
	ErrLockRequired:           "CTAP1_ERR_LOCK_REQUIRED",
	ErrInvalidChannel:         "CTAP1_ERR_INVALID_CHANNEL",
	ErrCBORUnexpectedType:     "CTAP2_ERR_CBOR_UNEXPECTED_TYPE",
	ErrInvalidCBOR:            "CTAP2_ERR_INVALID_CBOR",
	ErrMissingParameter:       "CTAP2_ERR_MISSING_PARAMETER",
	ErrLimitExceeded:          "CTAP2_ERR_LIMIT_EXCEEDED",
	ErrUnsupportedExtension:   "CTAP2_ERR_UNSUPPORTED_EXTENSION",
	ErrFPDatabaseFull:         "CTAP2_ERR_FP_DATABASE_FULL",
	ErrLargeBlobStorageFull:   "CTAP2_ERR_LARGE_BLOB_STORAGE_FULL",
	ErrCredentialExcluded:     "CTAP2_ERR_CREDENTIAL_EXCLUDED",
	ErrProcessing:             "CTAP2_ERR_PROCESSING",
	ErrInvalidCredential:      "CTAP2_ERR_INVALID_CREDENTIAL",
	ErrUserActionPending:      "CTAP2_ERR_USER_ACTION_PENDING",
	ErrOperationPending:       "CTAP2_ERR_OPERATION_PENDING",
	ErrNoOperations:           "CTAP2_ERR_NO_OPERATIONS",
	ErrUnsupportedAlgorithm:   "CTAP2_ERR_UNSUPPORTED_ALGORITHM",
	ErrOperationDenied:        "CTAP2_ERR_OPERATION_DENIED",
	ErrKeyStoreFull:           "CTAP2_ERR_KEY_STORE_FULL",
	ErrNotBusy:                "CTAP2_ERR_NOT_BUSY",
	ErrNoOperationPending:     "CTAP2_ERR_NO_OPERATION_PENDING",
	ErrUnsupportedOption:      "CTAP2_ERR_UNSUPPORTED_OPTION",
	ErrInvalidOption:          "CTAP2_ERR_INVALID_OPTION",
	ErrKeepaliveCancel:        "CTAP2_ERR_KEEPALIVE_CANCEL",
	ErrNoCredentials:          "CTAP2_ERR_NO_CREDENTIALS",
	ErrUserActionTimeout:      "CTAP2_ERR_USER_ACTION_TIMEOUT",
	ErrNotAllowed:             "CTAP2_ERR_NOT_ALLOWED",
	ErrPINInvalid:             "CTAP2_ERR_PIN_INVALID",
	ErrPINBlocked:             "CTAP2_ERR_PIN_BLOCKED",
	ErrPINAuthInvalid:         "CTAP2_ERR_PIN_AUTH_INVALID",
	ErrPINAuthBlocked:         "CTAP2_ERR_PIN_AUTH_BLOCKED",
	ErrPINNotSet:              "CTAP2_ERR_PIN_NOT_SET",
	ErrPUATRequired:           "CTAP2_ERR_PUAT_REQUIRED",
	ErrPINPolicyViolation:     "CTAP2_ERR_PIN_POLICY_VIOLATION",
	ErrPINTokenExpired:        "CTAP2_ERR_PIN_TOKEN_EXPIRED",
	ErrRequestTooLarge:        "CTAP2_ERR_REQUEST_TOO_LARGE",
	ErrActionTimeout:          "CTAP2_ERR_ACTION_TIMEOUT",
	ErrUPRequired:             "CTAP2_ERR_UP_REQUIRED",
	ErrUVBlocked:              "CTAP2_ERR_UV_BLOCKED",
	ErrIntegrityFailure:       "CTAP2_ERR_INTEGRITY_FAILURE",
	ErrInvalidSubcommand:      "CTAP2_ERR_INVALID_SUBCOMMAND",
	ErrUVInvalid:              "CTAP2_ERR_UV_INVALID",
	ErrUnauthorizedPermission: "CTAP2_ERR_UNAUTHORIZED_PERMISSION",
	ErrOther:                  "CTAP1_ERR_OTHER",
	ErrSpecLast:               "CTAP2_ERR_SPEC_LAST",
	ErrExtensionFirst:         "CTAP2_ERR_EXTENSION_FIRST",
	ErrExtensionLast:          "CTAP2_ERR_EXTENSION_LAST",
	ErrVendorFirst:            "CTAP2_ERR_VENDOR_FIRST",
	ErrVendorLast:             "CTAP2_ERR_VENDOR_LAST",
}

// String names the status as the specification does, for example
// "CTAP2_ERR_PIN_INVALID". Unassigned values print as "CTAP2_ERR_0xNN".
func (s StatusError) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	switch {
	case s >= ErrExtensionFirst && s <= ErrExtensionLast:
		return fmt.Sprintf("CTAP2_ERR_EXTENSION_0x%02X", byte(s))
	case s >= ErrVendorFirst:
		return fmt.Sprintf("CTAP2_ERR_VENDOR_0x%02X", byte(s))
	}
	return fmt.Sprintf("CTAP2_ERR_0x%02X", byte(s))
}

// Error implements error: "ctap2: CTAP2_ERR_PIN_INVALID (0x31)".
func (s StatusError) Error() string {
	return fmt.Sprintf("ctap2: %s (0x%02X)", s.String(), byte(s))
}

// StatusOf returns the StatusError that err wraps, or ErrOther when err is
// not nil and wraps none. It returns 0 (success) for a nil error. A device
// answers a failed request with StatusOf(err).
func StatusOf(err error) StatusError {
	if err == nil {
		return 0
	}
	var s StatusError
	if errors.As(err, &s) && s != 0 {
		return s
	}
	return ErrOther
}

// ErrMalformed classes host-side decoding failures: a response frame,
// authenticator data or a COSE key that does not follow the specification.
var ErrMalformed = errors.New("ctap2: malformed message")
