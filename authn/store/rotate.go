package store

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"

	"github.com/mfad/mfad/authn"
)

// Rotated says what RotateKey did.
type Rotated struct {
	KeyFile    string // the new key, in place
	OldKeyFile string // the replaced key, kept for older backups
	Resealed   int    // sealed values re-sealed under the new key
}

// The steps of a key rotation, after each of which a crash must leave a
// database that one of the two keys opens (see LoadKey).
const (
	rotateNewKeyWritten = iota + 1 // mfad.key.new holds the new key
	rotateResealed                 // re-sealed in the transaction, not committed
	rotateCommitted                // the database is sealed under the new key
	rotateOldKeyKept               // mfad.key.old holds the replaced key
	rotateDone                     // mfad.key holds the new key
)

// maxKnownKeys bounds the keys a running store keeps for reads that began
// before a rotation (the current one and the three before it).
const maxKnownKeys = 4

// afterRotateStepForTest, when set, runs after each step of RotateKey.
var afterRotateStepForTest func(step int)

func rotateStep(step int) {
	if afterRotateStepForTest != nil {
		afterRotateStepForTest(step)
	}
}

// CodeKeyNotRotatable is the error code of a refused key rotation.
const CodeKeyNotRotatable = "key_not_rotatable"

// ErrKeyNotRotatable matches (errors.Is) a refused key rotation: a key
// from a systemd credential, or a key file that changed under mfad.
var ErrKeyNotRotatable = &authn.Error{Class: authn.ClassConflict, Code: CodeKeyNotRotatable, Detail: "the master key cannot be rotated here"}

func notRotatable(format string, args ...any) error {
	return authn.Errorf(authn.ClassConflict, CodeKeyNotRotatable, format, args...)
}

// RotateKey re-seals every secret under a new master key in one write
// transaction, with the key-check value, and puts the new key in keyFile
// (the file the current key was read from), keeping the replaced key as
// keyFile.old for older backups. The old key stays in keyFile until the
// transaction has committed: the new one waits in keyFile.new, and a
// crash at any point leaves a database that one of the two opens, which
// LoadKey then picks. The store keeps serving throughout.
func (s *Store) RotateKey(keyFile string) (Rotated, error) {
	s.rotating.Lock()
	defer s.rotating.Unlock()
	old := s.keys.Load().cur
	onDisk, err := readKey(keyFile, true)
	if err != nil {
		return Rotated{}, err
	}
	if !bytes.Equal(onDisk, old.key) {
		return Rotated{}, notRotatable("%s no longer holds the key this mfad opened the database with; restart mfad first", keyFile)
	}
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return Rotated{}, err
	}
	next, err := newSealer(k)
	clear(k)
	if err != nil {
		return Rotated{}, err
	}
	newFile := keyFile + newKeySuffix
	if err := writeKeyFile(newFile, next.key, true); err != nil {
		return Rotated{}, err
	}
	rotateStep(rotateNewKeyWritten)

	// Writers wait (wmu) from here until the new key writes. Readers
	// choose by their snapshot's check value, so both keys are known
	// before the commit makes the new one visible.
	var n int
	s.wmu.Lock()
	before := s.keys.Load()
	check := next.seal(keyCheckPlain, keyCheckAD)
	oldCheck := before.known[0].check
	// Earlier keys stay known too: a read whose snapshot predates the
	// previous rotation may look at its secrets only now.
	earlier := before.known[1:min(len(before.known), maxKnownKeys-1)]
	s.keys.Store(&keySet{cur: old, known: append([]keyed{{old, oldCheck}, {next, check}}, earlier...)})
	if s.failed != nil {
		s.keys.Store(before)
		s.wmu.Unlock()
		os.Remove(newFile)
		return Rotated{}, s.failed
	}
	err = s.db.Update(func(btx *bolt.Tx) error {
		var err error
		n, err = reseal(btx.Bucket(bktRoot), old, next)
		if err != nil {
			return err
		}
		if err := btx.Bucket(bktRoot).Bucket(bktMeta).Put(metaKeyCheck, check); err != nil {
			return err
		}
		rotateStep(rotateResealed)
		return nil
	})
	if err != nil {
		s.keys.Store(before)
		s.wmu.Unlock()
		os.Remove(newFile)
		return Rotated{}, fmt.Errorf("store: key rotation rolled back, the old key stays: %w", err)
	}
	s.keys.Store(&keySet{cur: next, known: append([]keyed{{next, check}, {old, oldCheck}}, earlier...)})
	// The rotation rewrote every secret outside the write-ahead log, so
	// a checkpoint makes it durable before any logged write follows. If
	// that fails, a restart recovers the state before the rotation (the
	// old key opens it, and LoadKey drops the new one); until then the
	// store takes no writes, which a recovery would apply to the wrong state.
	if err := s.checkpoint(); err != nil {
		s.failed = fmt.Errorf("store: the key rotation could not be made durable; mfad takes no writes until a restart "+
			"returns to the old key: %w", err)
		s.wmu.Unlock()
		return Rotated{}, s.failed
	}
	rotateStep(rotateCommitted)
	s.wmu.Unlock()

	out := Rotated{KeyFile: keyFile, OldKeyFile: keyFile + oldKeySuffix, Resealed: n}
	if err := writeKeyFile(out.OldKeyFile, old.key, true); err != nil {
		return out, fmt.Errorf("store: the database is sealed under %s; mfad finishes the rotation at its next start: %w", newFile, err)
	}
	rotateStep(rotateOldKeyKept)
	if err := os.Rename(newFile, keyFile); err != nil {
		return out, fmt.Errorf("store: the database is sealed under %s; mfad finishes the rotation at its next start: %w", newFile, err)
	}
	if err := syncDir(filepath.Dir(keyFile)); err != nil {
		return out, err
	}
	rotateStep(rotateDone)
	return out, nil
}

