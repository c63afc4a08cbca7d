package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the master key length: AES-256.
const KeySize = 32

// KeyFileName is the master key's file name, both as a systemd credential
// ($CREDENTIALS_DIRECTORY/mfad.key) and in the state directory.
const KeyFileName = "mfad.key"

// LoadKey returns the master key: from $CREDENTIALS_DIRECTORY/mfad.key when
// systemd passes one, else from stateDir/mfad.key, which is created (mode
// 0600, 32 random bytes) on first start. A key file readable by group or
// others is refused. The file may hold the raw 32 bytes or 64 hex digits.
func LoadKey(stateDir string) ([]byte, string, error) {
	if dir := os.Getenv("CREDENTIALS_DIRECTORY"); dir != "" {
		p := filepath.Join(dir, KeyFileName)
		if _, err := os.Stat(p); err == nil {
			k, err := readKey(p, false)
			return k, p, err
		}
	}
	p := filepath.Join(stateDir, KeyFileName)
	k, err := readKey(p, true)
	if errors.Is(err, fs.ErrNotExist) {
		k = make([]byte, KeySize)
		if _, err := rand.Read(k); err != nil {
			return nil, p, err
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, p, fmt.Errorf("store: create master key: %w", err)
		}
		if _, err := f.Write(k); err != nil {
			f.Close()
			return nil, p, fmt.Errorf("store: write master key: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, p, err
		}
		return k, p, f.Close()
	}
	return k, p, err
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

// sealer seals secrets with AES-256-GCM.
type sealer struct{ aead cipher.AEAD }

const sealVersion = 1

func newSealer(key []byte) (*sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("store: master key must be %d bytes", KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

// seal returns version || nonce || ciphertext, bound to ad.
func (s *sealer) seal(plain []byte, ad string) []byte {
	if plain == nil {
		return nil
	}
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		panic("store: no randomness: " + err.Error()) // crypto/rand never fails on Linux
	}
	return s.aead.Seal(out, out[1:1+s.aead.NonceSize()], plain, []byte(ad))
}

var errUnseal = errors.New("store: sealed secret does not open under the master key (wrong key or corrupted record)")

func (s *sealer) open(sealed []byte, ad string) ([]byte, error) {
	if sealed == nil {
		return nil, nil
	}
	n := s.aead.NonceSize()
	if len(sealed) < 1+n+s.aead.Overhead() || sealed[0] != sealVersion {
		return nil, errUnseal
	}
	p, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(ad))
	if err != nil {
		return nil, errUnseal
	}
	return p, nil
}
