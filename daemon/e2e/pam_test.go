package e2e

import (
	"bufio"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/authn/store"
	"github.com/mfad/mfad/daemon/notify/notifytest"
	"github.com/mfad/mfad/ipc/api"
)

// The PAM tests drive the real pam_mfad.so (built from contrib/pam with
// its Makefile) through Debian's pamtester against a running mfad. They
// need root: pamtester loads services from /etc/pam.d, and the module
// calls mfad as uid 0, as login and sudo do.

var (
	pamOnce   sync.Once
	pamModule string
	pamErr    error
)

// buildPAM builds pam_mfad.so into this run's bin directory.
func buildPAM(t *testing.T) string {
	t.Helper()
	pamOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			pamErr = err
			return
		}
		cmd := exec.Command("make", "-s", "-C", filepath.Join(root, "contrib", "pam"), "O="+binDir)
		if out, err := cmd.CombinedOutput(); err != nil {
			pamErr = fmt.Errorf("make -C contrib/pam: %v\n%s", err, out)
			return
		}
		pamModule = filepath.Join(binDir, "pam_mfad.so")
	})
	if pamErr != nil {
		t.Fatal(pamErr)
	}
	return pamModule
}

// TestPAMModuleLinkage holds the built module to its link: it exports the
// pam_sm_* entry points and nothing else, and json-c is inside it, private
// (no libjson-c.so to load, no json_* symbol a host process could bind to
// or have interposed).
func TestPAMModuleLinkage(t *testing.T) {
	f, err := elf.Open(buildPAM(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range libs {
		if strings.HasPrefix(l, "libjson-c") {
			t.Errorf("the module needs %s: json-c is to be linked in", l)
		}
	}
	syms, err := f.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	var exported []string
	for _, s := range syms {
		if s.Section == elf.SHN_UNDEF || elf.ST_BIND(s.Info) == elf.STB_LOCAL {
			if strings.HasPrefix(s.Name, "json_") {
				t.Errorf("the module imports %s", s.Name)
			}
			continue
		}
		exported = append(exported, s.Name)
	}
	want := map[string]bool{"pam_sm_authenticate": true, "pam_sm_setcred": true, "pam_sm_acct_mgmt": true, "pam_sm_chauthtok": true}
	for _, name := range exported {
		if !want[name] {
			t.Errorf("the module exports %s", name)
		}
		delete(want, name)
	}
	for name := range want {
		t.Errorf("the module does not export %s", name)
	}
}

// needTool skips (or, under MFAD_REQUIRE_TOOLS=1, fails) without a tool.
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("MFAD_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s is not installed (make deps installs it)", name)
		}
		t.Skipf("%s is not installed", name)
	}
}

// pamService writes /etc/pam.d/mfad-e2e-NAME-PID with the module's lines
// (MODULE stands for the built module's absolute path) and removes it
// when the test ends. It returns the service name.
func pamService(t *testing.T, name string, lines ...string) string {
	t.Helper()
	svc := fmt.Sprintf("mfad-e2e-%s-%d", name, os.Getpid())
	mod := buildPAM(t)
	body := "# written by daemon/e2e/pam_test.go; removed when the test ends\n" +
		strings.ReplaceAll(strings.Join(lines, "\n"), "MODULE", mod) + "\n"
	p := filepath.Join("/etc/pam.d", svc)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(p) })
	return svc
}

// pamtester runs one pamtester operation, feeding stdin (the answers to
// the prompts, one per line), and returns what it printed and its exit code.
func pamtester(t *testing.T, svc, user, stdin string, ops ...string) (string, int) {
	t.Helper()
	return pamtesterFrom(t, svc, user, strings.NewReader(stdin), ops...)
}

// pamtesterFrom is pamtester with the answers read from stdin as it gives them.
func pamtesterFrom(t *testing.T, svc, user string, stdin io.Reader, ops ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "pamtester", append([]string{svc, user}, ops...)...)
	cmd.Stdin = stdin
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C"}
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("pamtester: %v", err)
	}
	return string(out), code
}

