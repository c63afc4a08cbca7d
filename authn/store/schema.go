package store

import (
	"time"

	"github.com/mfad/mfad/authn"
)

// The records as stored (schema v3) are this package's own types, with
// explicit CBOR keys: renaming a field of authn's types, or of the wire
// (ipc/api), changes nothing in the database. Their JSON keys are the same
// names, for reading the JSON records of schemas v1 and v2 when they are
// migrated. Field order is the encoding's key order; keep it.
//
// A field added to authn's types needs its field here and in the
// conversions below: TestRecordsCarryEveryField fails until it has one.

type accountRec struct {
	Name           string          `cbor:"name" json:"name"`
	Kind           string          `cbor:"kind" json:"kind"`
	Email          string          `cbor:"email,omitempty" json:"email,omitempty"`
	EmailVerified  bool            `cbor:"email_verified" json:"email_verified"`
	Phone          string          `cbor:"phone,omitempty" json:"phone,omitempty"`
	PhoneVerified  bool            `cbor:"phone_verified" json:"phone_verified"`
	Flags          []string        `cbor:"flags,omitempty" json:"flags,omitempty"`
	CreatedAt      time.Time       `cbor:"created_at" json:"created_at"`
	UpdatedAt      time.Time       `cbor:"updated_at" json:"updated_at"`
	EverEnrolled   bool            `cbor:"ever_enrolled" json:"ever_enrolled"`
	FailedAttempts int             `cbor:"failed_attempts" json:"failed_attempts"`
	LastFailureAt  time.Time       `cbor:"last_failure_at,omitzero" json:"last_failure_at,omitzero"`
	LockedUntil    time.Time       `cbor:"locked_until,omitzero" json:"locked_until,omitzero"`
	TempCode       *tempCodeRec    `cbor:"temp_code,omitempty" json:"temp_code,omitempty"`
	ScratchCodes   [][]byte        `cbor:"scratch_codes,omitempty" json:"scratch_codes,omitempty"`
	PendingContact *pendingContact `cbor:"pending_contact,omitempty" json:"pending_contact,omitempty"`
}

type tempCodeRec struct {
	Hash      []byte    `cbor:"hash" json:"hash"`
	ExpiresAt time.Time `cbor:"expires_at" json:"expires_at"`
	IssuedBy  string    `cbor:"issued_by" json:"issued_by"`
}

type pendingContact struct {
	Kind      string    `cbor:"kind" json:"kind"`
	Value     string    `cbor:"value" json:"value"`
	CodeHash  []byte    `cbor:"code_hash" json:"code_hash"`
	ExpiresAt time.Time `cbor:"expires_at" json:"expires_at"`
	Attempts  int       `cbor:"attempts" json:"attempts"`
}

// deviceRecord is a device as stored, with its sealed secret.
type deviceRecord struct {
	ID                string    `cbor:"id" json:"id"`
	Account           string    `cbor:"account" json:"account"`
	Type              string    `cbor:"type" json:"type"`
	State             string    `cbor:"state" json:"state"`
	Label             string    `cbor:"label,omitempty" json:"label,omitempty"`
	Serial            string    `cbor:"serial,omitempty" json:"serial,omitempty"`
	CreatedAt         time.Time `cbor:"created_at" json:"created_at"`
	ExpiresAt         time.Time `cbor:"expires_at,omitzero" json:"expires_at,omitzero"`
	ActivatedAt       time.Time `cbor:"activated_at,omitzero" json:"activated_at,omitzero"`
	DeactivatedAt     time.Time `cbor:"deactivated_at,omitzero" json:"deactivated_at,omitzero"`
	LastUsedAt        time.Time `cbor:"last_used_at,omitzero" json:"last_used_at,omitzero"`
	OTP               *otpRec   `cbor:"otp,omitempty" json:"otp,omitempty"`
	FIDO              *fidoRec  `cbor:"fido,omitempty" json:"fido,omitempty"`
	ResyncFailures    int       `cbor:"resync_failures,omitempty" json:"resync_failures,omitempty"`
	ResyncWindowStart time.Time `cbor:"resync_window_start,omitzero" json:"resync_window_start,omitzero"`
	Sealed            []byte    `cbor:"sealed_secret,omitempty" json:"sealed_secret,omitempty"`
}

type otpRec struct {
	Event       bool   `cbor:"event,omitempty" json:"event,omitempty"`
	Algorithm   string `cbor:"algorithm" json:"algorithm"`
	Digits      int    `cbor:"digits" json:"digits"`
	Period      int    `cbor:"period,omitempty" json:"period,omitempty"`
	LastCounter uint64 `cbor:"last_counter" json:"last_counter"`
	Used        bool   `cbor:"used" json:"used"`
	Drift       int64  `cbor:"drift" json:"drift"`
}

