package store

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mfad/mfad/authn"
)

// raw returns a device's record and state record as stored.
func raw(t *testing.T, s *Store, account, id string) (rec, state []byte) {
	t.Helper()
	s.View(func(atx authn.Tx) error {
		x := atx.(*tx)
		if b := x.bucket(bktDevices).Bucket([]byte(account)); b != nil {
			rec = bytes.Clone(b.Get([]byte(id)))
		}
		state = bytes.Clone(x.bucket(bktDevState).Get(deviceStateKey(account, id)))
		return nil
	})
	return rec, state
}

func device(t *testing.T, s *Store, account, id string) *authn.Device {
	t.Helper()
	var d *authn.Device
	if err := s.View(func(atx authn.Tx) error {
		var err error
		d, err = atx.Device(account, id)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSignInWritesStateOnly: a write that changes only what a sign-in
// changes leaves the device's record (and its sealed secret) as it was and
// rewrites the state record; any other change rewrites the record.
func TestSignInWritesStateOnly(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	d := authn.Device{ID: "x", Account: "a", Type: authn.DeviceTOTP, State: authn.StateActive, CreatedAt: at("2026-01-02T03:04:05Z"),
		OTP: &authn.OTPState{Algorithm: "SHA1", Digits: 6, Period: 30}, Secret: []byte("12345678901234567890")}
	if err := s.Update(context.Background(), func(atx authn.Tx) error { return atx.PutDevice(&d) }); err != nil {
		t.Fatal(err)
	}
	rec0, st0 := raw(t, s, "a", "x")
	if rec0 == nil || st0 == nil {
		t.Fatalf("record %x, state %x: want both", rec0, st0)
	}
	// wroteRecord: the write's log record names the devices bucket.
	var wroteRecord bool
	signIn := func(change func(*authn.Device)) *authn.Device {
		t.Helper()
		var want *authn.Device
		if err := s.Update(context.Background(), func(atx authn.Tx) error {
			got, err := atx.Device("a", "x")
			if err != nil {
				return err
			}
			change(got)
			want = got
			if err := atx.PutDevice(got); err != nil {
				return err
			}
			wroteRecord = bytes.Contains(atx.(*tx).rec.ops, bktDevices)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return want
	}
	used := at("2026-01-03T04:05:06.123456789Z")
	want := signIn(func(d *authn.Device) {
		d.LastUsedAt, d.OTP.LastCounter, d.OTP.Used, d.OTP.Drift = used, 59000000, true, -1
		d.ResyncFailures, d.ResyncWindowStart = 2, used.Add(-time.Minute)
	})
	rec1, st1 := raw(t, s, "a", "x")
	if !bytes.Equal(rec1, rec0) || wroteRecord {
		t.Error("a sign-in's write rewrote the device's record")
	}
	if bytes.Equal(st1, st0) {
		t.Error("a sign-in's write left the state record as it was")
	}
	if len(st1) > 64 {
		t.Errorf("state record is %d bytes, want it small", len(st1))
	}
	equal(t, "device after sign-in", device(t, s, "a", "x"), want)

	want = signIn(func(d *authn.Device) { d.Label = "phone" })
	if rec2, _ := raw(t, s, "a", "x"); bytes.Equal(rec2, rec0) || !wroteRecord {
		t.Error("a new label left the record as it was")
	}
	equal(t, "device after relabel", device(t, s, "a", "x"), want)

	want = signIn(func(d *authn.Device) { d.Secret = []byte("another-secret-00000") })
	equal(t, "device after a new secret", device(t, s, "a", "x"), want)
}

// TestV3DevicesSplitWhenWritten: devices of a v3 database are read from
// their records alone, and written back split, to the same values.
func TestV3DevicesSplitWhenWritten(t *testing.T) {
	s, err := Open(fixtureState(t), fixtureKey(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, d := range fixtureDevices {
		if _, st := raw(t, s, d.Account, d.ID); st != nil {
			t.Fatalf("%s/%s has a state record before any write", d.Account, d.ID)
		}
	}
	if err := s.Update(context.Background(), func(atx authn.Tx) error {
		for _, d := range fixtureDevices {
			got, err := atx.Device(d.Account, d.ID)
			if err != nil {
				return err
			}
			if err := atx.PutDevice(got); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, want := range fixtureDevices {
		rec, st := raw(t, s, want.Account, want.ID)
		if st == nil {
			t.Errorf("%s/%s: no state record after a write", want.Account, want.ID)
		}
		var r deviceRecord
		if err := decode(rec, &r); err != nil {
			t.Fatal(err)
		}
		if s := takeState(&r); *s != (deviceStateRec{}) {
			t.Errorf("%s/%s: record still holds state %+v", want.Account, want.ID, s)
		}
		equal(t, "device "+want.ID, device(t, s, want.Account, want.ID), &want)
	}
}

// TestDeletesTakeStates: deleting a device or an account deletes their
// state records and no other account's, one whose name starts the same.
func TestDeletesTakeStates(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	put := func(account, id string) {
		d := authn.Device{ID: id, Account: account, Type: authn.DeviceTOTP, State: authn.StateActive,
			OTP: &authn.OTPState{Algorithm: "SHA1", Digits: 6, Period: 30, LastCounter: 7, Used: true}, Secret: []byte("s")}
		if err := s.Update(context.Background(), func(atx authn.Tx) error { return atx.PutDevice(&d) }); err != nil {
			t.Fatal(err)
		}
	}
	put("a", "1")
	put("a", "2")
	put("ab", "1")
	for _, k := range [][2]string{{"a", "1"}, {"a", "2"}, {"ab", "1"}} {
		device(t, s, k[0], k[1]) // cached
	}
	if err := s.Update(context.Background(), func(atx authn.Tx) error { return atx.DeleteDevice("a", "2") }); err != nil {
		t.Fatal(err)
	}
	if _, st := raw(t, s, "a", "2"); st != nil {
		t.Error("a deleted device's state record remains")
	}
	if _, ok := s.devices.m["a\x002"]; ok {
		t.Error("a deleted device stays in the cache")
	}
	if err := s.Update(context.Background(), func(atx authn.Tx) error {
		if err := atx.PutAccount(&authn.Account{Name: "a"}); err != nil {
			return err
		}
		return atx.DeleteAccount("a")
	}); err != nil {
		t.Fatal(err)
	}
	var keys []string
	s.View(func(atx authn.Tx) error {
		return atx.(*tx).bucket(bktDevState).ForEach(func(k, _ []byte) error { keys = append(keys, string(k)); return nil })
	})
	if want := []string{"ab\x001"}; !slices.Equal(keys, want) {
		t.Errorf("state records %q, want %q", keys, want)
	}
	device(t, s, "ab", "1")
	var cached []string
	for k := range s.devices.m {
		cached = append(cached, k)
	}
	if want := []string{"ab\x001"}; !slices.Equal(cached, want) {
		t.Errorf("cached devices %q, want %q", cached, want)
	}
	if d := device(t, s, "ab", "1"); d.OTP.LastCounter != 7 || !d.OTP.Used {
		t.Errorf("ab's device state = %+v", d.OTP)
	}
	// A device put again after its account was deleted in the same
	// transaction gets its record back.
	if err := s.Update(context.Background(), func(atx authn.Tx) error {
		d, err := atx.Device("ab", "1")
		if err != nil {
			return err
		}
		if err := atx.DeleteAccount("ab"); err != nil {
			return err
		}
		return atx.PutDevice(d)
	}); err != nil {
		t.Fatal(err)
	}
	if d := device(t, s, "ab", "1"); d.OTP.LastCounter != 7 {
		t.Errorf("device put again after its account's deletion = %+v", d.OTP)
	}
}

// TestDeviceCacheHandsOutCopies: what a caller does to a device it read
// reaches neither the cache nor the next reader, and a changed record is
// read anew.
func TestDeviceCacheHandsOutCopies(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	d := authn.Device{ID: "x", Account: "a", Type: authn.DeviceTOTP, State: authn.StateActive,
		OTP: &authn.OTPState{Algorithm: "SHA1", Digits: 6, Period: 30}, Secret: []byte("12345678901234567890")}
	if err := s.Update(context.Background(), func(atx authn.Tx) error { return atx.PutDevice(&d) }); err != nil {
		t.Fatal(err)
	}
	first := device(t, s, "a", "x")
	if len(s.devices.m) != 1 {
		t.Fatalf("cache holds %d entries after a read, want 1", len(s.devices.m))
	}
	first.OTP.Digits, first.Label = 8, "changed"
	first.Secret[0] = 'X'
	if again := device(t, s, "a", "x"); again.OTP.Digits != 6 || again.Label != "" || string(again.Secret) != "12345678901234567890" {
		t.Errorf("a caller's changes reached the cache: %+v %+v %q", again, again.OTP, again.Secret)
	}
	if err := s.Update(context.Background(), func(atx authn.Tx) error {
		got, err := atx.Device("a", "x")
		if err != nil {
			return err
		}
		got.Label, got.Secret = "phone", []byte("another-secret-00000")
		return atx.PutDevice(got)
	}); err != nil {
		t.Fatal(err)
	}
	if got := device(t, s, "a", "x"); got.Label != "phone" || string(got.Secret) != "another-secret-00000" {
		t.Errorf("read after a change = %q %q, want the new label and secret", got.Label, got.Secret)
	}
}

// TestDeviceCacheBounded: the cache stays within its size however many
// devices are read.
func TestDeviceCacheBounded(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	n := deviceCacheSize + 50
	if err := s.Update(context.Background(), func(atx authn.Tx) error {
		for i := range n {
			d := authn.Device{ID: fmt.Sprintf("%04x", i), Account: "a", Type: authn.DeviceTOTP, State: authn.StateActive,
				OTP: &authn.OTPState{Algorithm: "SHA1", Digits: 6, Period: 30}, Secret: []byte("s")}
			if err := atx.PutDevice(&d); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var got int
	s.View(func(atx authn.Tx) error {
		devs, err := atx.Devices("a")
		got = len(devs)
		return err
	})
	if got != n {
		t.Fatalf("read %d devices, want %d", got, n)
	}
	if len(s.devices.m) != deviceCacheSize {
		t.Errorf("cache holds %d entries, want %d", len(s.devices.m), deviceCacheSize)
	}
}

func randDeviceState(rng *rand.Rand) *deviceStateRec {
	s := &deviceStateRec{}
	pick := func() int64 { // zero (omitted), small, large, negative
		switch rng.IntN(4) {
		case 0:
			return 0
		case 1:
			return int64(rng.IntN(30))
		case 2:
			return rng.Int64()
		}
		return -rng.Int64N(1 << 40)
	}
	s.LastUsedAt, s.ResyncWindowStart, s.Drift = pick(), pick(), pick()
	s.ResyncFailures = int(pick())
	s.LastCounter, s.Used, s.SignCount = uint64(rng.Int64()>>rng.IntN(64)), rng.IntN(2) == 0, uint32(rng.Uint64()>>rng.IntN(64))
	if rng.IntN(5) == 0 {
		s.LastAssertion = &assertionRec{AuthData: []byte{1}, Signature: []byte{2}, ClientDataJSON: []byte("{}")}
	}
	return s
}

// TestDeviceStateCodecs: the hand encoder's records read back through the
// codec, and the hand decoder reads the codec's records, to equal values.
func TestDeviceStateCodecs(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 2000 {
		want := randDeviceState(rng)
		byHand, err := encodeDeviceState(want)
		if err != nil {
			t.Fatal(err)
		}
		var got deviceStateRec
		if err := decode(byHand, &got); err != nil || !reflect.DeepEqual(&got, want) {
			t.Fatalf("hand-encoded %x reads back %+v, %v; want %+v", byHand, got, err, want)
		}
		byCodec, _ := encode(want)
		if want.LastAssertion == nil && !bytes.Equal(byHand, byCodec) {
			t.Fatalf("hand encoder wrote %x, the codec %x", byHand, byCodec)
		}
		got = deviceStateRec{}
		if err := decodeDeviceState(byCodec, &got); err != nil || !reflect.DeepEqual(&got, want) {
			t.Fatalf("%x decodes to %+v, %v; want %+v", byCodec, got, err, want)
		}
	}
}

// FuzzDecodeDeviceState: whatever the hand decoder takes, the codec takes
// to the same value.
func FuzzDecodeDeviceState(f *testing.F) {
	rng := rand.New(rand.NewPCG(7, 8))
	for range 20 {
		b, _ := encode(randDeviceState(rng))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var byHand, byCodec deviceStateRec
		if !decodeOTPDeviceState(b, &byHand) {
			return
		}
		if err := decode(b, &byCodec); err != nil {
			t.Fatalf("the hand decoder read %x, which the codec refuses: %v", b, err)
		}
		if !reflect.DeepEqual(byHand, byCodec) {
			t.Fatalf("%x:\nhand  %+v\ncodec %+v", b, byHand, byCodec)
		}
	})
}

// TestCheckWantsDevStateFromV4: a backup of schema v4 without its devstate
// bucket is refused by name; one of v3, which never had it, passes.
func TestCheckWantsDevStateFromV4(t *testing.T) {
	if err := Check(fixtureBackup(t)); err != nil {
		t.Fatalf("v3 fixture: %v", err)
	}
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	var buf bytes.Buffer
	if _, err := s.WriteBackup(&buf); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(backup, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Check(backup); err != nil {
		t.Fatalf("whole v4 backup: %v", err)
	}
	db, err := bolt.Open(backup, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(btx *bolt.Tx) error { return btx.Bucket(bktRoot).DeleteBucket(bktDevState) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := Check(backup); err == nil || !strings.Contains(err.Error(), "lacks bucket devstate") {
		t.Fatalf("v4 backup without devstate: %v", err)
	}
}
