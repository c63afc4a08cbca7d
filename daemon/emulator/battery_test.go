package emulator

import (
	"context"
	"testing"
	"time"

	"github.com/mfad/mfad/hw/emu"
	"github.com/mfad/mfad/hw/fidocheck"
	"github.com/mfad/mfad/hw/fidokey"
)

// batteryOverUDP runs the non-destructive battery on a software key
// reached over the UDP transport, as an outside suite reaches it; fault,
// when set, is injected (through the emulator, as the controller does) as
// the check at starts.
func batteryOverUDP(t testing.TB, fault *emu.Fault, at string) *fidocheck.Report {
	t.Helper()
	e, port := newUDPEmulator(t, emu.PresenceAuto)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	k, err := fidokey.Open(ctx, dialUDP(t, port.Addr()), fidokey.DeviceInfo{Path: "udp:" + port.Addr().String(), Serial: "udp"})
	if err != nil {
		t.Fatal(err)
	}
	opts := fidocheck.Options{}
	if fault != nil {
		opts.Progress = func(ev fidocheck.Event) {
			if ev.Kind == fidocheck.EventCheck && ev.Check.ID == at {
				if err := e.SetFault(*fault); err != nil {
					t.Error(err)
				}
			}
		}
	}
	return fidocheck.Run(ctx, k, opts)
}

// TestBatteryOverUDP: the battery passes on the software key over UDP
// (automatic presence skips only the checks that watch a wait for a touch,
// and the destructive ones), and a rolled-back counter fails cred.counter.
func TestBatteryOverUDP(t *testing.T) {
	rep := batteryOverUDP(t, nil, "")
	for _, r := range rep.Results {
		switch r.Verdict {
		case fidocheck.Pass:
		case fidocheck.Skip:
			if r.Reason == "" {
				t.Errorf("%s skipped without a reason", r.ID)
			}
		default:
			t.Errorf("%s: %s (%s) %v", r.ID, r.Verdict, r.Reason, r.Observed)
		}
	}
	if len(rep.Results) != len(fidocheck.Checks()) {
		t.Fatalf("%d results for %d checks", len(rep.Results), len(fidocheck.Checks()))
	}
	rep = batteryOverUDP(t, &emu.Fault{Kind: emu.FaultCounterRollback}, "cred.counter")
	failed := map[string]bool{}
	for _, r := range rep.Results {
		if r.Verdict == fidocheck.Fail {
			failed[r.ID] = true
		}
	}
	if !failed["cred.counter"] {
		t.Errorf("a rolled-back counter over UDP does not fail cred.counter: %v", failed)
	}
}

// BenchmarkBatteryOverUDP is the full non-destructive battery on the
// software key over UDP (docs/PERFORMANCE.md).
func BenchmarkBatteryOverUDP(b *testing.B) {
	for b.Loop() {
		batteryOverUDP(b, nil, "")
	}
}
