package postgres

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/authn/store/postgres/pgtest"
	"github.com/mfad/mfad/authn/store/storetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.CloseShared()
	if stoppable != nil {
		stoppable.Close()
	}
	os.Exit(code)
}

func openOpts(dsn string, key []byte, opts Options) (*Store, error) {
	if opts.Host == "" {
		opts.Host = "test-host"
	}
	opts.AutoMigrate, opts.TrimEvery = true, 1
	return Open(context.Background(), dsn, key, opts)
}

// TestContract runs the backend-generic behaviour suite on PostgreSQL.
func TestContract(t *testing.T) {
	storetest.Run(t, storetest.Backend{Shared: true, New: func(t *testing.T) storetest.Opener {
		dsn := pgtest.DB(t)
		return func(key []byte, retention uint64) (authn.Store, io.Closer, error) {
			s, err := openOpts(dsn, key, Options{AuditRetention: retention})
			return s, s, err
		}
	}})
}

// TestBadDSNRefused: a DSN that does not parse, and one naming no server,
// are each an error naming the setting to fix, without the password.
func TestBadDSNRefused(t *testing.T) {
	ctx := context.Background()
	for _, dsn := range []string{
		"host=/nonexistent/socket/dir dbname=mfad user=mfad password=s3cret connect_timeout=2",
		"postgres://mfad:s3cret@[::1:5432/mfad",
	} {
		_, err := Open(ctx, dsn, storetest.Key(), Options{Host: "h"})
		if err == nil || !strings.Contains(err.Error(), "dsn") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%q): %v, want a refusal naming the dsn, without the password", dsn, err)
		}
	}
}
