package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/term"

	"github.com/mfad/mfad/authn/store"
)

// RestoreOptions are mfad restore's flags.
type RestoreOptions struct {
	// KeyFile is the master key the backup was sealed under (--key);
	// empty: the key a keyed backup carries, else the one in place.
	KeyFile string
	// PassphraseFile holds a keyed backup's passphrase on its first line
	// (--passphrase-file); empty: it is asked on the terminal.
	PassphraseFile string
}

// Restore checks a backup and that its master key opens it, then installs
// both into a stopped daemon's state dir. It returns what it did, for the
// operator.
func Restore(backup, stateDir string, o RestoreOptions) (string, error) {
	var opts store.RestoreOptions
	if o.KeyFile != "" {
		k, err := store.ReadKeyFile(o.KeyFile)
		if err != nil {
			return "", err
		}
		opts.Key = k
	}
	opts.Passphrase = func() ([]byte, error) {
		if o.PassphraseFile != "" {
			return ReadPassphraseFile(o.PassphraseFile)
		}
		return askPassphrase("passphrase of the master key in " + backup + ": ")
	}
	r, err := store.Restore(backup, stateDir, opts)
	if err != nil {
		return "", err
	}
	// mfad refuses files that are not its own: what root restores into
	// the mfad user's state directory becomes that user's.
	owned := []string{filepath.Join(stateDir, store.DBFileName)}
	if r.KeyInstalled {
		owned = append(owned, r.KeyFile, r.KeyFile+".old")
	}
	if err := giveToDirOwner(stateDir, owned...); err != nil {
		return "", err
	}
	msg := fmt.Sprintf("restored %s into %s", backup, stateDir)
	switch {
	case r.KeyFile == "":
		msg += " (it holds no sealed secret: mfad makes a master key at its next start)"
	case r.KeyInstalled:
		msg += fmt.Sprintf("; its master key is now %s", r.KeyFile)
		if _, err := os.Stat(r.KeyFile + ".old"); err == nil {
			msg += fmt.Sprintf(" (the key it replaced is kept as %s.old)", r.KeyFile)
		}
	default:
		msg += fmt.Sprintf("; the master key %s opens it", r.KeyFile)
	}
	if os.Getenv("CREDENTIALS_DIRECTORY") != "" || fileExists("/etc/credstore/mfad.key") || fileExists("/etc/credstore.encrypted/mfad.key") {
		msg += "\nnote: if mfad.service passes the master key as a systemd credential, that credential must hold this key"
	}
	return msg, nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// ReadPassphraseFile returns the first line of path.
func ReadPassphraseFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) == 0 {
		return nil, fmt.Errorf("%s holds no passphrase", path)
	}
	return b, nil
}

// askPassphrase reads a passphrase from the terminal without echo.
func askPassphrase(prompt string) ([]byte, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, errors.New("no terminal to ask the passphrase on: give --passphrase-file FILE")
	}
	defer tty.Close()
	fmt.Fprint(tty, prompt)
	p, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		return nil, fmt.Errorf("reading the passphrase: %w", err)
	}
	return p, nil
}
