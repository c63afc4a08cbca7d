package authn

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"sync"
	"time"
)

// maxStepUps bounds the tokens held at once; past it the oldest go first.
const maxStepUps = 100_000

// stepUps holds the short-lived tokens a successful authentication hands
// out. They live in memory only (a restart signs everyone out) and are
// kept by hash, so a memory dump shows no usable token. Every token has
// the same lifetime, so issue order is expiry order: a FIFO prunes them
// in O(1) per token.
type stepUps struct {
	mu     sync.Mutex
	tokens map[[32]byte]stepUp
	order  [][32]byte // issue order
}

type stepUp struct {
	uid     uint32
	account string
	source  string // how it was earned: device, temporary_code, recovery
	expires time.Time
}

// Step-up sources.
const (
	SourceDevice        = "device"
	SourceTemporaryCode = "temporary_code"
	SourceRecovery      = "recovery"
)

func newStepUps() *stepUps { return &stepUps{tokens: map[[32]byte]stepUp{}} }

// issue returns a new token for (uid, account) valid for ttl from now.
func (s *stepUps) issue(uid uint32, account, source string, now time.Time, ttl time.Duration) (string, time.Time) {
	b := make([]byte, 32)
	rand.Read(b)
	tok := base64.RawURLEncoding.EncodeToString(b)
	h := sha256.Sum256([]byte(tok))
	expires := now.Add(ttl)
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.order) > 0 {
		oldest := s.order[0]
		if v, ok := s.tokens[oldest]; ok && now.Before(v.expires) && len(s.order) < maxStepUps {
			break
		}
		delete(s.tokens, oldest)
		s.order = s.order[1:]
	}
	s.tokens[h] = stepUp{uid: uid, account: account, source: source, expires: expires}
	s.order = append(s.order, h)
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
	h := sha256.Sum256([]byte(tok))
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.tokens[h]
	if !ok || v.uid != uid || v.account != account || !now.Before(v.expires) {
		return "", false
	}
	return v.source, true
}
