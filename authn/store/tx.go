package store

import (
	"bytes"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/mfad/mfad/authn"
)

// tx adapts a bbolt transaction to authn.Tx.
type tx struct {
	btx  *bolt.Tx
	s    *Store
	seal *sealer      // the snapshot's, once asked for
	rec  *walRecord   // a write transaction's changes, for the log
	root *bolt.Bucket // bktRoot, once looked up
	// read holds, in a write transaction, the device records read
	// (devstate.go), by their devstate key.
	read map[string]*decodedDevice
}

// sealer returns the sealer whose key the transaction's snapshot was sealed under.
func (t *tx) sealer() *sealer {
	if t.seal == nil {
		t.seal = t.s.sealerFor(t.btx)
	}
	return t.seal
}

// bucket is a bucket under bktRoot. The root is looked up once per
// transaction: a sign-in names it four times, and a batch of them shares
// one transaction.
func (t *tx) bucket(name []byte) *bolt.Bucket {
	if t.root == nil {
		t.root = t.btx.Bucket(bktRoot)
	}
	return t.root.Bucket(name)
}

// wbucket is the bucket name for writing: every change through it is
// recorded for the write-ahead log.
func (t *tx) wbucket(name []byte) wbucket {
	return wbucket{b: t.bucket(name), path: [][]byte{bktRoot, name}, rec: t.rec}
}

func notFound(what, name string) error {
	return &authn.Error{Class: authn.ClassNotFound, Code: authn.CodeNotFound, Detail: fmt.Sprintf("%s %q not found", what, name)}
}

func (t *tx) Account(name string) (*authn.Account, error) {
	v := t.bucket(bktAccounts).Get([]byte(name))
	if v == nil {
		return nil, notFound("account", name)
	}
	var r accountRec
	if err := decodeAccountRec(v, &r); err != nil {
		return nil, fmt.Errorf("store: account %q: %w", name, err)
	}
	return r.account(), nil
}

func (t *tx) Accounts() ([]authn.Account, error) {
	var out []authn.Account
	err := t.bucket(bktAccounts).ForEach(func(k, v []byte) error {
		var r accountRec
		if err := decodeAccountRec(v, &r); err != nil {
			return fmt.Errorf("store: account %q: %w", k, err)
		}
		out = append(out, *r.account())
		return nil
	})
	return out, err
}

func (t *tx) PutAccount(a *authn.Account) error {
	v, err := encode(accountToRec(a))
	if err != nil {
		return err
	}
	return t.wbucket(bktAccounts).Put([]byte(a.Name), v)
}

func (t *tx) DeleteAccount(name string) error {
	if err := t.wbucket(bktAccounts).Delete([]byte(name)); err != nil {
		return err
	}
	t.read = nil // what was read of the account's devices is gone
	t.s.devices.drop(deviceStateKey(name, ""))
	if err := deleteStates(t.wbucket(bktDevState), name); err != nil {
		return err
	}
	devs := t.wbucket(bktDevices)
	if devs.b.Bucket([]byte(name)) != nil {
		return devs.DeleteBucket([]byte(name))
	}
	return nil
}

func deviceAD(account, id string) string { return "devices/" + account + "/" + id }

// decodeDevice returns the device whose record at account/id is v, with
// its state record applied. In a write transaction what was read is kept
// for PutDevice.
func (t *tx) decodeDevice(account string, id, v []byte) (*authn.Device, error) {
	key := deviceStateKey(account, string(id))
	e := t.s.devices.get(key, v)
	if e == nil {
		var err error
		if e, err = t.openDevice(v); err != nil {
			return nil, err
		}
		if e.dev.OTP != nil {
			t.s.devices.put(string(key), e)
		}
	}
	if t.rec != nil {
		if t.read == nil {
			t.read = make(map[string]*decodedDevice)
		}
		t.read[string(key)] = e
	}
	return t.withState(e.device(), key)
}

// openDevice decodes a device record and opens its secret.
func (t *tx) openDevice(v []byte) (*decodedDevice, error) {
	var rec deviceRecord
	if err := decodeDeviceRec(v, &rec); err != nil {
		return nil, fmt.Errorf("store: device record: %w", err)
	}
	secret, err := t.sealer().open(rec.Sealed, deviceAD(rec.Account, rec.ID))
	if err != nil {
		return nil, fmt.Errorf("store: device %s/%s: %w", rec.Account, rec.ID, err)
	}
	e := &decodedDevice{raw: bytes.Clone(v), sealed: bytes.Clone(rec.Sealed), dev: *rec.device()}
	e.dev.Secret = secret
	return e, nil
}

func (t *tx) Devices(account string) ([]authn.Device, error) {
	b := t.bucket(bktDevices).Bucket([]byte(account))
	if b == nil {
		return nil, nil
	}
	var out []authn.Device
	err := b.ForEach(func(id, v []byte) error {
		d, err := t.decodeDevice(account, id, v)
		if err != nil {
			return err
		}
		out = append(out, *d)
		return nil
	})
	return out, err
}

