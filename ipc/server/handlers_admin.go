package server

import (
	"fmt"
	"net/http"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/ipc/api"
)

// actRotateKey is the audit action of a master key rotation.
const actRotateKey = "store.rotate_key"

func (s *Server) masterKey() (MasterKeyBackend, error) {
	if s.b.MasterKey == nil {
		return nil, authn.Errorf(authn.ClassConflict, api.CodeKeyNotRotatable, "this store keeps no master key file that mfad may use here")
	}
	return s.b.MasterKey, nil
}

// keyedBackup streams a backup that carries the master key sealed under
// the caller's passphrase.
func (s *Server) keyedBackup(c *call) error {
	mk, err := s.masterKey()
	if err != nil {
		return err
	}
	var req api.KeyedBackup
	if err := c.decode(&req); err != nil {
		return err
	}
	if len(req.Passphrase) < api.MinBackupPassphrase {
		return authn.Errorf(authn.ClassInvalid, authn.CodeInvalidRequest, "the passphrase needs at least %d characters", api.MinBackupPassphrase)
	}
	if err := s.b.Accounts.RecordAudit(c.ctx(), c.p.Actor(), authn.AuditEvent{Action: authn.ActBackup,
		Detail: "with the master key, sealed under a passphrase"}); err != nil {
		return err
	}
	c.w.Header().Set("Content-Type", api.ContentBackup)
	c.w.Header().Set("Content-Disposition", `attachment; filename="mfad.backup"`)
	c.w.WriteHeader(http.StatusOK)
	if _, err := mk.WriteKeyedBackup(c.w, []byte(req.Passphrase)); err != nil {
		s.log.Error("keyed backup stream failed", "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// rotateKey re-seals every secret under a new master key.
func (s *Server) rotateKey(c *call) error {
	mk, err := s.masterKey()
	if err != nil {
		return err
	}
	r, err := mk.RotateKey()
	e := authn.AuditEvent{Action: actRotateKey, Outcome: "ok",
		Detail: fmt.Sprintf("re-sealed %d secrets; the replaced key is kept as %s", r.Resealed, r.OldKeyFile)}
	if err != nil {
		e.Outcome, e.Detail = "fail", "the rotation did not finish"
	}
	if aerr := s.b.Accounts.RecordAudit(c.ctx(), c.p.Actor(), e); aerr != nil && err == nil {
		s.log.Error("key rotated, audit entry not written", "err", aerr)
	}
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, r)
	return nil
}
