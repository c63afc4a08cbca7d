package authn

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestSendCountsStayBounded: with the counts full, a send that would add
// a key is refused (forgetting counts would lift the limits), expired keys
// are swept at most once a minute, and sends for keys already counted go
// on.
func TestSendCountsStayBounded(t *testing.T) {
	clock := time.Unix(1_800_000_000, 0)
	s := &Service{
		now:    func() time.Time { return clock },
		policy: Policy{SendsPerAccount: 5, SendsPerUser: 5},
		sends:  newSendLimits(),
	}
	s.sends.capacity = 6
	admin := Actor{Admin: true}
	for i := range 6 {
		if err := s.takeSend(admin, fmt.Sprintf("a%d", i), sendCode); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	var e *Error
	if err := s.takeSend(admin, "new", sendCode); !errors.As(err, &e) || e.Code != CodeRetryLater || e.RetryAfter != sweepEvery {
		t.Fatalf("a new key with the counts full: %v, want retry_later", err)
	}
	if err := s.takeSend(admin, "a3", sendCode); err != nil {
		t.Fatalf("a key already counted: %v", err)
	}
	// Just before the hour nothing has expired: the sweep finds nothing.
	start := clock
	clock = start.Add(sendWindow - 10*time.Second)
	if err := s.takeSend(admin, "new", sendCode); !errors.As(err, &e) || e.Code != CodeRetryLater {
		t.Fatalf("before the hour: %v, want retry_later", err)
	}
	// At the hour every key has expired, but the last sweep was 10 s ago.
	clock = start.Add(sendWindow)
	if err := s.takeSend(admin, "new", sendCode); !errors.As(err, &e) || e.Code != CodeRetryLater {
		t.Fatalf("a sweep 10 s after the last: %v, want none and retry_later", err)
	}
	clock = start.Add(sendWindow - 10*time.Second + sweepEvery)
	if err := s.takeSend(admin, "new", sendCode); err != nil {
		t.Fatalf("after the hour and a sweep: %v", err)
	}
	if len(s.sends.sent) != 1 {
		t.Fatalf("%d keys after the sweep, want 1", len(s.sends.sent))
	}
}
