package postgres

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/authn/store"
)

// txn is one PostgreSQL transaction on one connection of the pool, with
// as few round trips as the reads allow: BEGIN goes out with the first
// statement, writes whose answer authn does not need (upserts, deletes of
// tokens, audit entries whose sequence number was reserved) wait for the
// next statement that must be answered, or for COMMIT, and go out with it
// in one pipeline.
//
// Update's group commit runs the functions of a batch one after the other
// in one txn, each through a tx of its own: a function's first reads go
// out with the previous function's deferred writes, and the batch ends
// with one COMMIT. A sign-in alone is two round trips (BEGIN with the
// account, its devices and a reserved audit sequence number; the device's
// update and the audit entry with COMMIT); in a batch of n, n+1.
//
// The first failed statement is kept: PostgreSQL aborts the transaction
// then, and Update must see why (a serialization failure means run again)
// whatever the functions made of it. A deferred write's failure shows at
// the next statement, which answers it.
type txn struct {
	ctx   context.Context
	conn  *pgxpool.Conn
	batch *pgx.Batch // BEGIN (until sent) and the deferred writes
	began bool       // BEGIN was sent
	write bool       // a read-write transaction
	err   error
	// pre holds the accounts (and their devices) that the batch's
	// functions read first, fetched with BEGIN, until a write in the
	// batch makes one stale; seqs are audit sequence numbers reserved
	// with them.
	pre  map[string]*fetched
	seqs []uint64
}

// fetched is an account's row (none: no such account) and its devices'.
type fetched struct {
	acct, devs []row
	stale      bool
}

// stale marks what a write to account's rows makes stale.
func (t *txn) stale(account string) {
	if f := t.pre[account]; f != nil {
		f.stale = true
	}
}

// prefetch reads, with BEGIN, the accounts that names (the batch's
// functions' first reads, "" for none) and their devices, and reserves
// an audit sequence number for each function that reads one.
func (t *txn) prefetch(names []string) error {
	var list []string
	t.pre = map[string]*fetched{}
	for _, n := range names {
		if n != "" && t.pre[n] == nil {
			t.pre[n] = &fetched{}
			list = append(list, n)
		}
	}
	if len(list) == 0 {
		return nil
	}
	var qerr error
	t.batch.Queue(sqlAccountsAny, list).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var name string
			var r row
			if qerr = rows.Scan(&name, &r.rec); qerr != nil {
				return nil
			}
			if f := t.pre[name]; f != nil {
				f.acct = append(f.acct, r)
			}
		}
		return nil
	})
	t.batch.Queue(sqlDevicesAny, list).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var name string
			var r row
			if qerr = rows.Scan(&name, &r.rec, &r.sealed); qerr != nil {
				return nil
			}
			if f := t.pre[name]; f != nil {
				f.devs = append(f.devs, r)
			}
		}
		return nil
	})
	if t.write {
		n := 0
		for _, name := range names {
			if name != "" {
				n++
			}
		}
		t.batch.Queue(`SELECT nextval('audit_seq_seq') FROM generate_series(1, $1)`, n).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var seq int64
				if qerr = rows.Scan(&seq); qerr != nil {
					return nil
				}
				t.seqs = append(t.seqs, uint64(seq))
			}
			return nil
		})
	}
	if err := t.send(); err != nil {
		return err
	}
	return t.fail(qerr)
}

// tx adapts a txn to authn.Tx for one function, with that function's own
// bookkeeping: what it raises the counter floor to, what the offline cache
// keeps, the last audit entry it appended.
type tx struct {
	*txn
	s       *Store
	lastSeq uint64
	floors  map[string]floorVal // counters this function wrote
	seen    *seen               // what the offline cache keeps (nil without one)
	raw     bool                // devices as the database has them, not raised to the floor
	asked   bool                // the function read something already
	// seq is an audit sequence number reserved by the function's first
	// read, so that its audit entry needs no answer of its own (0: none).
	seq uint64
	// devices read with their account by the first statement, until
	// Devices asks for them or a write to them makes them stale.
	prefetched map[string][]row
}

