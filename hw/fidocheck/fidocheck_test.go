package fidocheck_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfad/mfad/hw/ctap2"
	"github.com/mfad/mfad/hw/emu"
	"github.com/mfad/mfad/hw/fidocheck"
	"github.com/mfad/mfad/hw/fidokey"
)

// attach starts a software key in-process and opens it.
func attach(t testing.TB, cfg emu.Config) (*emu.Key, *fidokey.Key) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ek, conn, err := emu.Attach(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ek.Close()
		cancel()
	})
	k, err := fidokey.Open(ctx, conn, fidokey.DeviceInfo{Path: "emu:test", Manufacturer: "mfad", Product: "mfad software key", Serial: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return ek, k
}

// toucher plays the user of a software key in manual presence mode: from a
// touch prompt to the end of its check it touches the key every few
// milliseconds (a touch given while nothing waits is dropped by the key),
// and never during the other checks.
type toucher struct {
	ek     *emu.Key
	mu     sync.Mutex
	stop   chan struct{}
	events []fidocheck.Event
	hook   func(fidocheck.Event)
}

func (tc *toucher) progress(e fidocheck.Event) {
	tc.mu.Lock()
	tc.events = append(tc.events, e)
	tc.mu.Unlock()
	if tc.hook != nil {
		tc.hook(e)
	}
	switch e.Kind {
	case fidocheck.EventTouch:
		if tc.stop == nil {
			tc.stop = make(chan struct{})
			go func(stop chan struct{}) {
				for {
					tc.ek.Touch()
					select {
					case <-stop:
						return
					case <-time.After(5 * time.Millisecond):
					}
				}
			}(tc.stop)
		}
	case fidocheck.EventResult:
		if tc.stop != nil {
			close(tc.stop)
			tc.stop = nil
		}
	}
}

func run(t *testing.T, ek *emu.Key, k *fidokey.Key, opts fidocheck.Options) (*fidocheck.Report, *toucher) {
	t.Helper()
	tc := &toucher{ek: ek, hook: opts.Progress}
	opts.Progress = tc.progress
	if opts.TouchTimeout == 0 {
		opts.TouchTimeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep := fidocheck.Run(ctx, k, opts)
	return rep, tc
}

func byID(rep *fidocheck.Report) map[string]fidocheck.Result {
	m := map[string]fidocheck.Result{}
	for _, r := range rep.Results {
		m[r.ID] = r
	}
	return m
}

func dump(t *testing.T, rep *fidocheck.Report) {
	t.Helper()
	for _, r := range rep.Results {
		t.Logf("%-24s %-4s %s", r.ID, r.Verdict, r.Reason)
		for _, o := range r.Observed {
			t.Logf("    %s", o)
		}
	}
}

// The software key in manual presence mode passes every non-destructive
// check, and skips the destructive ones saying why.
func TestBatteryPassesOnSoftwareKey(t *testing.T) {
	ek, k := attach(t, emu.Config{Presence: emu.PresenceManual})
	rep, tc := run(t, ek, k, fidocheck.Options{})
	results := byID(rep)
	if len(rep.Results) != len(fidocheck.Checks()) {
		t.Fatalf("%d results for %d checks", len(rep.Results), len(fidocheck.Checks()))
	}
	for _, c := range fidocheck.Checks() {
		r := results[c.ID]
		want := fidocheck.Pass
		if c.Destructive {
			want = fidocheck.Skip
		}
		if r.Verdict != want {
			dump(t, rep)
			t.Fatalf("%s: %s (%s), want %s", c.ID, r.Verdict, r.Reason, want)
		}
		if r.Section == "" || r.Name == "" {
			t.Errorf("%s: no section or name", c.ID)
		}
		if want == fidocheck.Pass && len(r.Observed) == 0 {
			t.Errorf("%s passed without observing anything", c.ID)
		}
		if want == fidocheck.Skip && !strings.Contains(r.Reason, "destructive") {
			t.Errorf("%s skipped for %q", c.ID, r.Reason)
		}
	}
	if rep.Key.AAGUID != emu.AAGUIDString || rep.Key.Serial != "test" || rep.Key.Firmware != 1 || rep.Key.DeviceVersion != "1.0.0" {
		t.Errorf("identity %+v", rep.Key)
	}
	// The key prompted for touches, each inside a check that needs one,
	// and warned before the wait that must not be answered.
	var touches, noTouch int
	var current fidocheck.Check
	for _, e := range tc.events {
		switch e.Kind {
		case fidocheck.EventCheck:
			current = e.Check
		case fidocheck.EventTouch:
			touches++
			if !current.Touch {
				t.Errorf("touch prompt during %s, which says it needs none", current.ID)
			}
		case fidocheck.EventNoTouch:
			noTouch++
		}
	}
	if touches == 0 || noTouch != 1 {
		t.Errorf("%d touch prompts, %d warnings not to touch", touches, noTouch)
	}
}

// With presence approved by the key itself, the checks that need a wait
// for the user are skipped with the reason, the others pass.
func TestBatteryAutoPresence(t *testing.T) {
	ek, k := attach(t, emu.Config{})
	rep, _ := run(t, ek, k, fidocheck.Options{})
	for _, r := range rep.Results {
		want := fidocheck.Pass
		if r.Destructive || r.ID == "ctaphid.keepalive" || r.ID == "ctaphid.cancel" {
			want = fidocheck.Skip
		}
		if r.Verdict != want {
			dump(t, rep)
			t.Fatalf("%s: %s (%s), want %s", r.ID, r.Verdict, r.Reason, want)
		}
	}
	if r := byID(rep)["ctaphid.cancel"]; !strings.Contains(r.Reason, "without waiting for a touch") {
		t.Errorf("cancel skipped for %q", r.Reason)
	}
}

// With destructive checks allowed, a PIN and a way to replug, the PIN,
// lockout, credential management and reset checks pass too, and leave the
// key reset.
func TestBatteryDestructive(t *testing.T) {
	ek, k := attach(t, emu.Config{Presence: emu.PresenceManual})
	replugged := 0
	rep, tc := run(t, ek, k, fidocheck.Options{
		Destructive: true,
		PIN:         "314159",
		Replug: func(ctx context.Context) (*fidokey.Key, error) {
			replugged++
			ek.Unplug()
			conn, err := ek.Plug()
			if err != nil {
				return nil, err
			}
			return fidokey.Open(ctx, conn, k.Device())
		},
	})
	for _, r := range rep.Results {
		if r.Verdict != fidocheck.Pass {
			dump(t, rep)
			t.Fatalf("%s: %s (%s)", r.ID, r.Verdict, r.Reason)
		}
	}
	if replugged != 2 || ek.ResidentCredentials() != 0 { // pin.lockout, then reset
		t.Errorf("replugged %d times, %d resident credentials left", replugged, ek.ResidentCredentials())
	}
	var replugPrompt bool
	for _, e := range tc.events {
		replugPrompt = replugPrompt || e.Kind == fidocheck.EventReplug && strings.Contains(e.Message, "10 seconds")
	}
	if !replugPrompt {
		t.Error("no replug prompt explaining the 10-second rule")
	}
}

// Destructive checks that lack what they need say so instead of failing.
func TestBatteryDestructiveWithoutPINOrReplug(t *testing.T) {
	ek, k := attach(t, emu.Config{})
	rep, _ := run(t, ek, k, fidocheck.Options{Destructive: true, Only: []string{"pin.set", "pin.retries", "pin.lockout", "reset"}})
	for _, r := range rep.Results {
		if r.Verdict != fidocheck.Skip || r.Reason == "" {
			t.Errorf("%s: %s %q", r.ID, r.Verdict, r.Reason)
		}
	}
	if len(rep.Results) != 4 {
		t.Fatalf("%d results", len(rep.Results))
	}
}

// A key with a PIN and no PIN given: the credential checks are skipped
// with the reason rather than failed.
func TestBatteryKeyWithPIN(t *testing.T) {
	ek, k := attach(t, emu.Config{})
	ctx := context.Background()
	if err := k.SetPIN(ctx, "271828"); err != nil {
		t.Fatal(err)
	}
	rep, _ := run(t, ek, k, fidocheck.Options{Only: []string{"cred.es256", "cred.exclude"}})
	for _, r := range rep.Results {
		if r.Verdict != fidocheck.Skip {
			t.Errorf("%s: %s %q", r.ID, r.Verdict, r.Reason)
		}
	}
	rep, _ = run(t, ek, k, fidocheck.Options{PIN: "271828", Only: []string{"cred.es256", "cred.exclude", "cred.counter"}})
	for _, r := range rep.Results {
		if r.Verdict != fidocheck.Pass {
			dump(t, rep)
			t.Errorf("with the PIN, %s: %s %q", r.ID, r.Verdict, r.Reason)
		}
	}
}

// Every fault the software key can inject makes the check it concerns
// fail. The table must name every fault kind of hw/emu.
func TestEveryFaultFailsACheck(t *testing.T) {
	faults := []struct {
		fault emu.Fault
		// at is the check at whose start the fault is injected ("" before
		// the run).
		at       string
		manual   bool
		wantFail string
	}{
		{emu.Fault{Kind: emu.FaultNoAnswer}, "", false, "ctaphid.init"},
		{emu.Fault{Kind: emu.FaultCorruptFrames}, "", false, "ctaphid.init"},
		{emu.Fault{Kind: emu.FaultCTAPError, Status: byte(ctap2.ErrOther)}, "", false, "getinfo.fields"},
		{emu.Fault{Kind: emu.FaultCounterRollback}, "cred.counter", false, "cred.counter"},
		{emu.Fault{Kind: emu.FaultSlowKeepalive, Interval: 2 * time.Second}, "", true, "ctaphid.keepalive"},
	}
	covered := map[string]bool{}
	for _, f := range faults {
		covered[f.fault.Kind] = true
		t.Run(f.fault.Kind, func(t *testing.T) {
			cfg := emu.Config{}
			if f.manual {
				cfg.Presence = emu.PresenceManual
			}
			ek, k := attach(t, cfg)
			inject := func() {
				if err := ek.SetFault(f.fault); err != nil {
					t.Error(err)
				}
			}
			opts := fidocheck.Options{Timeout: 300 * time.Millisecond, TouchTimeout: 3 * time.Second}
			if f.at == "" {
				inject()
			} else {
				opts.Progress = func(e fidocheck.Event) {
					if e.Kind == fidocheck.EventCheck && e.Check.ID == f.at {
						inject()
					}
				}
			}
			rep, _ := run(t, ek, k, opts)
			r := byID(rep)[f.wantFail]
			if r.Verdict != fidocheck.Fail || r.Reason == "" {
				dump(t, rep)
				t.Fatalf("%s with fault %s: %s %q, want fail", f.wantFail, f.fault.Kind, r.Verdict, r.Reason)
			}
			t.Logf("%s: %s", f.wantFail, r.Reason)
		})
	}
	for _, kind := range []string{emu.FaultNoAnswer, emu.FaultCTAPError, emu.FaultCorruptFrames, emu.FaultCounterRollback, emu.FaultSlowKeepalive} {
		if !covered[kind] {
			t.Errorf("fault %s makes no check fail in this table", kind)
		}
	}
}

// The catalogue has unique ids, and every check names its section.
func TestCatalogue(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range fidocheck.Checks() {
		if seen[c.ID] || c.ID == "" || c.Name == "" || !strings.Contains(c.Section, "§") {
			t.Errorf("check %+v", c)
		}
		seen[c.ID] = true
	}
}

// The non-destructive battery on the software key in-process, presence
// approved by the key: what a tray's run costs beside the touches. Most
// of it is ctaphid.timeout waiting for the key's message timeout.
func BenchmarkBattery(b *testing.B) {
	_, k := attach(b, emu.Config{})
	for b.Loop() {
		rep := fidocheck.Run(context.Background(), k, fidocheck.Options{})
		if _, fail, _ := rep.Counts(); fail != 0 {
			b.Fatalf("%d checks failed", fail)
		}
	}
}

// The same without ctaphid.timeout: the battery's own cost.
func BenchmarkBatteryWithoutTimeoutCheck(b *testing.B) {
	_, k := attach(b, emu.Config{})
	var only []string
	for _, c := range fidocheck.Checks() {
		if c.ID != "ctaphid.timeout" && !c.Destructive {
			only = append(only, c.ID)
		}
	}
	for b.Loop() {
		rep := fidocheck.Run(context.Background(), k, fidocheck.Options{Only: only})
		if _, fail, _ := rep.Counts(); fail != 0 {
			b.Fatalf("%d checks failed", fail)
		}
	}
}