// reseal opens every sealed value under root with old and seals it with
// next: devices' and tokens' secrets and blobs. A value that old does not
// open stops the rotation.
func reseal(root *bolt.Bucket, old, next *sealer) (int, error) {
	type put struct {
		b    *bolt.Bucket
		k, v []byte
	}
	var puts []put
	again := func(sealed []byte, ad, what string) ([]byte, error) {
		p, err := old.open(sealed, ad)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		defer clear(p)
		return next.seal(p, ad), nil
	}
	devs := root.Bucket(bktDevices)
	err := devs.ForEach(func(acct, v []byte) error {
		b := devs.Bucket(acct)
		if v != nil || b == nil {
			return nil
		}
		return b.ForEach(func(id, v []byte) error {
			var rec deviceRecord
			if err := decode(v, &rec); err != nil {
				return fmt.Errorf("device %s/%s: %w", acct, id, err)
			}
			if rec.Sealed == nil {
				return nil
			}
			var err error
			if rec.Sealed, err = again(rec.Sealed, deviceAD(rec.Account, rec.ID), "device "+rec.Account+"/"+rec.ID); err != nil {
				return err
			}
			out, err := encode(&rec)
			puts = append(puts, put{b, bytes.Clone(id), out})
			return err
		})
	})
	if err != nil {
		return 0, err
	}
	toks := root.Bucket(bktTokens)
	err = toks.ForEach(func(serial, v []byte) error {
		var rec tokenRecord
		if err := decode(v, &rec); err != nil {
			return fmt.Errorf("token %s: %w", serial, err)
		}
		if rec.Sealed == nil {
			return nil
		}
		var err error
		if rec.Sealed, err = again(rec.Sealed, tokenAD(rec.Serial), "token "+rec.Serial); err != nil {
			return err
		}
		out, err := encode(&rec)
		puts = append(puts, put{toks, bytes.Clone(serial), out})
		return err
	})
	if err != nil {
		return 0, err
	}
	blobs := root.Bucket(bktBlobs)
	err = blobs.ForEach(func(name, v []byte) error {
		if v == nil {
			return nil
		}
		out, err := again(v, "blobs/"+string(name), "blob "+string(name))
		puts = append(puts, put{blobs, bytes.Clone(name), out})
		return err
	})
	if err != nil {
		return 0, err
	}
	for _, p := range puts {
		if err := p.b.Put(p.k, p.v); err != nil {
			return 0, err
		}
	}
	return len(puts), nil
}

// NotRotatable is the error for a master key that comes from somewhere
// RotateKey may not write (a systemd credential).
func NotRotatable(keyFile string) error {
	return notRotatable("the master key comes from %s, a systemd credential, which mfad cannot replace. To rotate it, "+
		"put the key in the state directory instead (install -m 0600 it as mfad.key there and drop the credential), "+
		"restart mfad and rotate; the new key may then become the credential again", keyFile)
}
