package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"strings"
	"time"
)

// SMTP sends mail through an SMTP relay, normally the host's own MTA. It
// says EHLO, upgrades with STARTTLS when the relay offers it, optionally
// authenticates (AUTH PLAIN, only over TLS or to a loopback relay), and
// hands over one message for one recipient. The zero value sends to
// 127.0.0.1:25 but needs From.
type SMTP struct {
	// Addr is the relay's host:port; DefaultSMTPAddr when empty.
	Addr string
	// From is the sender, as the envelope's MAIL FROM and the From header;
	// it may carry a display name ("mfad <mfad@host.example>").
	From string
	// Timeout bounds a whole delivery, connection included; DefaultTimeout
	// when zero.
	Timeout time.Duration
	// Hello is the name given in EHLO; the host name when empty.
	Hello string
	// TLSConfig, when set, is used for STARTTLS (tests set RootCAs). When
	// nil, the relay's certificate is verified against the system roots
	// and Addr's host name, except for a loopback relay: the message does
	// not leave the host then, and a local MTA's certificate (Debian's
	// snakeoil) names the host, not 127.0.0.1, so it is not verified.
	TLSConfig *tls.Config
	// Username and PasswordFile, when Username is set, authenticate with
	// AUTH PLAIN. The file holds the password (a trailing newline is
	// ignored) and is read at each delivery.
	Username     string
	PasswordFile string
}

// SendMail delivers one plain-text message to one recipient.
func (s SMTP) SendMail(ctx context.Context, to, subject, body string) error {
	env, err := checkEnvelope(s.From, to, subject)
	if err != nil {
		return err
	}
	msg, err := buildMessage(env, subject, body, time.Now())
	if err != nil {
		return err
	}
	addr := s.Addr
	if addr == "" {
		addr = DefaultSMTPAddr
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w: smtp relay address %q: %v", ErrInvalid, addr, err)
	}
	hello := s.Hello
	if hello == "" {
		hello = helloName()
	} else if hasLineBreak(hello) || strings.ContainsAny(hello, " \t") {
		return fmt.Errorf("%w: smtp hello name %q", ErrInvalid, hello)
	}
	ctx, cancel := context.WithTimeout(ctx, timeoutOr(s.Timeout, DefaultTimeout))
	defer cancel()

	fail := func(err error) error {
		if cerr := ctx.Err(); cerr != nil {
			// The deadline or cancellation cut the I/O short: say so
			// rather than "i/o timeout".
			err = cerr
		}
		return bodyRedactor(subject, body).Error(fmt.Errorf("%w: smtp %s: %w", ErrDelivery, addr, err))
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	// The deadline or a cancellation interrupts a blocked read or write
	// at once. (Not conn.SetDeadline(deadline): its timer could fire
	// before ctx's and leave a bare "i/o timeout".)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if err := s.session(conn, host, hello, env, msg); err != nil {
		return fail(err)
	}
	return nil
}

// session speaks SMTP over conn, from the greeting to QUIT.
func (s SMTP) session(conn net.Conn, host, hello string, env envelope, msg []byte) error {
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello(hello); err != nil {
		return err
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(s.tlsConfig(host)); err != nil {
			return fmt.Errorf("starttls: %w", err)
		}
	}
	if s.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return errors.New("relay offers no AUTH, but a username is configured")
		}
		pw, err := readPassword(s.PasswordFile)
		if err != nil {
			return err
		}
		if err := c.Auth(smtp.PlainAuth("", s.Username, pw, host)); err != nil {
			return fmt.Errorf("auth: %w", err)
		}
	}
	if err := c.Mail(env.from.Address); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	if err := c.Rcpt(env.to.Address); err != nil {
		return fmt.Errorf("RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	// The DATA writer dot-stuffs lines that start with '.'.
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("end of DATA: %w", err)
	}
	// The relay took the message; a failed QUIT does not undo that.
	c.Quit()
	return nil
}

func (s SMTP) tlsConfig(host string) *tls.Config {
	if s.TLSConfig != nil {
		cfg := s.TLSConfig.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = host
		}
		return cfg
	}
	if isLoopback(host) {
		// See the TLSConfig field: same host, nothing to authenticate.
		return &tls.Config{ServerName: host, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
	}
	return &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
}

func readPassword(path string) (string, error) {
	if path == "" {
		return "", errors.New("a username is configured but no password file")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		// The error names the file, not its content.
		return "", fmt.Errorf("password file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// helloName is the host name when it is usable in EHLO, else "localhost".
func helloName() string {
	h, err := os.Hostname()
	if err != nil || h == "" || hasLineBreak(h) || strings.ContainsAny(h, " \t") {
		return "localhost"
	}
	return h
}

// isLoopback reports whether host (a name or an IP, without port) is this
// machine by definition, without asking DNS.
func isLoopback(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