type fidoRec struct {
	CredentialID      []byte        `cbor:"credential_id" json:"credential_id"`
	PublicKey         []byte        `cbor:"public_key" json:"public_key"`
	Alg               int64         `cbor:"alg" json:"alg"`
	AAGUID            string        `cbor:"aaguid" json:"aaguid"`
	SignCount         uint32        `cbor:"sign_count" json:"sign_count"`
	Format            string        `cbor:"format" json:"format"`
	AttestationType   string        `cbor:"attestation_type" json:"attestation_type"`
	Verdict           string        `cbor:"verdict" json:"verdict"`
	Model             string        `cbor:"model,omitempty" json:"model,omitempty"`
	Software          bool          `cbor:"software,omitempty" json:"software,omitempty"`
	PossiblyCloned    bool          `cbor:"possibly_cloned,omitempty" json:"possibly_cloned,omitempty"`
	AttestationObject []byte        `cbor:"attestation_object" json:"attestation_object"`
	ClientDataJSON    []byte        `cbor:"client_data_json" json:"client_data_json"`
	LastAssertion     *assertionRec `cbor:"last_assertion,omitempty" json:"last_assertion,omitempty"`
}

type assertionRec struct {
	AuthData       []byte `cbor:"auth_data" json:"auth_data"`
	Signature      []byte `cbor:"signature" json:"signature"`
	ClientDataJSON []byte `cbor:"client_data_json" json:"client_data_json"`
}

// tokenRecord is a hardware token as stored, with its sealed secret.
type tokenRecord struct {
	Serial       string    `cbor:"serial" json:"serial"`
	Manufacturer string    `cbor:"manufacturer,omitempty" json:"manufacturer,omitempty"`
	Model        string    `cbor:"model,omitempty" json:"model,omitempty"`
	OTP          otpRec    `cbor:"otp" json:"otp"`
	ImportedAt   time.Time `cbor:"imported_at" json:"imported_at"`
	AssignedTo   string    `cbor:"assigned_to,omitempty" json:"assigned_to,omitempty"`
	DeviceID     string    `cbor:"device_id,omitempty" json:"device_id,omitempty"`
	Retired      bool      `cbor:"retired,omitempty" json:"retired,omitempty"`
	Sealed       []byte    `cbor:"sealed_secret,omitempty" json:"sealed_secret,omitempty"`
}

type auditRec struct {
	Seq      uint64    `cbor:"seq" json:"seq"`
	Time     time.Time `cbor:"time" json:"time"`
	ActorUID uint32    `cbor:"actor_uid" json:"actor_uid"`
	Actor    string    `cbor:"actor,omitempty" json:"actor,omitempty"`
	Action   string    `cbor:"action" json:"action"`
	Outcome  string    `cbor:"outcome" json:"outcome"`
	Account  string    `cbor:"account,omitempty" json:"account,omitempty"`
	Device   string    `cbor:"device,omitempty" json:"device,omitempty"`
	Detail   string    `cbor:"detail,omitempty" json:"detail,omitempty"`
}

func accountToRec(a *authn.Account) *accountRec {
	r := &accountRec{
		Name: a.Name, Kind: string(a.Kind), Email: a.Email, EmailVerified: a.EmailVerified,
		Phone: a.Phone, PhoneVerified: a.PhoneVerified, Flags: a.Flags, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt,
		EverEnrolled: a.EverEnrolled, FailedAttempts: a.FailedAttempts, LastFailureAt: a.LastFailureAt, LockedUntil: a.LockedUntil,
		ScratchCodes: a.ScratchCodes,
	}
	if tc := a.TempCode; tc != nil {
		r.TempCode = &tempCodeRec{Hash: tc.Hash, ExpiresAt: tc.ExpiresAt, IssuedBy: tc.IssuedBy}
	}
	if pc := a.PendingContact; pc != nil {
		r.PendingContact = &pendingContact{Kind: pc.Kind, Value: pc.Value, CodeHash: pc.CodeHash, ExpiresAt: pc.ExpiresAt, Attempts: pc.Attempts}
	}
	return r
}

func (r *accountRec) account() *authn.Account {
	a := &authn.Account{
		Name: r.Name, Kind: authn.Kind(r.Kind), Email: r.Email, EmailVerified: r.EmailVerified,
		Phone: r.Phone, PhoneVerified: r.PhoneVerified, Flags: r.Flags, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		EverEnrolled: r.EverEnrolled, FailedAttempts: r.FailedAttempts, LastFailureAt: r.LastFailureAt, LockedUntil: r.LockedUntil,
		ScratchCodes: r.ScratchCodes,
	}
	if tc := r.TempCode; tc != nil {
		a.TempCode = &authn.TempCodeState{Hash: tc.Hash, ExpiresAt: tc.ExpiresAt, IssuedBy: tc.IssuedBy}
	}
	if pc := r.PendingContact; pc != nil {
		a.PendingContact = &authn.PendingContact{Kind: pc.Kind, Value: pc.Value, CodeHash: pc.CodeHash, ExpiresAt: pc.ExpiresAt, Attempts: pc.Attempts}
	}
	return a
}

