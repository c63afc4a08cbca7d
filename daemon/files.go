package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// mfad keeps its secrets in the state directory and serves on a socket
// whose directory it may create. Another user who can write either
// directory, or who owns a file mfad reads, could swap what mfad opens; so
// mfad refuses to start, naming the path and the fix, rather than work on
// top of them.

// privateDir checks a directory mfad keeps its state in: owned by mfad's
// own user or root, and writable by no one else (0700 or 0711 are fine,
// 0775 or 1777 are not).
func privateDir(path, what string) error { return checkDir(path, what, false) }

// socketDir checks the directory mfad binds its socket in: owned by mfad's
// own user or root, and writable by no one else unless it is sticky
// (/tmp, /run/user/...: there others cannot rename or remove mfad's socket).
func socketDir(path string) error { return checkDir(path, "socket directory", true) }

func checkDir(path, what string, stickyOK bool) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s %s is not a directory", what, path)
	}
	if err := ownedBySelfOrRoot(fi, path, what); err != nil {
		return err
	}
	perm := fi.Mode().Perm()
	if perm&0o022 != 0 && !(stickyOK && fi.Mode()&fs.ModeSticky != 0) {
		return fmt.Errorf("%s %s has mode %04o: other users could write there and swap what mfad keeps in it; "+
			"make it writable only by mfad's user (chmod go-w %s)", what, path, perm, path)
	}
	return nil
}

// privateFile checks a file that holds secrets (the database, the master
// key), when it exists: a regular file owned by mfad's own user and
// readable by no one else.
func privateFile(path, what string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s %s is not a regular file", what, path)
	}
	if uid, ok := ownerOf(fi); ok && uid != uint32(os.Geteuid()) {
		return fmt.Errorf("%s %s is owned by uid %d, not by the uid mfad runs as (%d); "+
			"give it to mfad's user (chown %d %s) or run mfad as its owner", what, path, uid, os.Geteuid(), os.Geteuid(), path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s %s has mode %04o: group and others must have no access to it (chmod 600 %s)", what, path, perm, path)
	}
	return nil
}

func ownedBySelfOrRoot(fi fs.FileInfo, path, what string) error {
	uid, ok := ownerOf(fi)
	if !ok || uid == 0 || uid == uint32(os.Geteuid()) {
		return nil
	}
	return fmt.Errorf("%s %s is owned by uid %d, neither root nor the uid mfad runs as (%d): that user could swap what mfad keeps there; "+
		"give it to mfad's user (chown %d %s) or choose another directory", what, path, uid, os.Geteuid(), os.Geteuid(), path)
}

func ownerOf(fi fs.FileInfo) (uint32, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Uid, true
}

// prepareStateDir makes the state directory (0700) when it is missing and
// checks it and the secret files already in it (each {name, what}).
func prepareStateDir(dir string, files ...[2]string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	if err := privateDir(dir, "state directory"); err != nil {
		return err
	}
	for _, f := range files {
		if err := privateFile(filepath.Join(dir, f[0]), f[1]); err != nil {
			return err
		}
	}
	return nil
}

// bindSocket binds a Unix socket at path with mode 0666. The mode comes
// from the umask in force at bind, so that no chmod follows the path
// afterwards, when another user might have swapped it. The umask is the
// process's: it is changed for the bind only, at start, when nothing else
// in mfad creates files or directories.
func bindSocket(path string) (*net.UnixListener, error) {
	umaskMu.Lock()
	defer umaskMu.Unlock()
	old := syscall.Umask(0o111)
	defer syscall.Umask(old)
	return net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
}

// umaskMu serializes mfad's own umask changes.
var umaskMu sync.Mutex

// giveToDirOwner hands files mfad itself just wrote into dir (a restored
// database, an installed key) to dir's owner, when mfad runs as root and
// the directory is another user's (mfad restore run by root for
// mfad.service, which runs as the mfad user). Missing files are skipped.
func giveToDirOwner(dir string, files ...string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return nil
	}
	for _, f := range files {
		if err := os.Lchown(f, int(st.Uid), int(st.Gid)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("giving %s to the owner of %s (uid %d): %w", f, dir, st.Uid, err)
		}
	}
	return nil
}
