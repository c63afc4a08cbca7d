package ctaphid

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// payloadOf returns n bytes that differ at every position, so a shifted copy shows.
func payloadOf(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + i/251)
	}
	return p
}

// TestFramesBoundaries round-trips payloads at every packet boundary of section 11.2.4.
func TestFramesBoundaries(t *testing.T) {
	sizes := []struct {
		n, frames int
	}{
		{0, 1},
		{1, 1},
		{InitDataSize, 1},      // 57: a full initialization packet
		{InitDataSize + 1, 2},  // 58: one byte spills into a continuation
		{InitDataSize + 59, 2}, // 57+1*59
		{InitDataSize + 59 + 1, 3},
		{InitDataSize + 10*59, 11}, // 57+N*59
		{InitDataSize + 10*59 + 1, 12},
		{MaxPayload - 1, 129},
		{MaxPayload, 129}, // 7609: 128 continuations, sequence 0..127
	}
	for _, tc := range sizes {
		t.Run(fmt.Sprint(tc.n), func(t *testing.T) {
			p := payloadOf(tc.n)
			frames, err := Frames(0x01020304, CmdCBOR, p)
			if err != nil {
				t.Fatal(err)
			}
			if len(frames) != tc.frames || NumFrames(tc.n) != tc.frames {
				t.Fatalf("%d frames, NumFrames %d, want %d", len(frames), NumFrames(tc.n), tc.frames)
			}
			if frames[0][4] != 0x90 || frames[0][5] != byte(tc.n>>8) || frames[0][6] != byte(tc.n) {
				t.Fatalf("init header % x", frames[0][:7])
			}
			for i, f := range frames {
				if len(f) != ReportSize {
					t.Fatalf("frame %d: %d bytes", i, len(f))
				}
				if i > 0 && f[4] != byte(i-1) {
					t.Fatalf("frame %d: seq %d", i, f[4])
				}
			}
			var a Assembler
			for i, f := range frames {
				m, err := a.Add(f)
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if (m != nil) != (i == len(frames)-1) {
					t.Fatalf("frame %d: message %v", i, m != nil)
				}
				if m != nil {
					if m.CID != 0x01020304 || m.Cmd != CmdCBOR || !bytes.Equal(m.Payload, p) {
						t.Fatalf("got cid %08x cmd %v %d bytes", m.CID, m.Cmd, len(m.Payload))
					}
				}
			}
			if _, ok := a.Pending(); ok {
				t.Fatal("assembler still pending")
			}
		})
	}
}

func TestFramesRefuses(t *testing.T) {
	if _, err := Frames(1, CmdCBOR, make([]byte, MaxPayload+1)); !errors.Is(err, ErrPayloadTooLarge) {
		t.Fatalf("7610 bytes: %v", err)
	}
	if _, err := Frames(1, Cmd(0x90), nil); !errors.Is(err, ErrInvalidCmd) {
		t.Fatalf("cmd 0x90: %v", err)
	}
}

// report builds one 64-byte report: CID, byte 4, then the rest.
func report(cid uint32, b4 byte, rest ...byte) []byte {
	r := make([]byte, ReportSize)
	r[0], r[1], r[2], r[3], r[4] = byte(cid>>24), byte(cid>>16), byte(cid>>8), byte(cid), b4
	copy(r[5:], rest)
	return r
}

