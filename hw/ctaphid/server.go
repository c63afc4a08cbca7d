package ctaphid

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Handler is the authenticator behind a [Server]. The Server calls at most one method at a
// time, CBOR and Msg on a goroutine of their own.
type Handler interface {
	// CBOR handles one CTAP2 request (command byte and CBOR parameters) and returns the
	// answer (status byte and CBOR). While it runs, the Server sends KEEPALIVE with the last
	// status passed to keepalive (StatusProcessing until then; StatusUPNeeded while waiting
	// for a touch). When ctx ends (CTAPHID_CANCEL, resynchronisation, Serve ending) it must
	// return promptly, with CTAP2ErrKeepaliveCancel if CTAPHID_CANCEL cancelled it.
	CBOR(ctx context.Context, req []byte, keepalive func(status byte)) []byte
	// Msg handles one CTAP1/U2F request APDU and returns the response APDU.
	Msg(ctx context.Context, apdu []byte) []byte
	// Wink shows the user which device this is.
	Wink()
}

// Faults are deliberate misbehaviours of a [Server], for testing hosts against broken keys.
type Faults struct {
	// NoAnswer drops every report the Server would send ("no_answer").
	NoAnswer bool
	// CorruptFrames flips the initialization bit (0x80) of byte 4 of every report sent, so
	// initialization packets arrive as continuations and the reverse ("corrupt_frames").
	CorruptFrames bool
	// KeepaliveInterval, when not zero, overrides Server.KeepaliveInterval for the
	// transactions that start afterwards ("slow_keepalive").
	KeepaliveInterval time.Duration
}

// Server defaults.
const (
	DefaultKeepaliveInterval = 100 * time.Millisecond
	DefaultMessageTimeout    = 500 * time.Millisecond
	DefaultMaxChannels       = 32
	// MaxLockSeconds is the longest CTAPHID_LOCK (section 11.2.9.2.2).
	MaxLockSeconds = 10
)

// Server is the device side of CTAPHID. Set its fields before calling Serve; do not copy it
// after. Faults may be changed at any time with SetFaults.
//
// Serve answers: INIT on the broadcast channel allocates a channel (unique, never zero or
// broadcast) and echoes the nonce with the versions and capabilities below, also while
// another channel's request runs or its message is still arriving; INIT on an
// allocated channel aborts its transaction and answers with the same channel; PING echoes;
// WINK calls Handler.Wink; LOCK reserves the device for one channel (others get
// ERR_CHANNEL_BUSY until it expires or is released); CBOR and MSG run the Handler while
// KEEPALIVE is sent every KeepaliveInterval; CANCEL cancels the running Handler's ctx (and
// is never answered); a request on another channel while one runs gets ERR_CHANNEL_BUSY; a
// message not completed within MessageTimeout gets ERR_MSG_TIMEOUT; malformed input gets
// ERR_INVALID_CMD, ERR_INVALID_PAR, ERR_INVALID_LEN, ERR_INVALID_SEQ or
// ERR_INVALID_CHANNEL. Continuation packets of other channels' messages that were refused
// are dropped without an answer.
type Server struct {
	Handler Handler

	// Capabilities are reported by INIT; CBOR needs CapCBOR, WINK needs CapWink, and MSG is
	// refused with ERR_INVALID_CMD when CapNMSG is set.
	Capabilities Capabilities
	// Major, Minor and Build are the device version reported by INIT.
	Major, Minor, Build byte

	// KeepaliveInterval is the KEEPALIVE period during CBOR and MSG (default 100 ms).
	KeepaliveInterval time.Duration
	// MessageTimeout bounds the wait for the next packet of a message (default 500 ms).
	MessageTimeout time.Duration
	// MaxChannels bounds the allocated channels; the oldest idle one is reused (default 32).
	MaxChannels int

	mu     sync.Mutex
	faults Faults
}

// SetFaults replaces the Server's faults.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// Faults returns the Server's current faults.
func (s *Server) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// transaction is a CBOR or MSG request running in the Handler.
type transaction struct {
	cid    uint32
	cmd    Cmd
	cancel context.CancelFunc
	done   chan []byte   // the Handler's answer, buffered
	notify chan struct{} // the Handler changed status, buffered
	status atomic.Uint32
	ticker *time.Ticker
}

