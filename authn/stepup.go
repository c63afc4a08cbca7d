package authn

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"slices"
	"sync"
	"time"
)

// maxStepUps bounds the tokens held at once; past it the oldest go first.
// A step-up token serves the privileged request that follows a sign-in,
// within minutes: 10,000 is more sign-ins per token lifetime than a host
// sees (33/s for 5 minutes), and keeps the table at ~0.6 MB, made at
// start.
const maxStepUps = 10_000

// stepUps holds the short-lived tokens a successful authentication hands
// out. They live in memory only (a restart signs everyone out) and are
// kept by a hash of the token with the uid and account it was issued to,
// so a memory dump shows no usable token, and an entry holds no pointer
// (the garbage collector never scans the table). Every sign-in token has
// the same lifetime, so issue order is expiry order: a FIFO prunes them in
// O(1) per token. The table's memory is fixed when it is made (a ring of
// maxStepUps entries in issue order, and an open-addressing index over
// it): a Go map under this churn of inserts and deletes kept growing for
// the first 100,000 sign-ins, and a slice used as a queue is reallocated
// as it moves.
type stepUps struct {
	mu      sync.Mutex
	ring    []stepUp // issue order, from head, n of them
	head, n int
	// index maps a key to its ring position + 1 (0: empty), linear
	// probing from the key's first bytes (a SHA-256 output: uniform).
	index []int32
}

type stepUp struct {
	key     [32]byte
	expires int64 // Unix nanoseconds
	source  uint8 // index in sources
}

// stepUpSlots is the index's size: a power of two, under a third full.
const stepUpSlots = 1 << 15

// Step-up sources.
const (
	SourceDevice        = "device"
	SourceTemporaryCode = "temporary_code"
	SourceRecovery      = "recovery"
)

var sources = [...]string{SourceDevice, SourceTemporaryCode, SourceRecovery}

func newStepUps() *stepUps {
	return &stepUps{ring: make([]stepUp, maxStepUps), index: make([]int32, stepUpSlots)}
}

func (s *stepUps) home(k *[32]byte) int {
	return int(binary.LittleEndian.Uint32(k[:]) & (stepUpSlots - 1))
}

// find returns the index slot of k, and whether k is there (else the
// empty slot where it would go).
func (s *stepUps) find(k *[32]byte) (int, bool) {
	for i := s.home(k); ; i = (i + 1) & (stepUpSlots - 1) {
		if s.index[i] == 0 {
			return i, false
		}
		if s.ring[s.index[i]-1].key == *k {
			return i, true
		}
	}
}

// drop removes the oldest entry, closing the gap it leaves in the index
// (backward shift: no tombstones).
func (s *stepUps) drop() {
	i, ok := s.find(&s.ring[s.head].key)
	s.head, s.n = (s.head+1)%maxStepUps, s.n-1
	if !ok {
		return
	}
	for j := i; ; {
		s.index[i] = 0
		for {
			j = (j + 1) & (stepUpSlots - 1)
			if s.index[j] == 0 {
				return
			}
			// An entry stays unless its home lies cyclically in (i, j].
			h := s.home(&s.ring[s.index[j]-1].key)
			if i <= j && (h <= i || h > j) || i > j && h <= i && h > j {
				break
			}
		}
		s.index[i] = s.index[j]
		i = j
	}
}

// stepUpKey binds a token to the uid and account it was issued to (the
// token is base64url: no zero byte, so the fields cannot run together).
func stepUpKey(tok string, uid uint32, account string) [32]byte {
	h := sha256.New()
	h.Write([]byte(tok))
	h.Write([]byte{0, byte(uid >> 24), byte(uid >> 16), byte(uid >> 8), byte(uid)})
	h.Write([]byte(account))
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// issue returns a new token for (uid, account) valid for ttl from now.
func (s *stepUps) issue(uid uint32, account, source string, now time.Time, ttl time.Duration) (string, time.Time) {
	src := slices.Index(sources[:], source)
	if src < 0 {
		panic("authn: unknown step-up source " + source)
	}
	var b [32]byte
	rand.Read(b[:])
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	k := stepUpKey(tok, uid, account)
	expires := now.Add(ttl)
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.n > 0 && (s.n == maxStepUps || now.UnixNano() >= s.ring[s.head].expires) {
		s.drop()
	}
	pos := (s.head + s.n) % maxStepUps
	s.ring[pos] = stepUp{key: k, expires: expires.UnixNano(), source: uint8(src)}
	if i, ok := s.find(&k); !ok { // a new token (256 random bits)
		s.index[i] = int32(pos + 1)
	}
	s.n++
	return tok, expires
}

// valid reports whether tok was issued to uid for account and is unexpired.
func (s *stepUps) valid(tok string, uid uint32, account string, now time.Time) bool {
	_, ok := s.lookup(tok, uid, account, now)
	return ok
}

// lookup is valid that also says how the token was earned.
func (s *stepUps) lookup(tok string, uid uint32, account string, now time.Time) (string, bool) {
	if tok == "" {
		return "", false
	}
	k := stepUpKey(tok, uid, account)
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.find(&k)
	if !ok {
		return "", false
	}
	v := &s.ring[s.index[i]-1]
	if now.UnixNano() >= v.expires {
		return "", false
	}
	return sources[v.source], true
}
