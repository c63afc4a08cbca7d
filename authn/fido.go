package authn

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mfad/mfad/authn/fido2"
	"github.com/mfad/mfad/hw/ctap2"
)

// Audit actions of security keys.
const (
	ActFIDOEnroll = "device.enroll"
	ActCloned     = "device.possibly_cloned"
)

// KeyInfo describes a connected security key.
type KeyInfo struct {
	ID         string
	Driver     string // native, libfido2, usbhid, emulator
	AAGUID     [16]byte
	Software   bool   // an mfad software key
	EmulatorID string // when Software
}

// MakeCredentialParams are what enrollment asks of a key.
type MakeCredentialParams struct {
	ClientDataHash []byte
	RP             ctap2.RPEntity
	User           ctap2.UserEntity
	ExcludeList    [][]byte
	UV             bool
	PIN            string
	OnKeepalive    func(status byte)
}

// GetAssertionParams are what sign-in asks of a key (always with a touch).
type GetAssertionParams struct {
	RPID           string
	ClientDataHash []byte
	AllowList      [][]byte
	UV             bool
	PIN            string
	OnKeepalive    func(status byte)
}

// SecurityKey is one connected FIDO2/U2F key, whatever drives it.
type SecurityKey interface {
	Describe() KeyInfo
	MakeCredential(ctx context.Context, p MakeCredentialParams) (*ctap2.MakeCredentialResponse, error)
	GetAssertion(ctx context.Context, p GetAssertionParams) ([]*ctap2.GetAssertionResponse, error)
}

// KeyRing is the set of connected keys. Keys returns them with a channel
// that is closed when the set changes (a key plugged in or removed).
type KeyRing interface {
	Keys() ([]SecurityKey, <-chan struct{})
}

// FIDOPolicy is how mfad acts as a relying party.
type FIDOPolicy struct {
	RPID        string       // fixed in the store at first start
	Attestation fido2.Policy // which attestations enrollment accepts
	RequireUV   bool
	// AllowSoftwareKeys lets credentials made by mfad's software keys sign in.
	AllowSoftwareKeys bool
	// SoftwareAAGUIDs recognise software keys' credentials.
	SoftwareAAGUIDs [][16]byte
	// TouchTimeout bounds how long a key waits for a touch (default 30 s).
	TouchTimeout time.Duration
}

// FIDOState is what mfad keeps of a security key credential.
type FIDOState struct {
	CredentialID      []byte `json:"credential_id"`
	PublicKey         []byte `json:"public_key"` // COSE_Key
	Alg               int64  `json:"alg"`
	AAGUID            string `json:"aaguid"`
	SignCount         uint32 `json:"sign_count"`
	Format            string `json:"format"`
	AttestationType   string `json:"attestation_type"`
	Verdict           string `json:"verdict"`
	Model             string `json:"model,omitempty"`
	Software          bool   `json:"software,omitempty"`
	PossiblyCloned    bool   `json:"possibly_cloned,omitempty"`
	AttestationObject []byte `json:"attestation_object"`
	ClientDataJSON    []byte `json:"client_data_json"`
	// LastAssertion keeps the signed bytes of the latest sign-in, so that
	// an audit can verify it again.
	LastAssertion *SignedAssertion `json:"last_assertion,omitempty"`
}

// SignedAssertion is what a key signed at a sign-in.
type SignedAssertion struct {
	AuthData       []byte `json:"auth_data"`
	Signature      []byte `json:"signature"`
	ClientDataJSON []byte `json:"client_data_json"`
}

// Progress receives what a long key operation is waiting for, to stream
// to the client: "touch_required", "keepalive" (status "processing" or
// "up_needed"), "key_added".
type Progress func(event string, fields map[string]any)

func (p Progress) emit(event string, fields map[string]any) {
	if p != nil {
		p(event, fields)
	}
}

func keepaliveTo(p Progress) func(byte) {
	return func(status byte) {
		s := "processing"
		if status == 2 {
			s = "up_needed"
		}
		p.emit("keepalive", map[string]any{"status": s})
	}
}

