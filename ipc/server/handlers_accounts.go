package server

import (
	"net/http"
	"strconv"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/ipc/api"
)

func apiAccount(a *authn.Account) api.Account {
	flags := a.Flags
	if flags == nil {
		flags = []string{}
	}
	return api.Account{
		Name: a.Name, Kind: string(a.Kind),
		Email: a.Email, EmailVerified: a.EmailVerified,
		Phone: a.Phone, PhoneVerified: a.PhoneVerified,
		Flags: flags, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt,
		FailedAttempts: a.FailedAttempts, LockedUntil: a.LockedUntil,
		EverEnrolled: a.EverEnrolled,
	}
}

func (s *Server) info(c *call) error {
	info := s.b.Info.Info()
	info.Caller = api.Caller{UID: c.p.UID, Name: c.p.Name, Admin: c.p.Admin}
	writeJSON(c.w, http.StatusOK, info)
	return nil
}

func (s *Server) listAccounts(c *call) error {
	accts, err := s.b.Accounts.Accounts()
	if err != nil {
		return err
	}
	out := api.AccountList{Accounts: make([]api.Account, 0, len(accts))}
	for i := range accts {
		out.Accounts = append(out.Accounts, apiAccount(&accts[i]))
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}

func (s *Server) createAccount(c *call) error {
	var req api.CreateAccount
	if err := c.decode(&req); err != nil {
		return err
	}
	a, err := s.b.Accounts.CreateAccount(c.ctx(), c.p.Actor(), authn.NewAccount{
		Name: req.Name, Kind: authn.Kind(req.Kind),
		Email: req.Email, EmailVerified: req.EmailVerified,
		Phone: req.Phone, PhoneVerified: req.PhoneVerified,
		Flags: req.Flags,
	})
	if err != nil {
		return err
	}
	c.w.Header().Set("Location", "/v1/accounts/"+a.Name)
	writeJSON(c.w, http.StatusCreated, apiAccount(a))
	return nil
}

func (s *Server) getAccount(c *call) error {
	a, err := s.b.Accounts.Account(c.account)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, apiAccount(a))
	return nil
}

func (s *Server) patchAccount(c *call) error {
	var req api.PatchAccount
	if err := c.decode(&req); err != nil {
		return err
	}
	p := authn.AccountPatch{
		Email: req.Email, EmailVerified: req.EmailVerified,
		Phone: req.Phone, PhoneVerified: req.PhoneVerified,
		Flags: req.Flags, Unlock: req.Unlock,
	}
	if req.Kind != nil {
		k := authn.Kind(*req.Kind)
		p.Kind = &k
	}
	a, err := s.b.Accounts.PatchAccount(c.ctx(), c.p.Actor(), c.account, p)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, apiAccount(a))
	return nil
}

func (s *Server) deleteAccount(c *call) error {
	if err := s.b.Accounts.DeleteAccount(c.ctx(), c.p.Actor(), c.account); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) audit(c *call) error {
	q := c.r.URL.Query()
	after, err := parseUint(q.Get("after"), 0)
	if err != nil {
		return authn.Errorf(authn.ClassInvalid, authn.CodeInvalidRequest, "after must be a sequence number")
	}
	limit, err := parseUint(q.Get("limit"), 100)
	if err != nil || limit == 0 || limit > 1000 {
		return authn.Errorf(authn.ClassInvalid, authn.CodeInvalidRequest, "limit must be 1..1000")
	}
	events, err := s.b.Accounts.Audit(after, int(limit))
	if err != nil {
		return err
	}
	page := api.AuditPage{Events: make([]api.AuditEvent, 0, len(events)), Next: after}
	for _, e := range events {
		page.Events = append(page.Events, api.AuditEvent(e))
		page.Next = e.Seq
	}
	writeJSON(c.w, http.StatusOK, page)
	return nil
}

func parseUint(s string, def uint64) (uint64, error) {
	if s == "" {
		return def, nil
	}
	return strconv.ParseUint(s, 10, 64)
}

func (s *Server) backup(c *call) error {
	if r, ok := s.b.Backup.(BackupRefuser); ok {
		if err := r.BackupRefusal(); err != nil {
			return err
		}
	}
	if err := s.b.Accounts.RecordAudit(c.ctx(), c.p.Actor(), authn.AuditEvent{Action: authn.ActBackup}); err != nil {
		return err
	}
	c.w.Header().Set("Content-Type", api.ContentBackup)
	c.w.Header().Set("Content-Disposition", `attachment; filename="mfad.db"`)
	c.w.WriteHeader(http.StatusOK)
	if _, err := s.b.Backup.WriteBackup(c.w); err != nil {
		// Headers are gone: cut the stream so the client sees a short body.
		s.log.Error("backup stream failed", "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

func (s *Server) passwordChanged(c *call) error {
	a, err := s.b.Accounts.PasswordChanged(c.ctx(), c.actor(), c.account)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, apiAccount(a))
	return nil
}
