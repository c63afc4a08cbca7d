package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mfad/mfad/authn/store"
	"github.com/mfad/mfad/ipc/api"
	"github.com/mfad/mfad/ipc/client"
)

// TestSIGKILLLosesNoAcknowledgedWrite kills mfad with SIGKILL in the middle
// of a stream of account writes, then checks that every write the daemon
// acknowledged is there and the database opens.
func TestSIGKILLLosesNoAcknowledgedWrite(t *testing.T) {
	d := startDaemon(t, "", "")
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := d.client()
			for i := 0; ctx.Err() == nil; i++ {
				name := fmt.Sprintf("w%d-%d", w, i)
				if _, err := c.CreateAccount(ctx, api.CreateAccount{Name: name}); err != nil {
					return
				}
				mu.Lock()
				acked = append(acked, name)
				mu.Unlock()
			}
		}()
	}
	for {
		time.Sleep(50 * time.Millisecond)
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 200 {
			break
		}
	}
	d.cmd.Process.Kill()
	<-d.exited
	cancel()
	wg.Wait()
	if err := store.Check(filepath.Join(d.state, store.DBFileName)); err != nil {
		t.Fatalf("database after SIGKILL: %v", err)
	}
	d.start("--socket", d.sock, "--state-dir", d.state)
	accts, err := d.client().Accounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, a := range accts {
		have[a.Name] = true
	}
	for _, name := range acked {
		if !have[name] {
			t.Errorf("acknowledged account %s lost after SIGKILL", name)
		}
	}
	t.Logf("%d acknowledged writes, %d accounts after restart", len(acked), len(accts))
}

// TestSocketActivationAndNotify hands mfad a listening socket the way
// systemd does and reads READY=1, STATUS, WATCHDOG=1 and STOPPING=1 from a
// notify socket; SIGTERM ends it with status 0.
func TestSocketActivationAndNotify(t *testing.T) {
	dir, _ := os.MkdirTemp(work, "act-")
	sock := filepath.Join(dir, "api.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	lf, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	notifyPath := filepath.Join(dir, "notify")
	nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	// systemd sets LISTEN_PID to the service's pid after fork; a shell
	// that execs mfad does the same here.
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, filepath.Join(binDir, "mfad"),
		"--socket", filepath.Join(dir, "unused.sock"), "--state-dir", filepath.Join(dir, "state"))
	cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "LISTEN_FDNAMES=mfad", "NOTIFY_SOCKET="+notifyPath, "WATCHDOG_USEC=200000")
	cmd.ExtraFiles = []*os.File{lf}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lf.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	}()

	msgs := make(chan string, 64)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := nc.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	waitFor := func(want string) string {
		t.Helper()
		timeout := time.After(15 * time.Second)
		for {
			select {
			case m := <-msgs:
				if strings.Contains(m, want) {
					return m
				}
			case <-timeout:
				t.Fatalf("no %q from mfad\n%s", want, stderr.String())
			}
		}
	}
	ready := waitFor("READY=1")
	if !strings.Contains(ready, "STATUS=serving on "+sock) {
		t.Errorf("READY message %q lacks STATUS naming the socket", ready)
	}
	// READY=1 means serving: the very next call must succeed on the passed socket.
	if _, err := (&client.Client{Socket: sock}).Info(context.Background()); err != nil {
		t.Fatalf("after READY=1: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "unused.sock")); err == nil {
		t.Error("mfad bound its own socket although systemd passed one")
	}
	waitFor("WATCHDOG=1")
	cmd.Process.Signal(syscall.SIGTERM)
	waitFor("STOPPING=1")
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("mfad did not exit after SIGTERM")
	}
}

// TestSocketPathSafety: a live socket is refused, a stale one replaced,
// a second daemon on the same state dir is told who holds it.
func TestSocketPathSafety(t *testing.T) {
	d := startDaemon(t, "", "")
	out, err := exec.Command(filepath.Join(binDir, "mfad"), "--socket", d.sock, "--state-dir", filepath.Join(d.dir, "other")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "already serving") {
		t.Errorf("second mfad on a live socket: %v\n%s", err, out)
	}
	out, err = exec.Command(filepath.Join(binDir, "mfad"), "--socket", filepath.Join(d.dir, "x.sock"), "--state-dir", d.state).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "held by another mfad") {
		t.Errorf("second mfad on a held state dir: %v\n%s", err, out)
	}
	d.cmd.Process.Kill()
	<-d.exited
	if _, err := os.Stat(d.sock); err != nil {
		t.Fatalf("expected a stale socket after SIGKILL: %v", err)
	}
	d.start("--socket", d.sock, "--state-dir", d.state)
	if _, err := d.client().Info(context.Background()); err != nil {
		t.Fatalf("restart over a stale socket: %v", err)
	}
	// A path that is not a socket is never removed.
	plain := filepath.Join(d.dir, "plain")
	os.WriteFile(plain, []byte("keep"), 0o644)
	out, err = exec.Command(filepath.Join(binDir, "mfad"), "--socket", plain, "--state-dir", filepath.Join(d.dir, "s3")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not a socket") {
		t.Errorf("mfad on a regular file: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(plain); string(b) != "keep" {
		t.Error("regular file at the socket path was touched")
	}
}

