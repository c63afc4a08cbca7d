package server

import (
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/ipc/api"
)

// actor is the caller as authn sees it, with the step-up token the
// request carries (Authorization: Bearer).
func (c *call) actor() authn.Actor {
	a := c.p.Actor()
	if h := c.r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		a.StepUp = strings.TrimSpace(h[7:])
	}
	return a
}

func apiDevice(d *authn.Device) api.Device {
	out := api.Device{
		ID: d.ID, Account: d.Account, Type: string(d.Type), State: string(d.State), Label: d.Label, Serial: d.Serial,
		CreatedAt: d.CreatedAt, ExpiresAt: d.ExpiresAt, ActivatedAt: d.ActivatedAt, DeactivatedAt: d.DeactivatedAt, LastUsedAt: d.LastUsedAt,
	}
	if o := d.OTP; o != nil {
		out.OTP = &api.OTP{Kind: "totp", Algorithm: o.Algorithm, Digits: o.Digits, Period: o.Period,
			DriftSteps: o.Drift, DriftSeconds: o.Drift * int64(o.Period)}
		if o.Event {
			out.OTP.Kind = "hotp"
		}
	}
	if f := d.FIDO; f != nil {
		out.FIDO = &api.FIDO{AAGUID: f.AAGUID, Model: f.Model, Format: f.Format, AttestationType: f.AttestationType,
			Verdict: f.Verdict, SignCount: f.SignCount, Software: f.Software, PossiblyCloned: f.PossiblyCloned, CredentialID: f.CredentialID}
	}
	return out
}

// singleDeviceWarning is shown while an account has exactly one active
// device (seed point 2: register more than one).
func singleDeviceWarning(devs []authn.Device) string {
	active := 0
	for _, d := range devs {
		if d.State == authn.StateActive {
			active++
		}
	}
	if active == 1 {
		return singleDeviceWarningText
	}
	return ""
}

const singleDeviceWarningText = "this account has a single active device: enroll another one so that losing it does not lock you out"

