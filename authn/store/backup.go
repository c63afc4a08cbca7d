package store

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"golang.org/x/crypto/argon2"
)

// A backup is the database file as bbolt writes it, or a keyed backup,
// which carries the master key sealed under a passphrase for recovery on
// another machine:
//
//	"mfad-keyed-backup v1\n"
//	4-byte big-endian length n, then n bytes of JSON: keyedHeader
//	the database file, to the end
//
// The master key is sealed with AES-256-GCM under a key derived from the
// passphrase with Argon2id (RFC 9106), the parameters and salt in the header.
const keyedMagic = "mfad-keyed-backup v1\n"

// MinPassphrase is the shortest passphrase a keyed backup accepts.
const MinPassphrase = 12

// keyedHeader is a keyed backup's header.
type keyedHeader struct {
	KDF       string `json:"kdf"`
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
	Salt      []byte `json:"salt"`
	SealedKey []byte `json:"sealed_key"` // nonce || AES-256-GCM ciphertext
}

// RFC 9106's second recommended option (64 MiB), with 3 passes.
var keyedKDF = keyedHeader{KDF: "argon2id", Time: 3, MemoryKiB: 64 << 10, Threads: 4}

const (
	keyedAD        = "mfad keyed backup v1"
	maxKeyedHeader = 4096
)

// ErrPassphrase means a keyed backup's passphrase is wrong.
var ErrPassphrase = errors.New("store: the passphrase does not open the master key in this backup")

// check bounds what a keyed backup's header may ask of the machine that
// restores it: at most 4 times the memory and passes that mfad writes.
func (h *keyedHeader) check() error {
	if h.KDF != "argon2id" || h.Time == 0 || h.Time > 4*keyedKDF.Time || h.MemoryKiB < 8<<10 || h.MemoryKiB > 4*keyedKDF.MemoryKiB ||
		h.Threads == 0 || h.Threads > 64 || len(h.Salt) < 16 || len(h.Salt) > 64 {
		return errors.New("store: keyed backup has unusable key-derivation parameters")
	}
	return nil
}

func (h *keyedHeader) aead(passphrase []byte) (cipher.AEAD, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	k := argon2.IDKey(passphrase, h.Salt, h.Time, h.MemoryKiB, h.Threads, KeySize)
	defer clear(k)
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// sealKey returns a header that holds key sealed under passphrase.
func sealKey(key, passphrase []byte) (*keyedHeader, error) {
	if len(passphrase) < MinPassphrase {
		return nil, fmt.Errorf("store: a backup passphrase needs at least %d characters", MinPassphrase)
	}
	h := keyedKDF
	h.Salt = make([]byte, 16)
	rand.Read(h.Salt)
	a, err := h.aead(passphrase)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, a.NonceSize())
	rand.Read(nonce)
	h.SealedKey = a.Seal(nonce, nonce, key, []byte(keyedAD))
	return &h, nil
}

func (h *keyedHeader) openKey(passphrase []byte) ([]byte, error) {
	a, err := h.aead(passphrase)
	if err != nil {
		return nil, err
	}
	n := a.NonceSize()
	if len(h.SealedKey) < n+a.Overhead() {
		return nil, errors.New("store: keyed backup's sealed key is truncated")
	}
	k, err := a.Open(nil, h.SealedKey[:n], h.SealedKey[n:], []byte(keyedAD))
	if err != nil {
		return nil, ErrPassphrase
	}
	if len(k) != KeySize {
		return nil, errors.New("store: keyed backup holds a key of the wrong size")
	}
	return k, nil
}

