package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mfad/mfad/authn"
)

func testKey() []byte { return bytes.Repeat([]byte{7}, KeySize) }

func openTest(t *testing.T, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, testKey(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSecretsSealedOnDisk(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	secret := []byte("TOPSECRETSEEDVALUE42")
	err := s.Update(context.Background(), func(t authn.Tx) error {
		if err := t.PutDevice(&authn.Device{ID: "x", Account: "a", Secret: secret}); err != nil {
			return err
		}
		return t.PutToken(&authn.Token{Serial: "S1", Secret: secret})
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	raw, err := os.ReadFile(filepath.Join(dir, DBFileName))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, secret) {
		t.Fatal("database file holds the secret in the clear")
	}
	// A sealed value moved to another record must not open.
	s2 := openTest(t, dir, Options{})
	sealed := s2.keys.Load().cur.seal(secret, deviceAD("a", "x"))
	if _, err := s2.keys.Load().cur.open(sealed, deviceAD("a", "y")); err == nil {
		t.Fatal("sealed secret opened under another record's path")
	}
	// Another master key cannot read it, nor open the database.
	if err := s2.View(func(atx authn.Tx) error {
		raw := atx.(*tx).bucket(bktDevices).Bucket([]byte("a")).Get([]byte("x"))
		var rec deviceRecord
		if err := decode(raw, &rec); err != nil {
			return err
		}
		other, _ := newSealer(bytes.Repeat([]byte{9}, KeySize))
		if _, err := other.open(rec.Sealed, deviceAD("a", "x")); err == nil {
			t.Error("device secret opened under the wrong master key")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s2.Close()
	if _, err := Open(dir, bytes.Repeat([]byte{9}, KeySize), Options{}); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("open under the wrong master key: %v, want ErrWrongKey", err)
	}
}

func TestGroupCommitSharesFlushesAndIsolatesFailures(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Update(ctx, func(t authn.Tx) error {
				if i%8 == 0 {
					_ = t.PutAccount(&authn.Account{Name: fmt.Sprintf("bad%d", i)})
					return fmt.Errorf("refused %d", i)
				}
				return t.PutAccount(&authn.Account{Name: fmt.Sprintf("u%d", i)})
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if (i%8 == 0) != (err != nil) {
			t.Errorf("update %d: err = %v", i, err)
		}
	}
	s.View(func(tx authn.Tx) error {
		accts, _ := tx.Accounts()
		if len(accts) != 56 {
			t.Errorf("got %d accounts, want 56 (failed updates must leave nothing)", len(accts))
		}
		return nil
	})
	commits, updates := s.Stats()
	if updates != 56 || commits == 0 || commits > updates {
		t.Errorf("stats: %d commits for %d updates", commits, updates)
	}
}

// A lone update commits on its caller's goroutine (no committer goroutine
// to wake and switch to and back); one that finds a commit in progress
// queues and shares the next.
func TestLoneUpdateCommitsOnItsCaller(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	ctx := context.Background()
	onCaller := func() bool {
		pc := make([]uintptr, 64)
		frames := runtime.CallersFrames(pc[:runtime.Callers(1, pc)])
		for {
			f, more := frames.Next()
			if strings.HasSuffix(f.Function, "store.(*Store).Update") {
				return true
			}
			if !more {
				return false
			}
		}
	}
	var inline bool
	if err := s.Update(ctx, func(t authn.Tx) error {
		inline = onCaller()
		return t.PutAccount(&authn.Account{Name: "alone"})
	}); err != nil {
		t.Fatal(err)
	}
	if !inline {
		t.Error("a lone update was handed to the committer goroutine")
	}
	// While one update's commit holds the writer's turn, another queues
	// and is committed after it, by someone else.
	started, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- s.Update(ctx, func(t authn.Tx) error {
			close(started)
			<-release
			return t.PutAccount(&authn.Account{Name: "first"})
		})
	}()
	<-started
	second := make(chan bool, 1)
	go func() {
		var by bool
		err := s.Update(ctx, func(t authn.Tx) error {
			by = onCaller()
			return t.PutAccount(&authn.Account{Name: "second"})
		})
		if err != nil {
			t.Error(err)
		}
		second <- by
	}()
	time.Sleep(20 * time.Millisecond) // let the second one queue (either way, the outcome is checked below)
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	<-second
	s.View(func(tx authn.Tx) error {
		for _, n := range []string{"alone", "first", "second"} {
			if _, err := tx.Account(n); err != nil {
				t.Errorf("account %s: %v", n, err)
			}
		}
		return nil
	})
}

// Updates racing Close either commit (and are on disk after) or get
// ErrClosed; none is lost after a success, and Close does not hang.
func TestUpdatesRacingClose(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, testKey(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 64)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Update(ctx, func(t authn.Tx) error {
				return t.PutAccount(&authn.Account{Name: fmt.Sprintf("u%d", i)})
			})
		}()
	}
	time.Sleep(time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := s.Update(ctx, func(authn.Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("update after Close: %v, want ErrClosed", err)
	}
	s = openTest(t, dir, Options{})
	s.View(func(tx authn.Tx) error {
		for i, err := range errs {
			_, gone := tx.Account(fmt.Sprintf("u%d", i))
			switch {
			case err == nil && gone != nil:
				t.Errorf("update %d succeeded but is not on disk: %v", i, gone)
			case err != nil && !errors.Is(err, ErrClosed):
				t.Errorf("update %d: %v, want success or ErrClosed", i, err)
			}
		}
		return nil
	})
}

func TestSecondOpenTimesOutWithClearError(t *testing.T) {
	dir := t.TempDir()
	openTest(t, dir, Options{})
	_, err := Open(dir, testKey(), Options{LockTimeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
}

func TestBackupCheckRestore(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	if err := s.Update(context.Background(), func(t authn.Tx) error {
		return t.PutAccount(&authn.Account{Name: "carol"})
	}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := s.WriteBackup(&buf); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "backup.db")
	os.WriteFile(backup, buf.Bytes(), 0o600)
	if err := Check(backup); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(backup, dir, RestoreOptions{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("restore into a live state dir: %v, want ErrLocked", err)
	}
	junk := filepath.Join(t.TempDir(), "junk.db")
	os.WriteFile(junk, bytes.Repeat([]byte("x"), 8192), 0o600)
	if err := Check(junk); err == nil {
		t.Fatal("junk file passed the check")
	}
	target := t.TempDir()
	if _, err := Restore(junk, target, RestoreOptions{}); err == nil {
		t.Fatal("junk restored")
	}
	if _, err := Restore(backup, target, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	s2 := openTest(t, target, Options{})
	if err := s2.View(func(tx authn.Tx) error { _, err := tx.Account("carol"); return err }); err != nil {
		t.Fatalf("restored database lacks the account: %v", err)
	}
}

func TestLoadKeyCreatesPrivateFileAndRefusesLooseMode(t *testing.T) {
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	dir := t.TempDir()
	k1, p, err := LoadKey(dir)
	if err != nil || len(k1) != KeySize {
		t.Fatal(err)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v", st.Mode().Perm())
	}
	k2, _, err := LoadKey(dir)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatal("key not stable across loads")
	}
	os.Chmod(p, 0o644)
	if _, _, err := LoadKey(dir); err == nil {
		t.Fatal("world-readable key accepted")
	}
	cred := t.TempDir()
	os.WriteFile(filepath.Join(cred, KeyFileName), []byte(fmt.Sprintf("%x\n", bytes.Repeat([]byte{1}, KeySize))), 0o400)
	t.Setenv("CREDENTIALS_DIRECTORY", cred)
	k3, _, err := LoadKey(dir)
	if err != nil || !bytes.Equal(k3, bytes.Repeat([]byte{1}, KeySize)) {
		t.Fatalf("credential key: %x %v", k3, err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bktRoot).Put(keySchema, []byte{0, 0, 0, 99})
	})
	s.Close()
	if _, err := Open(dir, testKey(), Options{}); err == nil {
		t.Fatal("opened a database with a newer schema")
	}
}

func BenchmarkGroupCommit(b *testing.B) {
	s, err := Open(b.TempDir(), testKey(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			s.Update(context.Background(), func(t authn.Tx) error {
				return t.PutAccount(&authn.Account{Name: fmt.Sprint("u", i%100)})
			})
		}
	})
	c, u := s.Stats()
	b.ReportMetric(float64(u)/float64(max(c, 1)), "updates/commit")
}

func TestBlobsSealedAndMigratedFromV1(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	// Turn the database back into a v1 one: no blobs bucket, schema 1.
	s.db.Update(func(tx *bolt.Tx) error {
		root := tx.Bucket(bktRoot)
		root.DeleteBucket(bktBlobs)
		return root.Put(keySchema, []byte{0, 0, 0, 1})
	})
	s.Close()
	s2 := openTest(t, dir, Options{})
	if err := s2.SaveBlob("emulator/k1", []byte("KEYSTATE-PLAINTEXT")); err != nil {
		t.Fatalf("v1 database not migrated: %v", err)
	}
	got, err := s2.LoadBlob("emulator/k1")
	if err != nil || string(got) != "KEYSTATE-PLAINTEXT" {
		t.Fatalf("LoadBlob = %q, %v", got, err)
	}
	if none, err := s2.LoadBlob("emulator/none"); none != nil || err != nil {
		t.Fatalf("absent blob: %q %v", none, err)
	}
	s2.Close()
	raw, _ := os.ReadFile(filepath.Join(dir, DBFileName))
	if bytes.Contains(raw, []byte("KEYSTATE-PLAINTEXT")) {
		t.Fatal("blob stored in the clear")
	}
}

// TestMigrateJSONRecordsToCBOR: a schema v2 database (JSON records) opens
// as v3 with every record re-encoded and readable.
func TestMigrateJSONRecordsToCBOR(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	secret := []byte("01234567890123456789")
	acct := authn.Account{Name: "jo", Kind: authn.KindOwner, Email: "jo@example.org", Flags: []string{"disabled"}}
	dev := authn.Device{ID: "d1", Account: "jo", Type: authn.DeviceTOTP, State: authn.StateActive,
		OTP: &authn.OTPState{Algorithm: "SHA1", Digits: 6, Period: 30, LastCounter: 42, Used: true, Drift: -2}}
	err := s.db.Update(func(tx *bolt.Tx) error {
		root := tx.Bucket(bktRoot)
		put := func(b *bolt.Bucket, k string, v any) {
			j, _ := json.Marshal(v)
			b.Put([]byte(k), j)
		}
		put(root.Bucket(bktAccounts), "jo", &acct)
		db, _ := root.Bucket(bktDevices).CreateBucketIfNotExists([]byte("jo"))
		// v2's device record: the device's JSON and its sealed secret.
		put(db, "d1", struct {
			*authn.Device
			Sealed []byte `json:"sealed_secret,omitempty"`
		}{&dev, s.keys.Load().cur.seal(secret, deviceAD("jo", "d1"))})
		put(root.Bucket(bktAudit), "\x00\x00\x00\x00\x00\x00\x00\x01", &authn.AuditEvent{Seq: 1, Action: "account.create", Account: "jo"})
		// A v2 database had no key-check value.
		root.Bucket(bktMeta).Delete(metaKeyCheck)
		return root.Put(keySchema, []byte{0, 0, 0, 2})
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Before migrating, the key is told by a JSON record's sealed secret.
	if err := VerifyKey(filepath.Join(dir, DBFileName), testKey()); err != nil {
		t.Fatal(err)
	}
	if err := VerifyKey(filepath.Join(dir, DBFileName), bytes.Repeat([]byte{8}, KeySize)); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("another key on a v2 database: %v", err)
	}
	s2 := openTest(t, dir, Options{})
	s2.View(func(tx authn.Tx) error {
		a, err := tx.Account("jo")
		if err != nil || a.Email != acct.Email || !a.HasFlag("disabled") {
			t.Errorf("account after migration: %+v %v", a, err)
		}
		d, err := tx.Device("jo", "d1")
		if err != nil || *d.OTP != *dev.OTP || !bytes.Equal(d.Secret, secret) {
			t.Errorf("device after migration: %+v %v", d, err)
		}
		ev, err := tx.Audit(0, 10)
		if err != nil || len(ev) != 1 || ev[0].Action != "account.create" {
			t.Errorf("audit after migration: %+v %v", ev, err)
		}
		return nil
	})
}

// The audit log only appends: its pages are written full, not split in
// half as for random inserts (which would double its size on disk and
// in memory).
func TestAuditPagesAreFilled(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	defer s.Close()
	for range 100 {
		err := s.Update(context.Background(), func(tx authn.Tx) error {
			for range 50 {
				if err := tx.AppendAudit(&authn.AuditEvent{Action: authn.ActAuthenticate, Account: "alice", Device: "0123456789abcdef", Outcome: "ok"}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	s.db.View(func(btx *bolt.Tx) error {
		st := btx.Bucket(bktRoot).Bucket(bktAudit).Stats()
		if fill := float64(st.LeafInuse) / float64(st.LeafAlloc); st.LeafPageN < 10 || fill < 0.8 {
			t.Errorf("audit log: %d leaf pages %.0f%% full, want them nearly full", st.LeafPageN, 100*fill)
		}
		return nil
	})
}

// Entries beyond the retention are dropped AuditTrimEvery at a time,
// oldest first, so that most commits leave the log's oldest page alone;
// the log never holds fewer than the retention nor trimEvery more.
func TestAuditTrimmedInSteps(t *testing.T) {
	const retention, trimEvery = 100, 32
	s := openTest(t, t.TempDir(), Options{AuditRetention: retention, AuditTrimEvery: trimEvery})
	first := uint64(1)
	for n := uint64(1); n <= 500; n++ {
		err := s.Update(context.Background(), func(tx authn.Tx) error {
			return tx.AppendAudit(&authn.AuditEvent{Action: authn.ActAuthenticate, Account: "alice", Outcome: "ok"})
		})
		if err != nil {
			t.Fatal(err)
		}
		if n > retention && n-retention-first+1 >= trimEvery {
			first = n - retention + 1
		}
		s.View(func(tx authn.Tx) error {
			ev, err := tx.Audit(0, 1000)
			if err != nil || uint64(len(ev)) != n-first+1 || ev[0].Seq != first || ev[len(ev)-1].Seq != n {
				t.Fatalf("after %d appends: %d entries from %d, %v; want %d from %d", n, len(ev), ev[0].Seq, err, n-first+1, first)
			}
			return nil
		})
	}
	if first == 1 {
		t.Fatal("nothing was ever trimmed")
	}
}
