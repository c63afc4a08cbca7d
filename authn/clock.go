package authn

import (
	"log/slog"
	"sync"
	"time"
)

// clockWatch remembers the drift each TOTP device showed at its latest
// successful verification. When most recently verified devices agree on
// the same non-zero drift, the host clock is the likelier culprit.
type clockWatch struct {
	mu     sync.Mutex
	log    *slog.Logger
	recent map[string]clockSample
	warned bool
}

type clockSample struct {
	driftSeconds int64
	at           time.Time
}

// Clock verdict thresholds: at least clockMinDevices devices verified in
// the last clockHorizon, and at least 80% of them within one step of the
// same non-zero drift.
const (
	clockMinDevices = 3
	clockHorizon    = 24 * time.Hour
	clockMaxSamples = 256
)

func newClockWatch(log *slog.Logger) *clockWatch {
	return &clockWatch{log: log, recent: map[string]clockSample{}}
}

// ClockVerdict is the host clock check.
type ClockVerdict struct {
	HostClockSuspect bool  // most devices drift alike
	OffsetSeconds    int64 // how far the host seems off (device time - host time)
	Devices          int   // devices considered
	Agreeing         int   // devices showing that offset
}

func (c *clockWatch) observe(device string, driftSteps int64, period int, now time.Time) {
	c.mu.Lock()
	c.recent[device] = clockSample{driftSeconds: driftSteps * int64(period), at: now}
	if len(c.recent) > clockMaxSamples {
		oldest, at := "", now
		for id, s := range c.recent {
			if s.at.Before(at) {
				oldest, at = id, s.at
			}
		}
		delete(c.recent, oldest)
	}
	v := c.verdictLocked(now)
	changed := v.HostClockSuspect != c.warned
	c.warned = v.HostClockSuspect
	c.mu.Unlock()
	if changed && v.HostClockSuspect {
		c.log.Warn("host clock looks wrong: most recently verified TOTP devices agree on the same drift",
			"offset_seconds", v.OffsetSeconds, "devices", v.Devices, "agreeing", v.Agreeing)
	} else if changed {
		c.log.Info("host clock check: devices no longer agree on a drift")
	}
}

// Verdict reports the current host clock check.
func (c *clockWatch) Verdict(now time.Time) ClockVerdict {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.verdictLocked(now)
}

func (c *clockWatch) verdictLocked(now time.Time) ClockVerdict {
	var samples []int64
	for _, s := range c.recent {
		if now.Sub(s.at) <= clockHorizon {
			samples = append(samples, s.driftSeconds)
		}
	}
	v := ClockVerdict{Devices: len(samples)}
	if len(samples) < clockMinDevices {
		return v
	}
	// The candidate offset is the one most samples lie within 30 s of.
	for _, cand := range samples {
		if cand == 0 {
			continue
		}
		n := 0
		for _, s := range samples {
			if abs64(s-cand) <= 30 {
				n++
			}
		}
		if n > v.Agreeing {
			v.Agreeing, v.OffsetSeconds = n, cand
		}
	}
	v.HostClockSuspect = v.Agreeing*5 >= len(samples)*4 && abs64(v.OffsetSeconds) > 30
	return v
}

func abs64(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// ClockCheck reports whether the host clock looks wrong.
func (s *Service) ClockCheck() ClockVerdict { return s.clock.Verdict(s.now()) }
