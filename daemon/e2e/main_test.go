package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mfad/mfad/ipc/client"
)

// Test users and group, created once per run as root.
const (
	adminGroup = "mfad-e2e-admins"
	userAdmin  = "mfad-e2e-adm"   // member of adminGroup
	userSelf   = "mfad-e2e-alice" // has an account
	userOther  = "mfad-e2e-bob"   // another local user
)

var (
	work   string // a directory every test user can read: binaries live here
	binDir string
	users  = map[string]*user.User{}
	adminG int
)

func TestMain(m *testing.M) {
	if os.Getenv("MFAD_E2E_HELPER") != "" {
		os.Exit(helperMain())
	}
	// The test users and the admin group are the machine's: one run at a
	// time creates, uses and removes them.
	if err := lockMachine(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		os.Exit(1)
	}
	code, err := setup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		os.Exit(1)
	}
	if code == 0 {
		code = m.Run()
	}
	teardown()
	os.Exit(code)
}

// machineLock is held (and kept from the garbage collector, which would
// close it) until the process exits, which releases it.
var machineLock *os.File

// lockMachine waits for other runs of these tests on this machine to end.
func lockMachine() error {
	if os.Getuid() != 0 {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "mfad-e2e.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return err
	}
	machineLock = f
	return nil
}

func setup() (int, error) {
	var err error
	work, err = os.MkdirTemp("", "mfad-e2e-")
	if err != nil {
		return 1, err
	}
	if err := os.Chmod(work, 0o755); err != nil {
		return 1, err
	}
	binDir = filepath.Join(work, "bin")
	root, err := moduleRoot()
	if err != nil {
		return 1, err
	}
	for _, b := range []struct{ name, pkg string }{{"mfad", "./daemon/cmd/mfad"}, {"mfactl", "./contrib/mfactl"}} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, b.name), b.pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return 1, fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
		}
	}
	// The test binary itself doubles as a client run under other uids.
	self, err := os.Executable()
	if err != nil {
		return 1, err
	}
	if err := copyFile(self, filepath.Join(binDir, "e2e.test"), 0o755); err != nil {
		return 1, err
	}
	if os.Getuid() == 0 {
		if err := createUsers(); err != nil {
			return 1, err
		}
	}
	return 0, nil
}

func teardown() {
	if os.Getuid() == 0 && os.Getenv("MFAD_E2E_KEEP_USERS") == "" {
		for _, n := range []string{userAdmin, userSelf, userOther} {
			exec.Command("userdel", n).Run()
		}
		exec.Command("groupdel", adminGroup).Run()
	}
	os.RemoveAll(work)
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}

func createUsers() error {
	if _, err := user.LookupGroup(adminGroup); err != nil {
		if out, err := exec.Command("groupadd", "--system", adminGroup).CombinedOutput(); err != nil {
			return fmt.Errorf("groupadd: %v: %s", err, out)
		}
	}
	g, err := user.LookupGroup(adminGroup)
	if err != nil {
		return err
	}
	adminG, _ = strconv.Atoi(g.Gid)
	for _, n := range []string{userAdmin, userSelf, userOther} {
		if _, err := user.Lookup(n); err != nil {
			args := []string{"--system", "--no-create-home", "--shell", "/usr/sbin/nologin"}
			if n == userAdmin {
				args = append(args, "--groups", adminGroup)
			}
			if out, err := exec.Command("useradd", append(args, n)...).CombinedOutput(); err != nil {
				return fmt.Errorf("useradd %s: %v: %s", n, err, out)
			}
		}
		u, err := user.Lookup(n)
		if err != nil {
			return err
		}
		users[n] = u
	}
	return nil
}

// needRoot skips a test that needs real distinct uids, unless the run
// demands them (CI: MFAD_REQUIRE_ROOT=1).
func needRoot(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		if os.Getenv("MFAD_REQUIRE_ROOT") == "1" {
			t.Fatal("this test needs root to create test users (MFAD_REQUIRE_ROOT=1)")
		}
		t.Skip("needs root to create test users")
	}
}

