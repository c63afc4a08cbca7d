package postgres

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mfad/mfad/authn"
)

// floor is this host's own memory of the highest counters it accepted, in
// a small bbolt file of the state directory. Devices read from the
// database are raised to it, so a database restored to an older point
// (or otherwise set back) does not make this host accept a code, or a
// security key's signature count, it had already seen.
//
// A raise takes effect in memory at once (this host's next reads see it)
// and reaches the file in the background, within floorEvery, in one
// commit for whatever accumulated meanwhile, so that no sign-in waits for
// the file's fsync and a busy host does not spend a flush on each one:
// the database already holds the counter durably, and the floor matters
// only once the database has lost it. A host crashing within that moment
// and a database restored to before it is a double failure the floor does
// not cover. Close writes what is pending.
type floor struct {
	db    *bolt.DB
	mu    sync.RWMutex
	m     map[string]floorVal
	dirty map[string]bool
	kick  chan struct{}
	quit  chan struct{}
	done  chan struct{}
}

type floorVal struct {
	counter   uint64 // OTP LastCounter (used)
	signCount uint32 // FIDO signature count
}

var (
	bktFloor = []byte("floor")
	bktMeta  = []byte("meta") // the database's mfad_meta as this host last read it
)

func floorKey(account, id string) string { return account + "\x00" + id }

func openFloor(path string) (*floor, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 3 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("store: counter floor %s: %w", path, err)
	}
	// The offline cache's writes batch what arrives together without
	// waiting for more (bbolt's default waits 10 ms).
	db.MaxBatchDelay = 0
	f := &floor{db: db, m: map[string]floorVal{}, dirty: map[string]bool{},
		kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bktFloor)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			if len(v) == 12 {
				f.m[string(k)] = floorVal{binary.BigEndian.Uint64(v), binary.BigEndian.Uint32(v[8:])}
			}
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: counter floor %s: %w", path, err)
	}
	go f.flusher()
	return f, nil
}

func (f *floor) close() error {
	close(f.quit)
	<-f.done
	return f.db.Close()
}

// floorEvery is the least time between two writes of the floor's file.
const floorEvery = 100 * time.Millisecond

// flusher writes raised values to the file, batching what accumulates
// while a commit runs and in the floorEvery after it.
func (f *floor) flusher() {
	defer close(f.done)
	pause := time.NewTimer(0)
	defer pause.Stop()
	for {
		select {
		case <-f.kick:
		case <-f.quit:
			f.flush()
			return
		}
		select {
		case <-pause.C:
		case <-f.quit:
			f.flush()
			return
		}
		f.flush()
		pause.Reset(floorEvery)
	}
}

func (f *floor) flush() {
	f.mu.Lock()
	vals := make(map[string]floorVal, len(f.dirty))
	for k := range f.dirty {
		vals[k] = f.m[k]
	}
	clear(f.dirty)
	f.mu.Unlock()
	if len(vals) == 0 {
		return
	}
	err := f.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktFloor)
		for k, v := range vals {
			buf := binary.BigEndian.AppendUint64(nil, v.counter)
			if err := b.Put([]byte(k), binary.BigEndian.AppendUint32(buf, v.signCount)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		// Kept in memory; written with the next raise or at close.
		f.mu.Lock()
		for k := range vals {
			f.dirty[k] = true
		}
		f.mu.Unlock()
	}
}

// apply raises d's counters to the floor.
func (f *floor) apply(d *authn.Device) {
	if f == nil {
		return
	}
	f.mu.RLock()
	v, ok := f.m[floorKey(d.Account, d.ID)]
	f.mu.RUnlock()
	if !ok {
		return
	}
	if o := d.OTP; o != nil && v.counter > 0 && (!o.Used || o.LastCounter < v.counter) {
		o.LastCounter, o.Used = max(o.LastCounter, v.counter), true
	}
	if k := d.FIDO; k != nil && k.SignCount < v.signCount {
		k.SignCount = v.signCount
	}
}

// floorOf returns what d would raise the floor to.
func floorOf(d *authn.Device) (floorVal, bool) {
	var v floorVal
	if d.OTP != nil && d.OTP.Used {
		v.counter = d.OTP.LastCounter
	}
	if d.FIDO != nil {
		v.signCount = d.FIDO.SignCount
	}
	return v, v.counter > 0 || v.signCount > 0
}

// raise records committed counters (maxima; never lowers): in memory at
// once, in the file soon after.
func (f *floor) raise(vals map[string]floorVal) error {
	if f == nil || len(vals) == 0 {
		return nil
	}
	f.mu.Lock()
	changed := false
	for k, v := range vals {
		cur := f.m[k]
		n := floorVal{max(cur.counter, v.counter), max(cur.signCount, v.signCount)}
		if n != cur {
			f.m[k], f.dirty[k], changed = n, true, true
		}
	}
	f.mu.Unlock()
	if changed {
		select {
		case f.kick <- struct{}{}:
		default: // a flush is due already
		}
	}
	return nil
}

// meta returns the fleet's setting key as this host last read it.
func (f *floor) meta(key string) (string, bool) {
	if f == nil {
		return "", false
	}
	var v []byte
	f.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bktMeta); b != nil {
			v = append([]byte(nil), b.Get([]byte(key))...)
		}
		return nil
	})
	return string(v), v != nil
}

// setMeta keeps the fleet's setting key as read from the database,
// writing only when it changed. A failed write only leaves the copy older.
func (f *floor) setMeta(key, value string) {
	if cur, ok := f.meta(key); f == nil || (ok && cur == value) {
		return
	}
	f.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bktMeta)
		if err != nil {
			return err
		}
		return b.Put([]byte(key), []byte(value))
	})
}
