package uhid

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mfad/mfad/hw/ctaphid"
)

func TestEncodeCreate2(t *testing.T) {
	ev, err := encodeCreate2(Config{Name: "mfad software key", Uniq: "0001", VendorID: 0x1209, ProductID: 1, Version: 0x100})
	if err != nil {
		t.Fatal(err)
	}
	ne := binary.NativeEndian
	if len(ev) != 4376 || ne.Uint32(ev) != evCreate2 {
		t.Fatalf("len %d type %d", len(ev), ne.Uint32(ev))
	}
	if got := string(bytes.TrimRight(ev[4:132], "\x00")); got != "mfad software key" {
		t.Errorf("name %q", got)
	}
	if got := string(bytes.TrimRight(ev[196:260], "\x00")); got != "0001" {
		t.Errorf("uniq %q", got)
	}
	if ne.Uint16(ev[260:]) != 34 || ne.Uint16(ev[262:]) != BusUSB || ne.Uint32(ev[264:]) != 0x1209 || ne.Uint32(ev[268:]) != 1 || ne.Uint32(ev[272:]) != 0x100 {
		t.Errorf("rd_size %d bus %d vendor %x product %x version %x", ne.Uint16(ev[260:]), ne.Uint16(ev[262:]), ne.Uint32(ev[264:]), ne.Uint32(ev[268:]), ne.Uint32(ev[272:]))
	}
	if !bytes.Equal(ev[280:280+34], fidoDescriptor) {
		t.Error("report descriptor not at offset 280")
	}
	for _, bad := range []Config{
		{Name: string(make([]byte, 128))},
		{ReportDescriptor: []byte{}},
		{ReportDescriptor: make([]byte, dataMax+1)},
	} {
		if _, err := encodeCreate2(bad); err == nil {
			t.Errorf("accepted %d-byte name, %d-byte descriptor", len(bad.Name), len(bad.ReportDescriptor))
		}
	}
}

func outputEvent(data []byte) []byte {
	ev := make([]byte, eventSize)
	binary.NativeEndian.PutUint32(ev, evOutput)
	copy(ev[4:], data)
	binary.NativeEndian.PutUint16(ev[4+dataMax:], uint16(len(data)))
	return ev
}

func TestOutputReport(t *testing.T) {
	rep := bytes.Repeat([]byte{7}, 64)
	tests := []struct {
		name string
		ev   []byte
		want []byte
	}{
		{"with report id", outputEvent(append([]byte{0}, rep...)), rep},
		{"without report id", outputEvent(rep), rep},
		{"short, padded", outputEvent([]byte{0, 1, 2}), append([]byte{0, 1, 2}, make([]byte, 61)...)},
		{"too long", outputEvent(make([]byte, 70)), nil},
		{"runt event", []byte{6, 0, 0, 0}, nil},
	}
	ev := outputEvent(nil)
	binary.NativeEndian.PutUint16(ev[4+dataMax:], 0xffff)
	tests = append(tests, struct {
		name string
		ev   []byte
		want []byte
	}{"size beyond data", ev, nil})
	for _, tc := range tests {
		got, ok := outputReport(tc.ev)
		if ok != (tc.want != nil) || !bytes.Equal(got, tc.want) {
			t.Errorf("%s: outputReport = % x, %v", tc.name, got, ok)
		}
	}
}

func FuzzOutputReport(f *testing.F) {
	f.Add(outputEvent(make([]byte, 65)))
	f.Fuzz(func(t *testing.T, ev []byte) {
		if r, ok := outputReport(ev); ok && len(r) != 64 {
			t.Fatalf("%d-byte report", len(r))
		}
	})
}

// The Device against a socket pair standing in for /dev/uhid.
func TestDevice(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.SetNonblock(fds[0], true)
	d, err := newDevice(fds[0])
	if err != nil {
		t.Fatal(err)
	}
	kernel := fds[1]
	defer unix.Close(kernel)

	ev := func(typ uint32, rest ...byte) []byte {
		b := make([]byte, eventSize)
		binary.NativeEndian.PutUint32(b, typ)
		copy(b[4:], rest)
		return b
	}
	unix.Write(kernel, ev(evStart))
	unix.Write(kernel, ev(evOpen))
	unix.Write(kernel, ev(evGetReport, 42, 0, 0, 0, 0, 1))
	rep := bytes.Repeat([]byte{9}, 64)
	unix.Write(kernel, outputEvent(append([]byte{0}, rep...)))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := d.ReadReport(ctx)
	if err != nil || !bytes.Equal(got, rep) {
		t.Fatalf("ReadReport = % x, %v", got, err)
	}
	if !d.Opened() || !d.started.Load() {
		t.Fatal("OPEN/START not seen")
	}
	buf := make([]byte, eventSize+10)
	n, _ := unix.Read(kernel, buf)
	if n != eventSize || binary.NativeEndian.Uint32(buf) != evGetReportReply || binary.NativeEndian.Uint32(buf[4:]) != 42 || binary.NativeEndian.Uint16(buf[8:]) != uint16(unix.EIO) {
		t.Fatalf("GET_REPORT reply % x", buf[:12])
	}

	if err := d.WriteReport(ctx, rep); err != nil {
		t.Fatal(err)
	}
	n, _ = unix.Read(kernel, buf)
	if n != eventSize || binary.NativeEndian.Uint32(buf) != evInput2 || binary.NativeEndian.Uint16(buf[4:]) != 64 || !bytes.Equal(buf[6:70], rep) {
		t.Fatalf("INPUT2 % x", buf[:70])
	}
	if err := d.WriteReport(ctx, rep[:3]); !errors.Is(err, ctaphid.ErrReportSize) {
		t.Fatalf("short report: %v", err)
	}

	// A read waits until ctx ends, and Close ends a read.
	short, cancel2 := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel2()
	if _, err := d.ReadReport(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	errc := make(chan error, 1)
	go func() { _, err := d.ReadReport(context.Background()); errc <- err }()
	time.Sleep(20 * time.Millisecond)
	d.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("read after Close: %v", err)
	}
	unix.Read(kernel, buf)
	if binary.NativeEndian.Uint32(buf) != evDestroy {
		t.Fatalf("Close sent event %d, want DESTROY", binary.NativeEndian.Uint32(buf))
	}
}
