package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base32"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/authn/store"
	"github.com/mfad/mfad/authn/totp"
	"github.com/mfad/mfad/ipc/api"
	"github.com/mfad/mfad/ipc/peercred"
)

// serveForTest runs a server over a real store on a Unix socket in a
// temporary directory; the account "alice" exists, without devices.
//
// The accept loop waits for a request as long as wait: tests that expect
// an answer there give it seconds, so that a slow machine does not hand
// the request on; those that expect a hand-off give it little; 0 turns
// answers on the accept loop off (Config.AnswerOnAccept).
func serveForTest(t testing.TB, wait time.Duration) (*Server, string) {
	t.Helper()
	s, path, _ := serveForTestWith(t, wait)
	return s, path
}

// serveForTestWith is serveForTest that also gives the service behind it.
func serveForTestWith(t testing.TB, wait time.Duration) (*Server, string, *authn.Service) {
	t.Helper()
	st, err := store.Open(t.TempDir(), bytes.Repeat([]byte{5}, store.KeySize), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc := authn.NewService(st, authn.Config{})
	if _, err := svc.CreateAccount(context.Background(), authn.Actor{Admin: true}, authn.NewAccount{Name: "alice"}); err != nil {
		t.Fatal(err)
	}
	names := map[uint32]string{1000: "bob", 1001: "alice"}
	s := New(Config{AnswerOnAccept: wait > 0, LookupUser: func(uid uint32) string {
		if n, ok := names[uid]; ok {
			return n
		}
		return lookupUser(uid)
	}}, Backends{Accounts: svc, Devices: svc, Tokens: svc, Backup: st, Info: testInfo{}})
	s.inlineWait = wait
	path := filepath.Join(t.TempDir(), "mfad.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve after Shutdown: %v", err)
		}
		st.Close()
	})
	return s, path, svc
}

type testInfo struct{}

func (testInfo) Info() api.Info { return api.Info{Version: "test", API: "v1"} }

type testConn struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
	// head: the request was HEAD, so the answer has no body.
	head bool
}

func dialForTest(t testing.TB, path string) *testConn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &testConn{t: t, c: c, br: bufio.NewReader(c)}
}

func request(method, path, body string, extra ...string) string {
	head := method + " " + path + " HTTP/1.1\r\nHost: mfad\r\n"
	if body != "" {
		head += "Content-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"
	}
	for _, h := range extra {
		head += h + "\r\n"
	}
	return head + "\r\n" + body
}

func (c *testConn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatal(err)
	}
}