// TestSIGTERMFinishesInFlight: a backup stream in flight when SIGTERM
// arrives (its reader deliberately slow, so the handler is blocked writing)
// completes whole, and mfad then exits 0.
func TestSIGTERMFinishesInFlight(t *testing.T) {
	d := startDaemon(t, "", "")
	c := d.client()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 250 {
				if _, err := c.CreateAccount(context.Background(), api.CreateAccount{
					Name: fmt.Sprintf("t%d-%d", w, i), Email: strings.Repeat("x", 60) + "@example.org"}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := c.Backup(context.Background(), pw)
		pw.CloseWithError(err)
		done <- err
	}()
	head := make([]byte, 4096)
	if _, err := io.ReadFull(pr, head); err != nil {
		t.Fatal(err)
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond) // the daemon is now shutting down, the stream half sent
	rest, err := io.ReadAll(pr)
	if err != nil {
		t.Fatalf("backup stream cut by shutdown: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(d.dir, "backup.db")
	os.WriteFile(path, append(head, rest...), 0o600)
	if err := store.Check(path); err != nil {
		t.Fatalf("backup taken across SIGTERM: %v", err)
	}
	if err := <-d.exited; err != nil {
		t.Fatalf("exit status after SIGTERM: %v\n%s", err, d.stderr.String())
	}
	if len(head)+len(rest) < 1<<20 {
		t.Logf("backup only %d bytes: the stream may not have been blocked", len(head)+len(rest))
	}
}

// TestBadRequestsGetProblems: malformed JSON, unknown fields, oversized
// bodies, wrong content types and unknown routes get clear 4xx problems.
func TestBadRequestsGetProblems(t *testing.T) {
	d := startDaemon(t, "", "")
	raw := func(method, path, ctype string, body []byte) (int, api.Problem, string) {
		req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: mfad\r\nConnection: close\r\nContent-Length: %d\r\n", method, path, len(body))
		if ctype != "" {
			req += "Content-Type: " + ctype + "\r\n"
		}
		c, err := net.Dial("unix", d.sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(append([]byte(req+"\r\n"), body...))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var buf bytes.Buffer
		buf.ReadFrom(c)
		return parseProblem(t, buf.String())
	}
	cases := []struct {
		name, method, path, ctype string
		body                      []byte
		status                    int
		code                      string
	}{
		{"malformed json", "POST", "/v1/accounts", "application/json", []byte(`{"name":`), 400, api.CodeInvalidRequest},
		{"unknown field", "POST", "/v1/accounts", "application/json", []byte(`{"name":"x","admin":true}`), 400, api.CodeInvalidRequest},
		{"two values", "POST", "/v1/accounts", "application/json", []byte(`{"name":"x"}{"name":"y"}`), 400, api.CodeInvalidRequest},
		{"wrong type", "POST", "/v1/accounts", "application/json", []byte(`{"name":5}`), 400, api.CodeInvalidRequest},
		{"empty body", "POST", "/v1/accounts", "application/json", nil, 400, api.CodeInvalidRequest},
		{"bad name", "POST", "/v1/accounts", "application/json", []byte(`{"name":"../etc"}`), 400, api.CodeInvalidRequest},
		{"form body", "POST", "/v1/accounts", "application/x-www-form-urlencoded", []byte(`name=x`), 415, api.CodeUnsupportedMediaType},
		{"oversized", "POST", "/v1/accounts", "application/json", append([]byte(`{"name":"`), bytes.Repeat([]byte("a"), 200<<10)...), 413, api.CodeRequestTooLarge},
		{"unknown route", "GET", "/v1/nothing", "", nil, 404, api.CodeNotFound},
		{"unknown version", "GET", "/v2/info", "", nil, 404, api.CodeNotFound},
		{"wrong method", "PUT", "/v1/info", "", nil, 405, api.CodeMethodNotAllowed},
		{"bad audit cursor", "GET", "/v1/audit?after=-1", "", nil, 400, api.CodeInvalidRequest},
		{"missing account", "GET", "/v1/accounts/nobody", "", nil, 404, api.CodeNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, p, ct := raw(tc.method, tc.path, tc.ctype, tc.body)
			if status != tc.status || p.Code != tc.code {
				t.Errorf("got %d %q (%s), want %d %q", status, p.Code, p.Detail, tc.status, tc.code)
			}
			if ct != api.ContentProblem {
				t.Errorf("content type %q, want %s", ct, api.ContentProblem)
			}
			if p.Detail == "" {
				t.Error("problem without a detail")
			}
		})
	}
	if _, err := d.client().Info(context.Background()); err != nil {
		t.Fatalf("daemon unwell after bad requests: %v", err)
	}
}
