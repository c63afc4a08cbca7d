package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mfad/mfad/ipc/api"
)

// mfadRefusesWith runs mfad and expects it to refuse to start, returning what
// it said.
func mfadRefusesWith(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "mfad"), args...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET=", "LISTEN_FDS=", "CREDENTIALS_DIRECTORY=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil || err == nil {
		t.Fatalf("mfad %v started instead of refusing:\n%s", args, out.String())
	}
	return out.String()
}

// TestUnsafeFilesRefused: mfad refuses a state directory or socket
// directory that another user could write, one owned by another user, and
// a database readable by others, saying which path and what to do; it
// accepts a traversable state directory (0711, as make run makes it) that
// doubles as the socket directory, and a sticky world-writable socket
// directory.
func TestUnsafeFilesRefused(t *testing.T) {
	base, err := os.MkdirTemp(work, "files-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(base, 0o755)
	mkdir := func(name string, mode os.FileMode) string {
		p := filepath.Join(base, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sock := filepath.Join(base, "mfad.sock")

	open := mkdir("open", 0o777)
	out := mfadRefusesWith(t, "--socket", sock, "--state-dir", open)
	if !strings.Contains(out, open) || !strings.Contains(out, "chmod go-w") {
		t.Errorf("world-writable state dir: %s", out)
	}
	if _, err := os.Stat(filepath.Join(open, "mfad.key")); err == nil {
		t.Error("mfad made a master key in a world-writable state dir")
	}

	// Each state file readable by others is refused by name: the
	// database, the write-ahead log's records (they hold what the
	// database does) and a base copy (recovery rebuilds the database
	// from it).
	for _, f := range []struct{ dir, name, what string }{
		{"wide", "mfad.db", "database"},
		{"widelog", "mfad.wal.1", "write-ahead log records"},
		{"widebase", "mfad.db.base.7", "base copy"},
	} {
		dir := mkdir(f.dir, 0o700)
		path := filepath.Join(dir, f.name)
		os.WriteFile(path, nil, 0o600)
		os.Chmod(path, 0o644)
		out = mfadRefusesWith(t, "--socket", sock, "--state-dir", dir)
		if !strings.Contains(out, path) || !strings.Contains(out, "chmod 600") {
			t.Errorf("%s 0644: %s", f.what, out)
		}
	}

	openSock := mkdir("opensock", 0o777)
	out = mfadRefusesWith(t, "--socket", filepath.Join(openSock, "mfad.sock"), "--state-dir", filepath.Join(base, "s1"))
	if !strings.Contains(out, openSock) || !strings.Contains(out, "chmod go-w") {
		t.Errorf("world-writable socket dir: %s", out)
	}

	if os.Getuid() == 0 {
		theirs := mkdir("theirs", 0o700)
		uid, _ := strconv.Atoi(users[userOther].Uid)
		os.Chown(theirs, uid, uid)
		out = mfadRefusesWith(t, "--socket", sock, "--state-dir", theirs)
		if !strings.Contains(out, theirs) || !strings.Contains(out, "chown") {
			t.Errorf("state dir owned by another user: %s", out)
		}
	}

	// make run: one 0711 directory holds the state and the socket.
	run := mkdir("run", 0o711)
	d := &daemon{t: t, dir: run, sock: filepath.Join(run, "mfad.sock"), state: run}
	d.start("--socket", d.sock, "--state-dir", d.state)
	t.Cleanup(d.stop)
	if _, err := d.client().Info(context.Background()); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(d.sock); err != nil || fi.Mode().Perm() != 0o666 {
		t.Errorf("socket mode %v (%v), want 0666", fi.Mode(), err)
	}
	d.stop()

	sticky := mkdir("sticky", 0o777|os.ModeSticky)
	d2 := &daemon{t: t, dir: sticky, sock: filepath.Join(sticky, "mfad.sock"), state: filepath.Join(base, "s2")}
	d2.start("--socket", d2.sock, "--state-dir", d2.state)
	t.Cleanup(d2.stop)
	if _, err := d2.client().Info(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestServiceUserRestore: mfad runs as an unprivileged service user (as
// mfad.service runs as mfad) on a state directory that user owns; root
// backs it up and restores the backup while it is stopped; mfad, as that
// user again, accepts the restored database as its own and serves it.
func TestServiceUserRestore(t *testing.T) {
	needRoot(t)
	uid, _ := strconv.Atoi(users[userOther].Uid)
	gid, _ := strconv.Atoi(users[userOther].Gid)
	base, err := os.MkdirTemp(work, "svc-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(base, 0o755)
	state, run := filepath.Join(base, "state"), filepath.Join(base, "run")
	for _, p := range []string{state, run} {
		os.Mkdir(p, 0o700)
		os.Chmod(p, 0o755)
		os.Chown(p, uid, gid)
	}
	os.Chmod(state, 0o700)
	d := &daemon{t: t, dir: run, sock: filepath.Join(run, "mfad.sock"), state: state, attr: credOf(uint32(uid), uint32(gid))}
	d.start("--socket", d.sock, "--state-dir", d.state)
	t.Cleanup(d.stop)
	ctx := context.Background()
	if _, err := d.client().CreateAccount(ctx, api.CreateAccount{Name: userSelf, Kind: "member"}); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(base, "backup.db")
	if _, errs, code := mfactl(t, d.sock, "admin", "backup", backup); code != 0 {
		t.Fatalf("backup: %q", errs)
	}
	d.stop()
	if out, errs, code := mfactl(t, d.sock, "admin", "restore", backup, "--state-dir", state, "--yes"); code != 0 {
		t.Fatalf("restore: %d %q %q", code, out, errs)
	}
	d.start("--socket", d.sock, "--state-dir", d.state)
	if _, err := d.client().Account(ctx, userSelf); err != nil {
		t.Fatalf("the restored account, served by mfad as the service user: %v\n%s", err, d.stderr.String())
	}
}