// enrollTOTP creates the account (kind) as root, enrolls a TOTP device
// and activates it with two oathtool codes; it returns the device id and
// the secret. The activation spent the current step.
func enrollTOTP(t *testing.T, d *daemon, account, kind string) (string, string) {
	t.Helper()
	if a := callAs(t, "", d.sock, "POST", api.PathAccounts, fmt.Sprintf(`{"name":%q,"kind":%q}`, account, kind)); a.Status != 201 && a.Status != 200 {
		t.Fatalf("create account: %d %s", a.Status, a.Code)
	}
	a := callAs(t, "", d.sock, "POST", "/v1/accounts/"+account+"/devices", `{"type":"totp","label":"phone"}`)
	if a.Status != 201 {
		t.Fatalf("enroll: %d %s", a.Status, a.Code)
	}
	var enr api.Enrollment
	if err := json.Unmarshal(a.Body, &enr); err != nil || enr.Secret == "" {
		t.Fatalf("enrollment %s: %v", a.Body, err)
	}
	awayFromStepEdge()
	now := time.Now()
	act := callAs(t, "", d.sock, "POST", fmt.Sprintf("/v1/accounts/%s/devices/%s/activate", account, enr.Device.ID),
		fmt.Sprintf(`{"code1":%q,"code2":%q}`, oathtool(t, enr.Secret, now.Add(-30*time.Second)), oathtool(t, enr.Secret, now)))
	if act.Status != 200 {
		t.Fatalf("activate: %d %s", act.Status, act.Code)
	}
	return enr.Device.ID, enr.Secret
}

// wrongCode is a code that differs from c in every digit.
func wrongCode(c string) string {
	b := []byte(c)
	for i := range b {
		b[i] = '0' + (b[i]-'0'+5)%10
	}
	return string(b)
}

func account(t *testing.T, d *daemon, name string) api.Account {
	t.Helper()
	a := callAs(t, "", d.sock, "GET", "/v1/accounts/"+name, "")
	if a.Status != 200 {
		t.Fatalf("get account %s: %d %s", name, a.Status, a.Code)
	}
	var acc api.Account
	json.Unmarshal(a.Body, &acc)
	return acc
}

// noCodeIn fails when any of the codes appears in the output.
func noCodeIn(t *testing.T, out string, codes ...string) {
	t.Helper()
	for _, c := range codes {
		if c != "" && strings.Contains(out, c) {
			t.Errorf("a code appears in the output: %q", out)
		}
	}
}

// TestPAMTOTP: a TOTP user signs in through pam_mfad with a code from
// oathtool; a wrong code, the replayed code and a user without an account
// are refused.
func TestPAMTOTP(t *testing.T) {
	needRoot(t)
	needTool(t, "pamtester")
	t.Parallel()
	d := startDaemon(t, "", "admin_group = \""+adminGroup+"\"\n")
	svc := pamService(t, "totp", "auth required MODULE socket="+d.sock+" debug")
	_, secret := enrollTOTP(t, d, userSelf, "member")

	// The activation spent the current step; the next one is in the window.
	good := oathtool(t, secret, time.Now().Add(30*time.Second))
	out, code := pamtester(t, svc, userSelf, wrongCode(good)+"\n", "authenticate")
	if code == 0 || !strings.Contains(out, "Invalid code") {
		t.Errorf("wrong code: exit %d\n%s", code, out)
	}
	noCodeIn(t, out, wrongCode(good))
	// The module gets the same treatment as any client: a failure counts.
	if acc := account(t, d, userSelf); acc.FailedAttempts != 1 {
		t.Errorf("failed attempts not counted: %+v", acc)
	}
	out, code = pamtester(t, svc, userSelf, good+"\n", "authenticate")
	if code != 0 || !strings.Contains(out, "successfully authenticated") || !strings.Contains(out, "Verification code") {
		t.Fatalf("good code: exit %d\n%s", code, out)
	}
	noCodeIn(t, out, good)
	// The same code again: "already used" and one more prompt (no answer
	// to it here).
	if out, code = pamtester(t, svc, userSelf, good+"\n", "authenticate"); code == 0 || !strings.Contains(out, "already used") {
		t.Errorf("replayed code: exit %d\n%s", code, out)
	}
	// No input at all (the conversation fails): refused.
	if out, code = pamtester(t, svc, userSelf, "", "authenticate"); code == 0 {
		t.Errorf("no answer accepted:\n%s", out)
	}
	// Without nouserok, a user mfad does not know is refused.
	if out, code = pamtester(t, svc, "mfad-e2e-nobody", "", "authenticate"); code == 0 {
		t.Errorf("unknown user accepted:\n%s", out)
	}
	// A replay is refused but is no guess: it is not counted.
	if acc := account(t, d, userSelf); acc.FailedAttempts != 0 {
		t.Errorf("a replay or an empty conversation counted as a failure: %+v", acc)
	}
	// A disabled account is told so.
	if a := callAs(t, "", d.sock, "PATCH", "/v1/accounts/"+userSelf, `{"flags":["disabled"]}`); a.Status != 200 {
		t.Fatalf("disable: %d %s", a.Status, a.Code)
	}
	out, code = pamtester(t, svc, userSelf, wrongCode(good)+"\n", "authenticate")
	if code == 0 || !strings.Contains(out, "This account is disabled") {
		t.Errorf("disabled account: exit %d\n%s", code, out)
	}
}

