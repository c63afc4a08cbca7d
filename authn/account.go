package authn

import (
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind says how an account recovers a lost device (seed points 3-7).
type Kind string

const (
	// KindOwner recovers alone with verified e-mail and phone (AWS: root user).
	KindOwner Kind = "owner"
	// KindMember needs an admin (AWS: IAM user).
	KindMember Kind = "member"
)

// Account flags. Only admin routes (and uid 0 for FlagPasswordChange) set or clear them.
const (
	FlagPasswordChangeRequired = "password_change_required"
	FlagDisabled               = "disabled"
)

var knownFlags = []string{FlagDisabled, FlagPasswordChangeRequired}

// Account is one Unix user's entry in the local store.
type Account struct {
	Name          string    `json:"name"`
	Kind          Kind      `json:"kind"`
	Email         string    `json:"email,omitempty"`
	EmailVerified bool      `json:"email_verified"`
	Phone         string    `json:"phone,omitempty"`
	PhoneVerified bool      `json:"phone_verified"`
	Flags         []string  `json:"flags,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`

	// EverEnrolled is set when a device is first activated; the bootstrap
	// rule (enroll without step-up) holds only while it is false.
	EverEnrolled bool `json:"ever_enrolled"`

	// Brute-force state.
	FailedAttempts int       `json:"failed_attempts"`
	LastFailureAt  time.Time `json:"last_failure_at,omitzero"`
	LockedUntil    time.Time `json:"locked_until,omitzero"`

	// TempCode is an admin-issued single-use access code, hashed.
	TempCode *TempCodeState `json:"temp_code,omitempty"`
	// ScratchCodes are single-use emergency codes brought over from
	// google-authenticator (SHA-256 of each): temporary codes that do not
	// expire, each spent by its one sign-in.
	ScratchCodes [][]byte `json:"scratch_codes,omitempty"`
	// PendingContact is an e-mail or phone change waiting for its code.
	PendingContact *PendingContact `json:"pending_contact,omitempty"`
}

// HasFlag reports whether flag is set.
func (a *Account) HasFlag(flag string) bool { return slices.Contains(a.Flags, flag) }

// SetFlag sets or clears flag, keeping Flags sorted and unique.
func (a *Account) SetFlag(flag string, on bool) {
	i, found := slices.BinarySearch(a.Flags, flag)
	switch {
	case on && !found:
		a.Flags = slices.Insert(a.Flags, i, flag)
	case !on && found:
		a.Flags = slices.Delete(a.Flags, i, i+1)
	}
}

// Unix user names as useradd accepts them by default (NAME_REGEX), at most 32 bytes.
var userNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,30}[$]?$`)

// ValidateName checks that name can be a Unix user name.
func ValidateName(name string) error {
	if !userNameRE.MatchString(name) {
		return Errorf(ClassInvalid, CodeInvalidRequest, "account name %q is not a valid Unix user name", truncate(name, 40))
	}
	return nil
}

var phoneRE = regexp.MustCompile(`^\+?[0-9][0-9 ()-]{3,30}$`)

func validateContact(email, phone string) error {
	if email != "" && !validEmail(email) {
		return Errorf(ClassInvalid, CodeInvalidRequest, "e-mail address is malformed")
	}
	if phone != "" && !phoneRE.MatchString(phone) {
		return Errorf(ClassInvalid, CodeInvalidRequest, "phone number is malformed (digits, spaces, +, -, parentheses)")
	}
	return nil
}

// validEmail is the shape of an e-mail address: 1-64 characters, "@",
// 1-255 characters, none of them "@" or white space (\t \n \f \r and
// space). It is what the regular expression ^[^@\s]{1,64}@[^@\s]{1,255}$
// matches, by hand: compiling that expression's counted repetitions cost
// mfad 5-15 ms at every start.
func validEmail(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	if !ok || strings.ContainsAny(domain, "@") || strings.ContainsAny(s, "\t\n\f\r ") {
		return false
	}
	l, d := utf8.RuneCountInString(local), utf8.RuneCountInString(domain)
	return l >= 1 && l <= 64 && d >= 1 && d <= 255
}

func validateKind(k Kind) error {
	if k != KindOwner && k != KindMember {
		return Errorf(ClassInvalid, CodeInvalidRequest, "kind must be %q or %q", KindOwner, KindMember)
	}
	return nil
}

func validateFlags(flags []string) error {
	for _, f := range flags {
		if !slices.Contains(knownFlags, f) {
			return Errorf(ClassInvalid, CodeInvalidRequest, "unknown flag %q (known: %v)", truncate(f, 40), knownFlags)
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
