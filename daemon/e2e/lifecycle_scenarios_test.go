package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mfad/mfad/daemon/notify/notifytest"
	"github.com/mfad/mfad/ipc/api"
)

// The seed's scenarios (lost, broken and replaced devices), each on the
// real daemon with software keys, a test SMTP server and a phone command
// that writes to a file. Scenario 1 (TOTP drift resolved by resync) is
// TestTOTPEndToEnd.

type world struct {
	t     *testing.T
	d     *daemon
	smtp  *notifytest.SMTPServer
	phone func() []notifytest.PhoneMessage
}

func newWorld(t *testing.T) *world {
	t.Helper()
	return newWorldWith(t, "")
}

// newWorldWith is newWorld with more settings in [recovery].
func newWorldWith(t *testing.T, recovery string) *world {
	t.Helper()
	needRoot(t)
	smtp := notifytest.StartSMTP(t)
	dir := t.TempDir()
	phonePath, read := notifytest.PhoneScript(t, dir)
	cfg := fmt.Sprintf(`admin_group = %q
[emulator]
enabled = true
[recovery]
%s
[recovery.email]
smtp = %q
from = "mfad@e2e.test"
[recovery.phone]
command = %q
`, adminGroup, recovery, smtp.Addr, phonePath)
	return &world{t: t, d: startDaemon(t, "", cfg), smtp: smtp, phone: read}
}

// as calls the API as a test user ("" is root) and decodes a 2xx answer into out.
func (w *world) as(who, method, path, body string, out any, hdr ...string) answer {
	w.t.Helper()
	a := callAs(w.t, who, w.d.sock, method, path, body, hdr...)
	if out != nil && a.Status/100 == 2 {
		json.Unmarshal(a.Body, out)
	}
	return a
}

func (w *world) must(a answer, status int) {
	w.t.Helper()
	if a.Status != status {
		w.t.Fatalf("got %d %s (%s), want %d", a.Status, a.Code, a.Body, status)
	}
}

func (w *world) refused(a answer, code string) {
	w.t.Helper()
	if a.Code != code {
		w.t.Fatalf("got %d %s (%s), want %s", a.Status, a.Code, a.Body, code)
	}
}

// enrollTOTP enrolls and activates a TOTP device for who on account
// (with the bearer token when given) and returns its id and secret.
func (w *world) enrollTOTP(who, account, bearer string) (string, string) {
	w.t.Helper()
	var hdr []string
	if bearer != "" {
		hdr = append(hdr, "Authorization: Bearer "+bearer)
	}
	var e api.Enrollment
	w.must(w.as(who, "POST", "/v1/accounts/"+account+"/devices", `{"type":"totp"}`, &e, hdr...), 201)
	awayFromStepEdge()
	now := time.Now()
	w.must(w.as(who, "POST", fmt.Sprintf("/v1/accounts/%s/devices/%s/activate", account, e.Device.ID),
		fmt.Sprintf(`{"code1":%q,"code2":%q}`, oathtool(w.t, e.Secret, now.Add(-30*time.Second)), oathtool(w.t, e.Secret, now)), nil), 200)
	return e.Device.ID, e.Secret
}

// signIn signs in with the code a TOTP device shows `ahead` steps from
// now (accepted within the ±1 step window; each step is used once) and
// returns the step-up token.
func (w *world) signIn(who, account, secret string, ahead int) string {
	w.t.Helper()
	awayFromStepEdge()
	code := oathtool(w.t, secret, time.Now().Add(time.Duration(ahead)*30*time.Second))
	var res api.AuthResult
	w.must(w.as(who, "POST", "/v1/authenticate", fmt.Sprintf(`{"account":%q,"code":%q}`, account, code), &res), 200)
	return res.StepUpToken
}

func (w *world) audit() string {
	out, _, _ := mfactl(w.t, w.d.sock, "audit", "--all")
	return out
}

