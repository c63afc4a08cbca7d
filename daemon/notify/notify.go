package notify

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Mailer sends one plain-text e-mail.
type Mailer interface {
	SendMail(ctx context.Context, to, subject, body string) error
}

// Phone delivers a short code to a phone number for an account.
type Phone interface {
	SendCode(ctx context.Context, phone, account, code string) error
}

var (
	// ErrInvalid classes errors about input that cannot be sent as given:
	// a malformed address, a header with a line break, a relative command
	// path. Retrying does not help.
	ErrInvalid = errors.New("notify: invalid input")
	// ErrDelivery classes errors of the channel itself: the relay is down
	// or refused the message, the command failed, the webhook answered an
	// error. Retrying later may help.
	ErrDelivery = errors.New("notify: delivery failed")
)

// Defaults applied when a field is zero.
const (
	DefaultSMTPAddr = "127.0.0.1:25"
	DefaultSendmail = "/usr/sbin/sendmail"
	DefaultTimeout  = 30 * time.Second
	// DefaultWebhookTimeout bounds one webhook request.
	DefaultWebhookTimeout = 10 * time.Second
)

// commandPATH is the whole PATH given to the commands this package runs.
const commandPATH = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"

// maxOutput bounds what is kept of a peer's answer (a command's output,
// an SMTP reply) for an error message.
const maxOutput = 512

func timeoutOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// boundedBuffer keeps the first max bytes written to it and discards the
// rest, without ever failing a write (a child process must not block or
// die on a full pipe).
type boundedBuffer struct {
	max  int
	buf  []byte
	more bool
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if room := b.max - len(b.buf); room > 0 {
		if len(p) > room {
			b.buf = append(b.buf, p[:room]...)
			b.more = true
		} else {
			b.buf = append(b.buf, p...)
		}
	} else if len(p) > 0 {
		b.more = true
	}
	return len(p), nil
}

// String is the kept output on one line, marked when it was cut.
func (b *boundedBuffer) String() string {
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b.buf), "?")), " ")
	if b.more {
		s += " ..."
	}
	return s
}

// redactor hides secrets in text that came back from a peer.
type redactor []string

// codeRedactor hides exactly one code.
func codeRedactor(code string) redactor {
	if code == "" {
		return nil
	}
	return redactor{code}
}

// bodyRedactor hides a message body echoed back (each line of at least 8
// characters, whitespace collapsed as in boundedBuffer.String) and
// whatever in it may be a code: every run of letters and digits of at
// least 4 characters that holds a digit, and every such run of at least
// 12 characters (long base32 codes). The body says what the code is only
// to its reader; this package cannot tell, so it errs on the side of
// hiding words.
func bodyRedactor(texts ...string) redactor {
	var r redactor
	for _, text := range texts {
		for _, line := range strings.Split(text, "\n") {
			if line = strings.Join(strings.Fields(line), " "); len(line) >= 8 {
				r = append(r, line)
			}
		}
	}
	for _, text := range texts {
		for _, w := range strings.FieldsFunc(text, func(c rune) bool { return !isAlnum(c) }) {
			if len(w) >= 12 || (len(w) >= 4 && strings.ContainsAny(w, "0123456789")) {
				r = append(r, w)
			}
		}
	}
	return r
}

func isAlnum(c rune) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// String returns s with every secret replaced by "[redacted]".
func (r redactor) String(s string) string {
	for _, secret := range r {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}

// Error returns err, or an error with the same text redacted (and the
// same classes under errors.Is) when its text holds a secret.
func (r redactor) Error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := r.String(msg)
	if clean == msg {
		return err
	}
	return &redactedError{msg: clean, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }

// Is reports the classes of the hidden error (ErrDelivery, context
// errors) without letting its text out.
func (e *redactedError) Is(target error) bool { return errors.Is(e.err, target) }

// hasLineBreak reports a character that could end a header or a line of
// a protocol: CR, LF or NUL.
func hasLineBreak(s string) bool { return strings.ContainsAny(s, "\r\n\x00") }
