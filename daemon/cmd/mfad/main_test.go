package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestHelpListsSubcommands: mfad --help names what mfad can do besides
// serving, and every command shows examples.
func TestHelpListsSubcommands(t *testing.T) {
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"emulator", "restore", "migrate", "version", "--config FILE", "--state-dir DIR", "--socket PATH"} {
		if !strings.Contains(out.String(), sub) {
			t.Errorf("mfad --help does not mention %q:\n%s", sub, out.String())
		}
	}
	for _, c := range append(root.Commands(), root) {
		if c.Name() != "help" && c.Name() != "completion" && c.Example == "" {
			t.Errorf("%s has no Example", c.CommandPath())
		}
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{{"--bogus"}, {"restore"}, {"restore", "x.db"}, {"serve-please"}} {
		root := newRoot()
		root.SetArgs(args)
		root.SetOut(&bytes.Buffer{})
		root.SetErr(&bytes.Buffer{})
		err := root.Execute()
		if err == nil {
			t.Errorf("mfad %v: no error", args)
			continue
		}
		if ee, ok := err.(*exitError); ok && ee.code != 2 {
			t.Errorf("mfad %v: exit %d, want 2", args, ee.code)
		}
	}
}
