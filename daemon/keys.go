package daemon

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/authn/fido2"
	"github.com/mfad/mfad/hw/ctap2"
	"github.com/mfad/mfad/hw/ctaphid"
	"github.com/mfad/mfad/hw/emu"
	"github.com/mfad/mfad/hw/fidokey"
	"github.com/mfad/mfad/ipc/api"
)

// keyRing is the set of connected security keys, whatever their driver,
// and the in-process software keys. It satisfies authn.KeyRing and the
// API's key and emulator backends.
type keyRing struct {
	ctx       context.Context // the daemon's lifetime
	log       *slog.Logger
	blobs     blobStore
	hub       *hub
	emulators bool // software keys enabled
	presence  emu.Presence
	mds       *fido2.MDS // names AAGUIDs in battery reports, may be nil

	mu      sync.Mutex
	keys    map[string]*keyEntry
	emus    map[string]*emuEntry
	changed chan struct{}
}

// blobStore keeps software keys' state sealed in the store.
type blobStore interface {
	SaveBlob(name string, data []byte) error
	LoadBlob(name string) ([]byte, error)
	DeleteBlob(name string) error
}

type keyEntry struct {
	id        string
	driver    string
	transport string
	emulator  string
	drv       keyDriver
	added     time.Time

	errMu   sync.Mutex
	lastErr string

	checking atomic.Bool // the battery runs on it
}

// noteError remembers a failure of the key itself (not a refusal such as
// a wrong PIN or no credential), so that /v1/keys shows it failing.
func (e *keyEntry) noteError(err error) {
	var status ctap2.StatusError
	if err == nil || errors.As(err, &status) || errors.Is(err, context.Canceled) {
		return
	}
	e.errMu.Lock()
	e.lastErr = err.Error()
	e.errMu.Unlock()
}

type emuEntry struct {
	name     string
	key      *emu.Key
	presence emu.Presence
}

func newKeyRing(ctx context.Context, log *slog.Logger, blobs blobStore, h *hub, emulators bool) *keyRing {
	return &keyRing{ctx: ctx, log: log, blobs: blobs, hub: h, emulators: emulators,
		keys: map[string]*keyEntry{}, emus: map[string]*emuEntry{}, changed: make(chan struct{})}
}

// Keys implements authn.KeyRing.
func (r *keyRing) Keys() ([]authn.SecurityKey, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]authn.SecurityKey, 0, len(r.keys))
	for _, e := range r.sorted() {
		out = append(out, e)
	}
	return out, r.changed
}

func (r *keyRing) sorted() []*keyEntry {
	out := make([]*keyEntry, 0, len(r.keys))
	for _, e := range r.keys {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// add opens a key reached through the native stack over conn and announces it.
func (r *keyRing) add(id, driver, transport, emulator string, conn ctaphid.Conn, dev fidokey.DeviceInfo) error {
	ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
	defer cancel()
	k, err := fidokey.Open(ctx, conn, dev)
	if err != nil {
		return fmt.Errorf("opening key %s: %w", id, err)
	}
	r.insert(&keyEntry{id: id, driver: driver, transport: transport, emulator: emulator, drv: nativeKey{k}, added: time.Now()})
	return nil
}

// insert puts an opened key in the ring and announces it.
func (r *keyRing) insert(e *keyEntry) {
	r.mu.Lock()
	if old := r.keys[e.id]; old != nil {
		old.drv.Close()
	}
	r.keys[e.id] = e
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	r.log.Info("security key added", "key", e.id, "driver", e.driver, "aaguid", hex.EncodeToString(e.drv.Info().AAGUID))
	r.hub.publish(api.Event{Event: "key_added", Key: apiKey(e, nil)})
}

// remove forgets a key that went away.
func (r *keyRing) remove(id string) {
	r.mu.Lock()
	e := r.keys[id]
	if e != nil {
		delete(r.keys, id)
		close(r.changed)
		r.changed = make(chan struct{})
	}
	r.mu.Unlock()
	if e == nil {
		return
	}
	e.drv.Close()
	r.log.Info("security key removed", "key", id)
	r.hub.publish(api.Event{Event: "key_removed", Key: &api.Key{ID: id, Driver: e.driver, EmulatorID: e.emulator}})
}

func (r *keyRing) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.keys)
}

