package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/mfad/mfad/authn"
)

// fixtureKey is the master key testdata/schema-v3.db was sealed under.
func fixtureKey() []byte { return bytes.Repeat([]byte{0x6b}, KeySize) }

// fixtureState copies testdata/schema-v3.db, a database written by schema
// v3 before key-check values existed, into a fresh state directory.
func fixtureState(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "schema-v3.db"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, DBFileName), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func hasKeyCheck(t *testing.T, dir string) bool {
	t.Helper()
	st, err := readKeyState(filepath.Join(dir, DBFileName))
	if err != nil {
		t.Fatal(err)
	}
	return st.check != nil
}

func TestNoNewKeyForADatabaseWithSecrets(t *testing.T) {
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	dir := fixtureState(t)
	_, _, err := LoadKey(dir)
	if err == nil || !strings.Contains(err.Error(), "does not make a new key") || !strings.Contains(err.Error(), filepath.Join(dir, KeyFileName)) {
		t.Fatalf("LoadKey on a database with secrets and no key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, KeyFileName)); !os.IsNotExist(err) {
		t.Fatalf("a key file was made for a database with secrets: %v", err)
	}
}

func TestWrongKeyRefusedForADatabaseWithoutCheckValue(t *testing.T) {
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	dir := fixtureState(t)
	os.WriteFile(filepath.Join(dir, KeyFileName), bytes.Repeat([]byte{1}, KeySize), 0o600)
	if _, _, err := LoadKey(dir); !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "the secret of device") {
		t.Fatalf("LoadKey with the wrong key: %v, want ErrWrongKey naming what it tried", err)
	}
	if _, err := Open(dir, bytes.Repeat([]byte{1}, KeySize), Options{}); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("Open with the wrong key: %v, want ErrWrongKey", err)
	}
	if hasKeyCheck(t, dir) {
		t.Fatal("a refused key wrote a key-check value")
	}
	// The right key opens it and leaves a check value behind.
	os.WriteFile(filepath.Join(dir, KeyFileName), fixtureKey(), 0o600)
	k, _, err := LoadKey(dir)
	if err != nil || !bytes.Equal(k, fixtureKey()) {
		t.Fatalf("LoadKey with the right key: %v", err)
	}
	s, err := Open(dir, k, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if !hasKeyCheck(t, dir) {
		t.Fatal("no key-check value written at open")
	}
	if err := VerifyKey(filepath.Join(dir, DBFileName), fixtureKey()); err != nil {
		t.Fatal(err)
	}
	if err := VerifyKey(filepath.Join(dir, DBFileName), bytes.Repeat([]byte{1}, KeySize)); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("VerifyKey with the wrong key: %v", err)
	}
}

func TestKeyCheckValueRefusesAnotherKey(t *testing.T) {
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	dir := t.TempDir()
	k, _, err := LoadKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, k, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// No secret is sealed yet: the check value alone tells the keys apart.
	if _, err := Open(dir, bytes.Repeat([]byte{2}, KeySize), Options{}); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("Open with another key: %v, want ErrWrongKey", err)
	}
	os.WriteFile(filepath.Join(dir, KeyFileName), bytes.Repeat([]byte{2}, KeySize), 0o600)
	if _, _, err := LoadKey(dir); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("LoadKey with another key in place: %v, want ErrWrongKey", err)
	}
	// A credential that is not the database's key is refused too.
	cred := t.TempDir()
	os.WriteFile(filepath.Join(cred, KeyFileName), bytes.Repeat([]byte{3}, KeySize), 0o400)
	t.Setenv("CREDENTIALS_DIRECTORY", cred)
	if _, _, err := LoadKey(dir); !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "systemd credential") {
		t.Fatalf("LoadKey with another credential: %v", err)
	}
}

func TestLostKeyOfADatabaseWithoutSecretsIsReplaced(t *testing.T) {
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	dir := t.TempDir()
	k1, p, err := LoadKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, k1, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Update(context.Background(), func(tx authn.Tx) error { return tx.PutAccount(&authn.Account{Name: "amy"}) })
	s.Close()
	os.Remove(p)
	k2, _, err := LoadKey(dir)
	if err != nil {
		t.Fatalf("no secret is sealed, so a new key loses nothing: %v", err)
	}
	s, err = Open(dir, k2, Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(context.Background(), func(tx authn.Tx) error {
		return tx.PutDevice(&authn.Device{ID: "d", Account: "amy", Secret: []byte("seed")})
	})
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(p)
	if _, _, err := LoadKey(dir); err == nil || !strings.Contains(err.Error(), "does not make a new key") {
		t.Fatalf("LoadKey after the key of a database with secrets went: %v", err)
	}
}

func TestUncommittedNewKeyIsDropped(t *testing.T) {
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	dir := fixtureState(t)
	p := filepath.Join(dir, KeyFileName)
	os.WriteFile(p, fixtureKey(), 0o600)
	os.WriteFile(p+newKeySuffix, bytes.Repeat([]byte{4}, KeySize), 0o600)
	k, _, err := LoadKey(dir)
	if err != nil || !bytes.Equal(k, fixtureKey()) {
		t.Fatalf("LoadKey = %x, %v; want the key that opens the database", k, err)
	}
	if _, err := os.Stat(p + newKeySuffix); !os.IsNotExist(err) {
		t.Fatalf("uncommitted new key left in place: %v", err)
	}
}

func TestCheckValueIsBoundToItsPath(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bktRoot).Bucket(bktMeta).Get(metaKeyCheck)
		if _, err := s.keys.Load().cur.open(v, "blobs/key_check"); err == nil {
			t.Error("the key-check value opens under another path")
		}
		if p, err := s.keys.Load().cur.open(v, keyCheckAD); err != nil || !bytes.Equal(p, keyCheckPlain) {
			t.Errorf("key-check value = %q, %v", p, err)
		}
		return nil
	})
}

// An empty database file (a first start cut short) is no database with
// secrets: mfad makes its key and the database as on a first start.
func TestEmptyDatabaseFileStartsFresh(t *testing.T) {
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, DBFileName), nil, 0o600)
	k, _, err := LoadKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, k, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if !hasKeyCheck(t, dir) {
		t.Fatal("no key-check value")
	}
}
