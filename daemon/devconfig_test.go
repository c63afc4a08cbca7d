package daemon

import (
	"path/filepath"
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
