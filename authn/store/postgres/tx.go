package postgres

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/authn/store"
)

// tx adapts a pgx transaction to authn.Tx. The first failed statement is
// kept: PostgreSQL aborts the transaction then, and Update must see why
// (a serialization failure means run again) whatever fn made of it.
type tx struct {
	s       *Store
	ctx     context.Context
	ptx     pgx.Tx
	err     error
	lastSeq uint64
	floors  map[string]floorVal // counters this transaction wrote
	seen    *seen               // what the offline cache keeps (nil without one)
	raw     bool                // devices as the database has them, not raised to the floor
}

func (t *tx) fail(err error) error {
	if err != nil && t.err == nil && !errors.Is(err, pgx.ErrNoRows) {
		t.err = err
	}
	return err
}

func (t *tx) exec(sql string, args ...any) error {
	_, err := t.ptx.Exec(t.ctx, sql, args...)
	return t.fail(err)
}

// list runs a query of (record, sealed) rows and decodes each.
func list[T any](t *tx, sql string, args []any, dec func(rec, sealed []byte) (*T, error)) ([]T, error) {
	rows, err := t.ptx.Query(t.ctx, sql, args...)
	if err != nil {
		return nil, t.fail(err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var rec, sealed []byte
		if err := rows.Scan(&rec, &sealed); err != nil {
			return nil, t.fail(err)
		}
		v, err := dec(rec, sealed)
		if err != nil {
			return nil, err
		}
		out = append(out, *v)
	}
	return out, t.fail(rows.Err())
}

// one runs a query of one (record, sealed) row and decodes it; no row is
// authn's not-found error for what name.
func one[T any](t *tx, what, name, sql string, args []any, dec func(rec, sealed []byte) (*T, error)) (*T, error) {
	var rec, sealed []byte
	err := t.ptx.QueryRow(t.ctx, sql, args...).Scan(&rec, &sealed)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.NotFound(what, name)
	}
	if err != nil {
		return nil, t.fail(err)
	}
	return dec(rec, sealed)
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
	a, err := one(t, "account", name, `SELECT record, NULL::bytea FROM accounts WHERE name = $1`, []any{name}, t.decodeAccount)
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
	return t.exec(`INSERT INTO accounts (name, kind, email, phone, disabled, failed_attempts, locked_until, created_at, updated_at, record)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, email = excluded.email, phone = excluded.phone,
			disabled = excluded.disabled, failed_attempts = excluded.failed_attempts, locked_until = excluded.locked_until,
			created_at = excluded.created_at, updated_at = excluded.updated_at, record = excluded.record`,
		a.Name, string(a.Kind), nullString(a.Email), nullString(a.Phone), a.HasFlag(authn.FlagDisabled), a.FailedAttempts,
		nullTime(a.LockedUntil), nullTime(a.CreatedAt), nullTime(a.UpdatedAt), rec)
}

func (t *tx) DeleteAccount(name string) error {
	if t.seen != nil {
		t.seen.remove(name)
	}
	// Devices and their credentials go with the account (ON DELETE CASCADE).
	return t.exec(`DELETE FROM accounts WHERE name = $1`, name)
}

func (t *tx) Devices(account string) ([]authn.Device, error) {
	devs, err := list(t, `SELECT record, sealed_secret FROM devices WHERE account = $1 ORDER BY id`, []any{account}, t.decodeDevice)
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
	tag, err := t.ptx.Exec(t.ctx, `DELETE FROM devices WHERE account = $1 AND id = $2`, account, id)
	if err != nil {
		return t.fail(err)
	}
	if tag.RowsAffected() == 0 {
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

func (t *tx) AppendAudit(e *authn.AuditEvent) error {
	var seq int64
	err := t.ptx.QueryRow(t.ctx, `INSERT INTO audit (time, host, actor_uid, actor, action, outcome, account, device, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING seq`,
		e.Time, t.s.opts.Host, int64(e.ActorUID), nullString(e.Actor), e.Action, e.Outcome,
		nullString(e.Account), nullString(e.Device), nullString(e.Detail)).Scan(&seq)
	if err != nil {
		return t.fail(err)
	}
	e.Seq = uint64(seq)
	t.lastSeq = max(t.lastSeq, e.Seq)
	return nil
}

func (t *tx) Audit(after uint64, limit int) ([]authn.AuditEvent, error) {
	rows, err := t.ptx.Query(t.ctx, `SELECT seq, time, actor_uid, coalesce(actor, ''), action, outcome, coalesce(account, ''), coalesce(device, ''), coalesce(detail, '')
		FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2`, int64(min(after, 1<<63-1)), limit)
	if err != nil {
		return nil, t.fail(err)
	}
	defer rows.Close()
	var out []authn.AuditEvent
	for rows.Next() {
		var e authn.AuditEvent
		var seq, uid int64
		if err := rows.Scan(&seq, &e.Time, &uid, &e.Actor, &e.Action, &e.Outcome, &e.Account, &e.Device, &e.Detail); err != nil {
			return nil, t.fail(err)
		}
		e.Seq, e.ActorUID, e.Time = uint64(seq), uint32(uid), e.Time.UTC()
		out = append(out, e)
	}
	return out, t.fail(rows.Err())
}