// TestAssemblerErrors is a table of malformed packet sequences: each must give the sentinel,
// the channel to answer and the CTAPHID code, and leave the assembler in the stated state.
func TestAssemblerErrors(t *testing.T) {
	const a, b = 0x0a0a0a0a, 0x0b0b0b0b
	long := func(cid uint32, cmd Cmd) []byte { return report(cid, 0x80|byte(cmd), 0, 100) } // 100 bytes: 2 packets
	cases := []struct {
		name    string
		reports [][]byte
		err     error
		cid     uint32
		code    ErrorCode
		pending bool
	}{
		{"short report", [][]byte{make([]byte, 10)}, ErrReportSize, 0, CodeInvalidLen, false},
		{"long report", [][]byte{make([]byte, 65)}, ErrReportSize, 0, CodeInvalidLen, false},
		{"length 7610", [][]byte{report(a, 0x90, 0x1d, 0xba)}, ErrLength, a, CodeInvalidLen, false},
		{"length 0xffff", [][]byte{report(a, 0x90, 0xff, 0xff)}, ErrLength, a, CodeInvalidLen, false},
		{"continuation without init", [][]byte{report(a, 0x00)}, ErrStrayContinuation, a, CodeInvalidSeq, false},
		{"first seq 1", [][]byte{long(a, CmdPing), report(a, 0x01)}, ErrSequence, a, CodeInvalidSeq, false},
		{"seq 0x7f", [][]byte{long(a, CmdPing), report(a, 0x7f)}, ErrSequence, a, CodeInvalidSeq, false},
		{"continuation other channel", [][]byte{long(a, CmdPing), report(b, 0x00)}, ErrOtherChannel, b, CodeChannelBusy, true},
		{"init other channel", [][]byte{long(a, CmdPing), report(b, 0x81)}, ErrOtherChannel, b, CodeChannelBusy, true},
		{"new init same channel", [][]byte{long(a, CmdPing), report(a, 0x81)}, ErrInterrupted, a, CodeInvalidSeq, false},
		{"seq repeated", [][]byte{report(a, 0x81, 0, 200), report(a, 0), report(a, 0)}, ErrSequence, a, CodeInvalidSeq, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var asm Assembler
			var err error
			for i, r := range tc.reports {
				var m *Message
				m, err = asm.Add(r)
				if m != nil {
					t.Fatalf("report %d gave a message", i)
				}
				if i < len(tc.reports)-1 && err != nil {
					t.Fatalf("report %d: %v", i, err)
				}
			}
			var fe *FrameError
			if !errors.Is(err, tc.err) || !errors.As(err, &fe) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if fe.CID != tc.cid || fe.Code != tc.code {
				t.Fatalf("cid %08x code %v, want %08x %v", fe.CID, fe.Code, tc.cid, tc.code)
			}
			if _, ok := asm.Pending(); ok != tc.pending {
				t.Fatalf("pending %v, want %v", ok, tc.pending)
			}
		})
	}
}

// TestAssemblerResync: INIT and CANCEL on the pending channel abort the message and come
// through; the message on hold survives a foreign packet.
func TestAssemblerResync(t *testing.T) {
	for _, cmd := range []Cmd{CmdInit, CmdCancel} {
		var asm Assembler
		if m, err := asm.Add(report(7, 0x90, 0, 100)); m != nil || err != nil {
			t.Fatal(m, err)
		}
		m, err := asm.Add(report(7, 0x80|byte(cmd), 0, 8, 1, 2, 3, 4, 5, 6, 7, 8))
		if err != nil || m == nil || m.Cmd != cmd || len(m.Payload) != 8 {
			t.Fatalf("%v: %v %v", cmd, m, err)
		}
		if _, ok := asm.Pending(); ok {
			t.Fatalf("%v: still pending", cmd)
		}
	}
	frames, _ := Frames(7, CmdPing, payloadOf(100))
	var asm Assembler
	asm.Add(frames[0])
	if _, err := asm.Add(report(8, 0x00)); !errors.Is(err, ErrOtherChannel) {
		t.Fatal(err)
	}
	m, err := asm.Add(frames[1])
	if err != nil || m == nil || !bytes.Equal(m.Payload, payloadOf(100)) {
		t.Fatalf("%v %v", m, err)
	}
}

func TestStrings(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{CmdCBOR.String(), "CBOR"},
		{Cmd(0x55).String(), "Cmd(0x55)"},
		{CodeChannelBusy.String(), "ERR_CHANNEL_BUSY"},
		{ErrorCode(0x42).String(), "ErrorCode(0x42)"},
		{(CapWink | CapCBOR).String(), "WINK|CBOR"},
		{Capabilities(0).String(), "0"},
		{(&DeviceError{Code: CodeInvalidPar}).Error(), "ctaphid: device error ERR_INVALID_PAR"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func BenchmarkFrames(b *testing.B) {
	for _, n := range []int{1024, MaxPayload} {
		p := payloadOf(n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Frames(1, CmdCBOR, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkReassemble(b *testing.B) {
	for _, n := range []int{1024, MaxPayload} {
		frames, _ := Frames(1, CmdCBOR, payloadOf(n))
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			var a Assembler
			for b.Loop() {
				for _, f := range frames {
					if _, err := a.Add(f); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