// Describe implements authn.SecurityKey.
func (e *keyEntry) Describe() authn.KeyInfo {
	var aaguid [16]byte
	copy(aaguid[:], e.drv.Info().AAGUID)
	return authn.KeyInfo{ID: e.id, Driver: e.driver, AAGUID: aaguid, Software: e.emulator != "" || aaguid == emu.AAGUID, EmulatorID: e.emulator}
}

// MakeCredential implements authn.SecurityKey.
func (e *keyEntry) MakeCredential(ctx context.Context, p authn.MakeCredentialParams) (*ctap2.MakeCredentialResponse, error) {
	resp, err := e.drv.MakeCredential(ctx, p)
	e.noteError(err)
	return resp, removedError(err)
}

// GetAssertion implements authn.SecurityKey, always with a touch.
func (e *keyEntry) GetAssertion(ctx context.Context, p authn.GetAssertionParams) ([]*ctap2.GetAssertionResponse, error) {
	resp, err := e.drv.GetAssertion(ctx, p)
	e.noteError(err)
	return resp, removedError(err)
}

func apiKey(e *keyEntry, retries *int) *api.Key {
	info := e.drv.Info()
	dev := e.drv.Device()
	k := &api.Key{ID: e.id, Driver: e.driver, Transport: e.transport, EmulatorID: e.emulator,
		VendorID: dev.VendorID, ProductID: dev.ProductID, Manufacturer: dev.Manufacturer, Product: dev.Product, Serial: dev.Serial,
		Versions: info.Versions, Extensions: info.Extensions, Options: info.Options, PINRetries: retries, Status: "ok"}
	e.errMu.Lock()
	if e.lastErr != "" {
		k.Status, k.LastError = "failing", e.lastErr
	}
	e.errMu.Unlock()
	if len(info.AAGUID) == 16 {
		k.AAGUID = fmt.Sprintf("%x-%x-%x-%x-%x", info.AAGUID[0:4], info.AAGUID[4:6], info.AAGUID[6:8], info.AAGUID[8:10], info.AAGUID[10:16])
	}
	return k
}

func (r *keyRing) entry(id string) (*keyEntry, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.keys[id]; e != nil {
		return e, nil
	}
	return nil, authn.Errorf(authn.ClassNotFound, authn.CodeKeyNotFound, "no connected key %q", id)
}

// ListKeys answers GET /v1/keys. PIN retries are read from keys that
// are not busy with another operation.
func (r *keyRing) ListKeys(ctx context.Context) []api.Key {
	r.mu.Lock()
	entries := r.sorted()
	r.mu.Unlock()
	out := make([]api.Key, 0, len(entries))
	for _, e := range entries {
		var retries *int
		if opt, ok := e.drv.Info().Options["clientPin"]; ok && opt {
			c, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			if n, err := e.drv.PINRetries(c); err == nil {
				retries = &n
			}
			cancel()
		}
		out = append(out, *apiKey(e, retries))
	}
	return out
}

// Wink flashes a key.
func (r *keyRing) Wink(ctx context.Context, id string) error {
	e, err := r.entry(id)
	if err != nil {
		return err
	}
	return keyOpError(e.drv.Wink(ctx))
}