// TestPAMOutOfSync: a token that drifted before (its drift is on record)
// runs 10 more minutes fast. Its code alone is refused like any wrong
// code, with the resync hint; the module asks for the next code and signs
// in with both, learning the new drift.
func TestPAMOutOfSync(t *testing.T) {
	needRoot(t)
	needTool(t, "pamtester")
	t.Parallel()
	d := startDaemon(t, "", "")
	svc := pamService(t, "sync", "auth required MODULE socket="+d.sock)
	id, secret := enrollTOTP(t, d, userSelf, "member")

	// The drift on record: the token was found 5 minutes fast once.
	awayFromStepEdge()
	at := time.Now().Add(5 * time.Minute)
	if a := callAs(t, "", d.sock, "POST", "/v1/accounts/"+userSelf+"/devices/"+id+"/resync",
		fmt.Sprintf(`{"code1":%q,"code2":%q}`, oathtool(t, secret, at.Add(-30*time.Second)), oathtool(t, secret, at))); a.Status != 200 {
		t.Fatalf("resync: %d %s", a.Status, a.Code)
	}
	fast := 15 * time.Minute
	awayFromStepEdge()
	at = time.Now().Add(fast)
	c1, c2 := oathtool(t, secret, at), oathtool(t, secret, at.Add(30*time.Second))
	out, code := pamtester(t, svc, userSelf, c1+"\n"+c2+"\n", "authenticate")
	if code != 0 || !strings.Contains(out, "clock may be off") || !strings.Contains(out, "Next code") {
		t.Fatalf("out-of-sync sign-in: exit %d\n%s", code, out)
	}
	noCodeIn(t, out, c1, c2)
	a := callAs(t, "", d.sock, "GET", "/v1/accounts/"+userSelf+"/devices/"+id, "")
	var dev api.Device
	json.Unmarshal(a.Body, &dev)
	if dev.OTP == nil || dev.OTP.DriftSteps < 30 || dev.OTP.DriftSteps > 32 {
		t.Errorf("drift after the resync through PAM: %+v", dev.OTP)
	}
	// A next code that does not follow fails the sign-in.
	awayFromStepEdge()
	at = time.Now().Add(2 * fast)
	out, code = pamtester(t, svc, userSelf, oathtool(t, secret, at)+"\n"+wrongCode(oathtool(t, secret, at.Add(30*time.Second)))+"\n", "authenticate")
	if code == 0 || !strings.Contains(out, "Next code") {
		t.Errorf("bad resync accepted: exit %d\n%s", code, out)
	}
}

