package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mfad/mfad/authn"
)

// dumpDB is every bucket path, key, value and bucket sequence in the
// database file at path, as lines, for comparing two databases key by key.
func dumpDB(t *testing.T, path string) []string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer db.Close()
	return dumpTx(t, db)
}

func dumpTx(t *testing.T, db *bolt.DB) []string {
	var out []string
	var walk func(prefix string, b *bolt.Bucket)
	walk = func(prefix string, b *bolt.Bucket) {
		out = append(out, fmt.Sprintf("%s seq=%d", prefix, b.Sequence()))
		b.ForEach(func(k, v []byte) error {
			if v == nil {
				walk(prefix+"/"+string(k), b.Bucket(k))
				return nil
			}
			out = append(out, fmt.Sprintf("%s %x=%x", prefix, k, v))
			return nil
		})
	}
	err := db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error { walk(string(name), b); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// assertRecovers recovers the state directory dir and compares its
// database with want.
func assertRecovers(t *testing.T, dir string, want []string) {
	t.Helper()
	if _, err := RecoverLog(dir, time.Second); err != nil {
		t.Fatal(err)
	}
	equal(t, "recovered database", dumpDB(t, filepath.Join(dir, DBFileName)), want)
}

// liveDump is the open store's state.
func liveDump(t *testing.T, s *Store) []string { return dumpTx(t, s.db) }

// crashCopy copies the state directory's files as a crash would leave
// them (the store stays open: no Close, no clean flag), then scrambles
// the copy's mfad.db the way a power loss may: what it holds was never
// flushed, so recovery must not read it.
func crashCopy(t testing.TB, dir string) string {
	t.Helper()
	to := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == DBFileName {
			for i := range b {
				b[i] ^= 0x5a
			}
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

// everyWrite changes the store through every write authn.Tx and Store
// have, so that a write added without the log's recording shows as a
// difference after recovery.
func everyWrite(t *testing.T, s *Store, round int) {
	t.Helper()
	ctx := context.Background()
	acct := fmt.Sprintf("acct%d", round)
	err := s.Update(ctx, func(tx authn.Tx) error {
		if err := tx.PutAccount(&authn.Account{Name: acct, Email: acct + "@example.org"}); err != nil {
			return err
		}
		for i := range 3 {
			if err := tx.PutDevice(&authn.Device{Account: acct, ID: fmt.Sprint("d", i), Secret: []byte(fmt.Sprintf("secret%d%d", round, i))}); err != nil {
				return err
			}
		}
		if err := tx.PutToken(&authn.Token{Serial: fmt.Sprint("T", round), Secret: []byte("tok")}); err != nil {
			return err
		}
		return tx.AppendAudit(&authn.AuditEvent{Action: "test", Account: acct})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx, func(tx authn.Tx) error {
		if err := tx.DeleteDevice(acct, "d1"); err != nil {
			return err
		}
		if round%2 == 1 {
			if err := tx.DeleteToken(fmt.Sprint("T", round-1)); err != nil {
				return err
			}
			if err := tx.DeleteAccount(fmt.Sprintf("acct%d", round-1)); err != nil {
				return err
			}
		}
		for range 3 {
			if err := tx.AppendAudit(&authn.AuditEvent{Action: "more", Account: acct}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveBlob(fmt.Sprint("blob", round), []byte("state")); err != nil {
		t.Fatal(err)
	}
	if round%2 == 1 {
		if err := s.DeleteBlob(fmt.Sprint("blob", round-1)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.SetMetaOnce(fmt.Sprint("setting", round), "v"); err != nil {
		t.Fatal(err)
	}
}

func TestCrashRecoversEveryCommittedWrite(t *testing.T) {
	dir := t.TempDir()
	// Retention 4, trimmed 2 at a time: the audit log's pruning is logged too.
	s := openTest(t, dir, Options{AuditRetention: 4, AuditTrimEvery: 2})
	for round := range 6 {
		everyWrite(t, s, round)
	}
	want := liveDump(t, s)
	crashed := crashCopy(t, dir)

	n, err := RecoverLog(crashed, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no record replayed")
	}
	equal(t, "recovered database", dumpDB(t, filepath.Join(crashed, DBFileName)), want)

	// The recovered directory opens, and its log is clean: a second
	// recovery replays nothing.
	if n, err := RecoverLog(crashed, time.Second); err != nil || n != 0 {
		t.Fatalf("second recovery: %d records, %v", n, err)
	}
	s2 := openTest(t, crashed, Options{})
	var devs []authn.Device
	s2.View(func(tx authn.Tx) error { devs, err = tx.Devices("acct5"); return err })
	if err != nil || len(devs) != 2 || string(devs[0].Secret) != "secret50" {
		t.Fatalf("recovered devices of acct5: %+v, %v", devs, err)
	}
}

func TestOpenRecoversWithoutLoadKey(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	everyWrite(t, s, 0)
	want := liveDump(t, s)
	crashed := crashCopy(t, dir)
	s2 := openTest(t, crashed, Options{})
	equal(t, "database after Open", liveDump(t, s2), want)
}

func TestTornAndStaleRecordsEndTheReplay(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	everyWrite(t, s, 0)
	everyWrite(t, s, 1)
	before := liveDump(t, s)
	end := s.wal.end
	everyWrite(t, s, 2)
	crashed := crashCopy(t, dir)

	// The first record after `before` torn half way: it and all after it
	// were never acknowledged, and the replay stops at it.
	f, err := os.OpenFile(recordsName(crashed, s.wal.gen), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var head [8]byte
	f.ReadAt(head[:], end)
	n := int64(binary.LittleEndian.Uint32(head[:4]))
	f.WriteAt(make([]byte, n/2), end+8+n/2)
	f.Close()
	if _, err := RecoverLog(crashed, time.Second); err != nil {
		t.Fatal(err)
	}
	equal(t, "database recovered before the torn record", dumpDB(t, filepath.Join(crashed, DBFileName)), before)

	// Two checkpoints on, the file is reused from its start: the records
	// of two generations before, still further on, are not replayed.
	s.wmu.Lock()
	err = errors.Join(s.checkpoint(), s.checkpoint())
	s.wmu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Update(ctx, func(tx authn.Tx) error { return tx.DeleteAccount("acct2") }); err != nil {
		t.Fatal(err)
	}
	want := liveDump(t, s)
	crashed = crashCopy(t, dir)
	if n, err := RecoverLog(crashed, time.Second); err != nil || n != 1 {
		t.Fatalf("after a checkpoint: %d records replayed (want 1), %v", n, err)
	}
	equal(t, "database recovered after a checkpoint", dumpDB(t, filepath.Join(crashed, DBFileName)), want)
	if bases, _ := filepath.Glob(filepath.Join(dir, baseFilePrefix+"*")); len(bases) != 1 {
		t.Fatalf("base copies after a checkpoint: %v", bases)
	}
}

func TestCheckpointInterruptedBeforeItsHeader(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	everyWrite(t, s, 0)
	// A checkpoint cut short after its new base but before the header:
	// the previous base and its whole log still recover everything.
	s.wmu.Lock()
	if err := copyFile(filepath.Join(dir, DBFileName), baseName(dir, s.wal.head.gen+1)); err != nil {
		t.Fatal(err)
	}
	s.wmu.Unlock()
	everyWrite(t, s, 1)
	want := liveDump(t, s)
	crashed := crashCopy(t, dir)
	assertRecovers(t, crashed, want)
	s2 := openTest(t, crashed, Options{})
	s2.Close()
	if bases, _ := filepath.Glob(filepath.Join(crashed, baseFilePrefix+"*")); len(bases) != 1 {
		t.Fatalf("base copies after recovery and open: %v", bases)
	}
}

func TestCleanStopOpensWithoutReplay(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	everyWrite(t, s, 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	w, err := openWAL(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	h, err := w.readHeader()
	w.close()
	if err != nil || !h.clean || h.end == 0 {
		t.Fatalf("header after Close: %+v, %v", h, err)
	}
	gen := h.gen

	// Reopened clean: the same generation goes on, and a crash after more
	// writes recovers those from before the stop as well.
	s = openTest(t, dir, Options{})
	if s.wal.head.gen != gen || s.wal.head.clean {
		t.Fatalf("header after a clean open: %+v (generation was %d)", s.wal.head, gen)
	}
	everyWrite(t, s, 1)
	want := liveDump(t, s)
	crashed := crashCopy(t, dir)
	assertRecovers(t, crashed, want)
}

// A write to mfad.db that bypassed the log while mfad was stopped (an
// older mfad, a dropped key check) must reach the base before the log's
// records apply to it.
func TestWriteBypassingTheLogIsCheckpointed(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	everyWrite(t, s, 0)
	s.Close()
	db, err := bolt.Open(filepath.Join(dir, DBFileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bktRoot).Bucket(bktMeta).Put([]byte("outside"), []byte("the log"))
	})
	db.Close()
	s = openTest(t, dir, Options{})
	everyWrite(t, s, 1)
	want := liveDump(t, s)
	crashed := crashCopy(t, dir)
	if _, err := RecoverLog(crashed, time.Second); err != nil {
		t.Fatal(err)
	}
	got := dumpDB(t, filepath.Join(crashed, DBFileName))
	equal(t, "recovered database", got, want)
	if !strings.Contains(strings.Join(got, "\n"), fmt.Sprintf("%x=%x", "outside", "the log")) {
		t.Fatal("the write made outside the log is lost")
	}
}

func TestKeyRotationSurvivesACrash(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := LoadKey(dir); err != nil {
		t.Fatal(err)
	}
	key, _, _ := LoadKey(dir)
	s, err := Open(dir, key, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	everyWrite(t, s, 0)
	everyWrite(t, s, 1)
	if _, err := s.RotateKey(filepath.Join(dir, KeyFileName)); err != nil {
		t.Fatal(err)
	}
	everyWrite(t, s, 2)
	want := liveDump(t, s)
	crashed := crashCopy(t, dir)
	newKey, _, err := LoadKey(crashed)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "recovered database", dumpDB(t, filepath.Join(crashed, DBFileName)), want)
	s2, err := Open(crashed, newKey, Options{})
	if err != nil {
		t.Fatalf("open the recovered rotated database with the new key: %v", err)
	}
	defer s2.Close()
	var devs []authn.Device
	s2.View(func(tx authn.Tx) error { devs, err = tx.Devices("acct1"); return err })
	if err != nil || len(devs) != 2 {
		t.Fatalf("devices sealed before the rotation, after recovery: %+v, %v", devs, err)
	}
}

func TestDamagedHeaderRefusesToOpen(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	everyWrite(t, s, 0)
	crashed := crashCopy(t, dir)
	f, _ := os.OpenFile(filepath.Join(crashed, WALFileName), os.O_RDWR, 0)
	f.WriteAt(bytes.Repeat([]byte{0xff}, 2*walSlotSize), 0)
	f.Close()
	_, err := Open(crashed, testKey(), Options{LockTimeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "header is damaged") {
		t.Fatalf("Open with both header slots damaged: %v", err)
	}
}

// A crash while a checkpoint writes its header: the new base is in place,
// its header slot torn, the older slot still names the previous base and
// its log, which recover everything.
func TestTornCheckpointHeaderLeavesTheOlderSlot(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	everyWrite(t, s, 0)
	want := liveDump(t, s)
	crashed := crashCopy(t, dir)
	if err := copyFile(filepath.Join(dir, DBFileName), baseName(crashed, s.wal.head.gen+1)); err != nil {
		t.Fatal(err)
	}
	torn := walHeader{seq: s.wal.head.seq + 1, gen: s.wal.head.gen + 1}.encode()
	torn[len(torn)-1] ^= 1
	f, _ := os.OpenFile(filepath.Join(crashed, WALFileName), os.O_RDWR, 0)
	f.WriteAt(torn, int64((s.wal.head.seq+1)%2)*walSlotSize)
	f.Close()
	assertRecovers(t, crashed, want)
}

func TestSecondStoreOnTheDirectoryIsLockedOut(t *testing.T) {
	dir := t.TempDir()
	openTest(t, dir, Options{})
	if _, err := RecoverLog(dir, 50*time.Millisecond); !errors.Is(err, ErrLocked) {
		t.Fatalf("recovery while a store is open: %v", err)
	}
}

func TestRestoreDropsTheLog(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	everyWrite(t, s, 0)
	backup := filepath.Join(t.TempDir(), "backup.db")
	f, _ := os.Create(backup)
	if _, err := s.WriteBackup(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	want := liveDump(t, s)
	everyWrite(t, s, 1) // in the log, and not in the backup
	crashed := crashCopy(t, dir)
	if _, err := Restore(backup, crashed, RestoreOptions{Key: testKey()}); err != nil {
		t.Fatal(err)
	}
	s2 := openTest(t, crashed, Options{})
	equal(t, "database after restore and open", liveDump(t, s2), want)
}

func TestLogHoldsNoSecretInTheClear(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	secret := []byte("TOPSECRETSEEDVALUE42")
	err := s.Update(context.Background(), func(t authn.Tx) error {
		return t.PutDevice(&authn.Device{ID: "x", Account: "a", Secret: secret})
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(recordsName(dir, s.wal.gen))
	if !bytes.Contains(raw, []byte("devices")) {
		t.Fatal("the log does not hold the update")
	}
	if bytes.Contains(raw, secret) {
		t.Fatal("the write-ahead log holds the secret in the clear")
	}
}

// FuzzLogReplay reads arbitrary bytes as a log's records and applies
// whatever checks out: never a panic, and what a valid prefix holds is
// applied or refused with an error.
func FuzzLogReplay(f *testing.F) {
	rec := &walRecord{}
	w := wbucket{path: [][]byte{bktRoot, bktMeta}, rec: rec}
	rec.path(walOpPut, w.path)
	rec.bytes([]byte("k"))
	rec.bytes([]byte("v"))
	rec.path(walOpCreateBucket, [][]byte{bktRoot, bktDevices, []byte("a")})
	rec.path(walOpSetSequence, [][]byte{bktRoot, bktAudit})
	rec.ops = binary.AppendUvarint(rec.ops, 7)
	rec.path(walOpDelete, w.path)
	rec.bytes([]byte("k"))
	rec.path(walOpDeleteBucket, [][]byte{bktRoot, bktDevices, []byte("a")})
	var file []byte
	file = binary.LittleEndian.AppendUint32(file, uint32(len(rec.ops)))
	file = binary.LittleEndian.AppendUint32(file, recordCRC(1, rec.ops))
	file = append(file, rec.ops...)
	f.Add(file)
	f.Add(file[:len(file)-3])
	f.Add([]byte{0, 0, 0, 0})
	f.Add(append(binary.LittleEndian.AppendUint32(nil, 3), 0, 0, 0, 0, walOpDeleteBucket, 0, 0))

	db, err := bolt.Open(filepath.Join(f.TempDir(), "fuzz.db"), 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	f.Fuzz(func(t *testing.T, file []byte) {
		r := bytes.NewReader(file)
		btx, err := db.Begin(true)
		if err != nil {
			t.Fatal(err)
		}
		defer btx.Rollback()
		for off := int64(0); ; {
			payload, ok, err := nextRecord(r, off, int64(len(file)), 1)
			if err != nil || !ok {
				break
			}
			off += int64(8 + len(payload))
			applyRecord(btx, payload)
		}
		// The payload parser on its own, whatever the checksum says.
		applyRecord(btx, file)
	})
}

// A record of an earlier generation right after the last record, aligned
// as if the reused file held it there, is not replayed.
func TestEarlierGenerationRecordIsNotReplayed(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	everyWrite(t, s, 0)
	s.wmu.Lock()
	err := s.checkpoint()
	s.wmu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	everyWrite(t, s, 1)
	want := liveDump(t, s)
	crashed := crashCopy(t, dir)

	stale := &walRecord{}
	stale.path(walOpPut, [][]byte{bktRoot, bktMeta})
	stale.bytes([]byte("stale"))
	stale.bytes([]byte("record"))
	var rec []byte
	rec = binary.LittleEndian.AppendUint32(rec, uint32(len(stale.ops)))
	rec = binary.LittleEndian.AppendUint32(rec, recordCRC(s.wal.gen-2, stale.ops))
	rec = append(rec, stale.ops...)
	f, _ := os.OpenFile(recordsName(crashed, s.wal.gen), os.O_RDWR, 0)
	f.WriteAt(rec, s.wal.end)
	f.Close()
	assertRecovers(t, crashed, want)
}

// A crash after a recovery: the records the first recovery replayed are
// still the log's, and the second recovery replays them with the new ones.
func TestCrashAfterRecovery(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	everyWrite(t, s, 0)
	first := crashCopy(t, dir)
	s2 := openTest(t, first, Options{})
	everyWrite(t, s2, 1)
	want := liveDump(t, s2)
	second := crashCopy(t, first)
	if _, err := RecoverLog(second, time.Second); err != nil {
		t.Fatal(err)
	}
	equal(t, "database after two crashes", dumpDB(t, filepath.Join(second, DBFileName)), want)
}

// BenchmarkCheckpoint is the writers' pause a checkpoint causes, on the
// store of the start target (10,000 accounts with 3 devices each) with a
// full audit log (100,000 entries).
func BenchmarkCheckpoint(b *testing.B) {
	dir := b.TempDir()
	s, err := Open(dir, testKey(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for i := range 100 {
		err := s.Update(ctx, func(tx authn.Tx) error {
			for j := range 100 {
				name := fmt.Sprintf("user%05d", i*100+j)
				if err := tx.PutAccount(&authn.Account{Name: name, Email: name + "@example.org"}); err != nil {
					return err
				}
				for d := range 3 {
					if err := tx.PutDevice(&authn.Device{Account: name, ID: fmt.Sprint("dev", d), Secret: bytes.Repeat([]byte{byte(d)}, 20)}); err != nil {
						return err
					}
				}
				for range 10 {
					if err := tx.AppendAudit(&authn.AuditEvent{Action: "signin", Outcome: "ok", Account: name, Device: "dev0"}); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		s.wmu.Lock()
		err := s.checkpoint()
		s.wmu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
	}
	fi, _ := os.Stat(baseName(dir, s.wal.head.gen))
	b.ReportMetric(float64(fi.Size())/(1<<20), "MB-base")
}

// A checkpoint runs beside the writers: while its base copy is being
// written, commits go on into the next generation's file, and a crash
// then recovers the old base with both generations' records.
func TestCheckpointInTheBackground(t *testing.T) {
	defer func(at int64) { checkpointAt = at }(checkpointAt)
	checkpointAt = 1 // every commit, when none is under way
	held, release := make(chan struct{}), make(chan struct{})

	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	var releaseOnce sync.Once
	releaseAll := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(releaseAll) // before Close, which waits for the checkpoint, if the test fails
	s.wmu.Lock()
	s.checkpointHook = func() { held <- struct{}{}; <-release }
	s.wmu.Unlock()
	gen := s.wal.head.gen
	everyWrite(t, s, 0) // its first commit starts the checkpoint
	<-held
	everyWrite(t, s, 1) // done while the checkpoint waits
	if s.wal.gen != gen+1 || s.wal.head.gen != gen {
		t.Fatalf("during the checkpoint: commits to generation %d, header at %d (was %d)", s.wal.gen, s.wal.head.gen, gen)
	}
	want := liveDump(t, s)
	crashed := crashCopy(t, dir)
	n, err := RecoverLog(crashed, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "recovered mid-checkpoint", dumpDB(t, filepath.Join(crashed, DBFileName)), want)
	if n < 5 {
		t.Fatalf("recovered mid-checkpoint from %d records: both generations' are wanted", n)
	}
	// That recovery made its result the base of the generation after.
	s2 := openTest(t, crashed, Options{})
	everyWrite(t, s2, 2)
	s2.checkpoints.Wait() // a copy of the files is a crash's only between steps
	want2 := liveDump(t, s2)
	assertRecovers(t, crashCopy(t, crashed), want2)

	s.wmu.Lock()
	s.checkpointHook = nil
	s.wmu.Unlock()
	releaseAll()
	s.checkpoints.Wait()
	if s.wal.head.gen != gen+1 {
		t.Fatalf("after the checkpoint: header at generation %d, want %d", s.wal.head.gen, gen+1)
	}
	if _, err := os.Stat(baseName(dir, gen)); !isNotExist(err) {
		t.Fatalf("the previous base copy is still there: %v", err)
	}
	everyWrite(t, s, 3)
	s.checkpoints.Wait()
	assertRecovers(t, crashCopy(t, dir), liveDump(t, s))
}

// BenchmarkRecover is a start after a crash with a log about as long as a
// checkpoint lets it grow: 32 MB of records over 10,000 accounts, each
// record a sign-in's changes (a device record and an audit entry).
func BenchmarkRecover(b *testing.B) {
	dir := b.TempDir()
	s, err := Open(dir, testKey(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for i := 0; s.wal.end < checkpointAt-(1<<20); i++ {
		err := s.Update(ctx, func(tx authn.Tx) error {
			for j := range 100 {
				name := fmt.Sprintf("user%05d", (i*100+j)%10000)
				if err := tx.PutDevice(&authn.Device{Account: name, ID: "dev0", Label: "phone", Secret: bytes.Repeat([]byte{1}, 20)}); err != nil {
					return err
				}
				if err := tx.AppendAudit(&authn.AuditEvent{Action: "signin", Outcome: "ok", Account: name, Device: "dev0"}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	logged := s.wal.end
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		crashed := crashCopy(b, dir)
		b.StartTimer()
		if _, err := RecoverLog(crashed, time.Second); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(logged)/(1<<20), "MB-log")
}

// A checkpoint that fails in the background leaves both generations'
// records recoverable, and the writer checkpoints in its turn later.
func TestFailedCheckpointIsRecoverableAndRetried(t *testing.T) {
	defer func(at int64) { checkpointAt = at }(checkpointAt)
	checkpointAt = 1
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	gen := s.wal.head.gen
	// The base copies' temporary names taken by directories: writing them
	// fails, in the background (gen+1) and in the writer's retry (gen+2).
	for _, g := range []uint64{gen + 1, gen + 2} {
		if err := os.MkdirAll(filepath.Join(baseName(dir, g)+".tmp", "x"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	everyWrite(t, s, 0)
	s.checkpoints.Wait()
	if !s.checkpointFailed.Load() || s.wal.head.gen != gen || s.wal.gen != gen+1 {
		t.Fatalf("after a failed checkpoint: failed %v, header %d, commits to %d (was %d)",
			s.checkpointFailed.Load(), s.wal.head.gen, s.wal.gen, gen)
	}
	everyWrite(t, s, 1)
	s.checkpoints.Wait()
	assertRecovers(t, crashCopy(t, dir), liveDump(t, s))

	if s.checkpointRetryAt == 0 {
		t.Fatal("a failed retry in the writer's turn did not put off the next one")
	}
	for _, g := range []uint64{gen + 1, gen + 2} {
		os.RemoveAll(baseName(dir, g) + ".tmp")
	}
	s.wmu.Lock()
	s.checkpointRetryAt = 0 // rather than write another walChunk
	s.wmu.Unlock()
	everyWrite(t, s, 2)
	s.checkpoints.Wait()
	if s.checkpointFailed.Load() || s.wal.head.gen <= gen+1 {
		t.Fatalf("the retried checkpoint: failed %v, header at generation %d (was %d)", s.checkpointFailed.Load(), s.wal.head.gen, gen)
	}
	assertRecovers(t, crashCopy(t, dir), liveDump(t, s))
}