// The reads of a sign-in: an account and its devices, or those of a
// batch's accounts.
const (
	sqlAccount     = `SELECT record, NULL::bytea FROM accounts WHERE name = $1`
	sqlDevices     = `SELECT record, sealed_secret FROM devices WHERE account = $1 ORDER BY id`
	sqlAccountsAny = `SELECT name, record FROM accounts WHERE name = ANY($1)`
	sqlDevicesAny  = `SELECT account, record, sealed_secret FROM devices WHERE account = ANY($1) ORDER BY account, id`
)

// row is a (record, sealed) row.
type row struct{ rec, sealed []byte }

func (t *txn) fail(err error) error {
	if err != nil && t.err == nil && !errors.Is(err, pgx.ErrNoRows) {
		t.err = err
	}
	return err
}

// send sends what is queued (BEGIN, deferred writes, and the statements
// queued last, whose callbacks read their answers) in one round trip.
func (t *txn) send() error {
	if t.err != nil {
		return t.err
	}
	b := t.batch
	t.batch, t.began = &pgx.Batch{}, true
	return t.fail(t.conn.SendBatch(t.ctx, b).Close())
}

// exec defers a write whose answer is only its success.
func (t *txn) exec(sql string, args ...any) error {
	if t.err != nil {
		return t.err
	}
	t.batch.Queue(sql, args...)
	return nil
}

// scanRows reads rows of (record, sealed) from a query's answer.
func scanRows(rows pgx.Rows) ([]row, error) {
	var out []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.rec, &r.sealed); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// query sends sql, with whatever is queued, and returns its rows.
func (t *tx) query(sql string, args ...any) ([]row, error) {
	t.asked = true
	var out []row
	var qerr error
	t.batch.Queue(sql, args...).Query(func(rows pgx.Rows) error {
		out, qerr = scanRows(rows)
		return nil
	})
	if err := t.send(); err != nil {
		return nil, err
	}
	return out, t.fail(qerr)
}

// list runs a query of (record, sealed) rows and decodes each.
func list[T any](t *tx, sql string, args []any, dec func(rec, sealed []byte) (*T, error)) ([]T, error) {
	rows, err := t.query(sql, args...)
	if err != nil {
		return nil, err
	}
	return decodeRows(rows, dec)
}

func decodeRows[T any](rows []row, dec func(rec, sealed []byte) (*T, error)) ([]T, error) {
	var out []T
	for _, r := range rows {
		v, err := dec(r.rec, r.sealed)
		if err != nil {
			return nil, err
		}
		out = append(out, *v)
	}
	return out, nil
}

// one runs a query of one (record, sealed) row and decodes it; no row is
// authn's not-found error for what name.
func one[T any](t *tx, what, name, sql string, args []any, dec func(rec, sealed []byte) (*T, error)) (*T, error) {
	rows, err := t.query(sql, args...)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, store.NotFound(what, name)
	}
	return dec(rows[0].rec, rows[0].sealed)
}

// finish ends the transaction: COMMIT, with the writes still deferred, or
// ROLLBACK. committed reports whether COMMIT was sent (an error then
// leaves the outcome unknown).
func (t *txn) finish(commit bool) (sent bool, err error) {
	switch {
	case !t.began && (!commit || t.batch.Len() == 1):
		return false, nil // nothing was sent, or only BEGIN would be: no transaction
	case commit && t.err == nil:
		t.batch.Queue("COMMIT")
		return true, t.send()
	}
	t.rollback()
	return false, nil
}

// rollback ends a transaction that was sent, so that its connection goes
// back to the pool clean (a connection left in a transaction is closed).
func (t *txn) rollback() {
	if !t.began || t.conn.Conn().PgConn().TxStatus() == 'I' {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.ctx), 5*time.Second)
	defer cancel()
	t.conn.Exec(ctx, "ROLLBACK")
}

func (t *tx) decodeAccount(rec, _ []byte) (*authn.Account, error) { return t.s.rec.DecodeAccount(rec) }

