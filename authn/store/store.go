package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/mfad/mfad/authn"
)

// DBFileName is the database file's name in the state directory.
const DBFileName = "mfad.db"

// SchemaVersion is the schema this build writes. Older databases are
// migrated at Open; newer ones are refused.
const SchemaVersion = 4

var (
	bktRoot     = []byte("mfad")
	bktMeta     = []byte("meta")
	bktAccounts = []byte("accounts")
	bktDevices  = []byte("devices")
	bktTokens   = []byte("tokens")
	bktAudit    = []byte("audit")
	bktBlobs    = []byte("blobs")
	keySchema   = []byte("schema")
)

// migrations[i] upgrades a database from version i to i+1.
var migrations = []func(root *bolt.Bucket) error{
	0: func(root *bolt.Bucket) error {
		for _, name := range [][]byte{bktMeta, bktAccounts, bktDevices, bktTokens, bktAudit} {
			if _, err := root.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	},
	1: func(root *bolt.Bucket) error {
		_, err := root.CreateBucketIfNotExists(bktBlobs)
		return err
	},
	2: func(root *bolt.Bucket) error {
		for _, m := range []struct {
			name   []byte
			newRec func() any
		}{
			{bktAccounts, func() any { return new(accountRec) }},
			{bktDevices, func() any { return new(deviceRecord) }},
			{bktTokens, func() any { return new(tokenRecord) }},
			{bktAudit, func() any { return new(auditRec) }},
		} {
			if err := reencodeJSON(root.Bucket(m.name), m.newRec); err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
		}
		return nil
	},
	3: createDevState,
}

// initialMmapSize is the size bbolt maps the database with from the start
// (as etcd does, with 10 GB); a larger database is remapped as it grows.
const initialMmapSize = 1 << 30

// Options tune a Store.
type Options struct {
	// LockTimeout bounds the wait for the database file lock (default 3 s).
	LockTimeout time.Duration
	// AuditRetention is the number of audit entries kept (default 100000).
	AuditRetention uint64
	// AuditTrimEvery is how many entries beyond the retention gather
	// before they are dropped together (default 256): the log holds
	// AuditRetention to AuditRetention+AuditTrimEvery-1 entries.
	AuditTrimEvery uint64
	// MaxBatch bounds how many queued updates share one commit (default 256).
	MaxBatch int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Store is the bbolt-backed authn.Store.
type Store struct {
	db *bolt.DB
	// keys are the master key's sealers: the current one, and during and
	// after a rotation the one it replaced, for snapshots taken before.
	keys atomic.Pointer[keySet]
	// wmu orders every write transaction with a key rotation, so that no
	// write seals under a key that its snapshot's check value does not name.
	wmu sync.Mutex
	// rotating keeps one rotation at a time.
	rotating sync.Mutex
	opts     Options
	queue    chan *call
	// turn is the writer's turn: whoever commits (the committer goroutine,
	// or an uncontended Update on its own goroutine) holds it.
	turn   chan struct{}
	quit   chan struct{}
	done   chan struct{}
	closed sync.Once

	// Commits and Batched count flushes and the updates they carried; they
	// let tests and benchmarks see group commit at work.
	statsMu sync.Mutex
	commits uint64
	batched uint64

	// releasedAt is the count of pages written when the writer last
	// released the file's mapped pages (resident.go); the writer's turn
	// guards it.
	releasedAt int64

	// The write-ahead log (wal.go); hmu orders writes of its header. Under
	// wmu: the record being gathered, and failed, set when bbolt refused
	// a commit whose record the log already holds, after which the store
	// takes no write until a restart applies that record. checkpoints
	// counts the checkpoint running in the background (one at most).
	wal              *wal
	hmu              sync.Mutex
	rec              walRecord
	failed           error
	checkpoints      sync.WaitGroup
	checkpointing    atomic.Bool
	checkpointFailed atomic.Bool
	checkpointHook   func() // tests hold a background checkpoint with it
	// checkpointRetryAt is where, after failed checkpoints, the writer
	// tries again (under wmu).
	checkpointRetryAt int64

	devices deviceCache // OTP devices' records, decoded (devcache.go)
}

type call struct {
	fn  func(authn.Tx) error
	err chan error
}

// ErrClosed is returned by Update after Close.
var ErrClosed = errors.New("store: closed")

// ErrLocked means another process holds the database.
var ErrLocked = errors.New("store: database is locked by another process")

// Open opens (creating if needed) stateDir/mfad.db with the master key. A
// key that does not open the database's key-check value (or, in a database
// written before check values, its first sealed secret) is ErrWrongKey; a
// database without a check value gets one.
func Open(stateDir string, key []byte, opts Options) (*Store, error) {
	if opts.LockTimeout == 0 {
		opts.LockTimeout = 3 * time.Second
	}
	if opts.AuditRetention == 0 {
		opts.AuditRetention = 100000
	}
	if opts.AuditTrimEvery == 0 {
		opts.AuditTrimEvery = 256
	}
	if opts.MaxBatch == 0 {
		opts.MaxBatch = 256
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s, err := newSealer(key)
	if err != nil {
		return nil, err
	}
	w, err := openWAL(stateDir, opts.LockTimeout)
	if err != nil {
		return nil, err
	}
	if _, err := w.recoverIfDue(); err != nil {
		w.close()
		return nil, err
	}
	path := filepath.Join(stateDir, DBFileName)
	// The mapping is made large at once (address space, not memory):
	// growing it waits for every read transaction to end, among them a
	// checkpoint's, which the writers must not wait for.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout, FreelistType: bolt.FreelistMapType, InitialMmapSize: initialMmapSize})
	if errors.Is(err, bolterrors.ErrTimeout) {
		w.close()
		return nil, fmt.Errorf("%w: %s is held by another mfad (waited %v)", ErrLocked, path, opts.LockTimeout)
	}
	if err != nil {
		w.close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	// A database of this schema whose key-check value the key opens needs
	// no write (and no flush) to start; anything else takes the writing way.
	check := current(db, s)
	if check == nil {
		err = db.Update(func(tx *bolt.Tx) error {
			if err := migrate(tx, opts.Now()); err != nil {
				return err
			}
			check, err = checkKey(tx.Bucket(bktRoot), s)
			return err
		})
	}
	wroteUnlogged := check == nil
	if err != nil {
		db.Close()
		w.close()
		if errors.Is(err, ErrWrongKey) {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return nil, err
	}
	st := &Store{db: db, opts: opts, queue: make(chan *call), turn: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}), wal: w}
	st.keys.Store(&keySet{cur: s, known: []keyed{{s, check}}})
	if err := st.startLog(wroteUnlogged); err != nil {
		db.Close()
		w.close()
		return nil, err
	}
	go st.committer()
	return st, nil
}

// startLog makes the log the store's durability from here on: mfad.db is
// written without flushes. The log's records apply to its base copy,
// which must hold mfad.db's state now; when it may not (no log yet, a
// migration just written, a write since the clean stop that bypassed the
// log, the base missing), a checkpoint makes a new one. Otherwise the
// commits go on after the last record, and the clean flag is cleared, and
// that flushed, before the first of them.
func (s *Store) startLog(wroteUnlogged bool) error {
	w := s.wal
	h := w.head
	if h.gen == 0 {
		// No log: records files left from one that was dropped must not
		// meet the new log's first generations.
		if err := errors.Join(removeIfExists(recordsName(w.dir, 0)), removeIfExists(recordsName(w.dir, 1))); err != nil {
			return err
		}
	}
	var txid uint64
	s.db.View(func(btx *bolt.Tx) error { txid = uint64(btx.ID()); return nil })
	_, baseErr := os.Stat(baseName(w.dir, h.gen))
	w.gen = h.gen
	if h.gen == 0 || wroteUnlogged || txid != h.txid || baseErr != nil {
		if err := s.checkpoint(); err != nil {
			return err
		}
	} else {
		if _, err := w.file(h.gen); err != nil {
			return fmt.Errorf("store: write-ahead log: %w", err)
		}
		w.end = h.end
		h.clean = false
		if err := w.writeHeader(h); err != nil {
			return fmt.Errorf("store: write-ahead log: %w", err)
		}
		removeOtherBases(w.dir, h.gen)
	}
	s.db.NoSync = true
	s.db.NoGrowSync = true
	return nil
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !isNotExist(err) {
		return err
	}
	return nil
}

// current returns the key-check value of a database that is at this
// schema, has its creation time and a key-check value that s opens, and
// nil for any other database.
func current(db *bolt.DB, s *sealer) []byte {
	var check []byte
	db.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(bktRoot)
		if root == nil {
			return nil
		}
		meta := root.Bucket(bktMeta)
		if b := root.Get(keySchema); len(b) != 4 || binary.BigEndian.Uint32(b) != SchemaVersion || meta == nil || meta.Get([]byte("created_at")) == nil {
			return nil
		}
		if v := meta.Get(metaKeyCheck); v != nil {
			if p := (&keyProbe{sealed: bytes.Clone(v), ad: keyCheckAD}); p.opens(s) {
				check = p.sealed
			}
		}
		return nil
	})
	return check
}

func migrate(tx *bolt.Tx, now time.Time) error {
	root, err := tx.CreateBucketIfNotExists(bktRoot)
	if err != nil {
		return err
	}
	v := uint32(0)
	if b := root.Get(keySchema); len(b) == 4 {
		v = binary.BigEndian.Uint32(b)
	}
	if v > SchemaVersion {
		return fmt.Errorf("store: database schema v%d is newer than this mfad understands (v%d)", v, SchemaVersion)
	}
	for ; v < SchemaVersion; v++ {
		if err := migrations[v](root); err != nil {
			return fmt.Errorf("store: migrate v%d to v%d: %w", v, v+1, err)
		}
		if err := root.Put(keySchema, binary.BigEndian.AppendUint32(nil, v+1)); err != nil {
			return err
		}
	}
	meta := root.Bucket(bktMeta)
	if meta.Get([]byte("created_at")) == nil {
		return meta.Put([]byte("created_at"), []byte(now.UTC().Format(time.RFC3339)))
	}
	return nil
}

// update runs fn in a bbolt write transaction, ordered with key rotation,
// and makes it durable: its changes are appended to the write-ahead log
// and flushed before bbolt commits them, so that no reader sees a change
// a crash could take back.
func (s *Store) update(fn func(*tx) error) (err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.failed != nil {
		return s.failed
	}
	btx, err := s.db.Begin(true)
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			btx.Rollback()
		}
	}()
	s.rec.ops = s.rec.ops[:0]
	if cap(s.rec.ops) > 1<<20 {
		s.rec.ops = nil
	}
	if err := fn(&tx{btx: btx, s: s, rec: &s.rec}); err != nil {
		return err
	}
	if len(s.rec.ops) == 0 {
		return nil // nothing changed: the rollback is the commit
	}
	if err := s.wal.append(s.rec.ops); err != nil {
		return fmt.Errorf("store: write-ahead log: %w", err)
	}
	done = true
	if err := btx.Commit(); err != nil {
		s.failed = fmt.Errorf("store: a commit failed after the write-ahead log took its changes; "+
			"mfad takes no more writes until a restart applies them from the log: %w", err)
		return err
	}
	s.maybeCheckpoint()
	return nil
}

