package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const gaSecret = "5CMNRBVV4GKTKCQFFUJUNWKA5I"

func TestParseGoogleAuthenticator(t *testing.T) {
	// What google-authenticator -t -d -f -r 3 -R 30 -w 3 writes, after two
	// sign-ins.
	f, err := parseGoogleAuthenticator(strings.NewReader(gaSecret + "\n\" RATE_LIMIT 3 30 1764860000\n\" WINDOW_SIZE 3\n\" DISALLOW_REUSE 58828665 58828666\n\" TOTP_AUTH\n61983103\n95574039\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := f.req
	if r.Kind != "totp" || r.Secret != gaSecret || len(r.UsedSteps) != 2 || r.UsedSteps[1] != 58828666 || f.scratch != 2 || r.Source != "google-authenticator" {
		t.Errorf("totp file: %+v", f)
	}
	if len(f.notes) != 3 {
		t.Errorf("notes (window, rate limit, scratch codes): %q", f.notes)
	}
	f, err = parseGoogleAuthenticator(strings.NewReader(strings.ToLower(gaSecret) + "\n\" HOTP_COUNTER 7\n\" STEP_SIZE 60\n"))
	if err != nil || f.req.Kind != "hotp" || f.req.Counter != 7 || f.req.Secret != gaSecret || f.req.Period != 0 {
		t.Errorf("hotp file: %+v %v", f, err)
	}
	f, err = parseGoogleAuthenticator(strings.NewReader(gaSecret + "\n\" STEP_SIZE 60\n\" DISALLOW_REUSE\n"))
	if err != nil || f.req.Period != 60 || f.req.UsedSteps != nil {
		t.Errorf("step size: %+v %v", f, err)
	}
	for name, bad := range map[string]string{
		"empty":           "",
		"not base32":      "not a secret!\n",
		"quoted first":    "\" TOTP_AUTH\n",
		"bad number":      gaSecret + "\n\" HOTP_COUNTER x\n",
		"two counters":    gaSecret + "\n\" HOTP_COUNTER 1 2\n",
		"junk line":       gaSecret + "\nhello\n",
		"short scratch":   gaSecret + "\n1234\n",
		"huge step":       gaSecret + "\n\" STEP_SIZE 99999\n",
		"secret in error": gaSecret + "\n" + gaSecret + "\n",
	} {
		_, err := parseGoogleAuthenticator(strings.NewReader(bad))
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), gaSecret) || strings.Contains(strings.ToUpper(err.Error()), "NOT A SECRET") {
			t.Errorf("%s: the error quotes the file: %v", name, err)
		}
	}
}

// TestParseRealGoogleAuthenticatorFile reads what the package's own tool
// writes.
func TestParseRealGoogleAuthenticatorFile(t *testing.T) {
	tool, err := exec.LookPath("google-authenticator")
	if err != nil {
		if os.Getenv("MFAD_REQUIRE_TOOLS") == "1" {
			t.Fatal("google-authenticator is not installed (make deps installs libpam-google-authenticator)")
		}
		t.Skip("google-authenticator is not installed")
	}
	for _, mode := range [][]string{{"-t", "-d", "-w", "3", "-r", "3", "-R", "30"}, {"-c", "-w", "5", "-u"}} {
		path := filepath.Join(t.TempDir(), "ga")
		cmd := exec.Command(tool, append(mode, "-f", "-q", "-Q", "NONE", "-l", "test", "-s", path)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", mode, err, out)
		}
		b, _ := os.ReadFile(path)
		f, err := parseGoogleAuthenticator(strings.NewReader(string(b)))
		if err != nil {
			t.Fatalf("%v: %v", mode, err)
		}
		want := map[string]string{"-t": "totp", "-c": "hotp"}[mode[0]]
		if f.req.Kind != want || f.scratch == 0 || !strings.HasPrefix(string(b), f.req.Secret+"\n") {
			t.Errorf("%v: %+v", mode, f)
		}
	}
}

func TestParseOTPAuth(t *testing.T) {
	r, err := parseOTPAuth("otpauth://totp/Example:alice@example.org?secret=" + strings.ToLower(gaSecret) + "&issuer=Example&algorithm=sha256&digits=8&period=60")
	if err != nil || r.Kind != "totp" || r.Secret != gaSecret || r.Label != "Example:alice@example.org" || r.Algorithm != "SHA256" || r.Digits != 8 || r.Period != 60 {
		t.Errorf("totp: %+v %v", r, err)
	}
	r, err = parseOTPAuth("otpauth://hotp/alice?secret=" + gaSecret + "&issuer=Lab&counter=42")
	if err != nil || r.Kind != "hotp" || r.Counter != 42 || r.Label != "Lab:alice" {
		t.Errorf("hotp: %+v %v", r, err)
	}
	for _, bad := range []string{
		"https://example.org/?secret=" + gaSecret,
		"otpauth://motp/x?secret=" + gaSecret,
		"otpauth://totp/x",
		"otpauth://totp/x?secret=" + gaSecret + "&digits=many",
		"otpauth://hotp/x?secret=" + gaSecret,
		"otpauth://hotp/x?secret=" + gaSecret + "&counter=1&period=30",
		"otpauth://totp/x?secret=" + gaSecret + "&period=-5",
	} {
		if _, err := parseOTPAuth(bad); err == nil {
			t.Errorf("%q accepted", bad)
		} else if strings.Contains(err.Error(), gaSecret) {
			t.Errorf("%q: the error quotes the secret: %v", bad, err)
		}
	}
}

// FuzzParseGoogleAuthenticator: any file is parsed or refused, never a
// panic, and what is accepted is a request mfad can judge.
func FuzzParseGoogleAuthenticator(f *testing.F) {
	f.Add(gaSecret + "\n\" RATE_LIMIT 3 30\n\" WINDOW_SIZE 3\n\" DISALLOW_REUSE 1 2\n\" TOTP_AUTH\n61983103\n")
	f.Add(gaSecret + "\n\" HOTP_COUNTER 1\n")
	f.Add("\n\n\"")
	f.Fuzz(func(t *testing.T, s string) {
		g, err := parseGoogleAuthenticator(strings.NewReader(s))
		if err != nil {
			return
		}
		if g.req.Secret == "" || (g.req.Kind != "totp" && g.req.Kind != "hotp") || (g.req.Kind == "hotp" && len(g.req.UsedSteps) > 0) {
			t.Errorf("accepted %q as %+v", s, g.req)
		}
	})
}

// FuzzParseOTPAuth: any line is parsed or refused, never a panic.
func FuzzParseOTPAuth(f *testing.F) {
	f.Add("otpauth://totp/Example:alice?secret=" + gaSecret + "&issuer=Example")
	f.Add("otpauth://hotp/x?secret=" + gaSecret + "&counter=3")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseOTPAuth(s)
		if err != nil {
			return
		}
		if r.Secret == "" || len(r.Label) > 64 || (r.Kind == "hotp" && r.Period != 0) {
			t.Errorf("accepted %q as %+v", s, r)
		}
	})
}
