package postgres

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// SchemaVersion is the schema this build writes. Older databases are
// migrated by Migrate; newer ones are refused.
const SchemaVersion = 1

// migrations[i] upgrades the schema from version i to i+1.
var migrations = []string{
	0: `
CREATE TABLE mfad_meta (
	key   text PRIMARY KEY,
	value text NOT NULL
);
CREATE TABLE accounts (
	name            text PRIMARY KEY,
	kind            text NOT NULL,
	email           text,
	phone           text,
	disabled        boolean NOT NULL,
	failed_attempts integer NOT NULL,
	locked_until    timestamptz,
	created_at      timestamptz,
	updated_at      timestamptz,
	record          bytea NOT NULL
);
CREATE TABLE devices (
	account         text NOT NULL REFERENCES accounts (name) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
	id              text NOT NULL,
	type            text NOT NULL,
	state           text NOT NULL CHECK (state IN ('pending', 'active', 'deactivated')),
	label           text,
	serial          text,
	last_counter    numeric(20, 0),
	counter_used    boolean,
	drift           bigint,
	resync_failures integer NOT NULL,
	created_at      timestamptz,
	last_used_at    timestamptz,
	record          bytea NOT NULL,
	sealed_secret   bytea,
	PRIMARY KEY (account, id)
);
CREATE TABLE credentials (
	account         text NOT NULL,
	device_id       text NOT NULL,
	credential_id   bytea NOT NULL,
	public_key      bytea NOT NULL,
	alg             bigint NOT NULL,
	aaguid          text NOT NULL,
	sign_count      bigint NOT NULL,
	possibly_cloned boolean NOT NULL,
	PRIMARY KEY (account, device_id),
	FOREIGN KEY (account, device_id) REFERENCES devices (account, id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX credentials_by_id ON credentials (credential_id);
CREATE TABLE tokens (
	serial        text PRIMARY KEY,
	manufacturer  text,
	model         text,
	assigned_to   text,
	device_id     text,
	retired       boolean NOT NULL,
	last_counter  numeric(20, 0),
	imported_at   timestamptz,
	record        bytea NOT NULL,
	sealed_secret bytea
);
CREATE TABLE audit (
	seq       bigserial PRIMARY KEY,
	time      timestamptz NOT NULL,
	host      text NOT NULL,
	actor_uid bigint NOT NULL,
	actor     text,
	action    text NOT NULL,
	outcome   text NOT NULL,
	account   text,
	device    text,
	detail    text
);
CREATE INDEX audit_by_account ON audit (account, seq);
CREATE FUNCTION mfad_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'mfad: the audit log is append-only';
END $$;
CREATE TRIGGER audit_append_only BEFORE UPDATE ON audit FOR EACH ROW EXECUTE FUNCTION mfad_audit_append_only();
CREATE TABLE blobs (
	host   text NOT NULL,
	name   text NOT NULL,
	sealed bytea NOT NULL,
	PRIMARY KEY (host, name)
);
`,
}

// migrateLock is the advisory lock that serializes migrations across hosts.
const migrateLock = 0x6d666164 // "mfad"

// schemaVersion reads the database's schema version (0 when mfad never
// migrated it).
func schemaVersion(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('mfad_meta') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var v string
	err := q.QueryRow(ctx, `SELECT value FROM mfad_meta WHERE key = 'schema'`).Scan(&v)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("store: mfad_meta schema %q is not a version", v)
	}
	return n, nil
}

// ErrNewerSchema means the database was migrated by a newer mfad.
var ErrNewerSchema = errors.New("store: the database's schema is newer than this mfad understands")

// ErrOlderSchema means the database needs `mfad migrate`.
var ErrOlderSchema = errors.New("store: the database's schema is older than this mfad")

// Migrate brings the database's schema to SchemaVersion and returns the
// versions before and after. It holds an advisory lock, so daemons
// starting together migrate once.
func Migrate(ctx context.Context, pool *pgxpool.Pool) (from, to int, err error) {
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrateLock)); err != nil {
			return err
		}
		v, err := schemaVersion(ctx, tx)
		if err != nil {
			return err
		}
		from, to = v, v
		if v > SchemaVersion {
			return fmt.Errorf("%w (database v%d, mfad v%d): upgrade mfad", ErrNewerSchema, v, SchemaVersion)
		}
		for ; v < SchemaVersion; v++ {
			if _, err := tx.Exec(ctx, migrations[v]); err != nil {
				return fmt.Errorf("store: migrate v%d to v%d: %w", v, v+1, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO mfad_meta (key, value) VALUES ('schema', $1)
				ON CONFLICT (key) DO UPDATE SET value = excluded.value`, strconv.Itoa(v+1)); err != nil {
				return err
			}
		}
		to = v
		return nil
	})
	return from, to, err
}

// keyCheckAD is the path the key-check value is sealed to.
const keyCheckAD = "meta/key_check"

var keyCheckPlain = []byte("mfad fleet master key")

// checkKey seals a known value under the key at first use and opens it
// at every later start: a host with another key is refused before it
// writes anything sealed under the wrong key.
func (s *Store) checkKey(ctx context.Context) error {
	sealed := hex.EncodeToString(s.rec.Seal(keyCheckPlain, keyCheckAD))
	var stored string
	err := s.pool.QueryRow(ctx, `INSERT INTO mfad_meta (key, value) VALUES ('key_check', $1)
		ON CONFLICT (key) DO UPDATE SET value = mfad_meta.value RETURNING value`, sealed).Scan(&stored)
	if err != nil {
		return fmt.Errorf("store: key check: %w", err)
	}
	if err := s.openKeyCheck(stored); err != nil {
		return err
	}
	// Kept on this host, so that it can check its key when it starts
	// while the database is out of reach.
	s.floor.setMeta("key_check", stored)
	return nil
}

// openKeyCheck opens a key-check value (hex) with this host's key.
func (s *Store) openKeyCheck(stored string) error {
	b, err := hex.DecodeString(stored)
	if err == nil {
		_, err = s.rec.Open(b, keyCheckAD)
	}
	if err != nil {
		return ErrWrongKey
	}
	return nil
}

// ErrWrongKey means this host's master key is not the one the database's
// secrets are sealed under.
var ErrWrongKey = errors.New("store: the database's secrets are sealed under another master key: give this host the fleet's key ($CREDENTIALS_DIRECTORY/mfad.key, the same file on every host)")
