package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/authn/store"
	"github.com/mfad/mfad/authn/store/postgres"
	"github.com/mfad/mfad/ipc/api"
)

// backend is what the daemon needs of a store besides authn's view of it.
type backend interface {
	authn.Store
	Path() string
	Meta(key string) (string, error)
	SetMetaOnce(key, value string) (string, error)
	SaveBlob(name string, data []byte) error
	LoadBlob(name string) ([]byte, error)
	DeleteBlob(name string) error
	WriteBackup(w io.Writer) (int64, error)
	Close() error
	// info describes the store for /v1/info.
	info() api.StoreInfo
	// health is the watchdog's check.
	health() error
}

type boltBackend struct{ *store.Store }

func (b boltBackend) info() api.StoreInfo {
	return api.StoreInfo{Backend: BackendBolt, Path: b.Path(), Schema: store.SchemaVersion}
}

func (b boltBackend) health() error {
	_, err := b.Meta("created_at")
	return err
}

type pgBackend struct{ *postgres.Store }

// health is the daemon's own: a database out of reach is a state that
// /v1/info shows, and restarting mfad would not bring it back.
func (b pgBackend) health() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	b.Ping(ctx)
	return nil
}

func (b pgBackend) info() api.StoreInfo {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	b.Ping(ctx)
	cancel()
	i := api.StoreInfo{Backend: BackendPostgres, Path: b.Path(), Schema: postgres.SchemaVersion, State: "online"}
	if online, since := b.Status(); !online {
		i.State, i.OfflineSince = "offline", &since
	}
	return i
}

// LocalFileName is this host's own file with the postgres backend: its
// counter floor (the highest counters it accepted, which a database set
// back to an older point cannot undo) and its offline cache and queue.
const LocalFileName = "mfad-local.db"

// openStore opens the configured backend with the master key.
func openStore(ctx context.Context, cfg Config, key []byte, log *slog.Logger) (backend, error) {
	if cfg.Store.Backend != BackendPostgres {
		st, err := store.Open(cfg.StateDir, key, store.Options{
			LockTimeout:    cfg.Store.LockTimeout.Duration,
			AuditRetention: cfg.Audit.Retention,
			MaxBatch:       cfg.Store.MaxBatch,
		})
		if err != nil {
			return nil, err
		}
		return boltBackend{st}, nil
	}
	dsn, err := cfg.Store.dsn()
	if err != nil {
		return nil, err
	}
	octx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := postgres.Open(octx, dsn, key, postgres.Options{
		AutoMigrate:    cfg.Store.AutoMigrate,
		AuditRetention: cfg.Audit.Retention,
		MaxConns:       cfg.Store.MaxConns,
		Host:           cfg.Store.Host,
		Logger:         log,
		LocalPath:      filepath.Join(cfg.StateDir, LocalFileName),
		Offline:        postgres.OfflineOptions{FIDO: cfg.Store.Offline.FIDO, OTP: cfg.Store.Offline.OTP, MaxAge: cfg.Store.Offline.MaxAge.Duration},
	})
	if err != nil {
		return nil, err
	}
	return pgBackend{st}, nil
}

// dsn returns the PostgreSQL DSN: dsn, or dsn_file's content. A DSN file
// holds a password, so one that others may read is refused.
func (s StoreConfig) dsn() (string, error) {
	if s.DSNFile == "" {
		return s.DSN, nil
	}
	st, err := os.Stat(s.DSNFile)
	if err != nil {
		return "", fmt.Errorf("store: dsn_file: %w", err)
	}
	// systemd's credentials directory is already private to the service.
	cred := os.Getenv("CREDENTIALS_DIRECTORY")
	if st.Mode().Perm()&0o077 != 0 && (cred == "" || !strings.HasPrefix(s.DSNFile, cred+"/")) {
		return "", fmt.Errorf("store: dsn_file %s has mode %v; it holds a password and must not be readable by group or others (chmod 600)", s.DSNFile, st.Mode().Perm())
	}
	b, err := os.ReadFile(s.DSNFile)
	if err != nil {
		return "", fmt.Errorf("store: dsn_file: %w", err)
	}
	dsn := strings.TrimSpace(string(b))
	if dsn == "" {
		return "", fmt.Errorf("store: dsn_file %s is empty", s.DSNFile)
	}
	return dsn, nil
}

// Migrate applies the PostgreSQL schema's pending migrations (mfad migrate).
func Migrate(ctx context.Context, cfg Config) (string, error) {
	if cfg.Store.Backend != BackendPostgres {
		return "", fmt.Errorf("migrate: [store] backend is %q; the bbolt database migrates itself at start", cfg.Store.Backend)
	}
	dsn, err := cfg.Store.dsn()
	if err != nil {
		return "", err
	}
	pool, where, err := postgres.Connect(ctx, dsn, 1)
	if err != nil {
		return "", err
	}
	defer pool.Close()
	from, to, err := postgres.Migrate(ctx, pool)
	if err != nil {
		return "", err
	}
	if from == to {
		return fmt.Sprintf("%s: schema v%d is current", where, to), nil
	}
	return fmt.Sprintf("%s: migrated schema v%d to v%d", where, from, to), nil
}