// session is the state of one Serve call.
type session struct {
	s        *Server
	conn     Conn
	wg       *sync.WaitGroup
	channels map[uint32]bool
	order    []uint32 // allocation order, oldest first
	asm      Assembler
	asmTimer *time.Timer
	asmArmed bool
	txn      *transaction
	lockCID  uint32
	lockEnd  time.Time
}

// Serve runs the device side on c until ctx ends (it then returns ctx.Err()) or c fails
// (it returns that error). It cancels a running Handler and waits for it and for its own
// reader goroutine before returning.
func (s *Server) Serve(ctx context.Context, c Conn) error {
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	reports := make(chan []byte)
	readErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			r, err := c.ReadReport(ctx)
			if err != nil {
				readErr <- err
				return
			}
			select {
			case reports <- r:
			case <-ctx.Done():
				return
			}
		}
	}()

	ss := &session{s: s, conn: c, wg: &wg, channels: make(map[uint32]bool), asmTimer: time.NewTimer(time.Hour)}
	ss.asmTimer.Stop()
	defer ss.asmTimer.Stop()
	defer ss.abort()

	for {
		var tick <-chan time.Time
		var done <-chan []byte
		var notify <-chan struct{}
		if t := ss.txn; t != nil {
			tick, done, notify = t.ticker.C, t.done, t.notify
		}
		var timeout <-chan time.Time
		if ss.asmArmed {
			timeout = ss.asmTimer.C
		}
		var err error
		select {
		case <-ctx.Done():
			return fmt.Errorf("ctaphid: serve: %w", parent.Err())
		case err = <-readErr:
			if parent.Err() != nil {
				return fmt.Errorf("ctaphid: serve: %w", parent.Err())
			}
			return fmt.Errorf("ctaphid: serve: %w", err)
		case r := <-reports:
			err = ss.report(ctx, r)
		case resp := <-done:
			err = ss.finish(ctx, resp)
		case <-tick:
			err = ss.keepalive(ctx)
		case <-notify:
			err = ss.keepalive(ctx)
		case <-timeout:
			ss.asmArmed = false
			if cid, ok := ss.asm.Pending(); ok {
				ss.asm.Reset()
				err = ss.sendError(ctx, cid, CodeMsgTimeout)
			}
		}
		if err != nil {
			if parent.Err() != nil {
				return fmt.Errorf("ctaphid: serve: %w", parent.Err())
			}
			return err
		}
	}
}

// report handles one report from the host.
func (ss *session) report(ctx context.Context, r []byte) error {
	if len(r) >= 5 {
		cid := binary.BigEndian.Uint32(r)
		isInit := r[4]&0x80 != 0
		if ss.lockCID != 0 && !time.Now().Before(ss.lockEnd) {
			ss.lockCID = 0 // the lock expired
		}
		locked := ss.lockCID != 0
		busy := ss.txn != nil && cid != ss.txn.cid && !(isInit && Cmd(r[4]&^0x80) == CmdInit)
		if (locked && cid != ss.lockCID) || busy {
			if !isInit {
				return nil // the rest of a message already refused
			}
			return ss.sendError(ctx, cid, CodeChannelBusy)
		}
		if pending, ok := ss.asm.Pending(); ok && pending != cid && cid == BroadcastCID && r[4] == 0x80|byte(CmdInit) && len(r) == ReportSize {
			// A new application's INIT is answered while another channel's
			// message arrives, which goes on undisturbed (§11.2.9.1.3).
			n := int(binary.BigEndian.Uint16(r[5:]))
			if n > InitDataSize {
				return ss.sendError(ctx, cid, CodeInvalidLen)
			}
			return ss.init(ctx, &Message{CID: cid, Cmd: CmdInit, Payload: append([]byte{}, r[7:7+n]...)})
		}
	}
	m, err := ss.asm.Add(r)
	ss.armTimer()
	if err != nil {
		var fe *FrameError
		if !errors.As(err, &fe) {
			return nil
		}
		if errors.Is(err, ErrOtherChannel) && len(r) >= 5 && r[4]&0x80 == 0 {
			return nil
		}
		return ss.sendError(ctx, fe.CID, fe.Code)
	}
	if m == nil {
		return nil
	}
	return ss.dispatch(ctx, m)
}

