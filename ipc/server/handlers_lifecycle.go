package server

import (
	"net/http"
	"time"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/ipc/api"
)

func (s *Server) deactivateDevice(c *call) error {
	d, err := s.b.Devices.Deactivate(c.ctx(), c.actor(), c.account, c.r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, apiDevice(d))
	return nil
}

func (s *Server) deleteDevice(c *call) error {
	opts := authn.DeleteOptions{ReturnToInventory: c.r.URL.Query().Get("return_to_inventory") == "true"}
	if err := s.b.Devices.Delete(c.ctx(), c.actor(), c.account, c.r.PathValue("id"), opts); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) reportLost(c *call) error {
	d, err := s.b.Devices.ReportLost(c.ctx(), c.actor(), c.account, c.r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, apiDevice(d))
	return nil
}

func (s *Server) replaceDevice(c *call) error {
	var req api.CreateDevice
	if err := c.decode(&req); err != nil {
		return err
	}
	old := c.r.PathValue("id")
	if req.Type == string(authn.DeviceFIDO) {
		return c.runLong(func(progress func(string, map[string]any)) (any, error) {
			d, err := s.b.Devices.EnrollFIDO(c.ctx(), c.actor(), c.account,
				authn.FIDOEnrollRequest{Label: req.Label, PIN: req.PIN, WaitForKey: req.WaitForKey, Replace: old}, progress)
			if err != nil {
				return nil, err
			}
			return api.Enrollment{Device: apiDevice(d), Next: "the new key is active; device " + old + " is deleted"}, nil
		})
	}
	er, err := enrollRequest(req)
	if err != nil {
		return err
	}
	e, err := s.b.Devices.Replace(c.ctx(), c.actor(), c.account, old, er)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusCreated, s.enrollment(c, e))
	return nil
}

func (s *Server) temporaryCode(c *call) error {
	var req api.TemporaryCodeRequest
	if c.r.ContentLength != 0 {
		if err := c.decode(&req); err != nil {
			return err
		}
	}
	if req.TTLHours < 0 || req.TTLHours > 24*14 {
		return authn.Errorf(authn.ClassInvalid, authn.CodeInvalidRequest, "ttl_hours must be 1..336")
	}
	tc, err := s.b.Devices.IssueTemporaryCode(c.ctx(), c.actor(), c.account, time.Duration(req.TTLHours)*time.Hour)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusCreated, api.TemporaryCode{Code: tc.Code, ExpiresAt: tc.ExpiresAt})
	return nil
}

func (s *Server) contactChange(c *call) error {
	var req api.ContactChange
	if err := c.decode(&req); err != nil {
		return err
	}
	to, err := s.b.Devices.RequestContactChange(c.ctx(), c.actor(), c.account, authn.ContactChange{Email: req.Email, Phone: req.Phone})
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusAccepted, api.ContactSent{SentTo: to, Next: "send the code with POST " + c.r.URL.Path + "/verify"})
	return nil
}

func (s *Server) contactVerify(c *call) error {
	var req api.Code
	if err := c.decode(&req); err != nil {
		return err
	}
	a, err := s.b.Devices.VerifyContactChange(c.ctx(), c.actor(), c.account, req.Code)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, apiAccount(a))
	return nil
}

func apiRecovery(r *authn.RecoveryStatus) api.Recovery {
	return api.Recovery{ID: r.ID, Account: r.Account, Stage: r.Stage, SentTo: r.Sent, ExpiresAt: r.ExpiresAt, RecoveryToken: r.Token}
}

func (s *Server) startRecovery(c *call) error {
	var req api.RecoveryStart
	if err := c.decode(&req); err != nil {
		return err
	}
	r, err := s.b.Devices.StartRecovery(c.ctx(), c.actor(), req.Account)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusCreated, apiRecovery(r))
	return nil
}

func (s *Server) recoveryStep(c *call) error {
	id, step := c.r.PathValue("id"), c.r.PathValue("step")
	var r *authn.RecoveryStatus
	var err error
	switch step {
	case "email", "phone":
		var req api.Code
		if err := c.decode(&req); err != nil {
			return err
		}
		r, err = s.b.Devices.VerifyRecoveryCode(c.ctx(), c.actor(), id, step, req.Code)
	case "resend":
		r, err = s.b.Devices.ResendRecoveryCode(c.ctx(), c.actor(), id)
	default:
		return newProblem(http.StatusNotFound, api.CodeNotFound, "no recovery step "+step+" (email, phone, resend)")
	}
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, apiRecovery(r))
	return nil
}