// Close waits for queued updates to finish, flushes the database and
// marks the log clean, and closes both.
func (s *Store) Close() error {
	var err error
	s.closed.Do(func() {
		close(s.quit)
		<-s.done
		s.turn <- struct{}{} // an uncontended Update's commit ends first; none starts after
		s.wmu.Lock()
		defer s.wmu.Unlock()
		s.checkpoints.Wait()
		if s.checkpointFailed.Load() && s.failed == nil {
			// Clean means one generation: the base and its records.
			err = s.checkpoint()
		}
		if err == nil {
			err = s.db.Sync()
		}
		if err == nil && s.failed == nil {
			h := walHeader{gen: s.wal.gen, end: s.wal.end, clean: true}
			s.db.View(func(btx *bolt.Tx) error { h.txid = uint64(btx.ID()); return nil })
			s.hmu.Lock()
			err = s.wal.writeHeader(h)
			s.hmu.Unlock()
		}
		err = errors.Join(err, s.db.Close(), s.wal.close())
	})
	return err
}

// Path is the database file.
func (s *Store) Path() string { return s.db.Path() }

// Stats returns the number of commits and of updates they carried.
func (s *Store) Stats() (commits, updates uint64) {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.commits, s.batched
}

// View implements authn.Store.
func (s *Store) View(fn func(authn.Tx) error) error {
	return s.db.View(func(btx *bolt.Tx) error { return fn(&tx{btx: btx, s: s}) })
}

