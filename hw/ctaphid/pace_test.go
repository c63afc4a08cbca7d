package ctaphid

import (
	"context"
	"errors"
	"testing"
	"time"
)

// fakeClock is a pacer's clock: sleeping advances it.
type fakeClock struct {
	t      time.Time
	sleeps []time.Duration
}

func (c *fakeClock) pacer(interval time.Duration, burst int) *Pacer {
	p := NewPacer(interval, burst)
	p.now = func() time.Time { return c.t }
	p.sleep = func(ctx context.Context, d time.Duration) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		c.sleeps = append(c.sleeps, d)
		c.t = c.t.Add(d)
		return nil
	}
	return p
}

func TestPacer(t *testing.T) {
	ctx := context.Background()
	c := &fakeClock{t: time.Unix(1000, 0)}
	p := c.pacer(time.Millisecond, 4)

	// A burst of 4 goes at once; the reports after it wait one interval each.
	for i := 0; i < 7; i++ {
		if err := p.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := []time.Duration{time.Millisecond, time.Millisecond, time.Millisecond}
	if len(c.sleeps) != len(want) {
		t.Fatalf("sleeps %v, want %v", c.sleeps, want)
	}
	for i := range want {
		if c.sleeps[i] != want[i] {
			t.Fatalf("sleeps %v, want %v", c.sleeps, want)
		}
	}

	// Idle time refills the allowance, never beyond the burst.
	c.sleeps = nil
	c.t = c.t.Add(time.Second)
	for i := 0; i < 5; i++ {
		if err := p.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.sleeps) != 1 || c.sleeps[0] != time.Millisecond {
		t.Fatalf("after idle: sleeps %v, want one of 1ms", c.sleeps)
	}

	// A 129-report message (a 7,609-byte PING) at the package's pace: the
	// burst, then one report per interval.
	c.sleeps = nil
	c.t = c.t.Add(time.Second)
	q := c.pacer(FrameInterval, PaceBurst)
	start := c.t
	for i := 0; i < 129; i++ {
		if err := q.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := c.t.Sub(start), time.Duration(129-PaceBurst)*FrameInterval; got != want {
		t.Fatalf("129 reports took %v of the clock, want %v", got, want)
	}

	// A cancelled context ends a wait.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for i := 0; i < PaceBurst; i++ {
		_ = q.Wait(cancelled)
	}
	if err := q.Wait(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait on a cancelled context: %v", err)
	}

	// A nil Pacer never waits.
	var none *Pacer
	if err := none.Wait(cancelled); err != nil {
		t.Fatalf("nil Pacer: %v", err)
	}
}
