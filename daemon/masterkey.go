package daemon

import (
	"io"
	"path/filepath"

	"github.com/mfad/mfad/authn/store"
	"github.com/mfad/mfad/ipc/api"
	"github.com/mfad/mfad/ipc/server"
)

// boltMasterKey rotates the bbolt store's master key file and writes
// backups that carry the key.
type boltMasterKey struct {
	st      *store.Store
	keyFile string
	// credential: the key came from a systemd credential, which mfad
	// cannot replace.
	credential bool
}

func (m boltMasterKey) RotateKey() (api.KeyRotation, error) {
	if m.credential {
		return api.KeyRotation{}, store.NotRotatable(m.keyFile)
	}
	r, err := m.st.RotateKey(m.keyFile)
	return api.KeyRotation{KeyFile: r.KeyFile, OldKeyFile: r.OldKeyFile, Resealed: r.Resealed}, err
}

func (m boltMasterKey) WriteKeyedBackup(w io.Writer, passphrase []byte) (int64, error) {
	return m.st.WriteKeyedBackup(w, passphrase)
}

// masterKeyOf returns what serves the master key routes for b, or nil
// when its backend has none (PostgreSQL: its key is every host's).
func masterKeyOf(b backend, keyFile, stateDir string) server.MasterKeyBackend {
	bb, ok := b.(boltBackend)
	if !ok {
		return nil
	}
	return boltMasterKey{st: bb.Store, keyFile: keyFile, credential: filepath.Dir(keyFile) != filepath.Clean(stateDir)}
}