// SetPIN sets the key's first PIN, or changes it when current is given.
func (r *keyRing) SetPIN(ctx context.Context, id, current, pin string) error {
	e, err := r.entry(id)
	if err != nil {
		return err
	}
	if current == "" {
		err = e.drv.SetPIN(ctx, pin)
	} else {
		err = e.drv.ChangePIN(ctx, current, pin)
	}
	if errors.Is(err, ctap2.ErrPINPolicyViolation) {
		return authn.Errorf(authn.ClassInvalid, authn.CodeInvalidRequest, "the key refuses this PIN (too short or too long for its policy)")
	}
	if errors.Is(err, ctap2.ErrNotAllowed) || errors.Is(err, ctap2.ErrPINAuthInvalid) && current == "" {
		return authn.Errorf(authn.ClassConflict, authn.CodeInvalidRequest, "the key already has a PIN: give the current one to change it")
	}
	return keyOpError(err)
}

// Reset erases a key; keys allow it only within seconds of being plugged in.
func (r *keyRing) Reset(ctx context.Context, id string) error {
	e, err := r.entry(id)
	if err != nil {
		return err
	}
	err = e.drv.Reset(ctx)
	if errors.Is(err, ctap2.ErrNotAllowed) {
		return authn.Errorf(authn.ClassConflict, authn.CodeResetWindow,
			"the key refused: keys accept a reset only within about 10 seconds of being plugged in, with a touch; unplug it, plug it back and reset at once")
	}
	return keyOpError(err)
}

func keyOpError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ctap2.ErrPINInvalid):
		return authn.Errorf(authn.ClassForbidden, authn.CodeInvalidPIN, "wrong PIN")
	case errors.Is(err, ctap2.ErrPINBlocked), errors.Is(err, ctap2.ErrPINAuthBlocked):
		return authn.Errorf(authn.ClassForbidden, authn.CodePINBlocked, "the key's PIN is blocked")
	case errors.Is(err, ctap2.ErrUserActionTimeout), errors.Is(err, context.DeadlineExceeded):
		return authn.Errorf(authn.ClassConflict, authn.CodeNoKeyTouched, "the key was not touched in time")
	}
	return &authn.Error{Class: authn.ClassUnavailable, Code: authn.CodeKeyError, Detail: "the key failed: " + err.Error(), Err: err}
}

// Software keys.

var emuNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

func (r *keyRing) emulatorsOn() error {
	if !r.emulators {
		return authn.Errorf(authn.ClassNotFound, authn.CodeEmulatorsDisabled,
			"software keys are off: enable them with [emulator] enabled = true (or --emulators outside systemd)")
	}
	return nil
}

// blobPersister backs a software key's state with the sealed store.
type blobPersister struct {
	blobs blobStore
	name  string
}

func (p blobPersister) Load() ([]byte, error)   { return p.blobs.LoadBlob(p.name) }
func (p blobPersister) Save(state []byte) error { return p.blobs.SaveBlob(p.name, state) }

// AddEmulator creates (or re-attaches, keeping its state) a software key.
func (r *keyRing) AddEmulator(name, presence string) (*api.Emulator, error) {
	if err := r.emulatorsOn(); err != nil {
		return nil, err
	}
	if !emuNameRE.MatchString(name) {
		return nil, authn.Errorf(authn.ClassInvalid, authn.CodeInvalidRequest, "emulator name must be 1-32 of a-z, 0-9 and -")
	}
	pres := r.presence
	switch presence {
	case "":
	case "auto":
		pres = emu.PresenceAuto
	case "manual":
		pres = emu.PresenceManual
	default:
		return nil, authn.Errorf(authn.ClassInvalid, authn.CodeInvalidRequest, "presence must be auto or manual")
	}
	r.mu.Lock()
	_, exists := r.emus[name]
	r.mu.Unlock()
	if exists {
		return nil, authn.Errorf(authn.ClassConflict, authn.CodeInvalidRequest, "a software key named %q is already attached", name)
	}
	k, conn, err := emu.Attach(r.ctx, emu.Config{Persister: blobPersister{r.blobs, "emulator/" + name}, Presence: pres})
	if err != nil {
		return nil, fmt.Errorf("software key %s: %w", name, err)
	}
	r.mu.Lock()
	r.emus[name] = &emuEntry{name: name, key: k, presence: pres}
	r.mu.Unlock()
	if err := r.add("emu-"+name, "emulator", "in-process", name, conn, emuDevice(name)); err != nil {
		k.Close()
		r.mu.Lock()
		delete(r.emus, name)
		r.mu.Unlock()
		return nil, err
	}
	return r.describeEmulator(name), nil
}