// daemon is a running mfad.
type daemon struct {
	t      *testing.T
	dir    string
	sock   string
	state  string
	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan error
	attr   *syscall.SysProcAttr // nil: mfad runs as root
	args   []string             // of the last start
}

// startDaemon runs mfad on a fresh socket and state dir under a new
// directory (or on state when given) and waits until it answers.
func startDaemon(t *testing.T, state string, config string) *daemon {
	t.Helper()
	dir, err := os.MkdirTemp(work, "d-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	if state == "" {
		state = filepath.Join(dir, "state")
	}
	d := &daemon{t: t, dir: dir, sock: filepath.Join(dir, "mfad.sock"), state: state}
	args := []string{"--socket", d.sock, "--state-dir", d.state}
	if config != "" {
		p := filepath.Join(dir, "mfad.toml")
		if err := os.WriteFile(p, []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", p)
	}
	d.start(args...)
	t.Cleanup(d.stop)
	return d
}

func (d *daemon) start(args ...string) {
	d.args = args
	d.stderr = &syncBuffer{}
	d.cmd = exec.Command(filepath.Join(binDir, "mfad"), args...)
	d.cmd.Stderr = d.stderr
	d.cmd.Env = append(os.Environ(), "NOTIFY_SOCKET=", "LISTEN_FDS=")
	d.cmd.SysProcAttr = d.attr
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.exited = make(chan error, 1)
	go func() { d.exited <- d.cmd.Wait() }()
	d.waitReady()
}

func (d *daemon) waitReady() {
	d.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-d.exited:
			d.t.Fatalf("mfad exited early: %v\n%s", err, d.stderr.String())
		default:
		}
		c, err := net.Dial("unix", d.sock)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.t.Fatalf("mfad did not start listening\n%s", d.stderr.String())
}

func (d *daemon) stop() {
	if d.cmd.ProcessState != nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(15 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
	}
}

func (d *daemon) client() *client.Client { return &client.Client{Socket: d.sock} }

// syncBuffer is a bytes.Buffer safe for a writer goroutine and readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// answer is what a helper process saw for one request.
type answer struct {
	Status int             `json:"status"`
	Code   string          `json:"code"`
	Body   json.RawMessage `json:"body"`
}

// callAs makes one HTTP request as the named user (root: "" ) from a
// separate process running under that uid and its groups.
//
// It runs curl (small and quick to start, and an independent HTTP client)
// under the user's uid and groups; without curl, the test binary itself.
func callAs(t *testing.T, who, sock, method, path, body string, hdr ...string) answer {
	t.Helper()
	if curl, err := exec.LookPath("curl"); err == nil {
		return curlAs(t, curl, who, sock, method, path, body, hdr)
	}
	out := runHelper(t, who, []string{"MFAD_E2E_HELPER=call", "MFAD_E2E_SOCK=" + sock, "MFAD_E2E_METHOD=" + method,
		"MFAD_E2E_PATH=" + path, "MFAD_E2E_BODY=" + body, "MFAD_E2E_HEADER=" + strings.Join(hdr, "\n")}, nil)
	var a answer
	if err := json.Unmarshal(out, &a); err != nil {
		t.Fatalf("helper output %q: %v", out, err)
	}
	return a
}

func curlAs(t *testing.T, curl, who, sock, method, path, body string, hdr []string) answer {
	t.Helper()
	args := []string{"-sS", "--max-time", "30", "--unix-socket", sock, "-X", method, "-o", "-", "-w", "\n%{http_code}"}
	if body != "" {
		args = append(args, "-H", "Content-Type: application/json", "--data-binary", "@-")
	}
	for _, h := range hdr {
		args = append(args, "-H", h)
	}
	cmd := exec.Command(curl, append(args, "http://mfad"+path)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.Stdin = strings.NewReader(body)
	runAs(cmd, who)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("curl as %q: %v\n%s", who, err, stderr.String())
	}
	i := bytes.LastIndexByte(out, '\n')
	a := answer{}
	a.Status, _ = strconv.Atoi(string(out[i+1:]))
	b := out[:i]
	var p struct{ Code string }
	if json.Unmarshal(b, &p) == nil {
		a.Code = p.Code
	}
	if json.Valid(b) {
		a.Body = b
	}
	return a
}

