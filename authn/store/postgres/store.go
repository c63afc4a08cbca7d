package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	bolt "go.etcd.io/bbolt"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/authn/store"
)

// Options tune a Store.
type Options struct {
	// Host names this daemon in audit entries and owns its blobs (default
	// os.Hostname()).
	Host string
	// AutoMigrate applies pending migrations at Open; without it an older
	// schema is refused, naming `mfad migrate`.
	AutoMigrate bool
	// AuditRetention is the number of audit entries the fleet keeps
	// (default 100000).
	AuditRetention uint64
	// TrimEvery is how many appended entries pass between two trims of
	// the audit log (default 64; trimming is a statement of its own, after
	// the commit, so that appends never conflict with each other).
	TrimEvery uint64
	// MaxConns bounds the pool (0: pgxpool's default, or pool_max_conns in
	// the DSN).
	MaxConns int32
	// MaxRetries bounds how often Update runs a function again after a
	// serialization failure (default 100).
	MaxRetries int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// LocalPath is this host's own bbolt file: its counter floor (see
	// floor) and, with Offline, its offline cache and queue ("" keeps
	// none). mfad keeps it in the state directory.
	LocalPath string
	// Offline says what this host may verify alone while the database is
	// out of reach (needs LocalPath).
	Offline OfflineOptions
	// ProbeEvery is how often an offline host asks whether the database
	// answers again (default 1 s).
	ProbeEvery time.Duration
	// Logger tells what happens in the background: a host that started
	// offline and cannot use the database once it answers (a newer
	// schema, another master key). Default: discarded.
	Logger *slog.Logger
}

// Store is the PostgreSQL-backed authn.Store.
type Store struct {
	pool  *pgxpool.Pool
	rec   *store.Records
	opts  Options
	path  string
	floor *floor // nil without Options.LocalPath
	cache *cache // nil without Options.Offline
	quit  chan struct{}
	done  chan struct{}

	closeOnce sync.Once

	mu           sync.Mutex
	offlineSince time.Time // zero while the database answers
	// unchecked: the host started while the database was out of reach, so
	// its schema and key check have not been read yet; it stays offline
	// until they have.
	unchecked bool
	lastProb  string // the last reason a check at reconnect failed
	lastTrim  uint64
}

// ParseDSN checks a DSN (libpq keyword/value or URL syntax, TLS settings
// included) and returns the pool configuration.
func ParseDSN(dsn string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgconn's message names the DSN with its password redacted.
		return nil, fmt.Errorf("store: [store] dsn (or dsn_file) does not parse: %w (write it as libpq keyword=value pairs or a postgres:// URL)", err)
	}
	if !strings.Contains(dsn, "connect_timeout") {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	return cfg, nil
}

func poolConfig(dsn string, maxConns int32) (*pgxpool.Config, error) {
	cfg, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	return cfg, nil
}

// Connect opens a pool and checks that the server answers.
func Connect(ctx context.Context, dsn string, maxConns int32) (*pgxpool.Pool, string, error) {
	cfg, err := poolConfig(dsn, maxConns)
	if err != nil {
		return nil, "", err
	}
	where := describe(cfg.ConnConfig.Config)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, where, fmt.Errorf("store: postgres %s: %w", where, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, where, fmt.Errorf("store: cannot use PostgreSQL at %s: %w (check [store] dsn or dsn_file: host, user, password, dbname, sslmode)", where, err)
	}
	return pool, where, nil
}

