package notify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// Config is the [recovery] table of mfad's configuration file:
//
//	[recovery.email]
//	smtp = "127.0.0.1:25"          # or: sendmail = "/usr/sbin/sendmail"
//	from = "mfad@host.example"
//	[recovery.phone]
//	command = "/usr/local/libexec/mfad-phone"   # or: webhook = "https://..."
//
// For development and tests, outbox = "DIR" in either table keeps the
// messages in a local directory instead ([Outbox]); a relative DIR is
// taken from the daemon's state directory ([Config.Resolve]).
//
// Either table may be left out: that channel is then not configured, and
// recovery through it is not offered.
type Config struct {
	Email EmailConfig `toml:"email"`
	Phone PhoneConfig `toml:"phone"`
}

// EmailConfig chooses how mail leaves: through an SMTP relay, a
// sendmail-compatible command or into a local outbox, exactly one of them.
type EmailConfig struct {
	// SMTP is the relay's host:port.
	SMTP string `toml:"smtp"`
	// Sendmail is the absolute path of a sendmail-compatible command.
	Sendmail string `toml:"sendmail"`
	// Outbox is a directory that keeps the messages (see [Outbox]).
	Outbox string `toml:"outbox"`
	// From is the sender address; required.
	From string `toml:"from"`
	// Username and PasswordFile authenticate to the SMTP relay (optional;
	// only with smtp).
	Username     string `toml:"username"`
	PasswordFile string `toml:"password_file"`
}

// PhoneConfig chooses how codes reach a phone: a local command, a
// webhook or a local outbox, exactly one of them.
type PhoneConfig struct {
	// Command is the absolute path of an executable (see [Command]).
	Command string `toml:"command"`
	// Webhook is an https URL, or http to a loopback host (see [Webhook]).
	Webhook string `toml:"webhook"`
	// Outbox is a directory that keeps the codes (see [Outbox]).
	Outbox string `toml:"outbox"`
	// AllowedPrefixes, when set, are the only number prefixes a user may
	// give as their phone (admins may record any).
	AllowedPrefixes []string `toml:"allowed_prefixes"`
}

// Resolve makes relative outbox directories absolute under dir (the
// daemon's state directory).
func (c *Config) Resolve(dir string) {
	for _, p := range []*string{&c.Email.Outbox, &c.Phone.Outbox} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
}

// count is how many of the values are set.
func count(vs ...string) int {
	n := 0
	for _, v := range vs {
		if v != "" {
			n++
		}
	}
	return n
}

// checkOutbox refuses a directory name that no file system takes.
func checkOutbox(dir string) error {
	if strings.ContainsRune(dir, 0) {
		return fmt.Errorf("%q contains a NUL", dir)
	}
	return nil
}

// Configured reports whether any e-mail setting is present.
func (c EmailConfig) Configured() bool { return c != EmailConfig{} }

// Configured reports whether a phone channel is set (allowed_prefixes
// alone configures none).
func (c PhoneConfig) Configured() bool { return c.Command != "" || c.Webhook != "" || c.Outbox != "" }

// Validate checks the configuration, reporting every problem at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("recovery.%s", fmt.Sprintf(format, args...)))
	}
	if e := c.Email; e.Configured() {
		switch {
		case count(e.SMTP, e.Sendmail, e.Outbox) > 1:
			bad("email: set only one of smtp, sendmail and outbox")
		case count(e.SMTP, e.Sendmail, e.Outbox) == 0:
			bad("email: set smtp (a relay's host:port), sendmail (a command's path) or outbox (a directory)")
		case e.Outbox != "":
			if err := checkOutbox(e.Outbox); err != nil {
				bad("email.outbox: %v", err)
			}
		case e.SMTP != "":
			if host, port, err := net.SplitHostPort(e.SMTP); err != nil || host == "" || port == "" {
				bad("email.smtp: %q is not host:port", e.SMTP)
			}
		default:
			if err := checkExecutable(e.Sendmail); err != nil {
				bad("email.sendmail: %v", err)
			}
		}
		if e.From == "" {
			bad("email.from: required")
		} else if _, err := parseAddress("sender", e.From); err != nil {
			bad("email.from: %s", reason(err))
		}
		if e.Username != "" || e.PasswordFile != "" {
			switch {
			case e.SMTP == "":
				bad("email: username and password_file apply only to smtp")
			case e.Username == "" || e.PasswordFile == "":
				bad("email: username and password_file go together")
			case !filepath.IsAbs(e.PasswordFile):
				bad("email.password_file: %q is not an absolute path", e.PasswordFile)
			}
		}
	}
	if p := c.Phone; p.Configured() {
		switch {
		case count(p.Command, p.Webhook, p.Outbox) > 1:
			bad("phone: set only one of command, webhook and outbox")
		case p.Outbox != "":
			if err := checkOutbox(p.Outbox); err != nil {
				bad("phone.outbox: %v", err)
			}
		case p.Command != "":
			if err := checkExecutable(p.Command); err != nil {
				bad("phone.command: %v", err)
			}
		default:
			if _, err := checkWebhookURL(p.Webhook); err != nil {
				bad("phone.webhook: %s", reason(err))
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalid, errors.Join(errs...))
}

// reason is an ErrInvalid error's text without the class prefix.
func reason(err error) string {
	return strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": ")
}

// checkExecutable requires an absolute path to an executable regular file.
func checkExecutable(path string) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("%q is not an absolute path", path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not executable", path)
	}
	return nil
}

// New validates cfg and builds its channels. A channel that is not
// configured comes back as a nil interface: the domain then tells the
// user that only an admin can help.
func New(cfg Config) (Mailer, Phone, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	var m Mailer
	switch e := cfg.Email; {
	case e.SMTP != "":
		m = SMTP{Addr: e.SMTP, From: e.From, Username: e.Username, PasswordFile: e.PasswordFile}
	case e.Sendmail != "":
		m = Sendmail{Path: e.Sendmail, From: e.From}
	case e.Outbox != "":
		if !filepath.IsAbs(e.Outbox) {
			return nil, nil, fmt.Errorf("%w: recovery.email.outbox %q is not absolute (resolve it first)", ErrInvalid, e.Outbox)
		}
		m = Outbox{Dir: e.Outbox, From: e.From}
	}
	var p Phone
	switch ph := cfg.Phone; {
	case ph.Command != "":
		p = Command{Path: ph.Command}
	case ph.Webhook != "":
		p = Webhook{URL: ph.Webhook}
	case ph.Outbox != "":
		if !filepath.IsAbs(ph.Outbox) {
			return nil, nil, fmt.Errorf("%w: recovery.phone.outbox %q is not absolute (resolve it first)", ErrInvalid, ph.Outbox)
		}
		p = Outbox{Dir: ph.Outbox}
	}
	return m, p, nil
}
