package ctaphid

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Framing errors. An [Assembler] returns them inside a [*FrameError] that also carries the
// offending channel and the CTAPHID error code a device answers with.
var (
	// ErrPayloadTooLarge: a message longer than MaxPayload (7609 bytes) cannot be framed.
	ErrPayloadTooLarge = errors.New("ctaphid: payload longer than 7609 bytes")
	// ErrInvalidCmd: a command value with the initialization-packet bit 0x80 set.
	ErrInvalidCmd = errors.New("ctaphid: command has bit 0x80 set")
	// ErrReportSize: a report that is not exactly 64 bytes.
	ErrReportSize = errors.New("ctaphid: report is not 64 bytes")
	// ErrLength: an initialization packet announcing more than MaxPayload bytes.
	ErrLength = errors.New("ctaphid: announced length exceeds 7609 bytes")
	// ErrStrayContinuation: a continuation packet while no message is being assembled.
	ErrStrayContinuation = errors.New("ctaphid: continuation packet without initialization packet")
	// ErrSequence: a continuation packet whose sequence number is not the next one.
	ErrSequence = errors.New("ctaphid: continuation packet out of sequence")
	// ErrOtherChannel: a packet on another channel while a message is being assembled.
	ErrOtherChannel = errors.New("ctaphid: packet on another channel during a message")
	// ErrInterrupted: a new initialization packet on the channel of an unfinished message.
	ErrInterrupted = errors.New("ctaphid: initialization packet interrupts an unfinished message")
)

// FrameError is a malformed or unexpected packet. Err is one of the sentinel errors above;
// CID is the channel the packet came on (the one to answer), Code the CTAPHID_ERROR code
// the specification assigns to the condition.
type FrameError struct {
	CID  uint32
	Code ErrorCode
	Err  error
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("%v (channel %08x, %v)", e.Err, e.CID, e.Code)
}

func (e *FrameError) Unwrap() error { return e.Err }

// Message is one CTAPHID message: a channel, a command (without bit 0x80) and its payload.
type Message struct {
	CID     uint32
	Cmd     Cmd
	Payload []byte
}

// Frames splits the message into reports; see [Frames].
func (m Message) Frames() ([][]byte, error) { return Frames(m.CID, m.Cmd, m.Payload) }

// NumFrames is the number of 64-byte reports a payload of n bytes takes.
func NumFrames(n int) int {
	if n <= InitDataSize {
		return 1
	}
	return 1 + (n-InitDataSize+ContDataSize-1)/ContDataSize
}

// Frames splits a message into an initialization packet and as many continuation packets as
// the payload needs (section 11.2.4), each a zero-padded 64-byte report. It refuses payloads
// longer than MaxPayload and command values with bit 0x80 set.
func Frames(cid uint32, cmd Cmd, payload []byte) ([][]byte, error) {
	if cmd&0x80 != 0 {
		return nil, fmt.Errorf("%w: 0x%02x", ErrInvalidCmd, byte(cmd))
	}
	if len(payload) > MaxPayload {
		return nil, fmt.Errorf("%w: %d bytes", ErrPayloadTooLarge, len(payload))
	}
	n := NumFrames(len(payload))
	// One backing array for every report keeps framing to two allocations.
	buf := make([]byte, n*ReportSize)
	out := make([][]byte, n)
	for i := range out {
		out[i] = buf[i*ReportSize : (i+1)*ReportSize : (i+1)*ReportSize]
	}
	r := out[0]
	binary.BigEndian.PutUint32(r, cid)
	r[4] = 0x80 | byte(cmd)
	binary.BigEndian.PutUint16(r[5:], uint16(len(payload)))
	rest := payload[copy(r[7:], payload):]
	for i := 1; i < n; i++ {
		r := out[i]
		binary.BigEndian.PutUint32(r, cid)
		r[4] = byte(i - 1)
		rest = rest[copy(r[5:], rest):]
	}
	return out, nil
}

