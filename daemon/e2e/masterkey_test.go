package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mfadRefuses starts mfad on state and returns what it printed, failing
// the test unless it exits non-zero on its own.
func mfadRefuses(t *testing.T, state string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "mfad"), "--socket", filepath.Join(state, "x.sock"), "--state-dir", state)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET=", "LISTEN_FDS=", "CREDENTIALS_DIRECTORY=")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() <= 0 {
		t.Fatalf("mfad did not refuse to start (%v):\n%s", err, out)
	}
	return string(out)
}

// A TOTP device enrolled, backed up, then restored on a machine without
// the master key: nothing may start on the wrong key, and the restore
// that brings the key back signs in.
func TestRestoreNeedsTheMasterKey(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, "", "")
	w := &world{t: t, d: d}
	w.must(w.as("", "POST", "/v1/accounts", fmt.Sprintf(`{"name":%q,"kind":"member"}`, userSelf), nil), 201)
	_, secret := w.enrollTOTP("", userSelf, "")
	backup := filepath.Join(d.dir, "backup.db")
	if _, errs, code := mfactl(t, d.sock, "admin", "backup", backup); code != 0 {
		t.Fatalf("backup: %q", errs)
	}
	d.stop()

	fresh := filepath.Join(d.dir, "restored")
	os.MkdirAll(fresh, 0o700)
	out, errs, code := mfactl(t, d.sock, "admin", "restore", backup, "--state-dir", fresh, "--yes")
	if code == 0 || !strings.Contains(errs, "--key") || !strings.Contains(errs, "nothing was changed") {
		t.Fatalf("restore without the key: %d %q %q", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(fresh, "mfad.db")); !os.IsNotExist(err) {
		t.Fatalf("a refused restore installed the database: %v", err)
	}

	// The database copied by hand, without its key: mfad refuses to start
	// and makes no key of its own.
	b, _ := os.ReadFile(backup)
	os.WriteFile(filepath.Join(fresh, "mfad.db"), b, 0o600)
	msg := mfadRefuses(t, fresh)
	if !strings.Contains(msg, filepath.Join(fresh, "mfad.key")+" does not exist") || !strings.Contains(msg, "does not make a new key") {
		t.Errorf("start without the key:\n%s", msg)
	}
	if _, err := os.Stat(filepath.Join(fresh, "mfad.key")); !os.IsNotExist(err) {
		t.Fatalf("mfad made a key for a database with secrets: %v", err)
	}
	// Another key: refused too, naming the file.
	os.WriteFile(filepath.Join(fresh, "mfad.key"), []byte(strings.Repeat("ab", 32)), 0o600)
	if msg := mfadRefuses(t, fresh); !strings.Contains(msg, "does not open") || !strings.Contains(msg, filepath.Join(fresh, "mfad.key")) {
		t.Errorf("start with another key:\n%s", msg)
	}
	wrongKey := filepath.Join(d.dir, "wrong.key")
	os.Rename(filepath.Join(fresh, "mfad.key"), wrongKey)
	os.Remove(filepath.Join(fresh, "mfad.db"))
	if _, errs, code := mfactl(t, d.sock, "admin", "restore", backup, "--state-dir", fresh, "--key", wrongKey, "--yes"); code == 0 || !strings.Contains(errs, "does not open the backup") {
		t.Fatalf("restore with the wrong key: %d %q", code, errs)
	}

	// With its key, the restore verifies and installs both, and sign-in works.
	out, errs, code = mfactl(t, d.sock, "admin", "restore", backup, "--state-dir", fresh, "--key", filepath.Join(d.state, "mfad.key"), "--yes")
	if code != 0 || !strings.Contains(out, "its master key is now "+filepath.Join(fresh, "mfad.key")) {
		t.Fatalf("restore with the key: %d %q %q", code, out, errs)
	}
	d2 := startDaemon(t, fresh, "")
	w2 := &world{t: t, d: d2}
	if tok := w2.signIn("", userSelf, secret, 1); tok == "" {
		t.Fatal("no step-up token after signing in on the restored database")
	}
}

