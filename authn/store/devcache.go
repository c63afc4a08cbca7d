package store

import (
	"bytes"
	"strings"
	"sync"

	"github.com/mfad/mfad/authn"
)

// decodedDevice is a device record as read: its bytes, its sealed secret
// and the device they decode to, secret opened, before its state record
// is applied. It is never changed once made: the cache and transactions
// share it, and hand out copies.
type decodedDevice struct {
	raw, sealed []byte
	dev         authn.Device
}

// device returns a copy of the decoded device for a caller to change.
func (e *decodedDevice) device() *authn.Device {
	d := e.dev
	if d.OTP != nil {
		o := *d.OTP
		d.OTP = &o
	}
	if d.FIDO != nil {
		f := *d.FIDO
		d.FIDO = &f
	}
	d.Secret = bytes.Clone(d.Secret)
	return &d
}

// deviceCacheSize bounds the cache: a few MB at most. Past it, an entry
// chosen at random makes room.
const deviceCacheSize = 4096

// deviceCache keeps OTP devices' records decoded and opened, by devstate
// key. Since a sign-in writes only the state record (devstate.go), a
// device's record keeps its bytes from one sign-in to the next, and an
// entry is valid exactly while the stored bytes equal the ones it was
// decoded from: the check is a comparison, and no write has to reach the
// cache. The plaintext secrets it holds are no more exposed than the
// master key beside them in the same memory.
type deviceCache struct {
	mu sync.Mutex
	m  map[string]*decodedDevice
}

// get returns the entry for key decoded from exactly raw, if any.
func (c *deviceCache) get(key, raw []byte) *decodedDevice {
	c.mu.Lock()
	e := c.m[string(key)]
	c.mu.Unlock()
	if e == nil || !bytes.Equal(e.raw, raw) {
		return nil
	}
	return e
}

func (c *deviceCache) put(key string, e *decodedDevice) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]*decodedDevice)
	}
	if _, ok := c.m[key]; !ok && len(c.m) >= deviceCacheSize {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[key] = e
}

// drop forgets the entries of keys with prefix: a deleted device's (its
// key) or account's (account NUL). Entries for records that are gone are
// never served, but would sit in memory until evicted; a deletion rolled
// back costs a decoding, nothing else.
func (c *deviceCache) drop(prefix []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.m {
		if strings.HasPrefix(k, string(prefix)) {
			delete(c.m, k)
		}
	}
}
