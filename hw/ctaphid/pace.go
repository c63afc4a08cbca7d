package ctaphid

import (
	"context"
	"sync"
	"time"
)

// A USB interrupt endpoint gives each direction flow control: a full-speed
// key's endpoint carries at most one 64-byte report per 1 ms frame, and
// the host's write of an output report waits for the transfer. A virtual
// HID device (Linux uhid) has neither: the kernel queues at most 32 uhid
// events towards the device and drops output reports past them (uhid.c,
// "Output queue is full"), and buffers at most 64 input reports per open
// hidraw file and drops the newest past them, silently (hidraw.c,
// hidraw_report_event). A 7,609-byte message is 129 reports: written in one
// burst, its tail is lost whenever the other side is not scheduled during
// the burst, as in a one-CPU VM. A Pacer spaces the reports of such a link
// the way a USB endpoint would.
const (
	// FrameInterval is a full-speed USB frame: at most one report per
	// interrupt endpoint per frame.
	FrameInterval = time.Millisecond
	// PaceBurst reports go at once before pacing starts: a short message
	// (up to about 1 KB) is not slowed, and a peer may fall behind by the
	// rest of the kernel's buffer (16 of 32 uhid events, 48 of 64 hidraw
	// reports) before a report is lost.
	PaceBurst = 16
)

// Pacer spaces reports by an interval with a burst allowance (a generic
// cell rate algorithm: tat is the theoretical arrival time of the next
// report). It is safe for concurrent use.
type Pacer struct {
	interval time.Duration
	burst    int
	now      func() time.Time
	sleep    func(context.Context, time.Duration) error

	mu  sync.Mutex
	tat time.Time
}

// NewPacer returns a Pacer that lets burst reports go at once and then one
// per interval.
func NewPacer(interval time.Duration, burst int) *Pacer {
	if burst < 1 {
		burst = 1
	}
	return &Pacer{interval: interval, burst: burst, now: time.Now, sleep: sleepCtx}
}

// Wait returns when the next report may go, or with ctx's error. A nil
// Pacer never waits.
func (p *Pacer) Wait(ctx context.Context) error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	now := p.now()
	if p.tat.Before(now) {
		p.tat = now
	}
	delay := p.tat.Sub(now) - time.Duration(p.burst-1)*p.interval
	p.tat = p.tat.Add(p.interval)
	p.mu.Unlock()
	if delay <= 0 {
		return nil
	}
	return p.sleep(ctx, delay)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