// describe names a database without its password.
func describe(c pgconn.Config) string {
	host := c.Host
	if strings.HasPrefix(host, "/") {
		return fmt.Sprintf("postgres://%s@[%s]:%d/%s", c.User, host, c.Port, c.Database)
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s", c.User, host, c.Port, c.Database)
}

// Open connects to the database at dsn, checks (or, with AutoMigrate,
// brings up to date) its schema and checks that key is the fleet's.
//
// A database out of reach is a refusal, unless this host has an offline
// cache of it (Options.Offline, and the host was online with it before):
// then the Store opens offline, its master key checked against the
// key-check value it kept, serves what the cache allows, and checks the
// database (schema, key) once it answers, before going online.
func Open(ctx context.Context, dsn string, key []byte, opts Options) (*Store, error) {
	if opts.Host == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, err
		}
		opts.Host = h
	}
	if opts.AuditRetention == 0 {
		opts.AuditRetention = 100000
	}
	if opts.TrimEvery == 0 {
		opts.TrimEvery = 64
	}
	if opts.MaxRetries == 0 {
		opts.MaxRetries = 100
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ProbeEvery == 0 {
		opts.ProbeEvery = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	rec, err := store.NewRecords(key)
	if err != nil {
		return nil, err
	}
	cfg, err := poolConfig(dsn, opts.MaxConns)
	if err != nil {
		return nil, err
	}
	where := describe(cfg.ConnConfig.Config)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: postgres %s: %w", where, err)
	}
	s := &Store{pool: pool, rec: rec, opts: opts, path: where}
	if opts.LocalPath != "" {
		if s.floor, err = openFloor(opts.LocalPath); err != nil {
			pool.Close()
			return nil, err
		}
		if opts.Offline.FIDO || opts.Offline.OTP {
			if s.cache, err = newCache(s.floor, rec, opts.Offline, opts.Now); err != nil {
				s.Close()
				return nil, err
			}
		}
	}
	if err := pool.Ping(ctx); err != nil {
		if err := s.startOffline(where, err); err != nil {
			s.Close()
			return nil, err
		}
	} else if err := s.prepare(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if s.cache != nil {
		s.quit, s.done = make(chan struct{}), make(chan struct{})
		go s.prober()
	}
	return s, nil
}

// startOffline decides what a database out of reach at start means: a
// refusal naming the fix, or, for a host with an offline cache of it, a
// start offline once the master key matches the key-check value the host
// kept.
func (s *Store) startOffline(where string, pingErr error) error {
	refuse := fmt.Errorf("store: cannot use PostgreSQL at %s: %w (check [store] dsn or dsn_file: host, user, password, dbname, sslmode)", where, pingErr)
	if !isConnError(pingErr) {
		return refuse // the server answered: a password, a database name...
	}
	if s.cache == nil {
		return fmt.Errorf("%w; with [store.offline] fido and otp off this host does not start without its database: start the database, or fix the DSN", refuse)
	}
	check, ok := s.floor.meta("key_check")
	if !ok {
		return fmt.Errorf("%w; this host has never used that database, so it has no offline cache of it to start from: start the database, or fix the DSN", refuse)
	}
	if err := s.openKeyCheck(check); err != nil {
		return err
	}
	s.mu.Lock()
	s.offlineSince, s.unchecked = s.opts.Now().UTC(), true
	s.mu.Unlock()
	s.opts.Logger.Warn("the fleet's database is out of reach: starting offline from this host's cache", "database", where, "err", pingErr)
	return nil
}

func (s *Store) prepare(ctx context.Context) error {
	if s.opts.AutoMigrate {
		if _, _, err := Migrate(ctx, s.pool); err != nil {
			return err
		}
	}
	v, err := schemaVersion(ctx, s.pool)
	if err != nil {
		return fmt.Errorf("store: read schema version: %w", err)
	}
	switch {
	case v > SchemaVersion:
		return fmt.Errorf("%w (database v%d, mfad v%d): upgrade mfad on this host", ErrNewerSchema, v, SchemaVersion)
	case v < SchemaVersion:
		return fmt.Errorf("%w (database v%d, mfad v%d): run `mfad migrate` or set [store] auto_migrate = true", ErrOlderSchema, v, SchemaVersion)
	}
	if err := s.checkKey(ctx); err != nil {
		return err
	}
	_, err = s.SetMetaOnce("created_at", s.opts.Now().UTC().Format(time.RFC3339))
	return err
}

// Close closes the pool and the local file.
// It may be called more than once.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		if s.quit != nil {
			close(s.quit)
			<-s.done
		}
		s.pool.Close()
		if s.floor != nil {
			err = s.floor.close()
		}
	})
	return err
}

