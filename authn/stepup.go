package authn

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"slices"
	"sync"
	"time"
)

// maxStepUps bounds the tokens held at once; past it the oldest go first.
// A step-up token serves the privileged request that follows a sign-in,
// within minutes: 10,000 is more sign-ins per token lifetime than a host
// sees (33/s for 5 minutes), and keeps the table at ~0.8 MB, so that
// memory reaches its plateau early under load instead of growing for the
// first 100,000 sign-ins.
const maxStepUps = 10_000

// stepUps holds the short-lived tokens a successful authentication hands
// out. They live in memory only (a restart signs everyone out) and are
// kept by a hash of the token with the uid and account it was issued to,
// so a memory dump shows no usable token, and an entry holds no pointer
// (the garbage collector never scans the table). Every sign-in token has
// the same lifetime, so issue order is expiry order: a FIFO prunes them in
// O(1) per token.
type stepUps struct {
	mu     sync.Mutex
	tokens map[[32]byte]stepUp
	order  [][32]byte // issue order
}

type stepUp struct {
	expires int64 // Unix nanoseconds
	source  uint8 // index in sources
}

// Step-up sources.
const (
	SourceDevice        = "device"
	SourceTemporaryCode = "temporary_code"
	SourceRecovery      = "recovery"
)

var sources = [...]string{SourceDevice, SourceTemporaryCode, SourceRecovery}

func newStepUps() *stepUps { return &stepUps{tokens: map[[32]byte]stepUp{}} }

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
	for len(s.order) > 0 {
		oldest := s.order[0]
		if v, ok := s.tokens[oldest]; ok && now.UnixNano() < v.expires && len(s.order) < maxStepUps {
			break
		}
		delete(s.tokens, oldest)
		s.order = s.order[1:]
	}
	s.tokens[k] = stepUp{expires: expires.UnixNano(), source: uint8(src)}
	s.order = append(s.order, k)
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
	v, ok := s.tokens[k]
	if !ok || now.UnixNano() >= v.expires {
		return "", false
	}
	return sources[v.source], true
}