func (s *Server) listDevices(c *call) error {
	devs, err := s.b.Devices.Devices(c.account)
	if err != nil {
		return err
	}
	out := api.DeviceList{Devices: make([]api.Device, 0, len(devs)), Warning: singleDeviceWarning(devs)}
	for i := range devs {
		out.Devices = append(out.Devices, apiDevice(&devs[i]))
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}

func (s *Server) getDevice(c *call) error {
	d, err := s.b.Devices.Device(c.account, c.r.PathValue("id"))
	if err != nil {
		return err
	}
	out := apiDevice(d)
	if out.FIDO != nil && c.p.Admin {
		out.FIDO.AttestationObject = base64.RawURLEncoding.EncodeToString(d.FIDO.AttestationObject)
		out.FIDO.ClientDataJSON = base64.RawURLEncoding.EncodeToString(d.FIDO.ClientDataJSON)
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}

func (s *Server) createDevice(c *call) error {
	var req api.CreateDevice
	if err := c.decode(&req); err != nil {
		return err
	}
	if req.Type == string(authn.DeviceFIDO) {
		return c.runLong(func(progress func(string, map[string]any)) (any, error) {
			d, err := s.b.Devices.EnrollFIDO(c.ctx(), c.actor(), c.account,
				authn.FIDOEnrollRequest{Label: req.Label, PIN: req.PIN, WaitForKey: req.WaitForKey}, progress)
			if err != nil {
				return nil, err
			}
			return api.Enrollment{Device: apiDevice(d), Next: "the key is active: sign in with it (POST /v1/authenticate)"}, nil
		})
	}
	er, err := enrollRequest(req)
	if err != nil {
		return err
	}
	e, err := s.b.Devices.Enroll(c.ctx(), c.actor(), c.account, er)
	if err != nil {
		return err
	}
	c.w.Header().Set("Location", strings.NewReplacer("{name}", c.account, "{id}", e.Device.ID).Replace(api.PathDevice))
	writeJSON(c.w, http.StatusCreated, s.enrollment(c, e))
	return nil
}

// importDevice brings over a device the user already has.
func (s *Server) importDevice(c *call) error {
	var req api.ImportDevice
	if err := c.decode(&req); err != nil {
		return err
	}
	var d *authn.Device
	var err error
	switch req.Kind {
	case "totp", "hotp":
		d, err = s.b.Devices.ImportOTP(c.ctx(), c.actor(), c.account, authn.OTPImport{
			Label: req.Label, Secret: req.Secret, HOTP: req.Kind == "hotp",
			Algorithm: req.Algorithm, Digits: req.Digits, Period: req.Period,
			Counter: req.Counter, UsedSteps: req.UsedSteps, ScratchCodes: req.ScratchCodes, Source: req.Source, DryRun: req.DryRun,
		})
	case "fido":
		d, err = s.b.Devices.ImportFIDO(c.ctx(), c.actor(), c.account, authn.FIDOImport{
			Label: req.Label, CredentialID: req.CredentialID, PublicKey: req.PublicKey, Alg: req.Alg,
			Origin: req.Origin, Source: req.Source, DryRun: req.DryRun,
		})
	default:
		return authn.Errorf(authn.ClassInvalid, authn.CodeInvalidRequest, "kind must be totp, hotp or fido")
	}
	if err != nil {
		return err
	}
	if req.DryRun {
		writeJSON(c.w, http.StatusOK, apiDevice(d))
		return nil
	}
	c.w.Header().Set("Location", strings.NewReplacer("{name}", c.account, "{id}", d.ID).Replace(api.PathDevice))
	writeJSON(c.w, http.StatusCreated, apiDevice(d))
	return nil
}

// enrollRequest turns the wire request of an OTP device into authn's.
func enrollRequest(req api.CreateDevice) (authn.EnrollRequest, error) {
	er := authn.EnrollRequest{Type: authn.DeviceType(req.Type), Label: req.Label, Serial: req.Serial}
	p, err := authn.ParseOTPParams(req.Algorithm, req.Digits, req.Period)
	if err != nil {
		return er, err
	}
	er.Params = p
	return er, nil
}

// enrollment is the wire form of a new OTP enrollment (secret shown once).
func (s *Server) enrollment(c *call, e *authn.Enrollment) api.Enrollment {
	out := api.Enrollment{Device: apiDevice(&e.Device), OTPAuthURI: e.URI, QRPNG: e.QRPNG,
		Next: "activate it with two consecutive codes: POST " + strings.NewReplacer("{name}", c.account, "{id}", e.Device.ID).Replace(api.PathDeviceActivate)}
	if e.Secret != nil {
		out.Secret = authn.EncodeSecret(e.Secret)
	}
	return out
}

func (s *Server) activateDevice(c *call) error { return s.syncDevice(c, true) }
func (s *Server) resyncDevice(c *call) error   { return s.syncDevice(c, false) }

func (s *Server) syncDevice(c *call, activate bool) error {
	var req api.CodePair
	if err := c.decode(&req); err != nil {
		return err
	}
	codes := authn.CodePair{Code1: req.Code1, Code2: req.Code2}
	sync := s.b.Devices.Resync
	if activate {
		sync = s.b.Devices.Activate
	}
	d, err := sync(c.ctx(), c.actor(), c.account, c.r.PathValue("id"), codes)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, apiDevice(d))
	return nil
}

// codeSignIn says the sign-in is made with a code (or a recovery token),
// not a security key's touch.
func codeSignIn(c *call) bool {
	a, ok := c.decoded.(*api.Authenticate)
	return ok && !(authn.AuthRequest{Code: a.Code, NextCode: a.NextCode, RecoveryToken: a.RecoveryToken}).NeedsTouch()
}

func (s *Server) authenticate(c *call) error {
	var req api.Authenticate
	if err := c.decode(&req); err != nil {
		return err
	}
	in := authn.AuthRequest{Account: req.Account, Code: req.Code, NextCode: req.NextCode,
		RecoveryToken: req.RecoveryToken, PIN: req.PIN, WaitForKey: req.WaitForKey}
	result := func(res *authn.AuthResult) api.AuthResult {
		out := api.AuthResult{OK: true, Method: res.Method, Account: req.Account,
			StepUpToken: res.StepUpToken, StepUpExpiry: res.StepUpExpiry}
		if res.Device.ID != "" {
			out.Device = &api.DeviceRef{ID: res.Device.ID, Type: string(res.Device.Type), Label: res.Device.Label}
		}
		if res.ActiveDevices == 1 {
			out.Warning = singleDeviceWarningText
		}
		return out
	}
	if in.NeedsTouch() {
		return c.runLong(func(progress func(string, map[string]any)) (any, error) {
			res, err := s.b.Devices.Authenticate(c.ctx(), c.actor(), in, progress)
			if err != nil {
				return nil, err
			}
			return result(res), nil
		})
	}
	res, err := s.b.Devices.Authenticate(c.ctx(), c.actor(), in, nil)
	if err != nil {
		return err
	}
	out := result(res)
	writeAuthResult(c.w, &out)
	return nil
}

func apiToken(t *authn.Token) api.Token {
	out := api.Token{Serial: t.Serial, Manufacturer: t.Manufacturer, Model: t.Model, Kind: "totp",
		Algorithm: t.OTP.Algorithm, Digits: t.OTP.Digits, Period: t.OTP.Period, ImportedAt: t.ImportedAt,
		AssignedTo: t.AssignedTo, DeviceID: t.DeviceID, Retired: t.Retired}
	if t.OTP.Event {
		out.Kind = "hotp"
	}
	return out
}

func (s *Server) importTokens(c *call) error {
	var req api.TokenImport
	if err := c.decode(&req); err != nil {
		return err
	}
	opts := authn.PSKCOptions{}
	if req.Password != "" {
		opts.Password = []byte(req.Password)
	}
	if req.PreSharedKey != "" {
		k, err := hex.DecodeString(req.PreSharedKey)
		if err != nil {
			return authn.Errorf(authn.ClassInvalid, authn.CodeInvalidRequest, "pre_shared_key must be hex")
		}
		opts.PreSharedKey = k
	}
	toks, err := s.b.Tokens.ImportTokens(c.ctx(), c.actor(), []byte(req.PSKC), opts)
	if err != nil {
		return err
	}
	out := api.TokenList{Tokens: make([]api.Token, 0, len(toks))}
	for i := range toks {
		out.Tokens = append(out.Tokens, apiToken(&toks[i]))
	}
	writeJSON(c.w, http.StatusCreated, out)
	return nil
}

func (s *Server) listTokens(c *call) error {
	toks, err := s.b.Tokens.Tokens()
	if err != nil {
		return err
	}
	out := api.TokenList{Tokens: make([]api.Token, 0, len(toks))}
	for i := range toks {
		out.Tokens = append(out.Tokens, apiToken(&toks[i]))
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}
