package main

// The ceiling: the least server that does a durable verification's work,
// so that mfad's throughput can be judged as a ratio to what this machine
// allows, measured in the same run (--ceiling). mfad-load runs it as a
// child process of its own binary (--serve-ceiling DIR), serving the same
// request and answer shapes as mfad on a Unix socket:
//
//   - HTTP/1.1 with net/http, the request decoded and the answer encoded
//     with encoding/json (api.Authenticate, api.AuthResult);
//   - the code matched against the token's secret over the same HOTP
//     look-ahead window as mfad's default policy (constant time, authn/totp);
//   - the replay state (the next counter the token may use) read, checked
//     and stored in the bbolt write transaction that accepts the code;
//   - one writer goroutine taking whatever queued while the previous commit
//     flushed (group commit, no timer), every commit flushed (fdatasync).
//
// With --ceiling-log it does what a store with a write-ahead log does, so
// that mfad with its log is compared with a ceiling paying the same
// costs: bbolt runs unsynced (NoSync), and each commit's puts are first
// appended as one record to ceiling.wal (preallocated, so that an append
// does not change the file's size) and fdatasync'ed. The log is never
// replayed: the ceiling starts afresh each run, it only pays for it.
//
// It has no accounts, policy, authorization, sealing, audit log or step-up
// tokens: what mfad spends on those is what the ratio measures.

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mfad/mfad/authn/totp"
	"github.com/mfad/mfad/ipc/api"
)

// ceilingLookAhead is mfad's default HOTP look-ahead (authn.Policy).
const ceilingLookAhead = 10

var bktTokens = []byte("tokens")

// ceiling is the minimal server.
type ceiling struct {
	db    *bolt.DB
	queue chan *ceilingCall
	done  chan struct{} // closed when the writer has stopped
	batch int
	p     totp.Params
	wal   *ceilingLog // nil without --ceiling-log
}

type ceilingCall struct {
	account, code string
	ok            chan bool
}

// ceilingOptions are the ceiling's knobs.
type ceilingOptions struct {
	maxBatch   int    // updates per commit at most
	logged     bool   // --ceiling-log: bbolt unsynced, a log record per commit
	logChunk   int64  // the log grows by this much; 0 means 4 MiB
	cpuProfile string // a CPU profile of the whole run is written here, if set
}

// ceilingLog is the write-ahead log of --ceiling-log.
type ceilingLog struct {
	f         *os.File
	fd        int   // f's, cached: f.Fd() on every commit would cost a lock
	off, size int64 // next record's offset; bytes preallocated
	chunk     int64
}

// The log's record: payload length and CRC-32C of the payload, each a
// little-endian uint32, then the payload; a zero length ends the log.
const ceilingLogHeader = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// serveCeiling serves dir/ceiling.sock until SIGTERM, with the tokens of
// dir/seeds ("account hex-secret" lines) at counter 0.
func serveCeiling(dir string, opts ceilingOptions) {
	c, err := openCeiling(dir, opts)
	if err != nil {
		fail("ceiling: %v", err)
	}
	sock := filepath.Join(dir, "ceiling.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		fail("ceiling: %v", err)
	}
	if opts.cpuProfile != "" {
		f, err := os.Create(opts.cpuProfile)
		if err != nil {
			fail("ceiling: %v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fail("ceiling: %v", err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	srv := &http.Server{Handler: c.handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		srv.Shutdown(context.Background())
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		fail("ceiling: %v", err)
	}
	c.close()
}

// openCeiling opens dir's database with the seeds' tokens and starts the
// writer.
func openCeiling(dir string, opts ceilingOptions) (*ceiling, error) {
	db, err := bolt.Open(filepath.Join(dir, "ceiling.db"), 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType,
		NoSync: opts.logged, NoGrowSync: opts.logged})
	if err != nil {
		return nil, err
	}
	c := &ceiling{db: db, queue: make(chan *ceilingCall), done: make(chan struct{}), batch: opts.maxBatch,
		p: totp.Params{Algorithm: totp.SHA1, Digits: 8, Period: 30 * time.Second}}
	if err := c.seed(filepath.Join(dir, "seeds")); err != nil {
		db.Close()
		return nil, fmt.Errorf("seeds: %w", err)
	}
	if opts.logged {
		// The seeds are not in the log: flush them as a store's setup would.
		if err := db.Sync(); err != nil {
			db.Close()
			return nil, err
		}
		chunk := opts.logChunk
		if chunk <= 0 {
			chunk = 4 << 20
		}
		if c.wal, err = openCeilingLog(filepath.Join(dir, "ceiling.wal"), chunk); err != nil {
			db.Close()
			return nil, err
		}
	}
	go c.writer()
	return c, nil
}

// seed stores the tokens of a seeds file at counter 0.
func (c *ceiling) seed(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return c.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bktTokens)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			account, secret, _ := strings.Cut(sc.Text(), " ")
			sec, err := hex.DecodeString(secret)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(account), binary.BigEndian.AppendUint64(sec, 0)); err != nil {
				return err
			}
		}
		return sc.Err()
	})
}

