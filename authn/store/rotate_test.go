package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/mfad/mfad/authn"
)

// TestMain doubles as the child of TestRotateKeySurvivesACrashAtEveryStep:
// with MFAD_TEST_ROTATE_STATE set, the test binary opens that state
// directory as mfad does, rotates its key and exits with status 9 (as if
// killed) right after step MFAD_TEST_ROTATE_CRASH_AT.
func TestMain(m *testing.M) {
	if dir := os.Getenv("MFAD_TEST_ROTATE_STATE"); dir != "" {
		os.Exit(rotateAndCrash(dir, os.Getenv("MFAD_TEST_ROTATE_CRASH_AT")))
	}
	os.Exit(m.Run())
}

func rotateAndCrash(dir, at string) int {
	step, err := strconv.Atoi(at)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	k, p, err := LoadKey(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	s, err := Open(dir, k, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	afterRotateStepForTest = func(n int) {
		if n == step {
			os.Exit(9) // no deferred function, no Close: a crash
		}
	}
	if _, err := s.RotateKey(p); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	return 0
}

// keyedFixture is the fixture database with its key file in place.
func keyedFixture(t *testing.T) string {
	t.Helper()
	dir := fixtureState(t)
	if err := os.WriteFile(filepath.Join(dir, KeyFileName), fixtureKey(), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// fixtureSecretsRead opens dir as mfad does and checks every sealed value
// of the fixture; it returns the key that opened it.
func fixtureSecretsRead(t *testing.T, dir string) []byte {
	t.Helper()
	k, _, err := LoadKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, k, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.View(func(tx authn.Tx) error {
		for _, want := range fixtureDevices {
			d, err := tx.Device(want.Account, want.ID)
			if err != nil {
				return err
			}
			if !bytes.Equal(d.Secret, want.Secret) {
				t.Errorf("device %s secret %q, want %q", want.ID, d.Secret, want.Secret)
			}
		}
		for _, want := range fixtureTokens {
			tok, err := tx.Token(want.Serial)
			if err != nil {
				return err
			}
			if !bytes.Equal(tok.Secret, want.Secret) {
				t.Errorf("token %s secret %q", want.Serial, tok.Secret)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := s.LoadBlob("emulator/soft1"); err != nil || string(b) != "software key state" {
		t.Errorf("blob = %q, %v", b, err)
	}
	return k
}

func TestRotateKeyResealsEverySecret(t *testing.T) {
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	dir := keyedFixture(t)
	before := filepath.Join(t.TempDir(), "before.db")
	b, _ := os.ReadFile(filepath.Join(dir, DBFileName))
	os.WriteFile(before, b, 0o600)

	k, p, err := LoadKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, k, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.RotateKey(p)
	if err != nil {
		t.Fatal(err)
	}
	if r.Resealed != 6 { // three devices and two tokens with secrets, one blob
		t.Errorf("re-sealed %d values, want 6", r.Resealed)
	}
	// The running store reads and writes under the new key.
	if b, err := s.LoadBlob("emulator/soft1"); err != nil || string(b) != "software key state" {
		t.Errorf("blob after rotation = %q, %v", b, err)
	}
	if err := s.SaveBlob("emulator/soft2", []byte("new state")); err != nil {
		t.Fatal(err)
	}
	s.Close()

	newKey := fixtureSecretsRead(t, dir)
	if bytes.Equal(newKey, fixtureKey()) {
		t.Fatal("the key did not change")
	}
	if old, _ := os.ReadFile(r.OldKeyFile); !bytes.Equal(old, fixtureKey()) {
		t.Fatal("the replaced key was not kept as mfad.key.old")
	}
	if _, err := os.Stat(p + newKeySuffix); !os.IsNotExist(err) {
		t.Fatalf("mfad.key.new left behind: %v", err)
	}
	if _, err := Open(dir, fixtureKey(), Options{}); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("the old key still opens the database: %v", err)
	}
	// Backups taken before the rotation still open with the kept key.
	if err := VerifyKey(before, fixtureKey()); err != nil {
		t.Fatal(err)
	}
}

func TestRotateKeyRefusesAKeyFileThatChanged(t *testing.T) {
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	dir := keyedFixture(t)
	s, err := Open(dir, fixtureKey(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p := filepath.Join(dir, KeyFileName)
	os.WriteFile(p, bytes.Repeat([]byte{5}, KeySize), 0o600)
	if _, err := s.RotateKey(p); !errors.Is(err, ErrKeyNotRotatable) {
		t.Fatalf("rotation over a changed key file: %v", err)
	}
}

// TestRotateKeySurvivesACrashAtEveryStep kills a rotation (a child
// process that exits at once, without closing anything) after each of its
// steps: mfad then starts on whichever key opens the database, and every
// secret reads back.
func TestRotateKeySurvivesACrashAtEveryStep(t *testing.T) {
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	for step := rotateNewKeyWritten; step <= rotateDone; step++ {
		t.Run(strconv.Itoa(step), func(t *testing.T) {
			dir := keyedFixture(t)
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "MFAD_TEST_ROTATE_STATE="+dir, "MFAD_TEST_ROTATE_CRASH_AT="+strconv.Itoa(step))
			out, err := cmd.CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 9 {
				t.Fatalf("child did not crash at step %d: %v\n%s", step, err, out)
			}
			k := fixtureSecretsRead(t, dir)
			committed := step >= rotateCommitted
			if bytes.Equal(k, fixtureKey()) == committed {
				t.Errorf("after a crash at step %d the key in place is the old one: %v, want %v", step, !committed, !committed)
			}
			p := filepath.Join(dir, KeyFileName)
			if _, err := os.Stat(p + newKeySuffix); !os.IsNotExist(err) {
				t.Errorf("mfad.key.new left after the next start: %v", err)
			}
			if old, err := os.ReadFile(p + oldKeySuffix); committed && !bytes.Equal(old, fixtureKey()) {
				t.Errorf("mfad.key.old = %x, %v; want the replaced key", old, err)
			}
		})
	}
}

// TestReadsAndWritesDuringARotation: sign-ins go on while the key
// rotates; reads of a snapshot taken before the commit still open.
func TestReadsAndWritesDuringARotation(t *testing.T) {
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	dir := keyedFixture(t)
	s, err := Open(dir, fixtureKey(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stop := make(chan struct{})
	errs := make(chan error, 3)
	for i := range 3 {
		go func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				var err error
				if i == 2 {
					err = s.Update(t.Context(), func(tx authn.Tx) error {
						return tx.PutDevice(&authn.Device{ID: "w", Account: "bob", Secret: []byte(strconv.Itoa(n))})
					})
				} else {
					err = s.View(func(tx authn.Tx) error { _, err := tx.Device("alice", "totp1"); return err })
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	p := filepath.Join(dir, KeyFileName)
	for range 3 {
		if _, err := s.RotateKey(p); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatalf("during a rotation: %v", err)
		}
	}
	s.Close()
	fixtureSecretsRead(t, dir)
}
