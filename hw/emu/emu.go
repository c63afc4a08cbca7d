package emu

import (
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/mfad/mfad/hw/ctap2"
	"github.com/mfad/mfad/hw/ctaphid"
)

// AAGUIDString is the AAGUID of every mfad software authenticator, the
// bytes of the ASCII text "mfad-emu-softkey". authn/fido2 uses it (with the
// attestation CA) to recognise credentials made by a software key.
const AAGUIDString = "6d666164-2d65-6d75-2d73-6f66746b6579"

// AAGUID is AAGUIDString as the 16 bytes found in authenticator data and in
// the batch certificate's id-fido-gen-ce-aaguid extension.
var AAGUID = [16]byte{'m', 'f', 'a', 'd', '-', 'e', 'm', 'u', '-', 's', 'o', 'f', 't', 'k', 'e', 'y'}

// OIDFIDOGenCeAAGUID is id-fido-gen-ce-aaguid, the certificate extension
// carrying the AAGUID (WebAuthn §8.2.1, packed attestation certificate
// requirements).
var OIDFIDOGenCeAAGUID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 45724, 1, 1, 4}

// Limits and timings of the emulator.
const (
	// MaxPINRetries is the PIN retry counter after a successful PIN entry
	// (CTAP 2.1 §6.5.2.1, maximum 8).
	MaxPINRetries = 8
	// PINAttemptsPerPowerCycle is how many consecutive wrong PINs soft-lock
	// the PIN until the next power cycle (CTAP 2.1 §6.5.5.5.1, 3).
	PINAttemptsPerPowerCycle = 3
	// MinPINLength is the minimum PIN length in code points (CTAP 2.1 §6.4).
	MinPINLength = 4
	// ResetWindow is how long after power-up authenticatorReset is allowed
	// (CTAP 2.1 §6.6, 10 seconds).
	ResetWindow = 10 * time.Second
	// DefaultPresenceTimeout bounds the wait for a touch in manual mode.
	DefaultPresenceTimeout = 30 * time.Second
	// MaxResidentCredentials is the size of the resident credential store.
	MaxResidentCredentials = 100
	// MaxMsgSize is the GetInfo maxMsgSize: the largest CTAPHID message.
	MaxMsgSize = ctaphid.MaxPayload
	// maxCredentialsInList is the GetInfo maxCredentialCountInList.
	maxCredentialsInList = 16
	// nextAssertionTimeout bounds the GetNextAssertion window (CTAP 2.1 §6.3, 30 s).
	nextAssertionTimeout = 30 * time.Second
)

// Presence is how the emulator obtains user presence (a "touch").
type Presence int

const (
	// PresenceAuto approves every user presence test at once.
	PresenceAuto Presence = iota
	// PresenceManual waits for Touch, sending KEEPALIVE with STATUS_UPNEEDED,
	// until the presence timeout (CTAP2_ERR_USER_ACTION_TIMEOUT) or
	// cancellation (CTAP2_ERR_KEEPALIVE_CANCEL).
	PresenceManual
)

func (p Presence) String() string {
	switch p {
	case PresenceAuto:
		return "auto"
	case PresenceManual:
		return "manual"
	}
	return fmt.Sprintf("Presence(%d)", int(p))
}

// Options are the authenticator's GetInfo options. The zero value is a key
// with resident credentials, user presence and a client PIN, and no
// built-in user verification.
type Options struct {
	// NoResidentKeys removes the rk option: MakeCredential with rk=true
	// fails with CTAP2_ERR_UNSUPPORTED_OPTION.
	NoResidentKeys bool
	// NoClientPIN removes the clientPin option: authenticatorClientPIN is
	// an unknown command.
	NoClientPIN bool
	// UV adds built-in user verification (option uv=true): a request with
	// the uv option is verified by the same touch that proves presence.
	UV bool
}