func emuDevice(name string) fidokey.DeviceInfo {
	return fidokey.DeviceInfo{Path: "emulator:" + name, Manufacturer: "mfad", Product: "mfad software key", Serial: name}
}

func (r *keyRing) describeEmulator(name string) *api.Emulator {
	r.mu.Lock()
	_, plugged := r.keys["emu-"+name]
	e := r.emus[name]
	r.mu.Unlock()
	out := &api.Emulator{ID: name, KeyID: "emu-" + name, Plugged: plugged}
	if e != nil {
		out.Presence = e.presence.String()
		out.Cancellations = e.key.Cancellations()
		out.CACertificatePEM = string(e.key.CACertificatePEM())
	}
	return out
}

func (r *keyRing) emulator(name string) (*emuEntry, error) {
	if err := r.emulatorsOn(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.emus[name]; e != nil {
		return e, nil
	}
	return nil, authn.Errorf(authn.ClassNotFound, authn.CodeNotFound, "no software key %q", name)
}

// Emulators lists the software keys.
func (r *keyRing) Emulators() ([]api.Emulator, error) {
	if err := r.emulatorsOn(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	names := make([]string, 0, len(r.emus))
	for n := range r.emus {
		names = append(names, n)
	}
	r.mu.Unlock()
	sort.Strings(names)
	out := []api.Emulator{}
	for _, n := range names {
		out = append(out, *r.describeEmulator(n))
	}
	return out, nil
}

// RemoveEmulator detaches a software key and forgets its state.
func (r *keyRing) RemoveEmulator(name string) error {
	e, err := r.emulator(name)
	if err != nil {
		return err
	}
	r.remove("emu-" + name)
	e.key.Close()
	r.mu.Lock()
	delete(r.emus, name)
	r.mu.Unlock()
	return r.blobs.DeleteBlob("emulator/" + name)
}

// EmulatorAct touches, unplugs, plugs or injects a fault into a software key.
func (r *keyRing) EmulatorAct(name, action string, f *api.Fault) error {
	e, err := r.emulator(name)
	if err != nil {
		return err
	}
	switch action {
	case "touch":
		e.key.Touch()
	case "unplug":
		if !e.key.Plugged() {
			return authn.Errorf(authn.ClassConflict, authn.CodeInvalidRequest, "software key %q is already unplugged", name)
		}
		r.remove("emu-" + name)
		e.key.Unplug()
	case "plug":
		conn, err := e.key.Plug()
		if err != nil {
			return authn.Errorf(authn.ClassConflict, authn.CodeInvalidRequest, "software key %q: %v", name, err)
		}
		return r.add("emu-"+name, "emulator", "in-process", name, conn, emuDevice(name))
	case "fault":
		if f == nil || f.Kind == "" {
			return authn.Errorf(authn.ClassInvalid, authn.CodeInvalidRequest, "a fault needs a kind")
		}
		fault := emu.Fault{Kind: f.Kind, Status: f.Status, Count: f.Count, Interval: time.Duration(f.IntervalMS) * time.Millisecond}
		if err := e.key.SetFault(fault); err != nil {
			return authn.Errorf(authn.ClassInvalid, authn.CodeInvalidRequest, "%v", err)
		}
	default:
		return authn.Errorf(authn.ClassInvalid, authn.CodeInvalidRequest, "unknown action %q", action)
	}
	return nil
}

// close detaches everything.
func (r *keyRing) close() {
	r.mu.Lock()
	keys, emus := r.keys, r.emus
	r.keys, r.emus = map[string]*keyEntry{}, map[string]*emuEntry{}
	r.mu.Unlock()
	for _, e := range keys {
		e.drv.Close()
	}
	for _, e := range emus {
		e.key.Close()
	}
}
