package authn

import (
	"fmt"
	"math/rand/v2"
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
	if s.n > maxStepUps {
		t.Fatalf("%d tokens held, cap %d", s.n, maxStepUps)
	}
	if s.valid(first, 1, "a", now) {
		t.Error("the oldest token survived the cap")
	}
	later := now.Add(2 * time.Minute)
	tok, _ := s.issue(2, "b", SourceDevice, later, time.Minute)
	if s.n != 1 || !s.valid(tok, 2, "b", later) {
		t.Errorf("expired tokens not pruned: %d held", s.n)
	}
	if s.valid(tok, 3, "b", later) || s.valid(tok, 2, "c", later) || s.valid(tok, 2, "b", later.Add(time.Minute)) {
		t.Error("token valid for another uid, account or after expiry")
	}
}

// Under any churn the table answers as a plain list of the tokens issued,
// pruned the same way, would.
func TestStepUpsAgreeWithAList(t *testing.T) {
	type issued struct {
		tok     string
		account string
		expires time.Time
		source  string
	}
	s := newStepUps()
	var list []issued // the tokens held, oldest first
	rng := rand.New(rand.NewPCG(7, 8))
	now := time.Unix(1000, 0)
	for i := range 60000 {
		now = now.Add(time.Duration(rng.IntN(2000)) * time.Microsecond)
		ttl := time.Duration(1+rng.IntN(20)) * time.Second
		if i%3 == 0 {
			ttl = 10 * time.Second // mostly one lifetime, as sign-ins have
		}
		for len(list) > 0 && (len(list) == maxStepUps || !now.Before(list[0].expires)) {
			list = list[1:]
		}
		account, source := fmt.Sprintf("a%d", rng.IntN(50)), sources[rng.IntN(len(sources))]
		tok, exp := s.issue(1, account, source, now, ttl)
		list = append(list, issued{tok, account, exp, source})
		if s.n != len(list) {
			t.Fatalf("issue %d: %d held, the list %d", i, s.n, len(list))
		}
		for range 3 {
			e := list[rng.IntN(len(list))]
			got, ok := s.lookup(e.tok, 1, e.account, now)
			if want := now.Before(e.expires); ok != want || ok && got != e.source {
				t.Fatalf("issue %d: lookup = %q, %v; want %q, %v", i, got, ok, e.source, want)
			}
		}
	}
	for _, e := range list[:100] {
		if _, ok := s.lookup(e.tok, 2, e.account, now); ok {
			t.Fatal("a token is valid for another uid")
		}
	}
}