// Config configures an Authenticator. The zero value is a usable key with
// automatic presence, state in memory, the real clock and crypto/rand.
type Config struct {
	// Persister keeps the state; nil means a fresh in-memory store.
	Persister Persister
	// Options are the authenticator's capabilities.
	Options Options
	// Presence is how touches are obtained; it may be changed later with
	// SetPresence.
	Presence Presence
	// PresenceTimeout bounds a manual touch (default DefaultPresenceTimeout).
	PresenceTimeout time.Duration
	// Now is the clock (default time.Now); power-up is read from it.
	Now func() time.Time
	// Rand supplies keys, nonces and tokens (default crypto/rand).
	Rand io.Reader
	// Name is the common name of the batch certificate when the identity
	// is first created (default "mfad software authenticator").
	Name string
}

// Authenticator is a software FIDO2 authenticator. It implements
// ctaphid.Handler. Its methods are safe for concurrent use; CBOR and Msg
// requests run one at a time (as a ctaphid.Server calls them).
type Authenticator struct {
	cfg Config
	now func() time.Time
	rnd io.Reader

	req sync.Mutex // serialises CBOR and Msg requests

	mu         sync.Mutex
	st         state
	caKey      *ecdsa.PrivateKey
	caCert     *x509.Certificate
	batchKey   *ecdsa.PrivateKey
	batchCert  *x509.Certificate
	presence   Presence
	powerUp    time.Time
	pinFails   int // consecutive wrong PINs in this power cycle
	keyAgree   *ecdh.PrivateKey
	token      []byte
	tokenPerms ctap2.Permission
	tokenRPID  string
	next       *nextAssertions
	cm         cmState // credential management enumeration in progress
	faults     authFaults
	winks      int
	cancels    int

	touch chan struct{}
}

// state is what the Persister keeps, encoded as CBOR.
type state struct {
	Version    int                  `cbor:"v"`
	CAKey      []byte               `cbor:"caKey"`
	CACert     []byte               `cbor:"caCert"`
	BatchKey   []byte               `cbor:"batchKey"`
	BatchCert  []byte               `cbor:"batchCert"`
	WrapKey    []byte               `cbor:"wrapKey"`
	Counter    uint32               `cbor:"counter"`
	PINHash    []byte               `cbor:"pinHash,omitempty"`
	PINRetries int                  `cbor:"pinRetries"`
	Resident   []residentCredential `cbor:"resident,omitempty"`
}

// residentCredential is a discoverable credential. Its private key is
// inside its id (see wrap).
type residentCredential struct {
	ID          []byte `cbor:"id"`
	RPID        string `cbor:"rpId"`
	RPName      string `cbor:"rpName,omitempty"`
	UserID      []byte `cbor:"userId"`
	UserName    string `cbor:"userName,omitempty"`
	DisplayName string `cbor:"displayName,omitempty"`
	Created     uint64 `cbor:"created"` // creation order
}

const stateVersion = 1

// New returns an Authenticator with the state found in cfg.Persister, or a
// new identity (attestation CA, batch certificate, wrapping key) saved
// there when it holds none. Power-up is now.
func New(cfg Config) (*Authenticator, error) {
	a := &Authenticator{cfg: cfg, now: cfg.Now, rnd: cfg.Rand, presence: cfg.Presence, touch: make(chan struct{}, 1)}
	if a.now == nil {
		a.now = time.Now
	}
	if a.rnd == nil {
		a.rnd = rand.Reader
	}
	if a.cfg.Persister == nil {
		a.cfg.Persister = NewMemory()
	}
	if a.cfg.PresenceTimeout <= 0 {
		a.cfg.PresenceTimeout = DefaultPresenceTimeout
	}
	raw, err := a.cfg.Persister.Load()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("emu: load state: %w", err)
	}
	if len(raw) == 0 {
		if err := a.createIdentity(); err != nil {
			return nil, err
		}
		if err := a.save(); err != nil {
			return nil, err
		}
	} else if err := a.loadState(raw); err != nil {
		return nil, err
	}
	if err := a.powerCycle(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *Authenticator) loadState(raw []byte) error {
	var st state
	if err := cbor.Unmarshal(raw, &st); err != nil {
		return fmt.Errorf("emu: decode state: %w", err)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("emu: state version %d, want %d", st.Version, stateVersion)
	}
	if len(st.WrapKey) != 32 {
		return errors.New("emu: state: wrapping key is not 32 bytes")
	}
	caKey, err := x509.ParseECPrivateKey(st.CAKey)
	if err != nil {
		return fmt.Errorf("emu: state: CA key: %w", err)
	}
	caCert, err := x509.ParseCertificate(st.CACert)
	if err != nil {
		return fmt.Errorf("emu: state: CA certificate: %w", err)
	}
	batchKey, err := x509.ParseECPrivateKey(st.BatchKey)
	if err != nil {
		return fmt.Errorf("emu: state: batch key: %w", err)
	}
	batchCert, err := x509.ParseCertificate(st.BatchCert)
	if err != nil {
		return fmt.Errorf("emu: state: batch certificate: %w", err)
	}
	a.st, a.caKey, a.caCert, a.batchKey, a.batchCert = st, caKey, caCert, batchKey, batchCert
	return nil
}

