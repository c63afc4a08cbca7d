package e2e

import (
	"context"
	"encoding/json"
	"io"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/mfad/mfad/ipc/api"
)

// eventWatcher follows /v1/events with mfactl under some uid.
type eventWatcher struct {
	cmd    *exec.Cmd
	events chan api.Event
}

// watchEvents starts mfactl --json events under attr (nil: root) and
// returns once the stream is subscribed.
func watchEvents(t *testing.T, sock string, attr *syscall.SysProcAttr) *eventWatcher {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "mfactl"), "--socket", sock, "--json", "events")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/"}
	cmd.SysProcAttr = attr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &eventWatcher{cmd: cmd, events: make(chan api.Event, 256)}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	go func() {
		defer close(w.events)
		dec := json.NewDecoder(out)
		for {
			var e api.Event
			if err := dec.Decode(&e); err != nil {
				io.Copy(io.Discard, out)
				return
			}
			if e.Event != "heartbeat" {
				w.events <- e
			}
		}
	}()
	select {
	case e, ok := <-w.events:
		if !ok || e.Event != "subscribed" {
			t.Fatalf("event stream did not start: %+v", e)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("event stream did not start")
	}
	return w
}

// until collects events until one satisfies last (included) or the
// stream has been quiet for quiet after the deadline's start.
func (w *eventWatcher) until(t *testing.T, last func(api.Event) bool, quiet time.Duration) []api.Event {
	t.Helper()
	var got []api.Event
	for {
		select {
		case e, ok := <-w.events:
			if !ok {
				return got
			}
			got = append(got, e)
			if last != nil && last(e) {
				return got
			}
		case <-time.After(quiet):
			if last != nil {
				t.Fatalf("the expected last event did not come; got %+v", got)
			}
			return got
		}
	}
}

// namelessUID is a uid with no passwd entry.
func namelessUID(t *testing.T) uint32 {
	for uid := 47000; uid < 48000; uid++ {
		if _, err := user.LookupId(strconv.Itoa(uid)); err != nil {
			return uint32(uid)
		}
	}
	t.Fatal("no free uid")
	return 0
}

// TestEventsPrivacy: a user's event stream carries only security events
// of their own account; backups, token imports and key hotplug (which
// names serials) reach admins only; a uid with no passwd entry receives
// nothing. Real uids, each in its own process.
func TestEventsPrivacy(t *testing.T) {
	needRoot(t)
	d := startWithEmulators(t, "")
	c := d.client()
	ctx := context.Background()
	for _, n := range []string{userSelf, userOther} {
		if _, err := c.CreateAccount(ctx, api.CreateAccount{Name: n, Kind: "member"}); err != nil {
			t.Fatal(err)
		}
	}
	uid := namelessUID(t)
	watchers := map[string]*eventWatcher{}
	for _, who := range []string{userSelf, userOther, userAdmin} {
		cmd := exec.Command("true")
		runAs(cmd, who)
		watchers[who] = watchEvents(t, d.sock, cmd.SysProcAttr)
	}
	nameless := watchEvents(t, d.sock, credOf(uid, uid))

	// Events that name no account, then one per account.
	if _, err := c.Backup(ctx, io.Discard); err != nil {
		t.Fatal(err)
	}
	raw := `<?xml version="1.0"?><KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc"><KeyPackage>` +
		`<DeviceInfo><Manufacturer>Lab</Manufacturer><SerialNo>PRIV-SN-1</SerialNo></DeviceInfo>` +
		`<Key Id="PRIV-SN-1" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:totp"><AlgorithmParameters><ResponseFormat Length="6" Encoding="DECIMAL"/></AlgorithmParameters>` +
		`<Data><Secret><PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</PlainValue></Secret><TimeInterval><PlainValue>30</PlainValue></TimeInterval></Data></Key></KeyPackage></KeyContainer>`
	if _, err := c.ImportTokens(ctx, api.TokenImport{PSKC: raw}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddEmulator(ctx, api.AddEmulator{Name: "priv"}); err != nil {
		t.Fatal(err)
	}
	if err := c.EmulatorAction(ctx, "priv", "unplug", nil); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{userSelf, userOther} {
		if _, err := c.PatchAccount(ctx, n, api.PatchAccount{Unlock: true}); err != nil {
			t.Fatal(err)
		}
	}
	unlockOf := func(account string) func(api.Event) bool {
		return func(e api.Event) bool {
			return e.Audit != nil && e.Audit.Account == account && e.Audit.Action == "account.unlock"
		}
	}

	for _, who := range []string{userSelf, userOther} {
		got := watchers[who].until(t, unlockOf(who), 20*time.Second)
		for _, e := range got {
			if e.Audit == nil || e.Audit.Account != who {
				t.Errorf("%s's stream carries %s %+v %+v", who, e.Event, e.Audit, e.Key)
			}
		}
	}
	seen := map[string]bool{}
	for _, e := range watchers[userAdmin].until(t, unlockOf(userOther), 20*time.Second) {
		seen[e.Event] = true
		if e.Audit != nil {
			seen[e.Audit.Action] = true
		}
	}
	for _, want := range []string{"key_added", "key_removed", "store.backup"} {
		if !seen[want] {
			t.Errorf("the admin's stream lacks %s: %v", want, seen)
		}
	}
	// Every event was published before the admin saw the last one; the
	// nameless stream gets a moment more to show any it was given.
	if got := nameless.until(t, nil, time.Second); len(got) > 0 {
		t.Errorf("a uid with no passwd entry received %d events, first %s %+v %+v", len(got), got[0].Event, got[0].Audit, got[0].Key)
	}
}
