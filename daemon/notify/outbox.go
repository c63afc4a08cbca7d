package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Outbox keeps messages in a local directory instead of sending them, for
// development and tests (`make run` uses it): each e-mail becomes a file
// DIR/mail/TIME-RANDOM.eml holding the RFC 5322 message that [SMTP] would
// have sent (CRLF line ends), and each phone code a line appended to
// DIR/sms.txt:
//
//	2026-12-04T15:40:25Z +1 555 0100 alice 482913
//
// (time in UTC, the number, the account, the code; fields are separated by
// single spaces and the code is the last one). The directory is created
// 0700 and the files 0600: the codes in them are secrets, readable by the
// daemon's user only.
type Outbox struct {
	// Dir is the directory's absolute path.
	Dir string
	// From is the sender of e-mails, as for SMTP.
	From string
	// now is the clock; time.Now when nil.
	now func() time.Time
}

// smsMu serializes appends to sms.txt within the process, so that lines
// from concurrent recoveries never interleave.
var smsMu sync.Mutex

// OutboxSMS is the name of the file phone codes are appended to.
const OutboxSMS = "sms.txt"

// OutboxMail is the subdirectory e-mails are written to.
const OutboxMail = "mail"

func (o Outbox) clock() time.Time {
	if o.now != nil {
		return o.now()
	}
	return time.Now()
}

// dir checks and creates the directory (and sub, when given) 0700.
func (o Outbox) dir(sub string) (string, error) {
	if !filepath.IsAbs(o.Dir) {
		return "", fmt.Errorf("%w: outbox %q is not an absolute path", ErrInvalid, o.Dir)
	}
	d := filepath.Join(o.Dir, sub)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return "", fmt.Errorf("%w: outbox: %w", ErrDelivery, err)
	}
	return d, nil
}

// SendMail writes one message as a new .eml file.
func (o Outbox) SendMail(ctx context.Context, to, subject, body string) error {
	env, err := checkEnvelope(o.From, to, subject)
	if err != nil {
		return err
	}
	now := o.clock()
	msg, err := buildMessage(env, subject, body, now)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: outbox: %w", ErrDelivery, err)
	}
	d, err := o.dir(OutboxMail)
	if err != nil {
		return err
	}
	var r [6]byte
	rand.Read(r[:])
	name := filepath.Join(d, now.UTC().Format("20060102T150405.000000000Z")+"-"+hex.EncodeToString(r[:])+".eml")
	// The file is written whole under a temporary name, then renamed: a
	// reader never sees half a message.
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("%w: outbox: %w", ErrDelivery, err)
	}
	_, err = f.Write(msg)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%w: outbox: %w", ErrDelivery, err)
	}
	return nil
}

// SendCode appends one line to sms.txt.
func (o Outbox) SendCode(ctx context.Context, phone, account, code string) error {
	if err := checkCode(phone, account, code); err != nil {
		return err
	}
	if strings.ContainsRune(account, ' ') || strings.ContainsRune(code, ' ') {
		return fmt.Errorf("%w: account or code contains a space", ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: outbox: %w", ErrDelivery, err)
	}
	d, err := o.dir("")
	if err != nil {
		return err
	}
	line := fmt.Sprintf("%s %s %s %s\n", o.clock().UTC().Format(time.RFC3339), phone, account, code)
	smsMu.Lock()
	defer smsMu.Unlock()
	f, err := os.OpenFile(filepath.Join(d, OutboxSMS), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("%w: outbox: %w", ErrDelivery, err)
	}
	_, err = f.WriteString(line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%w: outbox: %w", ErrDelivery, err)
	}
	return nil
}
