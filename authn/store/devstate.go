package store

import (
	"bytes"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mfad/mfad/authn"
)

// A device's record is split in two (schema v4). The fields a sign-in
// changes (last use, counter, drift, resync budget, FIDO signature count
// and last assertion) live in a small state record in the flat bucket
// devstate, keyed account NUL id; the rest (type, state, parameters,
// sealed secret, attestation) stays in devices/<account>/<id>. A sign-in
// then rewrites some 40 bytes in one flat bucket instead of a whole
// record in the account's nested one, re-sealing nothing: fewer and
// smaller pages per commit.
//
// The rule that keeps the halves consistent: a device record written
// together with a state record carries zero in the state's fields, and a
// state record, when present, is the truth for them. A device without a
// state record (written by schema v3) is read from its record alone; its
// first write splits it.

// deviceStateRec is the state record. Integer keys and times as Unix
// nanoseconds keep it small: it is most of what a sign-in writes.
type deviceStateRec struct {
	LastUsedAt        int64         `cbor:"1,keyasint,omitempty"`
	ResyncFailures    int           `cbor:"2,keyasint,omitempty"`
	ResyncWindowStart int64         `cbor:"3,keyasint,omitempty"`
	LastCounter       uint64        `cbor:"4,keyasint,omitempty"`
	Used              bool          `cbor:"5,keyasint,omitempty"`
	Drift             int64         `cbor:"6,keyasint,omitempty"`
	SignCount         uint32        `cbor:"7,keyasint,omitempty"`
	LastAssertion     *assertionRec `cbor:"8,keyasint,omitempty"`
}

var bktDevState = []byte("devstate")

