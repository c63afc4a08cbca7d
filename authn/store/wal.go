package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The write-ahead log. bbolt flushes twice per commit (its data pages, then
// its meta page); a lone sign-in waited for both. With the log, a commit's
// changes are appended to a log file as one record and flushed once,
// before bbolt commits them to mfad.db without flushing. mfad.db is then
// only as durable as the page cache: after a power loss it may hold a meta
// page that points at pages never written, and bbolt keeps no page
// checksums to show it. So the durable state is a base copy,
// mfad.db.base.<generation> (written from a read transaction and flushed),
// plus the records of that generation and of the next; after a crash the
// next start rebuilds mfad.db from them.
//
// Files in the state directory:
//
//	mfad.db              bbolt, written without flushes while open
//	mfad.db.base.<gen>   the state when generation gen's records began, flushed
//	mfad.wal             two header slots; its lock is the directory's
//	mfad.wal.0, .1       records of even and of odd generations
//
// A header slot is magic, sequence, generation (its base copy's), end (of
// the records at a clean stop), the bbolt transaction id of mfad.db at a
// clean stop, a clean-stop flag and a CRC-32C. The two slots are written
// alternately, as bbolt writes its meta pages, so a torn header write
// leaves the other. A record is its payload's length, a CRC-32C over its
// generation and the payload, and the payload: operations (walOp*). The
// generation in the checksum ends a replay at the records of an earlier
// generation that a reused file still holds further on.
//
// A checkpoint, once the records pass checkpointAt, does not stop the
// writers: in the writer's turn it starts a read transaction and sends the
// next commits to the next generation's file; the base copy is written
// from that snapshot meanwhile, and once it is flushed the header names
// the new generation. A crash before that replays both files on the old
// base. One checkpoint runs at a time, so the file of two generations
// before is free to reuse when the next one starts.
//
// The clean flag says mfad.db was flushed at a clean stop and equals the
// base with its records applied; Open then uses it as it is (the start
// costs one header write), unless its transaction id shows a write that
// bypassed the log since (an older mfad, a dropped key check): then it
// checkpoints first.

// WALFileName is the write-ahead log's header file in the state directory.
const WALFileName = "mfad.wal"

// BaseFilePrefix begins the names of the database's base copies
// (mfad.db.base.<generation>), which the log's records apply to.
const BaseFilePrefix = baseFilePrefix

const (
	baseFilePrefix = DBFileName + ".base."
	walMagic       = "mfadwal2"
	walSlotSize    = 512
	// walChunk is how far a records file is extended with zeros ahead of
	// its records, so that an append does not change the file's size and
	// its flush does not wait for the file system's journal.
	walChunk = 4 << 20
	// maxRecord bounds one record: a larger length is damage, not a record.
	maxRecord = 1 << 30
)

// checkpointAt is the records' size at which the writer starts a
// checkpoint: a crash replays about this much, at most twice. (A variable
// for tests.)
var checkpointAt int64 = 32 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Operations in a record's payload. Each names its bucket by its path from
// the top, as a count and then length-prefixed names.
const (
	walOpPut          = 1 // path, key, value
	walOpDelete       = 2 // path, key
	walOpCreateBucket = 3 // path (the bucket's own, ending in its name)
	walOpDeleteBucket = 4 // path (the bucket's own)
	walOpSetSequence  = 5 // path, sequence
)

// walHeader is one header slot.
type walHeader struct {
	seq   uint64 // which slot is newer
	gen   uint64 // the base copy's generation
	end   int64  // the end of generation gen's records, when clean
	txid  uint64 // mfad.db's transaction id, when clean
	clean bool
}

const walSlotLen = 8 + 8 + 8 + 8 + 8 + 1 + 4

func (h walHeader) encode() []byte {
	b := make([]byte, 0, walSlotLen)
	b = append(b, walMagic...)
	b = binary.LittleEndian.AppendUint64(b, h.seq)
	b = binary.LittleEndian.AppendUint64(b, h.gen)
	b = binary.LittleEndian.AppendUint64(b, uint64(h.end))
	b = binary.LittleEndian.AppendUint64(b, h.txid)
	clean := byte(0)
	if h.clean {
		clean = 1
	}
	b = append(b, clean)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeWALHeader(b []byte) (walHeader, bool) {
	if len(b) < walSlotLen || string(b[:8]) != walMagic ||
		crc32.Checksum(b[:walSlotLen-4], castagnoli) != binary.LittleEndian.Uint32(b[walSlotLen-4:]) {
		return walHeader{}, false
	}
	h := walHeader{
		seq:   binary.LittleEndian.Uint64(b[8:]),
		gen:   binary.LittleEndian.Uint64(b[16:]),
		end:   int64(binary.LittleEndian.Uint64(b[24:])),
		txid:  binary.LittleEndian.Uint64(b[32:]),
		clean: b[40] == 1,
	}
	if h.end < 0 || h.gen == 0 || b[40] > 1 {
		return walHeader{}, false
	}
	return h, true
}

// wal is the open log. The header file and head are guarded by Store.hmu;
// the records files, gen and end by the writer's lock (Store.wmu).
type wal struct {
	ctl  *os.File
	dir  string
	head walHeader // the header last written or read
	// files are the records files of even and odd generations, opened
	// when first used, and sizes their lengths (zeros beyond what was
	// written).
	files [2]*os.File
	sizes [2]int64
	gen   uint64 // the generation commits are appended to
	end   int64  // the next record's offset in its file
	buf   []byte
}

// errNoLog means the state directory has no log yet (a new directory, or
// a database written by a build without one, which flushed every commit).
var errNoLog = errors.New("store: no write-ahead log")

// openWAL opens and locks stateDir/mfad.wal, creating it empty. The lock
// is the state directory's: recovery replaces mfad.db, so bbolt's lock on
// that file cannot keep a second daemon out.
func openWAL(stateDir string, timeout time.Duration) (*wal, error) {
	path := filepath.Join(stateDir, WALFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, fmt.Errorf("%w: %s is held by another mfad (waited %v)", ErrLocked, stateDir, timeout)
			}
			return nil, fmt.Errorf("store: lock %s: %w", path, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &wal{ctl: f, dir: stateDir}, nil
}

// readHeader returns the newer valid header slot, errNoLog for a file
// whose header area was never written, and an error for one that was
// written and is damaged: mfad.db may then lack flushed changes, so the
// store does not open rather than serve an older state.
func (w *wal) readHeader() (walHeader, error) {
	var area [2 * walSlotSize]byte
	n, err := w.ctl.ReadAt(area[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return walHeader{}, err
	}
	if bytes.Count(area[:n], []byte{0}) == n {
		return walHeader{}, errNoLog
	}
	a, okA := decodeWALHeader(area[:walSlotSize])
	b, okB := decodeWALHeader(area[walSlotSize:])
	switch {
	case okA && (!okB || a.seq > b.seq):
		return a, nil
	case okB:
		return b, nil
	}
	return walHeader{}, fmt.Errorf("store: %s: its header is damaged; mfad.db may lack committed changes. "+
		"Restore a backup (mfad restore) or move the file aside to use mfad.db as it is", filepath.Join(w.dir, WALFileName))
}

// writeHeader writes h into the slot the older header holds and flushes it.
func (w *wal) writeHeader(h walHeader) error {
	h.seq = w.head.seq + 1
	var slot [walSlotSize]byte
	copy(slot[:], h.encode())
	if _, err := w.ctl.WriteAt(slot[:], int64(h.seq%2)*walSlotSize); err != nil {
		return err
	}
	if err := syscall.Fdatasync(int(w.ctl.Fd())); err != nil {
		return err
	}
	w.head = h
	return nil
}

func recordsName(dir string, gen uint64) string {
	return filepath.Join(dir, WALFileName+"."+strconv.FormatUint(gen%2, 10))
}

// file is the records file of generation gen, opened or created.
func (w *wal) file(gen uint64) (*os.File, error) {
	i := gen % 2
	if w.files[i] != nil {
		return w.files[i], nil
	}
	f, err := os.OpenFile(recordsName(w.dir, gen), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	w.files[i], w.sizes[i] = f, fi.Size()
	return f, nil
}

// startGeneration sends the next commits to generation gen's file, from
// its start: what it held is two generations old, and its checksums end
// a replay.
func (w *wal) startGeneration(gen uint64) error {
	if _, err := w.file(gen); err != nil {
		return err
	}
	w.gen, w.end = gen, 0
	return nil
}

// reserve extends the active file with zeros so that n more bytes fit after end.
func (w *wal) reserve(n int64) error {
	i := w.gen % 2
	size := w.sizes[i]
	if w.end+n <= size {
		return nil
	}
	grow := max(walChunk, (w.end+n-size+walChunk-1)/walChunk*walChunk)
	if err := writeZeros(w.files[i], size, size+grow); err != nil {
		return err
	}
	w.sizes[i] += grow
	return nil
}

// zeros is only ever read: the data segment's pages cost no memory until
// written.
var zeros [64 << 10]byte

func writeZeros(f *os.File, from, to int64) error {
	for from < to {
		n := min(to-from, int64(len(zeros)))
		if _, err := f.WriteAt(zeros[:n], from); err != nil {
			return err
		}
		from += n
	}
	return nil
}

// append writes one record at the end of the active file and flushes it;
// the record holds the changes of one bbolt transaction, about to commit.
func (w *wal) append(payload []byte) error {
	n := int64(8 + len(payload))
	if err := w.reserve(n); err != nil {
		return err
	}
	f := w.files[w.gen%2]
	w.buf = w.buf[:0]
	w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(len(payload)))
	w.buf = binary.LittleEndian.AppendUint32(w.buf, recordCRC(w.gen, payload))
	w.buf = append(w.buf, payload...)
	if _, err := f.WriteAt(w.buf, w.end); err != nil {
		return err
	}
	// The flush covers the file's new length too when reserve grew it.
	if err := syscall.Fdatasync(int(f.Fd())); err != nil {
		return err
	}
	w.end += n
	if cap(w.buf) > 1<<20 {
		w.buf = nil // one large transaction does not pin its buffer
	}
	return nil
}

func recordCRC(gen uint64, payload []byte) uint32 {
	var g [8]byte
	binary.LittleEndian.PutUint64(g[:], gen)
	return crc32.Update(crc32.Checksum(g[:], castagnoli), castagnoli, payload)
}

// nextRecord reads the record at off of generation gen from r (of length
// size). ok is false at the records' end: a zero or impossible length, a
// short record, a checksum that fails (torn, or an earlier generation's).
func nextRecord(r io.ReaderAt, off, size int64, gen uint64) (payload []byte, ok bool, err error) {
	var head [8]byte
	if off+8 > size {
		return nil, false, nil
	}
	if _, err := r.ReadAt(head[:], off); err != nil {
		return nil, false, err
	}
	n := int64(binary.LittleEndian.Uint32(head[:4]))
	if n == 0 || n > maxRecord || off+8+n > size {
		return nil, false, nil
	}
	payload = make([]byte, n)
	if _, err := r.ReadAt(payload, off+8); err != nil {
		return nil, false, err
	}
	if recordCRC(gen, payload) != binary.LittleEndian.Uint32(head[4:]) {
		return nil, false, nil
	}
	return payload, true, nil
}

func (w *wal) close() error {
	errs := []error{w.ctl.Close()}
	for _, f := range w.files {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	return errors.Join(errs...)
}

func baseName(dir string, gen uint64) string {
	return filepath.Join(dir, baseFilePrefix+strconv.FormatUint(gen, 10))
}

// removeOtherBases removes base copies of generations other than keep:
// those a checkpoint or recovery cut short left behind.
func removeOtherBases(dir string, keep uint64) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, baseFilePrefix) || name == filepath.Base(baseName(dir, keep)) {
			continue
		}
		os.Remove(filepath.Join(dir, name))
	}
}

// replay applies generation gen's records, from the start of its file, to
// db, and returns how many there were and where they end.
func (w *wal) replay(db *bolt.DB, gen uint64) (replayed int, end int64, err error) {
	f, err := w.file(gen)
	if err != nil {
		return 0, 0, err
	}
	size := w.sizes[gen%2]
	for {
		var batch [][]byte
		bytes := 0
		for bytes < 8<<20 {
			payload, ok, err := nextRecord(f, end, size, gen)
			if err != nil {
				return replayed, end, err
			}
			if !ok {
				break
			}
			batch = append(batch, payload)
			bytes += len(payload)
			end += int64(8 + len(payload))
		}
		if len(batch) == 0 {
			return replayed, end, nil
		}
		err := db.Update(func(btx *bolt.Tx) error {
			for _, p := range batch {
				if err := applyRecord(btx, p); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return replayed, end, fmt.Errorf("generation %d, record %d: %w", gen, replayed+1, err)
		}
		replayed += len(batch)
	}
}

// recover rebuilds mfad.db after a stop that was not clean: the base copy
// with its generation's records and the next generation's (a checkpoint
// was under way) applied, flushed and renamed over mfad.db; then the log
// is marked clean. It needs no key: records are the bytes bbolt was given,
// sealed where they were secret.
func (w *wal) recover() (replayed int, err error) {
	dbPath := filepath.Join(w.dir, DBFileName)
	tmp := dbPath + ".recover"
	os.Remove(tmp)
	gen := w.head.gen
	if err := copyFile(baseName(w.dir, gen), tmp); err != nil {
		return 0, fmt.Errorf("store: recover from the write-ahead log: the base copy: %w", err)
	}
	defer os.Remove(tmp)
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second, NoSync: true, NoGrowSync: true})
	if err != nil {
		return 0, fmt.Errorf("store: recover from the write-ahead log: open the base copy: %w", err)
	}
	n, end, err := w.replay(db, gen)
	replayed += n
	nextN := 0
	if err == nil {
		nextN, _, err = w.replay(db, gen+1)
		replayed += nextN
	}
	var txid uint64
	db.View(func(btx *bolt.Tx) error { txid = uint64(btx.ID()); return nil })
	if err == nil {
		err = db.Sync()
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return replayed, fmt.Errorf("store: recover from the write-ahead log: %w", err)
	}
	h := walHeader{gen: gen, end: end, txid: txid, clean: true}
	if nextN > 0 {
		// The next generation's records apply to a base that was never
		// finished: the recovered database becomes the base of the one
		// after, whose records start afresh.
		h.gen, h.end = gen+2, 0
		if err := copyFile(tmp, baseName(w.dir, h.gen)); err != nil {
			return replayed, err
		}
	} else {
		// What follows the last good record (a torn record) is zeroed:
		// the next append must not end where a longer torn record's tail
		// could read as one more.
		if err := writeZeros(w.files[gen%2], end, w.sizes[gen%2]); err != nil {
			return replayed, err
		}
	}
	if err := os.Rename(tmp, dbPath); err != nil {
		return replayed, err
	}
	if err := syncDir(w.dir); err != nil {
		return replayed, err
	}
	if err := w.writeHeader(h); err != nil {
		return replayed, err
	}
	removeOtherBases(w.dir, h.gen)
	return replayed, nil
}

// RecoverLog finishes a crash's recovery in stateDir (rebuilding mfad.db
// from its base copy and write-ahead log) if one is due, so that whatever
// reads mfad.db before Open (LoadKey) reads what was committed. It returns
// the number of records replayed.
func RecoverLog(stateDir string, timeout time.Duration) (int, error) {
	if _, err := os.Stat(filepath.Join(stateDir, WALFileName)); isNotExist(err) {
		return 0, nil
	}
	w, err := openWAL(stateDir, timeout)
	if err != nil {
		return 0, err
	}
	defer w.close()
	return w.recoverIfDue()
}

func (w *wal) recoverIfDue() (int, error) {
	h, err := w.readHeader()
	if errors.Is(err, errNoLog) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	w.head = h
	if h.clean {
		return 0, nil
	}
	return w.recover()
}

// writeBase writes the state of btx as generation gen's base copy,
// flushed, in place under its name and the directory flushed.
func (w *wal) writeBase(btx *bolt.Tx, gen uint64) error {
	path := baseName(w.dir, gen)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := fillDurably(f, func(f *os.File) error { _, err := btx.WriteTo(f); return err }); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(w.dir)
}

// checkpoint makes the database's current state the base of a new
// generation, whose records start empty, and waits for it: at Open, after
// a key rotation (which reseals outside the log), and when a checkpoint
// in the background failed. The caller holds the writer's turn.
func (s *Store) checkpoint() error {
	s.checkpoints.Wait()
	w := s.wal
	gen := w.gen + 1
	if w.head.gen >= gen {
		gen = w.head.gen + 1
	}
	// The file is opened first: once the header names the generation,
	// commits must be able to go to it.
	if _, err := w.file(gen); err != nil {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	err := s.db.View(func(btx *bolt.Tx) error { return w.writeBase(btx, gen) })
	if err != nil {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	s.hmu.Lock()
	err = w.writeHeader(walHeader{gen: gen})
	s.hmu.Unlock()
	if err != nil {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	// Only now may the commits go to this generation's file: until the
	// header named it, a recovery replayed the file it reuses.
	if err := w.startGeneration(gen); err != nil {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	removeOtherBases(w.dir, gen)
	s.checkpointFailed.Store(false)
	return nil
}

// maybeCheckpoint starts a checkpoint once the active generation's records
// pass checkpointAt, unless one is under way. The caller holds the
// writer's turn. Its snapshot is the state the records so far leave; the
// commits after it go to the next generation, while the base is written.
func (s *Store) maybeCheckpoint() {
	w := s.wal
	if s.checkpointing.Load() || w.end < checkpointAt {
		return
	}
	if s.checkpointFailed.Load() {
		// In the writer's turn this time. On failure the records grow,
		// still correct, and it is tried again a walChunk later.
		if w.end >= s.checkpointRetryAt {
			if err := s.checkpoint(); err != nil {
				s.checkpointRetryAt = w.end + walChunk
			}
		}
		return
	}
	btx, err := s.db.Begin(false)
	if err != nil {
		return
	}
	gen := w.gen + 1
	if err := w.startGeneration(gen); err != nil {
		btx.Rollback()
		return
	}
	s.checkpointing.Store(true)
	s.checkpoints.Add(1)
	go func() {
		defer s.checkpoints.Done()
		defer s.checkpointing.Store(false)
		if s.checkpointHook != nil {
			s.checkpointHook()
		}
		err := w.writeBase(btx, gen)
		btx.Rollback()
		if err == nil {
			s.hmu.Lock()
			err = w.writeHeader(walHeader{gen: gen})
			s.hmu.Unlock()
		}
		if err != nil {
			// The old base and both generations' records still recover
			// everything; the next commit checkpoints in its turn.
			s.checkpointFailed.Store(true)
			return
		}
		removeOtherBases(w.dir, gen)
	}()
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	return fillDurably(out, func(f *os.File) error { _, err := io.Copy(f, in); return err })
}

// walRecord gathers one transaction's changes as a record's payload.
type walRecord struct {
	ops []byte
}

func (r *walRecord) path(op byte, path [][]byte) {
	r.ops = append(r.ops, op, byte(len(path)))
	for _, name := range path {
		r.ops = binary.AppendUvarint(r.ops, uint64(len(name)))
		r.ops = append(r.ops, name...)
	}
}

func (r *walRecord) bytes(b []byte) {
	r.ops = binary.AppendUvarint(r.ops, uint64(len(b)))
	r.ops = append(r.ops, b...)
}

// wbucket is a bucket whose changes are recorded for the log; rec is nil
// where nothing is logged (migration at Open, which a checkpoint follows).
type wbucket struct {
	b    *bolt.Bucket
	path [][]byte
	rec  *walRecord
}

func (w wbucket) Put(k, v []byte) error {
	if w.rec != nil {
		w.rec.path(walOpPut, w.path)
		w.rec.bytes(k)
		w.rec.bytes(v)
	}
	return w.b.Put(k, v)
}

func (w wbucket) Delete(k []byte) error {
	if w.rec != nil {
		w.rec.path(walOpDelete, w.path)
		w.rec.bytes(k)
	}
	return w.b.Delete(k)
}

func (w wbucket) child(name []byte, b *bolt.Bucket) wbucket {
	return wbucket{b: b, path: append(w.path[:len(w.path):len(w.path)], name), rec: w.rec}
}

// Bucket returns the nested bucket name; its b is nil when there is none.
func (w wbucket) Bucket(name []byte) wbucket { return w.child(name, w.b.Bucket(name)) }

func (w wbucket) CreateBucketIfNotExists(name []byte) (wbucket, error) {
	b, err := w.b.CreateBucketIfNotExists(name)
	if err != nil {
		return wbucket{}, err
	}
	c := w.child(name, b)
	if w.rec != nil {
		w.rec.path(walOpCreateBucket, c.path)
	}
	return c, nil
}

func (w wbucket) DeleteBucket(name []byte) error {
	if w.rec != nil {
		w.rec.path(walOpDeleteBucket, w.child(name, nil).path)
	}
	return w.b.DeleteBucket(name)
}

func (w wbucket) NextSequence() (uint64, error) {
	seq, err := w.b.NextSequence()
	if err == nil && w.rec != nil {
		w.rec.path(walOpSetSequence, w.path)
		w.rec.ops = binary.AppendUvarint(w.rec.ops, seq)
	}
	return seq, err
}

// errBadRecord is a record whose payload does not parse. Its checksum
// held, so this is not a torn write: recovery stops and says so.
var errBadRecord = errors.New("malformed write-ahead log record")

// applyRecord applies one record's operations to btx. Replaying a
// generation's records on a state that already holds some of them gives
// the same state: each operation sets its target, whatever was there.
func applyRecord(btx *bolt.Tx, p []byte) error {
	for len(p) > 0 {
		op := p[0]
		path, rest, ok := readPath(p[1:])
		if !ok || len(path) == 0 {
			return errBadRecord
		}
		p = rest
		switch op {
		case walOpPut:
			k, rest, ok1 := readBytes(p)
			v, rest, ok2 := readBytes(rest)
			if !ok1 || !ok2 {
				return errBadRecord
			}
			p = rest
			b, err := bucketAt(btx, path, true)
			if err != nil {
				return err
			}
			if err := b.Put(k, v); err != nil {
				return err
			}
		case walOpDelete:
			k, rest, ok := readBytes(p)
			if !ok {
				return errBadRecord
			}
			p = rest
			if b, _ := bucketAt(btx, path, false); b != nil {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
		case walOpCreateBucket:
			if _, err := bucketAt(btx, path, true); err != nil {
				return err
			}
		case walOpDeleteBucket:
			parent, _ := bucketAt(btx, path[:len(path)-1], false)
			name := path[len(path)-1]
			switch {
			case len(path) == 1:
				if btx.Bucket(name) != nil {
					if err := btx.DeleteBucket(name); err != nil {
						return err
					}
				}
			case parent != nil && parent.Bucket(name) != nil:
				if err := parent.DeleteBucket(name); err != nil {
					return err
				}
			}
		case walOpSetSequence:
			seq, n := binary.Uvarint(p)
			if n <= 0 {
				return errBadRecord
			}
			p = p[n:]
			b, err := bucketAt(btx, path, true)
			if err != nil {
				return err
			}
			if err := b.SetSequence(seq); err != nil {
				return err
			}
		default:
			return errBadRecord
		}
	}
	return nil
}

// bucketAt is the bucket at path, created when create is set (nil, nil
// when it is not there and create is not).
func bucketAt(btx *bolt.Tx, path [][]byte, create bool) (*bolt.Bucket, error) {
	if len(path) == 0 {
		return nil, errBadRecord
	}
	var b *bolt.Bucket
	for i, name := range path {
		var err error
		switch {
		case i == 0 && create:
			b, err = btx.CreateBucketIfNotExists(name)
		case i == 0:
			b = btx.Bucket(name)
		case create:
			b, err = b.CreateBucketIfNotExists(name)
		default:
			b = b.Bucket(name)
		}
		if err != nil {
			return nil, err
		}
		if b == nil {
			return nil, nil
		}
	}
	return b, nil
}

func readPath(p []byte) ([][]byte, []byte, bool) {
	if len(p) == 0 {
		return nil, nil, false
	}
	n := int(p[0])
	p = p[1:]
	path := make([][]byte, 0, n)
	for range n {
		name, rest, ok := readBytes(p)
		if !ok {
			return nil, nil, false
		}
		path, p = append(path, name), rest
	}
	return path, p, true
}

func readBytes(p []byte) ([]byte, []byte, bool) {
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p)-k) {
		return nil, nil, false
	}
	return p[k : k+int(n)], p[k+int(n):], true
}

// dropLog empties the log's header (a log without one is no log),
// removes its records files and base copies, and flushes the directory.
func dropLog(stateDir string) error {
	err := os.Truncate(filepath.Join(stateDir, WALFileName), 0)
	if err != nil && !isNotExist(err) {
		return err
	}
	for gen := range uint64(2) {
		if err := os.Remove(recordsName(stateDir, gen)); err != nil && !isNotExist(err) {
			return err
		}
	}
	removeOtherBases(stateDir, 0)
	return syncDir(stateDir)
}
