package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mfad/mfad/ipc/api"
)

// TestKeyCLIListPINReset: mfactl key list --json, key pin set|change and
// key reset against the real daemon with a software key.
func TestKeyCLIListPINReset(t *testing.T) {
	d := startWithEmulators(t, "")
	c := d.client()
	ctx := context.Background()
	if _, err := c.AddEmulator(ctx, api.AddEmulator{Name: "lab"}); err != nil {
		t.Fatal(err)
	}
	// keyNamed reads `mfactl --json key list`: one JSON object per line.
	keyNamed := func(id string) api.Key {
		t.Helper()
		out, errs, code := mfactl(t, d.sock, "key", "list", "--json")
		if code != 0 {
			t.Fatalf("key list --json: exit %d %s", code, errs)
		}
		var found *api.Key
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var k api.Key
			if err := json.Unmarshal([]byte(line), &k); err != nil {
				t.Fatalf("key list --json line %q: %v", line, err)
			}
			if k.ID == id {
				found = &k
			}
		}
		if found == nil {
			t.Fatalf("key %s not listed:\n%s", id, out)
		}
		return *found
	}
	if k := keyNamed("emu-lab"); k.AAGUID != "6d666164-2d65-6d75-2d73-6f66746b6579" || k.Options["clientPin"] {
		t.Fatalf("listed %+v", k)
	}

	// The PIN is never an argument; it is read from stdin here.
	if _, errs, code := mfactl(t, d.sock, "key", "pin", "set", "emu-lab", "2468"); code != 2 || !strings.Contains(errs, "accepts 1 arg") {
		t.Fatalf("pin on the command line: exit %d %s", code, errs)
	}
	if _, errs, code := mfactlIn(t, d.sock, "2468\n1357\n", "key", "pin", "set", "emu-lab"); code == 0 || !strings.Contains(errs, "the PINs differ") {
		t.Fatalf("differing PINs: exit %d %s", code, errs)
	}
	if _, errs, code := mfactlIn(t, d.sock, "2468\n2468\n", "key", "pin", "set", "emu-lab"); code != 0 || !strings.Contains(errs, "is set") {
		t.Fatalf("pin set: exit %d %s", code, errs)
	}
	if k := keyNamed("emu-lab"); !k.Options["clientPin"] || k.PINRetries == nil || *k.PINRetries != 8 {
		t.Fatalf("after pin set: %+v", k)
	}
	out, errs, code := mfactlIn(t, d.sock, "0000\n1357\n1357\n", "key", "pin", "change", "emu-lab")
	if code == 0 || !strings.Contains(errs, "[invalid_pin]") || strings.Contains(out+errs, "1357") || strings.Contains(out+errs, "0000") {
		t.Fatalf("pin change with a wrong PIN: exit %d %s %s", code, out, errs)
	}
	if k := keyNamed("emu-lab"); k.PINRetries == nil || *k.PINRetries != 7 {
		t.Fatalf("a wrong PIN did not count: %+v", k)
	}
	if _, errs, code := mfactlIn(t, d.sock, "2468\n1357\n1357\n", "key", "pin", "change", "emu-lab"); code != 0 || !strings.Contains(errs, "is changed") {
		t.Fatalf("pin change: exit %d %s", code, errs)
	}
	if k := keyNamed("emu-lab"); k.PINRetries == nil || *k.PINRetries != 8 {
		t.Fatalf("after pin change: %+v", k)
	}
	// The new PIN is the one the key takes: changing from the old one fails.
	if _, errs, code := mfactlIn(t, d.sock, "2468\n1111\n1111\n", "key", "pin", "change", "emu-lab"); code == 0 || !strings.Contains(errs, "[invalid_pin]") {
		t.Fatalf("pin change from the old PIN: exit %d %s", code, errs)
	}

	// Reset: refused without --yes off a terminal, refused to a user who is
	// not an admin, done by an admin just after a replug.
	if _, errs, code := mfactl(t, d.sock, "key", "reset", "emu-lab"); code != 2 || !strings.Contains(errs, "confirm with --yes") {
		t.Fatalf("reset without --yes: exit %d %s", code, errs)
	}
	if !keyNamed("emu-lab").Options["clientPin"] {
		t.Fatal("a refused reset erased the key")
	}
	if _, errs, code := mfactlAs(t, userOther, d.sock, nil, "key", "reset", "emu-lab", "--yes"); code == 0 || !strings.Contains(errs, "permission_denied") {
		t.Fatalf("reset by a user: exit %d %s", code, errs)
	}
	for _, action := range []string{"unplug", "plug"} {
		if err := c.EmulatorAction(ctx, "lab", action, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, errs, code := mfactl(t, d.sock, "key", "reset", "emu-lab", "--yes"); code != 0 || !strings.Contains(errs, "is reset") {
		t.Fatalf("reset: exit %d %s", code, errs)
	}
	if k := keyNamed("emu-lab"); k.Options["clientPin"] {
		t.Fatalf("PIN still set after reset: %+v", k)
	}
}
