package ctaphid

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"runtime"
	"testing"
	"time"
)

func concat(reports ...[]byte) []byte { return bytes.Join(reports, nil) }

func framesOf(tb testing.TB, cid uint32, cmd Cmd, n int) []byte {
	frames, err := Frames(cid, cmd, payloadOf(n))
	if err != nil {
		tb.Fatal(err)
	}
	return concat(frames...)
}

// usedBytes is how many bytes of frame i of an n-byte message carry header or payload.
func usedBytes(i, n int) int {
	if i == 0 {
		return 7 + min(n, InitDataSize)
	}
	return 5 + min(n-InitDataSize-(i-1)*ContDataSize, ContDataSize)
}

// FuzzReassemble feeds arbitrary bytes, 64 at a time, to an Assembler. It must never panic,
// every error must be a *FrameError, and every message must re-encode to the reports it was
// assembled from (apart from the padding after the payload).
func FuzzReassemble(f *testing.F) {
	for _, n := range []int{0, 1, 57, 58, 116, 117, 1000} {
		f.Add(framesOf(f, 0x01020304, CmdCBOR, n))
	}
	f.Add(concat(recorded(f)["WIREDATA_CTAP_CBOR_INFO"]...))
	f.Add(concat(recorded(f)["WIREDATA_CTAP_CBOR_ASSERT"]...))
	f.Add(concat(report(1, 0x81, 0, 100), report(2, 0x00), report(1, 0x00)))
	f.Add(concat(report(1, 0x81, 0, 100), report(1, 0x86, 0, 8)))
	f.Add(concat(report(1, 0x00), report(1, 0x90, 0x1d, 0xb9)))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		var a Assembler
		var cur [][]byte // the reports of the message being assembled
		for len(data) > 0 {
			r := make([]byte, ReportSize)
			data = data[copy(r, data):]
			m, err := a.Add(r)
			if err != nil {
				var fe *FrameError
				if !errors.As(err, &fe) {
					t.Fatalf("error %v is not a *FrameError", err)
				}
				if _, ok := a.Pending(); !ok {
					cur = nil
				}
				continue
			}
			if r[4]&0x80 != 0 {
				cur = [][]byte{r}
			} else {
				cur = append(cur, r)
			}
			if m == nil {
				continue
			}
			frames, err := m.Frames()
			if err != nil {
				t.Fatalf("re-encoding %d bytes: %v", len(m.Payload), err)
			}
			if len(frames) != len(cur) {
				t.Fatalf("%d frames, assembled from %d", len(frames), len(cur))
			}
			for i, fr := range frames {
				u := usedBytes(i, len(m.Payload))
				if !bytes.Equal(fr[:u], cur[i][:u]) || !bytes.Equal(fr[u:], make([]byte, ReportSize-u)) {
					t.Fatalf("frame %d:\n% x\n% x", i, fr, cur[i])
				}
			}
			cur = nil
		}
	})
}

// fuzzHandler answers at once, except requests starting 0x02, which wait for cancellation.
type fuzzHandler struct{}

func (fuzzHandler) CBOR(ctx context.Context, req []byte, keepalive func(byte)) []byte {
	if req[0] == 0x02 {
		keepalive(StatusUPNeeded)
		<-ctx.Done()
		return []byte{CTAP2ErrKeepaliveCancel}
	}
	return append([]byte{0x00}, req...)
}
func (fuzzHandler) Msg(ctx context.Context, apdu []byte) []byte { return []byte{0x90, 0x00} }
func (fuzzHandler) Wink()                                       {}

// FuzzServer writes arbitrary reports into a Server. It must never panic, answer every
// INIT on the broadcast channel it is sent afterwards, and return only ctx's error.
func FuzzServer(f *testing.F) {
	const cid = 0x11223344
	f.Add(concat(report(BroadcastCID, 0x86, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8)))
	f.Add(concat(report(cid, 0x81, 0, 100), report(cid, 0x01)))
	f.Add(concat(report(cid, 0x00), report(0, 0x81), report(BroadcastCID, 0x90, 0, 1, 4)))
	f.Add(concat(report(BroadcastCID, 0x86, 0, 8), report(BroadcastCID, 0x84, 0, 1, 10)))
	f.Add(framesOf(f, BroadcastCID, CmdPing, 300))
	f.Add(concat(report(cid, 0x90, 0, 1, 2), report(cid, 0x91), report(cid, 0x86, 0, 8)))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x86, 0, 8})
	f.Fuzz(func(t *testing.T, data []byte) {
		host, dev := Pipe()
		defer host.Close()
		s := &Server{Handler: fuzzHandler{}, Capabilities: CapWink | CapCBOR, MessageTimeout: 5 * time.Millisecond, MaxChannels: 4}
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		errc := make(chan error, 1)
		go func() { errc <- s.Serve(ctx, dev) }()

		// Drain answers, watching for the answer to the final INIT below.
		synced := make(chan struct{})
		nonce := []byte("fuzzsync")
		go func() {
			for {
				r, err := host.ReadReport(ctx)
				if err != nil {
					return
				}
				if binary.BigEndian.Uint32(r) == BroadcastCID &&
					(r[4] == 0x80|byte(CmdError) || (r[4] == 0x80|byte(CmdInit) && bytes.Equal(r[7:15], nonce))) {
					close(synced)
					return
				}
			}
		}()
		for len(data) > 0 {
			r := make([]byte, ReportSize)
			data = data[copy(r, data):]
			if err := host.WriteReport(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		init, _ := Frames(BroadcastCID, CmdInit, nonce)
		if err := host.WriteReport(ctx, init[0]); err != nil {
			t.Fatal(err)
		}
		select {
		case <-synced:
		case <-ctx.Done():
			t.Fatal("no answer to INIT on the broadcast channel")
		}
		cancel()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Serve: %v", err)
			}
		case <-time.After(waitLimit):
			buf := make([]byte, 1<<20)
			t.Fatalf("Serve did not return\n%s", buf[:runtime.Stack(buf, true)])
		}
	})
}
