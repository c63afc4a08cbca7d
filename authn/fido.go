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
	var ev AuditEvent
	var replaced []AuditEvent
	err = s.store.Update(context.WithoutCancel(ctx), func(t Tx) error {
		replaced = nil
		a, err := s.authorizeChange(t, actor, account, now, req.Replace == "")
		if err != nil {
			return err
		}
		if req.Replace != "" {
			if replaced, err = s.removeForReplace(t, actor, account, req.Replace, string(DeviceFIDO)); err != nil {
				return err
			}
		}
		slots, _, err := s.countDevices(t, actor, account, now)
		if err != nil {
			return err
		}
		if slots >= MaxDevices {
			return Errorf(ClassConflict, CodeDeviceLimitReached, "%s already has %d devices (the limit)", account, MaxDevices)
		}
		devs, err := t.Devices(account)
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
		a.UpdatedAt = now
		if err := t.PutAccount(a); err != nil {
			return err
		}
		if err := t.PutDevice(d); err != nil {
			return err
		}
		ev = AuditEvent{Action: ActFIDOEnroll, Account: account, Device: d.ID,
			Detail: fmt.Sprintf("type=fido aaguid=%s format=%s attestation=%s software=%v", d.FIDO.AAGUID, d.FIDO.Format, d.FIDO.AttestationType, software)}
		return s.audit(t, actor, ev)
	})
	if err != nil {
		return nil, err
	}
	for _, e := range replaced {
		s.logAudit(e)
	}
	s.logAudit(ev)
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

// FIDOAuthRequest is a sign-in with a security key.
type FIDOAuthRequest struct {
	Account    string
	PIN        string
	WaitForKey bool
}