// createIdentity makes the attestation CA, the batch certificate and the
// wrapping key of a new emulator.
func (a *Authenticator) createIdentity() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), a.rnd)
	if err != nil {
		return fmt.Errorf("emu: CA key: %w", err)
	}
	batchKey, err := ecdsa.GenerateKey(elliptic.P256(), a.rnd)
	if err != nil {
		return fmt.Errorf("emu: batch key: %w", err)
	}
	notBefore := a.now().Add(-time.Hour).UTC().Truncate(time.Second)
	caTmpl := &x509.Certificate{
		SerialNumber: a.serial(),
		Subject: pkix.Name{
			Country:            []string{"ZZ"},
			Organization:       []string{"mfad"},
			OrganizationalUnit: []string{"Software Authenticator"},
			CommonName:         "mfad software authenticator CA",
		},
		NotBefore:             notBefore,
		NotAfter:              notBefore.AddDate(30, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(a.rnd, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("emu: CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return fmt.Errorf("emu: CA certificate: %w", err)
	}
	aaguidExt, err := asn1.Marshal(AAGUID[:])
	if err != nil {
		return fmt.Errorf("emu: AAGUID extension: %w", err)
	}
	name := a.cfg.Name
	if name == "" {
		name = "mfad software authenticator"
	}
	batchTmpl := &x509.Certificate{
		SerialNumber: a.serial(),
		// WebAuthn §8.2.1: C, O, OU "Authenticator Attestation", CN.
		Subject: pkix.Name{
			Country:            []string{"ZZ"},
			Organization:       []string{"mfad"},
			OrganizationalUnit: []string{"Authenticator Attestation"},
			CommonName:         name,
		},
		NotBefore:             notBefore,
		NotAfter:              notBefore.AddDate(30, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  false,
		ExtraExtensions:       []pkix.Extension{{Id: OIDFIDOGenCeAAGUID, Value: aaguidExt}},
	}
	batchDER, err := x509.CreateCertificate(a.rnd, batchTmpl, caCert, &batchKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("emu: batch certificate: %w", err)
	}
	batchCert, err := x509.ParseCertificate(batchDER)
	if err != nil {
		return fmt.Errorf("emu: batch certificate: %w", err)
	}
	caKeyDER, err := x509.MarshalECPrivateKey(caKey)
	if err != nil {
		return fmt.Errorf("emu: CA key: %w", err)
	}
	batchKeyDER, err := x509.MarshalECPrivateKey(batchKey)
	if err != nil {
		return fmt.Errorf("emu: batch key: %w", err)
	}
	wrap := make([]byte, 32)
	if _, err := io.ReadFull(a.rnd, wrap); err != nil {
		return fmt.Errorf("emu: wrapping key: %w", err)
	}
	a.st = state{
		Version:    stateVersion,
		CAKey:      caKeyDER,
		CACert:     caDER,
		BatchKey:   batchKeyDER,
		BatchCert:  batchDER,
		WrapKey:    wrap,
		PINRetries: MaxPINRetries,
	}
	a.caKey, a.caCert, a.batchKey, a.batchCert = caKey, caCert, batchKey, batchCert
	return nil
}

func (a *Authenticator) serial() *big.Int {
	b := make([]byte, 16)
	if _, err := io.ReadFull(a.rnd, b); err != nil {
		return big.NewInt(time.Now().UnixNano())
	}
	b[0] &= 0x7f
	return new(big.Int).SetBytes(b)
}

// save writes the state through the Persister. Called with a.mu held.
func (a *Authenticator) save() error {
	b, err := cbor.Marshal(&a.st)
	if err != nil {
		return fmt.Errorf("emu: encode state: %w", err)
	}
	if err := a.cfg.Persister.Save(b); err != nil {
		return fmt.Errorf("emu: save state: %w", err)
	}
	return nil
}

// powerCycle forgets what a key forgets when it loses power: the PIN soft
// lock, the key agreement key, the pinUvAuthToken and a pending
// GetNextAssertion; power-up is now. Called with a.mu held (or before a is
// shared).
func (a *Authenticator) powerCycle() error {
	k, err := ecdh.P256().GenerateKey(a.rnd)
	if err != nil {
		return fmt.Errorf("emu: key agreement key: %w", err)
	}
	tok := make([]byte, 32)
	if _, err := io.ReadFull(a.rnd, tok); err != nil {
		return fmt.Errorf("emu: pinUvAuthToken: %w", err)
	}
	a.keyAgree, a.token, a.tokenPerms, a.tokenRPID = k, tok, 0, ""
	a.pinFails = 0
	a.next = nil
	a.powerUp = a.now()
	return nil
}

// PowerCycle simulates unplugging and replugging the key: the PIN soft lock
// ends, tokens are forgotten, and the Reset window starts again.
func (a *Authenticator) PowerCycle() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.powerCycle()
}

// Touch approves the user presence test the emulator is waiting for in
// manual mode. A touch while nothing waits is kept for the next test only
// until that test starts (it is then dropped: a touch must come after the
// request).
func (a *Authenticator) Touch() {
	select {
	case a.touch <- struct{}{}:
	default:
	}
}

// SetPresence switches between automatic and manual presence.
func (a *Authenticator) SetPresence(p Presence) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.presence = p
}

// CACertificate is the emulator's attestation root, for relying parties to
// trust (or to recognise and refuse).
func (a *Authenticator) CACertificate() *x509.Certificate { return a.caCert }

// CACertificatePEM is CACertificate in PEM.
func (a *Authenticator) CACertificatePEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.caCert.Raw})
}