// TestPAMPasswordChange: the account step asks for a new password while
// the account is flagged, and the password step clears the flag.
func TestPAMPasswordChange(t *testing.T) {
	needRoot(t)
	needTool(t, "pamtester")
	t.Parallel()
	d := startDaemon(t, "", "")
	svc := pamService(t, "passwd",
		"account required MODULE socket="+d.sock,
		"account required pam_permit.so",
		"password required pam_permit.so",
		"password optional MODULE socket="+d.sock)
	if a := callAs(t, "", d.sock, "POST", api.PathAccounts, `{"name":"`+userSelf+`","flags":["password_change_required"]}`); a.Status != 201 {
		t.Fatalf("create flagged account: %d %s", a.Status, a.Code)
	}
	out, code := pamtester(t, svc, userSelf, "", "acct_mgmt")
	if code == 0 || !strings.Contains(out, "new one required") {
		t.Fatalf("flagged account step: exit %d\n%s", code, out)
	}
	out, code = pamtester(t, svc, userSelf, "", "chauthtok")
	if code != 0 {
		t.Fatalf("chauthtok: exit %d\n%s", code, out)
	}
	if acc := account(t, d, userSelf); len(acc.Flags) != 0 {
		t.Errorf("flags after the password change: %v", acc.Flags)
	}
	if out, code = pamtester(t, svc, userSelf, "", "acct_mgmt"); code != 0 {
		t.Errorf("account step after the change: exit %d\n%s", code, out)
	}
	// A user mfad does not know is not its business.
	if out, code = pamtester(t, svc, "mfad-e2e-nobody", "", "acct_mgmt"); code != 0 {
		t.Errorf("account step, no account: exit %d\n%s", code, out)
	}
}

// TestPAMDaemonDown: with mfad stopped, sign-in and the account step fail
// closed; nodaemonok lets them through, but never a busy or broken mfad.
func TestPAMDaemonDown(t *testing.T) {
	needRoot(t)
	needTool(t, "pamtester")
	t.Parallel()
	d := startDaemon(t, "", "")
	enrollTOTP(t, d, userSelf, "member")
	strict := pamService(t, "down", "auth required MODULE socket="+d.sock,
		"account required MODULE socket="+d.sock, "account required pam_permit.so")
	lenient := pamService(t, "downok", "auth required MODULE socket="+d.sock+" nodaemonok",
		"account required MODULE socket="+d.sock+" nodaemonok", "account required pam_permit.so")
	// While mfad runs, nodaemonok changes nothing: a wrong code fails.
	if out, code := pamtester(t, lenient, userSelf, "000000\n", "authenticate"); code == 0 {
		t.Fatalf("nodaemonok with mfad running let a wrong code through:\n%s", out)
	}
	d.stop()
	for _, op := range []string{"authenticate", "acct_mgmt"} {
		if out, code := pamtester(t, strict, userSelf, "123456\n", op); code == 0 {
			t.Errorf("%s with mfad stopped succeeded:\n%s", op, out)
		}
		if out, code := pamtester(t, lenient, userSelf, "", op); code != 0 {
			t.Errorf("%s with mfad stopped and nodaemonok: exit %d\n%s", op, code, out)
		}
	}
	// A socket path whose directory is missing is "not running" too.
	missing := pamService(t, "missing", "auth required MODULE socket=/nonexistent/mfad.sock")
	if out, code := pamtester(t, missing, userSelf, "", "authenticate"); code == 0 {
		t.Errorf("missing socket succeeded:\n%s", out)
	}
	// Something that answers garbage on the socket is not "not running".
	dir := t.TempDir()
	sock := filepath.Join(dir, "bad.sock")
	stopBad := serveGarbage(t, sock)
	defer stopBad()
	bad := pamService(t, "garbage", "auth required MODULE socket="+sock+" nodaemonok")
	if out, code := pamtester(t, bad, userSelf, "", "authenticate"); code == 0 {
		t.Errorf("a malformed answer passed with nodaemonok:\n%s", out)
	}
}

// serveGarbage answers every connection on sock with a malformed response.
func serveGarbage(t *testing.T, sock string) func() {
	t.Helper()
	cmd := exec.Command("python3", "-c", `
import socket, sys, os
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.recv(65536)
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n{\"ok\":tr")
    c.close()
`, sock)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Skipf("python3: %v", err)
	}
	bufio.NewReader(stdout).ReadString('\n')
	return func() { cmd.Process.Kill(); cmd.Wait() }
}

