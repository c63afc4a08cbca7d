package fidocheck

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/mfad/mfad/hw/ctap2"
	"github.com/mfad/mfad/hw/ctaphid"
)

// wire is raw CTAPHID on the key's connection, inside ctaphid.Channel.Raw.
type wire struct {
	c ctaphid.Conn
}

// errNoAnswer: the key did not answer within the exchange's deadline.
var errNoAnswer = errors.New("no answer")

// raw runs fn on the key's connection while its channel is idle.
func (r *runner) raw(fn func(w wire) outcome) outcome {
	var o outcome
	err := r.k.Channel().Raw(func(c ctaphid.Conn) error {
		o = fn(wire{c})
		return nil
	})
	if err != nil {
		return errOutcome("raw CTAPHID", err)
	}
	return o
}

// write sends a whole message.
func (w wire) write(ctx context.Context, cid uint32, cmd ctaphid.Cmd, payload []byte) error {
	frames, err := ctaphid.Frames(cid, cmd, payload)
	if err != nil {
		return err
	}
	for _, f := range frames {
		if err := w.c.WriteReport(ctx, f); err != nil {
			return err
		}
	}
	return nil
}

// read returns the next whole message on cid, dropping reports of other
// channels. A malformed answer is an error.
func (w wire) read(ctx context.Context, cid uint32) (*ctaphid.Message, error) {
	var asm ctaphid.Assembler
	for {
		rep, err := w.c.ReadReport(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, errNoAnswer
			}
			return nil, err
		}
		if len(rep) < 5 || binary.BigEndian.Uint32(rep) != cid {
			continue
		}
		m, err := asm.Add(rep)
		if err != nil {
			return nil, fmt.Errorf("malformed answer: %w", err)
		}
		if m != nil {
			return m, nil
		}
	}
}

// init runs CTAPHID_INIT on cid and returns the channel and device info of
// the answer carrying our nonce.
func (w wire) init(ctx context.Context, cid uint32) (uint32, ctaphid.DeviceInfo, error) {
	var nonce [8]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return 0, ctaphid.DeviceInfo{}, err
	}
	if err := w.write(ctx, cid, ctaphid.CmdInit, nonce[:]); err != nil {
		return 0, ctaphid.DeviceInfo{}, err
	}
	for {
		m, err := w.read(ctx, cid)
		if err != nil {
			return 0, ctaphid.DeviceInfo{}, err
		}
		switch m.Cmd {
		case ctaphid.CmdInit:
		case ctaphid.CmdError:
			return 0, ctaphid.DeviceInfo{}, fmt.Errorf("INIT answered %s", errorCode(m))
		default:
			continue
		}
		rep, err := ctaphid.Frames(cid, ctaphid.CmdInit, m.Payload)
		if err != nil || len(rep) != 1 {
			return 0, ctaphid.DeviceInfo{}, fmt.Errorf("INIT answer of %d bytes", len(m.Payload))
		}
		newCID, info, err := ctaphid.ParseInitResponse(nonce, rep[0])
		if err != nil {
			if len(m.Payload) >= 8 && !bytes.Equal(m.Payload[:8], nonce[:]) {
				continue // another host's INIT
			}
			return 0, ctaphid.DeviceInfo{}, err
		}
		return newCID, info, nil
	}
}

// channel allocates a fresh channel for one check.
func (r *runner) channel(w wire) (uint32, error) {
	ctx, cancel := r.op(false)
	defer cancel()
	cid, _, err := w.init(ctx, ctaphid.BroadcastCID)
	if err != nil {
		return 0, fmt.Errorf("allocating a channel: %w", err)
	}
	return cid, nil
}

// fresh runs fn on a channel allocated for it.
func (r *runner) fresh(fn func(w wire, cid uint32) outcome) outcome {
	return r.raw(func(w wire) outcome {
		cid, err := r.channel(w)
		if err != nil {
			return failf("%v", err)
		}
		return fn(w, cid)
	})
}

func errorCode(m *ctaphid.Message) string {
	if m.Cmd != ctaphid.CmdError {
		return m.Cmd.String()
	}
	if len(m.Payload) == 0 {
		return "ERROR without a code"
	}
	return ctaphid.ErrorCode(m.Payload[0]).String()
}

