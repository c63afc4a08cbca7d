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
// changes are appended to mfad.wal as one record and flushed once, before
// bbolt commits them to mfad.db without flushing. mfad.db is then only as
// durable as the page cache: after a power loss it may hold a meta page
// that points at pages never written, and bbolt keeps no page checksums to
// show it. So the durable state is a base copy, mfad.db.base.<generation>
// (written from a read transaction and flushed), plus the log's records of
// that generation; after a crash Open rebuilds mfad.db from them.
//
// Files in the state directory:
//
//	mfad.db                   bbolt, written without flushes while open
//	mfad.db.base.<gen>        the state at the last checkpoint, flushed
//	mfad.wal                  header slots, then records from walRecordsAt
//
// A header slot is magic, sequence, generation, end (the offset after the
// last record), the bbolt transaction id of mfad.db at a clean stop, a
// clean-stop flag and a CRC-32C. The two slots are written alternately, as
// bbolt writes its meta pages, so a torn header write leaves the other. A
// record is its payload's length, a CRC-32C over the generation and the
// payload, and the payload: operations (walOp*). The generation in the
// checksum makes records of an earlier generation, left further on in the
// reused file, end a replay.
//
// The clean flag says mfad.db was flushed at a clean stop and equals the
// base with the log's records applied; Open then uses it as it is (the
// start costs one header write), unless its transaction id shows a write
// that bypassed the log since (an older mfad, a dropped key check): then
// it takes a checkpoint first.

// WALFileName is the write-ahead log's name in the state directory.
const WALFileName = "mfad.wal"

const (
	baseFilePrefix = DBFileName + ".base."
	walMagic       = "mfadwal1"
	walSlotSize    = 512
	walRecordsAt   = 4096
	// walChunk is how far the log file is extended with zeros ahead of
	// its records, so that an append does not change the file's size and
	// its flush does not wait for the file system's journal.
	walChunk = 4 << 20
	// checkpointAt is the log's size at which the writer checkpoints: a
	// crash replays at most this much.
	checkpointAt = 32 << 20
	// maxRecord bounds one record: a larger length is damage, not a record.
	maxRecord = 1 << 30
)

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
	gen   uint64
	end   int64
	txid  uint64 // mfad.db's transaction id when clean
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
	if h.end < walRecordsAt || b[40] > 1 {
		return walHeader{}, false
	}
	return h, true
}

// wal is the open log. The writer's lock (Store.wmu) guards it.
type wal struct {
	f    *os.File
	dir  string
	head walHeader
	size int64 // the file's length: zeros beyond end
	buf  []byte
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
	w := &wal{f: f, dir: stateDir}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	w.size = fi.Size()
	return w, nil
}