// keysFor waits for keys: at once unless wait is set, then until one is
// plugged in or ctx ends.
func (s *Service) keysFor(ctx context.Context, wait bool, progress Progress) ([]SecurityKey, error) {
	if s.keys == nil {
		return nil, Errorf(ClassConflict, CodeNoKeyPresent, "no security key driver is configured")
	}
	for {
		keys, changed := s.keys.Keys()
		if len(keys) > 0 {
			return keys, nil
		}
		if !wait {
			return nil, Errorf(ClassConflict, CodeNoKeyPresent, "no security key is plugged in (send \"wait_for_key\": true to wait for one)")
		}
		select {
		case <-changed:
			if keys, _ := s.keys.Keys(); len(keys) > 0 {
				progress.emit("key_added", map[string]any{"keys": len(keys)})
			}
		case <-ctx.Done():
			return nil, Errorf(ClassConflict, CodeNoKeyTouched, "no security key was plugged in and touched in time")
		}
	}
}

// race runs op on every key at once: the first to succeed (the one
// touched) wins and the others are cancelled; keys that fail drop out.
func race[T any](ctx context.Context, keys []SecurityKey, op func(context.Context, SecurityKey) (T, error)) (SecurityKey, T, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		key SecurityKey
		val T
		err error
	}
	results := make(chan result, len(keys))
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := op(ctx, k)
			results <- result{k, v, err}
		}()
	}
	var errs []error
	for range keys {
		r := <-results
		if r.err == nil {
			cancel()
			wg.Wait()
			return r.key, r.val, nil
		}
		errs = append(errs, r.err)
	}
	var zero T
	return nil, zero, keyError(ctx, errs)
}

