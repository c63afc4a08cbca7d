package notify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mfad/mfad/daemon/notify"
	"github.com/mfad/mfad/daemon/notify/notifytest"
)

// fakeSendmail writes a sendmail that records its argv (one per line)
// and stdin into dir.
func fakeSendmail(t *testing.T) (path, dir string) {
	dir = t.TempDir()
	path = writeScript(t, `for a in "$@"; do printf '%s\n' "$a"; done > '`+dir+`/argv'
cat > '`+dir+`/stdin'
`)
	return path, dir
}

func TestSendmail(t *testing.T) {
	path, dir := fakeSendmail(t)
	m := notify.Sendmail{Path: path, From: "mfad <mfad@host.example>"}
	subject := "Récupération"
	body := "Your code is " + testCode + ".\n.\n.dot line\n"
	if err := m.SendMail(context.Background(), "alice@example.org", subject, body); err != nil {
		t.Fatal(err)
	}
	argv, err := os.ReadFile(filepath.Join(dir, "argv"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Split(strings.TrimSuffix(string(argv), "\n"), "\n"),
		[]string{"-i", "-f", "mfad@host.example", "--", "alice@example.org"}; !slices.Equal(got, want) {
		t.Errorf("argv %q, want %q", got, want)
	}
	stdin, err := os.ReadFile(filepath.Join(dir, "stdin"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stdin, []byte("\r")) {
		t.Error("message has CR: sendmail expects LF line ends")
	}
	msg, err := mail.ReadMessage(bytes.NewReader(stdin))
	if err != nil {
		t.Fatal(err)
	}
	if got := msg.Header.Get("To"); got != "<alice@example.org>" {
		t.Errorf("To %q", got)
	}
	if got := msg.Header.Get("Content-Transfer-Encoding"); got != "quoted-printable" {
		t.Errorf("Content-Transfer-Encoding %q", got)
	}
	if got := msg.Header.Get("Subject"); !strings.HasPrefix(got, "=?utf-8?q?") {
		t.Errorf("Subject %q is not encoded", got)
	}
	// With -i, a lone "." is data: it arrives as is, not stuffed.
	if !bytes.Contains(stdin, []byte("\n.\n.dot line\n")) {
		t.Errorf("body lines starting with '.' changed:\n%s", stdin)
	}
}

func TestSendmailFailure(t *testing.T) {
	// The fake echoes the whole message to stderr, as a broken MTA might.
	path := writeScript(t, "cat >&2\necho 'sendmail: fatal: queue file write error' >&2\nexit 75\n")
	m := notify.Sendmail{Path: path, From: "mfad@host.example"}
	body := "Hello alice,\nYour code is " + testCode + ".\nIt expires in ten minutes.\n"
	err := m.SendMail(context.Background(), "alice@example.org", "Your code", body)
	if !errors.Is(err, notify.ErrDelivery) {
		t.Fatalf("err = %v, want ErrDelivery", err)
	}
	for _, line := range []string{"Hello alice,", "Your code is", "expires in ten minutes"} {
		if strings.Contains(err.Error(), line) {
			t.Errorf("error echoes the body (%q): %v", line, err)
		}
	}
	for _, want := range []string{"exit status 75", path} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	noCode(t, err, testCode)
}

func TestSendmailOutputBounded(t *testing.T) {
	path := writeScript(t, "cat >/dev/null\ni=0\nwhile [ $i -lt 2000 ]; do echo 'warning: something is wrong here'; i=$((i+1)); done >&2\nexit 1\n")
	m := notify.Sendmail{Path: path, From: "mfad@host.example"}
	err := m.SendMail(context.Background(), "alice@example.org", "s", "b")
	if err == nil {
		t.Fatal("no error")
	}
	if len(err.Error()) > 2000 {
		t.Errorf("error is %d bytes long", len(err.Error()))
	}
	if !strings.Contains(err.Error(), "warning: something") || !strings.HasSuffix(err.Error(), "...") {
		t.Errorf("error does not show the start of the output, cut: %.300s", err)
	}
}

func TestSendmailTimeout(t *testing.T) {
	path := writeScript(t, "exec sleep 60\n")
	m := notify.Sendmail{Path: path, From: "mfad@host.example", Timeout: 50 * time.Millisecond}
	err := m.SendMail(context.Background(), "alice@example.org", "s", "b")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
}

func TestSendmailRefusesBadInput(t *testing.T) {
	path, dir := fakeSendmail(t)
	for _, m := range []notify.Sendmail{
		{Path: "sendmail", From: "mfad@host.example"},
		{Path: path, From: "mfad@host.example\nBcc: eve@example.org"},
	} {
		if err := m.SendMail(context.Background(), "alice@example.org", "s", "b"); !errors.Is(err, notify.ErrInvalid) {
			t.Errorf("%+v: err = %v, want ErrInvalid", m, err)
		}
	}
	m := notify.Sendmail{Path: path, From: "mfad@host.example"}
	if err := m.SendMail(context.Background(), "alice@example.org\r\nBcc: eve@example.org", "s", "b"); !errors.Is(err, notify.ErrInvalid) {
		t.Errorf("err = %v, want ErrInvalid", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "argv")); err == nil {
		t.Error("sendmail ran")
	}
}

func TestCommandPhoneScript(t *testing.T) {
	path, read := notifytest.PhoneScript(t, t.TempDir())
	p := notify.Command{Path: path}
	ctx := context.Background()
	if err := p.SendCode(ctx, "+15551234567", "alice", testCode); err != nil {
		t.Fatal(err)
	}
	if err := p.SendCode(ctx, "+15557654321", "bob", "000111"); err != nil {
		t.Fatal(err)
	}
	want := []notifytest.PhoneMessage{
		{Phone: "+15551234567", Account: "alice", Code: testCode},
		{Phone: "+15557654321", Account: "bob", Code: "000111"},
	}
	if got := read(); !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
}

func TestCommandEnvironment(t *testing.T) {
	t.Setenv("NOTIFY_SENTINEL", "must-not-leak")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "started.json")
	// The test binary itself is the command: TestMain sees dumpAccount.
	if err := (notify.Command{Path: self}).SendCode(context.Background(), out, dumpAccount, testCode); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var s started
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	env := slices.Sorted(slices.Values(s.Env))
	want := []string{
		"MFAD_ACCOUNT=" + dumpAccount,
		"MFAD_CODE=" + testCode,
		"MFAD_PHONE=" + out,
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
	}
	if !slices.Equal(env, want) {
		t.Errorf("environment %q, want exactly %q", env, want)
	}
	if len(s.Args) != 1 {
		t.Errorf("arguments %q, want none", s.Args[1:])
	}
	if !s.StdinIsNull {
		t.Error("stdin is not /dev/null")
	}
}

func TestCommandFailure(t *testing.T) {
	path := writeScript(t, `echo "modem: could not send code $MFAD_CODE to $MFAD_PHONE" >&2
exit 3
`)
	err := notify.Command{Path: path}.SendCode(context.Background(), "+15551234567", "alice", testCode)
	if !errors.Is(err, notify.ErrDelivery) {
		t.Fatalf("err = %v, want ErrDelivery", err)
	}
	for _, want := range []string{"exit status 3", "modem: could not send code", "+15551234567"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	noCode(t, err, testCode)
}

func TestCommandKilled(t *testing.T) {
	path := writeScript(t, "kill -9 $$\n")
	err := notify.Command{Path: path}.SendCode(context.Background(), "+15551234567", "alice", testCode)
	if !errors.Is(err, notify.ErrDelivery) || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("err = %v, want a killed command", err)
	}
}

func TestCommandTimeout(t *testing.T) {
	path := writeScript(t, "exec sleep 60\n")
	err := notify.Command{Path: path, Timeout: 50 * time.Millisecond}.SendCode(context.Background(), "+1555", "alice", testCode)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	noCode(t, err, testCode)
}

func TestCommandMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent")
	err := notify.Command{Path: path}.SendCode(context.Background(), "+1555", "alice", testCode)
	if !errors.Is(err, notify.ErrDelivery) || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want ErrDelivery naming the path", err)
	}
}

func TestCommandRefusesBadInput(t *testing.T) {
	path, read := notifytest.PhoneScript(t, t.TempDir())
	for _, tc := range []struct {
		name                 string
		path                 string
		phone, account, code string
	}{
		{"relative path", "mfad-phone", "+1555", "alice", testCode},
		{"empty code", path, "+1555", "alice", ""},
		{"newline in code", path, "+1555", "alice", testCode + "\nx"},
		{"NUL in code", path, "+1555", "alice", testCode + "\x00"},
		{"newline in phone", path, "+1555\n+1666", "alice", testCode},
		{"empty phone", path, "", "alice", testCode},
		{"newline in account", path, "+1555", "alice\nbob", testCode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := notify.Command{Path: tc.path}.SendCode(context.Background(), tc.phone, tc.account, tc.code)
			if !errors.Is(err, notify.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			noCode(t, err, testCode)
		})
	}
	if got := read(); len(got) != 0 {
		t.Errorf("the command ran: %v", got)
	}
}