// Assembler rebuilds messages from reports, one message at a time, checking every packet
// against section 11.2.4. The zero value is ready to use. It is not safe for concurrent use.
//
// Rules, with the error each violation returns (the assembler state after it in brackets):
//   - a report that is not 64 bytes: ErrReportSize, ERR_INVALID_LEN [unchanged];
//   - an announced length above MaxPayload: ErrLength, ERR_INVALID_LEN [unchanged];
//   - a continuation packet with no message pending: ErrStrayContinuation, ERR_INVALID_SEQ;
//   - a continuation packet with the wrong sequence number: ErrSequence, ERR_INVALID_SEQ
//     [pending message dropped];
//   - any packet on another channel while a message is pending: ErrOtherChannel,
//     ERR_CHANNEL_BUSY [pending message kept];
//   - an initialization packet on the pending message's channel: ErrInterrupted,
//     ERR_INVALID_SEQ [pending message dropped], except CTAPHID_INIT and CTAPHID_CANCEL,
//     which abort the pending message and are taken as the new message (resynchronisation).
type Assembler struct {
	active bool
	cid    uint32
	cmd    Cmd
	want   int
	seq    byte
	buf    []byte
}

// Pending reports the channel of the message being assembled, if any.
func (a *Assembler) Pending() (cid uint32, ok bool) { return a.cid, a.active }

// Reset drops the message being assembled.
func (a *Assembler) Reset() {
	a.active = false
	a.cid, a.cmd, a.want, a.seq, a.buf = 0, 0, 0, 0, nil
}

// Add takes one report. It returns the message once its last packet has arrived, nil while
// more packets are needed, or a [*FrameError].
func (a *Assembler) Add(report []byte) (*Message, error) {
	if len(report) != ReportSize {
		var cid uint32
		if len(report) >= 4 {
			cid = binary.BigEndian.Uint32(report)
		}
		return nil, &FrameError{CID: cid, Code: CodeInvalidLen, Err: ErrReportSize}
	}
	cid := binary.BigEndian.Uint32(report)
	if report[4]&0x80 != 0 {
		cmd := Cmd(report[4] &^ 0x80)
		if a.active {
			if cid != a.cid {
				return nil, &FrameError{CID: cid, Code: CodeChannelBusy, Err: ErrOtherChannel}
			}
			a.Reset()
			if cmd != CmdInit && cmd != CmdCancel {
				return nil, &FrameError{CID: cid, Code: CodeInvalidSeq, Err: ErrInterrupted}
			}
		}
		n := int(binary.BigEndian.Uint16(report[5:]))
		if n > MaxPayload {
			return nil, &FrameError{CID: cid, Code: CodeInvalidLen, Err: ErrLength}
		}
		if n <= InitDataSize {
			return &Message{CID: cid, Cmd: cmd, Payload: append([]byte{}, report[7:7+n]...)}, nil
		}
		a.active, a.cid, a.cmd, a.want, a.seq = true, cid, cmd, n, 0
		a.buf = append(make([]byte, 0, n), report[7:]...)
		return nil, nil
	}
	if !a.active {
		return nil, &FrameError{CID: cid, Code: CodeInvalidSeq, Err: ErrStrayContinuation}
	}
	if cid != a.cid {
		return nil, &FrameError{CID: cid, Code: CodeChannelBusy, Err: ErrOtherChannel}
	}
	if report[4] != a.seq {
		a.Reset()
		return nil, &FrameError{CID: cid, Code: CodeInvalidSeq, Err: ErrSequence}
	}
	a.seq++
	a.buf = append(a.buf, report[5:5+min(ContDataSize, a.want-len(a.buf))]...)
	if len(a.buf) < a.want {
		return nil, nil
	}
	m := &Message{CID: a.cid, Cmd: a.cmd, Payload: a.buf}
	a.buf = nil
	a.Reset()
	return m, nil
}