// WriteKeyedBackup streams a keyed backup to w: the master key sealed
// under passphrase, then a consistent copy of the database, whose secrets
// that key opens.
func (s *Store) WriteKeyedBackup(w io.Writer, passphrase []byte) (int64, error) {
	var n int64
	err := s.db.View(func(btx *bolt.Tx) error {
		h, err := sealKey(s.sealerFor(btx).key, passphrase)
		if err != nil {
			return err
		}
		hj, err := json.Marshal(h)
		if err != nil {
			return err
		}
		var head bytes.Buffer
		head.WriteString(keyedMagic)
		head.Write(binary.BigEndian.AppendUint32(nil, uint32(len(hj))))
		head.Write(hj)
		m, err := w.Write(head.Bytes())
		n += int64(m)
		if err != nil {
			return err
		}
		m64, err := btx.WriteTo(w)
		n += m64
		return err
	})
	return n, err
}

// Check opens the database file at path read-only and verifies its page
// structure and schema. It is what restore runs before replacing anything.
func Check(path string) error { return check(path, path) }

// check verifies the database file at path, calling it name in errors.
func check(path, name string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return fmt.Errorf("%w: %s", ErrLocked, name)
	}
	if err != nil {
		return fmt.Errorf("store: %s is not a usable mfad database: %w", name, err)
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return fmt.Errorf("store: %s is damaged: %w", name, err)
		}
		root := tx.Bucket(bktRoot)
		if root == nil {
			return fmt.Errorf("store: %s is a bbolt file but not an mfad database", name)
		}
		b := root.Get(keySchema)
		if len(b) != 4 {
			return fmt.Errorf("store: %s has no schema version", name)
		}
		if v := binary.BigEndian.Uint32(b); v > SchemaVersion {
			return fmt.Errorf("store: %s has schema v%d, newer than this mfad (v%d)", name, v, SchemaVersion)
		}
		need := [][]byte{bktMeta, bktAccounts, bktDevices, bktTokens, bktAudit, bktBlobs}
		if binary.BigEndian.Uint32(b) >= 4 {
			need = append(need, bktDevState)
		}
		for _, bkt := range need {
			if root.Bucket(bkt) == nil {
				return fmt.Errorf("store: %s lacks bucket %s", name, bkt)
			}
		}
		return nil
	})
}

// RestoreOptions say where a restored database's master key comes from.
type RestoreOptions struct {
	// Key is the master key the backup was sealed under (mfad restore
	// --key FILE). Nil: the key a keyed backup carries, else the key
	// already in the state directory.
	Key []byte
	// Passphrase returns a keyed backup's passphrase; it is called only
	// for one.
	Passphrase func() ([]byte, error)
}

// Restored says what Restore did with the master key.
type Restored struct {
	// KeyFile is the master key file that opens the restored database
	// ("" when it holds no secret and there is no key yet: mfad makes one).
	KeyFile string
	// KeyInstalled says KeyFile was written by the restore; a key it
	// replaced is kept as KeyFile + ".old".
	KeyInstalled bool
}