// keyError picks the error that tells the user most.
func keyError(ctx context.Context, errs []error) error {
	rank := func(err error) int {
		switch {
		case errors.Is(err, ctap2.ErrPINRequired):
			return 6
		case errors.Is(err, ctap2.ErrPINInvalid), errors.Is(err, ctap2.ErrPINBlocked), errors.Is(err, ctap2.ErrPINAuthBlocked):
			return 5
		case errors.Is(err, ctap2.ErrCredentialExcluded):
			return 4
		case errors.Is(err, ctap2.ErrUserActionTimeout), errors.Is(err, context.DeadlineExceeded):
			return 3
		case errors.Is(err, ctap2.ErrNoCredentials):
			return 1
		}
		return 2
	}
	var best error
	for _, e := range errs {
		if best == nil || rank(e) > rank(best) {
			best = e
		}
	}
	var domain *Error
	if errors.As(best, &domain) {
		return domain // already said in the domain's words (key_removed, say)
	}
	switch {
	case errors.Is(best, ctap2.ErrPINRequired):
		return Errorf(ClassForbidden, CodePINRequired, "the security key needs its PIN: repeat the request with \"pin\"")
	case errors.Is(best, ctap2.ErrPINInvalid):
		return &Error{Class: ClassForbidden, Code: CodeInvalidPIN, Detail: "wrong PIN for the security key", Err: best}
	case errors.Is(best, ctap2.ErrPINBlocked), errors.Is(best, ctap2.ErrPINAuthBlocked):
		return &Error{Class: ClassForbidden, Code: CodePINBlocked, Detail: "the security key's PIN is blocked (unplug and replug it, or reset it if no retries are left)", Err: best}
	case errors.Is(best, ctap2.ErrCredentialExcluded):
		return Errorf(ClassConflict, CodeCredentialExcluded, "this security key is already registered on the account")
	case errors.Is(best, ctap2.ErrUserActionTimeout), errors.Is(best, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded:
		return Errorf(ClassConflict, CodeNoKeyTouched, "no security key was touched in time")
	case errors.Is(best, ctap2.ErrNoCredentials):
		return Errorf(ClassForbidden, CodeInvalidCode, "no connected security key holds a credential of this account")
	case errors.Is(best, context.Canceled):
		return &Error{Class: ClassConflict, Code: CodeNoKeyTouched, Detail: "cancelled", Err: best}
	}
	return &Error{Class: ClassUnavailable, Code: CodeKeyError, Detail: "the security key failed: " + errDetail(best), Err: best}
}

func errDetail(err error) string {
	if err == nil {
		return "unknown error"
	}
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return msg
}

// FIDOEnrollRequest begins a security key enrollment.
type FIDOEnrollRequest struct {
	Label      string
	PIN        string
	WaitForKey bool
	// Replace names a device deleted in the same transaction.
	Replace string
}

// EnrollFIDO registers a security key on the account: MakeCredential on
// the key the user touches (excluding credentials the account already
// has), the attestation verified against the policy, the credential stored
// active in the same transaction that checks the limit.
func (s *Service) EnrollFIDO(ctx context.Context, actor Actor, account string, req FIDOEnrollRequest, progress Progress) (*Device, error) {
	if len(req.Label) > 64 {
		return nil, Errorf(ClassInvalid, CodeInvalidRequest, "label is longer than 64 characters")
	}
	now := s.now().UTC()
	var exclude [][]byte
	err := s.store.View(func(t Tx) error {
		if err := s.checkChange(t, actor, account, now); err != nil {
			return err
		}
		devs, err := t.Devices(account)
		if err != nil {
			return err
		}
		n := 0
		for _, d := range devs {
			if d.ID == req.Replace {
				continue
			}
			if d.State != StatePending || now.Before(d.ExpiresAt) {
				n++
			}
			if d.FIDO != nil && d.ID != req.Replace {
				exclude = append(exclude, d.FIDO.CredentialID)
			}
		}
		if n >= MaxDevices {
			return Errorf(ClassConflict, CodeDeviceLimitReached, "%s already has %d devices (the limit); delete or replace one first", account, MaxDevices)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.fido.TouchTimeout)
	defer cancel()
	keys, err := s.keysFor(ctx, req.WaitForKey, progress)
	if err != nil {
		return nil, err
	}
	challenge, err := fido2.NewChallenge(rand.Reader)
	if err != nil {
		return nil, err
	}
	cdj, cdh := fido2.BuildClientData(fido2.TypeCreate, challenge, s.fido.RPID)
	progress.emit("touch_required", nil)
	key, resp, err := race(ctx, keys, func(ctx context.Context, k SecurityKey) (*ctap2.MakeCredentialResponse, error) {
		return k.MakeCredential(ctx, MakeCredentialParams{
			ClientDataHash: cdh,
			RP:             ctap2.RPEntity{ID: s.fido.RPID, Name: "mfad"},
			User:           ctap2.UserEntity{ID: []byte(account), Name: account, DisplayName: account},
			ExcludeList:    exclude, UV: s.fido.RequireUV, PIN: req.PIN,
			OnKeepalive: keepaliveTo(progress),
		})
	})
	if err != nil {
		return nil, err
	}
	cred, err := fido2.VerifyRegistration(fido2.AttestationInput{Format: resp.Fmt, AuthData: resp.AuthData, AttStmt: resp.AttStmt, ClientDataJSON: cdj},
		fido2.RegistrationExpect{RPID: s.fido.RPID, Challenge: challenge, RequireUV: s.fido.RequireUV}, s.fido.Attestation)
	if err != nil {
		ev := AuditEvent{Action: ActFIDOEnroll, Account: account, Outcome: "fail", Detail: "attestation refused: " + string(fido2.ReasonOf(err))}
		s.RecordAudit(context.WithoutCancel(ctx), actor, ev)
		return nil, &Error{Class: ClassForbidden, Code: CodeAttestationRefused, Detail: "the key's attestation was refused: " + errDetail(err), Err: err}
	}
	info := key.Describe()
	software := info.Software || s.isSoftwareAAGUID(cred.AAGUID)
	d := &Device{ID: newID(), Account: account, Type: DeviceFIDO, State: StateActive, Label: req.Label,
		CreatedAt: now, ActivatedAt: now,
		FIDO: &FIDOState{CredentialID: cred.ID, PublicKey: cred.PublicKey, Alg: int64(cred.Alg), AAGUID: fido2.FormatAAGUID(cred.AAGUID),
			SignCount: cred.SignCount, Format: cred.Format, AttestationType: string(cred.AttestationType), Verdict: cred.Verdict,
			Model: cred.Model, Software: software, AttestationObject: cred.AttestationObject, ClientDataJSON: cred.ClientDataJSON}}
	err = s.write(context.WithoutCancel(ctx), actor, func(c *change) error {
		a, err := s.authorizeChange(c, account, req.Replace == "")
		if err != nil {
			return err
		}
		if req.Replace != "" {
			if err := c.removeForReplace(account, req.Replace, string(DeviceFIDO)); err != nil {
				return err
			}
		}
		slots, _, err := s.countDevices(c, account)
		if err != nil {
			return err
		}
		if slots >= MaxDevices {
			return Errorf(ClassConflict, CodeDeviceLimitReached, "%s already has %d devices (the limit)", account, MaxDevices)
		}
		devs, err := c.Devices(account)
		if err != nil {
			return err
		}
		for _, o := range devs {
			if o.FIDO != nil && bytes.Equal(o.FIDO.CredentialID, d.FIDO.CredentialID) {
				return Errorf(ClassConflict, CodeCredentialExcluded, "this credential is already registered")
			}
		}
		a.EverEnrolled = true
		a.TempCode = nil // a new device ends the temporary code's use
		if err := c.putAccountIf(true, a); err != nil {
			return err
		}
		if err := c.PutDevice(d); err != nil {
			return err
		}
		return c.audit(AuditEvent{Action: ActFIDOEnroll, Account: account, Device: d.ID,
			Detail: fmt.Sprintf("type=fido aaguid=%s format=%s attestation=%s software=%v", d.FIDO.AAGUID, d.FIDO.Format, d.FIDO.AttestationType, software)})
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

func (s *Service) isSoftwareAAGUID(a [16]byte) bool {
	for _, x := range s.fido.SoftwareAAGUIDs {
		if x == a {
			return true
		}
	}
	return false
}

// touchKey asks the account's security keys for an assertion (the first
// key touched wins) and checks it, all before the store is written: the
// answer is the verifier that commits it through the pipeline, or the
// refusal the pipeline gave a key that failed.
func (s *Service) touchKey(ctx context.Context, actor Actor, req AuthRequest, progress Progress) (verifier, error) {
	now := s.now().UTC()
	var creds []Device
	// A pre-flight, so that nobody is asked to touch a key in vain: the
	// pipeline checks all of it again when it commits.
	err := s.store.View(func(t Tx) error {
		a, err := t.Account(req.Account)
		if err != nil {
			return err
		}
		if a.HasFlag(FlagDisabled) {
			return errDisabled(a.Name)
		}
		probe := *a
		resetExpiredLock(&probe, now)
		if err := s.throttle(&probe, now); err != nil {
			return err
		}
		devs, err := t.Devices(req.Account)
		if err != nil {
			return err
		}
		cloned := ""
		for _, d := range devs {
			switch {
			case d.State != StateActive || d.FIDO == nil:
			case d.FIDO.PossiblyCloned:
				cloned = d.ID
			default:
				creds = append(creds, d)
			}
		}
		switch {
		case len(creds) == 0 && cloned != "":
			return Errorf(ClassForbidden, CodePossiblyCloned, "the account's security key %s is marked possibly cloned: it is refused until an admin looks at it", cloned)
		case len(creds) == 0:
			return Errorf(ClassConflict, CodeNoActiveDevice, "%s has no active security key", req.Account)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.fido.TouchTimeout)
	defer cancel()
	keys, err := s.keysFor(ctx, req.WaitForKey, progress)
	if err != nil {
		return nil, err
	}
	if !s.fido.AllowSoftwareKeys {
		real := keys[:0:0]
		for _, k := range keys {
			if !k.Describe().Software {
				real = append(real, k)
			}
		}
		if len(real) == 0 {
			return nil, Errorf(ClassForbidden, CodeEmulatedKeyRefused, "only software keys are connected, and software keys are turned off")
		}
		keys = real
	}
	allow := make([][]byte, len(creds))
	for i, d := range creds {
		allow[i] = d.FIDO.CredentialID
	}
	challenge, err := fido2.NewChallenge(rand.Reader)
	if err != nil {
		return nil, err
	}
	cdj, cdh := fido2.BuildClientData(fido2.TypeGet, challenge, s.fido.RPID)
	progress.emit("touch_required", nil)
	_, resps, err := race(ctx, keys, func(ctx context.Context, k SecurityKey) ([]*ctap2.GetAssertionResponse, error) {
		return k.GetAssertion(ctx, GetAssertionParams{RPID: s.fido.RPID, ClientDataHash: cdh, AllowList: allow,
			UV: s.fido.RequireUV, PIN: req.PIN, OnKeepalive: keepaliveTo(progress)})
	})
	if err != nil {
		var e *Error
		if errors.As(err, &e) && (e.Code == CodeInvalidPIN || e.Code == CodeInvalidCode) {
			return nil, s.refuseProof(ctx, actor, req.Account, proofFailed{err: e, detail: e.Code})
		}
		return nil, err
	}
	resp := resps[0]
	var dev *Device
	for i := range creds {
		if resp.Credential != nil && bytes.Equal(creds[i].FIDO.CredentialID, resp.Credential.ID) {
			dev = &creds[i]
		}
	}
	if dev == nil {
		return nil, Errorf(ClassForbidden, CodeInvalidCode, "the key answered with a credential this account does not have")
	}
	// The signature is checked once, here; the counter against the stored
	// one when the pipeline commits (SignCount 0 leaves it out).
	stored := fido2.StoredCredential{ID: dev.FIDO.CredentialID, PublicKey: dev.FIDO.PublicKey, Alg: ctap2.COSEAlgorithm(dev.FIDO.Alg)}
	in := fido2.AssertionInput{CredentialID: resp.Credential.ID, AuthData: resp.AuthData, Signature: resp.Signature, ClientDataJSON: cdj}
	count, err := fido2.VerifyAssertion(stored, in, fido2.AssertionExpect{RPID: s.fido.RPID, Challenge: challenge, RequireUV: s.fido.RequireUV})
	if err != nil {
		return nil, s.refuseProof(ctx, actor, req.Account, proofFailed{device: dev.ID, detail: "assertion refused: " + string(fido2.ReasonOf(err)),
			err: &Error{Class: ClassForbidden, Code: CodeInvalidCode, Detail: "the key's assertion does not verify: " + string(fido2.ReasonOf(err)), Err: err}})
	}
	return &keyVerifier{s: s, credentialID: dev.FIDO.CredentialID, count: count,
		assertion: SignedAssertion{AuthData: in.AuthData, Signature: in.Signature, ClientDataJSON: in.ClientDataJSON}}, nil
}

// keyVerifier commits a security key's verified assertion: the credential
// must still be an active, trusted device of the account, and its sign
// counter must move forward from the stored one.
type keyVerifier struct {
	s            *Service
	credentialID []byte
	count        uint32
	assertion    SignedAssertion
}

func (keyVerifier) action() string { return ActAuthenticate }
func (keyVerifier) source() string { return SourceDevice }
func (keyVerifier) allDevices()    {}

func (v *keyVerifier) verify(at *attempt) (*Device, error) {
	var d *Device
	for i := range at.devs {
		if f := at.devs[i].FIDO; f != nil && bytes.Equal(f.CredentialID, v.credentialID) {
			d = &at.devs[i]
		}
	}
	switch {
	case d == nil || d.State != StateActive:
		return nil, &refused{detail: "security key no longer active",
			err: Errorf(ClassForbidden, CodeInvalidCode, "the security key touched is no longer an active device of %s (deleted, deactivated or reported lost)", at.a.Name)}
	case d.FIDO.PossiblyCloned:
		return nil, &refused{device: d.ID, detail: "possibly cloned key",
			err: Errorf(ClassForbidden, CodePossiblyCloned, "device %s is marked possibly cloned: it is refused until an admin looks at it", d.ID)}
	case d.FIDO.Software && !v.s.fido.AllowSoftwareKeys:
		return nil, &refused{device: d.ID, detail: CodeEmulatedKeyRefused,
			err: Errorf(ClassForbidden, CodeEmulatedKeyRefused, "device %s was made by a software key, and software keys are turned off", d.ID)}
	case !fido2.CounterAdvances(d.FIDO.SignCount, v.count):
		stored := d.FIDO.SignCount
		d.FIDO.PossiblyCloned = true
		if err := at.c.PutDevice(d); err != nil {
			return nil, err
		}
		if err := at.c.audit(AuditEvent{Action: ActCloned, Account: d.Account, Device: d.ID, Outcome: "fail",
			Detail: fmt.Sprintf("sign counter %d did not move forward (stored %d)", v.count, stored)}); err != nil {
			return nil, err
		}
		return nil, &refused{device: d.ID, detail: "possibly cloned key",
			err: Errorf(ClassForbidden, CodePossiblyCloned, "device %s's sign counter went backwards: the key may be cloned; it is refused until an admin looks at it", d.ID)}
	}
	d.FIDO.SignCount = v.count
	assertion := v.assertion
	d.FIDO.LastAssertion = &assertion
	return d, nil
}