// answer reads one answer: its status, its problem code (if any) and body.
func (c *testConn) answer() (int, string, []byte) {
	c.t.Helper()
	var req *http.Request
	if c.head {
		req = &http.Request{Method: http.MethodHead}
	}
	resp, err := http.ReadResponse(c.br, req)
	if err != nil {
		c.t.Fatalf("reading an answer: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	var p api.Problem
	if resp.Header.Get("Content-Type") == api.ContentProblem {
		json.Unmarshal(body, &p)
	}
	return resp.StatusCode, p.Code, body
}

// TestLoneRequestAnsweredOnTheAcceptLoop: a lone connection's quick first
// request is answered on the accept loop, the rest of the connection by
// net/http, and both answer alike.
func TestLoneRequestAnsweredOnTheAcceptLoop(t *testing.T) {
	s, path := serveForTest(t, 5*time.Second)
	c := dialForTest(t, path)
	c.send(request("GET", "/v1/info", ""))
	st, _, first := c.answer()
	if st != 200 || s.inlineAnswers.Load() != 1 {
		t.Fatalf("GET /v1/info: %d, answers on the accept loop %d, want 200 and 1", st, s.inlineAnswers.Load())
	}
	c.send(request("GET", "/v1/info", ""))
	st, _, second := c.answer()
	if st != 200 || s.inlineAnswers.Load() != 1 {
		t.Fatalf("second GET on the connection: %d, answers on the accept loop %d, want 200 and still 1", st, s.inlineAnswers.Load())
	}
	var a, b map[string]any
	json.Unmarshal(first, &a)
	json.Unmarshal(second, &b)
	if a["version"] == nil || a["version"] != b["version"] {
		t.Errorf("the two answers differ: %s / %s", first, second)
	}

	// A code sign-in is quick: answered inline, with the problem net/http
	// would give (alice has no devices).
	c.c.Close()
	waitIdle(t, s)
	c2 := dialForTest(t, path)
	c2.send(request("POST", "/v1/authenticate", `{"account":"alice","code":"123456"}`))
	st, code, _ := c2.answer()
	if s.inlineAnswers.Load() != 2 || st < 400 || code == "" {
		t.Errorf("code sign-in: %d %q, answers on the accept loop %d, want a problem and 2", st, code, s.inlineAnswers.Load())
	}
}

// TestAnswerOnAcceptOff: without Config.AnswerOnAccept (mfad on
// PostgreSQL) every request is net/http's.
func TestAnswerOnAcceptOff(t *testing.T) {
	s, path := serveForTest(t, 0)
	for _, r := range []string{request("GET", "/v1/info", ""), request("POST", "/v1/authenticate", `{"account":"alice","code":"123456"}`)} {
		waitIdle(t, s)
		c := dialForTest(t, path)
		c.send(r)
		if st, _, body := c.answer(); st == 0 || st >= 500 {
			t.Errorf("%d %s", st, body)
		}
		c.c.Close()
	}
	if n := s.inlineAnswers.Load(); n != 0 {
		t.Errorf("%d answers on the accept loop with AnswerOnAccept off", n)
	}
}

// TestInlineDecidesAsTheRouter: a sign-in answered on the accept loop is
// authorized as any other: another user's account is refused before the
// code is looked at, the account's own user gets the code's verdict. The
// peers are given uids (their connections are made here, then served as
// the accept loop serves one), since the test may run as root.
func TestInlineDecidesAsTheRouter(t *testing.T) {
	s, _ := serveForTest(t, 5*time.Second)
	lpath := filepath.Join(t.TempDir(), "peer.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: lpath, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, tc := range []struct {
		uid    uint32
		status int
		code   string
	}{
		{1000, 403, api.CodePermissionDenied}, // bob, for alice
		{1001, 0, ""},                         // alice herself: the code's verdict
	} {
		waitIdle(t, s)
		c := dialForTest(t, lpath)
		sc, err := l.AcceptUnix()
		if err != nil {
			t.Fatal(err)
		}
		s.open.Add(1)
		pc := &peerConn{UnixConn: sc, id: &identity{cred: peercred.Cred{UID: tc.uid, GID: tc.uid}, srv: s}, release: func() { s.open.Add(-1) }}
		before := s.inlineAnswers.Load()
		c.send(request("POST", "/v1/authenticate", `{"account":"alice","code":"123456"}`))
		s.tryInline(pc)
		st, code, body := c.answer()
		if s.inlineAnswers.Load() != before+1 {
			t.Fatalf("uid %d: not answered on the accept loop", tc.uid)
		}
		if tc.status != 0 && (st != tc.status || code != tc.code) {
			t.Errorf("uid %d: %d %q %s, want %d %q", tc.uid, st, code, body, tc.status, tc.code)
		}
		if tc.status == 0 && (st < 400 || code == "" || code == api.CodePermissionDenied) {
			t.Errorf("uid %d (alice): %d %q %s, want the code refused, not the caller", tc.uid, st, code, body)
		}
		c.c.Close()
	}
}

// TestInlineCodeOnceOnly: a code sent on 32 new connections at once, the
// first answered on the accept loop and the rest by net/http, signs in
// exactly once; sent again on a lone connection (the accept loop) it is
// refused; and once the account is disabled, its next valid code is too.
func TestInlineCodeOnceOnly(t *testing.T) {
	s, path, svc := serveForTestWith(t, 5*time.Second)
	secret := bytes.Repeat([]byte{0x42}, 20)
	if _, err := svc.ImportOTP(context.Background(), authn.Actor{Admin: true}, "alice",
		authn.OTPImport{Secret: base32.StdEncoding.EncodeToString(secret), HOTP: true}); err != nil {
		t.Fatal(err)
	}
	hotp := totp.Params{Algorithm: totp.SHA1, Digits: 6}
	for round := uint64(0); round < 5; round++ {
		code := totp.Code(secret, hotp, round)
		body := `{"account":"alice","code":"` + code + `"}`
		waitIdle(t, s)
		before := s.inlineAnswers.Load()
		conns := make([]*testConn, 32)
		for i := range conns {
			conns[i] = dialForTest(t, path)
		}
		for _, c := range conns {
			go c.send(request("POST", "/v1/authenticate", body))
		}
		accepted := 0
		for _, c := range conns {
			st, code, body := c.answer()
			switch {
			case st == 200:
				accepted++
			case code != api.CodeCodeAlreadyUsed && code != api.CodeInvalidCode && code != api.CodeRetryLater:
				t.Errorf("round %d: %d %q %s", round, st, code, body)
			}
		}
		if accepted != 1 {
			t.Fatalf("round %d: the code signed in %d times over 32 connections", round, accepted)
		}
		if s.inlineAnswers.Load() != before+1 {
			t.Errorf("round %d: %d answers on the accept loop, want the first connection's", round, s.inlineAnswers.Load()-before)
		}
		for _, c := range conns {
			c.c.Close()
		}
		waitIdle(t, s)
		again := dialForTest(t, path)
		again.send(request("POST", "/v1/authenticate", body))
		if st, code, _ := again.answer(); st == 200 || (code != api.CodeCodeAlreadyUsed && code != api.CodeInvalidCode) {
			t.Errorf("round %d: the used code again on a lone connection: %d %q", round, st, code)
		}
		again.c.Close()
	}

	// A disabled account's next valid code, on a lone connection: refused
	// there, as anywhere.
	flags := []string{"disabled"}
	if _, err := svc.PatchAccount(context.Background(), authn.Actor{Admin: true}, "alice", authn.AccountPatch{Flags: &flags}); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, s)
	before := s.inlineAnswers.Load()
	c := dialForTest(t, path)
	c.send(request("POST", "/v1/authenticate", `{"account":"alice","code":"`+totp.Code(secret, hotp, 5)+`"}`))
	if st, code, body := c.answer(); st == 200 || code != api.CodeAccountDisabled || s.inlineAnswers.Load() != before+1 {
		t.Errorf("a disabled account's valid code on a lone connection: %d %q %s (answers on the loop %d), want account_disabled there",
			st, code, body, s.inlineAnswers.Load()-before)
	}
}

// waitIdle waits until the server holds no connection.
func waitIdle(t testing.TB, s *Server) {
	t.Helper()
	for i := 0; s.open.Load() != 0; i++ {
		if i > 1000 {
			t.Fatalf("%d connections still open", s.open.Load())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestHandedOffRequestsAnswerWhole: what the accept loop does not answer
// reaches net/http with every byte the peer sent.
func TestHandedOffRequestsAnswerWhole(t *testing.T) {
	const wait = 20 * time.Millisecond
	s, path := serveForTest(t, wait)
	cases := []struct {
		name   string
		send   func(c *testConn)
		status int
		code   string
	}{
		{"a route that is not quick", func(c *testConn) { c.send(request("GET", "/v1/accounts", "")) }, 200, ""},
		{"a key sign-in (waits for a touch)", func(c *testConn) {
			c.send(request("POST", "/v1/authenticate", `{"account":"alice"}`))
		}, 0, ""},
		{"a chunked body", func(c *testConn) {
			c.send("POST /v1/authenticate HTTP/1.1\r\nHost: mfad\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
				"23\r\n{\"account\":\"alice\",\"code\":\"123456\"}\r\n0\r\n\r\n")
		}, 0, ""},
		{"a request that comes late", func(c *testConn) {
			time.Sleep(5 * wait)
			c.send(request("GET", "/v1/info", ""))
		}, 200, ""},
		{"a head sent in pieces across the wait", func(c *testConn) {
			r := request("POST", "/v1/authenticate", `{"account":"alice","code":"123456"}`)
			c.send(r[:20])
			time.Sleep(5 * wait)
			c.send(r[20:])
		}, 0, ""},
		{"a malformed request", func(c *testConn) { c.send("GET /v1/info HTTP/1.1\r\nHost mfad\r\n\r\n") }, 400, ""},
		{"HTTP/1.0", func(c *testConn) { c.send("GET /v1/info HTTP/1.0\r\n\r\n") }, 200, ""},
		{"an unknown path", func(c *testConn) { c.send(request("GET", "/v1/nothing", "")) }, 404, api.CodeNotFound},
		{"no Host", func(c *testConn) { c.send("GET /v1/info HTTP/1.1\r\n\r\n") }, 400, ""},
		{"two Hosts", func(c *testConn) { c.send("GET /v1/info HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n") }, 400, ""},
		{"a control byte in a header", func(c *testConn) { c.send("GET /v1/info HTTP/1.1\r\nHost: a\r\nX-A: \x01\r\n\r\n") }, 400, ""},
		{"HEAD", func(c *testConn) { c.head = true; c.send("HEAD /v1/info HTTP/1.1\r\nHost: a\r\n\r\n") }, 200, ""},
	}
	for _, tc := range cases {
		waitIdle(t, s)
		before := s.inlineAnswers.Load()
		c := dialForTest(t, path)
		tc.send(c)
		st, code, body := c.answer()
		if tc.status != 0 && (st != tc.status || code != tc.code) {
			t.Errorf("%s: %d %q %s, want %d %q", tc.name, st, code, body, tc.status, tc.code)
		}
		if tc.status == 0 && (st < 400 || code == "") {
			t.Errorf("%s: %d %s, want a problem", tc.name, st, body)
		}
		if got := s.inlineAnswers.Load() - before; got != 0 {
			t.Errorf("%s: answered on the accept loop", tc.name)
		}
		c.c.Close()
	}
}

// TestInlineKeepsTheConnection: requests sent together with the first
// (pipelined) are answered in order; Connection: close is honoured; a
// second connection while one is open goes to net/http.
func TestInlineKeepsTheConnection(t *testing.T) {
	s, path := serveForTest(t, 5*time.Second)
	c := dialForTest(t, path)
	c.send(request("GET", "/v1/info", "") + request("GET", "/v1/accounts/alice", "") + request("GET", "/v1/nothing", ""))
	for i, want := range []int{200, 200, 404} {
		if st, _, body := c.answer(); st != want {
			t.Errorf("pipelined answer %d: %d %s, want %d", i, st, body, want)
		}
	}
	if s.inlineAnswers.Load() != 1 {
		t.Errorf("answers on the accept loop %d, want 1", s.inlineAnswers.Load())
	}
	other := dialForTest(t, path)
	other.send(request("GET", "/v1/info", ""))
	if st, _, _ := other.answer(); st != 200 || s.inlineAnswers.Load() != 1 {
		t.Errorf("a second connection beside an open one: %d, answers on the accept loop %d, want 200 and 1", st, s.inlineAnswers.Load())
	}
	c.c.Close()
	other.c.Close()
	waitIdle(t, s)
	closing := dialForTest(t, path)
	closing.send(request("GET", "/v1/info", "", "Connection: close"))
	if st, _, _ := closing.answer(); st != 200 || s.inlineAnswers.Load() != 2 {
		t.Fatalf("Connection: close: %d, answers on the accept loop %d", st, s.inlineAnswers.Load())
	}
	closing.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := closing.br.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("after Connection: close, the connection gave %d bytes, %v; want EOF", n, err)
	}
	waitIdle(t, s)
}

// TestSilentPeerHoldsTheLoopOnce: a peer that connects and sends nothing
// holds the accept loop for inlineWait at most; others are then served.
func TestSilentPeerHoldsTheLoopOnce(t *testing.T) {
	s, path := serveForTest(t, 200*time.Millisecond)
	silent := dialForTest(t, path)
	defer silent.c.Close()
	for i := 0; i < 3; i++ {
		c := dialForTest(t, path)
		c.send(request("GET", "/v1/info", ""))
		if st, _, _ := c.answer(); st != 200 {
			t.Fatalf("beside a silent peer: %d", st)
		}
		c.c.Close()
	}
	if s.inlineAnswers.Load() != 0 {
		t.Errorf("answers on the accept loop %d beside an open connection, want 0", s.inlineAnswers.Load())
	}
}

// FuzzConnection sends arbitrary bytes on a lone connection, as the first
// thing a peer says: whatever the accept loop makes of them, the server
// answers the next peer.
func FuzzConnection(f *testing.F) {
	for _, seed := range []string{
		request("GET", "/v1/info", ""),
		request("POST", "/v1/authenticate", `{"account":"alice","code":"123456"}`),
		request("POST", "/v1/authenticate", `{"account":"alice"}`),
		request("GET", "/v1/info", "") + request("GET", "/v1/accounts/alice", ""),
		"POST /v1/authenticate HTTP/1.1\r\nHost: m\r\nContent-Length: 99999999999\r\n\r\n{",
		"POST /v1/authenticate HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
		"GET /v1/info HTTP/1.1\r\nHost: m\r\nExpect: 100-continue\r\n\r\n",
		"\x00\xff\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	s, path := serveForTest(f, 100*time.Millisecond)
	f.Fuzz(func(t *testing.T, said []byte) {
		waitIdle(t, s)
		c := dialForTest(t, path)
		c.c.Write(said)
		c.c.(*net.UnixConn).CloseWrite()
		io.Copy(io.Discard, c.c)
		c.c.Close()
		next := dialForTest(t, path)
		next.send(request("GET", "/v1/info", ""))
		if st, _, body := next.answer(); st != 200 {
			t.Fatalf("after %q: the next peer got %d %s", said, st, body)
		}
		next.c.Close()
	})
}

// TestInlineWaitsForALateHalf: a request whose second half comes after
// mfad first found the socket empty is still answered on the accept loop
// (the wait then has a deadline).
func TestInlineWaitsForALateHalf(t *testing.T) {
	s, path := serveForTest(t, 5*time.Second)
	c := dialForTest(t, path)
	r := request("POST", "/v1/authenticate", `{"account":"alice","code":"123456"}`)
	c.send(r[:25])
	time.Sleep(50 * time.Millisecond)
	c.send(r[25:])
	if st, code, _ := c.answer(); st < 400 || code == "" || s.inlineAnswers.Load() != 1 {
		t.Errorf("%d %q, answers on the accept loop %d; want a problem answered there", st, code, s.inlineAnswers.Load())
	}
}

// TestPatientConnWritesWhatTheSocketTakesLater: an answer larger than the
// socket's buffer is written whole once the peer reads, and a read with
// nothing to read ends at its deadline.
func TestPatientConnWritesWhatTheSocketTakesLater(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	peer, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	c, err := l.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetWriteBuffer(16 << 10) // so that the answer below cannot go at once
	pc, err := newPatientConn(c, time.Now().Add(30*time.Millisecond), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if n, err := pc.Read(make([]byte, 16)); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read with nothing sent: %d, %v; want the deadline", n, err)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("the read waited %v", time.Since(start))
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB, beyond the socket's buffer
	got := make(chan []byte)
	go func() {
		time.Sleep(50 * time.Millisecond)
		b, _ := io.ReadAll(io.LimitReader(peer, int64(len(big))))
		got <- b
	}()
	// A connection that has not waited yet: its first write is the raw one.
	pc, err = newPatientConn(c, time.Now().Add(time.Minute), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := pc.Write(big); n != len(big) || err != nil {
		t.Fatalf("write: %d of %d, %v", n, len(big), err)
	}
	if b := <-got; !bytes.Equal(b, big) {
		t.Errorf("the peer read %d bytes, not the %d written", len(b), len(big))
	}
	pc.clearDeadlines()
}
