package authn_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/authn/fido2"
	"github.com/mfad/mfad/authn/store"
	"github.com/mfad/mfad/hw/ctap2"
	"github.com/mfad/mfad/hw/emu"
	"github.com/mfad/mfad/hw/fidokey"
)

// softKey is an in-process software key behind the host stack, as the
// daemon's key ring presents one. hardware makes it claim to be a real
// key (as one exposed through uhid would look).
type softKey struct {
	id       string
	emu      *emu.Key
	key      *fidokey.Key
	hardware bool
}

func (k *softKey) Describe() authn.KeyInfo {
	var a [16]byte
	copy(a[:], k.key.Info().AAGUID)
	return authn.KeyInfo{ID: k.id, Driver: "emulator", AAGUID: a, Software: !k.hardware}
}

func (k *softKey) MakeCredential(ctx context.Context, p authn.MakeCredentialParams) (*ctap2.MakeCredentialResponse, error) {
	return k.key.MakeCredential(ctx, fidokey.MakeCredentialParams{ClientDataHash: p.ClientDataHash, RP: p.RP, User: p.User,
		ExcludeList: p.ExcludeList, UV: p.UV, PIN: p.PIN, OnKeepalive: p.OnKeepalive})
}

func (k *softKey) GetAssertion(ctx context.Context, p authn.GetAssertionParams) ([]*ctap2.GetAssertionResponse, error) {
	return k.key.GetAssertion(ctx, fidokey.GetAssertionParams{RPID: p.RPID, ClientDataHash: p.ClientDataHash, AllowList: p.AllowList,
		UP: true, UV: p.UV, PIN: p.PIN, OnKeepalive: p.OnKeepalive})
}

type ring struct {
	mu      sync.Mutex
	keys    []authn.SecurityKey
	changed chan struct{}
}

func (r *ring) Keys() ([]authn.SecurityKey, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]authn.SecurityKey(nil), r.keys...), r.changed
}

func (r *ring) set(keys ...authn.SecurityKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys = keys
	close(r.changed)
	r.changed = make(chan struct{})
}

func attachKey(t *testing.T, id string, presence emu.Presence) *softKey {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	k, conn, err := emu.Attach(ctx, emu.Config{Presence: presence, PresenceTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	fk, err := fidokey.Open(ctx, conn, fidokey.DeviceInfo{Path: id})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fk.Close(); k.Close(); cancel() })
	return &softKey{id: id, emu: k, key: fk}
}

type fidoFixture struct {
	svc  *authn.Service
	st   *store.Store
	ring *ring
	dir  string
	ctx  context.Context
}

