package store

import (
	"io"
	"testing"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/authn/store/storetest"
)

// TestContract runs the backend-generic behaviour suite on bbolt.
func TestContract(t *testing.T) {
	storetest.Run(t, storetest.Backend{New: func(t *testing.T) storetest.Opener {
		dir := t.TempDir()
		return func(key []byte, retention uint64) (authn.Store, io.Closer, error) {
			s, err := Open(dir, key, Options{AuditRetention: retention, AuditTrimEvery: 1})
			return s, s, err
		}
	}})
}
