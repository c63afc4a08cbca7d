package authn

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"sync"
	"time"
)

// stepUps holds the short-lived tokens a successful authentication hands
// out. They live in memory only (a restart signs everyone out) and are
// kept by hash, so a memory dump shows no usable token.
type stepUps struct {
	mu     sync.Mutex
	tokens map[[32]byte]stepUp
}

type stepUp struct {
	uid     uint32
	account string
	expires time.Time
}

func newStepUps() *stepUps { return &stepUps{tokens: map[[32]byte]stepUp{}} }

// issue returns a new token for (uid, account) valid for ttl from now.
func (s *stepUps) issue(uid uint32, account string, now time.Time, ttl time.Duration) (string, time.Time) {
	b := make([]byte, 32)
	rand.Read(b)
	tok := base64.RawURLEncoding.EncodeToString(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.tokens {
		if !now.Before(v.expires) {
			delete(s.tokens, k)
		}
	}
	expires := now.Add(ttl)
	s.tokens[sha256.Sum256([]byte(tok))] = stepUp{uid: uid, account: account, expires: expires}
	return tok, expires
}

// valid reports whether tok was issued to uid for account and is unexpired.
func (s *stepUps) valid(tok string, uid uint32, account string, now time.Time) bool {
	if tok == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.tokens[sha256.Sum256([]byte(tok))]
	return ok && v.uid == uid && v.account == account && now.Before(v.expires)
}
