package notify

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"
)

// maxSubject bounds a subject, so that its header line stays well under
// RFC 5322's 998 characters once encoded.
const maxSubject = 200

// envelope is a checked sender and recipient.
type envelope struct {
	from, to *mail.Address
}

// checkEnvelope validates the sender, the recipient and the subject. The
// addresses must be single RFC 5322 addresses in ASCII (an address with
// UTF-8 would need SMTPUTF8 end to end, which a relay may lack); a display
// name is allowed and may use any script.
func checkEnvelope(from, to, subject string) (envelope, error) {
	if hasLineBreak(to) {
		return envelope{}, fmt.Errorf("%w: recipient contains a line break", ErrInvalid)
	}
	if hasLineBreak(subject) {
		return envelope{}, fmt.Errorf("%w: subject contains a line break", ErrInvalid)
	}
	if !utf8.ValidString(subject) {
		return envelope{}, fmt.Errorf("%w: subject is not UTF-8", ErrInvalid)
	}
	if utf8.RuneCountInString(subject) > maxSubject {
		return envelope{}, fmt.Errorf("%w: subject longer than %d characters", ErrInvalid, maxSubject)
	}
	f, err := parseAddress("sender", from)
	if err != nil {
		return envelope{}, err
	}
	t, err := parseAddress("recipient", to)
	if err != nil {
		return envelope{}, err
	}
	return envelope{from: f, to: t}, nil
}

func parseAddress(role, s string) (*mail.Address, error) {
	if s == "" {
		return nil, fmt.Errorf("%w: no %s address", ErrInvalid, role)
	}
	if hasLineBreak(s) {
		return nil, fmt.Errorf("%w: %s address contains a line break", ErrInvalid, role)
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %s address %q: %v", ErrInvalid, role, s, err)
	}
	for _, c := range a.Address {
		if c > 0x7e || c <= ' ' {
			return nil, fmt.Errorf("%w: %s address %q is not printable ASCII", ErrInvalid, role, s)
		}
	}
	if strings.HasPrefix(a.Address, "-") {
		// Harmless after "--" or "-f", but no real address starts so.
		return nil, fmt.Errorf("%w: %s address %q starts with '-'", ErrInvalid, role, s)
	}
	if !strings.Contains(a.Address, "@") {
		return nil, fmt.Errorf("%w: %s address %q has no domain", ErrInvalid, role, s)
	}
	return a, nil
}

// buildMessage writes an RFC 5322 message with CRLF line ends: the
// headers mfad sends, then the body as quoted-printable UTF-8.
func buildMessage(env envelope, subject, body string, now time.Time) ([]byte, error) {
	if !utf8.ValidString(body) {
		return nil, fmt.Errorf("%w: body is not UTF-8", ErrInvalid)
	}
	var b bytes.Buffer
	header := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	header("From", env.from.String())
	header("To", env.to.String())
	header("Subject", encodeSubject(subject))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", messageID(env.from.Address, now))
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	header("Auto-Submitted", "auto-generated")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	// Text mode turns every line end into CRLF.
	if _, err := qp.Write([]byte(strings.ReplaceAll(body, "\r\n", "\n"))); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return b.Bytes(), nil
}

// encodeSubject encodes a subject as RFC 2047 words when it is not plain
// ASCII, folding between words.
func encodeSubject(s string) string {
	enc := mime.QEncoding.Encode("utf-8", s)
	return strings.ReplaceAll(enc, "?= =?", "?=\r\n =?")
}

// messageID is a unique Message-ID in the sender's domain.
func messageID(from string, now time.Time) string {
	domain := from[strings.LastIndexByte(from, '@')+1:]
	var r [12]byte
	rand.Read(r[:])
	return fmt.Sprintf("<%d.%s@%s>", now.Unix(), hex.EncodeToString(r[:]), domain)
}
