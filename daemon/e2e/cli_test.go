package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mfad/mfad/ipc/api"
)

// mfactl runs the CLI against d and returns stdout, stderr and the exit code.
func mfactl(t *testing.T, sock string, args ...string) (string, string, int) {
	t.Helper()
	return mfactlIn(t, sock, "", args...)
}

func TestCLIAccountsAuditBackupRestore(t *testing.T) {
	d := startDaemon(t, "", "")
	out, errs, code := mfactl(t, d.sock, "account", "create", "carol", "--force", "--kind", "owner", "--email", "c@example.org", "--email-verified")
	if code != 0 || !strings.Contains(out, "c@example.org (verified)") {
		t.Fatalf("create: %d %q %q", code, out, errs)
	}
	if _, errs, code = mfactl(t, d.sock, "account", "create", "carol", "--force"); code != 1 || !strings.Contains(errs, "[account_exists]") {
		t.Errorf("duplicate create: %d %q", code, errs)
	}
	out, _, _ = mfactl(t, d.sock, "account", "list")
	if !strings.Contains(out, "NAME") || !strings.Contains(out, "carol") {
		t.Errorf("list table: %q", out)
	}
	out, _, _ = mfactl(t, d.sock, "--json", "account", "show", "carol")
	var a api.Account
	if err := json.Unmarshal([]byte(out), &a); err != nil || a.Kind != "owner" {
		t.Errorf("show --json: %q %v", out, err)
	}
	if out, _, code = mfactl(t, d.sock, "account", "update", "carol", "--flags", "password_change_required"); code != 0 || !strings.Contains(out, "password_change_required") {
		t.Errorf("update flags: %d %q", code, out)
	}
	if out, _, code = mfactl(t, d.sock, "admin", "unlock", "carol"); code != 0 {
		t.Errorf("unlock: %d %q", code, out)
	}
	out, _, _ = mfactl(t, d.sock, "--json", "audit", "--all")
	var actions []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e api.AuditEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		actions = append(actions, e.Action)
	}
	if strings.Join(actions, " ") != "account.create account.update account.unlock" {
		t.Errorf("audit actions: %v", actions)
	}

	backup := filepath.Join(d.dir, "backup.db")
	if _, errs, code = mfactl(t, d.sock, "admin", "backup", backup); code != 0 {
		t.Fatalf("backup: %q", errs)
	}
	// Restore refuses a running daemon's state dir, and installs into a stopped one.
	if _, errs, code = mfactl(t, d.sock, "admin", "restore", backup, "--state-dir", d.state, "--yes"); code == 0 || !strings.Contains(errs, "stop mfad") {
		t.Errorf("restore into a live state dir: %d %q", code, errs)
	}
	junk := filepath.Join(d.dir, "junk.db")
	os.WriteFile(junk, []byte(strings.Repeat("junk", 4096)), 0o600)
	if _, errs, code = mfactl(t, d.sock, "admin", "restore", junk, "--state-dir", d.state, "--yes"); code == 0 {
		t.Errorf("junk restored: %q", errs)
	}
	d.stop()
	fresh := filepath.Join(d.dir, "restored")
	os.MkdirAll(fresh, 0o700)
	// The master key travels separately from the backup.
	key, _ := os.ReadFile(filepath.Join(d.state, "mfad.key"))
	os.WriteFile(filepath.Join(fresh, "mfad.key"), key, 0o600)
	if out, errs, code = mfactl(t, d.sock, "admin", "restore", backup, "--state-dir", fresh, "--yes"); code != 0 {
		t.Fatalf("restore: %d %q %q", code, out, errs)
	}
	d2 := startDaemon(t, fresh, "")
	out, _, _ = mfactl(t, d2.sock, "account", "show", "carol")
	if !strings.Contains(out, "owner") {
		t.Errorf("restored account: %q", out)
	}
}

func TestCLIErrorsAreHelpful(t *testing.T) {
	_, errs, code := mfactl(t, filepath.Join(work, "nowhere.sock"), "info")
	if code != 3 || !strings.Contains(errs, "mfad is not running at") || !strings.Contains(errs, "start it with") {
		t.Errorf("not running: %d %q", code, errs)
	}
	out, _, code := mfactl(t, "", "completion", "bash")
	if code != 0 || !strings.Contains(out, "mfactl") {
		t.Errorf("bash completion: %d", code)
	}
}

func TestCLIPermissionHint(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, "", "")
	cmd := exec.Command(filepath.Join(binDir, "mfactl"), "--socket", d.sock, "account", "list")
	u := users[userOther]
	var uid, gid uint32
	json.Unmarshal([]byte(u.Uid), &uid)
	json.Unmarshal([]byte(u.Gid), &gid)
	cmd.SysProcAttr = credOf(uid, gid)
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "[permission_denied]") || !strings.Contains(string(out), "admin group") {
		t.Errorf("user listing accounts: %q", out)
	}
}

// TestCLIResyncAtSignIn: a TOTP device that drifted before runs 15
// minutes fast; its code alone is refused with the resync hint, which
// mfactl turns into the command to run; with --next-code it signs in.
func TestCLIResyncAtSignIn(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, "", "")
	id, secret := enrollTOTP(t, d, userSelf, "member")
	awayFromStepEdge()
	at := time.Now().Add(5 * time.Minute)
	in := oathtool(t, secret, at.Add(-30*time.Second)) + " " + oathtool(t, secret, at) + "\n"
	if out, errs, code := mfactlIn(t, d.sock, in, "device", "resync", userSelf, id[:6]); code != 0 {
		t.Fatalf("resync (codes on stdin, the device by id prefix): %d %s %s", code, out, errs)
	}
	awayFromStepEdge()
	at = time.Now().Add(15 * time.Minute)
	c1, c2 := oathtool(t, secret, at), oathtool(t, secret, at.Add(30*time.Second))
	_, errs, code := mfactlIn(t, d.sock, c1+"\n", "authenticate", userSelf)
	if code != 1 || !strings.Contains(errs, "--next-code") {
		t.Fatalf("a drifted code alone: %d %s", code, errs)
	}
	out, errs, code := mfactlIn(t, d.sock, c1+"\n", "authenticate", userSelf, "--next-code", c2, "--token-only")
	if code != 0 || len(strings.TrimSpace(out)) < 20 {
		t.Fatalf("with --next-code: %d %q %s", code, out, errs)
	}
	if strings.Contains(out+errs, c1) {
		t.Error("mfactl printed the code")
	}
	// Completion offers the account's devices by id, with their labels.
	if out, _, code = mfactl(t, d.sock, "__complete", "device", "resync", userSelf, ""); code != 0 || !strings.Contains(out, id+"\tphone, totp active") {
		t.Errorf("device completion: %d %q", code, out)
	}
	if out, _, _ = mfactl(t, d.sock, "__complete", "device", "list", ""); !strings.Contains(out, userSelf) {
		t.Errorf("account completion: %q", out)
	}
}

// mfactlIn runs mfactl as root with stdin.
func mfactlIn(t *testing.T, sock, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "mfactl"), args...)
	cmd.Env = append(os.Environ(), "MFAD_SOCKET="+sock)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}