func runHelper(t *testing.T, who string, env []string, stdin io.Reader) []byte {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "e2e.test"), "-test.run=^$")
	cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
	cmd.Stdin = stdin
	runAs(cmd, who)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper as %q: %v\n%s", who, err, stderr.String())
	}
	return out
}

// helperMain runs in a child process under another uid.
func helperMain() int {
	sock := os.Getenv("MFAD_E2E_SOCK")
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}, Timeout: 30 * time.Second}
	switch os.Getenv("MFAD_E2E_HELPER") {
	case "call":
		var body io.Reader
		if b := os.Getenv("MFAD_E2E_BODY"); b != "" {
			body = strings.NewReader(b)
		}
		req, _ := http.NewRequest(os.Getenv("MFAD_E2E_METHOD"), "http://mfad"+os.Getenv("MFAD_E2E_PATH"), body)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		for _, h := range strings.Split(os.Getenv("MFAD_E2E_HEADER"), "\n") {
			if k, v, ok := strings.Cut(h, ": "); ok {
				req.Header.Set(k, v)
			}
		}
		resp, err := hc.Do(req)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		a := answer{Status: resp.StatusCode}
		var p struct{ Code string }
		if json.Unmarshal(b, &p) == nil {
			a.Code = p.Code
		}
		if json.Valid(b) {
			a.Body = b
		}
		json.NewEncoder(os.Stdout).Encode(a)
		return 0
	case "burst":
		// One connection per request body (JSON lines on stdin), all
		// connected first, then every request sent at once; prints the
		// answers as a JSON array, in the order of the bodies.
		var bodies []string
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			bodies = append(bodies, sc.Text())
		}
		conns := make([]net.Conn, len(bodies))
		for i := range bodies {
			c, err := net.Dial("unix", sock)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			conns[i] = c
		}
		answers := make([]answer, len(bodies))
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, body := range bodies {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				fmt.Fprintf(conns[i], "POST %s HTTP/1.1\r\nHost: mfad\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
					os.Getenv("MFAD_E2E_PATH"), len(body), body)
				resp, err := http.ReadResponse(bufio.NewReader(conns[i]), nil)
				if err != nil {
					answers[i].Code = "transport: " + err.Error()
					return
				}
				b, _ := io.ReadAll(resp.Body)
				answers[i].Status = resp.StatusCode
				var p struct{ Code string }
				if json.Unmarshal(b, &p) == nil {
					answers[i].Code = p.Code
				}
			}()
		}
		close(start)
		wg.Wait()
		json.NewEncoder(os.Stdout).Encode(answers)
		return 0
	case "hold":
		// Open N connections, report how many were admitted, and hold
		// them until stdin closes.
		n, _ := strconv.Atoi(os.Getenv("MFAD_E2E_N"))
		var conns []net.Conn
		admitted, refused := 0, 0
		for range n {
			c, err := net.Dial("unix", sock)
			if err != nil {
				refused++
				continue
			}
			fmt.Fprintf(c, "GET /v1/info HTTP/1.1\r\nHost: mfad\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil || resp.StatusCode != 200 {
				refused++
				c.Close()
				continue
			}
			io.Copy(io.Discard, resp.Body)
			admitted++
			conns = append(conns, c)
		}
		fmt.Printf("%d %d\n", admitted, refused)
		os.Stdout.Sync()
		io.Copy(io.Discard, os.Stdin)
		for _, c := range conns {
			c.Close()
		}
		return 0
	}
	return 2
}

// runAs makes cmd run as the test user who (root for ""), with the admin
// group for the admin-group member.
func runAs(cmd *exec.Cmd, who string) {
	if who == "" {
		return
	}
	u := users[who]
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	if who == userAdmin {
		cred.Groups = []uint32{uint32(adminG)}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
}
