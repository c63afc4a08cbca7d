package postgres

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/authn/store"
)

// OfflineOptions say what a host may verify alone while the database is
// out of reach.
type OfflineOptions struct {
	// FIDO lets security keys of accounts seen recently on this host sign
	// in offline: their credentials are public keys, cached locally.
	FIDO bool
	// OTP lets TOTP/HOTP devices that signed in on this host sign in
	// offline: their secrets, sealed under the master key, are cached too.
	// A code accepted offline here may also be accepted by a host online
	// until this host reconnects: off unless asked for.
	OTP bool
	// MaxAge is how long a cached account stays usable offline after it
	// was last read from the database (default 30 days).
	MaxAge time.Duration
}

// CodeStoreOffline is the refusal of what needs the database while it is
// out of reach: every change, every code sign-in, any account not cached.
const CodeStoreOffline = "store_offline"

func errOffline(what string) error {
	return &authn.Error{Class: authn.ClassUnavailable, Code: CodeStoreOffline,
		Detail: "the fleet's database is out of reach: " + what + " needs it (security keys of accounts seen recently on this host still sign in)"}
}

var (
	bktCacheAccounts = []byte("cache_accounts")
	bktCacheDevices  = []byte("cache_devices")
	bktQueue         = []byte("queue")
	bktCacheOthers   = []byte("cache_others") // account -> how many of its devices are not cached
	bktCacheSealed   = []byte("cache_sealed") // device key -> its OTP secret, sealed
)

// cache is the local copy of what this host may verify alone (accounts
// seen recently and their security keys' public keys and counters) and
// the durable queue of what it did offline, replayed on reconnect.
type cache struct {
	db    *bolt.DB
	floor *floor
	rec   *store.Records
	opts  OfflineOptions
	now   func() time.Time

	mu      sync.Mutex
	written map[string]string // key -> record last written, to skip unchanged writes
	replay  sync.Mutex
}

func newCache(fl *floor, rec *store.Records, opts OfflineOptions, now func() time.Time) (*cache, error) {
	db := fl.db
	if opts.MaxAge == 0 {
		opts.MaxAge = 30 * 24 * time.Hour
	}
	err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bktCacheAccounts, bktCacheDevices, bktQueue, bktCacheOthers, bktCacheSealed} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &cache{db: db, floor: fl, rec: rec, opts: opts, now: now, written: map[string]string{}}, nil
}

// cacheable says whether d is kept for offline sign-ins: a security key,
// or an OTP device that signed in on this host (signedHere).
func (c *cache) cacheable(d *authn.Device, signedHere bool) bool {
	if d.Type == authn.DeviceFIDO {
		return c.opts.FIDO && d.FIDO != nil
	}
	return c.opts.OTP && d.OTP != nil && d.Secret != nil && signedHere
}

// isWritten says whether this process cached device k.
func (c *cache) isWritten(k string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.written["d/"+k] != ""
}

// seen is what one online transaction read or wrote that the cache keeps.
type seen struct {
	accounts map[string]*authn.Account
	devices  map[string]*authn.Device // floorKey -> device
	listed   map[string]bool          // accounts whose whole device list was read
	gone     map[string]bool          // floorKey or account name removed
	put      map[string]bool          // devices this transaction wrote
}

func (s *seen) account(a *authn.Account) {
	if s.accounts == nil {
		s.accounts = map[string]*authn.Account{}
	}
	cp := *a
	s.accounts[a.Name] = &cp
}

func (s *seen) device(d *authn.Device) {
	if s.devices == nil {
		s.devices = map[string]*authn.Device{}
	}
	cp := *d
	s.devices[floorKey(d.Account, d.ID)] = &cp
}

// wrote records a device the transaction wrote (a sign-in on this host).
func (s *seen) wrote(d *authn.Device) {
	s.device(d)
	if s.put == nil {
		s.put = map[string]bool{}
	}
	s.put[floorKey(d.Account, d.ID)] = true
}

func (s *seen) remove(key string) {
	if s.gone == nil {
		s.gone = map[string]bool{}
	}
	s.gone[key] = true
}

func stamp(t time.Time, rec []byte) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano())), rec...)
}

func unstamp(v []byte) (time.Time, []byte, bool) {
	if len(v) < 8 {
		return time.Time{}, nil, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(v))), v[8:], true
}