// expectError reads the next message on cid and checks that it is
// CTAPHID_ERROR with code want.
func (r *runner) expectError(w wire, cid uint32, want ctaphid.ErrorCode, what string) outcome {
	ctx, cancel := r.op(false)
	defer cancel()
	m, err := w.read(ctx, cid)
	if err != nil {
		r.note("%s: %v", what, err)
		return failf("%s: want %v, got %v", what, want, err)
	}
	r.note("%s: %s", what, errorCode(m))
	if m.Cmd != ctaphid.CmdError || len(m.Payload) == 0 || ctaphid.ErrorCode(m.Payload[0]) != want {
		return failf("%s: want %v, got %s", what, want, errorCode(m))
	}
	return pass()
}

// pattern is n bytes that differ from their neighbours, so that a key that
// drops or repeats a frame is caught.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func checkInit(r *runner) outcome {
	return r.raw(func(w wire) outcome {
		ctx, cancel := r.op(false)
		defer cancel()
		a, info, err := w.init(ctx, ctaphid.BroadcastCID)
		if err != nil {
			r.dead = "the key does not answer CTAPHID_INIT (see ctaphid.init)"
			return errOutcome("INIT on the broadcast channel", err)
		}
		r.note("first INIT: channel %08x, protocol %d, device version %d.%d.%d, capabilities %v", a, info.Protocol, info.Major, info.Minor, info.Build, info.Capabilities)
		b, _, err := w.init(ctx, ctaphid.BroadcastCID)
		if err != nil {
			return errOutcome("second INIT on the broadcast channel", err)
		}
		r.note("second INIT: channel %08x", b)
		if a == b {
			return failf("two INITs allocated the same channel %08x", a)
		}
		if info.Protocol != ctaphid.ProtocolVersion {
			return failf("CTAPHID protocol version %d, want %d", info.Protocol, ctaphid.ProtocolVersion)
		}
		c, _, err := w.init(ctx, a)
		if err != nil {
			return errOutcome("INIT on an allocated channel", err)
		}
		r.note("INIT on channel %08x: answered with channel %08x", a, c)
		if c != a {
			return failf("INIT on allocated channel %08x answered with channel %08x, want the same", a, c)
		}
		return pass()
	})
}

// pingSizes are the PING lengths around the frame boundaries: empty, one
// byte, a full initialization packet, one byte more, the largest message.
var pingSizes = []int{0, 1, ctaphid.InitDataSize, ctaphid.InitDataSize + 1, ctaphid.MaxPayload}

func checkPing(r *runner) outcome {
	return r.fresh(func(w wire, cid uint32) outcome {
		for _, n := range pingSizes {
			ctx, cancel := r.op(false)
			data := pattern(n)
			err := w.write(ctx, cid, ctaphid.CmdPing, data)
			var m *ctaphid.Message
			if err == nil {
				m, err = w.read(ctx, cid)
			}
			cancel()
			switch {
			case err != nil:
				r.note("PING %d bytes: %v", n, err)
				return failf("PING of %d bytes: %v", n, err)
			case m.Cmd != ctaphid.CmdPing:
				r.note("PING %d bytes: answered %s", n, errorCode(m))
				return failf("PING of %d bytes answered %s", n, errorCode(m))
			case !bytes.Equal(m.Payload, data):
				r.note("PING %d bytes: echo of %d bytes differs", n, len(m.Payload))
				return failf("PING of %d bytes: the echo differs from what was sent", n)
			}
			r.note("PING %d bytes: echoed", n)
		}
		return pass()
	})
}