// ActiveOTPDevices decodes and opens only the active OTP devices' records:
// the others' state is read without decoding them.
func (t *tx) ActiveOTPDevices(account string) ([]authn.Device, int, error) {
	b := t.bucket(bktDevices).Bucket([]byte(account))
	if b == nil {
		return nil, 0, nil
	}
	var out []authn.Device
	active := 0
	err := b.ForEach(func(id, v []byte) error {
		if state, otp, ok := deviceKind(v); ok && (state != string(authn.StateActive) || !otp) {
			if state == string(authn.StateActive) {
				active++
			}
			return nil
		}
		d, err := t.decodeDevice(account, id, v)
		if err != nil || d.State != authn.StateActive {
			return err
		}
		active++
		if d.OTP != nil {
			out = append(out, *d)
		}
		return nil
	})
	return out, active, err
}

func (t *tx) Device(account, id string) (*authn.Device, error) {
	b := t.bucket(bktDevices).Bucket([]byte(account))
	var v []byte
	if b != nil {
		v = b.Get([]byte(id))
	}
	if v == nil {
		return nil, notFound("device", id)
	}
	return t.decodeDevice(account, []byte(id), v)
}

func (t *tx) PutDevice(d *authn.Device) error { return t.putDeviceSplit(d) }

func (t *tx) DeleteDevice(account, id string) error {
	b := t.wbucket(bktDevices).Bucket([]byte(account))
	if b.b == nil || b.b.Get([]byte(id)) == nil {
		return notFound("device", id)
	}
	key := deviceStateKey(account, id)
	delete(t.read, string(key))
	t.s.devices.drop(key)
	if err := t.wbucket(bktDevState).Delete(key); err != nil {
		return err
	}
	return b.Delete([]byte(id))
}

func tokenAD(serial string) string { return "tokens/" + serial }

func (t *tx) decodeToken(v []byte) (*authn.Token, error) {
	var rec tokenRecord
	if err := decode(v, &rec); err != nil {
		return nil, fmt.Errorf("store: token record: %w", err)
	}
	secret, err := t.sealer().open(rec.Sealed, tokenAD(rec.Serial))
	if err != nil {
		return nil, fmt.Errorf("store: token %s: %w", rec.Serial, err)
	}
	tok := rec.token()
	tok.Secret = secret
	return tok, nil
}

func (t *tx) Token(serial string) (*authn.Token, error) {
	v := t.bucket(bktTokens).Get([]byte(serial))
	if v == nil {
		return nil, notFound("token", serial)
	}
	return t.decodeToken(v)
}

func (t *tx) Tokens() ([]authn.Token, error) {
	var out []authn.Token
	err := t.bucket(bktTokens).ForEach(func(_, v []byte) error {
		tok, err := t.decodeToken(v)
		if err != nil {
			return err
		}
		out = append(out, *tok)
		return nil
	})
	return out, err
}

func (t *tx) PutToken(tok *authn.Token) error {
	rec := tokenToRec(tok)
	rec.Sealed = t.sealer().seal(tok.Secret, tokenAD(tok.Serial))
	v, err := encode(rec)
	if err != nil {
		return err
	}
	return t.wbucket(bktTokens).Put([]byte(tok.Serial), v)
}

func (t *tx) DeleteToken(serial string) error {
	return t.wbucket(bktTokens).Delete([]byte(serial))
}

func (t *tx) AppendAudit(e *authn.AuditEvent) error {
	b := t.wbucket(bktAudit)
	// Keys only ever grow: fill each page rather than split it in half
	// (bbolt's default, for random inserts), which would double the log's
	// pages on disk and in memory.
	b.b.FillPercent = auditFill
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	e.Seq = seq
	v, err := encodeAudit(auditToRec(e))
	if err != nil {
		return err
	}
	if err := b.Put(binary.BigEndian.AppendUint64(nil, seq), v); err != nil {
		return err
	}
	// Retention: drop what falls out of the window, AuditTrimEvery entries
	// at a time (when the window has moved by that many). Dropping each
	// entry as its successor came dirtied the log's oldest page and its
	// parents in every commit, and merged pages as they emptied.
	if seq > t.s.opts.AuditRetention && (seq-t.s.opts.AuditRetention)%t.s.opts.AuditTrimEvery == 0 {
		cutoff := seq - t.s.opts.AuditRetention
		c := b.b.Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= cutoff; k, _ = c.First() {
			if err := b.Delete(bytes.Clone(k)); err != nil {
				return err
			}
		}
	}
	return nil
}

// auditFill is how full the audit log's pages are written (bbolt's most).
const auditFill = 1.0

func (t *tx) Audit(after uint64, limit int) ([]authn.AuditEvent, error) {
	c := t.bucket(bktAudit).Cursor()
	var out []authn.AuditEvent
	for k, v := c.Seek(binary.BigEndian.AppendUint64(nil, after+1)); k != nil && len(out) < limit; k, v = c.Next() {
		var e auditRec
		if err := decode(v, &e); err != nil {
			return nil, fmt.Errorf("store: audit entry %d: %w", binary.BigEndian.Uint64(k), err)
		}
		out = append(out, e.event())
	}
	return out, nil
}