// save writes what an online transaction saw. Unchanged records seen
// within the last hour are not written again.
func (c *cache) save(sn *seen) {
	if sn == nil || (len(sn.accounts) == 0 && len(sn.devices) == 0 && len(sn.gone) == 0 && len(sn.listed) == 0) {
		return
	}
	now := c.now()
	type put struct {
		bkt  []byte
		key  string
		val  []byte
		memo string
	}
	var puts []put
	hour := now.Truncate(time.Hour).String()
	c.mu.Lock()
	for name, a := range sn.accounts {
		rec, err := c.rec.EncodeAccount(a)
		if err != nil {
			continue
		}
		memo := hour + string(rec)
		if c.written["a/"+name] != memo {
			puts = append(puts, put{bktCacheAccounts, name, stamp(now, rec), memo})
		}
	}
	for k, d := range sn.devices {
		if !c.cacheable(d, sn.put[k] || c.written["d/"+k] != "") {
			continue
		}
		rec, sealed, err := c.rec.EncodeDevice(d)
		if err != nil {
			continue
		}
		memo := hour + string(rec)
		if c.written["d/"+k] != memo {
			puts = append(puts, put{bktCacheDevices, k, stamp(now, rec), memo})
			if sealed != nil {
				puts = append(puts, put{bktCacheSealed, k, sealed, ""})
			}
		}
	}
	c.mu.Unlock()
	// A device list read whole replaces the cached one (what another host
	// deleted goes here too): only where it differs, found without writing.
	dirty := map[string]uint32{}
	c.db.View(func(tx *bolt.Tx) error {
		for name := range sn.listed {
			others := uint32(0)
			for k, d := range sn.devices {
				if d.Account == name && !c.cacheable(d, sn.put[k] || c.isWritten(k)) {
					others++
				}
			}
			v := tx.Bucket(bktCacheOthers).Get([]byte(name))
			stale := len(v) != 4 || binary.BigEndian.Uint32(v) != others
			cur := tx.Bucket(bktCacheDevices).Cursor()
			prefix := name + "\x00"
			for k, _ := cur.Seek([]byte(prefix)); !stale && k != nil && strings.HasPrefix(string(k), prefix); k, _ = cur.Next() {
				_, stale = sn.devices[string(k)]
				stale = !stale
			}
			if stale {
				dirty[name] = others
			}
		}
		return nil
	})
	if len(puts) == 0 && len(sn.gone) == 0 && len(dirty) == 0 {
		return
	}
	err := c.db.Batch(func(tx *bolt.Tx) error {
		accts, devs := tx.Bucket(bktCacheAccounts), tx.Bucket(bktCacheDevices)
		for name, others := range dirty {
			if err := tx.Bucket(bktCacheOthers).Put([]byte(name), binary.BigEndian.AppendUint32(nil, others)); err != nil {
				return err
			}
			cur := devs.Cursor()
			prefix := []byte(name + "\x00")
			for k, _ := cur.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, _ = cur.Next() {
				if _, ok := sn.devices[string(k)]; !ok {
					if err := tx.Bucket(bktCacheSealed).Delete(k); err != nil {
						return err
					}
					if err := cur.Delete(); err != nil {
						return err
					}
				}
			}
		}
		for k := range sn.gone {
			if !strings.Contains(k, "\x00") {
				if err := tx.Bucket(bktCacheOthers).Delete([]byte(k)); err != nil {
					return err
				}
			}
			if strings.Contains(k, "\x00") {
				if err := devs.Delete([]byte(k)); err != nil {
					return err
				}
				if err := tx.Bucket(bktCacheSealed).Delete([]byte(k)); err != nil {
					return err
				}
				continue
			}
			if err := accts.Delete([]byte(k)); err != nil {
				return err
			}
			cur := devs.Cursor()
			for dk, _ := cur.Seek([]byte(k + "\x00")); dk != nil && strings.HasPrefix(string(dk), k+"\x00"); dk, _ = cur.Next() {
				if err := tx.Bucket(bktCacheSealed).Delete(dk); err != nil {
					return err
				}
				if err := cur.Delete(); err != nil {
					return err
				}
			}
		}
		for _, p := range puts {
			if err := tx.Bucket(p.bkt).Put([]byte(p.key), p.val); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return // the cache only lags: the next sign-in writes it again
	}
	c.mu.Lock()
	for _, p := range puts {
		switch string(p.bkt) {
		case string(bktCacheAccounts):
			c.written["a/"+p.key] = p.memo
		case string(bktCacheDevices):
			c.written["d/"+p.key] = p.memo
		}
	}
	for k := range sn.gone {
		delete(c.written, "a/"+k)
		delete(c.written, "d/"+k)
	}
	c.mu.Unlock()
}

// queued is one offline outcome waiting for the database.
type queued struct {
	// A device's new counter state (security keys).
	Account        string                 `json:"account,omitempty"`
	Device         string                 `json:"device,omitempty"`
	SignCount      uint32                 `json:"sign_count,omitempty"`
	LastUsedAt     time.Time              `json:"last_used_at,omitzero"`
	PossiblyCloned bool                   `json:"possibly_cloned,omitempty"`
	LastAssertion  *authn.SignedAssertion `json:"last_assertion,omitempty"`
	// Or a TOTP/HOTP device's counter state.
	OTP         bool   `json:"otp,omitempty"`
	LastCounter uint64 `json:"last_counter,omitempty"`
	Drift       int64  `json:"drift,omitempty"`
	// Or an audit entry, with its original time.
	Audit *authn.AuditEvent `json:"audit,omitempty"`
}

// offlineTx serves authn from the cache: reads of cached accounts and
// their security keys, and the writes of a security key's sign-in (its
// counter, last use, the audit entry). Everything else is store_offline.
type offlineTx struct {
	c      *cache
	btx    *bolt.Tx
	write  bool
	err    error
	devs   map[string]*authn.Device // staged device writes
	events []*authn.AuditEvent
	// partial: a device list read lacks devices that are not cached (an
	// OTP device's secret never is), so "no such device" is not an answer.
	partial bool
}

func (t *offlineTx) refuse(what string) error {
	err := errOffline(what)
	if t.err == nil {
		t.err = err
	}
	return err
}

func (t *offlineTx) fresh(v []byte) ([]byte, bool) {
	at, rec, ok := unstamp(v)
	return rec, ok && t.c.now().Sub(at) <= t.c.opts.MaxAge
}

func (t *offlineTx) Account(name string) (*authn.Account, error) {
	rec, ok := t.fresh(t.btx.Bucket(bktCacheAccounts).Get([]byte(name)))
	if !ok {
		return nil, t.refuse("an account not seen recently on this host")
	}
	return t.c.rec.DecodeAccount(rec)
}

func (t *offlineTx) Devices(account string) ([]authn.Device, error) {
	if _, err := t.Account(account); err != nil {
		return nil, err
	}
	if v := t.btx.Bucket(bktCacheOthers).Get([]byte(account)); len(v) == 4 && binary.BigEndian.Uint32(v) > 0 {
		t.partial = true
	}
	var out []authn.Device
	cur := t.btx.Bucket(bktCacheDevices).Cursor()
	prefix := account + "\x00"
	for k, v := cur.Seek([]byte(prefix)); k != nil && strings.HasPrefix(string(k), prefix); k, v = cur.Next() {
		if d, ok := t.devs[string(k)]; ok {
			out = append(out, *d)
			continue
		}
		rec, ok := t.fresh(v)
		if !ok {
			continue
		}
		d, err := t.decode(k, rec)
		if err != nil {
			return nil, err
		}
		out = append(out, *d)
	}
	return out, nil
}

func (t *offlineTx) ActiveOTPDevices(account string) ([]authn.Device, int, error) {
	devs, err := t.Devices(account)
	otps, active := authn.ActiveOTP(devs)
	return otps, active, err
}

func (t *offlineTx) Device(account, id string) (*authn.Device, error) {
	if d, ok := t.devs[floorKey(account, id)]; ok {
		cp := *d
		return &cp, nil
	}
	key := []byte(floorKey(account, id))
	rec, ok := t.fresh(t.btx.Bucket(bktCacheDevices).Get(key))
	if !ok {
		return nil, t.refuse("a device not cached on this host")
	}
	return t.decode(key, rec)
}

// decode opens a cached device (with its sealed secret, if any) and
// raises it to the host's floor.
func (t *offlineTx) decode(key, rec []byte) (*authn.Device, error) {
	var sealed []byte
	if v := t.btx.Bucket(bktCacheSealed).Get(key); v != nil {
		sealed = append([]byte(nil), v...)
	}
	d, err := t.c.rec.DecodeDevice(rec, sealed)
	if err == nil {
		t.c.floor.apply(d)
	}
	return d, err
}

func (t *offlineTx) PutAccount(a *authn.Account) error {
	cur, err := t.Account(a.Name)
	if err != nil {
		return err
	}
	next := *a
	next.UpdatedAt = cur.UpdatedAt
	if !reflect.DeepEqual(&next, cur) {
		return t.refuse("changing an account (failures, lockouts, settings)")
	}
	return nil
}

// signInOnly clears what a sign-in may change: a security key's count
// and last assertion, an OTP device's counter and drift, the last use.
func signInOnly(d authn.Device) authn.Device {
	d.LastUsedAt, d.Secret = time.Time{}, nil
	if d.FIDO != nil {
		f := *d.FIDO
		f.SignCount, f.PossiblyCloned, f.LastAssertion = 0, false, nil
		d.FIDO = &f
	}
	if d.OTP != nil {
		o := *d.OTP
		o.LastCounter, o.Used, o.Drift = 0, false, 0
		d.OTP = &o
	}
	return d
}

func (t *offlineTx) PutDevice(d *authn.Device) error {
	if !t.write {
		return t.refuse("a write in a read transaction")
	}
	cur, err := t.Device(d.Account, d.ID)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(signInOnly(*d), signInOnly(*cur)) {
		return t.refuse("changing a device")
	}
	if t.devs == nil {
		t.devs = map[string]*authn.Device{}
	}
	cp := *d
	t.devs[floorKey(d.Account, d.ID)] = &cp
	return nil
}

func (t *offlineTx) AppendAudit(e *authn.AuditEvent) error {
	if !t.write {
		return t.refuse("a write in a read transaction")
	}
	cp := *e
	t.events = append(t.events, &cp)
	return nil
}

func (t *offlineTx) Accounts() ([]authn.Account, error) { return nil, t.refuse("listing accounts") }
func (t *offlineTx) DeleteAccount(string) error         { return t.refuse("deleting an account") }
func (t *offlineTx) DeleteDevice(string, string) error  { return t.refuse("deleting a device") }
func (t *offlineTx) Token(string) (*authn.Token, error) { return nil, t.refuse("the token inventory") }
func (t *offlineTx) Tokens() ([]authn.Token, error)     { return nil, t.refuse("the token inventory") }
func (t *offlineTx) PutToken(*authn.Token) error        { return t.refuse("the token inventory") }
func (t *offlineTx) DeleteToken(string) error           { return t.refuse("the token inventory") }
func (t *offlineTx) Audit(uint64, int) ([]authn.AuditEvent, error) {
	return nil, t.refuse("reading the audit log")
}

// run serves fn from the cache; a write commits to the cache and the
// queue in one durable transaction.
func (c *cache) run(fn func(authn.Tx) error, write bool, fl *floor) error {
	var staged *offlineTx
	do := c.db.View
	if write {
		do = c.db.Update
	}
	err := do(func(btx *bolt.Tx) error {
		t := &offlineTx{c: c, btx: btx, write: write}
		staged = t
		err := safeCall(fn, t)
		var ae *authn.Error
		switch {
		case t.err != nil:
			return t.err
		case err != nil && t.partial && errors.As(err, &ae) && ae.Code == authn.CodeNoActiveDevice:
			return errOffline("signing in with a code")
		case err != nil:
			return err
		case !write:
			return nil
		}
		q := btx.Bucket(bktQueue)
		now := c.now()
		for k, d := range t.devs {
			rec, _, err := c.rec.EncodeDevice(d)
			if err != nil {
				return err
			}
			if err := btx.Bucket(bktCacheDevices).Put([]byte(k), stamp(now, rec)); err != nil {
				return err
			}
			item := queued{Account: d.Account, Device: d.ID, LastUsedAt: d.LastUsedAt}
			if f := d.FIDO; f != nil {
				item.SignCount, item.PossiblyCloned, item.LastAssertion = f.SignCount, f.PossiblyCloned, f.LastAssertion
			}
			if o := d.OTP; o != nil {
				item.OTP, item.LastCounter, item.Drift = true, o.LastCounter, o.Drift
			}
			if err := enqueue(q, item); err != nil {
				return err
			}
		}
		for _, e := range t.events {
			e.Detail = strings.TrimSpace(e.Detail + " (offline)")
			if err := enqueue(q, queued{Audit: e}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if write {
		vals := map[string]floorVal{}
		for k, d := range staged.devs {
			if v, ok := floorOf(d); ok {
				vals[k] = v
			}
		}
		return fl.raise(vals)
	}
	return nil
}

func enqueue(q *bolt.Bucket, item queued) error {
	seq, err := q.NextSequence()
	if err != nil {
		return err
	}
	v, err := json.Marshal(item)
	if err != nil {
		return err
	}
	return q.Put(binary.BigEndian.AppendUint64(nil, seq), v)
}

// pending counts the queued outcomes.
func (c *cache) pending() int {
	n := 0
	c.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bktQueue).Stats().KeyN
		return nil
	})
	return n
}

// Reconcile replays what this host did offline into the database:
// signature counters merge as maxima, a counter that went backwards across
// hosts flags the key possibly_cloned, and audit entries keep their
// original time and this host's name. It runs when the database answers
// again; entries leave the queue only once the database has them.
func (s *Store) Reconcile(ctx context.Context) error {
	c := s.cache
	if c == nil {
		return nil
	}
	c.replay.Lock()
	defer c.replay.Unlock()
	type entry struct {
		key  []byte
		item queued
	}
	var items []entry
	if err := c.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktQueue).ForEach(func(k, v []byte) error {
			var q queued
			if err := json.Unmarshal(v, &q); err != nil {
				return fmt.Errorf("store: offline queue entry %x: %w", k, err)
			}
			items = append(items, entry{append([]byte(nil), k...), q})
			return nil
		})
	}); err != nil || len(items) == 0 {
		return err
	}
	err := s.Update(ctx, func(t authn.Tx) error {
		// Compare with what the fleet has, not with this host's floor
		// (which already holds the offline counters).
		if pt, ok := t.(*tx); ok {
			pt.raw = true
		}
		for _, e := range items {
			q := e.item
			if q.Audit != nil {
				ev := *q.Audit
				if err := t.AppendAudit(&ev); err != nil {
					return err
				}
				continue
			}
			d, err := t.Device(q.Account, q.Device)
			if errors.Is(err, authn.ErrNotFound) {
				continue // deleted meanwhile: nothing to merge into
			}
			if err != nil {
				return err
			}
			if q.OTP {
				if err := mergeOTP(t, d, q); err != nil {
					return err
				}
				continue
			}
			if d.FIDO == nil {
				continue
			}
			if clonedAcrossHosts(d, q) {
				d.FIDO.PossiblyCloned = true
				if err := t.AppendAudit(&authn.AuditEvent{Time: q.LastUsedAt, Action: "device.possibly_cloned", Outcome: "fail",
					Account: q.Account, Device: q.Device,
					Detail: fmt.Sprintf("signature count %d used offline is not above %d seen by the fleet", q.SignCount, d.FIDO.SignCount)}); err != nil {
					return err
				}
			}
			d.FIDO.PossiblyCloned = d.FIDO.PossiblyCloned || q.PossiblyCloned
			if q.SignCount > d.FIDO.SignCount {
				d.FIDO.SignCount, d.FIDO.LastAssertion = q.SignCount, q.LastAssertion
			}
			if q.LastUsedAt.After(d.LastUsedAt) {
				d.LastUsedAt = q.LastUsedAt
			}
			if err := t.PutDevice(d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return c.db.Update(func(tx *bolt.Tx) error {
		q := tx.Bucket(bktQueue)
		for _, e := range items {
			if err := q.Delete(e.key); err != nil {
				return err
			}
		}
		return nil
	})
}

// mergeOTP brings an OTP device's offline counter into the fleet's: the
// higher counter wins (with its drift). A fleet counter already at or past
// the one used offline before that use means the code may have been
// accepted twice: the audit log says so.
func mergeOTP(t authn.Tx, d *authn.Device, q queued) error {
	o := d.OTP
	if o == nil {
		return nil
	}
	if o.Used && o.LastCounter >= q.LastCounter && !d.LastUsedAt.After(q.LastUsedAt) &&
		!d.LastUsedAt.Truncate(time.Microsecond).Equal(q.LastUsedAt.Truncate(time.Microsecond)) {
		if err := t.AppendAudit(&authn.AuditEvent{Time: q.LastUsedAt, Action: authn.ActAuthenticate, Outcome: "fail",
			Account: q.Account, Device: q.Device,
			Detail: fmt.Sprintf("counter %d used offline was already spent by the fleet (up to %d): a code may have been accepted twice", q.LastCounter, o.LastCounter)}); err != nil {
			return err
		}
	}
	if !o.Used || q.LastCounter > o.LastCounter {
		o.LastCounter, o.Used, o.Drift = q.LastCounter, true, q.Drift
	}
	if q.LastUsedAt.After(d.LastUsedAt) {
		d.LastUsedAt = q.LastUsedAt
	}
	return t.PutDevice(d)
}

// clonedAcrossHosts: the fleet saw a signature count at or above the one
// used offline before that use, or a lower one after it. Counters of keys
// that do not count (always 0) say nothing.
func clonedAcrossHosts(d *authn.Device, q queued) bool {
	fleet := d.FIDO.SignCount
	if q.SignCount == 0 || fleet == 0 {
		return false
	}
	if fleet == q.SignCount && d.LastUsedAt.Truncate(time.Microsecond).Equal(q.LastUsedAt.Truncate(time.Microsecond)) {
		return false // this very use, merged before (a replay cut short)
	}
	if !d.LastUsedAt.After(q.LastUsedAt) {
		return fleet >= q.SignCount
	}
	return fleet <= q.SignCount
}
