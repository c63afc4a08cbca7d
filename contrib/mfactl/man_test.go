package main

import (
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestManPageCoversEveryCommand: mfactl(1) has an entry for every command
// (".B mfactl account create"), with an example, and the exit codes.
func TestManPageCoversEveryCommand(t *testing.T) {
	b, err := os.ReadFile("../man/mfactl.1")
	if err != nil {
		t.Fatal(err)
	}
	man := strings.ReplaceAll(string(b), `\-`, "-")
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Name() == "help" || c.Name() == "completion" {
			return
		}
		if !c.HasSubCommands() && c.HasParent() {
			entry := "\n.TP\n.B " + c.CommandPath()
			i := strings.Index(man, entry)
			if i < 0 {
				t.Errorf("mfactl.1 has no entry %q", strings.TrimSpace(entry))
				return
			}
			next := strings.Index(man[i+len(entry):], "\n.TP")
			if next < 0 {
				next = len(man) - i - len(entry)
			}
			if !strings.Contains(man[i:i+len(entry)+next], "\n.EX") {
				t.Errorf("mfactl.1: %q has no example (.EX)", c.CommandPath())
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRoot(&app{}))
	for _, want := range []string{"EXIT STATUS", "usage", "not found", "unreachable", "--yes", "--json", "MFAD_STEP_UP"} {
		if !strings.Contains(man, want) {
			t.Errorf("mfactl.1 does not mention %q", want)
		}
	}
}
