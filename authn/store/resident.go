package store

import (
	"syscall"

	bolt "go.etcd.io/bbolt"
)

// bbolt reads the database through a read-only shared mapping of the file,
// and writes it with pwrite, copy on write: every commit writes the pages
// it changed to free pages anywhere in the file, and the next transaction
// reads them through the mapping. A page read once stays mapped into the
// process, and the kernel maps a read page's neighbours with it (fault-
// around), so over time the daemon's resident set came to hold nearly
// every page of the file (the audit log's most of all: its tail is read
// on every append and its head on every pruning, each time at another
// place in the file), not the few pages a sign-in reads: 20 MB of a 32 MB
// database after a million sign-ins. Once commits have written
// releasePages pages since the last time, the writer drops the process's
// mappings of the file: the pages stay in the page cache (nothing is read
// from disk again), and the next read of one maps it again with a minor
// fault. Dropping them after every commit held the database's share at
// almost nothing, but cost a lone client's durable sign-in ~90 µs
// (BenchmarkAuthenticateDurable: 387 against 295 µs); every 4 MB written
// it costs nothing measurable and keeps the share to a few MB.
const releasePages = 1024

// releaseMapped drops the process's mappings of the database file's pages
// (madvise MADV_DONTNEED on bbolt's shared file mapping: the file's
// contents are untouched). It runs inside a read transaction, which keeps
// bbolt from remapping the file meanwhile.
func (s *Store) releaseMapped() error {
	return s.db.View(func(btx *bolt.Tx) error {
		size := btx.Size() // the pages in use; the mapping covers at least these
		if size <= 0 {
			return nil
		}
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, s.db.Info().Data, uintptr(size), syscall.MADV_DONTNEED); errno != 0 {
			return errno
		}
		return nil
	})
}

// maybeReleaseMapped releases the mapped pages once commits wrote
// releasePages pages since the last release. The writer calls it, in its
// turn.
func (s *Store) maybeReleaseMapped() {
	st := s.db.Stats()
	written := st.TxStats.GetPageCount()
	if written-s.releasedAt < releasePages {
		return
	}
	s.releasedAt = written
	s.releaseMapped() // an error only leaves the pages mapped
}
