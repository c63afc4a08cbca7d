package totp

import (
	"testing"
	"time"
)

// BenchmarkMatchWindow1 is one sign-in: a ±1 window, the code at the
// previous step (the cost does not depend on which step matched).
func BenchmarkMatchWindow1(b *testing.B) {
	k := &Key{Type: TOTP, Secret: seed20, Params: DefaultParams}
	now := StepAt(time.Unix(1700000000, 0), k.Period)
	code := k.Code(now - 1)
	w := Window{Center: now, Behind: 1, Ahead: 1, Min: now - 5}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := k.Match(code, w); !ok {
			b.Fatal("no match")
		}
	}
}

// BenchmarkFindConsecutive1000 is one resync: ±1000 steps, the pair at the
// far end of the window.
func BenchmarkFindConsecutive1000(b *testing.B) {
	k := &Key{Type: TOTP, Secret: seed20, Params: DefaultParams}
	now := StepAt(time.Unix(1700000000, 0), k.Period)
	c1, c2 := k.Code(now+999), k.Code(now+1000)
	w := Window{Center: now, Behind: 1000, Ahead: 1000}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := k.FindConsecutive(c1, c2, w); !ok {
			b.Fatal("no match")
		}
	}
}
