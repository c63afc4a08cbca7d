package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mfad/mfad/ipc/api"
)

// oathtool is the independent TOTP generator: the codes typed into mfad
// come from Debian's oathtool, not from our own code.
func oathtool(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	path, err := exec.LookPath("oathtool")
	if err != nil {
		if os.Getenv("MFAD_REQUIRE_TOOLS") == "1" {
			t.Fatal("oathtool is not installed (make deps installs it)")
		}
		t.Skip("oathtool is not installed")
	}
	out, err := exec.Command(path, "--totp", "-b", secret, "-N", "@"+strconv.FormatInt(at.Unix(), 10)).Output()
	if err != nil {
		t.Fatalf("oathtool: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// awayFromStepEdge waits until at least 3 s remain in the current 30 s
// step, so that a code computed now is still current when mfad checks it.
func awayFromStepEdge() {
	if rem := 30 - time.Now().Unix()%30; rem < 3 {
		time.Sleep(time.Duration(rem)*time.Second + 200*time.Millisecond)
	}
}

// mfactlCmd prepares mfactl as a test user (or root for "").
func mfactlCmd(who, sock string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(binDir, "mfactl"), append([]string{"--socket", sock}, args...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/"}
	runAs(cmd, who)
	return cmd
}

// mfactlAs runs mfactl as a test user (or root for "").
func mfactlAs(t *testing.T, who, sock string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := mfactlCmd(who, sock, args...)
	cmd.Env = append(cmd.Env, env...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// TestTOTPEndToEnd: a user enrolls their own authenticator app through
// mfactl, activates it with two oathtool codes, signs in, sees the replay
// refused, then a token whose clock runs 10 minutes fast is answered
// invalid_code (a single code reveals no drift), resyncs with two codes and signs in again.
func TestTOTPEndToEnd(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, "", "admin_group = \""+adminGroup+"\"\n")
	me := userSelf

	out, errs, code := mfactlAs(t, me, d.sock, nil, "--json", "device", "add", "totp", me, "--label", "phone")
	if code != 0 {
		t.Fatalf("enroll: %d %s", code, errs)
	}
	var enr api.Enrollment
	if err := json.Unmarshal([]byte(out), &enr); err != nil || enr.Secret == "" || enr.Device.State != "pending" {
		t.Fatalf("enrollment %q: %v", out, err)
	}
	id, secret := enr.Device.ID, enr.Secret

	awayFromStepEdge()
	now := time.Now()
	if out, errs, code = mfactlAs(t, me, d.sock, nil, "device", "activate", me, id,
		oathtool(t, secret, now.Add(-30*time.Second)), oathtool(t, secret, now)); code != 0 {
		t.Fatalf("activate: %s %s", out, errs)
	}
	// The activation spent the current code; the device's next one (within
	// the ±1 step window) signs in.
	c := oathtool(t, secret, now.Add(30*time.Second))
	out, errs, code = mfactlAs(t, me, d.sock, nil, "--json", "authenticate", me, c)
	if code != 0 {
		t.Fatalf("authenticate: %s %s", out, errs)
	}
	var res api.AuthResult
	json.Unmarshal([]byte(out), &res)
	if !res.OK || res.StepUpToken == "" || res.Warning == "" {
		t.Errorf("auth result %+v (a single device must be warned about)", res)
	}
	if _, errs, code = mfactlAs(t, me, d.sock, nil, "authenticate", me, c); code == 0 || !strings.Contains(errs, "[code_already_used]") {
		t.Errorf("replayed code: %d %s", code, errs)
	}

	// The token's clock now runs 10 minutes fast.
	fast := 10 * time.Minute
	awayFromStepEdge()
	_, errs, code = mfactlAs(t, me, d.sock, nil, "authenticate", me, oathtool(t, secret, time.Now().Add(fast)))
	if code == 0 || !strings.Contains(errs, "[invalid_code]") || strings.Contains(errs, "drift") {
		t.Fatalf("fast token: %d %s", code, errs)
	}
	awayFromStepEdge()
	now = time.Now().Add(fast)
	out, errs, code = mfactlAs(t, me, d.sock, nil, "--json", "device", "resync", me, id,
		oathtool(t, secret, now.Add(-30*time.Second)), oathtool(t, secret, now))
	if code != 0 {
		t.Fatalf("resync: %s %s", out, errs)
	}
	var dev api.Device
	json.Unmarshal([]byte(out), &dev)
	if dev.OTP == nil || dev.OTP.DriftSteps != 20 {
		t.Errorf("drift after resync: %+v", dev.OTP)
	}
	// The resync spent its codes; the fast token's next code signs in.
	if out, errs, code = mfactlAs(t, me, d.sock, nil, "authenticate", me, oathtool(t, secret, now.Add(30*time.Second))); code != 0 {
		t.Fatalf("after resync: %s %s", out, errs)
	}

	// The audit log tells the story, without a code.
	out, _, _ = mfactl(t, d.sock, "--json", "audit", "--all")
	var story []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e api.AuditEvent
		json.Unmarshal([]byte(line), &e)
		story = append(story, e.Action+":"+e.Outcome)
		if regexp.MustCompile(`\b\d{6}\b`).MatchString(e.Detail) {
			t.Errorf("audit detail looks like a code: %q", e.Detail)
		}
	}
	want := "account.create:ok device.enroll:ok device.activate:ok authenticate:ok authenticate:fail authenticate:fail device.resync:ok authenticate:ok"
	if got := strings.Join(story, " "); got != want {
		t.Errorf("audit story:\n got %s\nwant %s", got, want)
	}
}

// TestStepUpWithRealUsers: a second device needs a step-up token; a token
// bound to another uid or another account does not serve.
func TestStepUpWithRealUsers(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, "", "admin_group = \""+adminGroup+"\"\n")
	me := userSelf
	enroll := func(who, account string, env []string) (string, string, int) {
		return mfactlAs(t, who, d.sock, env, "--json", "device", "add", "totp", account, "--no-qr")
	}
	out, errs, code := enroll(me, me, nil)
	if code != 0 {
		t.Fatal(errs)
	}
	var enr api.Enrollment
	json.Unmarshal([]byte(out), &enr)
	awayFromStepEdge()
	now := time.Now()
	if _, errs, code = mfactlAs(t, me, d.sock, nil, "device", "activate", me, enr.Device.ID,
		oathtool(t, enr.Secret, now.Add(-30*time.Second)), oathtool(t, enr.Secret, now)); code != 0 {
		t.Fatal(errs)
	}
	if _, errs, code = enroll(me, me, nil); code == 0 || !strings.Contains(errs, `"code":"step_up_required"`) {
		t.Fatalf("second device without step-up: %d %s", code, errs)
	}
	// A token uid 0 obtained for this account is bound to uid 0. (Each
	// sign-in uses the device's next code: the window is ±1 step around the
	// learned drift.)
	rootTok, errs, code := mfactlAs(t, "", d.sock, nil, "authenticate", "--token-only", me, oathtool(t, enr.Secret, now.Add(30*time.Second)))
	if code != 0 {
		t.Fatal(errs)
	}
	rootTok = strings.TrimSpace(rootTok)
	if _, errs, code = enroll(me, me, []string{"MFAD_STEP_UP=" + rootTok}); code == 0 || !strings.Contains(errs, `"code":"step_up_required"`) {
		t.Errorf("another uid's token: %d %s", code, errs)
	}
	// The user's own token works.
	tok, errs, code := mfactlAs(t, me, d.sock, nil, "authenticate", "--token-only", me, oathtool(t, enr.Secret, now.Add(60*time.Second)))
	if code != 0 {
		t.Fatal(errs)
	}
	tok = strings.TrimSpace(tok)
	if _, errs, code = enroll(me, me, []string{"MFAD_STEP_UP=" + tok}); code != 0 {
		t.Errorf("own token: %s", errs)
	}
	// A token for this account does not serve another account.
	other := callAs(t, userOther, d.sock, "POST", "/v1/accounts/"+userOther+"/devices", `{"type":"totp"}`)
	if other.Status != 201 {
		t.Fatalf("bootstrap of the other user: %d %s", other.Status, other.Code)
	}
	var oe api.Enrollment
	json.Unmarshal(other.Body, &oe)
	awayFromStepEdge()
	now = time.Now()
	act := callAs(t, userOther, d.sock, "POST", fmt.Sprintf("/v1/accounts/%s/devices/%s/activate", userOther, oe.Device.ID),
		fmt.Sprintf(`{"code1":%q,"code2":%q}`, oathtool(t, oe.Secret, now.Add(-30*time.Second)), oathtool(t, oe.Secret, now)))
	if act.Status != 200 {
		t.Fatalf("activate other: %d %s", act.Status, act.Code)
	}
	got := callAs(t, userOther, d.sock, "POST", "/v1/accounts/"+userOther+"/devices", `{"type":"totp"}`, "Authorization: Bearer "+tok)
	if got.Status != 403 || got.Code != api.CodeStepUpRequired {
		t.Errorf("a token for another account: %d %s", got.Status, got.Code)
	}
}
