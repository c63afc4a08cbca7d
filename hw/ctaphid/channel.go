package ctaphid

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Host-side errors.
var (
	// ErrUnexpectedResponse: the device answered on our channel with another command than
	// the request's, or with a malformed INIT, KEEPALIVE or ERROR payload.
	ErrUnexpectedResponse = errors.New("ctaphid: unexpected response")
	// ErrPingMismatch: a PING answer differs from the data sent.
	ErrPingMismatch = errors.New("ctaphid: ping answer differs from request")
)

// DeviceError is a CTAPHID_ERROR answer from the device.
type DeviceError struct {
	Code ErrorCode
}

func (e *DeviceError) Error() string { return "ctaphid: device error " + e.Code.String() }

// DeviceInfo is what the CTAPHID_INIT response says about the device (section 11.2.9.1.3).
type DeviceInfo struct {
	Protocol     byte // CTAPHID protocol version, 2
	Major        byte // device version, major
	Minor        byte // device version, minor
	Build        byte // device version, build
	Capabilities Capabilities
}

// initResponseSize is nonce(8) CID(4) protocol(1) major(1) minor(1) build(1) caps(1).
const initResponseSize = 17

// cancelWriteTimeout bounds the CTAPHID_CANCEL write once the caller's ctx has ended.
const cancelWriteTimeout = time.Second

// Channel is a host-side CTAPHID channel on one device. Its methods are safe for concurrent
// use and run one transaction at a time. A Conn should carry one Channel at a time: the
// Channel reads every report and drops those of other channels.
//
// After a transaction that ended without its answer (cancelled, timed out, broken frames),
// the next transaction first resynchronises the channel with CTAPHID_INIT on its CID, which
// aborts the device's pending transaction and flushes stale answers.
type Channel struct {
	mu    sync.Mutex
	conn  Conn
	rand  io.Reader
	cid   uint32
	info  DeviceInfo
	dirty bool
}

// Open allocates a channel with CTAPHID_INIT on the broadcast channel, using an 8-byte random
// nonce; answers carrying another nonce (meant for another host) are ignored. The deadline
// comes from ctx.
func Open(ctx context.Context, c Conn) (*Channel, error) {
	return open(ctx, c, rand.Reader)
}

func open(ctx context.Context, c Conn, r io.Reader) (*Channel, error) {
	ch := &Channel{conn: c, rand: r}
	cid, info, err := ch.init(ctx, BroadcastCID)
	if err != nil {
		return nil, err
	}
	ch.cid, ch.info = cid, info
	return ch, nil
}

// CID is the channel identifier the device allocated.
func (ch *Channel) CID() uint32 {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.cid
}

// Info is the device's answer to CTAPHID_INIT.
func (ch *Channel) Info() DeviceInfo {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.info
}

// Capabilities are the device's capability flags from CTAPHID_INIT.
func (ch *Channel) Capabilities() Capabilities { return ch.Info().Capabilities }

// CBOR sends a CTAP2 request (command byte and CBOR parameters) and returns the answer
// (status byte and CBOR). Every KEEPALIVE is passed to onKeepalive (which may be nil). When
// ctx ends first, CTAPHID_CANCEL is sent on the channel and the ctx error is returned.
func (ch *Channel) CBOR(ctx context.Context, payload []byte, onKeepalive func(status byte)) ([]byte, error) {
	return ch.Transact(ctx, CmdCBOR, payload, onKeepalive)
}

// Msg sends a CTAP1/U2F APDU with CTAPHID_MSG and returns the response APDU.
func (ch *Channel) Msg(ctx context.Context, apdu []byte) ([]byte, error) {
	return ch.Transact(ctx, CmdMsg, apdu, nil)
}

// Ping sends data with CTAPHID_PING and checks that the device echoes it.
func (ch *Channel) Ping(ctx context.Context, data []byte) error {
	got, err := ch.Transact(ctx, CmdPing, data, nil)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, data) {
		return ErrPingMismatch
	}
	return nil
}

