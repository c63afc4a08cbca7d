package daemon

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// otherUID is a uid that is neither root nor the one the test runs as.
const otherUID = 54321

func TestDirectoryChecks(t *testing.T) {
	cases := []struct {
		name     string
		mode     os.FileMode
		owner    int // -1: the test's own uid
		state    string
		socket   string // "" ok, else a word the refusal must hold
		needRoot bool
	}{
		{name: "0700", mode: 0o700, owner: -1},
		{name: "0711 (make run)", mode: 0o711, owner: -1},
		{name: "0755", mode: 0o755, owner: -1},
		{name: "group-writable", mode: 0o770, owner: -1, state: "chmod go-w", socket: "chmod go-w"},
		{name: "world-writable", mode: 0o777, owner: -1, state: "chmod go-w", socket: "chmod go-w"},
		{name: "sticky world-writable", mode: 0o777 | os.ModeSticky, owner: -1, state: "chmod go-w"},
		{name: "owned by root", mode: 0o755, owner: 0, needRoot: true},
		{name: "owned by another user", mode: 0o700, owner: otherUID, state: "chown", socket: "chown", needRoot: true},
		{name: "another user's sticky dir", mode: 0o777 | os.ModeSticky, owner: otherUID, state: "chown", socket: "chown", needRoot: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.needRoot && os.Geteuid() != 0 {
				t.Skip("needs root to chown")
			}
			dir := filepath.Join(t.TempDir(), "d")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, c.mode); err != nil {
				t.Fatal(err)
			}
			if c.owner >= 0 {
				if err := os.Chown(dir, c.owner, c.owner); err != nil {
					t.Fatal(err)
				}
			}
			for _, check := range []struct {
				what string
				err  error
				want string
			}{{"state", privateDir(dir, "state directory"), c.state}, {"socket", socketDir(dir), c.socket}} {
				switch {
				case check.want == "" && check.err != nil:
					t.Errorf("%s check refused it: %v", check.what, check.err)
				case check.want != "" && check.err == nil:
					t.Errorf("%s check accepted it", check.what)
				case check.want != "" && (!strings.Contains(check.err.Error(), dir) || !strings.Contains(check.err.Error(), check.want)):
					t.Errorf("%s check: %q does not name the path and the fix (%s)", check.what, check.err, check.want)
				}
			}
		})
	}
}

func TestSecretFileChecks(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := privateFile(filepath.Join(dir, "missing"), "database"); err != nil {
		t.Errorf("a missing file (made on first start): %v", err)
	}
	if err := privateFile(write("ok", 0o600), "database"); err != nil {
		t.Errorf("0600: %v", err)
	}
	if err := privateFile(write("ro", 0o400), "master key"); err != nil {
		t.Errorf("0400: %v", err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o666} {
		p := write("wide", mode)
		if err := privateFile(p, "database"); err == nil || !strings.Contains(err.Error(), "chmod 600 "+p) {
			t.Errorf("mode %04o: %v, want a refusal naming chmod 600 %s", mode, err, p)
		}
	}
	if err := privateFile(dir, "database"); err == nil {
		t.Error("a directory where the database should be was accepted")
	}
	if os.Geteuid() == 0 {
		for _, owner := range []int{otherUID, 0} {
			p := write("owned", 0o600)
			if err := os.Chown(p, owner, owner); err != nil {
				t.Fatal(err)
			}
			err := privateFile(p, "master key")
			if owner != os.Geteuid() && (err == nil || !strings.Contains(err.Error(), "chown")) {
				t.Errorf("owned by uid %d: %v, want a refusal naming chown", owner, err)
			}
			if owner == os.Geteuid() && err != nil {
				t.Errorf("owned by uid %d (ours): %v", owner, err)
			}
		}
	}
}

// TestStateDirRefusedBeforeAnythingIsOpened: Run stops at a state
// directory others may write, before it makes a key or a database there.
func TestStateDirRefusedBeforeAnythingIsOpened(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	if err := prepareStateDir(dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("world-writable state dir: %v", err)
	}
	os.Chmod(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "mfad.db"), nil, 0o644)
	os.Chmod(filepath.Join(dir, "mfad.db"), 0o644)
	if err := prepareStateDir(dir, [2]string{"mfad.db", "database"}); err == nil || !strings.Contains(err.Error(), "database") {
		t.Fatalf("database 0644: %v", err)
	}
	fresh := filepath.Join(t.TempDir(), "new", "state")
	if err := prepareStateDir(fresh, [2]string{"mfad.db", "database"}); err != nil {
		t.Fatalf("a state dir mfad makes: %v", err)
	}
	if fi, _ := os.Stat(fresh); fi.Mode().Perm() != 0o700 {
		t.Errorf("a state dir mfad makes has mode %04o, want 0700", fi.Mode().Perm())
	}
}

// TestListenSocketMode: the socket is 0666 whatever the process umask,
// the umask is restored, and a socket directory others may write is
// refused before anything is bound or removed there.
func TestListenSocketMode(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	path := filepath.Join(dir, "mfad.sock")
	l, _, err := listen(path, "mfad", log)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o666 {
		t.Errorf("socket %v mode %v, want a 0666 socket", err, fi.Mode())
	}
	if now := syscall.Umask(0o077); now != 0o077 {
		t.Errorf("umask after listen %04o, want 0077 restored", now)
	}
	open := filepath.Join(t.TempDir(), "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	stale := filepath.Join(open, "mfad.sock")
	if _, _, err := listen(stale, "mfad", log); err == nil || !strings.Contains(err.Error(), open) {
		t.Errorf("world-writable socket dir: %v", err)
	}
}

// TestRestoredFilesGoToTheStateDirOwner: what root writes into another
// user's state directory (a restore for mfad.service) becomes that
// user's, so that mfad running as them accepts it.
func TestRestoredFilesGoToTheStateDirOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	dir := filepath.Join(t.TempDir(), "state")
	os.Mkdir(dir, 0o700)
	db := filepath.Join(dir, "mfad.db")
	os.WriteFile(db, []byte("x"), 0o600)
	if err := giveToDirOwner(dir, db, filepath.Join(dir, "absent")); err != nil {
		t.Fatal(err)
	}
	if uid, _ := ownerOf(mustStat(t, db)); uid != 0 {
		t.Errorf("a root-owned state dir: the file went to uid %d", uid)
	}
	os.Chown(dir, otherUID, otherUID)
	if err := giveToDirOwner(dir, db, filepath.Join(dir, "absent")); err != nil {
		t.Fatal(err)
	}
	if uid, _ := ownerOf(mustStat(t, db)); uid != otherUID {
		t.Errorf("the restored file is owned by uid %d, want the state dir's owner %d", uid, otherUID)
	}
}

func mustStat(t *testing.T, p string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}