// decodeDevice opens a device row and raises it to this host's floor.
func (t *tx) decodeDevice(rec, sealed []byte) (*authn.Device, error) {
	d, err := t.s.rec.DecodeDevice(rec, sealed)
	if err == nil && !t.raw {
		t.s.floor.apply(d)
	}
	return d, err
}

func nullTime(tm time.Time) *time.Time {
	if tm.IsZero() {
		return nil
	}
	return &tm
}

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// counter is a uint64 for a numeric(20,0) column.
func counter(c uint64) string { return strconv.FormatUint(c, 10) }

func (t *tx) Account(name string) (*authn.Account, error) {
	var a *authn.Account
	var err error
	if f := t.pre[name]; !t.asked && f != nil && !f.stale {
		// Read with BEGIN for the whole batch, and still as the
		// database has it in this transaction.
		t.asked = true
		if len(t.seqs) > 0 && t.seq == 0 {
			t.seq, t.seqs = t.seqs[0], t.seqs[1:]
		}
		if len(f.acct) == 0 {
			return nil, store.NotFound("account", name)
		}
		if t.prefetched == nil {
			t.prefetched = map[string][]row{}
		}
		t.prefetched[name] = f.devs
		a, err = t.decodeAccount(f.acct[0].rec, nil)
	} else if !t.asked {
		// The first statement of a sign-in, as of most changes: the
		// account's devices go with it, in one round trip (with BEGIN,
		// or with the previous function's writes), and in a write an
		// audit sequence number for the entry the change will append.
		t.asked = true
		var acct, devs []row
		var qerr error
		t.batch.Queue(sqlAccount, name).Query(func(rows pgx.Rows) error {
			acct, qerr = scanRows(rows)
			return nil
		})
		t.batch.Queue(sqlDevices, name).Query(func(rows pgx.Rows) error {
			if devs, err = scanRows(rows); qerr == nil {
				qerr = err
			}
			return nil
		})
		var seq int64
		if t.write && t.seq == 0 {
			t.batch.Queue(`SELECT nextval('audit_seq_seq')`).QueryRow(func(r pgx.Row) error {
				return r.Scan(&seq)
			})
		}
		if err := t.send(); err != nil {
			return nil, err
		}
		if seq > 0 {
			t.seq = uint64(seq)
		}
		if err := t.fail(qerr); err != nil {
			return nil, err
		}
		if len(acct) == 0 {
			return nil, store.NotFound("account", name)
		}
		if t.prefetched == nil {
			t.prefetched = map[string][]row{}
		}
		t.prefetched[name] = devs
		a, err = t.decodeAccount(acct[0].rec, nil)
	} else {
		a, err = one(t, "account", name, sqlAccount, []any{name}, t.decodeAccount)
	}
	if err == nil && t.seen != nil {
		t.seen.account(a)
	}
	return a, err
}

func (t *tx) Accounts() ([]authn.Account, error) {
	return list(t, `SELECT record, NULL::bytea FROM accounts ORDER BY name`, nil, t.decodeAccount)
}

func (t *tx) PutAccount(a *authn.Account) error {
	rec, err := t.s.rec.EncodeAccount(a)
	if err != nil {
		return err
	}
	if t.seen != nil {
		t.seen.account(a)
	}
	t.stale(a.Name)
	return t.exec(`INSERT INTO accounts (name, kind, email, phone, disabled, failed_attempts, locked_until, created_at, updated_at, record)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, email = excluded.email, phone = excluded.phone,
			disabled = excluded.disabled, failed_attempts = excluded.failed_attempts, locked_until = excluded.locked_until,
			created_at = excluded.created_at, updated_at = excluded.updated_at, record = excluded.record`,
		a.Name, string(a.Kind), nullString(a.Email), nullString(a.Phone), a.HasFlag(authn.FlagDisabled), a.FailedAttempts,
		nullTime(a.LockedUntil), nullTime(a.CreatedAt), nullTime(a.UpdatedAt), rec)
}

func (t *tx) DeleteAccount(name string) error {
	delete(t.prefetched, name)
	t.stale(name)
	if t.seen != nil {
		t.seen.remove(name)
	}
	// Devices and their credentials go with the account (ON DELETE CASCADE).
	return t.exec(`DELETE FROM accounts WHERE name = $1`, name)
}