// The master key rotates under a running daemon, a backup made with the
// key restores on a new machine with its passphrase alone, and sign-in
// works at every stage.
func TestRotateKeyAndKeyedBackup(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, "", "admin_group = \""+adminGroup+"\"\n")
	w := &world{t: t, d: d}
	w.must(w.as("", "POST", "/v1/accounts", fmt.Sprintf(`{"name":%q,"kind":"member"}`, userSelf), nil), 201)
	// Each device signs in once below: a code is good for one sign-in.
	_, secretA := w.enrollTOTP("", userSelf, "")
	_, secretB := w.enrollTOTP("", userSelf, "")
	keyFile := filepath.Join(d.state, "mfad.key")
	before, _ := os.ReadFile(keyFile)

	// Only uid 0 rotates the key or takes it out.
	if _, errs, code := mfactlAs(t, userAdmin, d.sock, nil, "admin", "rotate-key"); code == 0 || !strings.Contains(errs, "permission_denied") {
		t.Fatalf("rotate-key as an admin-group member: %d %q", code, errs)
	}
	out, errs, code := mfactl(t, d.sock, "admin", "rotate-key")
	if code != 0 || !strings.Contains(out, "re-sealed 2 secrets") || !strings.Contains(out, keyFile+".old") {
		t.Fatalf("rotate-key: %d %q %q", code, out, errs)
	}
	after, _ := os.ReadFile(keyFile)
	if old, _ := os.ReadFile(keyFile + ".old"); bytes.Equal(after, before) || !bytes.Equal(old, before) {
		t.Fatal("the key file did not change, or the replaced key was not kept")
	}
	passFile := filepath.Join(d.dir, "passphrase")
	os.WriteFile(passFile, []byte("correct horse battery staple\n"), 0o600)
	backup := filepath.Join(d.dir, "keyed.backup")
	if _, errs, code := mfactl(t, d.sock, "admin", "backup", "--with-key", "--passphrase-file", passFile, backup); code != 0 {
		t.Fatalf("backup --with-key: %d %q", code, errs)
	}
	if b, _ := os.ReadFile(backup); bytes.Contains(b, after) {
		t.Fatal("the keyed backup holds the master key in the clear")
	}
	short := filepath.Join(d.dir, "short")
	os.WriteFile(short, []byte("short\n"), 0o600)
	if _, errs, code := mfactl(t, d.sock, "admin", "backup", "--with-key", "--passphrase-file", short, filepath.Join(d.dir, "x")); code == 0 {
		t.Fatalf("a short passphrase was accepted: %q", errs)
	}
	theirDir := filepath.Join(d.dir, "admin-user")
	os.Mkdir(theirDir, 0o777)
	os.Chmod(theirDir, 0o777)
	theirs := filepath.Join(theirDir, "passphrase")
	os.WriteFile(theirs, []byte("correct horse battery staple\n"), 0o644)
	if _, errs, code := mfactlAs(t, userAdmin, d.sock, nil, "admin", "backup", "--with-key", "--passphrase-file", theirs, filepath.Join(theirDir, "backup")); code == 0 || !strings.Contains(errs, "permission_denied") {
		t.Fatalf("backup --with-key as an admin-group member: %d %q", code, errs)
	}
	w.signIn("", userSelf, secretA, 1)
	audit, _, _ := mfactl(t, d.sock, "audit")
	if !strings.Contains(audit, "store.rotate_key") || !strings.Contains(audit, "with the master key") {
		t.Errorf("audit after rotation and keyed backup:\n%s", audit)
	}

	// The rotated key is the one mfad starts on.
	d.stop()
	d2 := startDaemon(t, d.state, "")
	(&world{t: t, d: d2}).signIn("", userSelf, secretB, 1)
	d2.stop()

	// A new machine: the backup and its passphrase are enough.
	fresh := filepath.Join(d.dir, "new-machine")
	os.MkdirAll(fresh, 0o700)
	wrong := filepath.Join(d.dir, "wrong")
	os.WriteFile(wrong, []byte("not the passphrase at all\n"), 0o600)
	if _, errs, code := mfactl(t, d.sock, "admin", "restore", backup, "--state-dir", fresh, "--passphrase-file", wrong, "--yes"); code == 0 || !strings.Contains(errs, "passphrase does not open") {
		t.Fatalf("restore with the wrong passphrase: %d %q", code, errs)
	}
	out, errs, code = mfactl(t, d.sock, "admin", "restore", backup, "--state-dir", fresh, "--passphrase-file", passFile, "--yes")
	if code != 0 || !strings.Contains(out, "its master key is now") {
		t.Fatalf("keyed restore: %d %q %q", code, out, errs)
	}
	if k, _ := os.ReadFile(filepath.Join(fresh, "mfad.key")); !bytes.Equal(k, after) {
		t.Fatal("the restored key is not the one the backup was sealed under")
	}
	d3 := startDaemon(t, fresh, "")
	(&world{t: t, d: d3}).signIn("", userSelf, secretA, 1) // the backup predates its sign-in above
}

// The files a crash leaves in the middle of a key rotation (the store's
// tests kill a rotation after each step): mfad starts on the key that
// opens the database and tidies up.
func TestStartFinishesAnInterruptedRotation(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, "", "")
	w := &world{t: t, d: d}
	w.must(w.as("", "POST", "/v1/accounts", fmt.Sprintf(`{"name":%q,"kind":"member"}`, userSelf), nil), 201)
	_, secretA := w.enrollTOTP("", userSelf, "")
	_, secretB := w.enrollTOTP("", userSelf, "")
	if _, errs, code := mfactl(t, d.sock, "admin", "rotate-key"); code != 0 {
		t.Fatalf("rotate-key: %q", errs)
	}
	d.stop()
	keyFile := filepath.Join(d.state, "mfad.key")
	newKey, _ := os.ReadFile(keyFile)
	oldKey, _ := os.ReadFile(keyFile + ".old")

	// Committed, not yet renamed: the old key in place, the new one beside it.
	os.WriteFile(keyFile+".new", newKey, 0o600)
	os.WriteFile(keyFile, oldKey, 0o600)
	os.Remove(keyFile + ".old")
	d2 := startDaemon(t, d.state, "")
	(&world{t: t, d: d2}).signIn("", userSelf, secretA, 1)
	d2.stop()
	if k, _ := os.ReadFile(keyFile); !bytes.Equal(k, newKey) {
		t.Fatal("mfad did not put the committed key in place")
	}
	if k, _ := os.ReadFile(keyFile + ".old"); !bytes.Equal(k, oldKey) {
		t.Fatal("mfad did not keep the replaced key as mfad.key.old")
	}

	// Not committed: a new key that sealed nothing.
	os.WriteFile(keyFile+".new", bytes.Repeat([]byte{7}, 32), 0o600)
	d3 := startDaemon(t, d.state, "")
	(&world{t: t, d: d3}).signIn("", userSelf, secretB, 1)
	if _, err := os.Stat(keyFile + ".new"); !os.IsNotExist(err) {
		t.Fatalf("an uncommitted mfad.key.new was left: %v", err)
	}
	if k, _ := os.ReadFile(keyFile); !bytes.Equal(k, newKey) {
		t.Fatal("mfad replaced the key that opens the database")
	}
}
