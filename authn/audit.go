package authn

import "time"

// AuditEvent is one entry of the append-only audit log. It never holds a
// secret, a code or a PIN: Detail is written by mfad, not copied from input.
type AuditEvent struct {
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	ActorUID uint32    `json:"actor_uid"`
	Actor    string    `json:"actor,omitempty"`
	Action   string    `json:"action"`
	Outcome  string    `json:"outcome"` // "ok" or "fail"
	Account  string    `json:"account,omitempty"`
	Device   string    `json:"device,omitempty"`
	Detail   string    `json:"detail,omitempty"`
}

// Audit actions.
const (
	ActAccountCreate = "account.create"
	ActAccountUpdate = "account.update"
	ActAccountDelete = "account.delete"
	ActBackup        = "store.backup"
)