func checkInvalidChannel(r *runner) outcome {
	return r.fresh(func(w wire, own uint32) outcome {
		ctx, cancel := r.op(false)
		defer cancel()
		if err := w.write(ctx, ctaphid.BroadcastCID, ctaphid.CmdPing, []byte{1}); err != nil {
			return errOutcome("PING on the broadcast channel", err)
		}
		if o := r.expectError(w, ctaphid.BroadcastCID, ctaphid.CodeInvalidChannel, "PING on the broadcast channel"); o.failed() {
			return o
		}
		stranger := own ^ 0x5a5a5a5a
		if stranger == 0 || stranger == ctaphid.BroadcastCID {
			stranger = own + 1
		}
		if err := w.write(ctx, stranger, ctaphid.CmdPing, []byte{1}); err != nil {
			return errOutcome("PING on an unallocated channel", err)
		}
		return r.expectError(w, stranger, ctaphid.CodeInvalidChannel, fmt.Sprintf("PING on unallocated channel %08x", stranger))
	})
}

// twoFramePing is a PING payload that needs an initialization packet and
// one continuation.
var twoFramePing = pattern(ctaphid.InitDataSize + 10)

func checkBusy(r *runner) outcome {
	return r.raw(func(w wire) outcome {
		a, err := r.channel(w)
		if err != nil {
			return failf("%v", err)
		}
		b, err := r.channel(w)
		if err != nil {
			return failf("%v", err)
		}
		frames, _ := ctaphid.Frames(a, ctaphid.CmdPing, twoFramePing)
		ctx, cancel := r.op(false)
		defer cancel()
		if err := w.c.WriteReport(ctx, frames[0]); err != nil {
			return errOutcome("first packet on channel A", err)
		}
		if err := w.write(ctx, b, ctaphid.CmdPing, []byte{1, 2, 3}); err != nil {
			return errOutcome("PING on channel B", err)
		}
		if o := r.expectError(w, b, ctaphid.CodeChannelBusy, fmt.Sprintf("PING on channel %08x while %08x's message arrives", b, a)); o.failed() {
			return o
		}
		if err := w.c.WriteReport(ctx, frames[1]); err != nil {
			return errOutcome("continuation on channel A", err)
		}
		m, err := w.read(ctx, a)
		if err != nil {
			return errOutcome("channel A's PING after the refusal", err)
		}
		if m.Cmd != ctaphid.CmdPing || !bytes.Equal(m.Payload, twoFramePing) {
			r.note("channel A's PING: %s", errorCode(m))
			return failf("channel A's PING was not echoed after channel B was refused (got %s)", errorCode(m))
		}
		r.note("channel %08x's PING completed and echoed", a)
		return pass()
	})
}

func checkInitWhileBusy(r *runner) outcome {
	return r.fresh(func(w wire, a uint32) outcome {
		frames, _ := ctaphid.Frames(a, ctaphid.CmdPing, twoFramePing)
		ctx, cancel := r.op(false)
		defer cancel()
		if err := w.c.WriteReport(ctx, frames[0]); err != nil {
			return errOutcome("first packet on channel A", err)
		}
		b, _, err := w.init(ctx, ctaphid.BroadcastCID)
		if err != nil {
			r.note("INIT on the broadcast channel while %08x's message arrives: %v", a, err)
			return failf("INIT on the broadcast channel while another channel's message arrives: %v", err)
		}
		r.note("INIT on the broadcast channel while %08x's message arrives: channel %08x", a, b)
		if b == a {
			return failf("INIT allocated channel %08x, whose message is still arriving", a)
		}
		if err := w.c.WriteReport(ctx, frames[1]); err != nil {
			return errOutcome("continuation on channel A", err)
		}
		m, err := w.read(ctx, a)
		if err != nil {
			return errOutcome("channel A's PING after the INIT", err)
		}
		if m.Cmd != ctaphid.CmdPing || !bytes.Equal(m.Payload, twoFramePing) {
			return failf("channel A's PING was not echoed after another application's INIT (got %s)", errorCode(m))
		}
		r.note("channel %08x's PING completed and echoed", a)
		return pass()
	})
}