// armTimer starts the message timeout when a message is pending, restarting it at each
// packet, and stops it otherwise.
func (ss *session) armTimer() {
	_, pending := ss.asm.Pending()
	if !pending {
		ss.asmTimer.Stop()
		ss.asmArmed = false
		return
	}
	d := ss.s.MessageTimeout
	if d <= 0 {
		d = DefaultMessageTimeout
	}
	ss.asmTimer.Reset(d)
	ss.asmArmed = true
}

// dispatch handles one complete request message.
func (ss *session) dispatch(ctx context.Context, m *Message) error {
	switch {
	case m.CID == 0:
		return ss.sendError(ctx, m.CID, CodeInvalidChannel)
	case m.Cmd == CmdInit:
		return ss.init(ctx, m)
	case m.CID == BroadcastCID || !ss.channels[m.CID]:
		return ss.sendError(ctx, m.CID, CodeInvalidChannel)
	}
	if ss.txn != nil {
		if m.Cmd == CmdCancel {
			ss.txn.cancel()
			return nil
		}
		return ss.sendError(ctx, m.CID, CodeChannelBusy)
	}
	h := ss.s.Handler
	caps := ss.s.Capabilities
	switch m.Cmd {
	case CmdPing:
		return ss.send(ctx, m.CID, CmdPing, m.Payload)
	case CmdCancel:
		return nil // nothing to cancel; CANCEL is never answered
	case CmdWink:
		if h == nil || !caps.Has(CapWink) {
			return ss.sendError(ctx, m.CID, CodeInvalidCmd)
		}
		if len(m.Payload) != 0 {
			return ss.sendError(ctx, m.CID, CodeInvalidLen)
		}
		h.Wink()
		return ss.send(ctx, m.CID, CmdWink, nil)
	case CmdLock:
		if len(m.Payload) != 1 {
			return ss.sendError(ctx, m.CID, CodeInvalidLen)
		}
		secs := m.Payload[0]
		if secs > MaxLockSeconds {
			return ss.sendError(ctx, m.CID, CodeInvalidPar)
		}
		if secs == 0 {
			ss.lockCID = 0
		} else {
			ss.lockCID, ss.lockEnd = m.CID, time.Now().Add(time.Duration(secs)*time.Second)
		}
		return ss.send(ctx, m.CID, CmdLock, nil)
	case CmdCBOR:
		if h == nil || !caps.Has(CapCBOR) {
			return ss.sendError(ctx, m.CID, CodeInvalidCmd)
		}
		if len(m.Payload) == 0 {
			return ss.sendError(ctx, m.CID, CodeInvalidLen)
		}
		ss.start(ctx, m)
		return nil
	case CmdMsg:
		if h == nil || caps.Has(CapNMSG) {
			return ss.sendError(ctx, m.CID, CodeInvalidCmd)
		}
		ss.start(ctx, m)
		return nil
	}
	return ss.sendError(ctx, m.CID, CodeInvalidCmd)
}

// init answers CTAPHID_INIT: a new channel on the broadcast CID, a resynchronisation of the
// channel otherwise.
func (ss *session) init(ctx context.Context, m *Message) error {
	if len(m.Payload) != 8 {
		return ss.sendError(ctx, m.CID, CodeInvalidLen)
	}
	cid := m.CID
	switch {
	case cid == BroadcastCID:
		var err error
		if cid, err = ss.allocate(); err != nil {
			return ss.sendError(ctx, m.CID, CodeOther)
		}
	case ss.channels[cid]:
		if ss.txn != nil && ss.txn.cid == cid {
			ss.abort()
		}
	default:
		return ss.sendError(ctx, m.CID, CodeInvalidChannel)
	}
	resp := make([]byte, initResponseSize)
	copy(resp, m.Payload)
	binary.BigEndian.PutUint32(resp[8:], cid)
	resp[12], resp[13], resp[14], resp[15] = ProtocolVersion, ss.s.Major, ss.s.Minor, ss.s.Build
	resp[16] = byte(ss.s.Capabilities)
	return ss.send(ctx, m.CID, CmdInit, resp)
}

