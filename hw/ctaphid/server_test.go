package ctaphid

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"
)

// waitLimit only keeps a broken test from hanging; no test asserts on time.
const waitLimit = 10 * time.Second

// Test requests understood by testHandler (the first CBOR byte).
const (
	reqEcho    = 0x01 // answer 0x00 followed by the request
	reqTouch   = 0x02 // ask for user presence, then wait for release or cancellation
	reqProcess = 0x03 // wait for release or cancellation, status processing
)

// testHandler is a scriptable authenticator.
type testHandler struct {
	started   chan struct{} // a blocking request started
	release   chan struct{} // lets a blocking request answer
	cancelled chan struct{} // a blocking request saw its ctx end
	mu        sync.Mutex
	winks     int
}

func newTestHandler() *testHandler {
	return &testHandler{started: make(chan struct{}, 8), release: make(chan struct{}, 8), cancelled: make(chan struct{}, 8)}
}

func (h *testHandler) CBOR(ctx context.Context, req []byte, keepalive func(byte)) []byte {
	switch req[0] {
	case reqTouch, reqProcess:
		if req[0] == reqTouch {
			keepalive(StatusUPNeeded)
		}
		h.started <- struct{}{}
		select {
		case <-h.release:
			return []byte{0x00, req[0]}
		case <-ctx.Done():
			h.cancelled <- struct{}{}
			return []byte{CTAP2ErrKeepaliveCancel}
		}
	}
	return append([]byte{0x00}, req...)
}

func (h *testHandler) Msg(ctx context.Context, apdu []byte) []byte {
	return append(append([]byte{}, apdu...), 0x90, 0x00)
}

func (h *testHandler) Wink() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.winks++
}

func recvSignal(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(waitLimit):
		t.Fatalf("no %s", what)
	}
}

// checkNoLeak fails the test if goroutines started after it remain at cleanup.
func checkNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(waitLimit)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(time.Millisecond)
		}
	})
}

// serve starts s on a Pipe and returns the host end. At cleanup it stops Serve, checks
// that it returned the ctx error and that no goroutine is left.
func serve(t *testing.T, s *Server) *PipeConn {
	t.Helper()
	checkNoLeak(t)
	host, dev := Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx, dev) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(waitLimit):
			t.Error("Serve did not return")
		}
		host.Close()
	})
	return host
}