func newFIDOFixture(t *testing.T, policy authn.FIDOPolicy) *fidoFixture {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(dir, bytes.Repeat([]byte{4}, store.KeySize), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r := &ring{changed: make(chan struct{})}
	if policy.RPID == "" {
		policy.RPID = "pam://testhost"
	}
	policy.SoftwareAAGUIDs = [][16]byte{emu.AAGUID}
	if policy.TouchTimeout == 0 {
		policy.TouchTimeout = 5 * time.Second
	}
	return &fidoFixture{svc: authn.NewService(st, authn.Config{FIDO: policy, Keys: r}), st: st, ring: r, dir: dir, ctx: context.Background()}
}

var root = authn.Actor{UID: 0, Name: "root", Admin: true}

func TestFIDOEnrollSignInAndExclude(t *testing.T) {
	f := newFIDOFixture(t, authn.FIDOPolicy{AllowSoftwareKeys: true})
	k1, k2 := attachKey(t, "k1", emu.PresenceAuto), attachKey(t, "k2", emu.PresenceAuto)
	var events []string
	progress := func(ev string, _ map[string]any) { events = append(events, ev) }

	f.ring.set(k1)
	d1, err := f.svc.EnrollFIDO(f.ctx, root, "olga", authn.FIDOEnrollRequest{Label: "blue"}, progress)
	if err != nil {
		t.Fatal(err)
	}
	if d1.State != authn.StateActive || d1.FIDO.Format != "packed" || d1.FIDO.AttestationType != "basic" || !d1.FIDO.Software {
		t.Fatalf("enrolled device: %+v", d1.FIDO)
	}
	if len(events) == 0 || events[0] != "touch_required" {
		t.Errorf("progress events %v", events)
	}
	// The same key again is refused.
	_, err = f.svc.EnrollFIDO(f.ctx, root, "olga", authn.FIDOEnrollRequest{}, nil)
	wantCode(t, err, authn.CodeCredentialExcluded)
	// A second key, and a TOTP device beside them.
	f.ring.set(k2)
	d2, err := f.svc.EnrollFIDO(f.ctx, root, "olga", authn.FIDOEnrollRequest{Label: "green"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Enroll(f.ctx, root, "olga", authn.EnrollRequest{Type: authn.DeviceTOTP}); err != nil {
		t.Fatal(err)
	}
	// Sign in with either key.
	for _, tc := range []struct {
		key  *softKey
		want string
	}{{k1, d1.ID}, {k2, d2.ID}} {
		f.ring.set(tc.key)
		res, err := f.svc.Authenticate(f.ctx, root, authn.AuthRequest{Account: "olga"}, nil)
		if err != nil || res.Device.ID != tc.want || res.StepUpToken == "" {
			t.Fatalf("sign-in with %s: %+v %v", tc.key.id, res, err)
		}
	}
	// Resync does not apply to security keys.
	_, err = f.svc.Resync(f.ctx, root, "olga", d1.ID, authn.CodePair{Code1: "123456", Code2: "123456"})
	wantCode(t, err, authn.CodeResyncNotApplicable)
	// No key plugged in: answered at once.
	f.ring.set()
	_, err = f.svc.Authenticate(f.ctx, root, authn.AuthRequest{Account: "olga"}, nil)
	wantCode(t, err, authn.CodeNoKeyPresent)
	// Waiting for a key: it is plugged in meanwhile.
	go func() { time.Sleep(100 * time.Millisecond); f.ring.set(k1) }()
	events = nil
	if _, err := f.svc.Authenticate(f.ctx, root, authn.AuthRequest{Account: "olga", WaitForKey: true}, progress); err != nil {
		t.Fatalf("wait_for_key: %v", err)
	}
	if !strings.Contains(strings.Join(events, " "), "key_added touch_required") {
		t.Errorf("events while waiting: %v", events)
	}
}

func TestFIDOTouchTimeoutAndSelectByTouch(t *testing.T) {
	f := newFIDOFixture(t, authn.FIDOPolicy{AllowSoftwareKeys: true, TouchTimeout: time.Second})
	k := attachKey(t, "k", emu.PresenceManual)
	other := attachKey(t, "other", emu.PresenceManual)
	f.ring.set(k)
	done := make(chan error, 1)
	go func() {
		_, err := f.svc.EnrollFIDO(f.ctx, root, "pia", authn.FIDOEnrollRequest{}, func(ev string, fields map[string]any) {
			if ev == "keepalive" && fields["status"] == "up_needed" {
				k.emu.Touch()
			}
		})
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatalf("enroll with a manual touch: %v", err)
	}
	// Nobody touches: no_key_touched after the timeout.
	_, err := f.svc.Authenticate(f.ctx, root, authn.AuthRequest{Account: "pia"}, nil)
	wantCode(t, err, authn.CodeNoKeyTouched)
	// Two keys holding the account's credentials: the one touched wins; the
	// other, waiting for its own touch, is cancelled.
	f.ring.set(other)
	go func() {
		_, err := f.svc.EnrollFIDO(f.ctx, root, "pia", authn.FIDOEnrollRequest{}, func(ev string, fields map[string]any) {
			if ev == "keepalive" && fields["status"] == "up_needed" {
				other.emu.Touch()
			}
		})
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatalf("enroll the second key: %v", err)
	}
	f.ring.set(other, k)
	before := other.emu.Cancellations()
	// Touch k once both keys have had time to start waiting, and keep
	// touching it (a touch before k waits is dropped) until it answers.
	var once sync.Once
	stop := make(chan struct{})
	defer close(stop)
	res, err := f.svc.Authenticate(f.ctx, root, authn.AuthRequest{Account: "pia"}, func(ev string, fields map[string]any) {
		if ev == "keepalive" && fields["status"] == "up_needed" {
			once.Do(func() {
				go func() {
					time.Sleep(300 * time.Millisecond)
					for {
						k.emu.Touch()
						select {
						case <-stop:
							return
						case <-time.After(50 * time.Millisecond):
						}
					}
				}()
			})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = res
	deadline := time.Now().Add(3 * time.Second)
	for other.emu.Cancellations() == before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if other.emu.Cancellations() == before {
		t.Error("the key not touched was not cancelled")
	}
}

func TestFIDOPINRequiredThenSuccess(t *testing.T) {
	f := newFIDOFixture(t, authn.FIDOPolicy{AllowSoftwareKeys: true})
	k := attachKey(t, "k", emu.PresenceAuto)
	if err := k.key.SetPIN(f.ctx, "4711"); err != nil {
		t.Fatal(err)
	}
	f.ring.set(k)
	_, err := f.svc.EnrollFIDO(f.ctx, root, "quinn", authn.FIDOEnrollRequest{}, nil)
	wantCode(t, err, authn.CodePINRequired)
	_, err = f.svc.EnrollFIDO(f.ctx, root, "quinn", authn.FIDOEnrollRequest{PIN: "0000"}, nil)
	wantCode(t, err, authn.CodeInvalidPIN)
	d, err := f.svc.EnrollFIDO(f.ctx, root, "quinn", authn.FIDOEnrollRequest{PIN: "4711"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Authenticate(f.ctx, root, authn.AuthRequest{Account: "quinn", PIN: "4711"}, nil); err != nil {
		t.Fatalf("sign-in with PIN: %v", err)
	}
	_ = d
}

func TestFIDOCounterRollbackMarksClone(t *testing.T) {
	f := newFIDOFixture(t, authn.FIDOPolicy{AllowSoftwareKeys: true})
	k := attachKey(t, "k", emu.PresenceAuto)
	f.ring.set(k)
	d, err := f.svc.EnrollFIDO(f.ctx, root, "rui", authn.FIDOEnrollRequest{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Authenticate(f.ctx, root, authn.AuthRequest{Account: "rui"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := k.emu.SetFault(emu.Fault{Kind: emu.FaultCounterRollback, Count: 5}); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.Authenticate(f.ctx, root, authn.AuthRequest{Account: "rui"}, nil)
	wantCode(t, err, authn.CodePossiblyCloned)
	got, _ := f.svc.Device("rui", d.ID)
	if !got.FIDO.PossiblyCloned {
		t.Fatal("device not marked possibly cloned")
	}
	events, _ := f.svc.Audit(0, 100)
	found := false
	for _, e := range events {
		found = found || e.Action == authn.ActCloned
	}
	if !found {
		t.Error("no possibly_cloned audit entry")
	}
	// A marked device no longer signs in, and the answer says why.
	_, err = f.svc.Authenticate(f.ctx, root, authn.AuthRequest{Account: "rui"}, nil)
	wantCode(t, err, authn.CodePossiblyCloned)
}

// A software key that looks like hardware (exposed through uhid) is still
// known by its credential's AAGUID, and refused while software keys are off.
func TestFIDOSoftwareCredentialRefusedWhenOff(t *testing.T) {
	on := newFIDOFixture(t, authn.FIDOPolicy{AllowSoftwareKeys: true})
	k := attachKey(t, "k", emu.PresenceAuto)
	k.hardware = true
	on.ring.set(k)
	d, err := on.svc.EnrollFIDO(on.ctx, root, "sam", authn.FIDOEnrollRequest{}, nil)
	if err != nil || !d.FIDO.Software {
		t.Fatalf("enroll: %+v %v", d, err)
	}
	off := authn.NewService(on.st, authn.Config{FIDO: authn.FIDOPolicy{RPID: "pam://testhost", SoftwareAAGUIDs: [][16]byte{emu.AAGUID}}, Keys: on.ring})
	_, err = off.Authenticate(on.ctx, root, authn.AuthRequest{Account: "sam"}, nil)
	wantCode(t, err, authn.CodeEmulatedKeyRefused)
}

func TestFIDOTrustedAttestationPolicy(t *testing.T) {
	k := attachKey(t, "k", emu.PresenceAuto)
	other := x509.NewCertPool()
	otherKey := attachKey(t, "other", emu.PresenceAuto)
	other.AddCert(otherKey.emu.CACertificate())
	strict := newFIDOFixture(t, authn.FIDOPolicy{AllowSoftwareKeys: true,
		Attestation: fido2.Policy{Mode: fido2.ModeTrusted, Roots: other, Now: time.Now}})
	strict.ring.set(k)
	_, err := strict.svc.EnrollFIDO(strict.ctx, root, "tia", authn.FIDOEnrollRequest{}, nil)
	wantCode(t, err, authn.CodeAttestationRefused)
	mine := x509.NewCertPool()
	mine.AddCert(k.emu.CACertificate())
	trusting := newFIDOFixture(t, authn.FIDOPolicy{AllowSoftwareKeys: true,
		Attestation: fido2.Policy{Mode: fido2.ModeTrusted, Roots: mine, Now: time.Now}})
	trusting.ring.set(k)
	if _, err := trusting.svc.EnrollFIDO(trusting.ctx, root, "tia", authn.FIDOEnrollRequest{}, nil); err != nil {
		t.Fatalf("trusted root: %v", err)
	}
}

// python3-fido2 (Debian) verifies a stored registration and a sign-in
// from the bytes mfad keeps and the key sent.
func TestFIDOStoredBytesVerifyWithPythonFIDO2(t *testing.T) {
	py := ""
	// Debian's python3-fido2 lives under /usr/bin/python3; a python3 earlier
	// in PATH (pyenv) may not have it.
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import fido2").Run() == nil {
			py = p
			break
		}
	}
	if py == "" {
		if os.Getenv("MFAD_REQUIRE_TOOLS") == "1" {
			t.Fatal("python3-fido2 is not installed (make deps installs it)")
		}
		t.Skip("python3-fido2 is not installed")
	}
	f := newFIDOFixture(t, authn.FIDOPolicy{AllowSoftwareKeys: true})
	k := attachKey(t, "k", emu.PresenceAuto)
	f.ring.set(k)
	d, err := f.svc.EnrollFIDO(f.ctx, root, "uma", authn.FIDOEnrollRequest{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Authenticate(f.ctx, root, authn.AuthRequest{Account: "uma"}, nil); err != nil {
		t.Fatal(err)
	}
	stored, err := f.svc.Device("uma", d.ID)
	if err != nil {
		t.Fatal(err)
	}
	last := stored.FIDO.LastAssertion
	if last == nil {
		t.Fatal("the sign-in's signed bytes were not stored")
	}
	dir := t.TempDir()
	files := map[string][]byte{
		"attestation.cbor": stored.FIDO.AttestationObject,
		"create.json":      stored.FIDO.ClientDataJSON,
		"ca.der":           k.emu.CACertificate().Raw,
		"get.authdata":     last.AuthData,
		"get.sig":          last.Signature,
		"get.json":         last.ClientDataJSON,
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(py, filepath.Join("..", "hw", "emu", "testdata", "verify.py"), dir, hex.EncodeToString(emu.AAGUID[:])).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("python-fido2 refused mfad's stored bytes: %v\n%s", err, out)
	}
	// And a flipped signature bit is refused by it too.
	sig := append([]byte(nil), last.Signature...)
	sig[len(sig)-1] ^= 1
	os.WriteFile(filepath.Join(dir, "get.sig"), sig, 0o600)
	if err := exec.Command(py, filepath.Join("..", "hw", "emu", "testdata", "verify.py"), dir, hex.EncodeToString(emu.AAGUID[:])).Run(); err == nil {
		t.Fatal("python-fido2 accepted a corrupted signature: the check is not real")
	}
}
