package authn

import (
	"strconv"
	"strings"
	"sync"
	"time"
)

// sendLimits bounds the messages mfad sends (recovery and contact codes,
// account notices) in a sliding hour, per account and per requesting user:
// a phone number or mail address given to mfad must not turn it into a
// relay for toll fraud or mail floods. The counts live in memory; a
// restart forgets them, as it forgets recoveries in progress.
type sendLimits struct {
	mu   sync.Mutex
	sent map[string][]time.Time
	// capacity bounds the keys counted, and so the memory the counts take.
	// Full, the expired keys are swept at most once a minute (a sweep
	// walks them all); a send that would add a key while the counts stay
	// full is refused: forgetting counts would lift the limits.
	capacity int
	swept    time.Time
}

func newSendLimits() *sendLimits {
	return &sendLimits{sent: map[string][]time.Time{}, capacity: maxSendKeys}
}

const sendWindow = time.Hour

// maxSendKeys is the keys counted at most: two per account and one per
// user asking, in an hour.
const maxSendKeys = 100_000

// sweepEvery spaces the sweeps of full counts.
const sweepEvery = time.Minute

// Kinds of message: codes (recovery and contact codes) and notices (what
// happened to an account) have budgets of their own, so that notices
// cannot use up the codes a recovery needs.
const (
	sendCode   = "code"
	sendNotice = "notice"
)

// takeSend records one message of kind for account, asked by actor, when
// both are under their limits; else it answers how long to wait. Admins
// (and uid 0, which relays PAM's recoveries for every user) are limited
// per account only.
func (s *Service) takeSend(actor Actor, account, kind string) error {
	now := s.now()
	keys := []string{kind + "/account:" + account}
	limits := []int{s.policy.SendsPerAccount}
	if !actor.Admin {
		keys = append(keys, kind+"/uid:"+strconv.FormatUint(uint64(actor.UID), 10))
		limits = append(limits, s.policy.SendsPerUser)
	}
	l := s.sends
	l.mu.Lock()
	defer l.mu.Unlock()
	var wait time.Duration
	for i, k := range keys {
		times := l.prune(k, now)
		if len(times) >= limits[i] {
			wait = max(wait, times[len(times)-limits[i]].Add(sendWindow).Sub(now))
		}
	}
	if wait > 0 {
		e := Errorf(ClassTooMany, CodeRetryLater, "too many codes and notices were sent for %s in the last hour; try again later", account)
		e.RetryAfter = wait
		return e
	}
	if len(l.sent)+len(keys) > l.capacity && now.Sub(l.swept) >= sweepEvery {
		l.sweep(now)
		l.swept = now
	}
	added := 0
	for _, k := range keys {
		if _, ok := l.sent[k]; !ok {
			added++
		}
	}
	if len(l.sent)+added > l.capacity {
		e := Errorf(ClassTooMany, CodeRetryLater, "mfad is counting too many recent codes and notices to send more now; try again later")
		e.RetryAfter = sweepEvery
		return e
	}
	for _, k := range keys {
		l.sent[k] = append(l.sent[k], now)
	}
	return nil
}

// prune drops k's sends older than the window and returns the rest.
func (l *sendLimits) prune(k string, now time.Time) []time.Time {
	times := l.sent[k]
	i := 0
	for i < len(times) && !now.Before(times[i].Add(sendWindow)) {
		i++
	}
	if i == len(times) {
		delete(l.sent, k)
		return nil
	}
	times = times[i:]
	l.sent[k] = times
	return times
}

func (l *sendLimits) sweep(now time.Time) {
	for k := range l.sent {
		l.prune(k, now)
	}
}

// phoneAllowed says whether a user may set phone: when prefixes are
// configured ([recovery.phone] allowed_prefixes), the number, without
// spaces, dashes and parentheses, must start with one of them.
func (s *Service) phoneAllowed(phone string) bool {
	if len(s.policy.PhonePrefixes) == 0 {
		return true
	}
	n := strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' || r == '(' || r == ')' {
			return -1
		}
		return r
	}, phone)
	for _, p := range s.policy.PhonePrefixes {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	return false
}