func newServer(h Handler) *Server {
	return &Server{
		Handler:      h,
		Capabilities: CapWink | CapCBOR,
		Major:        1, Minor: 2, Build: 3,
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

func TestChannelPingAndInfo(t *testing.T) {
	host := serve(t, newServer(newTestHandler()))
	ctx := testCtx(t)
	ch, err := Open(ctx, host)
	if err != nil {
		t.Fatal(err)
	}
	want := DeviceInfo{Protocol: ProtocolVersion, Major: 1, Minor: 2, Build: 3, Capabilities: CapWink | CapCBOR}
	if ch.Info() != want || ch.CID() == 0 || ch.CID() == BroadcastCID {
		t.Fatalf("cid %08x info %+v", ch.CID(), ch.Info())
	}
	for _, n := range []int{0, 1, InitDataSize, InitDataSize + 1, 1000, MaxPayload} {
		if err := ch.Ping(ctx, payloadOf(n)); err != nil {
			t.Fatalf("ping %d: %v", n, err)
		}
	}
	if err := ch.Ping(ctx, make([]byte, MaxPayload+1)); !errors.Is(err, ErrPayloadTooLarge) {
		t.Fatalf("ping 7610: %v", err)
	}
	other, err := Open(ctx, host)
	if err != nil {
		t.Fatal(err)
	}
	if other.CID() == ch.CID() {
		t.Fatal("two INITs gave the same channel")
	}
}

func TestChannelCBORKeepalive(t *testing.T) {
	h := newTestHandler()
	host := serve(t, newServer(h))
	ctx := testCtx(t)
	ch, err := Open(ctx, host)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ch.CBOR(ctx, []byte{reqEcho, 0xa0}, nil)
	if err != nil || !bytes.Equal(resp, []byte{0x00, reqEcho, 0xa0}) {
		t.Fatalf("echo: % x %v", resp, err)
	}
	// The handler asks for a touch; the first UPNEEDED keepalive "touches".
	var mu sync.Mutex
	var statuses []byte
	resp, err = ch.CBOR(ctx, []byte{reqTouch}, func(s byte) {
		mu.Lock()
		defer mu.Unlock()
		if len(statuses) == 0 {
			h.release <- struct{}{}
		}
		statuses = append(statuses, s)
	})
	if err != nil || !bytes.Equal(resp, []byte{0x00, reqTouch}) {
		t.Fatalf("touch: % x %v", resp, err)
	}
	if len(statuses) == 0 || statuses[0] != StatusUPNeeded {
		t.Fatalf("keepalives % x", statuses)
	}
	resp, err = ch.Msg(ctx, []byte{0x00, 0x03, 0x00, 0x00})
	if err != nil || !bytes.Equal(resp, []byte{0x00, 0x03, 0x00, 0x00, 0x90, 0x00}) {
		t.Fatalf("msg: % x %v", resp, err)
	}
}

// TestChannelCancel: ending the ctx of a CBOR call sends CTAPHID_CANCEL, which cancels the
// handler's ctx; the channel then resynchronises and works again.
func TestChannelCancel(t *testing.T) {
	h := newTestHandler()
	host := serve(t, newServer(h))
	ctx := testCtx(t)
	ch, err := Open(ctx, host)
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		<-h.started
		cancel()
	}()
	_, err = ch.CBOR(cctx, []byte{reqTouch}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled CBOR: %v", err)
	}
	recvSignal(t, h.cancelled, "cancellation in the handler")
	if err := ch.Ping(ctx, []byte("after")); err != nil {
		t.Fatalf("ping after cancel: %v", err)
	}
	resp, err := ch.CBOR(ctx, []byte{reqEcho}, nil)
	if err != nil || !bytes.Equal(resp, []byte{0x00, reqEcho}) {
		t.Fatalf("CBOR after cancel: % x %v", resp, err)
	}
}

func TestChannelDeviceErrors(t *testing.T) {
	s := newServer(newTestHandler())
	s.Capabilities = CapCBOR | CapNMSG
	host := serve(t, s)
	ctx := testCtx(t)
	ch, err := Open(ctx, host)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		call func() error
		code ErrorCode
	}{
		{"wink without CapWink", func() error { return ch.Wink(ctx) }, CodeInvalidCmd},
		{"msg with CapNMSG", func() error { _, err := ch.Msg(ctx, []byte{0}); return err }, CodeInvalidCmd},
		{"lock 11 s", func() error { return ch.Lock(ctx, 11) }, CodeInvalidPar},
		{"empty CBOR", func() error { _, err := ch.CBOR(ctx, nil, nil); return err }, CodeInvalidLen},
		{"unknown command", func() error { _, err := ch.Transact(ctx, 0x55, nil, nil); return err }, CodeInvalidCmd},
	} {
		err := tc.call()
		var de *DeviceError
		if !errors.As(err, &de) || de.Code != tc.code {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.code)
		}
	}
	if err := ch.Ping(ctx, []byte{1}); err != nil {
		t.Fatal(err)
	}
}

