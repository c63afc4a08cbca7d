package notify_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mfad/mfad/daemon/notify"
	"github.com/mfad/mfad/daemon/notify/notifytest"
)

// sendOne sends through m and returns the one message the server got.
func sendOne(t *testing.T, srv *notifytest.SMTPServer, m notify.Mailer, to, subject, body string) notifytest.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.SendMail(ctx, to, subject, body); err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	msgs, err := srv.Wait(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		t.Fatalf("server got %d messages, want 1", len(msgs))
	}
	return msgs[0]
}

func TestSMTPHeaders(t *testing.T) {
	srv := notifytest.StartSMTP(t)
	m := notify.SMTP{Addr: srv.Addr, From: "mfad <mfad@host.example>", Hello: "ws1.example"}
	body := "Your code is " + testCode + ".\nIt expires in 10 minutes.\n"
	got := sendOne(t, srv, m, "Alice <alice@example.org>", "mfad recovery code", body)

	if got.From != "mfad@host.example" {
		t.Errorf("MAIL FROM %q", got.From)
	}
	if len(got.To) != 1 || got.To[0] != "alice@example.org" {
		t.Errorf("RCPT TO %q", got.To)
	}
	if got.Subject != "mfad recovery code" {
		t.Errorf("Subject %q", got.Subject)
	}
	if got.Body != body {
		t.Errorf("body %q, want %q", got.Body, body)
	}
	h := got.Header
	for k, want := range map[string]string{
		"From":                      `"mfad" <mfad@host.example>`,
		"To":                        `"Alice" <alice@example.org>`,
		"Subject":                   "mfad recovery code",
		"Mime-Version":              "1.0",
		"Content-Type":              "text/plain; charset=utf-8",
		"Content-Transfer-Encoding": "quoted-printable",
	} {
		if v := h.Get(k); v != want {
			t.Errorf("%s: %q, want %q", k, v, want)
		}
	}
	if d, err := h.Date(); err != nil || time.Since(d) > time.Hour || time.Until(d) > time.Hour {
		t.Errorf("Date %q: %v", h.Get("Date"), err)
	}
	if id := h.Get("Message-Id"); !regexp.MustCompile(`^<[0-9a-f.]+@host\.example>$`).MatchString(id) {
		t.Errorf("Message-ID %q", id)
	}
	for _, k := range []string{"From", "To", "Subject", "Date", "Message-Id", "Mime-Version", "Content-Type", "Content-Transfer-Encoding"} {
		if n := len(h[k]); n != 1 {
			t.Errorf("%d %s headers", n, k)
		}
	}
}