func otpToRec(o authn.OTPState) otpRec {
	return otpRec{Event: o.Event, Algorithm: o.Algorithm, Digits: o.Digits, Period: o.Period, LastCounter: o.LastCounter, Used: o.Used, Drift: o.Drift}
}

func (r otpRec) otp() authn.OTPState {
	return authn.OTPState{Event: r.Event, Algorithm: r.Algorithm, Digits: r.Digits, Period: r.Period, LastCounter: r.LastCounter, Used: r.Used, Drift: r.Drift}
}

// deviceToRec returns d's record, without its secret (the caller seals it).
func deviceToRec(d *authn.Device) *deviceRecord {
	r := &deviceRecord{
		ID: d.ID, Account: d.Account, Type: string(d.Type), State: string(d.State), Label: d.Label, Serial: d.Serial,
		CreatedAt: d.CreatedAt, ExpiresAt: d.ExpiresAt, ActivatedAt: d.ActivatedAt, DeactivatedAt: d.DeactivatedAt, LastUsedAt: d.LastUsedAt,
		ResyncFailures: d.ResyncFailures, ResyncWindowStart: d.ResyncWindowStart,
	}
	if d.OTP != nil {
		o := otpToRec(*d.OTP)
		r.OTP = &o
	}
	if f := d.FIDO; f != nil {
		r.FIDO = &fidoRec{CredentialID: f.CredentialID, PublicKey: f.PublicKey, Alg: f.Alg, AAGUID: f.AAGUID, SignCount: f.SignCount,
			Format: f.Format, AttestationType: f.AttestationType, Verdict: f.Verdict, Model: f.Model, Software: f.Software,
			PossiblyCloned: f.PossiblyCloned, AttestationObject: f.AttestationObject, ClientDataJSON: f.ClientDataJSON}
		if la := f.LastAssertion; la != nil {
			r.FIDO.LastAssertion = &assertionRec{AuthData: la.AuthData, Signature: la.Signature, ClientDataJSON: la.ClientDataJSON}
		}
	}
	return r
}

// device returns the record's device, without its secret (the caller opens it).
func (r *deviceRecord) device() *authn.Device {
	d := &authn.Device{
		ID: r.ID, Account: r.Account, Type: authn.DeviceType(r.Type), State: authn.DeviceState(r.State), Label: r.Label, Serial: r.Serial,
		CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt, ActivatedAt: r.ActivatedAt, DeactivatedAt: r.DeactivatedAt, LastUsedAt: r.LastUsedAt,
		ResyncFailures: r.ResyncFailures, ResyncWindowStart: r.ResyncWindowStart,
	}
	if r.OTP != nil {
		o := r.OTP.otp()
		d.OTP = &o
	}
	if f := r.FIDO; f != nil {
		d.FIDO = &authn.FIDOState{CredentialID: f.CredentialID, PublicKey: f.PublicKey, Alg: f.Alg, AAGUID: f.AAGUID, SignCount: f.SignCount,
			Format: f.Format, AttestationType: f.AttestationType, Verdict: f.Verdict, Model: f.Model, Software: f.Software,
			PossiblyCloned: f.PossiblyCloned, AttestationObject: f.AttestationObject, ClientDataJSON: f.ClientDataJSON}
		if la := f.LastAssertion; la != nil {
			d.FIDO.LastAssertion = &authn.SignedAssertion{AuthData: la.AuthData, Signature: la.Signature, ClientDataJSON: la.ClientDataJSON}
		}
	}
	return d
}

// tokenToRec returns t's record, without its secret.
func tokenToRec(t *authn.Token) *tokenRecord {
	return &tokenRecord{Serial: t.Serial, Manufacturer: t.Manufacturer, Model: t.Model, OTP: otpToRec(t.OTP), ImportedAt: t.ImportedAt,
		AssignedTo: t.AssignedTo, DeviceID: t.DeviceID, Retired: t.Retired}
}

// token returns the record's token, without its secret.
func (r *tokenRecord) token() *authn.Token {
	return &authn.Token{Serial: r.Serial, Manufacturer: r.Manufacturer, Model: r.Model, OTP: r.OTP.otp(), ImportedAt: r.ImportedAt,
		AssignedTo: r.AssignedTo, DeviceID: r.DeviceID, Retired: r.Retired}
}

func auditToRec(e *authn.AuditEvent) *auditRec {
	return &auditRec{Seq: e.Seq, Time: e.Time, ActorUID: e.ActorUID, Actor: e.Actor, Action: e.Action, Outcome: e.Outcome,
		Account: e.Account, Device: e.Device, Detail: e.Detail}
}

func (r *auditRec) event() authn.AuditEvent {
	return authn.AuditEvent{Seq: r.Seq, Time: r.Time, ActorUID: r.ActorUID, Actor: r.Actor, Action: r.Action, Outcome: r.Outcome,
		Account: r.Account, Device: r.Device, Detail: r.Detail}
}