// Path names the database (without a password).
func (s *Store) Path() string { return s.path }

// Pool is the connection pool (for mfad migrate and tests).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Host is the name this daemon writes in audit entries.
func (s *Store) Host() string { return s.opts.Host }

// Status says whether the database answered the last call, and since when
// it has not.
func (s *Store) Status() (online bool, offlineSince time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.offlineSince.IsZero(), s.offlineSince
}

// Ping asks the database for an answer and records whether it came.
func (s *Store) Ping(ctx context.Context) error {
	err := s.pool.Ping(ctx)
	s.observe(err)
	return err
}

// observe records whether err means the database is out of reach.
func (s *Store) observe(err error) {
	down := err != nil && isConnError(err)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case down && s.offlineSince.IsZero():
		s.offlineSince = s.opts.Now().UTC()
	case (err == nil || !down) && !s.unchecked:
		s.offlineSince = time.Time{}
	}
}

// isConnError reports an error of reaching the server rather than one the
// server answered.
func isConnError(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P") // connection exception, operator intervention
	}
	var ae *authn.Error
	if errors.As(err, &ae) {
		return false
	}
	return pgconn.SafeToRetry(err) || pgconn.Timeout(err) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		strings.Contains(err.Error(), "failed to connect") || strings.Contains(err.Error(), "conn closed")
}

// retryable reports a serialization failure or deadlock: the transaction
// lost a race and may run again.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// View implements authn.Store: a read-only snapshot.
func (s *Store) View(fn func(authn.Tx) error) error {
	ctx := context.Background()
	err := s.run(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn, nil)
	return err
}

// Update implements authn.Store: fn runs in a SERIALIZABLE transaction,
// again (from the start, on fresh reads) after a serialization failure.
func (s *Store) Update(ctx context.Context, fn func(authn.Tx) error) error {
	var appended uint64
	err := s.run(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable}, fn, &appended)
	if err == nil && appended > s.opts.AuditRetention {
		s.trim(ctx, appended)
	}
	return err
}

var errRollback = errors.New("store: rolled back")

// offline reports whether the database was out of reach at the last try.
func (s *Store) offline() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.offlineSince.IsZero()
}

// prober runs with an offline cache: while the database is out of reach it
// asks every second whether it answers again, and whenever it answers with
// outcomes queued offline, replays them.
func (s *Store) prober() {
	defer close(s.done)
	tick := time.NewTicker(s.opts.ProbeEvery)
	defer tick.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		if s.offline() && s.Ping(ctx) == nil {
			s.recheck(ctx)
		}
		if !s.offline() && s.cache.pending() > 0 {
			s.Reconcile(ctx)
		}
		cancel()
	}
}

// recheck checks, once the database answers, what a host that started
// offline could not: the schema (migrating it with AutoMigrate) and the
// key check. Until they pass the host stays offline, and says why in its
// log.
func (s *Store) recheck(ctx context.Context) {
	s.mu.Lock()
	unchecked := s.unchecked
	s.mu.Unlock()
	if !unchecked {
		return
	}
	err := s.prepare(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if err.Error() != s.lastProb {
			s.lastProb = err.Error()
			s.opts.Logger.Error("the fleet's database answers again, but this host cannot use it: staying offline", "err", err)
		}
		return
	}
	s.unchecked, s.offlineSince = false, time.Time{}
	s.opts.Logger.Info("the fleet's database answers again: online", "database", s.path)
}

