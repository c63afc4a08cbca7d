package authn_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/hw/ctap2"
	"github.com/mfad/mfad/hw/emu"
)

// pipelineFixture has every way in: a clock, a security key, and e-mail
// and phone channels for owner recovery.
type pipelineFixture struct {
	*fixture
	ring *ring
	box  *outbox
	key  *softKey
}

func newPipelineFixture(t *testing.T, p authn.Policy) *pipelineFixture {
	f := newFixture(t)
	r := &ring{changed: make(chan struct{})}
	box := &outbox{}
	k := attachKey(t, "k1", emu.PresenceAuto)
	r.set(k)
	f.svc = authn.NewService(f.st, authn.Config{Now: f.clk.Now, Policy: p, Mailer: box, Phone: box, Keys: r,
		FIDO: authn.FIDOPolicy{RPID: "pam://testhost", AllowSoftwareKeys: true, SoftwareAAGUIDs: [][16]byte{emu.AAGUID}, TouchTimeout: 5 * time.Second}})
	return &pipelineFixture{fixture: f, ring: r, box: box, key: k}
}

// owner creates an owner account with verified contacts.
func (f *pipelineFixture) owner(t *testing.T, name string) {
	t.Helper()
	if _, err := f.svc.CreateAccount(f.ctx, f.admin, authn.NewAccount{Name: name, Kind: authn.KindOwner,
		Email: name + "@example.org", EmailVerified: true, Phone: "+1 555 0100", PhoneVerified: true}); err != nil {
		t.Fatal(err)
	}
}

