package daemon

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestExampleConfigIsTheDefault keeps contrib/mfad.toml honest: it must
// load and say exactly what DefaultConfig says.
func TestExampleConfigIsTheDefault(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join("..", "contrib", "mfad.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if want := DefaultConfig(); !reflect.DeepEqual(cfg, want) {
		t.Errorf("contrib/mfad.toml differs from the defaults:\n got %+v\nwant %+v", cfg, want)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := map[string]string{
		"unknown key":     "sockett = \"/x\"\n",
		"unknown section": "[nope]\nx = 1\n",
		"bad duration":    "[store]\nlock_timeout = \"soon\"\n",
		"negative":        "[store]\nlock_timeout = \"-1s\"\n",
		"bad level":       "log_level = \"loud\"\n",
		"reserve too big": "[limits]\nconnections = 4\nconnections_root_reserved = 4\n",
		"syntax":          "socket = \n",
		"wrong type":      "socket = 5\n",
		"tiny body limit": "[limits]\nmax_body_bytes = 10\n",
		"retention tiny":  "[audit]\nretention = 1\n",
		"empty state dir": "state_dir = \"\"\n",
		"bad backend":     "[store]\nbackend = \"sqlite\"\n",
		"postgres no dsn": "[store]\nbackend = \"postgres\"\n",
		"two dsns":        "[store]\nbackend = \"postgres\"\ndsn = \"host=/x\"\ndsn_file = \"/y\"\n",
		"dsn for bbolt":   "[store]\ndsn = \"host=/x\"\n",
	}
	for name, body := range cases {
		p := filepath.Join(t.TempDir(), "c.toml")
		os.WriteFile(p, []byte(body), 0o644)
		if _, err := LoadConfig(p); err == nil {
			t.Errorf("%s: accepted %q", name, body)
		} else if !strings.Contains(err.Error(), "config") {
			t.Errorf("%s: error does not say it is the config: %v", name, err)
		}
	}
	p := filepath.Join(t.TempDir(), "ok.toml")
	os.WriteFile(p, []byte("socket = \"/tmp/x.sock\"\n[store]\nlock_timeout = \"250ms\"\n"), 0o644)
	cfg, err := LoadConfig(p)
	if err != nil || cfg.Socket != "/tmp/x.sock" || cfg.Store.LockTimeout.Duration != 250*time.Millisecond || cfg.StateDir != "/var/lib/mfad" {
		t.Errorf("partial config: %+v %v", cfg, err)
	}
}

// TestDSNFile: dsn_file's content is the DSN; a file others may read (it
// holds a password) is refused.
func TestDSNFile(t *testing.T) {
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	p := filepath.Join(t.TempDir(), "dsn")
	os.WriteFile(p, []byte("host=/run/pg dbname=mfad password=s3cret\n"), 0o600)
	sc := StoreConfig{Backend: BackendPostgres, DSNFile: p}
	if dsn, err := sc.dsn(); err != nil || dsn != "host=/run/pg dbname=mfad password=s3cret" {
		t.Fatalf("dsn = %q, %v", dsn, err)
	}
	os.Chmod(p, 0o644)
	if _, err := sc.dsn(); err == nil || !strings.Contains(err.Error(), "chmod 600") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("world-readable dsn_file: %v", err)
	}
}

func TestJournalFieldNames(t *testing.T) {
	for in, want := range map[string]string{"uid": "MFAD_UID", "socket_activated": "MFAD_SOCKET_ACTIVATED", "_x.y": "MFAD_X_Y", "9": "MFAD_FIELD"} {
		if got := journalField(in); got != want {
			t.Errorf("journalField(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzLoadConfig: a hostile or broken config file is a clear error naming
// the config, never a panic, and what loads also validates and yields a
// policy.
func FuzzLoadConfig(f *testing.F) {
	for _, p := range []string{"../contrib/mfad.toml", "../contrib/dev.toml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("[store]\nbackend = \"postgres\"\ndsn = \"host=/x\"\n[store.offline]\nmax_age = \"1h\"\n"))
	f.Add([]byte("[lockout]\nmax_failures = 3\nlockout_after = 2\n"))
	f.Add([]byte("[recovery.phone]\nallowed_prefixes = [\"+81\"]\n"))
	f.Add([]byte("socket = \n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, body []byte) {
		p := filepath.Join(dir, "fuzz.toml")
		if err := os.WriteFile(p, body, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := LoadConfig(p)
		if err != nil {
			if !strings.Contains(err.Error(), "config") {
				t.Fatalf("error does not say it is the config: %v", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("loaded, then invalid: %v", err)
		}
		cfg.Policy()
	})
}