// allocate returns a new random channel, never 0 or broadcast, reusing the oldest idle one
// when MaxChannels are allocated.
func (ss *session) allocate() (uint32, error) {
	limit := ss.s.MaxChannels
	if limit <= 0 {
		limit = DefaultMaxChannels
	}
	for len(ss.order) >= limit {
		i := 0
		for i < len(ss.order) && ss.inUse(ss.order[i]) {
			i++
		}
		if i == len(ss.order) {
			return 0, errors.New("ctaphid: every channel is in use")
		}
		delete(ss.channels, ss.order[i])
		ss.order = append(ss.order[:i], ss.order[i+1:]...)
	}
	var b [4]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, err
		}
		cid := binary.BigEndian.Uint32(b[:])
		if cid != 0 && cid != BroadcastCID && !ss.channels[cid] {
			ss.channels[cid] = true
			ss.order = append(ss.order, cid)
			return cid, nil
		}
	}
}

func (ss *session) inUse(cid uint32) bool {
	pending, ok := ss.asm.Pending()
	return (ss.txn != nil && ss.txn.cid == cid) || cid == ss.lockCID || ok && pending == cid
}

// start runs the Handler for a CBOR or MSG request.
func (ss *session) start(ctx context.Context, m *Message) {
	hctx, cancel := context.WithCancel(ctx)
	t := &transaction{
		cid:    m.CID,
		cmd:    m.Cmd,
		cancel: cancel,
		done:   make(chan []byte, 1),
		notify: make(chan struct{}, 1),
	}
	t.status.Store(uint32(StatusProcessing))
	every := ss.s.KeepaliveInterval
	if f := ss.s.Faults(); f.KeepaliveInterval > 0 {
		every = f.KeepaliveInterval
	}
	if every <= 0 {
		every = DefaultKeepaliveInterval
	}
	t.ticker = time.NewTicker(every)
	keepalive := func(status byte) {
		t.status.Store(uint32(status))
		select {
		case t.notify <- struct{}{}:
		default:
		}
	}
	h, req := ss.s.Handler, m.Payload
	ss.txn = t
	ss.wg.Add(1)
	go func() {
		defer ss.wg.Done()
		var resp []byte
		if t.cmd == CmdCBOR {
			resp = h.CBOR(hctx, req, keepalive)
		} else {
			resp = h.Msg(hctx, req)
		}
		t.done <- resp
	}()
}

// finish sends the Handler's answer.
func (ss *session) finish(ctx context.Context, resp []byte) error {
	t := ss.txn
	ss.txn = nil
	t.ticker.Stop()
	t.cancel()
	if len(resp) == 0 || len(resp) > MaxPayload {
		return ss.sendError(ctx, t.cid, CodeOther)
	}
	return ss.send(ctx, t.cid, t.cmd, resp)
}

// abort cancels the running transaction, waits for the Handler and drops its answer.
func (ss *session) abort() {
	t := ss.txn
	if t == nil {
		return
	}
	ss.txn = nil
	t.ticker.Stop()
	t.cancel()
	<-t.done
}

func (ss *session) keepalive(ctx context.Context) error {
	t := ss.txn
	return ss.send(ctx, t.cid, CmdKeepalive, []byte{byte(t.status.Load())})
}

func (ss *session) sendError(ctx context.Context, cid uint32, code ErrorCode) error {
	return ss.send(ctx, cid, CmdError, []byte{byte(code)})
}

// send frames and writes one answer, applying the Server's faults.
func (ss *session) send(ctx context.Context, cid uint32, cmd Cmd, payload []byte) error {
	f := ss.s.Faults()
	if f.NoAnswer {
		return nil
	}
	frames, err := Frames(cid, cmd, payload)
	if err != nil {
		return err
	}
	for _, r := range frames {
		if f.CorruptFrames {
			r[4] ^= 0x80
		}
		if err := ss.conn.WriteReport(ctx, r); err != nil {
			return fmt.Errorf("ctaphid: serve: write %v: %w", cmd, err)
		}
	}
	return nil
}