// BatchCertificate is the attestation certificate that signs packed
// attestations and U2F registrations, issued by CACertificate.
func (a *Authenticator) BatchCertificate() *x509.Certificate { return a.batchCert }

// Counter is the global signature counter.
func (a *Authenticator) Counter() uint32 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st.Counter
}

// Winks is how many times CTAPHID_WINK was received.
func (a *Authenticator) Winks() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.winks
}

// Cancellations is how many requests ended because the host cancelled them
// (CTAPHID_CANCEL, a resynchronising INIT or the server stopping) while
// they waited for the user.
func (a *Authenticator) Cancellations() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cancels
}

// ResidentCredentials is how many discoverable credentials are stored.
func (a *Authenticator) ResidentCredentials() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.st.Resident)
}

// Wink implements ctaphid.Handler.
func (a *Authenticator) Wink() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.winks++
}

// errCancelled is returned by waitPresence when the request's ctx ended.
var errCancelled = ctap2.ErrKeepaliveCancel

// waitPresence runs a user presence test. Called without a.mu held.
func (a *Authenticator) waitPresence(ctx context.Context, keepalive func(byte)) error {
	a.mu.Lock()
	p := a.presence
	a.mu.Unlock()
	if err := ctx.Err(); err != nil {
		a.countCancel()
		return errCancelled
	}
	if p == PresenceAuto {
		return nil
	}
	select { // drop a touch that came before the request
	case <-a.touch:
	default:
	}
	if keepalive != nil {
		keepalive(ctaphid.StatusUPNeeded)
	}
	t := time.NewTimer(a.cfg.PresenceTimeout)
	defer t.Stop()
	select {
	case <-a.touch:
		if keepalive != nil {
			keepalive(ctaphid.StatusProcessing)
		}
		return nil
	case <-ctx.Done():
		a.countCancel()
		return errCancelled
	case <-t.C:
		return ctap2.ErrUserActionTimeout
	}
}

func (a *Authenticator) countCancel() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cancels++
}