// recover runs an owner's recovery to its token.
func (f *pipelineFixture) recover(t *testing.T, actor authn.Actor, name string) string {
	t.Helper()
	r, err := f.svc.StartRecovery(f.ctx, actor, name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.VerifyRecoveryCode(f.ctx, actor, r.ID, authn.StageEmail, f.box.lastMailCode()); err != nil {
		t.Fatal(err)
	}
	st, err := f.svc.VerifyRecoveryCode(f.ctx, actor, r.ID, authn.StagePhone, f.box.codes[len(f.box.codes)-1])
	if err != nil {
		t.Fatal(err)
	}
	return st.Token
}

// audits returns the audit entries of account with action.
func (f *fixture) audits(t *testing.T, account, action string) []authn.AuditEvent {
	t.Helper()
	all, err := f.svc.Audit(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []authn.AuditEvent
	for _, e := range all {
		if e.Account == account && e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

// TestSignInEveryMethodEveryState runs every way in against every state
// an account and its devices can be in.
func TestSignInEveryMethodEveryState(t *testing.T) {
	const (
		ok       = ""
		none     = authn.CodeNoActiveDevice
		disabled = authn.CodeAccountDisabled
		locked   = authn.CodeLockedOut
		cloned   = authn.CodePossiblyCloned
	)
	methods := []string{"code", "code+next", "temporary code", "recovery token", "security key"}
	states := []struct {
		name string
		want []string // per method
	}{
		{"active", []string{ok, ok, ok, ok, ok}},
		{"pending", []string{none, none, ok, ok, none}},
		{"deactivated", []string{none, none, ok, ok, none}},
		{"lost", []string{none, none, ok, ok, none}},
		{"possibly cloned", []string{ok, ok, ok, ok, cloned}},
		{"disabled", []string{disabled, disabled, disabled, disabled, disabled}},
		{"locked", []string{locked, locked, locked, locked, locked}},
		{"recovery pending", []string{none, none, ok, ok, none}},
	}
	f := newPipelineFixture(t, authn.Policy{})
	for si, st := range states {
		for mi, method := range methods {
			name := fmt.Sprintf("s%dm%d", si, mi)
			t.Run(st.name+"/"+method, func(t *testing.T) {
				actor := authn.Actor{UID: uint32(2000 + si*10 + mi), Name: name}
				f.owner(t, name)
				e, err := f.svc.Enroll(f.ctx, f.admin, name, authn.EnrollRequest{Type: authn.DeviceTOTP})
				if err != nil {
					t.Fatal(err)
				}
				var otpID, keyID string
				if st.name != "pending" {
					d, err := f.svc.Activate(f.ctx, f.admin, name, e.Device.ID, authn.CodePair{Code1: f.code(e.Secret, -1), Code2: f.code(e.Secret, 0)})
					if err != nil {
						t.Fatal(err)
					}
					k, err := f.svc.EnrollFIDO(f.ctx, f.admin, name, authn.FIDOEnrollRequest{}, nil)
					if err != nil {
						t.Fatal(err)
					}
					otpID, keyID = d.ID, k.ID
				}
				tc, err := f.svc.IssueTemporaryCode(f.ctx, f.admin, name, 0)
				if err != nil {
					t.Fatal(err)
				}
				token := f.recover(t, actor, name)

				switch st.name {
				case "deactivated":
					for _, id := range []string{otpID, keyID} {
						if _, err := f.svc.Deactivate(f.ctx, f.admin, name, id); err != nil {
							t.Fatal(err)
						}
					}
				case "lost":
					for _, id := range []string{otpID, keyID} {
						if _, err := f.svc.ReportLost(f.ctx, actor, name, id); err != nil {
							t.Fatal(err)
						}
					}
				case "possibly cloned":
					f.edit(t, func(tx authn.Tx) error {
						d, err := tx.Device(name, keyID)
						if err != nil {
							return err
						}
						d.FIDO.PossiblyCloned = true
						return tx.PutDevice(d)
					})
				case "disabled":
					flags := []string{authn.FlagDisabled}
					if _, err := f.svc.PatchAccount(f.ctx, f.admin, name, authn.AccountPatch{Flags: &flags}); err != nil {
						t.Fatal(err)
					}
				case "locked":
					f.edit(t, func(tx authn.Tx) error {
						a, err := tx.Account(name)
						if err != nil {
							return err
						}
						a.FailedAttempts, a.LockedUntil = 10, f.clk.Now().Add(time.Hour)
						return tx.PutAccount(a)
					})
				case "recovery pending":
					for _, id := range []string{otpID, keyID} {
						if _, err := f.svc.Deactivate(f.ctx, f.admin, name, id); err != nil {
							t.Fatal(err)
						}
						if err := f.svc.Delete(f.ctx, f.admin, name, id, authn.DeleteOptions{}); err != nil {
							t.Fatal(err)
						}
					}
				}
				f.clk.Add(30 * time.Second) // a fresh step for the codes

				req := authn.AuthRequest{Account: name}
				switch method {
				case "code":
					req.Code = f.code(e.Secret, 0)
				case "code+next":
					req.Code, req.NextCode = f.code(e.Secret, 40), f.code(e.Secret, 41)
				case "temporary code":
					req.Code = tc.Code
				case "recovery token":
					req.RecoveryToken = token
				}
				res, err := f.svc.Authenticate(f.ctx, actor, req, nil)
				want := st.want[mi]
				if want == ok {
					if err != nil || res.StepUpToken == "" {
						t.Fatalf("want a sign-in, got %+v %v", res, err)
					}
					return
				}
				wantCode(t, err, want)
				if res != nil {
					t.Fatalf("a refusal with a result: %+v", res)
				}
			})
		}
	}
}

// edit changes records behind the service's back (states that take many
// steps to reach).
func (f *fixture) edit(t *testing.T, fn func(authn.Tx) error) {
	t.Helper()
	if err := f.st.Update(f.ctx, fn); err != nil {
		t.Fatal(err)
	}
}

// TestSignInSingleCodeIsNoOracle: a code outside the verification window
// is refused exactly like a wrong one; drift is learnt only from two
// consecutive codes.
func TestSignInSingleCodeIsNoOracle(t *testing.T) {
	f := newPipelineFixture(t, authn.Policy{})
	_, secret := f.enrollActive(t, f.alice, "alice")
	f.clk.Add(30 * time.Second)
	future, wrong := f.code(secret, 300), "000000"
	if future == wrong || future == f.code(secret, 0) {
		t.Skip("the codes collide at this step")
	}
	var answers []*authn.Error
	for _, code := range []string{future, wrong} {
		_, err := f.svc.Authenticate(f.ctx, f.alice, authn.AuthRequest{Account: "alice", Code: code}, nil)
		e := wantCode(t, err, authn.CodeInvalidCode)
		answers = append(answers, e)
	}
	if a, b := answers[0], answers[1]; a.Detail != b.Detail || a.Hint != b.Hint || a.Extra != nil || b.Extra != nil {
		t.Errorf("a future code is answered differently from a wrong one: %+v vs %+v", a, b)
	}
	for _, e := range f.audits(t, "alice", authn.ActAuthenticate) {
		if e.Outcome == "fail" && e.Detail != "invalid code" {
			t.Errorf("audit says more of a refused code: %+v", e)
		}
	}
	// The future code, when its time comes, still signs in.
	f.clk.Add(300 * 30 * time.Second)
	f.svc.PatchAccount(f.ctx, f.admin, "alice", authn.AccountPatch{Unlock: true})
	if _, err := f.svc.Authenticate(f.ctx, f.alice, authn.AuthRequest{Account: "alice", Code: future}, nil); err != nil {
		t.Fatal(err)
	}

	// The device's clock runs 20 minutes fast: code and next code sign in
	// and teach the drift; afterwards a miss hints at a resync.
	f.clk.Add(30 * time.Second)
	res, err := f.svc.Authenticate(f.ctx, f.alice, authn.AuthRequest{Account: "alice", Code: f.code(secret, 40), NextCode: f.code(secret, 41)}, nil)
	if err != nil || res.Device.OTP.Drift != 41 {
		t.Fatalf("code and next code: %+v %v", res, err)
	}
	if len(f.audits(t, "alice", authn.ActDeviceResync)) != 1 {
		t.Error("the resync at sign-in is not audited")
	}
	_, err = f.svc.Authenticate(f.ctx, f.alice, authn.AuthRequest{Account: "alice", Code: wrong}, nil)
	if e := wantCode(t, err, authn.CodeInvalidCode); e.Hint != authn.HintResync {
		t.Errorf("a drifted device's miss has hint %q", e.Hint)
	}
	// A random pair is refused and spends the resync budget: five per hour.
	for i := range 6 {
		_, err := f.svc.Authenticate(f.ctx, f.alice, authn.AuthRequest{Account: "alice", Code: "111111", NextCode: "222222"}, nil)
		want := authn.CodeInvalidCode
		if i == 5 {
			want = authn.CodeRetryLater
		}
		if e := authn.AsError(err); e.Code != want || (i == 5 && !strings.Contains(e.Detail, "resync attempts")) {
			t.Fatalf("pair %d: %v, want %s", i, err, want)
		}
		f.clk.Add(5 * time.Minute) // past the account's back-off
	}
}

// TestSignInConcurrentGuessesStayWithinThePolicy: 32 concurrent attempts
// (31 wrong codes and the right one), 20 times: never more wrong codes
// compared than MaxFailures, never a success once the account must wait,
// and the failure count is what the audit log says.
func TestSignInConcurrentGuessesStayWithinThePolicy(t *testing.T) {
	f := newPipelineFixture(t, authn.Policy{})
	_, secret := f.enrollActive(t, f.alice, "alice")
	max := authn.DefaultPolicy().MaxFailures
	for round := range 20 {
		f.clk.Add(time.Minute)
		if _, err := f.svc.PatchAccount(f.ctx, f.admin, "alice", authn.AccountPatch{Unlock: true}); err != nil {
			t.Fatal(err)
		}
		right := f.code(secret, 0)
		before := len(f.audits(t, "alice", authn.ActAuthenticate))
		var wg sync.WaitGroup
		for i := range 32 {
			code := fmt.Sprintf("%06d", (round*32+i)%1_000_000)
			if i == 16 {
				code = right
			} else if code == right {
				code = "9" + code[1:]
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				f.svc.Authenticate(f.ctx, f.alice, authn.AuthRequest{Account: "alice", Code: code}, nil)
			}()
		}
		wg.Wait()
		entries := f.audits(t, "alice", authn.ActAuthenticate)[before:]
		compared, failures := 0, 0
		for _, e := range entries {
			switch {
			case e.Outcome == "ok":
				if failures >= max {
					t.Fatalf("round %d: a success after %d failures (in back-off)", round, failures)
				}
				compared++
				failures = 0
			case e.Detail == "invalid code":
				compared++
				if failures++; failures > max {
					t.Fatalf("round %d: %d wrong codes compared in a row, the policy allows %d", round, failures, max)
				}
			}
		}
		if compared > 2*max+1 {
			t.Fatalf("round %d: %d codes compared", round, compared)
		}
		a, _ := f.svc.Account("alice")
		if a.FailedAttempts != failures {
			t.Fatalf("round %d: failed_attempts %d, audit log says %d", round, a.FailedAttempts, failures)
		}
	}
}

// TestRecoveryCodeGuessesStopAtTheLimit: 32 concurrent wrong e-mail codes
// compare exactly RecoveryAttempts of them.
func TestRecoveryCodeGuessesStopAtTheLimit(t *testing.T) {
	f := newPipelineFixture(t, authn.Policy{MaxFailures: 100, LockoutAfter: 200})
	for round := range 20 {
		name := fmt.Sprintf("own%d", round)
		f.owner(t, name)
		actor := authn.Actor{UID: uint32(3000 + round), Name: name}
		r, err := f.svc.StartRecovery(f.ctx, actor, name)
		if err != nil {
			t.Fatal(err)
		}
		right := f.box.lastMailCode()
		var wg sync.WaitGroup
		answers := make([]string, 32)
		for i := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code := fmt.Sprintf("%08d", i)
				if code == right {
					code = "99999999"
				}
				_, err := f.svc.VerifyRecoveryCode(f.ctx, actor, r.ID, authn.StageEmail, code)
				answers[i] = authn.AsError(err).Code
			}()
		}
		wg.Wait()
		refused := 0
		for _, e := range f.audits(t, name, authn.ActAuthenticate) {
			if e.Detail == "recovery email code refused" {
				refused++
			}
		}
		if want := authn.DefaultPolicy().RecoveryAttempts; refused != want {
			t.Fatalf("round %d: %d codes compared, want %d (answers %v)", round, refused, want, answers)
		}
		// The recovery is over: the right code no longer works.
		_, err = f.svc.VerifyRecoveryCode(f.ctx, actor, r.ID, authn.StageEmail, right)
		wantCode(t, err, authn.CodeNotFound)
	}
}

// lostDuringTouch is a key whose touch takes long enough for the device
// to be reported lost meanwhile.
type lostDuringTouch struct {
	authn.SecurityKey
	meanwhile func()
}

func (k lostDuringTouch) GetAssertion(ctx context.Context, p authn.GetAssertionParams) ([]*ctap2.GetAssertionResponse, error) {
	k.meanwhile()
	return k.SecurityKey.GetAssertion(ctx, p)
}

func TestSignInKeyReportedLostDuringTheTouch(t *testing.T) {
	f := newPipelineFixture(t, authn.Policy{})
	d, err := f.svc.EnrollFIDO(f.ctx, f.admin, "alice", authn.FIDOEnrollRequest{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.ring.set(lostDuringTouch{SecurityKey: f.key, meanwhile: func() {
		if _, err := f.svc.ReportLost(f.ctx, f.admin, "alice", d.ID); err != nil {
			t.Error(err)
		}
	}})
	res, err := f.svc.Authenticate(f.ctx, f.alice, authn.AuthRequest{Account: "alice"}, nil)
	wantCode(t, err, authn.CodeInvalidCode)
	if res != nil {
		t.Fatalf("a lost key signed in: %+v", res)
	}
	if a, _ := f.svc.Account("alice"); a.FailedAttempts != 1 {
		t.Errorf("the lost key's use is not counted: %d", a.FailedAttempts)
	}
}

// TestDisabledAccountEverywhere: a disabled account cannot start a
// recovery, change its contacts or devices with a step-up, or sign in.
func TestDisabledAccountEverywhere(t *testing.T) {
	f := newPipelineFixture(t, authn.Policy{})
	f.owner(t, "dora")
	dora := authn.Actor{UID: 1700, Name: "dora"}
	_, secret := f.enrollActive(t, f.admin, "dora")
	f.clk.Add(30 * time.Second)
	res, err := f.svc.Authenticate(f.ctx, dora, authn.AuthRequest{Account: "dora", Code: f.code(secret, 0)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	flags := []string{authn.FlagDisabled}
	if _, err := f.svc.PatchAccount(f.ctx, f.admin, "dora", authn.AccountPatch{Flags: &flags}); err != nil {
		t.Fatal(err)
	}
	dora.StepUp = res.StepUpToken
	_, err = f.svc.StartRecovery(f.ctx, dora, "dora")
	wantCode(t, err, authn.CodeAccountDisabled)
	_, err = f.svc.Enroll(f.ctx, dora, "dora", authn.EnrollRequest{Type: authn.DeviceTOTP})
	wantCode(t, err, authn.CodeAccountDisabled)
	_, err = f.svc.RequestContactChange(f.ctx, dora, "dora", authn.ContactChange{Email: "new@example.org"})
	wantCode(t, err, authn.CodeAccountDisabled)
	_, err = f.svc.EnrollFIDO(f.ctx, dora, "dora", authn.FIDOEnrollRequest{}, nil)
	wantCode(t, err, authn.CodeAccountDisabled)
	if !errors.Is(err, &authn.Error{Code: authn.CodeAccountDisabled}) {
		t.Fatal("errors.Is does not match the code")
	}
}

// TestScratchCodesSignInOnce: google-authenticator's scratch codes come
// with the imported device; each signs in once, as a temporary code that
// does not expire, also once the device is gone.
func TestScratchCodesSignInOnce(t *testing.T) {
	f := newPipelineFixture(t, authn.Policy{})
	if _, err := f.svc.CreateAccount(f.ctx, f.admin, authn.NewAccount{Name: "alice"}); err != nil {
		t.Fatal(err)
	}
	secret := "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	_, err := f.svc.ImportOTP(f.ctx, f.admin, "alice", authn.OTPImport{Secret: secret, ScratchCodes: []string{"12345678", "87654321", "1234"}})
	wantCode(t, err, authn.CodeInvalidRequest)
	d, err := f.svc.ImportOTP(f.ctx, f.admin, "alice", authn.OTPImport{Secret: secret, ScratchCodes: []string{"12345678", "87654321"}, Source: "google-authenticator"})
	if err != nil {
		t.Fatal(err)
	}
	f.clk.Add(400 * 24 * time.Hour) // no expiry
	res, err := f.svc.Authenticate(f.ctx, f.alice, authn.AuthRequest{Account: "alice", Code: "12345678"}, nil)
	if err != nil || res.Method != authn.SourceTemporaryCode || res.StepUpToken == "" {
		t.Fatalf("scratch code: %+v %v", res, err)
	}
	_, err = f.svc.Authenticate(f.ctx, f.alice, authn.AuthRequest{Account: "alice", Code: "12345678"}, nil)
	wantCode(t, err, authn.CodeInvalidCode)
	// With the device gone, the other one still signs in once.
	if _, err := f.svc.Deactivate(f.ctx, f.admin, "alice", d.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Authenticate(f.ctx, f.alice, authn.AuthRequest{Account: "alice", Code: "87654321"}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.Authenticate(f.ctx, f.alice, authn.AuthRequest{Account: "alice", Code: "87654321"}, nil)
	wantCode(t, err, authn.CodeNoActiveDevice)
	for _, e := range f.audits(t, "alice", authn.ActTempCodeUsed) {
		if strings.Contains(e.Detail, "12345678") || strings.Contains(e.Detail, "87654321") {
			t.Errorf("the audit log holds a scratch code: %+v", e)
		}
	}
	if n := len(f.audits(t, "alice", authn.ActTempCodeUsed)); n != 2 {
		t.Errorf("%d scratch code sign-ins audited, want 2", n)
	}

	// A disabled account's scratch code does not sign in, and is not spent.
	if _, err := f.svc.CreateAccount(f.ctx, f.admin, authn.NewAccount{Name: "bob"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.ImportOTP(f.ctx, f.admin, "bob", authn.OTPImport{Secret: secret, ScratchCodes: []string{"11223344"}}); err != nil {
		t.Fatal(err)
	}
	flags := []string{authn.FlagDisabled}
	if _, err := f.svc.PatchAccount(f.ctx, f.admin, "bob", authn.AccountPatch{Flags: &flags}); err != nil {
		t.Fatal(err)
	}
	bob := authn.Actor{UID: 1001, Name: "bob"}
	_, err = f.svc.Authenticate(f.ctx, bob, authn.AuthRequest{Account: "bob", Code: "11223344"}, nil)
	wantCode(t, err, authn.CodeAccountDisabled)
	if a, _ := f.svc.Account("bob"); len(a.ScratchCodes) != 1 {
		t.Errorf("a refused scratch code was spent: %d left", len(a.ScratchCodes))
	}
}