// Update implements authn.Store with a group commit.
func (s *Store) Update(ctx context.Context, fn func(authn.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := &call{fn: fn, err: make(chan error, 1)}
	// Nobody committing: commit here, with whatever queued meanwhile,
	// sparing the lone update two goroutine switches and the wakeups of
	// idle threads that they cause.
	select {
	case s.turn <- struct{}{}:
		select {
		case <-s.quit:
			<-s.turn
			return ErrClosed
		default:
		}
		s.run(s.gather(c))
		<-s.turn
		return <-c.err
	default:
	}
	select {
	case s.queue <- c:
	case <-s.quit:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued the update may commit, so wait for its outcome even if ctx ends.
	return <-c.err
}

// committer takes whatever queued while the previous commit flushed and,
// once the writer's turn is free, commits it together, with no timer.
func (s *Store) committer() {
	defer close(s.done)
	for {
		var first *call
		select {
		case first = <-s.queue:
		case <-s.quit:
			return
		}
		s.turn <- struct{}{}
		s.run(s.gather(first))
		<-s.turn
	}
}

// gather is first and whatever queued, up to MaxBatch updates.
func (s *Store) gather(first *call) []*call {
	batch := []*call{first}
	for len(batch) < s.opts.MaxBatch {
		select {
		case c := <-s.queue:
			batch = append(batch, c)
		default:
			return batch
		}
	}
	return batch
}

var errRetryBatch = errors.New("store: retry batch without a failed update")

// run commits batch; when one function fails, the transaction is rolled
// back, that function gets its error, and the rest run again without it.
func (s *Store) run(batch []*call) {
	for len(batch) > 0 {
		failed, failErr := -1, error(nil)
		err := s.update(func(t *tx) error {
			for i, c := range batch {
				if err := safeCall(c.fn, t); err != nil {
					failed, failErr = i, err
					return errRetryBatch
				}
			}
			return nil
		})
		if failed >= 0 {
			batch[failed].err <- failErr
			batch = append(batch[:failed], batch[failed+1:]...)
			continue
		}
		s.statsMu.Lock()
		s.commits++
		s.batched += uint64(len(batch))
		s.statsMu.Unlock()
		for _, c := range batch {
			c.err <- err
		}
		s.maybeReleaseMapped()
		return
	}
}

func safeCall(fn func(authn.Tx) error, t authn.Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("store: update panicked: %v", r)
		}
	}()
	return fn(t)
}