// Scenario 2: an owner with two devices loses one, signs in with the
// other, and replaces the lost one with a device of another type.
func TestScenarioOwnerLosesOneOfTwo(t *testing.T) {
	w := newWorld(t)
	me := userSelf
	w.must(w.as("", "POST", "/v1/accounts", fmt.Sprintf(`{"name":%q,"kind":"owner","email":"a@e2e.test","email_verified":true,"phone":"+1 555 0100","phone_verified":true}`, me), nil), 201)
	lost, lostSecret := w.enrollTOTP(me, me, "")
	w.must(w.as("", "POST", "/v1/emulators", `{"name":"spare"}`, nil), 201)
	// A second device needs a step-up: the owner signs in with the first.
	w.refused(w.as(me, "POST", "/v1/accounts/"+me+"/devices", `{"type":"fido"}`, nil), api.CodeStepUpRequired)
	tok := w.signIn(me, me, lostSecret, 1)
	var enr api.Enrollment
	w.must(w.as(me, "POST", "/v1/accounts/"+me+"/devices", `{"type":"fido","label":"spare key"}`, &enr, "Authorization: Bearer "+tok), 200)
	key := enr.Device.ID
	// The phone with the TOTP app is lost: report it (no step-up needed).
	w.must(w.as(me, "POST", fmt.Sprintf("/v1/accounts/%s/devices/%s/report-lost", me, lost), "", nil), 200)
	// Sign in with the other device, the key.
	var res api.AuthResult
	w.must(w.as(me, "POST", "/v1/authenticate", fmt.Sprintf(`{"account":%q}`, me), &res), 200)
	if res.Device == nil || res.Device.ID != key {
		t.Fatalf("signed in with %+v, want the key", res.Device)
	}
	// Replace the lost TOTP app with a new security key (another type).
	w.must(w.as("", "POST", "/v1/emulators", `{"name":"new"}`, nil), 201)
	w.must(w.as("", "POST", "/v1/emulators/spare/unplug", "", nil), 204)
	var rep api.Enrollment
	w.must(w.as(me, "POST", fmt.Sprintf("/v1/accounts/%s/devices/%s/replace", me, lost), `{"type":"fido","label":"new key"}`, &rep, "Authorization: Bearer "+res.StepUpToken), 200)
	var list api.DeviceList
	w.must(w.as(me, "GET", "/v1/accounts/"+me+"/devices", "", &list), 200)
	if len(list.Devices) != 2 {
		t.Fatalf("devices after replace: %+v", list.Devices)
	}
	for _, d := range list.Devices {
		if d.ID == lost || d.Type != "fido" {
			t.Errorf("device after replace: %+v", d)
		}
	}
	var acct api.Account
	w.must(w.as(me, "GET", "/v1/accounts/"+me, "", &acct), 200)
	if !strings.Contains(strings.Join(acct.Flags, ","), "password_change_required") {
		t.Errorf("no password change asked after a loss: %v", acct.Flags)
	}
	if msgs := w.smtp.Messages(); len(msgs) == 0 || !strings.Contains(msgs[0].Subject, "reported lost") {
		t.Errorf("no loss notice by e-mail: %+v", msgs)
	}
	story := w.audit()
	for _, step := range []string{"device.report_lost", "authenticate", "device.delete", "device.replace", "device.enroll"} {
		if !strings.Contains(story, step) {
			t.Errorf("audit lacks %s:\n%s", step, story)
		}
	}
}

// recoverOwner runs the e-mail and phone steps as who and returns the
// recovery token.
func (w *world) recoverOwner(who, account string) string {
	w.t.Helper()
	var r api.Recovery
	w.must(w.as(who, "POST", "/v1/recovery", fmt.Sprintf(`{"account":%q}`, account), &r), 201)
	code := w.lastMailCode()
	w.must(w.as(who, "POST", "/v1/recovery/"+r.ID+"/email", fmt.Sprintf(`{"code":%q}`, code), &r), 200)
	if r.Stage != "phone" {
		w.t.Fatalf("after the e-mail code: %+v", r)
	}
	w.must(w.as(who, "POST", "/v1/recovery/"+r.ID+"/phone", fmt.Sprintf(`{"code":%q}`, w.lastPhoneCode()), &r), 200)
	if r.Stage != "done" || r.RecoveryToken == "" {
		w.t.Fatalf("after the phone code: %+v", r)
	}
	return r.RecoveryToken
}