// readHeader returns the newer valid header slot, errNoLog for a file
// whose header area was never written, and an error for one that was
// written and is damaged: mfad.db may then lack flushed changes, so the
// store does not open rather than serve an older state.
func (w *wal) readHeader() (walHeader, error) {
	var area [walRecordsAt]byte
	n, err := w.f.ReadAt(area[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return walHeader{}, err
	}
	if bytes.Count(area[:n], []byte{0}) == n {
		return walHeader{}, errNoLog
	}
	a, okA := decodeWALHeader(area[:walSlotSize])
	b, okB := decodeWALHeader(area[walSlotSize : 2*walSlotSize])
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
	at := int64(h.seq%2) * walSlotSize
	if _, err := w.f.WriteAt(slot[:], at); err != nil {
		return err
	}
	w.size = max(w.size, at+walSlotSize) // reserve's zeros start after it
	if err := syscall.Fdatasync(int(w.f.Fd())); err != nil {
		return err
	}
	w.head = h
	return nil
}

// reserve extends the file with zeros so that n more bytes fit after end.
func (w *wal) reserve(n int64) error {
	if w.head.end+n <= w.size {
		return nil
	}
	grow := max(walChunk, (w.head.end+n-w.size+walChunk-1)/walChunk*walChunk)
	if err := writeZeros(w.f, w.size, w.size+grow); err != nil {
		return err
	}
	w.size += grow
	return nil
}

// zeros is written, never changed: a page of the zero-filled data segment
// that costs no memory until then.
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

// append writes one record at the log's end and flushes it; the record
// holds the changes of one bbolt transaction, about to commit.
func (w *wal) append(payload []byte) error {
	n := int64(8 + len(payload))
	if err := w.reserve(n); err != nil {
		return err
	}
	w.buf = w.buf[:0]
	w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(len(payload)))
	w.buf = binary.LittleEndian.AppendUint32(w.buf, recordCRC(w.head.gen, payload))
	w.buf = append(w.buf, payload...)
	if _, err := w.f.WriteAt(w.buf, w.head.end); err != nil {
		return err
	}
	// The flush covers the file's new length too when reserve grew it.
	if err := syscall.Fdatasync(int(w.f.Fd())); err != nil {
		return err
	}
	w.head.end += n
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
// size). ok is false at the log's end: a zero or impossible length, a
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

func (w *wal) close() error { return w.f.Close() }

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

// recover rebuilds mfad.db from the base copy and the log after a stop
// that was not clean, and marks the log clean: mfad.db then equals the
// base with the records applied, flushed. It needs no key: records are
// the bytes bbolt was given, sealed where they were secret.
func (w *wal) recover() (replayed int, err error) {
	dbPath := filepath.Join(w.dir, DBFileName)
	tmp := dbPath + ".recover"
	os.Remove(tmp)
	if err := copyFile(baseName(w.dir, w.head.gen), tmp); err != nil {
		return 0, fmt.Errorf("store: recover from the write-ahead log: the base copy: %w", err)
	}
	defer os.Remove(tmp)
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second, NoSync: true, NoGrowSync: true})
	if err != nil {
		return 0, fmt.Errorf("store: recover from the write-ahead log: open the base copy: %w", err)
	}
	end := int64(walRecordsAt)
	for {
		var batch [][]byte
		size := 0
		for size < 8<<20 {
			payload, ok, err := nextRecord(w.f, end, w.size, w.head.gen)
			if err != nil {
				db.Close()
				return replayed, err
			}
			if !ok {
				break
			}
			batch = append(batch, payload)
			size += len(payload)
			end += int64(8 + len(payload))
		}
		if len(batch) == 0 {
			break
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
			db.Close()
			return replayed, fmt.Errorf("store: recover from the write-ahead log: record %d: %w", replayed+1, err)
		}
		replayed += len(batch)
	}
	var txid uint64
	db.View(func(btx *bolt.Tx) error { txid = uint64(btx.ID()); return nil })
	err = db.Sync()
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return replayed, err
	}
	if err := os.Rename(tmp, dbPath); err != nil {
		return replayed, err
	}
	if err := syncDir(w.dir); err != nil {
		return replayed, err
	}
	// What follows the last good record (a torn record, an earlier
	// generation's) is zeroed: the next append must not end where a longer
	// torn record's tail could read as one more.
	if err := writeZeros(w.f, end, w.size); err != nil {
		return replayed, err
	}
	h := w.head
	h.end, h.txid, h.clean = end, txid, true
	return replayed, w.writeHeader(h)
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

// checkpoint writes the database's current state as the next generation's
// base copy and starts that generation's log empty. The caller holds the
// writer's turn, so the state it copies is all the log has.
func (s *Store) checkpoint() error {
	w := s.wal
	gen := w.head.gen + 1
	path := baseName(w.dir, gen)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	err = fillDurably(f, func(f *os.File) error {
		return s.db.View(func(btx *bolt.Tx) error { _, err := btx.WriteTo(f); return err })
	})
	if err != nil {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if err := syncDir(w.dir); err != nil {
		return err
	}
	// Until this header is written, a recovery uses the previous base and
	// its whole log; after it, this base and an empty log.
	if err := w.writeHeader(walHeader{gen: gen, end: walRecordsAt}); err != nil {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	removeOtherBases(w.dir, gen)
	return nil
}

// maybeCheckpoint checkpoints once the log has passed checkpointAt. A
// failed checkpoint leaves the log growing and correct; it is tried again
// after another walChunk.
func (s *Store) maybeCheckpoint() {
	if s.wal.head.end < s.nextCheckpoint {
		return
	}
	if err := s.checkpoint(); err != nil {
		s.nextCheckpoint = s.wal.head.end + walChunk
		return
	}
	s.nextCheckpoint = checkpointAt
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
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

// dropLog empties the log (a log without a header is no log) and removes
// the base copies, flushed in that order.
func dropLog(stateDir string) error {
	err := os.Truncate(filepath.Join(stateDir, WALFileName), 0)
	if err != nil && !isNotExist(err) {
		return err
	}
	if err := syncDir(stateDir); err != nil {
		return err
	}
	removeOtherBases(stateDir, 0)
	return nil
}
