package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The tests here put a scripted stand-in for mfad on the socket (a small
// HTTP/1.1 server in python3 that answers from a list and records every
// request with the connection it came on), to check what pam_mfad sends:
// how many requests, on how many connections, with which bodies, and that
// it refuses a socket served by a user that is not mfad's.

// wireAnswer is one scripted answer; close drops the connection after it
// without saying so (as mfad does when an idle connection times out), and
// keep keeps it open though the request asked for it to be closed (a
// server that ignores Connection: close).
type wireAnswer struct {
	Status int            `json:"status"`
	Body   map[string]any `json:"body"`
	Close  bool           `json:"close,omitempty"`
	Keep   bool           `json:"keep,omitempty"`
}

// wireRequest is one request the stand-in received.
type wireRequest struct {
	Conn   int            `json:"conn"`
	Method string         `json:"method"`
	Path   string         `json:"path"`
	Body   map[string]any `json:"body"`
}

const fakeMfad = `
import json, socket, sys
sock, script, logpath = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3]
s = socket.socket(socket.AF_UNIX); s.bind(sock); s.listen(8)
log = open(logpath, "a")
print("ready", flush=True)
conn = 0
while True:
    c, _ = s.accept(); conn += 1
    f = c.makefile("rb")
    while True:
        line = f.readline()
        if not line:
            break
        method, path, _ = line.decode().split(" ", 2)
        n, close = 0, False
        while True:
            h = f.readline().decode().strip()
            if not h:
                break
            k, _, v = h.partition(":")
            if k.lower() == "content-length":
                n = int(v)
            if k.lower() == "connection" and v.strip().lower() == "close":
                close = True
        body = f.read(n) if n else b""
        log.write(json.dumps({"conn": conn, "method": method, "path": path,
                              "body": json.loads(body) if body else None}) + "\n"); log.flush()
        a = script.pop(0) if script else {"status": 500, "body": {"code": "internal", "status": 500}}
        out = json.dumps(a["body"]).encode()
        ctype = "application/json" if a["status"] < 300 else "application/problem+json"
        c.sendall(b"HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (a["status"], ctype.encode(), len(out)) + out)
        if (close and not a.get("keep")) or a.get("close"):
            break
    f.close(); c.close()
`

// startFakeMfad serves script on a socket in a new directory, run as who
// (root for ""); it returns the socket and a function that reads the
// requests received so far.
func startFakeMfad(t *testing.T, who string, script ...wireAnswer) (string, func() []wireRequest) {
	t.Helper()
	// The system's python3: another user may not run a shim in root's home.
	python := "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Skipf("%s: %v", python, err)
	}
	dir, err := os.MkdirTemp(work, "fake-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock, logPath, scriptPath := filepath.Join(dir, "mfad.sock"), filepath.Join(dir, "requests.log"), filepath.Join(dir, "script.json")
	b, _ := json.Marshal(script)
	if err := os.WriteFile(scriptPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if who != "" {
		uid, _ := strconv.Atoi(users[who].Uid)
		gid, _ := strconv.Atoi(users[who].Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(dir, 0o755)
	cmd := exec.Command(python, "-c", fakeMfad, sock, scriptPath, logPath)
	runAs(cmd, who)
	cmd.Stderr = os.Stderr
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatalf("python3: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if l, _ := bufio.NewReader(stdout).ReadString('\n'); l != "ready\n" {
		t.Fatalf("the stand-in for mfad did not start: %q", l)
	}
	return sock, func() []wireRequest {
		b, _ := os.ReadFile(logPath)
		var out []wireRequest
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if l == "" {
				continue
			}
			var r wireRequest
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				t.Fatalf("request log %q: %v", l, err)
			}
			out = append(out, r)
		}
		return out
	}
}

func problem(status int, code string, extra ...string) wireAnswer {
	body := map[string]any{"type": "about:blank", "title": code, "status": status, "detail": code, "code": code}
	for i := 0; i+1 < len(extra); i += 2 {
		body[extra[i]] = extra[i+1]
	}
	return wireAnswer{Status: status, Body: body}
}

var signedIn = wireAnswer{Status: 200, Body: map[string]any{"ok": true, "method": "device", "account": userSelf,
	"device": map[string]any{"id": "d1", "type": "totp", "label": "phone"}}}

// requestsAre checks the method and path of each request, in order.
func requestsAre(t *testing.T, got []wireRequest, want ...string) {
	t.Helper()
	var have []string
	for _, r := range got {
		have = append(have, r.Method+" "+r.Path)
	}
	if strings.Join(have, ", ") != strings.Join(want, ", ") {
		t.Errorf("requests:\n have %v\n want %v", have, want)
	}
}

// TestPAMWireTOTP: a plain TOTP sign-in is the prompt, then one request
// carrying the code, and nothing else.
func TestPAMWireTOTP(t *testing.T) {
	needRoot(t)
	needTool(t, "pamtester")
	t.Parallel()
	sock, requests := startFakeMfad(t, "", signedIn)
	svc := pamService(t, "wire-totp", "auth required MODULE socket="+sock)
	out, code := pamtester(t, svc, userSelf, "123456\n", "authenticate")
	if code != 0 || !strings.Contains(out, "Verification code") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	got := requests()
	requestsAre(t, got, "POST /v1/authenticate")
	if len(got) == 1 && (got[0].Body["account"] != userSelf || got[0].Body["code"] != "123456" || len(got[0].Body) != 2) {
		t.Errorf("body: %v", got[0].Body)
	}
}

// TestPAMWireNoOTPDevice: a code for an account without an OTP device
// leads to the device list and the account. The code's request asks mfad
// to close its connection (its answer usually ends the sign-in), and
// pam_mfad opens no request on it after that even when the server keeps it
// open; the list and the account share the next, kept-alive connection,
// and one that mfad dropped as idle is replaced.
func TestPAMWireNoOTPDevice(t *testing.T) {
	needRoot(t)
	needTool(t, "pamtester")
	t.Parallel()
	noActive := problem(409, "no_active_device")
	noDevices := wireAnswer{Status: 200, Body: map[string]any{"devices": []any{}}}
	neverEnrolled := wireAnswer{Status: 200, Body: map[string]any{"name": userSelf, "kind": "member", "ever_enrolled": false}}
	ignoredClose, dropped := noActive, noDevices
	ignoredClose.Keep, dropped.Close = true, true
	for _, tc := range []struct {
		name   string
		script []wireAnswer
		conns  []int // of each request, in order
	}{
		{"kept-alive", []wireAnswer{noActive, noDevices, neverEnrolled}, []int{1, 2, 2}},
		{"close-ignored", []wireAnswer{ignoredClose, noDevices, neverEnrolled}, []int{1, 2, 2}},
		{"dropped", []wireAnswer{noActive, dropped, neverEnrolled}, []int{1, 2, 3}},
	} {
		sock, requests := startFakeMfad(t, "", tc.script...)
		svc := pamService(t, "wire-nodev-"+tc.name, "auth required MODULE socket="+sock)
		out, code := pamtester(t, svc, userSelf, "123456\n", "authenticate")
		if code == 0 || !strings.Contains(out, "No MFA device is enrolled") {
			t.Errorf("%s: exit %d\n%s", tc.name, code, out)
		}
		got := requests()
		requestsAre(t, got, "POST /v1/authenticate", "GET /v1/accounts/"+userSelf+"/devices", "GET /v1/accounts/"+userSelf)
		var conns []int
		for _, r := range got {
			conns = append(conns, r.Conn)
		}
		if fmt.Sprint(conns) != fmt.Sprint(tc.conns) {
			t.Errorf("%s: requests on connections %v, want %v: %+v", tc.name, conns, tc.conns, got)
		}
	}
}

// TestPAMWireRefusals: a refusal with "hint": "resync" asks for the next
// code and sends both in one request; code_already_used asks for a fresh
// code once; account_disabled and a plain invalid_code end the sign-in.
func TestPAMWireRefusals(t *testing.T) {
	needRoot(t)
	needTool(t, "pamtester")
	t.Parallel()
	resyncHint := problem(403, "invalid_code", "hint", "resync")
	for _, tc := range []struct {
		name, stdin string
		script      []wireAnswer
		ok          bool
		say, not    []string
		bodies      []map[string]any // of each request, in order
	}{
		{"resync", "111111\n222222\n", []wireAnswer{resyncHint, signedIn}, true,
			[]string{"If your device's clock may be off, enter the next code it shows", "Next code"}, nil,
			[]map[string]any{{"account": userSelf, "code": "111111"}, {"account": userSelf, "code": "111111", "next_code": "222222"}}},
		{"resync-refused", "111111\n222222\n333333\n", []wireAnswer{resyncHint, resyncHint}, false, nil, nil,
			[]map[string]any{{"account": userSelf, "code": "111111"}, {"account": userSelf, "code": "111111", "next_code": "222222"}}},
		{"resync-given-up", "111111\n\n", []wireAnswer{resyncHint}, false, []string{"Next code"}, nil,
			[]map[string]any{{"account": userSelf, "code": "111111"}}},
		{"invalid", "111111\n222222\n", []wireAnswer{problem(403, "invalid_code")}, false,
			[]string{"Invalid code"}, []string{"Next code"}, []map[string]any{{"account": userSelf, "code": "111111"}}},
		{"used", "111111\n333333\n", []wireAnswer{problem(403, "code_already_used"), signedIn}, true,
			[]string{"already used. Wait for the next code"}, nil,
			[]map[string]any{{"account": userSelf, "code": "111111"}, {"account": userSelf, "code": "333333"}}},
		{"used-twice", "111111\n333333\n444444\n", []wireAnswer{problem(403, "code_already_used"), problem(403, "code_already_used")},
			false, nil, nil, []map[string]any{{"account": userSelf, "code": "111111"}, {"account": userSelf, "code": "333333"}}},
		{"disabled", "111111\n", []wireAnswer{problem(403, "account_disabled")}, false,
			[]string{"This account is disabled"}, nil, []map[string]any{{"account": userSelf, "code": "111111"}}},
	} {
		sock, requests := startFakeMfad(t, "", tc.script...)
		svc := pamService(t, "wire-"+tc.name, "auth required MODULE socket="+sock)
		out, code := pamtester(t, svc, userSelf, tc.stdin, "authenticate")
		if (code == 0) != tc.ok {
			t.Errorf("%s: exit %d\n%s", tc.name, code, out)
		}
		for _, w := range tc.say {
			if !strings.Contains(out, w) {
				t.Errorf("%s: %q not said:\n%s", tc.name, w, out)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(out, w) {
				t.Errorf("%s: %q said:\n%s", tc.name, w, out)
			}
		}
		noCodeIn(t, out, "111111", "222222", "333333")
		got := requests()
		if len(got) != len(tc.bodies) {
			t.Errorf("%s: %d requests, want %d: %+v", tc.name, len(got), len(tc.bodies), got)
			continue
		}
		for i, r := range got {
			b, _ := json.Marshal(r.Body)
			w, _ := json.Marshal(tc.bodies[i])
			// Each code on a connection of its own: its request asks
			// mfad to close it after the answer.
			if r.Method+" "+r.Path != "POST /v1/authenticate" || string(b) != string(w) || r.Conn != i+1 {
				t.Errorf("%s: request %d: %s %s on connection %d %s, want %s", tc.name, i, r.Method, r.Path, r.Conn, b, w)
			}
		}
	}
}

// TestPAMPeerCredentials: a socket served by a user other than root or
// the service user gets no code: the sign-in fails closed, with
// nodaemonok too, and says why; server_user= names the service user.
func TestPAMPeerCredentials(t *testing.T) {
	needRoot(t)
	needTool(t, "pamtester")
	t.Parallel()
	sock, requests := startFakeMfad(t, userOther, signedIn, signedIn)
	for _, opts := range []string{"", " nodaemonok", " server_user=" + userAdmin, " server_user=no-such-user"} {
		svc := pamService(t, "peer"+strings.NewReplacer(" ", "-", "=", "-").Replace(opts), "auth required MODULE socket="+sock+opts)
		out, code := pamtester(t, svc, userSelf, "123456\n", "authenticate")
		if code == 0 || !strings.Contains(out, "cannot be trusted") {
			t.Errorf("%q: a socket served by %s: exit %d\n%s", opts, userOther, code, out)
		}
	}
	if got := requests(); len(got) != 0 {
		t.Fatalf("requests reached a socket not served by mfad: %+v", got)
	}
	// The account step is refused the same way.
	acct := pamService(t, "peer-acct", "account required MODULE socket="+sock)
	if out, code := pamtester(t, acct, userSelf, "", "acct_mgmt"); code == 0 {
		t.Errorf("account step against a foreign socket passed:\n%s", out)
	}
	// Named as the service user, it is mfad.
	svc := pamService(t, "peer-named", "auth required MODULE socket="+sock+" server_user="+userOther)
	if out, code := pamtester(t, svc, userSelf, "123456\n", "authenticate"); code != 0 {
		t.Errorf("server_user=%s: exit %d\n%s", userOther, code, out)
	}
	requestsAre(t, requests(), "POST /v1/authenticate")
}

// slowAnswers gives each answer after a pause, as a person typing does.
type slowAnswers struct {
	lines []string
	pause time.Duration
}

func (s *slowAnswers) Read(p []byte) (int, error) {
	if len(s.lines) == 0 {
		return 0, io.EOF
	}
	time.Sleep(s.pause)
	n := copy(p, s.lines[0]+"\n")
	s.lines = s.lines[1:]
	return n, nil
}

// TestPAMSlowTyping: mfad drops a connection that stays idle (here after
// 1 s); a user who types slowly still signs in: the connection opened
// before the prompt (nodaemonok) and the one kept alive between two
// prompts are replaced.
func TestPAMSlowTyping(t *testing.T) {
	needRoot(t)
	needTool(t, "pamtester")
	t.Parallel()
	d := startDaemon(t, "", "[limits]\nread_header_timeout = \"1s\"\nidle_timeout = \"1s\"\n")
	_, secret := enrollTOTP(t, d, userSelf, "member")
	svc := pamService(t, "slow", "auth required MODULE socket="+d.sock+" nodaemonok")
	// The activation spent the current step: its code is "already used",
	// and the next one signs in after a second prompt.
	now := time.Now()
	used, good := oathtool(t, secret, now), oathtool(t, secret, now.Add(30*time.Second))
	out, code := pamtesterFrom(t, svc, userSelf, &slowAnswers{lines: []string{used, good}, pause: 2500 * time.Millisecond}, "authenticate")
	if code != 0 || !strings.Contains(out, "already used") {
		t.Fatalf("slow typing: exit %d\n%s", code, out)
	}
}
