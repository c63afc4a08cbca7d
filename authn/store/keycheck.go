package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// The key-check value is a constant sealed under the master key and bound
// to its own path (meta/key_check): a key that does not open it is not the
// database's key. Databases written before it existed are checked against
// their first sealed secret instead, and get a check value at the next
// start.
var (
	metaKeyCheck  = []byte("key_check")
	keyCheckAD    = "meta/key_check"
	keyCheckPlain = []byte("mfad master key check v1")
)

// ErrWrongKey means a master key does not open the database's sealed values.
var ErrWrongKey = errors.New("store: the master key does not open this database")

// keyProbe is a sealed value that tells whether a key is the database's.
type keyProbe struct {
	sealed []byte
	ad     string
	what   string // for messages: "its key-check value", "the secret of device alice/x"
}

// opens reports whether key opens the probe; a nil probe (nothing sealed)
// is opened by any key.
func (p *keyProbe) opens(s *sealer) bool {
	if p == nil {
		return true
	}
	_, err := s.open(p.sealed, p.ad)
	return err == nil
}

// probes returns the database's key-check value (nil when absent) and its
// first sealed secret (nil when it holds none).
func probes(root *bolt.Bucket) (check, secret *keyProbe, err error) {
	if meta := root.Bucket(bktMeta); meta != nil {
		if v := meta.Get(metaKeyCheck); v != nil {
			check = &keyProbe{sealed: bytes.Clone(v), ad: keyCheckAD, what: "its key-check value"}
		}
	}
	secret, err = firstSealed(root)
	return check, secret, err
}

// firstSealed finds one sealed secret: a device's, a token's or a blob.
func firstSealed(root *bolt.Bucket) (*keyProbe, error) {
	if devs := root.Bucket(bktDevices); devs != nil {
		c := devs.Cursor()
		for acct, v := c.First(); acct != nil; acct, v = c.Next() {
			b := devs.Bucket(acct)
			if v != nil || b == nil {
				continue
			}
			dc := b.Cursor()
			for id, rv := dc.First(); id != nil; id, rv = dc.Next() {
				var rec struct {
					Account string `json:"account"`
					ID      string `json:"id"`
					Sealed  []byte `json:"sealed_secret"`
				}
				if err := decodeAnyVersion(rv, &rec); err != nil {
					return nil, fmt.Errorf("store: device record %s/%s: %w", acct, id, err)
				}
				if rec.Sealed != nil {
					return &keyProbe{sealed: rec.Sealed, ad: deviceAD(rec.Account, rec.ID), what: fmt.Sprintf("the secret of device %s/%s", rec.Account, rec.ID)}, nil
				}
			}
		}
	}
	if toks := root.Bucket(bktTokens); toks != nil {
		c := toks.Cursor()
		for serial, v := c.First(); serial != nil; serial, v = c.Next() {
			var rec struct {
				Serial string `json:"serial"`
				Sealed []byte `json:"sealed_secret"`
			}
			if err := decodeAnyVersion(v, &rec); err != nil {
				return nil, fmt.Errorf("store: token record %s: %w", serial, err)
			}
			if rec.Sealed != nil {
				return &keyProbe{sealed: rec.Sealed, ad: tokenAD(rec.Serial), what: fmt.Sprintf("the secret of token %s", rec.Serial)}, nil
			}
		}
	}
	if blobs := root.Bucket(bktBlobs); blobs != nil {
		c := blobs.Cursor()
		for name, v := c.First(); name != nil; name, v = c.Next() {
			if v != nil {
				return &keyProbe{sealed: bytes.Clone(v), ad: "blobs/" + string(name), what: fmt.Sprintf("the sealed state %s", name)}, nil
			}
		}
	}
	return nil, nil
}

// decodeAnyVersion reads a record written by any schema: JSON (v1, v2) or
// CBOR (v3 on).
func decodeAnyVersion(b []byte, v any) error {
	if len(b) > 0 && b[0] == '{' {
		return json.Unmarshal(b, v)
	}
	return decode(b, v)
}

