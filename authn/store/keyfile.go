package store

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// KeySize is the master key length: AES-256.
const KeySize = 32

// KeyFileName is the master key's file name, both as a systemd credential
// ($CREDENTIALS_DIRECTORY/mfad.key) and in the state directory.
const KeyFileName = "mfad.key"

// Beside the key file, a key rotation writes the new key as mfad.key.new
// and keeps the replaced key as mfad.key.old.
const (
	newKeySuffix = ".new"
	oldKeySuffix = ".old"
)

// LoadKey returns the master key of stateDir's database and the file it
// came from: $CREDENTIALS_DIRECTORY/mfad.key when systemd passes one, else
// stateDir/mfad.key. A key that does not open the database's key-check
// value (or, in a database written before check values, its first sealed
// secret) is refused with ErrWrongKey: mfad does not start on the wrong
// key. A new key (mode 0600, 32 random bytes) is made only when there is
// no key file and the database holds no sealed secret.
//
// When a key rotation was interrupted (mfad.key.new beside mfad.key),
// whichever key opens the database wins: an uncommitted new key is
// removed; a committed one replaces mfad.key, the replaced key being kept
// as mfad.key.old.
//
// A key file readable by group or others is refused. The file may hold
// the raw 32 bytes or 64 hex digits.
func LoadKey(stateDir string) ([]byte, string, error) {
	dbPath := filepath.Join(stateDir, DBFileName)
	// After a crash mfad.db is rebuilt from the log before anything reads it.
	if _, err := RecoverLog(stateDir, 3*time.Second); err != nil {
		return nil, "", err
	}
	st, err := readKeyState(dbPath)
	if err != nil {
		return nil, "", err
	}
	probe := st.probe()
	if dir := os.Getenv("CREDENTIALS_DIRECTORY"); dir != "" {
		p := filepath.Join(dir, KeyFileName)
		if _, err := os.Stat(p); err == nil {
			k, err := readKey(p, false)
			if err != nil {
				return nil, p, err
			}
			if !opensWith(probe, k) {
				return nil, p, fmt.Errorf("%w: the master key %s (a systemd credential) does not open %s (%s). "+
					"Give mfad the key this database was sealed under (LoadCredential= in mfad.service), or restore "+
					"a backup with its key (mfad restore --key FILE). mfad does not start rather than lose the secrets sealed in it",
					ErrWrongKey, p, dbPath, probe.what)
			}
			return k, p, nil
		}
	}
	p := filepath.Join(stateDir, KeyFileName)
	pNew := p + newKeySuffix
	cur, err := readKeyIfExists(p)
	if err != nil {
		return nil, p, err
	}
	next, err := readKeyIfExists(pNew)
	if err != nil {
		return nil, pNew, err
	}
	switch {
	case cur != nil && opensWith(probe, cur):
		if next != nil {
			// A rotation that never committed: its key sealed nothing.
			if err := os.Remove(pNew); err != nil {
				return nil, p, err
			}
			if err := syncDir(stateDir); err != nil {
				return nil, p, err
			}
		}
		return cur, p, nil
	case next != nil && opensWith(probe, next):
		// A rotation that committed: finish it.
		if err := finishRotation(p, cur, next); err != nil {
			return nil, p, err
		}
		return next, p, nil
	case cur == nil && next == nil:
		if st.secret != nil {
			return nil, p, fmt.Errorf("store: %s holds secrets sealed under a master key (%s), but %s does not exist. "+
				"Put that key back (mode 0600), or restore a backup with its key (mfad restore --key FILE, or a backup "+
				"made with mfactl admin backup --with-key). mfad does not make a new key, which would lose every secret sealed in it",
				dbPath, st.secret.what, p)
		}
		if st.check != nil {
			// The key of a database without a sealed secret is lost; a new
			// key loses nothing. Its check value goes first.
			if err := dropKeyCheck(dbPath); err != nil {
				return nil, p, err
			}
		}
		k := make([]byte, KeySize)
		if _, err := rand.Read(k); err != nil {
			return nil, p, err
		}
		if err := writeKeyFile(p, k, false); err != nil {
			return nil, p, fmt.Errorf("store: create master key: %w", err)
		}
		return k, p, nil
	}
	tried := p
	if cur == nil {
		tried = pNew
	} else if next != nil {
		tried = p + " and " + pNew
	}
	return nil, p, fmt.Errorf("%w: no key in %s opens %s (%s). This database was sealed under another key: put its key "+
		"in place (mode 0600), or restore a backup with its key (mfad restore --key FILE). mfad does not start rather "+
		"than lose the secrets sealed in it", ErrWrongKey, tried, dbPath, probe.what)
}

func opensWith(p *keyProbe, key []byte) bool {
	s, err := newSealer(key)
	return err == nil && p.opens(s)
}

func readKeyIfExists(path string) ([]byte, error) {
	k, err := readKey(path, true)
	if isNotExist(err) {
		return nil, nil
	}
	return k, err
}

// finishRotation keeps the replaced key as .old and puts the new key in place.
func finishRotation(path string, cur, next []byte) error {
	if cur != nil {
		if err := writeKeyFile(path+oldKeySuffix, cur, true); err != nil {
			return err
		}
	}
	if err := os.Rename(path+newKeySuffix, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func readKey(path string, checkMode bool) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if checkMode && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("store: master key %s has mode %v; it must not be readable by group or others (chmod 600)", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) == KeySize {
		return b, nil
	}
	if s := strings.TrimSpace(string(b)); len(s) == 2*KeySize {
		if k, err := hex.DecodeString(s); err == nil {
			return k, nil
		}
	}
	return nil, fmt.Errorf("store: master key %s must hold %d raw bytes or %d hex digits", path, KeySize, 2*KeySize)
}

// ReadKeyFile reads a master key file (32 raw bytes or 64 hex digits),
// refusing one readable by group or others.
func ReadKeyFile(path string) ([]byte, error) { return readKey(path, true) }

// writeKeyFile writes key to path (mode 0600) durably and atomically:
// readers see no file or the whole key. Without replace, an existing file
// is an error.
func writeKeyFile(path string, key []byte, replace bool) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".mfad.key-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := fillDurably(tmp, func(f *os.File) error { _, err := f.Write(key); return err }); err != nil {
		return err
	}
	if replace {
		err = os.Rename(tmp.Name(), path)
	} else {
		err = os.Link(tmp.Name(), path)
	}
	if err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}