// AuthenticateFIDO signs in with any of the account's security keys: one
// GetAssertion with the account's credential ids on every connected key,
// the first touched wins. The signature, rpIdHash, flags and the sign
// counter are checked; a counter that does not move forward refuses the
// sign-in and marks the device possibly cloned.
func (s *Service) AuthenticateFIDO(ctx context.Context, actor Actor, req FIDOAuthRequest, progress Progress) (*AuthResult, error) {
	now := s.now().UTC()
	var creds []Device
	active := 0
	err := s.store.View(func(t Tx) error {
		a, err := t.Account(req.Account)
		if err != nil {
			return err
		}
		if a.HasFlag(FlagDisabled) {
			return Errorf(ClassForbidden, CodePermissionDenied, "account %s is disabled", a.Name)
		}
		if !a.LockedUntil.IsZero() && !now.Before(a.LockedUntil) {
			a.FailedAttempts, a.LockedUntil = 0, time.Time{}
		}
		if err := s.throttle(a, now); err != nil {
			return err
		}
		devs, err := t.Devices(req.Account)
		for _, d := range devs {
			if d.State == StateActive {
				active++
			}
			if d.State == StateActive && d.FIDO != nil && !d.FIDO.PossiblyCloned {
				creds = append(creds, d)
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(creds) == 0 {
		return nil, Errorf(ClassConflict, CodeNoActiveDevice, "%s has no active security key", req.Account)
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
			s.recordFailure(context.WithoutCancel(ctx), actor, req.Account, "", e.Code)
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
	if dev.FIDO.Software && !s.fido.AllowSoftwareKeys {
		s.recordFailure(context.WithoutCancel(ctx), actor, req.Account, dev.ID, CodeEmulatedKeyRefused)
		return nil, Errorf(ClassForbidden, CodeEmulatedKeyRefused, "device %s was made by a software key, and software keys are turned off", dev.ID)
	}
	stored := fido2.StoredCredential{ID: dev.FIDO.CredentialID, PublicKey: dev.FIDO.PublicKey, Alg: ctap2.COSEAlgorithm(dev.FIDO.Alg), SignCount: dev.FIDO.SignCount}
	in := fido2.AssertionInput{CredentialID: resp.Credential.ID, AuthData: resp.AuthData, Signature: resp.Signature, ClientDataJSON: cdj}
	want := fido2.AssertionExpect{RPID: s.fido.RPID, Challenge: challenge, RequireUV: s.fido.RequireUV}
	if _, err := fido2.VerifyAssertion(stored, in, want); err != nil && !errors.Is(err, fido2.ErrCounterNotIncreasing) {
		s.recordFailure(context.WithoutCancel(ctx), actor, req.Account, dev.ID, "assertion refused: "+string(fido2.ReasonOf(err)))
		return nil, &Error{Class: ClassForbidden, Code: CodeInvalidCode, Detail: "the key's assertion does not verify: " + string(fido2.ReasonOf(err)), Err: err}
	}
	// The counter is checked again against the stored value inside the
	// write transaction, so two racing sign-ins cannot both pass it.
	var refusal error
	var events []AuditEvent
	err = s.store.Update(context.WithoutCancel(ctx), func(t Tx) error {
		refusal, events = nil, nil
		a, err := t.Account(req.Account)
		if err != nil {
			return err
		}
		d, err := t.Device(req.Account, dev.ID)
		if err != nil {
			return err
		}
		stored.SignCount = d.FIDO.SignCount
		newCount, err := fido2.VerifyAssertion(stored, in, want)
		if errors.Is(err, fido2.ErrCounterNotIncreasing) {
			d.FIDO.PossiblyCloned = true
			if err := t.PutDevice(d); err != nil {
				return err
			}
			ev := AuditEvent{Action: ActCloned, Account: a.Name, Device: d.ID, Outcome: "fail",
				Detail: fmt.Sprintf("sign counter did not move forward (stored %d)", stored.SignCount)}
			events = append(events, ev)
			if err := s.audit(t, actor, ev); err != nil {
				return err
			}
			refusal = Errorf(ClassForbidden, CodePossiblyCloned, "device %s's sign counter went backwards: the key may be cloned; it is refused until an admin looks at it", d.ID)
			return s.fail(t, actor, a, now, &AuditEvent{Action: ActAuthenticate, Device: d.ID, Detail: "possibly cloned key"})
		}
		if err != nil {
			return err
		}
		d.FIDO.SignCount, d.LastUsedAt = newCount, now
		d.FIDO.LastAssertion = &SignedAssertion{AuthData: in.AuthData, Signature: in.Signature, ClientDataJSON: in.ClientDataJSON}
		if err := t.PutDevice(d); err != nil {
			return err
		}
		if a.FailedAttempts != 0 {
			a.FailedAttempts, a.LastFailureAt = 0, time.Time{}
			if err := t.PutAccount(a); err != nil {
				return err
			}
		}
		dev = d
		ev := AuditEvent{Action: ActAuthenticate, Account: a.Name, Device: d.ID, Detail: "type=fido"}
		events = append(events, ev)
		return s.audit(t, actor, ev)
	})
	if err != nil {
		return nil, err
	}
	for _, ev := range events {
		s.logAudit(ev)
	}
	if refusal != nil {
		return nil, refusal
	}
	res := &AuthResult{Method: SourceDevice, Device: *dev, ActiveDevices: active}
	res.StepUpToken, res.StepUpExpiry = s.stepUps.issue(actor.UID, req.Account, SourceDevice, now, s.policy.StepUpTTL)
	return res, nil
}

// recordFailure counts a failed attempt made outside a code check.
func (s *Service) recordFailure(ctx context.Context, actor Actor, account, device, why string) {
	now := s.now().UTC()
	err := s.store.Update(ctx, func(t Tx) error {
		a, err := t.Account(account)
		if err != nil {
			return err
		}
		return s.fail(t, actor, a, now, &AuditEvent{Action: ActAuthenticate, Device: device, Detail: why})
	})
	if err != nil {
		s.log.Error("recording a failed attempt", "account", account, "err", err)
	}
}