// deviceStateKey is a device's key in devstate. Account names and device
// IDs hold no NUL (authn.ValidateName; IDs are hex), so an account's keys share a prefix
// no other account's have.
func deviceStateKey(account, id string) []byte {
	k := make([]byte, 0, len(account)+1+len(id))
	k = append(append(append(k, account...), 0), id...)
	return k
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// takeState moves the state fields out of r into a state record, leaving
// zero in r.
func takeState(r *deviceRecord) *deviceStateRec {
	s := &deviceStateRec{LastUsedAt: unixNano(r.LastUsedAt), ResyncFailures: r.ResyncFailures, ResyncWindowStart: unixNano(r.ResyncWindowStart)}
	r.LastUsedAt, r.ResyncFailures, r.ResyncWindowStart = time.Time{}, 0, time.Time{}
	if o := r.OTP; o != nil {
		s.LastCounter, s.Used, s.Drift = o.LastCounter, o.Used, o.Drift
		o.LastCounter, o.Used, o.Drift = 0, false, 0
	}
	if f := r.FIDO; f != nil {
		s.SignCount, s.LastAssertion = f.SignCount, f.LastAssertion
		f.SignCount, f.LastAssertion = 0, nil
	}
	return s
}

// applyTo puts a state record's fields into d.
func (s *deviceStateRec) applyTo(d *authn.Device) {
	d.LastUsedAt, d.ResyncFailures, d.ResyncWindowStart = fromUnixNano(s.LastUsedAt), s.ResyncFailures, fromUnixNano(s.ResyncWindowStart)
	if o := d.OTP; o != nil {
		o.LastCounter, o.Used, o.Drift = s.LastCounter, s.Used, s.Drift
	}
	if f := d.FIDO; f != nil {
		f.SignCount, f.LastAssertion = s.SignCount, nil
		if la := s.LastAssertion; la != nil {
			f.LastAssertion = &authn.SignedAssertion{AuthData: la.AuthData, Signature: la.Signature, ClientDataJSON: la.ClientDataJSON}
		}
	}
}

// encodeDeviceState writes an OTP device's state record (no last
// assertion) by hand, keys in order and zeros omitted as the codec would;
// anything else goes to the codec.
func encodeDeviceState(s *deviceStateRec) ([]byte, error) {
	if s.LastAssertion != nil {
		return encode(s)
	}
	fields := [...]struct {
		zero bool
		v    int64
	}{
		{s.LastUsedAt == 0, s.LastUsedAt}, {s.ResyncFailures == 0, int64(s.ResyncFailures)},
		{s.ResyncWindowStart == 0, s.ResyncWindowStart}, {s.LastCounter == 0, 0}, {!s.Used, 0},
		{s.Drift == 0, s.Drift}, {s.SignCount == 0, int64(s.SignCount)},
	}
	n := 0
	for _, f := range fields {
		if !f.zero {
			n++
		}
	}
	b := appendHead(make([]byte, 0, 48), cborMap, uint64(n))
	for i, f := range fields {
		if f.zero {
			continue
		}
		b = appendHead(b, cborUint, uint64(i+1))
		switch i + 1 {
		case 4:
			b = appendHead(b, cborUint, s.LastCounter)
		case 5:
			b = appendBool(b, true)
		default:
			b = appendInt(b, f.v)
		}
	}
	return b, nil
}

// decodeDeviceState reads a state record; one without a last assertion
// (an OTP device's) by hand, and anything else the hand reader does not
// take by the codec.
func decodeDeviceState(b []byte, s *deviceStateRec) error {
	if decodeOTPDeviceState(b, s) {
		return nil
	}
	*s = deviceStateRec{}
	return decode(b, s)
}

func decodeOTPDeviceState(b []byte, s *deviceStateRec) bool {
	r := &cborReader{b: b}
	major, n := r.head()
	if r.bad || major != cborMap || n > 7 {
		return false
	}
	var seen uint8
	for range n {
		k := r.uint()
		if r.bad || k < 1 || k > 7 || seen&(1<<k) != 0 {
			return false
		}
		seen |= 1 << k
		switch k {
		case 1:
			s.LastUsedAt = r.int()
		case 2:
			s.ResyncFailures = r.smallInt()
		case 3:
			s.ResyncWindowStart = r.int()
		case 4:
			s.LastCounter = r.uint()
		case 5:
			s.Used = r.bool()
		case 6:
			s.Drift = r.int()
		case 7:
			v := r.uint()
			if v > math.MaxUint32 {
				return false
			}
			s.SignCount = uint32(v)
		}
	}
	return !r.bad && len(r.b) == 0
}

// withState returns d as its state record (if any) says.
func (t *tx) withState(d *authn.Device, key []byte) (*authn.Device, error) {
	b := t.bucket(bktDevState)
	if b == nil {
		return d, nil
	}
	v := b.Get(key)
	if v == nil {
		return d, nil
	}
	var s deviceStateRec
	if err := decodeDeviceState(v, &s); err != nil {
		return nil, fmt.Errorf("store: device %s/%s state: %w", d.Account, d.ID, err)
	}
	s.applyTo(d)
	return d, nil
}

// putDeviceSplit writes d as a record without its state and a state
// record. The record is written only when it differs from the one this
// transaction read: a sign-in writes the state record alone.
func (t *tx) putDeviceSplit(d *authn.Device) error {
	key := deviceStateKey(d.Account, d.ID)
	rec := deviceToRec(d)
	st := takeState(rec)
	sv, err := encodeDeviceState(st)
	if err != nil {
		return err
	}
	read := t.read[string(key)]
	if read != nil && bytes.Equal(read.dev.Secret, d.Secret) {
		rec.Sealed = read.sealed
	} else {
		rec.Sealed = t.sealer().seal(d.Secret, deviceAD(d.Account, d.ID))
	}
	v, err := encodeDevice(rec)
	if err != nil {
		return err
	}
	if read == nil || !bytes.Equal(v, read.raw) {
		b, err := t.wbucket(bktDevices).CreateBucketIfNotExists([]byte(d.Account))
		if err != nil {
			return err
		}
		if err := b.Put([]byte(d.ID), v); err != nil {
			return err
		}
		if t.read == nil {
			t.read = make(map[string]*decodedDevice)
		}
		t.read[string(key)] = &decodedDevice{raw: v, sealed: rec.Sealed, dev: authn.Device{Secret: bytes.Clone(d.Secret)}}
	}
	return t.wbucket(bktDevState).Put(key, sv)
}

// deleteStates deletes every state record of account.
func deleteStates(b wbucket, account string) error {
	prefix := deviceStateKey(account, "")
	var keys [][]byte
	c := b.b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// createDevState is the migration from v3 to v4: devices keep their
// records, which hold their state until they are next written.
func createDevState(root *bolt.Bucket) error {
	_, err := root.CreateBucketIfNotExists(bktDevState)
	return err
}
