package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/spf13/cobra"

	"github.com/mfad/mfad/ipc/api"
	"github.com/mfad/mfad/ipc/client"
)

// TestEveryCommandHasExamples: every command a user can run shows how.
func TestEveryCommandHasExamples(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Name() == "completion" || c.Name() == "help" {
			return
		}
		if c.Example == "" {
			t.Errorf("%q has no Example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRoot(&app{}))
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		ran  bool
		want int
	}{
		{&client.ErrNotRunning{Socket: "/x", Err: syscall.ENOENT}, true, exitUnreachable},
		{fmt.Errorf("cannot connect (%w)", syscall.EACCES), true, exitUnreachable},
		{&api.Problem{Code: api.CodeInvalidCode}, true, exitRefused},
		{&api.Problem{Code: api.CodePermissionDenied}, true, exitRefused},
		{&api.Problem{Code: api.CodeNotFound}, true, exitNotFound},
		{&api.Problem{Code: api.CodeKeyNotFound}, true, exitNotFound},
		{fmt.Errorf("no device: %w", errNotFound), true, exitNotFound},
		{usagef("give --email or --phone"), true, exitUsage},
		{errors.New(`unknown command "frob" for "mfactl"`), false, exitUsage},
		{errors.New("not confirmed"), true, exitRefused},
	} {
		if got := exitCode(tc.err, tc.ran); got != tc.want {
			t.Errorf("exitCode(%v, ran=%v) = %d, want %d", tc.err, tc.ran, got, tc.want)
		}
	}
}

// runCLI runs mfactl in-process against a socket where nothing listens
// (commands that fail before reaching mfad, or fail to reach it).
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{out: &out, errOut: &errb}
	sock := filepath.Join(t.TempDir(), "none.sock")
	code := run(context.Background(), a, append([]string{"--socket", sock}, args...))
	return out.String(), errb.String(), code
}

func TestUsageAndUnreachable(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"frobnicate"}, exitUsage},
		{[]string{"account", "show"}, exitUsage},
		{[]string{"info", "--no-such-flag"}, exitUsage},
		{[]string{"device", "activate", "alice", "phone", "123456"}, exitUnreachable}, // resolving the device needs mfad
		{[]string{"info"}, exitUnreachable},
		{[]string{"account", "contact", "alice"}, exitUsage},
	} {
		_, errs, code := runCLI(t, tc.args...)
		if code != tc.want {
			t.Errorf("mfactl %v: exit %d, want %d (%s)", tc.args, code, tc.want, errs)
		}
	}
}

func TestJSONErrorsAreProblems(t *testing.T) {
	out, errs, code := runCLI(t, "--json", "info")
	if code != exitUnreachable || out != "" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	var p api.Problem
	if err := json.Unmarshal([]byte(errs), &p); err != nil || p.Code != "unreachable" || !strings.Contains(p.Detail, "not running") {
		t.Errorf("stderr %q is not a problem (%v): %+v", errs, err, p)
	}
	if strings.Count(errs, "\n") != 1 {
		t.Errorf("problem not on one line: %q", errs)
	}
}

// TestStepUpDefaultNotShown: a token in the environment never appears in
// help output.
func TestStepUpDefaultNotShown(t *testing.T) {
	t.Setenv("MFAD_STEP_UP", "s3cr3t-token-value")
	out, errs, code := runCLI(t, "device", "add", "--help")
	if code != 0 || strings.Contains(out+errs, "s3cr3t-token-value") || !strings.Contains(out, "--step-up TOKEN") {
		t.Errorf("help (exit %d) shows the token or lacks --step-up TOKEN:\n%s%s", code, out, errs)
	}
}

func TestConfirmationNeedsYes(t *testing.T) {
	// stdin is not a terminal under go test: --yes is required.
	_, errs, code := runCLI(t, "account", "delete", "bob")
	if code != exitUsage || !strings.Contains(errs, "--yes") {
		t.Errorf("delete without --yes: %d %q", code, errs)
	}
	// With --yes it goes on to mfad (absent here).
	if _, errs, code = runCLI(t, "account", "delete", "bob", "--yes"); code != exitUnreachable {
		t.Errorf("delete --yes: %d %q", code, errs)
	}
}

func TestCreateNeedsAUnixUser(t *testing.T) {
	_, errs, code := runCLI(t, "account", "create", "no-such-user-mfad-test")
	if code != exitUsage || !strings.Contains(errs, "--force") {
		t.Errorf("create of a non-user: %d %q", code, errs)
	}
	_, errs, code = runCLI(t, "account", "create", "no-such-user-mfad-test", "--force")
	if code != exitUnreachable || !strings.Contains(errs, "warning: no-such-user-mfad-test is not a user") {
		t.Errorf("create --force: %d %q", code, errs)
	}
	if _, errs, code = runCLI(t, "account", "create", "root"); code != exitUnreachable {
		t.Errorf("create root: %d %q", code, errs)
	}
}

func TestPickDevice(t *testing.T) {
	devs := []api.Device{
		{ID: "3f2a9c01", Type: "totp", State: "active", Label: "phone"},
		{ID: "3f2b1100", Type: "fido", State: "active", Label: "key"},
		{ID: "77aa0000", Type: "totp", State: "deactivated", Label: "old"},
		{ID: "77ab0000", Type: "totp", State: "deactivated", Label: "old"},
	}
	for _, tc := range []struct {
		ref, want string
		err       int
	}{
		{"3f2a9c01", "3f2a9c01", 0},
		{"phone", "3f2a9c01", 0},
		{"key", "3f2b1100", 0},
		{"3f2b", "3f2b1100", 0},
		{"3f2", "", exitNotFound}, // too short a prefix
		{"3f2", "", exitNotFound},
		{"old", "", exitUsage}, // two devices share the label
		{"77a", "", exitNotFound},
		{"77aa", "77aa0000", 0},
		{"tablet", "", exitNotFound},
	} {
		id, err := pickDevice(devs, "alice", tc.ref)
		if tc.err != 0 {
			if err == nil || exitCode(err, true) != tc.err {
				t.Errorf("%q: %q %v, want exit %d", tc.ref, id, err, tc.err)
			}
			continue
		}
		if err != nil || id != tc.want {
			t.Errorf("%q: %q %v, want %q", tc.ref, id, err, tc.want)
		}
	}
	if _, err := pickDevice([]api.Device{{ID: "3f2a0001"}, {ID: "3f2a0002"}}, "alice", "3f2a"); exitCode(err, true) != exitUsage {
		t.Errorf("ambiguous prefix: %v", err)
	}
}

func TestJSONLines(t *testing.T) {
	var out bytes.Buffer
	a := &app{out: &out, json: true}
	if err := a.print([]api.Account{{Name: "alice"}, {Name: "bob"}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := a.print(&api.Info{Version: "v"}, nil); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines: %q", len(lines), out.String())
	}
	for _, l := range lines {
		if !json.Valid([]byte(l)) || !strings.HasPrefix(l, "{") {
			t.Errorf("not a JSON object line: %q", l)
		}
	}
}