func TestSMTPSecondMessageIDDiffers(t *testing.T) {
	srv := notifytest.StartSMTP(t)
	m := notify.SMTP{Addr: srv.Addr, From: "mfad@host.example"}
	ctx := context.Background()
	for range 2 {
		if err := m.SendMail(ctx, "alice@example.org", "s", "b"); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := srv.Wait(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := msgs[0].Header.Get("Message-Id"), msgs[1].Header.Get("Message-Id"); a == b {
		t.Errorf("two messages share Message-ID %s", a)
	}
}

func TestSMTPNonASCII(t *testing.T) {
	srv := notifytest.StartSMTP(t)
	m := notify.SMTP{Addr: srv.Addr, From: "Dépanneur mfad <mfad@host.example>"}
	subject := "Code de récupération pour « alice » — 恢复代码 — " + strings.Repeat("é", 60)
	body := "Grüße, 😀\nA long line " + strings.Repeat("ü", 100) + " = end\ntrailing space \n"
	got := sendOne(t, srv, m, "alice@example.org", subject, body)
	if got.Subject != subject {
		t.Errorf("Subject %q, want %q", got.Subject, subject)
	}
	if got.Body != body {
		t.Errorf("body %q, want %q", got.Body, body)
	}
	raw := got.Raw
	for i, line := range strings.Split(raw, "\n") {
		if len(line) > 78 {
			t.Errorf("line %d is %d characters: %q", i, len(line), line)
		}
		for _, c := range line {
			if c > 0x7e || c < ' ' && c != '\t' {
				t.Fatalf("line %d is not printable ASCII: %q", i, line)
			}
		}
	}
	if !strings.Contains(raw, "Subject: =?utf-8?q?") {
		t.Errorf("subject is not an RFC 2047 word:\n%s", raw)
	}
	if a, err := mail.ParseAddress(got.Header.Get("From")); err != nil || a.Name != "Dépanneur mfad" {
		t.Errorf("From %q: %v %v", got.Header.Get("From"), a, err)
	}
}

func TestSMTPDotStuffing(t *testing.T) {
	srv := notifytest.StartSMTP(t)
	m := notify.SMTP{Addr: srv.Addr, From: "mfad@host.example"}
	// A line with a lone "." would end DATA early without stuffing.
	body := "first\n.\n.hidden\n..two\nlast line\n"
	got := sendOne(t, srv, m, "alice@example.org", "dots", body)
	if got.Body != body {
		t.Errorf("body %q, want %q", got.Body, body)
	}
}

func TestSMTPRefusesInjection(t *testing.T) {
	srv := notifytest.StartSMTP(t)
	for _, tc := range []struct{ name, from, to, subject string }{
		{"CRLF in to", "", "alice@example.org\r\nBcc: eve@example.org", "s"},
		{"LF in to", "", "alice@example.org\nBcc: eve@example.org", "s"},
		{"CR in subject", "", "alice@example.org", "hi\rBcc: eve@example.org"},
		{"LF in subject", "", "alice@example.org", "hi\nBcc: eve@example.org"},
		{"NUL in subject", "", "alice@example.org", "hi\x00"},
		{"CRLF in from", "mfad@host.example\r\nBcc: eve@example.org", "alice@example.org", "s"},
		{"two recipients", "", "alice@example.org, eve@example.org", "s"},
		{"not an address", "", "alice", "s"},
		{"empty to", "", "", "s"},
		{"non-ASCII address", "", "ålice@example.org", "s"},
		{"option-like address", "", "-oQ/tmp@example.org", "s"},
		{"empty from", "-", "alice@example.org", "s"},
		{"long subject", "", "alice@example.org", strings.Repeat("x", 201)},
		{"invalid UTF-8 subject", "", "alice@example.org", "\xff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from := tc.from
			switch from {
			case "":
				from = "mfad@host.example"
			case "-":
				from = ""
			}
			m := notify.SMTP{Addr: srv.Addr, From: from}
			err := m.SendMail(context.Background(), tc.to, tc.subject, "code "+testCode)
			if !errors.Is(err, notify.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			noCode(t, err, testCode)
		})
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("server got %d messages", n)
	}
}

func TestSMTPServerDown(t *testing.T) {
	srv := notifytest.StartSMTP(t)
	srv.Close()
	m := notify.SMTP{Addr: srv.Addr, From: "mfad@host.example"}
	err := m.SendMail(context.Background(), "alice@example.org", "s", "code "+testCode)
	if !errors.Is(err, notify.ErrDelivery) {
		t.Fatalf("err = %v, want ErrDelivery", err)
	}
	if !strings.Contains(err.Error(), srv.Addr) || !strings.Contains(err.Error(), "refused") {
		t.Errorf("error does not name the relay and the refusal: %v", err)
	}
	noCode(t, err, testCode)
}

// silentRelay accepts connections and never answers; accepted receives
// each connection.
func silentRelay(t *testing.T) (addr string, accepted <-chan net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan net.Conn, 4)
	t.Cleanup(func() {
		ln.Close()
		close(ch)
		for c := range ch {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case ch <- c:
			default:
				c.Close()
			}
		}
	}()
	return ln.Addr().String(), ch
}

func TestSMTPContextCancel(t *testing.T) {
	addr, accepted := silentRelay(t)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-accepted
		cancel()
	}()
	m := notify.SMTP{Addr: addr, From: "mfad@host.example", Timeout: time.Hour}
	err := m.SendMail(ctx, "alice@example.org", "s", "code "+testCode)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, notify.ErrDelivery) {
		t.Fatalf("err = %v, want ErrDelivery and context.Canceled", err)
	}
}

func TestSMTPTimeout(t *testing.T) {
	addr, _ := silentRelay(t)
	m := notify.SMTP{Addr: addr, From: "mfad@host.example", Timeout: 50 * time.Millisecond}
	err := m.SendMail(context.Background(), "alice@example.org", "s", "code "+testCode)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
}

