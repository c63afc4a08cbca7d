package e2e

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mfad/mfad/ipc/api"
)

// junitFile is what a CI system reads of mfactl's JUnit report.
type junitFile struct {
	Tests    int `xml:"tests,attr"`
	Failures int `xml:"failures,attr"`
	Suites   []struct {
		Name       string `xml:"name,attr"`
		Tests      int    `xml:"tests,attr"`
		Failures   int    `xml:"failures,attr"`
		Properties []struct {
			Name  string `xml:"name,attr"`
			Value string `xml:"value,attr"`
		} `xml:"properties>property"`
		Cases []struct {
			Name    string `xml:"name,attr"`
			Failure *struct {
				Message string `xml:"message,attr"`
			} `xml:"failure"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// TestKeyCheckEndToEnd: mfactl key check against the real daemon with a
// software key: progress on stderr, a JUnit report with the key's
// identity and no failure; then a fault injected into the key makes the
// check it concerns fail, in the JSON report and in the exit status.
func TestKeyCheckEndToEnd(t *testing.T) {
	d := startWithEmulators(t, "")
	c := d.client()
	ctx := context.Background()
	if _, err := c.AddEmulator(ctx, api.AddEmulator{Name: "lab"}); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(t.TempDir(), "keys.xml")
	out, errs, code := mfactl(t, d.sock, "key", "check", "emu-lab", "--report", "junit", "--output", report)
	if code != 0 || out != "" || !strings.Contains(errs, "emu-lab: ctaphid.ping pass") || !strings.Contains(errs, "the key may be removed") {
		t.Fatalf("key check: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
	raw, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var ju junitFile
	if err := xml.Unmarshal(raw, &ju); err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	if len(ju.Suites) != 1 || ju.Failures != 0 || ju.Tests < 20 || ju.Suites[0].Tests != len(ju.Suites[0].Cases) {
		t.Fatalf("junit: %+v", ju)
	}
	props := map[string]string{}
	for _, p := range ju.Suites[0].Properties {
		props[p.Name] = p.Value
	}
	if props["aaguid"] != "6d666164-2d65-6d75-2d73-6f66746b6579" || props["serial"] != "lab" || props["manufacturer"] != "mfad" || props["firmware"] != "1" {
		t.Errorf("suite properties %v", props)
	}

	// A key that answers the next CBOR command with CTAP1_ERR_OTHER fails
	// the GetInfo check; mfactl says so in its exit status.
	if err := c.EmulatorAction(ctx, "lab", "fault", &api.Fault{Kind: "ctap_error", Count: 1}); err != nil {
		t.Fatal(err)
	}
	out, errs, code = mfactl(t, d.sock, "key", "check", "lab", "--report", "json")
	if code != 1 || !strings.Contains(errs, "1 check(s) failed") {
		t.Fatalf("with a fault: exit %d\nstderr %s", code, errs)
	}
	var file struct {
		Version int                  `json:"version"`
		Reports []api.KeyCheckReport `json:"reports"`
	}
	if err := json.Unmarshal([]byte(out), &file); err != nil || file.Version != 1 || len(file.Reports) != 1 {
		t.Fatalf("json report (%v): %s", err, out)
	}
	rep := file.Reports[0]
	if rep.Failed != 1 || rep.Key.ID != "emu-lab" {
		t.Errorf("report: %d failed, key %+v", rep.Failed, rep.Key)
	}
	for _, r := range rep.Results {
		if (r.Result == "fail") != (r.ID == "getinfo.fields") {
			t.Errorf("%s: %s %s", r.ID, r.Result, r.Reason)
		}
		if r.ID == "getinfo.fields" && !strings.Contains(r.Reason, "CTAP1_ERR_OTHER") {
			t.Errorf("getinfo.fields failed for %q", r.Reason)
		}
	}
}

// TestKeyCheckDestructiveOnSoftwareKey: the destructive battery through
// the API sets a PIN, and resets the software key after the daemon
// power-cycles it (the key comes back under the same id); the key is left
// without a PIN. Unknown keys and unknown checks are refused.
func TestKeyCheckDestructiveOnSoftwareKey(t *testing.T) {
	d := startWithEmulators(t, "")
	c := d.client()
	ctx := context.Background()
	if _, err := c.AddEmulator(ctx, api.AddEmulator{Name: "tray"}); err != nil {
		t.Fatal(err)
	}
	var events []string
	rep, err := c.CheckKey(ctx, "emu-tray", api.KeyCheckRequest{Destructive: true, PIN: "112358"}, func(e api.Event) {
		events = append(events, e.Event)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		want := "pass"
		if r.ID == "ctaphid.keepalive" || r.ID == "ctaphid.cancel" {
			want = "skip" // presence is approved by the key itself
		}
		if r.Result != want {
			t.Errorf("%s: %s %s %v", r.ID, r.Result, r.Reason, r.Observed)
		}
	}
	joined := strings.Join(events, " ")
	if !strings.Contains(joined, "check_started") || !strings.Contains(joined, "check_done") || !strings.Contains(joined, "replug_required") {
		t.Errorf("events: %s", joined)
	}
	keys, err := c.Keys(ctx)
	if err != nil || len(keys) != 1 || keys[0].ID != "emu-tray" || keys[0].Options["clientPin"] {
		t.Errorf("after the battery: %+v %v", keys, err)
	}
	if _, err := c.CheckKey(ctx, "nope", api.KeyCheckRequest{}, nil); !isCode(err, api.CodeKeyNotFound) {
		t.Errorf("unknown key: %v", err)
	}
	if _, err := c.CheckKey(ctx, "emu-tray", api.KeyCheckRequest{Only: []string{"no.such.check"}}, nil); !isCode(err, api.CodeInvalidRequest) {
		t.Errorf("unknown check: %v", err)
	}
}

func isCode(err error, code string) bool {
	var p *api.Problem
	return errors.As(err, &p) && p.Code == code
}

// TestKeyCheckTouchPrompts: a software key that waits for touches. The
// stream asks for each touch inside the check that needs it (the test
// touches the key through the API while asked), warns before the wait
// that must not be answered, and every non-destructive check passes,
// KEEPALIVE and CANCEL included.
func TestKeyCheckTouchPrompts(t *testing.T) {
	d := startWithEmulators(t, "")
	c := d.client()
	ctx := context.Background()
	if _, err := c.AddEmulator(ctx, api.AddEmulator{Name: "hand", Presence: "manual"}); err != nil {
		t.Fatal(err)
	}
	var stop chan struct{}
	var prompts, warnings int
	var current *api.KeyCheckResult
	rep, err := c.CheckKey(ctx, "emu-hand", api.KeyCheckRequest{}, func(e api.Event) {
		switch e.Event {
		case "check_started":
			current = e.Check
		case "touch_required":
			prompts++
			if current == nil || !current.Touch || e.Check == nil || e.Check.ID != current.ID || e.Message == "" {
				t.Errorf("touch prompt %+v during %+v", e, current)
			}
			if stop == nil {
				stop = make(chan struct{})
				go func(stop chan struct{}) {
					for {
						c.EmulatorAction(ctx, "hand", "touch", nil)
						select {
						case <-stop:
							return
						case <-time.After(20 * time.Millisecond):
						}
					}
				}(stop)
			}
		case "do_not_touch":
			warnings++
		case "check_done":
			if stop != nil {
				close(stop)
				stop = nil
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		want := "pass"
		if r.Destructive {
			want = "skip"
		}
		if r.Result != want {
			t.Errorf("%s: %s %s %v", r.ID, r.Result, r.Reason, r.Observed)
		}
	}
	if prompts == 0 || warnings != 1 {
		t.Errorf("%d touch prompts, %d warnings not to touch", prompts, warnings)
	}
}

// TestKeyWatchCheck: mfactl key watch --check runs the battery on a key
// as it is plugged in, writes its JUnit report named by the key's serial,
// and says when the key may be removed.
func TestKeyWatchCheck(t *testing.T) {
	d := startWithEmulators(t, "")
	dir := t.TempDir()
	cmd := exec.Command(filepath.Join(binDir, "mfactl"), "key", "watch", "--check", "--report", "junit", "--output", dir)
	cmd.Env = append(os.Environ(), "MFAD_SOCKET="+d.sock)
	errb := &syncBuffer{}
	cmd.Stderr = errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	waitFor(t, func() bool { return strings.Contains(errb.String(), "Waiting for keys") })
	if _, err := d.client().AddEmulator(context.Background(), api.AddEmulator{Name: "tray-1"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(errb.String(), "The key may be removed") })
	raw, err := os.ReadFile(filepath.Join(dir, "tray-1.xml"))
	if err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	var ju junitFile
	if err := xml.Unmarshal(raw, &ju); err != nil || len(ju.Suites) != 1 || ju.Failures != 0 || ju.Tests < 20 {
		t.Fatalf("report (%v): %+v", err, ju)
	}
	if s := errb.String(); !strings.Contains(s, "emu-tray-1: plugged in") || !strings.Contains(s, "emu-tray-1: done, all checks passed or were skipped") {
		t.Errorf("stderr:\n%s", s)
	}
}

// waitFor polls cond for up to 30 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("gave up waiting")
		}
	}
}