var mailCodeRE = regexp.MustCompile(`Recovery code: (\d{8})`)

func (w *world) lastMailCode() string {
	w.t.Helper()
	msgs := w.smtp.Messages()
	for i := len(msgs) - 1; i >= 0; i-- {
		if m := mailCodeRE.FindStringSubmatch(msgs[i].Body); m != nil {
			return m[1]
		}
	}
	w.t.Fatal("no recovery code e-mailed")
	return ""
}

func (w *world) lastPhoneCode() string {
	w.t.Helper()
	msgs := w.phone()
	if len(msgs) == 0 {
		w.t.Fatal("no code sent to the phone")
	}
	return msgs[len(msgs)-1].Code
}

// Scenario 3: an owner with a single device recovers with e-mail and
// phone, replaces the device, and is flagged for a password change.
func TestScenarioOwnerRecoversWithEmailAndPhone(t *testing.T) {
	w := newWorld(t)
	me := userSelf
	w.must(w.as("", "POST", "/v1/accounts", fmt.Sprintf(`{"name":%q,"kind":"owner","email":"own@e2e.test","email_verified":true,"phone":"+1 555 0101","phone_verified":true}`, me), nil), 201)
	only, _ := w.enrollTOTP(me, me, "")
	// The only device is lost; no other device: recover with the alternative factors.
	w.must(w.as(me, "POST", fmt.Sprintf("/v1/accounts/%s/devices/%s/report-lost", me, only), "", nil), 200)
	w.refused(w.as(me, "POST", "/v1/accounts/"+me+"/devices", `{"type":"totp"}`, nil), api.CodeRecoveryPending)
	tok := w.recoverOwner(me, me)
	var res api.AuthResult
	w.must(w.as(me, "POST", "/v1/authenticate", fmt.Sprintf(`{"account":%q,"recovery_token":%q}`, me, tok), &res), 200)
	if res.Method != "recovery" {
		t.Errorf("sign-in method %q", res.Method)
	}
	// The token signs in once.
	w.refused(w.as(me, "POST", "/v1/authenticate", fmt.Sprintf(`{"account":%q,"recovery_token":%q}`, me, tok), nil), api.CodeInvalidCode)
	// It serves as step-up: replace the lost device.
	var rep api.Enrollment
	w.must(w.as(me, "POST", fmt.Sprintf("/v1/accounts/%s/devices/%s/replace", me, only), `{"type":"totp"}`, &rep, "Authorization: Bearer "+tok), 201)
	awayFromStepEdge()
	now := time.Now()
	w.must(w.as(me, "POST", fmt.Sprintf("/v1/accounts/%s/devices/%s/activate", me, rep.Device.ID),
		fmt.Sprintf(`{"code1":%q,"code2":%q}`, oathtool(t, rep.Secret, now.Add(-30*time.Second)), oathtool(t, rep.Secret, now)), nil), 200)
	var acct api.Account
	w.must(w.as(me, "GET", "/v1/accounts/"+me, "", &acct), 200)
	if !strings.Contains(strings.Join(acct.Flags, ","), "password_change_required") {
		t.Errorf("not flagged for a password change after recovery: %v", acct.Flags)
	}
	// The sign-in helper (uid 0) reports the new password; the user cannot.
	w.refused(w.as(me, "POST", "/v1/accounts/"+me+"/password-changed", "", nil), api.CodePermissionDenied)
	w.must(w.as("", "POST", "/v1/accounts/"+me+"/password-changed", "", &acct), 200)
	if len(acct.Flags) != 0 {
		t.Errorf("flag not cleared: %v", acct.Flags)
	}
	story := w.audit()
	for _, step := range []string{"recovery.start", "recovery.email", "recovery.phone", "authenticate.recovery", "device.replace", "account.password_changed"} {
		if !strings.Contains(story, step) {
			t.Errorf("audit lacks %s:\n%s", step, story)
		}
	}
	if strings.Contains(story, w.lastPhoneCode()) {
		t.Error("a recovery code reached the audit log")
	}
}

