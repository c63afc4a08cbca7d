// Package postgres is the PostgreSQL implementation of authn.Store, for a
// fleet of mfad daemons sharing one database: every mfad is a peer, and
// account, device, replay and lockout state is the fleet's.
//
// The schema is mfad's, versioned in mfad_meta ("schema"), applied by
// Migrate (mfad migrate, or at Open with AutoMigrate). Tables are relational
// where a rule is enforced or an admin queries (accounts, devices with
// their state and counters, credentials, tokens, audit with the host of
// each entry, blobs per host); each row also carries the full record in
// authn/store's encoding, and secrets stay sealed under the fleet's master
// key with authn/store's sealing.
//
// Update runs its function in a SERIALIZABLE transaction and runs it again
// on a serialization failure, so a device's last counter moves once for a
// given code however many daemons race on it. It is a group commit, as the
// bbolt store's: updates that arrive while a transaction runs share the
// next one, their functions run one after the other in it (the accounts
// they read first fetched together with BEGIN, see probe.go), and one
// COMMIT ends them all.
//
// Each host also keeps a counter floor (a small bbolt file in its state
// directory): the highest counters it accepted. Devices read from the
// database are raised to it, so a database restored to an older point does
// not make the host accept a code it had already seen. The same file holds
// the host's software keys' state and, with Options.Offline, the offline
// cache (accounts seen and their security keys) and the queue of what the
// host did offline, replayed by Reconcile when the database answers again.
//
// It may import authn, authn/store, pgx, bbolt and the standard library.
package postgres
