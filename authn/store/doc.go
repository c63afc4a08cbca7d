// Package store is the bbolt implementation of authn.Store: the database
// mfad.db under the state directory, with its write-ahead log (mfad.wal,
// mfad.wal.0, mfad.wal.1) and the base copy mfad.db.base.<generation> that
// the log's records apply to
// (wal.go says why a base copy and how recovery, checkpoints and the
// clean-stop flag work).
//
// Bucket tree (schema version 4; records are CBOR, of this package's own
// record types with explicit keys (schema.go), never authn's or the wire's):
//
//	mfad/                      root; key "schema" = big-endian uint32 version
//	├── meta/                  key/value settings fixed at first start (created_at, rp_id),
//	│                          and key_check: a constant sealed under the master key
//	├── accounts/              <name>   -> accountRec
//	├── devices/
//	│   └── <account>/         <id>     -> deviceRecord, with the sealed secret
//	├── devstate/              <account> NUL <id> -> deviceStateRec: what a sign-in
//	│                          changes (devstate.go says how the two halves agree)
//	├── tokens/                <serial> -> tokenRecord, with the sealed secret
//	├── audit/                 <seq, 8-byte big-endian> -> auditRec
//	└── blobs/                 <name>   -> sealed opaque state (software keys: "emulator/<name>")
//
// Migrations: v0 -> v1 creates the first five buckets; v1 -> v2 adds blobs;
// v2 -> v3 re-encodes every record from JSON to CBOR; v3 -> v4 adds
// devstate (records move their state there when next written).
//
// OTP devices' records are kept decoded, secret opened, in a bounded
// cache whose entries serve only while the stored bytes equal those they
// came from (devcache.go).
//
// Secrets are sealed with AES-256-GCM under the master key (see LoadKey),
// with the record's bucket path as additional data so a sealed value cannot
// be moved to another record. The key-check value tells the database's key
// from any other at Open (see LoadKey and docs/masterkey.md); keyed backups
// carry the key sealed under a passphrase (Argon2id). Writes go through a
// group commit: one writer at a time runs every queued function in one
// bbolt transaction, appends its changes to the log and flushes that once,
// so concurrent callers share the fsync; bbolt then commits without one. A lone update is its own writer, on its caller's goroutine; one
// that finds a commit in progress queues for the committer goroutine.
//
// It may import authn, bbolt, cbor, x/crypto/argon2 and the standard library.
package store