// Scenario 4: an owner without verified contacts is told only an admin can help.
func TestScenarioOwnerWithoutContactsNeedsAdmin(t *testing.T) {
	w := newWorld(t)
	me := userSelf
	w.must(w.as("", "POST", "/v1/accounts", fmt.Sprintf(`{"name":%q,"kind":"owner","email":"x@e2e.test"}`, me), nil), 201)
	a := w.as(me, "POST", "/v1/recovery", fmt.Sprintf(`{"account":%q}`, me), nil)
	w.refused(a, api.CodeRecoveryNeedsAdmin)
	if !strings.Contains(string(a.Body), "only an admin can help") {
		t.Errorf("answer does not say an admin is needed: %s", a.Body)
	}
	// A member is told the same, whatever its contacts.
	w.must(w.as("", "POST", "/v1/accounts", fmt.Sprintf(`{"name":%q,"kind":"member","email":"y@e2e.test","email_verified":true,"phone":"+1 555 0102","phone_verified":true}`, userOther), nil), 201)
	w.refused(w.as(userOther, "POST", "/v1/recovery", fmt.Sprintf(`{"account":%q}`, userOther), nil), api.CodeRecoveryNeedsAdmin)
}

// Scenario 5: a member loses the only device; an admin deactivates it and
// issues a temporary code; the member cannot enroll on their session
// alone, signs in once with the code, enrolls a new device, and the code
// then no longer works.
func TestScenarioMemberWithTemporaryCode(t *testing.T) {
	w := newWorld(t)
	me := userSelf
	w.must(w.as("", "POST", "/v1/accounts", fmt.Sprintf(`{"name":%q,"kind":"member","email":"m@e2e.test","email_verified":true}`, me), nil), 201)
	only, _ := w.enrollTOTP(me, me, "")
	out, errs, code := mfactlAs(t, userAdmin, w.d.sock, nil, "admin", "deactivate", me, only)
	if code != 0 {
		t.Fatalf("admin deactivate: %s %s", out, errs)
	}
	// The member alone cannot enroll.
	w.refused(w.as(me, "POST", "/v1/accounts/"+me+"/devices", `{"type":"totp"}`, nil), api.CodeRecoveryPending)
	out, errs, code = mfactlAs(t, userAdmin, w.d.sock, nil, "--json", "admin", "temp-code", me)
	if code != 0 {
		t.Fatalf("temp-code: %s", errs)
	}
	var tc api.TemporaryCode
	json.Unmarshal([]byte(out), &tc)
	if len(tc.Code) < 16 {
		t.Fatalf("temporary code %q", tc.Code)
	}
	// The account's e-mail heard about the deactivation and the code (never the code itself).
	for _, m := range w.smtp.Messages() {
		if strings.Contains(m.Body, tc.Code) {
			t.Fatal("the temporary code was e-mailed")
		}
	}
	if len(w.smtp.Messages()) < 2 {
		t.Errorf("notices: %d, want deactivation and temporary code", len(w.smtp.Messages()))
	}
	var res api.AuthResult
	w.must(w.as(me, "POST", "/v1/authenticate", fmt.Sprintf(`{"account":%q,"code":%q}`, me, tc.Code), &res), 200)
	if res.Method != "temporary_code" {
		t.Errorf("method %q", res.Method)
	}
	// Single use.
	w.refused(w.as(me, "POST", "/v1/authenticate", fmt.Sprintf(`{"account":%q,"code":%q}`, me, tc.Code), nil), api.CodeInvalidCode)
	// The step-up from the code enrolls a new device of any type.
	w.enrollTOTP(me, me, res.StepUpToken)
	story := w.audit()
	for _, step := range []string{"device.deactivate", "account.temporary_code", "authenticate.temporary_code", "device.enroll", "device.activate"} {
		if !strings.Contains(story, step) {
			t.Errorf("audit lacks %s:\n%s", step, story)
		}
	}
}