func (s *Store) run(ctx context.Context, opts pgx.TxOptions, fn func(authn.Tx) error, appended *uint64) error {
	write := opts.AccessMode != pgx.ReadOnly
	if s.cache != nil && s.offline() {
		return s.cache.run(fn, write, s.floor)
	}
	reconnected := false
	for attempt := 0; ; attempt++ {
		t := &tx{s: s, ctx: ctx, batch: &pgx.Batch{}}
		t.batch.BeginTx(opts)
		if s.cache != nil {
			t.seen = &seen{}
		}
		fnErr, committing, err := t.run(fn)
		if errors.Is(err, errRollback) {
			err = nil
		}
		beforeCommit := !committing
		// The caller's context ending says nothing about the database.
		down := err != nil && ctx.Err() == nil && isConnError(err)
		if down && beforeCommit && !reconnected && !strings.Contains(err.Error(), "failed to connect") {
			// A pooled connection the server dropped (a restart): every
			// other one is likely gone too. Start afresh, once.
			s.pool.Reset()
			reconnected = true
			continue
		}
		if ctx.Err() == nil {
			s.observe(err)
		}
		// Out of reach before anything could commit (at BEGIN or at a
		// statement, never at COMMIT, whose outcome is unknown): this
		// host goes on alone with what it may verify.
		if down && s.cache != nil && beforeCommit {
			return s.cache.run(fn, write, s.floor)
		}
		switch {
		case err != nil && retryable(err) && attempt < s.opts.MaxRetries:
			// Lost a race with another transaction (here or on another
			// host): back off a little, at random, and run fn again.
			time.Sleep(time.Duration(rand.IntN(1+min(attempt, 10)*500)) * time.Microsecond)
			continue
		case err != nil:
			return fmt.Errorf("store: postgres: %w", err)
		case fnErr != nil:
			return fnErr
		}
		if appended != nil {
			*appended = t.lastSeq
		}
		// This host remembers the counters before it answers.
		if err := s.floor.raise(t.floors); err != nil {
			return fmt.Errorf("store: counter floor: %w", err)
		}
		if s.cache != nil {
			s.cache.save(t.seen)
		}
		return nil
	}
}

// run runs fn in the transaction on a connection of the pool. committing
// reports an error met at COMMIT, whose outcome is unknown.
func (t *tx) run(fn func(authn.Tx) error) (fnErr error, committing bool, err error) {
	if t.conn, err = t.s.pool.Acquire(t.ctx); err != nil {
		return nil, false, err
	}
	defer t.conn.Release()
	fnErr = safeCall(fn, t)
	if t.err != nil {
		t.finish(false)
		return fnErr, false, t.err // a statement failed: the transaction is aborted
	}
	if fnErr != nil {
		t.finish(false)
		return fnErr, false, errRollback
	}
	committing, err = t.finish(true)
	return nil, committing, err
}

func safeCall(fn func(authn.Tx) error, t authn.Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("store: update panicked: %v", r)
		}
	}()
	return fn(t)
}

// trim drops audit entries beyond the retention, every TrimEvery appends,
// outside any sign-in's transaction.
func (s *Store) trim(ctx context.Context, seq uint64) {
	s.mu.Lock()
	due := seq >= s.lastTrim+s.opts.TrimEvery
	if due {
		s.lastTrim = seq
	}
	s.mu.Unlock()
	if !due {
		return
	}
	// A failed trim is retried at the next one; the log only grows meanwhile.
	_, _ = s.pool.Exec(ctx, `DELETE FROM audit WHERE seq <= $1`, int64(seq-s.opts.AuditRetention))
}

// Meta returns a setting from mfad_meta ("" when unset). Offline, it
// answers what this host last read.
func (s *Store) Meta(key string) (string, error) {
	if s.offline() && s.floor != nil {
		v, _ := s.floor.meta(key)
		return v, nil
	}
	var v string
	err := s.pool.QueryRow(context.Background(), `SELECT value FROM mfad_meta WHERE key = $1`, key).Scan(&v)
	s.observe(err)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err == nil {
		s.floor.setMeta(key, v)
	}
	return v, err
}

