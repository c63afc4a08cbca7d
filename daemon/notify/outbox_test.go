package notify_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mfad/mfad/daemon/notify"
)

func TestOutboxMail(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	o := notify.Outbox{Dir: dir, From: "mfad <mfad@host.example>"}
	body := "Your recovery code is " + testCode + ".\nIt expires in 15 minutes.\n"
	if err := o.SendMail(context.Background(), "Alice <alice@example.org>", "mfad: recovery code", body); err != nil {
		t.Fatal(err)
	}
	if err := o.SendMail(context.Background(), "bob@example.org", "second", "b"); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, notify.OutboxMail, "*.eml"))
	if len(files) != 2 {
		t.Fatalf("%d .eml files, want 2: %v", len(files), files)
	}
	mode(t, dir, 0o700)
	mode(t, filepath.Join(dir, notify.OutboxMail), 0o700)
	var found bool
	for _, f := range files {
		mode(t, f, 0o600)
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(raw), "\r\n") || strings.Contains(strings.ReplaceAll(string(raw), "\r\n", ""), "\n") {
			t.Errorf("%s: lines do not all end in CRLF", f)
		}
		m, err := mail.ReadMessage(strings.NewReader(string(raw)))
		if err != nil {
			t.Fatalf("%s is not an RFC 5322 message: %v", f, err)
		}
		if m.Header.Get("To") != `"Alice" <alice@example.org>` {
			continue
		}
		found = true
		if m.Header.Get("Subject") != "mfad: recovery code" || m.Header.Get("From") != `"mfad" <mfad@host.example>` {
			t.Errorf("headers: %v", m.Header)
		}
		text, err := io.ReadAll(quotedprintable.NewReader(m.Body))
		if err != nil || strings.ReplaceAll(string(text), "\r\n", "\n") != body {
			t.Errorf("body %q (%v), want %q", text, err, body)
		}
	}
	if !found {
		t.Error("no message to alice")
	}
	// No temporary file is left behind.
	if left, _ := filepath.Glob(filepath.Join(dir, notify.OutboxMail, "*.tmp")); len(left) != 0 {
		t.Errorf("left over: %v", left)
	}
}

func TestOutboxSMS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	o := notify.Outbox{Dir: dir}
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := o.SendCode(context.Background(), "+1 555 0100", "alice", fmt.Sprintf("%06d", i)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	path := filepath.Join(dir, notify.OutboxSMS)
	mode(t, path, 0o600)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), " ")
		// time, "+1", "555", "0100", account, code
		if len(fields) != 6 || fields[4] != "alice" || strings.Join(fields[1:4], " ") != "+1 555 0100" || !strings.HasSuffix(fields[0], "Z") {
			t.Errorf("line %q", sc.Text())
			continue
		}
		seen[fields[5]] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct codes in %s, want %d", len(seen), path, n)
	}
}

func TestOutboxRefuses(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"relative dir", notify.Outbox{Dir: "outbox"}.SendCode(ctx, "+1 555 0100", "alice", testCode)},
		{"code with a line break", notify.Outbox{Dir: dir}.SendCode(ctx, "+1 555 0100", "alice", testCode+"\n1970-01-01T00:00:00Z +1 555 0199 bob 000000")},
		{"account with a space", notify.Outbox{Dir: dir}.SendCode(ctx, "+1 555 0100", "alice x", testCode)},
		{"recipient with a line break", notify.Outbox{Dir: dir, From: "mfad@host.example"}.SendMail(ctx, "a@example.org\r\nBcc: x@example.org", "s", testCode)},
		{"relative dir mail", notify.Outbox{Dir: "outbox", From: "mfad@host.example"}.SendMail(ctx, "a@example.org", "s", testCode)},
	} {
		if !errors.Is(tc.err, notify.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", tc.name, tc.err)
		}
		noCode(t, tc.err, testCode)
	}
	if b, err := os.ReadFile(filepath.Join(dir, notify.OutboxSMS)); err == nil {
		t.Errorf("a refused code was written: %q", b)
	}
	// A directory that cannot be made is a delivery failure, without the code.
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	err := notify.Outbox{Dir: file}.SendCode(ctx, "+1 555 0100", "alice", testCode)
	if !errors.Is(err, notify.ErrDelivery) {
		t.Errorf("outbox under a file: %v, want ErrDelivery", err)
	}
	noCode(t, err, testCode)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := (notify.Outbox{Dir: dir}).SendCode(cancelled, "+1 555 0100", "alice", testCode); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestNewOutbox(t *testing.T) {
	cfg := notify.Config{
		Email: notify.EmailConfig{Outbox: "outbox", From: "mfad@localhost.localdomain"},
		Phone: notify.PhoneConfig{Outbox: "outbox"},
	}
	if _, _, err := notify.New(cfg); !errors.Is(err, notify.ErrInvalid) {
		t.Errorf("relative outbox before Resolve: %v", err)
	}
	cfg.Resolve("/var/lib/mfad")
	m, p, err := notify.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := m.(notify.Outbox); !ok || o.Dir != "/var/lib/mfad/outbox" || o.From != "mfad@localhost.localdomain" {
		t.Errorf("mailer %#v", m)
	}
	if o, ok := p.(notify.Outbox); !ok || o.Dir != "/var/lib/mfad/outbox" {
		t.Errorf("phone %#v", p)
	}
	abs := notify.Config{Phone: notify.PhoneConfig{Outbox: "/srv/outbox"}}
	abs.Resolve("/var/lib/mfad")
	if abs.Phone.Outbox != "/srv/outbox" {
		t.Errorf("an absolute outbox moved: %q", abs.Phone.Outbox)
	}
}

func mode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != want {
		t.Errorf("%s: mode %o, want %o", path, fi.Mode().Perm(), want)
	}
}