// Scenario 6: a ninth device is refused, and replace still works at eight.
func TestScenarioNinthDeviceAndReplaceAtEight(t *testing.T) {
	w := newWorld(t)
	c := w.d.client()
	ctx := context.Background()
	var ids []string
	for i := 0; i < 8; i++ {
		e, err := c.AddDevice(ctx, "zoe", api.CreateDevice{Type: "totp"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.Device.ID)
	}
	_, err := c.AddDevice(ctx, "zoe", api.CreateDevice{Type: "totp"})
	if p, ok := err.(*api.Problem); !ok || p.Code != api.CodeDeviceLimitReached || p.Status != 409 {
		t.Fatalf("ninth device: %v", err)
	}
	if _, err := c.AddEmulator(ctx, api.AddEmulator{Name: "eighth"}); err != nil {
		t.Fatal(err)
	}
	e, err := c.ReplaceDevice(ctx, "zoe", ids[0], api.CreateDevice{Type: "fido"}, nil)
	if err != nil {
		t.Fatalf("replace at eight: %v", err)
	}
	list, _ := c.Devices(ctx, "zoe")
	if len(list.Devices) != 8 || e.Device.Type != "fido" {
		t.Errorf("after replace: %d devices, new %s", len(list.Devices), e.Device.Type)
	}
}

// Scenario 7: expired or reused codes, the wrong order, another uid using
// someone's recovery, and too many attempts are refused.
func TestScenarioRecoveryRefusals(t *testing.T) {
	w := newWorld(t)
	me := userSelf
	w.must(w.as("", "POST", "/v1/accounts", fmt.Sprintf(`{"name":%q,"kind":"owner","email":"r@e2e.test","email_verified":true,"phone":"+1 555 0103","phone_verified":true}`, me), nil), 201)
	var r api.Recovery
	w.must(w.as(me, "POST", "/v1/recovery", fmt.Sprintf(`{"account":%q}`, me), &r), 201)
	// Another user cannot start one for this account, nor use this one.
	w.refused(w.as(userOther, "POST", "/v1/recovery", fmt.Sprintf(`{"account":%q}`, me), nil), api.CodePermissionDenied)
	w.refused(w.as(userOther, "POST", "/v1/recovery/"+r.ID+"/email", fmt.Sprintf(`{"code":%q}`, w.lastMailCode()), nil), api.CodePermissionDenied)
	// Phone before e-mail.
	w.refused(w.as(me, "POST", "/v1/recovery/"+r.ID+"/phone", `{"code":"123456"}`, nil), api.CodeRecoveryWrongStep)
	// A resent code replaces the first: the first no longer works.
	first := w.lastMailCode()
	w.must(w.as(me, "POST", "/v1/recovery/"+r.ID+"/resend", "", nil), 200)
	second := w.lastMailCode()
	if first == second {
		t.Fatal("resend sent the same code")
	}
	w.refused(w.as(me, "POST", "/v1/recovery/"+r.ID+"/email", fmt.Sprintf(`{"code":%q}`, first), nil), api.CodeInvalidCode)
	w.must(w.as(me, "POST", "/v1/recovery/"+r.ID+"/email", fmt.Sprintf(`{"code":%q}`, second), &r), 200)
	// Reusing the e-mail code at the phone step fails; so do wrong phone
	// codes, until the recovery is over.
	w.refused(w.as(me, "POST", "/v1/recovery/"+r.ID+"/email", fmt.Sprintf(`{"code":%q}`, second), nil), api.CodeRecoveryWrongStep)
	// (the account's own brute-force guard slows the attempts down too:
	// honour its retry_after)
	wrong := 0
	for done := false; !done; {
		a := w.as(me, "POST", "/v1/recovery/"+r.ID+"/phone", `{"code":"000000"}`, nil)
		switch a.Code {
		case api.CodeRetryLater:
			var p api.Problem
			json.Unmarshal(a.Body, &p)
			time.Sleep(time.Duration(p.RetryAfter) * time.Second)
		case api.CodeInvalidCode:
			wrong++
		case api.CodeRecoveryAborted:
			done = true
		default:
			t.Fatalf("wrong phone code: %d %s", a.Status, a.Code)
		}
	}
	if wrong != 4 {
		t.Errorf("%d wrong phone codes before the recovery ended, want 4 (the 5th ends it)", wrong)
	}
	w.refused(w.as(me, "POST", "/v1/recovery/"+r.ID+"/phone", fmt.Sprintf(`{"code":%q}`, w.lastPhoneCode()), nil), api.CodeNotFound)
	// The failures counted against the account: it now waits before trying again.
	var acct api.Account
	w.must(w.as("", "GET", "/v1/accounts/"+me, "", &acct), 200)
	if acct.FailedAttempts < 5 {
		t.Errorf("failed attempts %d, want the recovery failures counted", acct.FailedAttempts)
	}
	// A wrong recovery token does not sign in.
	if a := w.as(me, "POST", "/v1/authenticate", fmt.Sprintf(`{"account":%q,"recovery_token":"bogus"}`, me), nil); a.Code != api.CodeInvalidCode && a.Code != api.CodeRetryLater {
		t.Errorf("bogus recovery token: %d %s", a.Status, a.Code)
	}
}

// Scenario 8: a hardware token reported lost never returns to the inventory.
func TestScenarioLostTokenNeverReturns(t *testing.T) {
	w := newWorld(t)
	c := w.d.client()
	ctx := context.Background()
	secret := "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" // 20 bytes, base32
	raw := `<?xml version="1.0"?><KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc"><KeyPackage>` +
		`<DeviceInfo><Manufacturer>Lab</Manufacturer><SerialNo>HW-1</SerialNo></DeviceInfo>` +
		`<Key Id="HW-1" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:totp"><AlgorithmParameters><ResponseFormat Length="6" Encoding="DECIMAL"/></AlgorithmParameters>` +
		`<Data><Secret><PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</PlainValue></Secret><TimeInterval><PlainValue>30</PlainValue></TimeInterval></Data></Key></KeyPackage></KeyContainer>`
	if _, err := c.ImportTokens(ctx, api.TokenImport{PSKC: raw}); err != nil {
		t.Fatal(err)
	}
	e, err := c.AddDevice(ctx, "hal", api.CreateDevice{Type: "hardware-otp", Serial: "HW-1"})
	if err != nil {
		t.Fatal(err)
	}
	awayFromStepEdge()
	now := time.Now()
	if _, err := c.ActivateDevice(ctx, "hal", e.Device.ID, api.CodePair{Code1: oathtool(t, secret, now.Add(-30*time.Second)), Code2: oathtool(t, secret, now)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReportLost(ctx, "hal", e.Device.ID); err != nil {
		t.Fatal(err)
	}
	// Even an admin deleting it "back in hand" does not bring a lost serial back.
	if err := c.DeleteDevice(ctx, "hal", e.Device.ID, true); err != nil {
		t.Fatal(err)
	}
	toks, _ := c.Tokens(ctx)
	if len(toks) != 1 || !toks[0].Retired || toks[0].AssignedTo != "" {
		t.Fatalf("token after loss: %+v", toks)
	}
	_, err = c.AddDevice(ctx, "ivy", api.CreateDevice{Type: "hardware-otp", Serial: "HW-1"})
	if p, ok := err.(*api.Problem); !ok || p.Code != api.CodeTokenAssigned {
		t.Fatalf("assigning a lost token: %v", err)
	}
	// A token deleted with an admin's "back in hand" (not lost) does return.
	raw2 := strings.ReplaceAll(raw, "HW-1", "HW-2")
	c.ImportTokens(ctx, api.TokenImport{PSKC: raw2})
	e2, _ := c.AddDevice(ctx, "hal", api.CreateDevice{Type: "hardware-otp", Serial: "HW-2"})
	if err := c.DeleteDevice(ctx, "hal", e2.Device.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddDevice(ctx, "ivy", api.CreateDevice{Type: "hardware-otp", Serial: "HW-2"}); err != nil {
		t.Fatalf("a returned token: %v", err)
	}
}
