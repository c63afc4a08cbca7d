package hidraw

import (
	"bytes"
	"context"
	"sort"
	"strings"
	"time"
)

// Event is a FIDO device plugged in (Added) or out.
type Event struct {
	Added  bool
	Device Device
	// Time is when the kernel's uevent (or the re-scan that saw the change)
	// was received.
	Time time.Time
}

// RescanInterval is how often Watch re-scans sysfs when it cannot listen to
// kernel uevents (no netlink in a container, for instance).
var RescanInterval = time.Second

// uevent is a kernel uevent: "ACTION@DEVPATH\0KEY=VALUE\0..."
// (lib/kobject_uevent.c). Messages from udevd start with "libudev" and are
// not kernel uevents.
type uevent struct {
	Action, DevPath, Subsystem, DevName string
}

// parseUevent reads one kernel uevent datagram; ok is false for anything
// else (udevd's messages, garbage).
func parseUevent(b []byte) (uevent, bool) {
	if bytes.HasPrefix(b, []byte("libudev")) {
		return uevent{}, false
	}
	fields := bytes.Split(b, []byte{0})
	if len(fields) < 2 || !bytes.Contains(fields[0], []byte("@")) {
		return uevent{}, false
	}
	var u uevent
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(string(f), "=")
		if !ok {
			continue
		}
		switch k {
		case "ACTION":
			u.Action = v
		case "DEVPATH":
			u.DevPath = v
		case "SUBSYSTEM":
			u.Subsystem = v
		case "DEVNAME":
			u.DevName = v
		}
	}
	return u, u.Action != "" && u.Subsystem != ""
}

// scanner keeps the FIDO devices last seen and reports the difference of a
// new scan.
type scanner struct {
	sysRoot string
	known   map[string]Device // by Path
}

// rescan enumerates and returns what changed since the last scan: removals
// first, then additions, each sorted by path.
func (s *scanner) rescan(now time.Time) []Event {
	devs, err := Enumerate(s.sysRoot)
	if err != nil {
		return nil // keep the last view; the next uevent or tick tries again
	}
	seen := make(map[string]Device, len(devs))
	for _, d := range devs {
		seen[d.Path] = d
	}
	var evs []Event
	for p, d := range s.known {
		if nd, ok := seen[p]; !ok || !sameDevice(d, nd) {
			evs = append(evs, Event{Added: false, Device: d, Time: now})
		}
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].Device.Path < evs[j].Device.Path })
	for _, d := range devs {
		if od, ok := s.known[d.Path]; !ok || !sameDevice(od, d) {
			evs = append(evs, Event{Added: true, Device: d, Time: now})
		}
	}
	s.known = seen
	return evs
}

// sameDevice tells whether a node still holds the same device (a node name
// is reused when a key is replaced between two scans).
func sameDevice(a, b Device) bool {
	ua, ub := a.USB, b.USB
	if (ua == nil) != (ub == nil) || (ua != nil && *ua != *ub) {
		return false
	}
	a.USB, b.USB = nil, nil
	return a == b
}

// send delivers events, giving up when ctx ends.
func send(ctx context.Context, out chan<- Event, evs []Event) error {
	for _, e := range evs {
		select {
		case out <- e:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// pollWatch is the fallback: a re-scan every RescanInterval.
func pollWatch(ctx context.Context, s *scanner, out chan<- Event) error {
	t := time.NewTicker(RescanInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case now := <-t.C:
			if err := send(ctx, out, s.rescan(now)); err != nil {
				return err
			}
		}
	}
}
