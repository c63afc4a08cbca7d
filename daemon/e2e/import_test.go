package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestImportGoogleAuthenticator: a file written by google-authenticator
// (the package's own tool, run non-interactively), used once through
// google-authenticator's own PAM module, is imported with mfactl; then
// pam_mfad refuses the code that module already accepted and signs in with
// the next one: the user keeps the same app.
func TestImportGoogleAuthenticator(t *testing.T) {
	needRoot(t)
	for _, tool := range []string{"google-authenticator", "pamtester", "oathtool"} {
		needTool(t, tool)
	}
	gaModule := ""
	for _, p := range []string{"/lib/x86_64-linux-gnu/security", "/usr/lib/x86_64-linux-gnu/security", "/lib/security", "/usr/lib/security"} {
		if _, err := os.Stat(filepath.Join(p, "pam_google_authenticator.so")); err == nil {
			gaModule = filepath.Join(p, "pam_google_authenticator.so")
			break
		}
	}
	if gaModule == "" {
		needTool(t, "pam_google_authenticator.so") // skips, or fails under MFAD_REQUIRE_TOOLS
	}
	d := startDaemon(t, "", "")
	ctx := context.Background()
	if a := callAs(t, "", d.sock, "POST", "/v1/accounts", `{"name":"`+userSelf+`"}`); a.Status != 201 {
		t.Fatalf("create account: %d %s", a.Status, a.Code)
	}
	dir, err := os.MkdirTemp(work, "ga-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	path := filepath.Join(dir, ".google_authenticator")
	if out, err := exec.Command("google-authenticator", "-t", "-d", "-w", "3", "-r", "3", "-R", "30", "-f", "-q", "-Q", "NONE", "-l", "e2e", "-s", path).CombinedOutput(); err != nil {
		t.Fatalf("google-authenticator: %v\n%s", err, out)
	}
	u := users[userSelf]
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// The module rewrites the file (its replay list) as the user: the
	// directory is the user's, as a home directory is.
	for _, p := range []string{dir, path} {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(path)
	secret := strings.SplitN(string(b), "\n", 2)[0]

	// google-authenticator's module accepts the current code and records it.
	gsvc := pamService(t, "ga", "auth required "+gaModule+" secret="+path)
	awayFromStepEdge()
	now := time.Now()
	code := oathtool(t, secret, now)
	if out, rc := pamtester(t, gsvc, userSelf, code+"\n", "authenticate"); rc != 0 {
		t.Fatalf("pam_google_authenticator: exit %d\n%s", rc, out)
	}
	if b, _ = os.ReadFile(path); !strings.Contains(string(b), "\" DISALLOW_REUSE ") {
		t.Fatalf("google-authenticator recorded no used code:\n%s", strings.ReplaceAll(string(b), secret, "SECRET"))
	}

	// A dry run says what it would do and changes nothing.
	out, errs, rc := mfactl(t, d.sock, "import", "google-authenticator", path)
	if rc != 0 || !strings.Contains(out, userSelf+": would import a totp device") || !strings.Contains(out, "scratch codes become single-use temporary codes") || !strings.Contains(errs, "--apply") {
		t.Fatalf("dry run: exit %d\n%s%s", rc, out, errs)
	}
	if strings.Contains(out+errs, secret) {
		t.Fatal("the importer printed the secret")
	}
	if list, err := d.client().Devices(ctx, userSelf); err != nil || len(list.Devices) != 0 {
		t.Fatalf("a dry run wrote: %+v %v", list, err)
	}
	if out, errs, rc = mfactl(t, d.sock, "import", "google-authenticator", path, "--apply"); rc != 0 || !strings.Contains(out, "imported as totp device") {
		t.Fatalf("apply: exit %d\n%s%s", rc, out, errs)
	}
	if out, errs, rc = mfactl(t, d.sock, "--json", "import", "google-authenticator", path, "--apply"); rc != 1 || !strings.Contains(out, `"action":"refused"`) || !strings.Contains(out, "already has this secret") {
		t.Errorf("a second import: exit %d\n%s%s", rc, out, errs)
	}

	// pam_mfad: the code google-authenticator accepted is spent; the next one signs in.
	svc := pamService(t, "ga-mfad", "auth required MODULE socket="+d.sock)
	if out, rc := pamtester(t, svc, userSelf, code+"\n", "authenticate"); rc == 0 || !strings.Contains(out, "already used") {
		t.Errorf("the code google-authenticator accepted: exit %d\n%s", rc, out)
	}
	next := oathtool(t, secret, now.Add(30*time.Second))
	if out, rc := pamtester(t, svc, userSelf, next+"\n", "authenticate"); rc != 0 {
		t.Errorf("the next code through pam_mfad: exit %d\n%s", rc, out)
	}
	// Its scratch codes came along: each signs in once, through pam_mfad.
	var scratch []string
	for _, l := range strings.Split(string(b), "\n")[1:] {
		if l = strings.TrimSpace(l); len(l) == 8 && strings.Trim(l, "0123456789") == "" {
			scratch = append(scratch, l)
		}
	}
	if len(scratch) == 0 {
		t.Fatalf("google-authenticator wrote no scratch code")
	}
	if out, rc := pamtester(t, svc, userSelf, scratch[0]+"\n", "authenticate"); rc != 0 {
		t.Errorf("a scratch code through pam_mfad: exit %d\n%s", rc, out)
	}
	if out, rc := pamtester(t, svc, userSelf, scratch[0]+"\n", "authenticate"); rc == 0 {
		t.Errorf("a scratch code signed in twice:\n%s", out)
	}
	page, err := d.client().Audit(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range page.Events {
		if strings.Contains(e.Detail, secret) || strings.Contains(e.Detail, scratch[0]) {
			t.Errorf("the audit log holds the secret or a scratch code: %+v", e)
		}
		if e.Action == "device.import" && strings.Contains(e.Detail, "from=google-authenticator") {
			found = true
		}
	}
	if !found {
		t.Errorf("no device.import in the audit log: %+v", page.Events)
	}
}
