package main

import (
	"strings"
	"testing"
	"time"
)

// flatSoak is a 30-sample soak whose goroutines, fds and RSS wobble but do
// not grow, every kind of work succeeding.
func flatSoak() ([]soakSample, map[string]soakTotal) {
	ss := []soakSample{{at: 0, goroutines: 9, fds: 12, mem: memory{rss: 20 << 10, anon: 4 << 10}}}
	for i := 1; i <= 30; i++ {
		ss = append(ss, soakSample{at: time.Duration(i) * time.Minute, goroutines: 30 + i%5, fds: 24 + i%3,
			mem: memory{rss: (40 << 10) + i%4*512, anon: (20 << 10) + i%3*256}, loaded: true})
	}
	ss = append(ss, soakSample{at: 30*time.Minute + 2*time.Second, goroutines: 10, fds: 12})
	totals := map[string]soakTotal{}
	for _, k := range soakKinds {
		totals[k] = soakTotal{ok: 1000, errs: 2}
	}
	return ss, totals
}

func TestSoakJudgeFlat(t *testing.T) {
	ss, totals := flatSoak()
	verdict, failures := soakJudge(ss, totals)
	if len(failures) > 0 {
		t.Fatalf("a flat soak failed: %v\n%s", failures, strings.Join(verdict, "\n"))
	}
}

func TestSoakJudgeFails(t *testing.T) {
	for _, c := range []struct {
		name, want string
		change     func(ss []soakSample, totals map[string]soakTotal)
	}{
		{"a kind never succeeded", "recovery: 0 successes", func(_ []soakSample, totals map[string]soakTotal) {
			totals["recovery"] = soakTotal{}
		}},
		{"too many errors", "events: 11 errors of 111 attempts", func(_ []soakSample, totals map[string]soakTotal) {
			totals["events"] = soakTotal{ok: 100, errs: 11}
		}},
		{"goroutines grow", "goroutines under load", func(ss []soakSample, _ map[string]soakTotal) {
			for i := range ss[1:31] {
				ss[1+i].goroutines += i // one more a minute
			}
		}},
		{"fds grow", "open fds under load", func(ss []soakSample, _ map[string]soakTotal) {
			for i := range ss[1:31] {
				ss[1+i].fds += i
			}
		}},
		{"RSS grows", "RSS under load", func(ss []soakSample, _ map[string]soakTotal) {
			for i := range ss[1:31] {
				ss[1+i].mem.rss += i * 1000 // 1 MB a minute on 40 MB
			}
		}},
		{"the heap grows", "anonymous RSS under load", func(ss []soakSample, _ map[string]soakTotal) {
			for i := range ss[1:31] {
				ss[1+i].mem.anon += i * 500
			}
		}},
		{"goroutines stay after the load", "goroutines after the load", func(ss []soakSample, _ map[string]soakTotal) {
			ss[len(ss)-1].goroutines = 30
		}},
		{"fds stay after the load", "open fds after the load", func(ss []soakSample, _ map[string]soakTotal) {
			ss[len(ss)-1].fds = 20
		}},
		{"too few samples", "too few to judge", func(ss []soakSample, _ map[string]soakTotal) {
			for i := 4; i < len(ss); i++ {
				ss[i].loaded = false
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ss, totals := flatSoak()
			c.change(ss, totals)
			_, failures := soakJudge(ss, totals)
			if len(failures) != 1 || !strings.Contains(failures[0], c.want) {
				t.Errorf("failures %q, want one with %q", failures, c.want)
			}
		})
	}
}
