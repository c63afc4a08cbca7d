package store

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// sealer seals secrets with AES-256-GCM.
type sealer struct {
	aead cipher.AEAD
	key  []byte // kept for keyed backups and key rotation
}

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
	return &sealer{aead: aead, key: bytes.Clone(key)}, nil
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

// keySet is the store's sealers: cur, which writes, and the sealers that
// snapshots may have been sealed under (cur, and during and after a
// rotation the other key), each known by its key-check value.
type keySet struct {
	cur   *sealer
	known []keyed
}

type keyed struct {
	s     *sealer
	check []byte
}

// sealerFor returns the sealer of the snapshot btx reads: a read that
// began before a rotation committed still opens what it sees, and one that
// began after opens the new key's values.
func (s *Store) sealerFor(btx *bolt.Tx) *sealer {
	ks := s.keys.Load()
	if len(ks.known) < 2 {
		return ks.cur
	}
	check := btx.Bucket(bktRoot).Bucket(bktMeta).Get(metaKeyCheck)
	for _, k := range ks.known {
		if bytes.Equal(check, k.check) {
			return k.s
		}
	}
	return ks.cur
}
