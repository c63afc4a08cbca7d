package authn

import (
	"testing"
	"time"
)

func TestStepUpsBoundedAndPruned(t *testing.T) {
	s := newStepUps()
	now := time.Unix(1000, 0)
	first, _ := s.issue(1, "a", SourceDevice, now, time.Minute)
	for i := 0; i < maxStepUps+10; i++ {
		s.issue(1, "a", SourceDevice, now, time.Minute)
	}
	if len(s.tokens) > maxStepUps || len(s.order) > maxStepUps {
		t.Fatalf("%d tokens held, cap %d", len(s.tokens), maxStepUps)
	}
	if s.valid(first, 1, "a", now) {
		t.Error("the oldest token survived the cap")
	}
	later := now.Add(2 * time.Minute)
	tok, _ := s.issue(2, "b", SourceDevice, later, time.Minute)
	if len(s.tokens) != 1 || !s.valid(tok, 2, "b", later) {
		t.Errorf("expired tokens not pruned: %d held", len(s.tokens))
	}
	if s.valid(tok, 3, "b", later) || s.valid(tok, 2, "c", later) || s.valid(tok, 2, "b", later.Add(time.Minute)) {
		t.Error("token valid for another uid, account or after expiry")
	}
}