// WriteBackup streams a consistent copy of the database to w while the
// store keeps serving.
func (s *Store) WriteBackup(w io.Writer) (int64, error) {
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// Meta returns a setting from the meta bucket ("" when unset).
func (s *Store) Meta(key string) (string, error) {
	var v string
	err := s.db.View(func(tx *bolt.Tx) error {
		v = string(tx.Bucket(bktRoot).Bucket(bktMeta).Get([]byte(key)))
		return nil
	})
	return v, err
}

// SetMetaOnce stores value under key unless a value is already there, and
// returns the stored value (used to fix the relying party id at first start).
func (s *Store) SetMetaOnce(key, value string) (string, error) {
	// Set once, it is only read again at every start: no write for that.
	if v, err := s.Meta(key); err != nil || v != "" {
		return v, err
	}
	var v string
	err := s.update(func(t *tx) error {
		b := t.wbucket(bktMeta)
		if cur := b.b.Get([]byte(key)); cur != nil {
			v = string(cur)
			return nil
		}
		v = value
		return b.Put([]byte(key), []byte(value))
	})
	return v, err
}

// SaveBlob stores data under name, sealed (a software key's state, say).
func (s *Store) SaveBlob(name string, data []byte) error {
	return s.update(func(t *tx) error {
		return t.wbucket(bktBlobs).Put([]byte(name), t.sealer().seal(data, "blobs/"+name))
	})
}

// LoadBlob returns what SaveBlob stored under name, or nil when nothing is.
func (s *Store) LoadBlob(name string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bktRoot).Bucket(bktBlobs).Get([]byte(name))
		if v == nil {
			return nil
		}
		var err error
		out, err = s.sealerFor(tx).open(v, "blobs/"+name)
		return err
	})
	return out, err
}

// DeleteBlob removes name.
func (s *Store) DeleteBlob(name string) error {
	return s.update(func(t *tx) error {
		return t.wbucket(bktBlobs).Delete([]byte(name))
	})
}