func (t *tx) Devices(account string) ([]authn.Device, error) {
	var devs []authn.Device
	var err error
	if rows, ok := t.prefetched[account]; ok {
		devs, err = decodeRows(rows, t.decodeDevice)
	} else {
		devs, err = list(t, sqlDevices, []any{account}, t.decodeDevice)
	}
	if err == nil && t.seen != nil {
		for i := range devs {
			t.seen.device(&devs[i])
		}
		if t.seen.listed == nil {
			t.seen.listed = map[string]bool{}
		}
		t.seen.listed[account] = true
	}
	return devs, err
}

func (t *tx) ActiveOTPDevices(account string) ([]authn.Device, int, error) {
	devs, err := t.Devices(account)
	otps, active := authn.ActiveOTP(devs)
	return otps, active, err
}

func (t *tx) Device(account, id string) (*authn.Device, error) {
	d, err := one(t, "device", id, `SELECT record, sealed_secret FROM devices WHERE account = $1 AND id = $2`, []any{account, id}, t.decodeDevice)
	if err == nil && t.seen != nil {
		t.seen.device(d)
	}
	return d, err
}

func (t *tx) PutDevice(d *authn.Device) error {
	delete(t.prefetched, d.Account)
	t.stale(d.Account)
	rec, sealed, err := t.s.rec.EncodeDevice(d)
	if err != nil {
		return err
	}
	var last *string
	var used *bool
	var drift *int64
	if d.OTP != nil {
		c := counter(d.OTP.LastCounter)
		last, used, drift = &c, &d.OTP.Used, &d.OTP.Drift
	}
	err = t.exec(`INSERT INTO devices (account, id, type, state, label, serial, last_counter, counter_used, drift,
			resync_failures, created_at, last_used_at, record, sealed_secret)
		VALUES ($1, $2, $3, $4, $5, $6, $7::numeric, $8, $9, $10, $11, $12, $13, $14)
		ON CONFLICT (account, id) DO UPDATE SET type = excluded.type, state = excluded.state, label = excluded.label,
			serial = excluded.serial, last_counter = excluded.last_counter, counter_used = excluded.counter_used,
			drift = excluded.drift, resync_failures = excluded.resync_failures, created_at = excluded.created_at,
			last_used_at = excluded.last_used_at, record = excluded.record, sealed_secret = excluded.sealed_secret`,
		d.Account, d.ID, string(d.Type), string(d.State), nullString(d.Label), nullString(d.Serial), last, used, drift,
		d.ResyncFailures, nullTime(d.CreatedAt), nullTime(d.LastUsedAt), rec, sealed)
	if err != nil {
		return err
	}
	if t.seen != nil {
		t.seen.wrote(d)
	}
	if v, ok := floorOf(d); ok && t.s.floor != nil {
		if t.floors == nil {
			t.floors = map[string]floorVal{}
		}
		t.floors[floorKey(d.Account, d.ID)] = v
	}
	if f := d.FIDO; f != nil {
		return t.exec(`INSERT INTO credentials (account, device_id, credential_id, public_key, alg, aaguid, sign_count, possibly_cloned)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (account, device_id) DO UPDATE SET credential_id = excluded.credential_id, public_key = excluded.public_key,
				alg = excluded.alg, aaguid = excluded.aaguid, sign_count = excluded.sign_count, possibly_cloned = excluded.possibly_cloned`,
			d.Account, d.ID, f.CredentialID, f.PublicKey, f.Alg, f.AAGUID, int64(f.SignCount), f.PossiblyCloned)
	}
	return nil
}

func (t *tx) DeleteDevice(account, id string) error {
	delete(t.prefetched, account)
	t.stale(account)
	var deleted int64
	t.batch.Queue(`DELETE FROM devices WHERE account = $1 AND id = $2`, account, id).Exec(func(tag pgconn.CommandTag) error {
		deleted = tag.RowsAffected()
		return nil
	})
	if err := t.send(); err != nil {
		return err
	}
	if deleted == 0 {
		return store.NotFound("device", id)
	}
	if t.seen != nil {
		t.seen.remove(floorKey(account, id))
	}
	return nil
}

