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
	// MaxBatch bounds how many queued updates share one transaction
	// (default 64; 1 turns the group commit off).
	MaxBatch int
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

	// The group commit (see Update): gmu guards the queue and whose turn
	// it is; users counts the Updates under way, for Close.
	gmu     sync.Mutex
	pending []*call
	busy    bool // an Update is running a batch
	closing bool
	users   sync.WaitGroup
	// commits and batched count committed transactions and the updates
	// they carried.
	commits, batched uint64
}

// call is one Update waiting in the group commit's queue.
type call struct {
	fn  func(authn.Tx) error
	out chan error    // its outcome
	run chan struct{} // its turn to run the next batch
	// Under Store.gmu: taken into a batch, or given the turn.
	taken, leads bool
}

// ErrClosed is Update's answer after Close.
var ErrClosed = errors.New("store: closed")

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
	cfg.AfterConnect = preferIndexScans
	return cfg, nil
}

// preferIndexScans steers the planner of mfad's sessions away from
// sequential and bitmap scans. Every query mfad runs in a transaction is
// a lookup by key, which an index scan answers; on a small table the
// planner would rather read it whole, and under SERIALIZABLE a sequential
// scan locks the whole table for conflict detection, a bitmap scan whole
// pages: other hosts' writes to other accounts then make serialization
// failures (PostgreSQL's documentation on serializable isolation advises
// encouraging index scans for that reason). Set once per connection.
func preferIndexScans(ctx context.Context, c *pgx.Conn) error {
	_, err := c.Exec(ctx, `SELECT set_config('enable_seqscan', 'off', false), set_config('enable_bitmapscan', 'off', false)`)
	return err
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
	if opts.MaxBatch == 0 {
		opts.MaxBatch = 64
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
		s.gmu.Lock()
		s.closing = true
		s.gmu.Unlock()
		s.users.Wait() // queued updates run to their end
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
	c := newCall(fn)
	s.run(context.Background(), pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, []*call{c})
	return <-c.out
}

func newCall(fn func(authn.Tx) error) *call {
	return &call{fn: fn, out: make(chan error, 1), run: make(chan struct{}, 1)}
}

// Update implements authn.Store with a group commit: fn runs in a
// SERIALIZABLE transaction, again (from the start, on fresh reads) after
// a serialization failure. Updates that arrive while another one's
// transaction runs queue up and share the next transaction: their
// functions run one after the other in it, and one COMMIT (one flush of
// PostgreSQL's log) ends them all. A function that returns an error is
// taken out with its error and the others run again without it, as in the
// bbolt store.
//
// Whoever finds no transaction running runs the batch itself, and hands
// the turn to the first update queued meanwhile once it has committed.
func (s *Store) Update(ctx context.Context, fn func(authn.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := newCall(fn)
	s.gmu.Lock()
	if s.closing {
		s.gmu.Unlock()
		return ErrClosed
	}
	s.users.Add(1)
	defer s.users.Done()
	s.pending = append(s.pending, c)
	if !s.busy {
		s.busy = true
		s.gmu.Unlock()
		s.lead()
		return <-c.out
	}
	s.gmu.Unlock()
	for {
		select {
		case err := <-c.out:
			return err
		case <-c.run:
			s.lead()
			return <-c.out
		case <-ctx.Done():
			if s.unqueue(c) {
				return ctx.Err()
			}
			// Taken into a batch (or given the turn): it may commit, so
			// wait for its outcome.
			ctx = context.Background()
		}
	}
}

// lead runs the next batch (the queue's first updates, the caller's among
// them), then gives the turn to the update queued first, or gives it up.
func (s *Store) lead() {
	s.gmu.Lock()
	n := min(len(s.pending), s.opts.MaxBatch)
	batch := append([]*call(nil), s.pending[:n]...)
	s.pending = append(s.pending[:0:0], s.pending[n:]...)
	for _, c := range batch {
		c.taken = true
	}
	s.gmu.Unlock()
	s.run(context.Background(), pgx.TxOptions{IsoLevel: pgx.Serializable}, batch)
	s.gmu.Lock()
	if len(s.pending) > 0 {
		s.pending[0].leads = true
		s.pending[0].run <- struct{}{}
	} else {
		s.busy = false
	}
	s.gmu.Unlock()
}

// unqueue takes c out of the queue, unless it was taken into a batch or
// given the turn already.
func (s *Store) unqueue(c *call) bool {
	s.gmu.Lock()
	defer s.gmu.Unlock()
	if c.taken || c.leads {
		return false
	}
	for i, p := range s.pending {
		if p == c {
			s.pending = append(s.pending[:i], s.pending[i+1:]...)
			return true
		}
	}
	return false
}

// queued is how many updates wait for the next batch (for tests).
func (s *Store) queued() int {
	s.gmu.Lock()
	defer s.gmu.Unlock()
	return len(s.pending)
}

// Stats returns the number of committed transactions of Update and the
// updates they carried.
func (s *Store) Stats() (commits, updates uint64) {
	s.gmu.Lock()
	defer s.gmu.Unlock()
	return s.commits, s.batched
}

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

// run runs calls in one transaction, or in as many as their outcomes
// need, and answers each.
func (s *Store) run(ctx context.Context, opts pgx.TxOptions, calls []*call) {
	write := opts.AccessMode != pgx.ReadOnly
	reconnected := false
	retries := 0
	for len(calls) > 0 {
		if s.cache != nil && s.offline() {
			s.runOffline(calls, write)
			return
		}
		txs, failed, fnErr, committing, err := s.try(ctx, opts, calls)
		// The caller's context ending says nothing about the database.
		down := err != nil && ctx.Err() == nil && isConnError(err)
		if down && !committing && !reconnected && !strings.Contains(err.Error(), "failed to connect") {
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
		if down && s.cache != nil && !committing {
			s.runOffline(calls, write)
			return
		}
		switch {
		case err != nil && retryable(err) && retries < s.opts.MaxRetries:
			// Lost a race with another transaction (here or on another
			// host). A batch that lost twice runs as two halves, one
			// after the other, so that a large batch colliding again and
			// again with other hosts' does not keep losing whole.
			retries++
			if len(calls) > 1 && retries > 1 {
				s.split(ctx, opts, calls)
				return
			}
			// Back off a little, at random, and run again.
			time.Sleep(time.Duration(rand.IntN(1+min(retries, 10)*500)) * time.Microsecond)
			continue
		case err != nil && !down && len(calls) > 1:
			// A statement failed, or COMMIT (a deferred constraint),
			// for one of the functions: halves find which, and the
			// others commit.
			s.split(ctx, opts, calls)
			return
		case err != nil:
			for _, c := range calls {
				c.out <- fmt.Errorf("store: postgres: %w", err)
			}
			return
		case failed >= 0:
			calls[failed].out <- fnErr
			calls = append(calls[:failed:failed], calls[failed+1:]...)
			continue
		}
		s.committed(ctx, write, calls, txs)
		return
	}
}

// split runs the first half of calls, then the second.
func (s *Store) split(ctx context.Context, opts pgx.TxOptions, calls []*call) {
	h := len(calls) / 2
	s.run(ctx, opts, calls[:h])
	s.run(ctx, opts, calls[h:])
}

// runOffline serves each call from this host's cache.
func (s *Store) runOffline(calls []*call, write bool) {
	for _, c := range calls {
		c.out <- s.cache.run(c.fn, write, s.floor)
	}
}

// committed does, for each function of a committed transaction, what
// follows its commit (this host's counter floor, its offline cache, the
// audit log's trim), then answers the calls.
func (s *Store) committed(ctx context.Context, write bool, calls []*call, txs []*tx) {
	var err error
	var appended uint64
	for _, t := range txs {
		appended = max(appended, t.lastSeq)
		// This host remembers the counters before it answers.
		if ferr := s.floor.raise(t.floors); ferr != nil && err == nil {
			err = fmt.Errorf("store: counter floor: %w", ferr)
		}
		if s.cache != nil {
			s.cache.save(t.seen)
		}
	}
	if write {
		s.gmu.Lock()
		s.commits++
		s.batched += uint64(len(calls))
		s.gmu.Unlock()
		if appended > s.opts.AuditRetention {
			s.trim(ctx, appended)
		}
	}
	for _, c := range calls {
		c.out <- err
	}
}

// try runs calls' functions one after the other in one transaction on a
// connection of the pool and commits it. It returns each function's tx,
// the function that returned an error (-1: none) and its error, and the
// transaction's error: a statement's, BEGIN's or COMMIT's (committing: an
// error met at COMMIT, whose outcome may be unknown).
func (s *Store) try(ctx context.Context, opts pgx.TxOptions, calls []*call) (txs []*tx, failed int, fnErr error, committing bool, err error) {
	x := &txn{ctx: ctx, batch: &pgx.Batch{}, write: opts.AccessMode != pgx.ReadOnly}
	x.batch.BeginTx(opts)
	if x.conn, err = s.pool.Acquire(ctx); err != nil {
		return nil, -1, nil, false, err
	}
	defer x.conn.Release()
	if len(calls) > 1 {
		names := make([]string, len(calls))
		for i, c := range calls {
			names[i] = probe(c.fn)
		}
		if err := x.prefetch(names); err != nil {
			x.finish(false)
			return nil, -1, nil, false, err
		}
	}
	for i, c := range calls {
		t := &tx{txn: x, s: s}
		if s.cache != nil {
			t.seen = &seen{}
		}
		fnErr = safeCall(c.fn, t)
		txs = append(txs, t)
		if x.err != nil {
			x.finish(false)
			return txs, -1, nil, false, x.err // a statement failed: the transaction is aborted
		}
		if fnErr != nil {
			x.finish(false)
			return txs, i, fnErr, false, nil
		}
	}
	committing, err = x.finish(true)
	return txs, -1, nil, committing, err
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