// checkKey verifies, inside the write transaction that opens the
// database, that s is its key, writes the key-check value when the
// database has none yet, and returns it.
func checkKey(root *bolt.Bucket, s *sealer) ([]byte, error) {
	check, secret, err := probes(root)
	if err != nil {
		return nil, err
	}
	p := check
	if p == nil {
		p = secret
	}
	if !p.opens(s) {
		return nil, fmt.Errorf("%w: it does not open %s", ErrWrongKey, p.what)
	}
	if check != nil {
		return check.sealed, nil
	}
	v := s.seal(keyCheckPlain, keyCheckAD)
	return v, root.Bucket(bktMeta).Put(metaKeyCheck, v)
}

// dbKeyState is what LoadKey learns from a database before choosing a key.
type dbKeyState struct {
	exists bool
	check  *keyProbe // the key-check value, or nil
	secret *keyProbe // one sealed secret, or nil
}

// probe is what decides whether a key is the database's.
func (st dbKeyState) probe() *keyProbe {
	if st.check != nil {
		return st.check
	}
	return st.secret
}

// readKeyState opens the database at path read-only, when it exists.
func readKeyState(path string) (dbKeyState, error) {
	if fi, err := os.Stat(path); err == nil && fi.Size() == 0 {
		return dbKeyState{}, nil // an empty file, which Open makes a database of
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 3 * time.Second, OpenFile: openExisting})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return dbKeyState{}, fmt.Errorf("%w: %s is held by another mfad", ErrLocked, path)
	}
	if isNotExist(err) {
		return dbKeyState{}, nil
	}
	if err != nil {
		return dbKeyState{}, fmt.Errorf("store: open %s: %w", path, err)
	}
	defer db.Close()
	st := dbKeyState{exists: true}
	err = db.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(bktRoot)
		if root == nil {
			return nil
		}
		var err error
		st.check, st.secret, err = probes(root)
		return err
	})
	return st, err
}

// dropKeyCheck removes the key-check value of a database that holds no
// sealed secret, so that a new key may take its place.
func dropKeyCheck(path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 3 * time.Second, OpenFile: openExisting})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return fmt.Errorf("%w: %s is held by another mfad", ErrLocked, path)
	}
	if err != nil {
		return fmt.Errorf("store: open %s: %w", path, err)
	}
	defer db.Close()
	return db.Update(func(tx *bolt.Tx) error {
		root := tx.Bucket(bktRoot)
		if root == nil || root.Bucket(bktMeta) == nil {
			return nil
		}
		if s, err := firstSealed(root); err != nil || s != nil {
			return errors.Join(err, errors.New("store: the database holds sealed secrets"))
		}
		return root.Bucket(bktMeta).Delete(metaKeyCheck)
	})
}

// VerifyKey reports whether key opens the database file at path (a
// backup, say): its key-check value, else its first sealed secret. A
// database with neither is opened by any key.
func VerifyKey(path string, key []byte) error {
	s, err := newSealer(key)
	if err != nil {
		return err
	}
	st, err := readKeyState(path)
	if err != nil {
		return err
	}
	if !st.exists {
		return fmt.Errorf("store: %s does not exist", path)
	}
	if p := st.probe(); !p.opens(s) {
		return fmt.Errorf("%w %s: it does not open %s", ErrWrongKey, path, p.what)
	}
	return nil
}

// HoldsSecrets reports whether the database at path holds sealed
// secrets, which only its own master key opens.
func HoldsSecrets(path string) (bool, error) {
	st, err := readKeyState(path)
	return st.secret != nil, err
}

// openExisting is bbolt's file opener without O_CREATE.
func openExisting(name string, flag int, mode os.FileMode) (*os.File, error) {
	return os.OpenFile(name, flag&^os.O_CREATE, mode)
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