func (t *tx) Token(serial string) (*authn.Token, error) {
	return one(t, "token", serial, `SELECT record, sealed_secret FROM tokens WHERE serial = $1`, []any{serial}, t.s.rec.DecodeToken)
}

func (t *tx) Tokens() ([]authn.Token, error) {
	return list(t, `SELECT record, sealed_secret FROM tokens ORDER BY serial`, nil, t.s.rec.DecodeToken)
}

func (t *tx) PutToken(tok *authn.Token) error {
	rec, sealed, err := t.s.rec.EncodeToken(tok)
	if err != nil {
		return err
	}
	return t.exec(`INSERT INTO tokens (serial, manufacturer, model, assigned_to, device_id, retired, last_counter, imported_at, record, sealed_secret)
		VALUES ($1, $2, $3, $4, $5, $6, $7::numeric, $8, $9, $10)
		ON CONFLICT (serial) DO UPDATE SET manufacturer = excluded.manufacturer, model = excluded.model,
			assigned_to = excluded.assigned_to, device_id = excluded.device_id, retired = excluded.retired,
			last_counter = excluded.last_counter, imported_at = excluded.imported_at, record = excluded.record,
			sealed_secret = excluded.sealed_secret`,
		tok.Serial, nullString(tok.Manufacturer), nullString(tok.Model), nullString(tok.AssignedTo), nullString(tok.DeviceID),
		tok.Retired, counter(tok.OTP.LastCounter), nullTime(tok.ImportedAt), rec, sealed)
}

func (t *tx) DeleteToken(serial string) error {
	return t.exec(`DELETE FROM tokens WHERE serial = $1`, serial)
}

// auditColumns are an audit entry's columns but its sequence number.
const auditColumns = `time, host, actor_uid, actor, action, outcome, account, device, detail`

func (t *tx) AppendAudit(e *authn.AuditEvent) error {
	args := []any{e.Time, t.s.opts.Host, int64(e.ActorUID), nullString(e.Actor), e.Action, e.Outcome,
		nullString(e.Account), nullString(e.Device), nullString(e.Detail)}
	if t.seq != 0 {
		// Its number reserved by the function's first read: the entry
		// goes out with the next statement, or with COMMIT.
		seq := t.seq
		if err := t.exec(`INSERT INTO audit (seq, `+auditColumns+`) VALUES ($10, $1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			append(args, int64(seq))...); err != nil {
			return err
		}
		t.seq = 0
		e.Seq = seq
		t.lastSeq = max(t.lastSeq, seq)
		return nil
	}
	var seq int64
	t.asked = true
	t.batch.Queue(`INSERT INTO audit (`+auditColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING seq`,
		args...).QueryRow(func(r pgx.Row) error {
		return r.Scan(&seq)
	})
	if err := t.send(); err != nil {
		return err
	}
	e.Seq = uint64(seq)
	t.lastSeq = max(t.lastSeq, e.Seq)
	return nil
}

func (t *tx) Audit(after uint64, limit int) ([]authn.AuditEvent, error) {
	var out []authn.AuditEvent
	var qerr error
	t.batch.Queue(`SELECT seq, time, actor_uid, coalesce(actor, ''), action, outcome, coalesce(account, ''), coalesce(device, ''), coalesce(detail, '')
		FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2`, int64(min(after, 1<<63-1)), limit).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var e authn.AuditEvent
			var seq, uid int64
			if qerr = rows.Scan(&seq, &e.Time, &uid, &e.Actor, &e.Action, &e.Outcome, &e.Account, &e.Device, &e.Detail); qerr != nil {
				return nil
			}
			e.Seq, e.ActorUID, e.Time = uint64(seq), uint32(uid), e.Time.UTC()
			out = append(out, e)
		}
		qerr = rows.Err()
		return nil
	})
	if err := t.send(); err != nil {
		return nil, err
	}
	return out, t.fail(qerr)
}
