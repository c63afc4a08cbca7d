package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/mfad/mfad/authn/totp"
	"github.com/mfad/mfad/ipc/api"
	"github.com/mfad/mfad/ipc/client"
)

// TestMain runs mfad-load's main instead of the tests when asked, so that
// a test can run the command (and the command its ceiling child).
func TestMain(m *testing.M) {
	if os.Getenv("MFAD_LOAD_TEST_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type loggedPut struct{ key, value []byte }

// readCeilingLog parses a ceiling log's records up to the first zero
// length, failing the test on a bad CRC or a torn record.
func readCeilingLog(t *testing.T, path string) (records [][]loggedPut, size int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off+ceilingLogHeader <= len(b); {
		n := int(binary.LittleEndian.Uint32(b[off:]))
		if n == 0 {
			break
		}
		if off+ceilingLogHeader+n > len(b) {
			t.Fatalf("record %d at %d: %d bytes overrun the file", len(records), off, n)
		}
		payload := b[off+ceilingLogHeader : off+ceilingLogHeader+n]
		if crc := binary.LittleEndian.Uint32(b[off+4:]); crc != crc32.Checksum(payload, castagnoli) {
			t.Fatalf("record %d at %d: bad CRC", len(records), off)
		}
		var puts []loggedPut
		for p := payload; len(p) > 0; {
			var kv [2][]byte
			for i := range kv {
				if len(p) < 4 || len(p)-4 < int(binary.LittleEndian.Uint32(p)) {
					t.Fatalf("record %d: torn put", len(records))
				}
				l := binary.LittleEndian.Uint32(p)
				kv[i], p = p[4:4+l], p[4+l:]
			}
			puts = append(puts, loggedPut{kv[0], kv[1]})
		}
		records = append(records, puts)
		off += ceilingLogHeader + n
	}
	return records, int64(len(b))
}

// With --ceiling-log, each group commit that accepts codes is one valid
// log record holding its puts, and bbolt, unsynced, holds the same.
func TestCeilingLogRecordsEachCommit(t *testing.T) {
	dir := t.TempDir()
	seeds := newSeeds(3)
	writeSeeds(dir, seeds)
	const chunk = 128 // less than a few records: the log must grow
	c, err := openCeiling(dir, ceilingOptions{maxBatch: 256, logged: true, logChunk: chunk})
	if err != nil {
		t.Fatal(err)
	}
	if !c.db.NoSync || !c.db.NoGrowSync {
		t.Error("bbolt syncs: the log is what makes a commit durable")
	}
	ln, err := net.Listen("unix", filepath.Join(dir, "ceiling.sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: c.handler()}
	go srv.Serve(ln)
	cl := &client.Client{Socket: ln.Addr().String()}
	op := otpOp(seeds, make([]uint64, len(seeds)))

	// One at a time: a commit, so a record, each.
	const sequential = 6
	for i := range sequential {
		if err := op(i%len(seeds), cl); err != nil {
			t.Fatalf("code %d: %v", i, err)
		}
	}
	// A refused code changes nothing, so is not logged.
	_, err = cl.Authenticate(context.Background(), api.Authenticate{Account: seeds[0].account,
		Code: totp.Code(seeds[0].secret, params, 1000)})
	if err == nil {
		t.Fatal("a code beyond the look-ahead was accepted")
	}
	// Concurrent codes share commits as they happen to.
	var wg sync.WaitGroup
	for w := range seeds {
		wg.Go(func() {
			cl := &client.Client{Socket: ln.Addr().String()}
			defer cl.Close()
			if err := op(w, cl); err != nil {
				t.Errorf("client %d: %v", w, err)
			}
		})
	}
	wg.Wait()
	cl.Close()
	srv.Shutdown(context.Background())
	if err := c.close(); err != nil {
		t.Fatal(err)
	}

	records, size := readCeilingLog(t, filepath.Join(dir, "ceiling.wal"))
	if size%chunk != 0 || size <= chunk {
		t.Errorf("log of %d bytes, want several %d-byte chunks", size, chunk)
	}
	accepted := sequential + len(seeds)
	if len(records) < sequential+1 || len(records) > accepted {
		t.Fatalf("%d log records for %d sequential and %d concurrent codes", len(records), sequential, len(seeds))
	}
	last := map[string][]byte{}
	puts := 0
	for i, r := range records {
		if i < sequential && (len(r) != 1 || string(r[0].key) != seeds[i%len(seeds)].account) {
			t.Errorf("record %d: %d puts, want the one of %s", i, len(r), seeds[i%len(seeds)].account)
		}
		for _, p := range r {
			last[string(p.key)] = p.value
			puts++
		}
	}
	if puts != accepted {
		t.Errorf("%d puts logged, want %d", puts, accepted)
	}

	db, err := bolt.Open(filepath.Join(dir, "ceiling.db"), 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		for _, s := range seeds {
			v := tx.Bucket(bktTokens).Get([]byte(s.account))
			// Three codes each (counters 0, 1, 2): the next is 3.
			if want := binary.BigEndian.AppendUint64(bytes.Clone(s.secret), 3); !bytes.Equal(v, want) {
				t.Errorf("%s: bbolt holds %x, want %x", s.account, v, want)
			}
			if !bytes.Equal(last[s.account], v) {
				t.Errorf("%s: last logged %x, bbolt %x", s.account, last[s.account], v)
			}
		}
		return nil
	})
}

// Without --ceiling-log the ceiling is as before: bbolt flushes each
// commit and there is no log.
func TestCeilingWithoutLog(t *testing.T) {
	dir := t.TempDir()
	writeSeeds(dir, newSeeds(1))
	c, err := openCeiling(dir, ceilingOptions{maxBatch: 256})
	if err != nil {
		t.Fatal(err)
	}
	if c.db.NoSync {
		t.Error("bbolt unsynced without a log")
	}
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ceiling.wal")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a log without --ceiling-log: %v", err)
	}
}

// --ceiling-log reaches the ceiling child mfad-load starts, and names it
// in reports.
func TestSetupCeilingPassesTheLogOn(t *testing.T) {
	// The child is this test binary: have it run main.
	t.Setenv("MFAD_LOAD_TEST_RUN_MAIN", "1")
	tg := setupCeiling("group", 2, true)
	defer tg.stop()
	if tg.name != "ceiling (log)" {
		t.Errorf("named %q, want ceiling (log)", tg.name)
	}
	cl := &client.Client{Socket: tg.sock}
	defer cl.Close()
	for i := range 4 {
		if err := tg.op(i%2, cl); err != nil {
			t.Fatalf("code %d: %v", i, err)
		}
	}
	if records, _ := readCeilingLog(t, filepath.Join(tg.dir, "ceiling.wal")); len(records) != 4 {
		t.Errorf("%d log records for 4 sequential codes", len(records))
	}
}

func TestCeilingLogNeedsCeiling(t *testing.T) {
	cmd := exec.Command(os.Args[0], "--ceiling-log", "--clients", "1")
	cmd.Env = append(os.Environ(), "MFAD_LOAD_TEST_RUN_MAIN=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("--ceiling-log without --ceiling: %v, want exit status 1", err)
	}
	if !strings.Contains(stderr.String(), "--ceiling-log") || !strings.Contains(stderr.String(), "needs --ceiling") {
		t.Errorf("stderr %q does not say --ceiling-log needs --ceiling", stderr.String())
	}
	if stdout.Len() > 0 {
		t.Errorf("measured anyway: %q", stdout.String())
	}
}
