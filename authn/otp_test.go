package authn_test

import (
	"bytes"
	"context"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/authn/store"
	"github.com/mfad/mfad/authn/totp"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	svc   *authn.Service
	st    *store.Store
	clk   *clock
	dir   string
	ctx   context.Context
	admin authn.Actor
	alice authn.Actor
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(dir, bytes.Repeat([]byte{3}, store.KeySize), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := &clock{t: time.Unix(1_800_000_000, 0).UTC()}
	return &fixture{
		st:  st,
		svc: authn.NewService(st, authn.Config{Now: clk.Now}),
		clk: clk, dir: dir, ctx: context.Background(),
		admin: authn.Actor{UID: 0, Name: "root", Admin: true},
		alice: authn.Actor{UID: 1000, Name: "alice"},
	}
}

func wantCode(t *testing.T, err error, code string) *authn.Error {
	t.Helper()
	var e *authn.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("err = %v, want code %s", err, code)
	}
	return e
}

// code is what a device with secret shows at the host's step + offset.
func (f *fixture) code(secret []byte, offset int64) string {
	step := totp.StepAt(f.clk.Now(), 30*time.Second)
	return totp.Code(secret, totp.DefaultParams, uint64(int64(step)+offset))
}

// enrollActive enrolls and activates a TOTP device for actor on account.
func (f *fixture) enrollActive(t *testing.T, actor authn.Actor, account string) (*authn.Device, []byte) {
	t.Helper()
	e, err := f.svc.Enroll(f.ctx, actor, account, authn.EnrollRequest{Type: authn.DeviceTOTP, Label: "phone"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(e.URI, "otpauth://totp/") || len(e.QRPNG) == 0 || len(e.Secret) < 16 {
		t.Fatalf("enrollment lacks URI, QR or secret: %+v", e)
	}
	d, err := f.svc.Activate(f.ctx, actor, account, e.Device.ID, authn.CodePair{Code1: f.code(e.Secret, -1), Code2: f.code(e.Secret, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if d.State != authn.StateActive || d.OTP.Drift != 0 {
		t.Fatalf("activated device: %+v", d)
	}
	return d, e.Secret
}

func TestTOTPLifecycle(t *testing.T) {
	f := newFixture(t)
	d, secret := f.enrollActive(t, f.alice, "alice")
	a, err := f.svc.Account("alice")
	if err != nil || a.Kind != authn.KindMember {
		t.Fatalf("bootstrap account: %+v %v", a, err)
	}

	// Activation consumed code2's step: the same code cannot sign in, and
	// is answered as what it is (not counted as a guess).
	_, err = f.svc.Authenticate(f.ctx, f.alice, authn.AuthRequest{Account: "alice", Code: f.code(secret, 0)}, nil)
	wantCode(t, err, authn.CodeCodeAlreadyUsed)

	f.clk.Add(30 * time.Second)
	res, err := f.svc.Authenticate(f.ctx, f.alice, authn.AuthRequest{Account: "alice", Code: f.code(secret, 0)}, nil)
	if err != nil || res.Device.ID != d.ID || res.StepUpToken == "" {
		t.Fatalf("authenticate: %+v %v", res, err)
	}
	// Replay of the accepted code, and of the step before it, is refused.
	_, err = f.svc.Authenticate(f.ctx, f.alice, authn.AuthRequest{Account: "alice", Code: f.code(secret, 0)}, nil)
	wantCode(t, err, authn.CodeCodeAlreadyUsed)
	_, err = f.svc.Authenticate(f.ctx, f.alice, authn.AuthRequest{Account: "alice", Code: f.code(secret, -1)}, nil)
	wantCode(t, err, authn.CodeCodeAlreadyUsed)
	if a, _ := f.svc.Account("alice"); a.FailedAttempts != 0 {
		t.Errorf("replays counted as %d failed attempts", a.FailedAttempts)
	}

	// The device's clock runs 10 minutes fast: its codes are refused like
	// any wrong code, with nothing said of where they would match.
	f.clk.Add(time.Minute)
	fast := int64(20)
	e := wantCode(t, func() error {
		_, err := f.svc.Authenticate(f.ctx, f.alice, authn.AuthRequest{Account: "alice", Code: f.code(secret, fast)}, nil)
		return err
	}(), authn.CodeInvalidCode)
	if e.Extra != nil || e.Hint != "" {
		t.Errorf("a single code's refusal says more than no: extra %v hint %q", e.Extra, e.Hint)
	}
	d2, err := f.svc.Resync(f.ctx, f.alice, "alice", d.ID, authn.CodePair{Code1: f.code(secret, fast-1), Code2: f.code(secret, fast)})
	if err != nil || d2.OTP.Drift != fast {
		t.Fatalf("resync: %+v %v", d2, err)
	}
	// Codes used for the resync are spent; the next one signs in.
	_, err = f.svc.Authenticate(f.ctx, f.alice, authn.AuthRequest{Account: "alice", Code: f.code(secret, fast)}, nil)
	wantCode(t, err, authn.CodeCodeAlreadyUsed)
	f.clk.Add(30 * time.Second)
	if _, err := f.svc.Authenticate(f.ctx, f.alice, authn.AuthRequest{Account: "alice", Code: f.code(secret, fast)}, nil); err != nil {
		t.Fatalf("after resync: %v", err)
	}
	// The drift is learned on each success: a clock one more step fast is still accepted, then re-centred.
	f.clk.Add(30 * time.Second)
	if _, err := f.svc.Authenticate(f.ctx, f.alice, authn.AuthRequest{Account: "alice", Code: f.code(secret, fast+1)}, nil); err != nil {
		t.Fatalf("drift +1: %v", err)
	}
	if dev, _ := f.svc.Device("alice", d.ID); dev.OTP.Drift != fast+1 || dev.Secret != nil {
		t.Errorf("learned drift %d (secret exposed: %v)", dev.OTP.Drift, dev.Secret != nil)
	}
}

func TestActivationSearchesTwoConsecutiveCodes(t *testing.T) {
	f := newFixture(t)
	e, err := f.svc.Enroll(f.ctx, f.alice, "alice", authn.EnrollRequest{Type: authn.DeviceTOTP})
	if err != nil {
		t.Fatal(err)
	}
	id := e.Device.ID
	// Not consecutive.
	_, err = f.svc.Activate(f.ctx, f.alice, "alice", id, authn.CodePair{Code1: f.code(e.Secret, -2), Code2: f.code(e.Secret, 0)})
	wantCode(t, err, authn.CodeInvalidCode)
	// Consecutive but 30 steps (15 minutes) off: the answer says how far.
	off := wantCode(t, func() error {
		_, err := f.svc.Activate(f.ctx, f.alice, "alice", id, authn.CodePair{Code1: f.code(e.Secret, 29), Code2: f.code(e.Secret, 30)})
		return err
	}(), authn.CodeClockOff)
	if off.Extra["drift_steps"] != int64(30) {
		t.Errorf("clock-off detail: %v", off.Extra)
	}
	// Within ±10 steps: accepted, drift recorded.
	d, err := f.svc.Activate(f.ctx, f.alice, "alice", id, authn.CodePair{Code1: f.code(e.Secret, 6), Code2: f.code(e.Secret, 7)})
	if err != nil || d.OTP.Drift != 7 {
		t.Fatalf("activate with drift: %+v %v", d, err)
	}
	_, err = f.svc.Activate(f.ctx, f.alice, "alice", id, authn.CodePair{Code1: "000000", Code2: "111111"})
	wantCode(t, err, authn.CodeDeviceNotPending)
}

func TestPendingEnrollmentExpires(t *testing.T) {
	f := newFixture(t)
	e, err := f.svc.Enroll(f.ctx, f.alice, "alice", authn.EnrollRequest{Type: authn.DeviceTOTP})
	if err != nil {
		t.Fatal(err)
	}
	f.clk.Add(11 * time.Minute)
	_, err = f.svc.Activate(f.ctx, f.alice, "alice", e.Device.ID, authn.CodePair{Code1: f.code(e.Secret, -1), Code2: f.code(e.Secret, 0)})
	wantCode(t, err, authn.CodeDeviceExpired)
	if devs, _ := f.svc.Devices("alice"); len(devs) != 0 {
		t.Errorf("expired enrollment still listed: %+v", devs)
	}
}

func TestStepUpGuardsChanges(t *testing.T) {
	f := newFixture(t)
	_, secret := f.enrollActive(t, f.alice, "alice")
	// A second device without step-up is refused.
	_, err := f.svc.Enroll(f.ctx, f.alice, "alice", authn.EnrollRequest{Type: authn.DeviceTOTP})
	wantCode(t, err, authn.CodeStepUpRequired)
	f.clk.Add(30 * time.Second)
	res, err := f.svc.Authenticate(f.ctx, f.alice, authn.AuthRequest{Account: "alice", Code: f.code(secret, 0)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	withToken := f.alice
	withToken.StepUp = res.StepUpToken
	if _, err := f.svc.Enroll(f.ctx, withToken, "alice", authn.EnrollRequest{Type: authn.DeviceTOTP}); err != nil {
		t.Fatalf("with step-up: %v", err)
	}
	// The same token presented by another uid, or for another account, is refused.
	mallory := authn.Actor{UID: 1001, Name: "mallory", StepUp: res.StepUpToken}
	_, err = f.svc.Enroll(f.ctx, mallory, "alice", authn.EnrollRequest{Type: authn.DeviceTOTP})
	wantCode(t, err, authn.CodeStepUpRequired)
	f.enrollActive(t, authn.Actor{UID: 1002, Name: "bob"}, "bob")
	bobWithAlicesToken := authn.Actor{UID: 1000, Name: "alice", StepUp: res.StepUpToken}
	_, err = f.svc.Enroll(f.ctx, bobWithAlicesToken, "bob", authn.EnrollRequest{Type: authn.DeviceTOTP})
	wantCode(t, err, authn.CodeStepUpRequired)
	// It expires after five minutes.
	f.clk.Add(5*time.Minute + time.Second)
	_, err = f.svc.Enroll(f.ctx, withToken, "alice", authn.EnrollRequest{Type: authn.DeviceTOTP})
	wantCode(t, err, authn.CodeStepUpRequired)
	// Admins need none.
	if _, err := f.svc.Enroll(f.ctx, f.admin, "alice", authn.EnrollRequest{Type: authn.DeviceTOTP}); err != nil {
		t.Fatalf("admin: %v", err)
	}
}

func TestEightDevicesOfAnyState(t *testing.T) {
	f := newFixture(t)
	f.enrollActive(t, f.admin, "carol")
	for i := 0; i < 7; i++ {
		if _, err := f.svc.Enroll(f.ctx, f.admin, "carol", authn.EnrollRequest{Type: authn.DeviceTOTP}); err != nil {
			t.Fatalf("device %d: %v", i+2, err)
		}
	}
	_, err := f.svc.Enroll(f.ctx, f.admin, "carol", authn.EnrollRequest{Type: authn.DeviceTOTP})
	wantCode(t, err, authn.CodeDeviceLimitReached)
	// Expired pending enrollments free their slots.
	f.clk.Add(11 * time.Minute)
	if _, err := f.svc.Enroll(f.ctx, f.admin, "carol", authn.EnrollRequest{Type: authn.DeviceTOTP}); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
}

func TestBruteForceThrottleAndLockout(t *testing.T) {
	f := newFixture(t)
	_, secret := f.enrollActive(t, f.alice, "alice")
	wrong := func() error {
		_, err := f.svc.Authenticate(f.ctx, f.alice, authn.AuthRequest{Account: "alice", Code: "000000"}, nil)
		return err
	}
	for i := 0; i < 5; i++ {
		wantCode(t, wrong(), authn.CodeInvalidCode)
	}
	// Past five, each attempt is refused at once with a doubling retry_after,
	// even with the right code; the daemon never sleeps on a request.
	for n := 5; n < 9; n++ {
		e := wantCode(t, func() error {
			_, err := f.svc.Authenticate(f.ctx, f.alice, authn.AuthRequest{Account: "alice", Code: f.code(secret, 0)}, nil)
			return err
		}(), authn.CodeRetryLater)
		if want := time.Second << (n - 5); e.RetryAfter != want {
			t.Errorf("after %d failures retry_after = %v, want %v", n, e.RetryAfter, want)
		}
		f.clk.Add(e.RetryAfter)
		wantCode(t, wrong(), authn.CodeInvalidCode)
	}
	// The tenth failure locks the account.
	f.clk.Add(16 * time.Second)
	wantCode(t, wrong(), authn.CodeInvalidCode)
	e := wantCode(t, wrong(), authn.CodeLockedOut)
	if e.RetryAfter < 14*time.Minute {
		t.Errorf("lockout retry_after %v", e.RetryAfter)
	}
	acct, _ := f.svc.Account("alice")
	if acct.FailedAttempts != 10 || acct.LockedUntil.IsZero() {
		t.Fatalf("account after lockout: %+v", acct)
	}
	// An admin clears it; the right code then works.
	if _, err := f.svc.PatchAccount(f.ctx, f.admin, "alice", authn.AccountPatch{Unlock: true}); err != nil {
		t.Fatal(err)
	}
	f.clk.Add(30 * time.Second)
	if _, err := f.svc.Authenticate(f.ctx, f.alice, authn.AuthRequest{Account: "alice", Code: f.code(secret, 0)}, nil); err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	// The audit log has the failures and the lockout, never a code.
	events, _ := f.svc.Audit(0, 1000)
	var fails, locks int
	for _, ev := range events {
		if ev.Action == authn.ActAuthenticate && ev.Outcome == "fail" {
			fails++
		}
		if ev.Action == authn.ActLockout {
			locks++
		}
		if strings.Contains(ev.Detail, "000000") || strings.Contains(ev.Detail, f.code(secret, 0)) {
			t.Errorf("audit entry holds a code: %+v", ev)
		}
	}
	if fails < 10 || locks != 1 {
		t.Errorf("audit: %d failures, %d lockouts", fails, locks)
	}
}

func TestResyncBudgetAndCounting(t *testing.T) {
	f := newFixture(t)
	d, _ := f.enrollActive(t, f.alice, "alice")
	for i := 0; i < 5; i++ {
		f.clk.Add(10 * time.Minute) // stay clear of the account throttle
		_, err := f.svc.Resync(f.ctx, f.alice, "alice", d.ID, authn.CodePair{Code1: "123456", Code2: "654321"})
		if err == nil {
			t.Fatal("bogus resync accepted")
		}
	}
	f.clk.Add(time.Minute)
	_, err := f.svc.Resync(f.ctx, f.admin, "alice", d.ID, authn.CodePair{Code1: "123456", Code2: "654321"})
	wantCode(t, err, authn.CodeRetryLater)
}

func TestSecretsNeverInTheDatabaseFile(t *testing.T) {
	f := newFixture(t)
	_, secret := f.enrollActive(t, f.alice, "alice")
	b32 := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(secret)
	raw, err := os.ReadFile(filepath.Join(f.dir, store.DBFileName))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, secret) || bytes.Contains(raw, []byte(b32)) || bytes.Contains(raw, []byte(strings.ToLower(b32))) {
		t.Fatal("the TOTP secret is in the database file in the clear")
	}
}

func TestHostClockCheck(t *testing.T) {
	f := newFixture(t)
	if v := f.svc.ClockCheck(); v.HostClockSuspect {
		t.Fatal("suspect with no data")
	}
	for i := 0; i < 4; i++ {
		name := fmt.Sprintf("u%d", i)
		e, err := f.svc.Enroll(f.ctx, f.admin, name, authn.EnrollRequest{Type: authn.DeviceTOTP})
		if err != nil {
			t.Fatal(err)
		}
		// Every device is 4 steps (2 minutes) ahead of the host.
		if _, err := f.svc.Activate(f.ctx, f.admin, name, e.Device.ID, authn.CodePair{Code1: f.code(e.Secret, 3), Code2: f.code(e.Secret, 4)}); err != nil {
			t.Fatal(err)
		}
		f.clk.Add(30 * time.Second)
		if _, err := f.svc.Authenticate(f.ctx, f.admin, authn.AuthRequest{Account: name, Code: f.code(e.Secret, 4)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	v := f.svc.ClockCheck()
	if !v.HostClockSuspect || v.OffsetSeconds != 120 || v.Agreeing != 4 {
		t.Errorf("verdict %+v, want the host 120 s behind the devices", v)
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// TestConcurrentReplayAcceptsOnce: the same code sent by many callers at
// once signs in exactly once (the counter is checked and stored in the
// write transaction, whatever the matching outside it saw).
func TestConcurrentReplayAcceptsOnce(t *testing.T) {
	f := newFixture(t)
	_, secret := f.enrollActive(t, f.admin, "ann")
	code := f.code(secret, 1)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.svc.Authenticate(f.ctx, f.admin, authn.AuthRequest{Account: "ann", Code: code}, nil); err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("the same code signed in %d times, want once", ok)
	}
}
