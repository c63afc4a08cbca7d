package server

import (
	"net/http"
	"time"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/ipc/api"
)

func (s *Server) listKeys(c *call) error {
	writeJSON(c.w, http.StatusOK, api.KeyList{Keys: s.b.Keys.ListKeys(c.ctx())})
	return nil
}

func (s *Server) winkKey(c *call) error {
	if err := s.b.Keys.Wink(c.ctx(), c.r.PathValue("id")); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) keyPIN(c *call) error {
	var req api.KeyPIN
	if err := c.decode(&req); err != nil {
		return err
	}
	if req.PIN == "" {
		return authn.Errorf(authn.ClassInvalid, authn.CodeInvalidRequest, "send the new pin")
	}
	return c.runLong(func(func(string, map[string]any)) (any, error) {
		err := s.b.Keys.SetPIN(c.ctx(), c.r.PathValue("id"), req.CurrentPIN, req.PIN)
		return map[string]any{"key": c.r.PathValue("id"), "pin_set": err == nil}, err
	})
}

func (s *Server) resetKey(c *call) error {
	return c.runLong(func(func(string, map[string]any)) (any, error) {
		err := s.b.Keys.Reset(c.ctx(), c.r.PathValue("id"))
		return map[string]any{"key": c.r.PathValue("id"), "reset": err == nil}, err
	})
}

// keyCheckDeadline bounds a battery run: it waits for a dozen touches and
// perhaps a replug, each up to the key's touch timeout.
const keyCheckDeadline = 15 * time.Minute

// checkKey runs the conformance battery on a key. A failing check is a
// verdict of the report, not an error of the request. The body may be
// empty (the non-destructive battery).
func (s *Server) checkKey(c *call) error {
	var req api.KeyCheckRequest
	if c.r.ContentLength != 0 {
		if err := c.decode(&req); err != nil {
			return err
		}
	}
	return c.runLongFor(keyCheckDeadline, func(progress func(string, map[string]any)) (any, error) {
		return s.b.Keys.CheckKey(c.ctx(), c.r.PathValue("id"), req, progress)
	})
}

func (s *Server) listEmulators(c *call) error {
	list, err := s.b.Keys.Emulators()
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, api.EmulatorList{Emulators: list})
	return nil
}

func (s *Server) addEmulator(c *call) error {
	var req api.AddEmulator
	if err := c.decode(&req); err != nil {
		return err
	}
	e, err := s.b.Keys.AddEmulator(req.Name, req.Presence)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusCreated, e)
	return nil
}

func (s *Server) removeEmulator(c *call) error {
	if err := s.b.Keys.RemoveEmulator(c.r.PathValue("id")); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) emulatorAction(c *call) error {
	action := c.r.PathValue("action")
	var fault *api.Fault
	switch action {
	case "touch", "unplug", "plug":
	case "fault":
		fault = new(api.Fault)
		if err := c.decode(fault); err != nil {
			return err
		}
	default:
		return newProblem(http.StatusNotFound, api.CodeNotFound, "no emulator action "+action+" (touch, unplug, plug, fault)")
	}
	if err := s.b.Keys.EmulatorAct(c.r.PathValue("id"), action, fault); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

// events streams key and security events: admins see all, a user the key
// events and their own account's security events.
func (s *Server) events(c *call) error {
	p := c.p
	ch, stop := s.b.Events.Subscribe(func(e api.Event) bool { return mayReceive(p, e) })
	defer stop()
	out := newNDJSON(c.w)
	out.write(api.Event{Event: "subscribed"})
	heartbeat := time.NewTicker(30 * time.Second)
	defer heartbeat.Stop()
	rc := http.NewResponseController(c.w)
	for {
		select {
		case <-c.ctx().Done():
			return nil
		case <-s.stopping:
			return nil
		case <-heartbeat.C:
			rc.SetWriteDeadline(time.Now().Add(streamDeadline))
			out.write(api.Event{Event: "heartbeat"})
		case e := <-ch:
			rc.SetWriteDeadline(time.Now().Add(streamDeadline))
			out.write(e)
		}
	}
}
