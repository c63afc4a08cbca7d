package notify_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mfad/mfad/daemon/notify"
)

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	exe := writeScript(t, "exit 0\n")
	noexec := filepath.Join(dir, "noexec")
	os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644)
	smtp := notify.EmailConfig{SMTP: "127.0.0.1:25", From: "mfad@host.example"}
	cmd := notify.PhoneConfig{Command: exe}

	for _, tc := range []struct {
		name string
		cfg  notify.Config
		want string // a fragment of the error; "" for valid
	}{
		{"nothing", notify.Config{}, ""},
		{"smtp and command", notify.Config{Email: smtp, Phone: cmd}, ""},
		{"sendmail", notify.Config{Email: notify.EmailConfig{Sendmail: exe, From: "mfad <mfad@host.example>"}}, ""},
		{"webhook https", notify.Config{Phone: notify.PhoneConfig{Webhook: "https://sms.example.com/hook?token=x"}}, ""},
		{"webhook loopback http", notify.Config{Phone: notify.PhoneConfig{Webhook: "http://127.0.0.1:8080/hook"}}, ""},
		{"smtp auth", notify.Config{Email: notify.EmailConfig{SMTP: "relay.example:587", From: "mfad@host.example", Username: "u", PasswordFile: "/etc/mfad/smtp-password"}}, ""},

		{"smtp and sendmail", notify.Config{Email: notify.EmailConfig{SMTP: "127.0.0.1:25", Sendmail: exe, From: "mfad@host.example"}}, "only one"},
		{"from only", notify.Config{Email: notify.EmailConfig{From: "mfad@host.example"}}, "set smtp"},
		{"no from", notify.Config{Email: notify.EmailConfig{SMTP: "127.0.0.1:25"}}, "email.from: required"},
		{"bad from", notify.Config{Email: notify.EmailConfig{SMTP: "127.0.0.1:25", From: "mfad"}}, "email.from"},
		{"smtp without port", notify.Config{Email: notify.EmailConfig{SMTP: "127.0.0.1", From: "mfad@host.example"}}, "host:port"},
		{"sendmail relative", notify.Config{Email: notify.EmailConfig{Sendmail: "sendmail", From: "mfad@host.example"}}, "absolute"},
		{"sendmail missing", notify.Config{Email: notify.EmailConfig{Sendmail: filepath.Join(dir, "absent"), From: "mfad@host.example"}}, "no such file"},
		{"auth with sendmail", notify.Config{Email: notify.EmailConfig{Sendmail: exe, From: "mfad@host.example", Username: "u", PasswordFile: "/p"}}, "only to smtp"},
		{"username alone", notify.Config{Email: notify.EmailConfig{SMTP: "127.0.0.1:25", From: "mfad@host.example", Username: "u"}}, "go together"},
		{"relative password file", notify.Config{Email: notify.EmailConfig{SMTP: "127.0.0.1:25", From: "mfad@host.example", Username: "u", PasswordFile: "pw"}}, "password_file"},
		{"command and webhook", notify.Config{Phone: notify.PhoneConfig{Command: exe, Webhook: "https://sms.example.com/"}}, "only one"},
		{"command relative", notify.Config{Phone: notify.PhoneConfig{Command: "mfad-phone"}}, "absolute"},
		{"command not executable", notify.Config{Phone: notify.PhoneConfig{Command: noexec}}, "not executable"},
		{"command is a directory", notify.Config{Phone: notify.PhoneConfig{Command: dir}}, "not a regular file"},
		{"webhook plain http", notify.Config{Phone: notify.PhoneConfig{Webhook: "http://sms.example.com/hook"}}, "https"},
		{"webhook no host", notify.Config{Phone: notify.PhoneConfig{Webhook: "https:///hook"}}, "no host"},
		{"outboxes", notify.Config{Email: notify.EmailConfig{Outbox: "outbox", From: "mfad@localhost.localdomain"}, Phone: notify.PhoneConfig{Outbox: "/var/tmp/outbox"}}, ""},
		{"outbox without from", notify.Config{Email: notify.EmailConfig{Outbox: "outbox"}}, "email.from: required"},
		{"outbox and smtp", notify.Config{Email: notify.EmailConfig{Outbox: "outbox", SMTP: "127.0.0.1:25", From: "mfad@host.example"}}, "only one"},
		{"outbox and command", notify.Config{Phone: notify.PhoneConfig{Outbox: "outbox", Command: exe}}, "only one"},
		{"outbox with a NUL", notify.Config{Phone: notify.PhoneConfig{Outbox: "out\x00box"}}, "phone.outbox"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				return
			}
			if !errors.Is(err, notify.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInvalid with %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "recovery.") {
				t.Errorf("error does not name the setting: %v", err)
			}
		})
	}
}

func TestConfigValidateReportsAll(t *testing.T) {
	err := notify.Config{
		Email: notify.EmailConfig{SMTP: "127.0.0.1:25"},
		Phone: notify.PhoneConfig{Command: "rel"},
	}.Validate()
	if err == nil || !strings.Contains(err.Error(), "recovery.email.from") || !strings.Contains(err.Error(), "recovery.phone.command") {
		t.Errorf("err = %v, want both problems", err)
	}
}

func TestNew(t *testing.T) {
	exe := writeScript(t, "exit 0\n")

	m, p, err := notify.New(notify.Config{})
	if err != nil || m != nil || p != nil {
		t.Errorf("empty config: %#v %#v %v, want nil interfaces", m, p, err)
	}

	m, p, err = notify.New(notify.Config{
		Email: notify.EmailConfig{SMTP: "relay.example:25", From: "mfad@host.example"},
		Phone: notify.PhoneConfig{Command: exe},
	})
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := m.(notify.SMTP); !ok || s.Addr != "relay.example:25" || s.From != "mfad@host.example" {
		t.Errorf("mailer %#v", m)
	}
	if c, ok := p.(notify.Command); !ok || c.Path != exe {
		t.Errorf("phone %#v", p)
	}

	m, p, err = notify.New(notify.Config{
		Email: notify.EmailConfig{Sendmail: exe, From: "mfad@host.example"},
		Phone: notify.PhoneConfig{Webhook: "https://sms.example.com/hook"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := m.(notify.Sendmail); !ok || s.Path != exe {
		t.Errorf("mailer %#v", m)
	}
	if w, ok := p.(notify.Webhook); !ok || w.URL != "https://sms.example.com/hook" {
		t.Errorf("phone %#v", p)
	}

	m, p, err = notify.New(notify.Config{Phone: notify.PhoneConfig{Webhook: "https://sms.example.com/hook"}})
	if err != nil || m != nil || p == nil {
		t.Errorf("phone only: %#v %#v %v", m, p, err)
	}

	if m, p, err := notify.New(notify.Config{Email: notify.EmailConfig{SMTP: "127.0.0.1:25"}}); err == nil || m != nil || p != nil {
		t.Errorf("invalid config: %#v %#v %v", m, p, err)
	}
}
