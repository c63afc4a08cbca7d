package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fixtureBackup writes testdata/schema-v3.db (secrets sealed under
// fixtureKey) as a backup file.
func fixtureBackup(t *testing.T) string {
	t.Helper()
	return filepath.Join(fixtureState(t), DBFileName)
}

func entries(t *testing.T, dir string) string {
	t.Helper()
	es, _ := os.ReadDir(dir)
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return strings.Join(names, " ")
}

func TestRestoreVerifiesTheMasterKeyFirst(t *testing.T) {
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	backup := fixtureBackup(t)
	target := t.TempDir()
	// No key anywhere: the restore would leave secrets no key opens.
	_, err := Restore(backup, target, RestoreOptions{})
	if err == nil || !strings.Contains(err.Error(), "--key") {
		t.Fatalf("restore of a backup with secrets and no key: %v", err)
	}
	if got := entries(t, target); got != "" {
		t.Fatalf("a refused restore left %q", got)
	}
	// The wrong key, given or in place, is refused before anything changes.
	if _, err := Restore(backup, target, RestoreOptions{Key: bytes.Repeat([]byte{1}, KeySize)}); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("restore with the wrong --key: %v", err)
	}
	wrong := bytes.Repeat([]byte{2}, KeySize)
	os.WriteFile(filepath.Join(target, KeyFileName), wrong, 0o600)
	if _, err := Restore(backup, target, RestoreOptions{}); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("restore with the wrong key in place: %v", err)
	}
	if got := entries(t, target); got != KeyFileName {
		t.Fatalf("a refused restore left %q", got)
	}
	// The right key goes in place; the one it replaces is kept.
	r, err := Restore(backup, target, RestoreOptions{Key: fixtureKey()})
	if err != nil || !r.KeyInstalled || r.KeyFile != filepath.Join(target, KeyFileName) {
		t.Fatalf("restore with the right key: %+v %v", r, err)
	}
	if old, _ := os.ReadFile(filepath.Join(target, KeyFileName+oldKeySuffix)); !bytes.Equal(old, wrong) {
		t.Fatal("the replaced key was not kept as mfad.key.old")
	}
	fixtureSecretsRead(t, target)
	// Restoring again with the key now in place verifies it and writes nothing.
	r, err = Restore(backup, target, RestoreOptions{})
	if err != nil || r.KeyInstalled {
		t.Fatalf("restore with the key in place: %+v %v", r, err)
	}
}

func TestKeyedBackupRestoresOnANewMachine(t *testing.T) {
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	src := fixtureState(t)
	os.WriteFile(filepath.Join(src, KeyFileName), fixtureKey(), 0o600)
	s, err := Open(src, fixtureKey(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteKeyedBackup(&bytes.Buffer{}, []byte("short")); err == nil {
		t.Fatal("a short passphrase was accepted")
	}
	var buf bytes.Buffer
	pass := []byte("correct horse battery staple")
	if _, err := s.WriteKeyedBackup(&buf, pass); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if bytes.Contains(buf.Bytes(), fixtureKey()) {
		t.Fatal("the keyed backup holds the master key in the clear")
	}
	backup := filepath.Join(t.TempDir(), "keyed.backup")
	os.WriteFile(backup, buf.Bytes(), 0o600)

	target := t.TempDir()
	asked := 0
	wrongPass := RestoreOptions{Passphrase: func() ([]byte, error) { asked++; return []byte("not the passphrase"), nil }}
	if _, err := Restore(backup, target, wrongPass); !errors.Is(err, ErrPassphrase) || asked != 1 {
		t.Fatalf("wrong passphrase: %v (asked %d times)", err, asked)
	}
	if _, err := Restore(backup, target, RestoreOptions{Key: fixtureKey(), Passphrase: wrongPass.Passphrase}); err == nil {
		t.Fatal("--key with a keyed backup was accepted")
	}
	if got := entries(t, target); got != "" {
		t.Fatalf("a refused restore left %q", got)
	}
	r, err := Restore(backup, target, RestoreOptions{Passphrase: func() ([]byte, error) { return pass, nil }})
	if err != nil || !r.KeyInstalled {
		t.Fatalf("keyed restore: %+v %v", r, err)
	}
	fixtureSecretsRead(t, target)
	// A truncated keyed backup is refused.
	os.WriteFile(backup, buf.Bytes()[:len(keyedMagic)+2], 0o600)
	if _, err := Restore(backup, t.TempDir(), RestoreOptions{Passphrase: func() ([]byte, error) { return pass, nil }}); err == nil {
		t.Fatal("truncated keyed backup restored")
	}
}

// FuzzKeyedHeader: a keyed backup's header is read from a file the
// operator names; no bytes make it panic, and what passes check asks for
// bounded work.
func FuzzKeyedHeader(f *testing.F) {
	h, err := sealKey(fixtureKey(), []byte("correct horse battery staple"))
	if err != nil {
		f.Fatal(err)
	}
	hj, _ := json.Marshal(h)
	f.Add(append(append([]byte(keyedMagic), binary.BigEndian.AppendUint32(nil, uint32(len(hj)))...), hj...))
	f.Add([]byte(keyedMagic + "\xff\xff\xff\xff"))
	f.Add([]byte(keyedMagic + "\x00\x00\x00\x02{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := readKeyedHeader(bytes.NewReader(b))
		if err != nil {
			return
		}
		if h.check() == nil && (h.MemoryKiB > 4*keyedKDF.MemoryKiB || h.Time > 4*keyedKDF.Time) {
			t.Fatalf("unbounded parameters passed: %+v", h)
		}
	})
}
