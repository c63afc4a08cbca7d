package emu

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// Persister keeps the emulator's state: one opaque blob, read once when the
// emulator starts and rewritten whenever the state changes. Load returns
// nil and no error (or an error wrapping fs.ErrNotExist) when nothing was
// saved yet. The blob holds private keys: a Persister must keep it secret
// (the daemon seals it; FilePersister writes a 0600 file).
type Persister interface {
	Load() ([]byte, error)
	Save(state []byte) error
}

// Memory is a Persister in memory. The zero value is ready to use and
// starts empty. It is safe for concurrent use.
type Memory struct {
	mu   sync.Mutex
	data []byte
}

// NewMemory returns an empty in-memory Persister.
func NewMemory() *Memory { return new(Memory) }

// Load returns a copy of the last saved state, or nil.
func (m *Memory) Load() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data == nil {
		return nil, nil
	}
	return append([]byte(nil), m.data...), nil
}

// Save replaces the state with a copy of state.
func (m *Memory) Save(state []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.data = append([]byte(nil), state...)
	return nil
}

// File is a Persister that keeps the state in one file, created with mode
// 0600 and replaced atomically (a temporary file in the same directory,
// synced, then renamed over it).
type File struct {
	Path string
}

// FilePersister returns a Persister backed by the file at path.
func FilePersister(path string) *File { return &File{Path: path} }

// Load reads the file; a missing file is no state.
func (f *File) Load() ([]byte, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("emu: load state: %w", err)
	}
	return b, nil
}

// Save writes state to a temporary 0600 file beside Path, syncs it and
// renames it over Path.
func (f *File) Save(state []byte) (err error) {
	dir := filepath.Dir(f.Path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(f.Path)+".tmp*")
	if err != nil {
		return fmt.Errorf("emu: save state: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("emu: save state: %w", err)
	}
	if _, err = tmp.Write(state); err != nil {
		return fmt.Errorf("emu: save state: %w", err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("emu: save state: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("emu: save state: %w", err)
	}
	if err = os.Rename(tmp.Name(), f.Path); err != nil {
		return fmt.Errorf("emu: save state: %w", err)
	}
	if d, derr := os.Open(dir); derr == nil {
		d.Sync() // best effort: make the rename durable
		d.Close()
	}
	return nil
}