func (c *ceiling) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathInfo, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("{}"))
	})
	mux.HandleFunc("POST "+api.PathAuthenticate, c.authenticate)
	return mux
}

// close stops the writer and closes the files; the HTTP server must have
// stopped first (no request may be queueing).
func (c *ceiling) close() error {
	close(c.queue)
	<-c.done
	err := c.db.Close()
	if c.wal != nil {
		err = errors.Join(err, c.wal.f.Close())
	}
	return err
}

func (c *ceiling) authenticate(w http.ResponseWriter, r *http.Request) {
	var req api.Authenticate
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		http.Error(w, `{"code":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	call := &ceilingCall{account: req.Account, code: req.Code, ok: make(chan bool, 1)}
	c.queue <- call
	if !<-call.ok {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`{"code":"invalid_code","detail":"the code matches no token"}`))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(api.AuthResult{OK: true, Method: "device", Account: req.Account,
		Device: &api.DeviceRef{ID: req.Account, Type: "hardware-otp"}})
}

// writer is the single writer: it commits whatever queued while the
// previous commit flushed, in one transaction.
func (c *ceiling) writer() {
	defer close(c.done)
	record := make([]byte, ceilingLogHeader, 16<<10) // reused: one record per commit
	for first := range c.queue {
		batch := []*ceilingCall{first}
	drain:
		for len(batch) < c.batch {
			select {
			case x := <-c.queue:
				batch = append(batch, x)
			default:
				break drain
			}
		}
		oks := make([]bool, len(batch))
		err := c.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bktTokens)
			record = record[:ceilingLogHeader]
			for i, x := range batch {
				v := b.Get([]byte(x.account))
				if len(v) < 8 {
					continue
				}
				next := binary.BigEndian.Uint64(v[len(v)-8:])
				key := &totp.Key{Type: totp.HOTP, Secret: v[:len(v)-8], Params: c.p}
				ctr, ok := key.Match(x.code, totp.Forward(next, ceilingLookAhead))
				if !ok {
					continue
				}
				nv := binary.BigEndian.AppendUint64(append([]byte(nil), v[:len(v)-8]...), ctr+1)
				if err := b.Put([]byte(x.account), nv); err != nil {
					return err
				}
				if c.wal != nil {
					record = appendLogPut(record, []byte(x.account), nv)
				}
				oks[i] = true
			}
			// Logged and flushed before bbolt commits (unsynced): the
			// record is what makes the batch durable. A batch that
			// changed nothing has nothing to log.
			if c.wal != nil && len(record) > ceilingLogHeader {
				return c.wal.append(record)
			}
			return nil
		})
		for i, x := range batch {
			x.ok <- err == nil && oks[i]
		}
	}
}

// appendLogPut appends one put to a record's payload: the key and the
// value, each after its length (little-endian uint32).
func appendLogPut(record, key, value []byte) []byte {
	record = binary.LittleEndian.AppendUint32(record, uint32(len(key)))
	record = append(record, key...)
	record = binary.LittleEndian.AppendUint32(record, uint32(len(value)))
	return append(record, value...)
}

// openCeilingLog creates the log afresh with its first chunk.
func openCeilingLog(path string, chunk int64) (*ceilingLog, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	l := &ceilingLog{f: f, fd: int(f.Fd()), chunk: chunk}
	if err := l.grow(0); err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

// grow preallocates chunks of zeros until n more bytes fit, and flushes
// them: an append inside the file then changes no metadata, so that its
// fdatasync writes the record's blocks alone.
func (l *ceilingLog) grow(n int64) error {
	size := l.size + l.chunk
	for l.off+n > size {
		size += l.chunk
	}
	if _, err := l.f.WriteAt(make([]byte, size-l.size), l.size); err != nil {
		return err
	}
	if err := l.f.Sync(); err != nil {
		return err
	}
	l.size = size
	return nil
}

// append fills in record's header (its first ceilingLogHeader bytes),
// writes it at the log's end and flushes it.
func (l *ceilingLog) append(record []byte) error {
	payload := record[ceilingLogHeader:]
	binary.LittleEndian.PutUint32(record[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(record[4:8], crc32.Checksum(payload, castagnoli))
	if l.off+int64(len(record)) > l.size {
		if err := l.grow(int64(len(record))); err != nil {
			return err
		}
	}
	if _, err := l.f.WriteAt(record, l.off); err != nil {
		return err
	}
	if err := syscall.Fdatasync(l.fd); err != nil {
		return err
	}
	l.off += int64(len(record))
	return nil
}

// writeSeeds writes the tokens the ceiling serves.
func writeSeeds(dir string, seeds []tokenSeed) {
	var b strings.Builder
	for _, s := range seeds {
		fmt.Fprintf(&b, "%s %x\n", s.account, s.secret)
	}
	if err := os.WriteFile(filepath.Join(dir, "seeds"), []byte(b.String()), 0o600); err != nil {
		fail("%v", err)
	}
}