// recoveryPending writes a state directory in which account (kind) once
// had a device and has none active now: what deactivating or reporting
// the last device leaves.
func recoveryPending(t *testing.T, account string, kind authn.Kind) string {
	t.Helper()
	dir, err := os.MkdirTemp(work, "state-")
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := store.LoadKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(dir, key, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	err = st.Update(context.Background(), func(tx authn.Tx) error {
		return tx.PutAccount(&authn.Account{Name: account, Kind: kind, CreatedAt: now, UpdatedAt: now, EverEnrolled: true,
			Email: "owner@example.org", EmailVerified: kind == authn.KindOwner, Phone: "+15550100", PhoneVerified: kind == authn.KindOwner})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestPAMNoUserOK: nouserok passes a user without an account and an
// account that never enrolled a device, never a recovery-pending one.
func TestPAMNoUserOK(t *testing.T) {
	needRoot(t)
	needTool(t, "pamtester")
	t.Parallel()
	d := startDaemon(t, recoveryPending(t, userOther, authn.KindMember), "")
	svc := pamService(t, "nouserok", "auth required MODULE socket="+d.sock+" nouserok")
	strict := pamService(t, "nouser", "auth required MODULE socket="+d.sock)
	if out, code := pamtester(t, svc, "mfad-e2e-nobody", "", "authenticate"); code != 0 {
		t.Errorf("no account with nouserok: exit %d\n%s", code, out)
	}
	if a := callAs(t, "", d.sock, "POST", api.PathAccounts, `{"name":"`+userSelf+`"}`); a.Status != 201 {
		t.Fatalf("create account: %d %s", a.Status, a.Code)
	}
	if out, code := pamtester(t, svc, userSelf, "", "authenticate"); code != 0 {
		t.Errorf("never enrolled, nouserok: exit %d\n%s", code, out)
	}
	if out, code := pamtester(t, strict, userSelf, "", "authenticate"); code == 0 {
		t.Errorf("never enrolled, without nouserok: passed\n%s", out)
	}
	if acc := account(t, d, userOther); !acc.EverEnrolled {
		t.Fatalf("the recovery-pending account is not: %+v", acc)
	}
	out, code := pamtester(t, svc, userOther, "", "authenticate")
	if code == 0 || !strings.Contains(out, "Temporary access code") {
		t.Errorf("recovery pending passed nouserok: exit %d\n%s", code, out)
	}
	// "Lost your device?" for a member: ask an administrator.
	out, code = pamtester(t, svc, userOther, "\n", "authenticate")
	if code == 0 || !strings.Contains(out, "Ask an administrator") {
		t.Errorf("member's lost device: exit %d\n%s", code, out)
	}
	out, code = pamtester(t, svc, userOther, "12345678\n", "authenticate")
	if code == 0 {
		t.Errorf("a made-up temporary code passed:\n%s", out)
	}
}

// TestPAMTemporaryCode: an admin's temporary access code, typed at the
// prompt, signs a recovery-pending member in once.
func TestPAMTemporaryCode(t *testing.T) {
	needRoot(t)
	needTool(t, "pamtester")
	t.Parallel()
	d := startDaemon(t, recoveryPending(t, userOther, authn.KindMember), "")
	a, ok := routeServed(t, d, "POST", "/v1/accounts/"+userOther+"/temporary-code", `{}`)
	if !ok {
		t.Skip("POST /v1/accounts/{name}/temporary-code is not served yet: the temporary code through PAM is tested once it is")
	}
	if a.Status/100 != 2 {
		t.Fatalf("temporary code: %d %s", a.Status, a.Code)
	}
	var tc struct {
		Code          string `json:"code"`
		TemporaryCode string `json:"temporary_code"`
	}
	json.Unmarshal(a.Body, &tc)
	if tc.Code == "" {
		tc.Code = tc.TemporaryCode
	}
	if tc.Code == "" {
		t.Fatalf("temporary code answer without a code: %s", a.Body)
	}
	svc := pamService(t, "tempcode", "auth required MODULE socket="+d.sock)
	out, code := pamtester(t, svc, userOther, tc.Code+"\n", "authenticate")
	if code != 0 {
		t.Fatalf("temporary code: exit %d\n%s", code, out)
	}
	noCodeIn(t, out, tc.Code)
	if out, code = pamtester(t, svc, userOther, tc.Code+"\n", "authenticate"); code == 0 {
		t.Errorf("temporary code used twice:\n%s", out)
	}
}

// routeServed tells whether mfad serves method+path: an unknown route
// answers 404 or 405 with a body that names no account problem.
func routeServed(t *testing.T, d *daemon, method, path, body string) (answer, bool) {
	t.Helper()
	a := callAs(t, "", d.sock, method, path, body)
	if a.Status == 405 || a.Code == api.CodeMethodNotAllowed {
		return a, false
	}
	if a.Status == 404 && (a.Code == "" || a.Code == api.CodeNotFound && strings.Contains(strings.ToLower(string(a.Body)), "route")) {
		return a, false
	}
	return a, true
}

// TestPAMOwnerRecovery: an owner who lost the device is led through the
// e-mail code (a wrong one ends it); an owner without verified contacts,
// like a member, is sent to an administrator.
func TestPAMOwnerRecovery(t *testing.T) {
	needRoot(t)
	needTool(t, "pamtester")
	t.Parallel()
	smtp := notifytest.StartSMTP(t)
	phone, _ := notifytest.PhoneScript(t, t.TempDir())
	d := startDaemon(t, recoveryPending(t, userOther, authn.KindOwner), fmt.Sprintf(
		"[recovery.email]\nsmtp = %q\nfrom = \"mfad@e2e.test\"\n[recovery.phone]\ncommand = %q\n", smtp.Addr, phone))
	svc := pamService(t, "recovery", "auth required MODULE socket="+d.sock)
	out, code := pamtester(t, svc, userOther, "\n000000\n", "authenticate")
	if code == 0 || !strings.Contains(out, "E-mail code") {
		t.Errorf("owner recovery with a wrong e-mail code: exit %d\n%s", code, out)
	}
	if len(smtp.Messages()) == 0 {
		t.Error("no recovery code was e-mailed")
	}
	// An owner without verified contacts: only an admin can help.
	enrollTOTP(t, d, userSelf, "owner")
	out, code = pamtester(t, svc, userSelf, "\n", "authenticate")
	if code == 0 || !strings.Contains(out, "administrator") {
		t.Errorf("owner without verified contacts: exit %d\n%s", code, out)
	}
}

// startDaemonArgs is startDaemon with extra mfad flags.
func startDaemonArgs(t *testing.T, extra ...string) *daemon {
	t.Helper()
	dir, err := os.MkdirTemp(work, "d-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	d := &daemon{t: t, dir: dir, sock: filepath.Join(dir, "mfad.sock"), state: filepath.Join(dir, "state")}
	d.start(append([]string{"--socket", d.sock, "--state-dir", d.state}, extra...)...)
	t.Cleanup(d.stop)
	return d
}

// TestPAMFIDO: a user with a security key (the emulator) signs in when the
// key is touched, and fails when nobody touches it before timeout=.
func TestPAMFIDO(t *testing.T) {
	needRoot(t)
	needTool(t, "pamtester")
	t.Parallel()
	d := startDaemonArgs(t, "--emulators")
	em, ok := routeServed(t, d, "POST", "/v1/emulators", `{"name":"pam-e2e","presence":"auto"}`)
	if !ok || em.Status/100 != 2 {
		t.Skipf("POST /v1/emulators is not served yet (%d %s): FIDO sign-in through PAM is tested once it is", em.Status, em.Code)
	}
	var emu struct {
		ID string `json:"id"`
	}
	json.Unmarshal(em.Body, &emu)
	if a := callAs(t, "", d.sock, "POST", api.PathAccounts, `{"name":"`+userSelf+`"}`); a.Status != 201 {
		t.Fatalf("create account: %d %s", a.Status, a.Code)
	}
	enr := callAs(t, "", d.sock, "POST", "/v1/accounts/"+userSelf+"/devices", `{"type":"fido","label":"key"}`)
	if enr.Status/100 != 2 {
		t.Skipf("FIDO enrollment is not served yet (%d %s)", enr.Status, enr.Code)
	}
	probe := callAs(t, "", d.sock, "POST", api.PathAuthenticate, `{"account":"mfad-e2e-nobody","wait_for_key":false}`,
		"Accept: application/x-ndjson")
	if probe.Code == api.CodeInvalidRequest {
		t.Skip("POST /v1/authenticate does not take security keys yet")
	}

	svc := pamService(t, "fido", "auth required MODULE socket="+d.sock+" cue timeout=5 keyfirst")
	out, code := pamtester(t, svc, userSelf, "", "authenticate")
	if code != 0 || !strings.Contains(out, "successfully authenticated") {
		t.Fatalf("key with automatic presence: exit %d\n%s", code, out)
	}
	// Without keyfirst the code prompt comes first: Enter there is the key.
	prompted := pamService(t, "fido-prompt", "auth required MODULE socket="+d.sock+" cue timeout=5")
	out, code = pamtester(t, prompted, userSelf, "\n", "authenticate")
	if code != 0 || !strings.Contains(out, "Enter for a security key") || !strings.Contains(out, "successfully authenticated") {
		t.Fatalf("Enter at the code prompt, then the key: exit %d\n%s", code, out)
	}
	// So is a code, when the account has no OTP device (no_active_device).
	out, code = pamtester(t, prompted, userSelf, "123456\n", "authenticate")
	if code != 0 || !strings.Contains(out, "successfully authenticated") {
		t.Fatalf("a code for a key-only account, then the key: exit %d\n%s", code, out)
	}

	// A key that needs a touch: nobody touches it, the sign-in times out.
	if a := callAs(t, "", d.sock, "DELETE", "/v1/emulators/"+emu.ID, ""); a.Status/100 != 2 {
		t.Fatalf("remove emulator: %d %s", a.Status, a.Code)
	}
	// The same credential lives on the emulator named pam-e2e; a manual one
	// needs its own enrollment.
	em = callAs(t, "", d.sock, "POST", "/v1/emulators", `{"name":"pam-e2e-manual","presence":"manual"}`)
	json.Unmarshal(em.Body, &emu)
	if a := callAs(t, "", d.sock, "POST", api.PathAccounts, `{"name":"`+userOther+`"}`); a.Status != 201 {
		t.Fatalf("create account: %d %s", a.Status, a.Code)
	}
	enrolled := make(chan answer, 1)
	go func() {
		enrolled <- callAs(t, "", d.sock, "POST", "/v1/accounts/"+userOther+"/devices", `{"type":"fido","label":"key"}`)
	}()
	time.Sleep(500 * time.Millisecond)
	callAs(t, "", d.sock, "POST", "/v1/emulators/"+emu.ID+"/touch", "")
	if a := <-enrolled; a.Status/100 != 2 {
		t.Fatalf("enroll with the manual key: %d %s", a.Status, a.Code)
	}
	start := time.Now()
	out, code = pamtester(t, svc, userOther, "", "authenticate")
	if code == 0 || !strings.Contains(out, "Touch your security key") {
		t.Errorf("untouched key: exit %d\n%s", code, out)
	}
	if el := time.Since(start); el > 30*time.Second {
		t.Errorf("timeout=5 took %v", el)
	}

	// Touched while pam_mfad waits (pamtester's stdout is a pipe, so its
	// cue shows only at exit: the key is touched until pamtester ends).
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "pamtester", svc, userOther, "authenticate")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C"}
	var outb syncBuffer
	cmd.Stdout, cmd.Stderr = &outb, &outb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
touching:
	for {
		select {
		case err = <-done:
			break touching
		case <-time.After(300 * time.Millisecond):
			callAs(t, "", d.sock, "POST", "/v1/emulators/"+emu.ID+"/touch", "")
		}
	}
	if err != nil || !strings.Contains(outb.String(), "successfully authenticated") || !strings.Contains(outb.String(), "Touch your security key") {
		t.Errorf("touched key: %v\n%s", err, outb.String())
	}
}

// TestPAMResponseParserFuzz runs the C response parser's fuzz driver (ASan
// and UBSan, or libFuzzer under clang) over its seed corpus and mutations.
func TestPAMResponseParserFuzz(t *testing.T) {
	needTool(t, "make")
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	cmd := exec.Command("make", "-s", "-C", filepath.Join(root, "contrib", "pam"), "O="+out, "fuzz", "FUZZ_RUNS=20000")
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("fuzz driver: %v\n%s", err, b)
	}
	if !strings.Contains(string(b), "no crash") && !strings.Contains(string(b), "Done") {
		t.Errorf("fuzz driver output:\n%s", b)
	}
}