func TestChannelWinkLock(t *testing.T) {
	h := newTestHandler()
	host := serve(t, newServer(h))
	ctx := testCtx(t)
	ch, err := Open(ctx, host)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Wink(ctx); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	winks := h.winks
	h.mu.Unlock()
	if winks != 1 {
		t.Fatalf("%d winks", winks)
	}
	if err := ch.Lock(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if err := ch.Ping(ctx, []byte{1}); err != nil {
		t.Fatal(err)
	}
	if err := ch.Lock(ctx, 0); err != nil {
		t.Fatal(err)
	}
}

// rawHost speaks CTAPHID report by report, to send what a Channel never would.
type rawHost struct {
	t *testing.T
	c *PipeConn
}

func (h rawHost) send(reports ...[]byte) {
	h.t.Helper()
	for _, r := range reports {
		if err := h.c.WriteReport(testCtx(h.t), r); err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h rawHost) sendMsg(cid uint32, cmd Cmd, payload []byte) {
	h.t.Helper()
	frames, err := Frames(cid, cmd, payload)
	if err != nil {
		h.t.Fatal(err)
	}
	h.send(frames...)
}

// recv returns the next message on cid, skipping KEEPALIVE unless keepalives is set.
func (h rawHost) recv(cid uint32, keepalives bool) *Message {
	h.t.Helper()
	ctx := testCtx(h.t)
	var a Assembler
	for {
		r, err := h.c.ReadReport(ctx)
		if err != nil {
			h.t.Fatalf("waiting for a message on %08x: %v", cid, err)
		}
		if binary.BigEndian.Uint32(r) != cid {
			continue
		}
		m, err := a.Add(r)
		if err != nil {
			h.t.Fatal(err)
		}
		if m != nil && (keepalives || m.Cmd != CmdKeepalive) {
			return m
		}
	}
}

func (h rawHost) expectError(cid uint32, code ErrorCode) {
	h.t.Helper()
	m := h.recv(cid, false)
	if m.Cmd != CmdError || !bytes.Equal(m.Payload, []byte{byte(code)}) {
		h.t.Fatalf("on %08x: %v % x, want ERROR %v", cid, m.Cmd, m.Payload, code)
	}
}

func (h rawHost) expect(cid uint32, cmd Cmd, payload []byte) {
	h.t.Helper()
	m := h.recv(cid, false)
	if m.Cmd != cmd || !bytes.Equal(m.Payload, payload) {
		h.t.Fatalf("on %08x: %v % x, want %v % x", cid, m.Cmd, m.Payload, cmd, payload)
	}
}

func (h rawHost) open() uint32 {
	h.t.Helper()
	nonce := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	h.sendMsg(BroadcastCID, CmdInit, nonce)
	m := h.recv(BroadcastCID, false)
	cid, _, err := ParseInitResponse([8]byte(nonce), mustFrames(h.t, m)[0])
	if err != nil {
		h.t.Fatal(err)
	}
	return cid
}

func mustFrames(t *testing.T, m *Message) [][]byte {
	t.Helper()
	f, err := m.Frames()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestServerBusy: while a CBOR request runs on channel A, channel B gets CHANNEL_BUSY; INIT
// on the broadcast channel still allocates; A gets KEEPALIVE and its answer.
func TestServerBusy(t *testing.T) {
	h := newTestHandler()
	s := newServer(h)
	host := rawHost{t, serve(t, s)}
	a, b := host.open(), host.open()
	host.sendMsg(a, CmdCBOR, []byte{reqProcess})
	recvSignal(t, h.started, "handler start")
	if m := host.recv(a, true); m.Cmd != CmdKeepalive || !bytes.Equal(m.Payload, []byte{StatusProcessing}) {
		t.Fatalf("keepalive: %v % x", m.Cmd, m.Payload)
	}
	host.sendMsg(b, CmdPing, payloadOf(200)) // continuations dropped silently
	host.expectError(b, CodeChannelBusy)
	host.sendMsg(a, CmdPing, []byte{1})
	host.expectError(a, CodeChannelBusy)
	c := host.open()
	h.release <- struct{}{}
	host.expect(a, CmdCBOR, []byte{0x00, reqProcess})
	host.sendMsg(b, CmdPing, []byte{2})
	host.expect(b, CmdPing, []byte{2})
	host.sendMsg(c, CmdPing, []byte{3})
	host.expect(c, CmdPing, []byte{3})
}

// TestServerCancel: CTAPHID_CANCEL makes the running request answer
// CTAP2_ERR_KEEPALIVE_CANCEL; CANCEL with nothing running is not answered.
func TestServerCancel(t *testing.T) {
	h := newTestHandler()
	host := rawHost{t, serve(t, newServer(h))}
	a := host.open()
	host.sendMsg(a, CmdCancel, nil)
	host.sendMsg(a, CmdCBOR, []byte{reqTouch})
	recvSignal(t, h.started, "handler start")
	host.sendMsg(a, CmdCancel, nil)
	recvSignal(t, h.cancelled, "cancellation")
	host.expect(a, CmdCBOR, []byte{CTAP2ErrKeepaliveCancel})
}

// TestServerResync: INIT on an allocated channel aborts its request (the answer is dropped)
// and answers with the same channel.
func TestServerResync(t *testing.T) {
	h := newTestHandler()
	host := rawHost{t, serve(t, newServer(h))}
	a := host.open()
	host.sendMsg(a, CmdCBOR, []byte{reqProcess})
	recvSignal(t, h.started, "handler start")
	nonce := [8]byte{9, 9, 9, 9, 9, 9, 9, 9}
	host.sendMsg(a, CmdInit, nonce[:])
	recvSignal(t, h.cancelled, "abort")
	m := host.recv(a, false)
	if m.Cmd != CmdInit {
		t.Fatalf("got %v before the INIT answer", m.Cmd)
	}
	cid, _, err := ParseInitResponse(nonce, mustFrames(t, m)[0])
	if err != nil || cid != a {
		t.Fatalf("resync gave %08x %v, want %08x", cid, err, a)
	}
	host.sendMsg(a, CmdPing, []byte{1})
	host.expect(a, CmdPing, []byte{1})
}

func TestServerLock(t *testing.T) {
	host := rawHost{t, serve(t, newServer(newTestHandler()))}
	a, b := host.open(), host.open()
	host.sendMsg(a, CmdLock, []byte{10})
	host.expect(a, CmdLock, nil)
	host.sendMsg(b, CmdPing, []byte{1})
	host.expectError(b, CodeChannelBusy)
	host.sendMsg(BroadcastCID, CmdInit, make([]byte, 8))
	host.expectError(BroadcastCID, CodeChannelBusy)
	host.sendMsg(a, CmdPing, []byte{2})
	host.expect(a, CmdPing, []byte{2})
	host.sendMsg(a, CmdLock, []byte{0})
	host.expect(a, CmdLock, nil)
	host.sendMsg(b, CmdPing, []byte{3})
	host.expect(b, CmdPing, []byte{3})

	// A one-second lock expires by itself: poll until B gets through.
	host.sendMsg(a, CmdLock, []byte{1})
	host.expect(a, CmdLock, nil)
	deadline := time.Now().Add(waitLimit)
	for {
		host.sendMsg(b, CmdPing, []byte{4})
		m := host.recv(b, false)
		if m.Cmd == CmdPing {
			break
		}
		if m.Cmd != CmdError || m.Payload[0] != byte(CodeChannelBusy) || time.Now().After(deadline) {
			t.Fatalf("%v % x while waiting for the lock to expire", m.Cmd, m.Payload)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServerMalformed: every malformed input gets the CTAPHID error the specification names,
// and the server keeps working afterwards.
func TestServerMalformed(t *testing.T) {
	const stranger = 0x5555aaaa // never allocated
	cases := []struct {
		name    string
		reports func(a uint32) [][]byte
		cid     func(a uint32) uint32
		code    ErrorCode
	}{
		{"bad sequence", func(a uint32) [][]byte { return [][]byte{report(a, 0x81, 0, 100), report(a, 0x01)} }, nil, CodeInvalidSeq},
		{"continuation without init", func(a uint32) [][]byte { return [][]byte{report(a, 0x00)} }, nil, CodeInvalidSeq},
		{"init interrupts message", func(a uint32) [][]byte { return [][]byte{report(a, 0x81, 0, 100), report(a, 0x81, 0, 1, 7)} }, nil, CodeInvalidSeq},
		{"length 7610", func(a uint32) [][]byte { return [][]byte{report(a, 0x81, 0x1d, 0xba)} }, nil, CodeInvalidLen},
		{"unknown command", func(a uint32) [][]byte { return [][]byte{report(a, 0xd5)} }, nil, CodeInvalidCmd},
		{"host keepalive", func(a uint32) [][]byte { return [][]byte{report(a, 0xbb, 0, 1, 1)} }, nil, CodeInvalidCmd},
		{"host error", func(a uint32) [][]byte { return [][]byte{report(a, 0xbf, 0, 1, 1)} }, nil, CodeInvalidCmd},
		{"INIT nonce 4 bytes", func(a uint32) [][]byte { return [][]byte{report(a, 0x86, 0, 4, 1, 2, 3, 4)} }, nil, CodeInvalidLen},
		{"broadcast INIT nonce 9 bytes", func(a uint32) [][]byte { return [][]byte{report(BroadcastCID, 0x86, 0, 9)} },
			func(uint32) uint32 { return BroadcastCID }, CodeInvalidLen},
		{"LOCK 2 bytes", func(a uint32) [][]byte { return [][]byte{report(a, 0x84, 0, 2, 1, 1)} }, nil, CodeInvalidLen},
		{"LOCK 11 s", func(a uint32) [][]byte { return [][]byte{report(a, 0x84, 0, 1, 11)} }, nil, CodeInvalidPar},
		{"WINK with data", func(a uint32) [][]byte { return [][]byte{report(a, 0x88, 0, 1, 1)} }, nil, CodeInvalidLen},
		{"empty CBOR", func(a uint32) [][]byte { return [][]byte{report(a, 0x90)} }, nil, CodeInvalidLen},
		{"PING on broadcast", func(a uint32) [][]byte { return [][]byte{report(BroadcastCID, 0x81, 0, 1, 1)} },
			func(uint32) uint32 { return BroadcastCID }, CodeInvalidChannel},
		{"PING on channel 0", func(a uint32) [][]byte { return [][]byte{report(0, 0x81, 0, 1, 1)} },
			func(uint32) uint32 { return 0 }, CodeInvalidChannel},
		{"INIT on channel 0", func(a uint32) [][]byte { return [][]byte{report(0, 0x86, 0, 8)} },
			func(uint32) uint32 { return 0 }, CodeInvalidChannel},
		{"PING on unallocated channel", func(a uint32) [][]byte { return [][]byte{report(stranger, 0x81, 0, 1, 1)} },
			func(uint32) uint32 { return stranger }, CodeInvalidChannel},
		{"INIT on unallocated channel", func(a uint32) [][]byte { return [][]byte{report(stranger, 0x86, 0, 8)} },
			func(uint32) uint32 { return stranger }, CodeInvalidChannel},
		{"message timeout", func(a uint32) [][]byte { return [][]byte{report(a, 0x81, 0, 100)} }, nil, CodeMsgTimeout},
	}
	s := newServer(newTestHandler())
	s.MessageTimeout = 20 * time.Millisecond
	host := rawHost{t, serve(t, s)}
	a := host.open()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			host := rawHost{t, host.c}
			host.send(tc.reports(a)...)
			cid := a
			if tc.cid != nil {
				cid = tc.cid(a)
			}
			host.expectError(cid, tc.code)
			host.sendMsg(a, CmdPing, []byte("still there"))
			host.expect(a, CmdPing, []byte("still there"))
		})
	}
}

// TestServerEvictsChannels: past MaxChannels the oldest idle channel is reused.
func TestServerEvictsChannels(t *testing.T) {
	s := newServer(newTestHandler())
	s.MaxChannels = 2
	host := rawHost{t, serve(t, s)}
	a, b, c := host.open(), host.open(), host.open()
	host.sendMsg(a, CmdPing, []byte{1})
	host.expectError(a, CodeInvalidChannel)
	for _, cid := range []uint32{b, c} {
		host.sendMsg(cid, CmdPing, []byte{1})
		host.expect(cid, CmdPing, []byte{1})
	}
}

func TestServerFaults(t *testing.T) {
	s := newServer(newTestHandler())
	host := serve(t, s)
	ctx := testCtx(t)
	ch, err := Open(ctx, host)
	if err != nil {
		t.Fatal(err)
	}

	s.SetFaults(Faults{CorruptFrames: true})
	var fe *FrameError
	if err := ch.Ping(ctx, []byte{2}); !errors.As(err, &fe) {
		t.Fatalf("corrupt_frames: %v", err)
	}

	s.SetFaults(Faults{NoAnswer: true})
	sctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := ch.Ping(sctx, []byte{1}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("no_answer: %v", err)
	}

	s.SetFaults(Faults{KeepaliveInterval: time.Millisecond})
	if f := s.Faults(); f.KeepaliveInterval != time.Millisecond || f.NoAnswer || f.CorruptFrames {
		t.Fatalf("faults %+v", f)
	}
	s.SetFaults(Faults{})
	if err := ch.Ping(ctx, []byte{3}); err != nil {
		t.Fatalf("after faults: %v", err)
	}
}

// TestServeConnClosed: Serve returns ErrClosed when the host end goes away, even with a
// request running, and leaves no goroutine.
func TestServeConnClosed(t *testing.T) {
	checkNoLeak(t)
	h := newTestHandler()
	host, dev := Pipe()
	errc := make(chan error, 1)
	go func() { errc <- newServer(h).Serve(context.Background(), dev) }()
	raw := rawHost{t, host}
	a := raw.open()
	raw.sendMsg(a, CmdCBOR, []byte{reqProcess})
	recvSignal(t, h.started, "handler start")
	host.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Serve did not return")
	}
	if _, err := dev.ReadReport(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("read on closed pipe: %v", err)
	}
	if err := host.WriteReport(context.Background(), make([]byte, ReportSize)); !errors.Is(err, ErrClosed) {
		t.Fatalf("write on closed pipe: %v", err)
	}
}

func TestOpenContext(t *testing.T) {
	host, dev := Pipe()
	defer host.Close()
	_ = dev // nobody answers
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Open(ctx, host); !errors.Is(err, context.Canceled) {
		t.Fatalf("Open: %v", err)
	}
}

// A raw exchange that leaves a message half sent on the channel's own CID
// does not break the next transaction: the channel resynchronises first.
func TestChannelRawThenResync(t *testing.T) {
	host := serve(t, newServer(newTestHandler()))
	ctx := testCtx(t)
	ch, err := Open(ctx, host)
	if err != nil {
		t.Fatal(err)
	}
	err = ch.Raw(func(c Conn) error {
		frames, err := Frames(ch.cid, CmdPing, payloadOf(200))
		if err != nil {
			return err
		}
		return c.WriteReport(ctx, frames[0]) // the continuations never come
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Ping(ctx, payloadOf(100)); err != nil {
		t.Fatalf("ping after a raw exchange: %v", err)
	}
}

// TestServerInitWhileMessageArrives: INIT on the broadcast channel is
// answered while another channel's message is half sent (a new
// application must be able to find the key at any time,
// §11.2.9.1.3), and that message still completes; the pending channel is
// not reused for the new one.
func TestServerInitWhileMessageArrives(t *testing.T) {
	s := newServer(newTestHandler())
	s.MaxChannels = 2
	host := rawHost{t, serve(t, s)}
	a := host.open()
	data := payloadOf(InitDataSize + 10)
	frames, err := Frames(a, CmdPing, data)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if err := host.c.WriteReport(ctx, frames[0]); err != nil {
		t.Fatal(err)
	}
	b := host.open()
	c := host.open() // the table is full: b, not a, is reused
	if b == a || c == a {
		t.Fatalf("channel %08x of the pending message was reallocated (%08x, %08x)", a, b, c)
	}
	if err := host.c.WriteReport(ctx, frames[1]); err != nil {
		t.Fatal(err)
	}
	host.expect(a, CmdPing, data)
}