func TestSMTPStartTLS(t *testing.T) {
	serverTLS, roots := mintTLS(t)
	srv := notifytest.StartSMTP(t, notifytest.WithTLS(serverTLS))

	t.Run("verified", func(t *testing.T) {
		m := notify.SMTP{Addr: srv.Addr, From: "mfad@host.example", TLSConfig: &tls.Config{RootCAs: roots}}
		ctx := context.Background()
		if err := m.SendMail(ctx, "alice@example.org", "tls", "body"); err != nil {
			t.Fatal(err)
		}
		msgs, err := srv.Wait(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if !msgs[len(msgs)-1].TLS {
			t.Error("message did not come over TLS")
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		before := len(srv.Messages())
		m := notify.SMTP{Addr: srv.Addr, From: "mfad@host.example", TLSConfig: &tls.Config{RootCAs: x509.NewCertPool()}}
		err := m.SendMail(context.Background(), "alice@example.org", "tls", "code "+testCode)
		if !errors.Is(err, notify.ErrDelivery) || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("err = %v, want a certificate error", err)
		}
		noCode(t, err, testCode)
		if len(srv.Messages()) != before {
			t.Error("message sent despite the failed handshake")
		}
	})
	t.Run("loopback default", func(t *testing.T) {
		before := len(srv.Messages())
		m := notify.SMTP{Addr: srv.Addr, From: "mfad@host.example"}
		got := sendOne2(t, srv, m, before)
		if !got.TLS {
			t.Error("loopback relay offering STARTTLS was not used over TLS")
		}
	})
}

// sendOne2 sends a message and returns it, after before earlier ones.
func sendOne2(t *testing.T, srv *notifytest.SMTPServer, m notify.Mailer, before int) notifytest.Message {
	t.Helper()
	ctx := context.Background()
	if err := m.SendMail(ctx, "alice@example.org", "s", "b"); err != nil {
		t.Fatal(err)
	}
	msgs, err := srv.Wait(ctx, before+1)
	if err != nil {
		t.Fatal(err)
	}
	return msgs[before]
}

func TestSMTPAuth(t *testing.T) {
	serverTLS, roots := mintTLS(t)
	srv := notifytest.StartSMTP(t, notifytest.WithTLS(serverTLS), notifytest.WithAuth("mfad", "hunter2-pw"))
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	bad := filepath.Join(dir, "bad")
	os.WriteFile(good, []byte("hunter2-pw\n"), 0o600)
	os.WriteFile(bad, []byte("wrong-pw\n"), 0o600)
	base := notify.SMTP{Addr: srv.Addr, From: "mfad@host.example", TLSConfig: &tls.Config{RootCAs: roots}, Username: "mfad"}

	m := base
	m.PasswordFile = good
	if got := sendOne2(t, srv, m, 0); got.User != "mfad" || !got.TLS {
		t.Errorf("user %q, TLS %v", got.User, got.TLS)
	}

	m.PasswordFile = bad
	err := m.SendMail(context.Background(), "alice@example.org", "s", "code "+testCode)
	if !errors.Is(err, notify.ErrDelivery) || !strings.Contains(err.Error(), "535") {
		t.Fatalf("err = %v, want a 535 refusal", err)
	}
	noCode(t, err, "wrong-pw")

	m.PasswordFile = filepath.Join(dir, "missing")
	if err := m.SendMail(context.Background(), "alice@example.org", "s", "b"); err == nil {
		t.Fatal("sent without a password file")
	}

	nosrv := notifytest.StartSMTP(t)
	m = notify.SMTP{Addr: nosrv.Addr, From: "mfad@host.example", Username: "mfad", PasswordFile: good}
	if err := m.SendMail(context.Background(), "alice@example.org", "s", "b"); err == nil || !strings.Contains(err.Error(), "AUTH") {
		t.Fatalf("err = %v, want: relay offers no AUTH", err)
	}
	if n := len(srv.Messages()) + len(nosrv.Messages()); n != 1 {
		t.Errorf("%d messages accepted, want 1", n)
	}
}

func TestSMTPRelayRefusalHidesCode(t *testing.T) {
	for _, verb := range []string{"MAIL", "RCPT", "DATA", "."} {
		t.Run(verb, func(t *testing.T) {
			srv := notifytest.StartSMTP(t, notifytest.WithReply(verb, "554 5.7.1 refused: looks like spam: code "+testCode))
			m := notify.SMTP{Addr: srv.Addr, From: "mfad@host.example"}
			err := m.SendMail(context.Background(), "alice@example.org", "Your code", "Your code is "+testCode+".\n")
			if !errors.Is(err, notify.ErrDelivery) || !strings.Contains(err.Error(), "554") || !strings.Contains(err.Error(), "spam") {
				t.Fatalf("err = %v, want the relay's 554 refusal", err)
			}
			noCode(t, err, testCode)
			if n := len(srv.Messages()); n != 0 {
				t.Errorf("server recorded %d messages", n)
			}
		})
	}
}