func checkSequence(r *runner) outcome {
	return r.fresh(func(w wire, cid uint32) outcome {
		frames, _ := ctaphid.Frames(cid, ctaphid.CmdPing, twoFramePing)
		frames[1][4] = 1 // sequence 1 where 0 is due
		ctx, cancel := r.op(false)
		defer cancel()
		for _, f := range frames {
			if err := w.c.WriteReport(ctx, f); err != nil {
				return errOutcome("PING with a wrong sequence number", err)
			}
		}
		if o := r.expectError(w, cid, ctaphid.CodeInvalidSeq, "continuation with sequence 1 instead of 0"); o.failed() {
			return o
		}
		if err := w.write(ctx, cid, ctaphid.CmdPing, []byte{9}); err != nil {
			return errOutcome("PING after the sequence error", err)
		}
		m, err := w.read(ctx, cid)
		if err != nil || m.Cmd != ctaphid.CmdPing {
			return failf("the channel is not usable after the sequence error")
		}
		r.note("the channel answers PING again afterwards")
		return pass()
	})
}

// messageTimeoutWait is how long the battery waits for ERR_MSG_TIMEOUT
// after a message's first packet. The specification leaves the timeout to
// the device; keys use a few hundred milliseconds.
const messageTimeoutWait = 3 * time.Second

func checkTimeout(r *runner) outcome {
	return r.fresh(func(w wire, cid uint32) outcome {
		frames, _ := ctaphid.Frames(cid, ctaphid.CmdPing, twoFramePing)
		ctx, cancel := context.WithTimeout(r.ctx, messageTimeoutWait)
		defer cancel()
		start := time.Now()
		if err := w.c.WriteReport(ctx, frames[0]); err != nil {
			return errOutcome("first packet", err)
		}
		m, err := w.read(ctx, cid)
		if err != nil {
			r.note("no answer within %v of the first packet", time.Since(start).Round(time.Millisecond))
			return failf("no ERR_MSG_TIMEOUT within %v: %v", time.Since(start).Round(time.Millisecond), err)
		}
		r.note("after %v: %s", time.Since(start).Round(10*time.Millisecond), errorCode(m))
		if m.Cmd != ctaphid.CmdError || len(m.Payload) == 0 || ctaphid.ErrorCode(m.Payload[0]) != ctaphid.CodeMsgTimeout {
			return failf("want ERR_MSG_TIMEOUT, got %s", errorCode(m))
		}
		return pass()
	})
}

// waitProbe is one exchange that makes the key wait for a touch that does
// not come, watches its KEEPALIVEs, then cancels it.
type waitProbe struct {
	skip      string // why the exchange could not test anything
	failure   string // the exchange itself failed
	request   string
	upNeeded  int
	maxGap    time.Duration
	statuses  []byte
	cancelled string // the answer after CANCEL
	cancelOK  bool
	latency   time.Duration // CANCEL to answer
}

// watchWindow is how long the probe watches KEEPALIVE before cancelling,
// and maxKeepaliveGap the longest gap it accepts: the specification says
// SHOULD every 100 ms; the bound leaves room for the host's scheduling.
const (
	watchWindow     = 1200 * time.Millisecond
	maxKeepaliveGap = 500 * time.Millisecond
)