// SetMetaOnce stores value under key unless a value is already there, and
// returns the stored value (the fleet's relying party id, say: the first
// daemon fixes it for all). Offline, it answers the value this host last
// read, or store_offline when it never read one.
func (s *Store) SetMetaOnce(key, value string) (string, error) {
	if s.offline() && s.floor != nil {
		if v, ok := s.floor.meta(key); ok {
			return v, nil
		}
		return "", errOffline("setting " + key + " for the fleet")
	}
	var v string
	err := s.pool.QueryRow(context.Background(), `INSERT INTO mfad_meta (key, value) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET value = mfad_meta.value RETURNING value`, key, value).Scan(&v)
	s.observe(err)
	if err == nil {
		s.floor.setMeta(key, v)
	}
	return v, err
}

func blobAD(name string) string { return "blobs/" + name }

// Blobs are this host's own state (software keys'): in the local file when
// there is one, so that they work while the database is out of reach, else
// in the blobs table under this host's name. Sealed either way.

var bktBlobs = []byte("blobs")

// SaveBlob stores data under name for this host, sealed.
func (s *Store) SaveBlob(name string, data []byte) error {
	sealed := s.rec.Seal(data, blobAD(name))
	if s.floor != nil {
		return s.floor.db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(bktBlobs)
			if err != nil {
				return err
			}
			return b.Put([]byte(name), sealed)
		})
	}
	_, err := s.pool.Exec(context.Background(), `INSERT INTO blobs (host, name, sealed) VALUES ($1, $2, $3)
		ON CONFLICT (host, name) DO UPDATE SET sealed = excluded.sealed`, s.opts.Host, name, sealed)
	s.observe(err)
	return err
}

// LoadBlob returns what SaveBlob stored under name on this host, or nil.
func (s *Store) LoadBlob(name string) ([]byte, error) {
	var sealed []byte
	if s.floor != nil {
		s.floor.db.View(func(tx *bolt.Tx) error {
			if b := tx.Bucket(bktBlobs); b != nil {
				sealed = append([]byte(nil), b.Get([]byte(name))...)
			}
			return nil
		})
		if len(sealed) == 0 {
			return nil, nil
		}
		return s.rec.Open(sealed, blobAD(name))
	}
	err := s.pool.QueryRow(context.Background(), `SELECT sealed FROM blobs WHERE host = $1 AND name = $2`, s.opts.Host, name).Scan(&sealed)
	s.observe(err)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return s.rec.Open(sealed, blobAD(name))
}

// DeleteBlob removes this host's blob name.
func (s *Store) DeleteBlob(name string) error {
	if s.floor != nil {
		return s.floor.db.Update(func(tx *bolt.Tx) error {
			if b := tx.Bucket(bktBlobs); b != nil {
				return b.Delete([]byte(name))
			}
			return nil
		})
	}
	_, err := s.pool.Exec(context.Background(), `DELETE FROM blobs WHERE host = $1 AND name = $2`, s.opts.Host, name)
	s.observe(err)
	return err
}

// ErrNoBackup is WriteBackup's answer: the fleet's database is backed up
// with PostgreSQL's tools.
var ErrNoBackup = errors.New("store: the store is PostgreSQL: back it up with pg_dump (or your PostgreSQL backups), not through mfad")

// WriteBackup refuses: see ErrNoBackup.
func (s *Store) WriteBackup(io.Writer) (int64, error) { return 0, ErrNoBackup }

// BackupRefusal is the API's answer to a backup request: before anything
// is streamed, a conflict naming PostgreSQL's tools.
func (s *Store) BackupRefusal() error {
	return &authn.Error{Class: authn.ClassConflict, Code: "backup_elsewhere", Detail: ErrNoBackup.Error()}
}
