package daemon

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDevConfigLoads: make run's configuration must load and attach a key.
func TestDevConfigLoads(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join("..", "contrib", "dev.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Emulator.Enabled || len(cfg.Emulator.Attach) != 1 {
		t.Errorf("dev config: %+v", cfg.Emulator)
	}
	// Owner recovery works under make run: both channels go to the outbox.
	if cfg.Recovery.Email.Outbox == "" || cfg.Recovery.Phone.Outbox == "" {
		t.Errorf("dev config recovery: %+v", cfg.Recovery.Config)
	}
}

// TestManPageListsEveryKey: mfad.toml(5) documents every key the example
// configuration lists.
func TestManPageListsEveryKey(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("..", "contrib", "mfad.toml"))
	if err != nil {
		t.Fatal(err)
	}
	man, err := os.ReadFile(filepath.Join("..", "contrib", "man", "mfad.toml.5"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(man), `\-`, "-")
	for _, m := range regexp.MustCompile(`(?m)^#?\s*([a-z_]+) = `).FindAllStringSubmatch(string(example), -1) {
		if !strings.Contains(text, `\fB`+m[1]+`\fR`) {
			t.Errorf("mfad.toml.5 does not document %s", m[1])
		}
	}
}