// probeWait runs the wait probe once per battery run.
func (r *runner) probeWait() *waitProbe {
	if r.wait != nil {
		return r.wait
	}
	p := &waitProbe{}
	r.wait = p
	var req []byte
	var err error
	if r.fido21() {
		p.request = "authenticatorSelection"
		req, err = ctap2.EncodeCommand(ctap2.CmdSelection, nil)
	} else {
		p.request = "authenticatorMakeCredential"
		req, err = ctap2.EncodeCommand(ctap2.CmdMakeCredential, r.makeCredRequest(ctap2.AlgES256, false, nil, nil))
	}
	if err != nil {
		p.failure = err.Error()
		return p
	}
	if r.cur != nil {
		r.emit(Event{Kind: EventNoTouch, Check: r.cur.Check, Message: "the key will blink: do NOT touch it for the next seconds"})
	}
	r.raw(func(w wire) outcome {
		cid, err := r.channel(w)
		if err != nil {
			p.failure = err.Error()
			return outcome{}
		}
		ctx, cancel := context.WithTimeout(r.ctx, watchWindow+r.opts.Timeout)
		defer cancel()
		if err := w.write(ctx, cid, ctaphid.CmdCBOR, req); err != nil {
			p.failure = "sending " + p.request + ": " + err.Error()
			return outcome{}
		}
		start := time.Now()
		last := start
		watch, stopWatch := context.WithTimeout(ctx, watchWindow)
		defer stopWatch()
		for {
			m, err := w.read(watch, cid)
			if errors.Is(err, errNoAnswer) && watch.Err() != nil && ctx.Err() == nil {
				break // the window is over: cancel
			}
			if err != nil {
				p.failure = "waiting for " + p.request + ": " + err.Error()
				return outcome{}
			}
			now := time.Now()
			switch m.Cmd {
			case ctaphid.CmdKeepalive:
				if len(m.Payload) > 0 {
					p.statuses = append(p.statuses, m.Payload[0])
					if m.Payload[0] == ctaphid.StatusUPNeeded {
						p.upNeeded++
					}
				}
				p.maxGap = max(p.maxGap, now.Sub(last))
				last = now
				continue
			case ctaphid.CmdCBOR:
				status := "empty"
				if len(m.Payload) > 0 {
					status = ctap2.StatusError(m.Payload[0]).String()
					if m.Payload[0] == 0 {
						status = "CTAP2_OK"
					}
				}
				p.skip = fmt.Sprintf("%s was answered (%s) after %v without waiting for a touch (the key approves presence by itself, or was touched)", p.request, status, now.Sub(start).Round(time.Millisecond))
				return outcome{}
			default:
				p.failure = fmt.Sprintf("%s answered %s", p.request, errorCode(m))
				return outcome{}
			}
		}
		p.maxGap = max(p.maxGap, time.Since(last))
		cancelled := time.Now()
		if err := w.write(ctx, cid, ctaphid.CmdCancel, nil); err != nil {
			p.failure = "sending CANCEL: " + err.Error()
			return outcome{}
		}
		for {
			m, err := w.read(ctx, cid)
			if err != nil {
				p.cancelled = "no answer after CANCEL: " + err.Error()
				return outcome{}
			}
			if m.Cmd == ctaphid.CmdKeepalive {
				continue
			}
			p.latency = time.Since(cancelled)
			switch {
			case m.Cmd == ctaphid.CmdCBOR && len(m.Payload) > 0:
				p.cancelled = ctap2.StatusError(m.Payload[0]).String()
				p.cancelOK = m.Payload[0] == ctaphid.CTAP2ErrKeepaliveCancel
			default:
				p.cancelled = errorCode(m)
			}
			return outcome{}
		}
	})
	return p
}

// usable says whether the probe tested anything, and if not the outcome
// of the checks built on it.
func (p *waitProbe) usable() (outcome, bool) {
	switch {
	case p.failure != "":
		return failf("%s", p.failure), false
	case p.skip != "":
		return skipf("%s", p.skip), false
	}
	return outcome{}, true
}

func checkKeepalive(r *runner) outcome {
	p := r.probeWait()
	if o, ok := p.usable(); !ok {
		return o
	}
	r.note("%s waited for a touch; %d KEEPALIVE in %v (statuses %v), %d with STATUS_UPNEEDED", p.request, len(p.statuses), watchWindow, p.statuses, p.upNeeded)
	r.note("longest time without KEEPALIVE: %v", p.maxGap.Round(time.Millisecond))
	switch {
	case p.upNeeded == 0:
		return failf("no KEEPALIVE with STATUS_UPNEEDED while waiting for a touch")
	case p.maxGap > maxKeepaliveGap:
		return failf("%v without KEEPALIVE while waiting (the specification asks for one at least every 100 ms)", p.maxGap.Round(time.Millisecond))
	}
	return pass()
}

func checkCancel(r *runner) outcome {
	p := r.probeWait()
	if o, ok := p.usable(); !ok {
		return o
	}
	r.note("%s cancelled after %v of waiting: answered %s after %v", p.request, watchWindow, p.cancelled, p.latency.Round(time.Millisecond))
	if !p.cancelOK {
		return failf("after CANCEL: want CTAP2_ERR_KEEPALIVE_CANCEL, got %s", p.cancelled)
	}
	return pass()
}