// Wink asks the device to identify itself (CTAPHID_WINK).
func (ch *Channel) Wink(ctx context.Context) error {
	_, err := ch.Transact(ctx, CmdWink, nil, nil)
	return err
}

// Lock reserves the device for this channel for seconds (1-10), or releases it (0), with
// CTAPHID_LOCK.
func (ch *Channel) Lock(ctx context.Context, seconds byte) error {
	_, err := ch.Transact(ctx, CmdLock, []byte{seconds}, nil)
	return err
}

// Raw runs fn with the channel's Conn while no transaction runs, for
// conformance checks that write and read frames of their own (other
// channels, broken sequences, timeouts). Afterwards the channel is
// resynchronised (CTAPHID_INIT on its CID, or a new channel) before its
// next transaction, whatever fn left on the wire.
func (ch *Channel) Raw(fn func(Conn) error) error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.dirty = true
	return fn(ch.conn)
}

// Transact sends one request message and waits for the answer with the same command.
// KEEPALIVE answers go to onKeepalive (which may be nil) and do not end the wait; an ERROR
// answer is returned as a [*DeviceError]; reports on other channels are ignored. When ctx
// ends while waiting, CTAPHID_CANCEL is sent and the wrapped ctx error returned.
func (ch *Channel) Transact(ctx context.Context, cmd Cmd, payload []byte, onKeepalive func(status byte)) ([]byte, error) {
	frames, err := Frames(0, cmd, payload)
	if err != nil {
		return nil, err
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.dirty {
		if err := ch.resync(ctx); err != nil {
			return nil, err
		}
	}
	for _, f := range frames {
		binary.BigEndian.PutUint32(f, ch.cid)
	}
	resp, err := ch.exchange(ctx, cmd, frames, onKeepalive)
	var de *DeviceError
	if err != nil && !errors.As(err, &de) {
		ch.dirty = true
	}
	return resp, err
}

// exchange writes the request frames and reads the answer on ch.cid. Called with ch.mu held.
func (ch *Channel) exchange(ctx context.Context, cmd Cmd, frames [][]byte, onKeepalive func(byte)) ([]byte, error) {
	for _, f := range frames {
		if err := ch.conn.WriteReport(ctx, f); err != nil {
			return nil, fmt.Errorf("ctaphid: %v request: %w", cmd, err)
		}
	}
	var asm Assembler
	for {
		r, err := ch.conn.ReadReport(ctx)
		if err != nil {
			if ctx.Err() != nil {
				ch.cancel(ctx)
				return nil, fmt.Errorf("ctaphid: %v cancelled: %w", cmd, ctx.Err())
			}
			return nil, fmt.Errorf("ctaphid: %v response: %w", cmd, err)
		}
		if len(r) < 4 || binary.BigEndian.Uint32(r) != ch.cid {
			continue
		}
		m, err := asm.Add(r)
		if err != nil {
			return nil, fmt.Errorf("ctaphid: %v response: %w", cmd, err)
		}
		if m == nil {
			continue
		}
		switch m.Cmd {
		case cmd:
			return m.Payload, nil
		case CmdKeepalive:
			if len(m.Payload) < 1 {
				return nil, fmt.Errorf("%w: empty KEEPALIVE", ErrUnexpectedResponse)
			}
			if onKeepalive != nil {
				onKeepalive(m.Payload[0])
			}
		case CmdError:
			code := CodeOther
			if len(m.Payload) > 0 {
				code = ErrorCode(m.Payload[0])
			}
			return nil, &DeviceError{Code: code}
		default:
			return nil, fmt.Errorf("%w: %v to %v", ErrUnexpectedResponse, m.Cmd, cmd)
		}
	}
}

// cancel sends CTAPHID_CANCEL on the channel after ctx has ended, with a short deadline of
// its own. Its failure is not reported: the next transaction resynchronises anyway.
func (ch *Channel) cancel(ctx context.Context) {
	wctx, stop := context.WithTimeout(context.WithoutCancel(ctx), cancelWriteTimeout)
	defer stop()
	frames, _ := Frames(ch.cid, CmdCancel, nil)
	_ = ch.conn.WriteReport(wctx, frames[0])
}

// resync sends CTAPHID_INIT on the channel's own CID, which aborts whatever the device still
// runs for us; answers sent before the INIT response are dropped. If the device no longer
// knows the channel, a new one is allocated on the broadcast channel.
func (ch *Channel) resync(ctx context.Context) error {
	cid, info, err := ch.init(ctx, ch.cid)
	var de *DeviceError
	if errors.As(err, &de) {
		cid, info, err = ch.init(ctx, BroadcastCID)
	}
	if err != nil {
		return err
	}
	ch.cid, ch.info, ch.dirty = cid, info, false
	return nil
}

// init runs CTAPHID_INIT on cid and returns the allocated channel and device info.
func (ch *Channel) init(ctx context.Context, cid uint32) (uint32, DeviceInfo, error) {
	var nonce [8]byte
	if _, err := io.ReadFull(ch.rand, nonce[:]); err != nil {
		return 0, DeviceInfo{}, fmt.Errorf("ctaphid: INIT nonce: %w", err)
	}
	frames, err := Frames(cid, CmdInit, nonce[:])
	if err != nil {
		return 0, DeviceInfo{}, err
	}
	if err := ch.conn.WriteReport(ctx, frames[0]); err != nil {
		return 0, DeviceInfo{}, fmt.Errorf("ctaphid: INIT request: %w", err)
	}
	for {
		r, err := ch.conn.ReadReport(ctx)
		if err != nil {
			return 0, DeviceInfo{}, fmt.Errorf("ctaphid: INIT response: %w", err)
		}
		if len(r) != ReportSize || binary.BigEndian.Uint32(r) != cid || r[4]&0x80 == 0 {
			continue
		}
		switch Cmd(r[4] &^ 0x80) {
		case CmdInit:
			newCID, info, err := ParseInitResponse(nonce, r)
			if err != nil {
				continue // another host's INIT, or garbage: not ours
			}
			return newCID, info, nil
		case CmdError:
			if cid != BroadcastCID {
				return 0, DeviceInfo{}, &DeviceError{Code: ErrorCode(r[7])}
			}
		}
	}
}

// ParseInitResponse checks one CTAPHID_INIT response report against the nonce sent and
// returns the allocated channel and the device info. It fails with ErrUnexpectedResponse
// when the report is not an INIT response, is too short or carries another nonce, or
// allocates the broadcast or the reserved zero channel.
func ParseInitResponse(nonce [8]byte, report []byte) (uint32, DeviceInfo, error) {
	if len(report) != ReportSize || report[4] != 0x80|byte(CmdInit) {
		return 0, DeviceInfo{}, fmt.Errorf("%w: not an INIT response", ErrUnexpectedResponse)
	}
	n := int(binary.BigEndian.Uint16(report[5:]))
	if n < initResponseSize || n > InitDataSize {
		return 0, DeviceInfo{}, fmt.Errorf("%w: INIT response of %d bytes", ErrUnexpectedResponse, n)
	}
	p := report[7:]
	if !bytes.Equal(p[:8], nonce[:]) {
		return 0, DeviceInfo{}, fmt.Errorf("%w: INIT nonce mismatch", ErrUnexpectedResponse)
	}
	cid := binary.BigEndian.Uint32(p[8:])
	if cid == 0 || cid == BroadcastCID {
		return 0, DeviceInfo{}, fmt.Errorf("%w: INIT allocated channel %08x", ErrUnexpectedResponse, cid)
	}
	return cid, DeviceInfo{Protocol: p[12], Major: p[13], Minor: p[14], Build: p[15], Capabilities: Capabilities(p[16])}, nil
}