// Restore checks the backup at src, and that its master key opens it,
// before it installs the backup as stateDir/mfad.db (and the key as
// stateDir/mfad.key when it came with the backup or from opts.Key). It
// refuses while a daemon holds the state directory's database, and
// changes nothing when a check fails.
func Restore(src, stateDir string, opts RestoreOptions) (Restored, error) {
	dst := filepath.Join(stateDir, DBFileName)
	if _, err := os.Stat(dst); err == nil {
		// Taking the lock proves no daemon is using the file.
		db, err := bolt.Open(dst, 0o600, &bolt.Options{Timeout: time.Second})
		if errors.Is(err, bolterrors.ErrTimeout) {
			return Restored{}, fmt.Errorf("%w: stop mfad before restoring into %s", ErrLocked, stateDir)
		}
		if err == nil {
			db.Close()
		}
	}
	in, err := os.Open(src)
	if err != nil {
		return Restored{}, err
	}
	defer in.Close()
	r := bufio.NewReader(in)
	var key []byte
	keyFrom := "--key"
	if opts.Key != nil {
		key = opts.Key
	}
	if head, _ := r.Peek(len(keyedMagic)); string(head) == keyedMagic {
		if opts.Key != nil {
			return Restored{}, fmt.Errorf("store: %s carries its own master key; restore it without --key", src)
		}
		h, err := readKeyedHeader(r)
		if err != nil {
			return Restored{}, fmt.Errorf("store: %s: %w", src, err)
		}
		if opts.Passphrase == nil {
			return Restored{}, fmt.Errorf("store: %s carries its master key sealed under a passphrase, and none was given", src)
		}
		pass, err := opts.Passphrase()
		if err != nil {
			return Restored{}, err
		}
		if key, err = h.openKey(pass); err != nil {
			return Restored{}, fmt.Errorf("%w %s", err, src)
		}
		keyFrom = "the backup"
	}
	tmp, err := os.CreateTemp(stateDir, ".restore-*")
	if err != nil {
		return Restored{}, err
	}
	defer os.Remove(tmp.Name())
	if err := fillDurably(tmp, func(f *os.File) error { _, err := io.Copy(f, r); return err }); err != nil {
		return Restored{}, err
	}
	if err := check(tmp.Name(), src); err != nil {
		return Restored{}, err
	}

	keyPath := filepath.Join(stateDir, KeyFileName)
	inPlace, err := readKeyIfExists(keyPath)
	if err != nil {
		return Restored{}, err
	}
	if key == nil {
		key, keyFrom = inPlace, keyPath
	}
	out := Restored{KeyFile: keyPath}
	switch {
	case key != nil:
		if err := VerifyKey(tmp.Name(), key); err != nil {
			return Restored{}, fmt.Errorf("%w: the master key from %s does not open the backup %s; give the key it was "+
				"sealed under (--key FILE) or a backup made with mfactl admin backup --with-key; nothing was changed", ErrWrongKey, keyFrom, src)
		}
	default:
		holds, err := HoldsSecrets(tmp.Name())
		if err != nil {
			return Restored{}, err
		}
		if holds {
			return Restored{}, fmt.Errorf("store: the backup %s holds sealed secrets and %s does not exist: give the master key "+
				"it was sealed under (--key FILE) or a backup made with mfactl admin backup --with-key; nothing was changed", src, keyPath)
		}
		out.KeyFile = ""
	}

	// The key goes in place first: a restore cut short leaves the old
	// database with a key that does not open it, which mfad refuses
	// rather than lose anything, and running the restore again finishes it.
	if key != nil && !bytes.Equal(key, inPlace) {
		if inPlace != nil {
			if err := writeKeyFile(keyPath+oldKeySuffix, inPlace, true); err != nil {
				return Restored{}, err
			}
		}
		if err := writeKeyFile(keyPath, key, true); err != nil {
			return Restored{}, err
		}
		out.KeyInstalled = true
	}
	// A rotation's leftover belongs to the database being replaced.
	if err := os.Remove(keyPath + newKeySuffix); err != nil && !isNotExist(err) {
		return Restored{}, err
	}
	// The write-ahead log and its base copy hold the replaced database's
	// changes: they go before it does, or the next start would apply them
	// to the restored one. Without them, Open takes mfad.db as it is.
	if err := dropLog(stateDir); err != nil {
		return Restored{}, err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return Restored{}, err
	}
	return out, syncDir(stateDir)
}

func readKeyedHeader(r io.Reader) (*keyedHeader, error) {
	var pre [len(keyedMagic) + 4]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, fmt.Errorf("keyed backup header: %w", err)
	}
	n := binary.BigEndian.Uint32(pre[len(keyedMagic):])
	if n > maxKeyedHeader {
		return nil, errors.New("keyed backup header is too long")
	}
	hj := make([]byte, n)
	if _, err := io.ReadFull(r, hj); err != nil {
		return nil, fmt.Errorf("keyed backup header: %w", err)
	}
	var h keyedHeader
	if err := json.Unmarshal(hj, &h); err != nil {
		return nil, fmt.Errorf("keyed backup header: %w", err)
	}
	return &h, nil
}

// fillDurably writes f with fill, makes it 0600, flushes and closes it.
func fillDurably(f *os.File, fill func(*os.File) error) error {
	err := f.Chmod(0o600)
	if err == nil {
		err = fill(f)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
