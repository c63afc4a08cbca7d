package hidraw

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mfad/mfad/hw/ctaphid"
)

// pair returns a Conn over one end of a SOCK_SEQPACKET socket pair, which
// keeps report boundaries as hidraw does, and the "device" end's fd.
func pair(t *testing.T) (*Conn, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		t.Fatal(err)
	}
	c, err := newConn(fds[0], "socketpair")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); unix.Close(fds[1]) })
	return c, fds[1]
}

func report(b byte) []byte { return bytes.Repeat([]byte{b}, ctaphid.ReportSize) }

func TestConnWriteAddsReportID(t *testing.T) {
	c, dev := pair(t)
	if err := c.WriteReport(context.Background(), report(0xab)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, err := unix.Read(dev, buf)
	if err != nil {
		t.Fatal(err)
	}
	if want := append([]byte{0}, report(0xab)...); !bytes.Equal(buf[:n], want) {
		t.Fatalf("device got % x", buf[:n])
	}
	if err := c.WriteReport(context.Background(), []byte{1, 2}); !errors.Is(err, ctaphid.ErrReportSize) {
		t.Fatalf("short report: %v", err)
	}
}

func TestConnRead(t *testing.T) {
	c, dev := pair(t)
	go func() {
		time.Sleep(20 * time.Millisecond)
		unix.Write(dev, report(0x11))
		unix.Write(dev, []byte{1, 2, 3}) // short: zero-padded
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.ReadReport(ctx)
	if err != nil || !bytes.Equal(r, report(0x11)) {
		t.Fatalf("ReadReport = % x, %v", r, err)
	}
	r, err = c.ReadReport(ctx)
	if err != nil || len(r) != 64 || !bytes.Equal(r[:4], []byte{1, 2, 3, 0}) {
		t.Fatalf("short ReadReport = % x, %v", r, err)
	}
	unix.Write(dev, make([]byte, 65))
	if _, err := c.ReadReport(ctx); !errors.Is(err, ctaphid.ErrReportSize) {
		t.Fatalf("oversized report: %v", err)
	}
}

func TestConnReadDeadlineAndCancel(t *testing.T) {
	c, _ := pair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := c.ReadReport(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("deadline honoured after %v", d)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel2() }()
	if _, err := c.ReadReport(ctx2); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestConnRemoved(t *testing.T) {
	c, dev := pair(t)
	errc := make(chan error, 1)
	go func() {
		_, err := c.ReadReport(context.Background()) // no deadline: only removal ends it
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	unix.Close(dev) // the device goes away
	select {
	case err := <-errc:
		if !errors.Is(err, ErrRemoved) {
			t.Fatalf("err = %v, want ErrRemoved", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read did not end on removal")
	}
	if !c.Removed() {
		t.Fatal("Removed() = false")
	}
	if err := c.WriteReport(context.Background(), report(1)); !errors.Is(err, ErrRemoved) {
		t.Fatalf("write after removal: %v", err)
	}
}

func TestConnClose(t *testing.T) {
	c, _ := pair(t)
	errc := make(chan error, 1)
	go func() {
		_, err := c.ReadReport(context.Background())
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("err = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read did not end on Close")
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := c.ReadReport(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after Close: %v", err)
	}
}

// A CTAPHID exchange through a Conn, against a ctaphid.Server on the
// socket pair's device end.
func TestConnChannel(t *testing.T) {
	c, dev := pair(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := &ctaphid.Server{Handler: nopHandler{}, Capabilities: ctaphid.CapWink}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ctx, rawDevice{dev}) }()
	defer func() { cancel(); <-done }()
	tctx, tcancel := context.WithTimeout(ctx, 5*time.Second)
	defer tcancel()
	ch, err := ctaphid.Open(tctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Ping(tctx, []byte("hello")); err != nil {
		t.Fatal(err)
	}
}

// rawDevice is the device side of the socket pair: it reads 65-byte writes
// (report id 0 + report) and writes bare 64-byte reports, as the kernel
// does for a hidraw node.
type rawDevice struct{ fd int }

func (d rawDevice) ReadReport(ctx context.Context) ([]byte, error) {
	buf := make([]byte, 100)
	for ctx.Err() == nil {
		fds := []unix.PollFd{{Fd: int32(d.fd), Events: unix.POLLIN}}
		if n, _ := unix.Poll(fds, 10); n == 0 {
			continue
		}
		n, err := unix.Read(d.fd, buf)
		if err != nil {
			return nil, err
		}
		if n != 65 || buf[0] != 0 {
			return nil, errors.New("not a report-id-0 report")
		}
		return buf[1:65], nil
	}
	return nil, ctx.Err()
}

func (d rawDevice) WriteReport(ctx context.Context, r []byte) error {
	_, err := unix.Write(d.fd, r)
	return err
}

type nopHandler struct{}

func (nopHandler) CBOR(ctx context.Context, req []byte, ka func(byte)) []byte { return []byte{1} }
func (nopHandler) Msg(ctx context.Context, apdu []byte) []byte                { return []byte{0x6d, 0} }
func (nopHandler) Wink()                                                      {}

func TestOpenMissing(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "hidraw9")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v", err)
	}
}

// A uhid device's node is recognised by its place in sysfs, through the
// node's device number; a USB key's is not, nor a number sysfs does not know.
func TestIsUHID(t *testing.T) {
	for _, tc := range []struct {
		major, minor uint32
		want         bool
	}{
		{244, 5, true},  // devices/virtual/misc/uhid/0003:1209:0001.0006
		{244, 0, false}, // a YubiKey on usb1
		{244, 9, false}, // no such node
	} {
		if got := isUHID("testdata/sys", unix.Mkdev(tc.major, tc.minor)); got != tc.want {
			t.Errorf("isUHID(%d:%d) = %v, want %v", tc.major, tc.minor, got, tc.want)
		}
	}
}

// A paced Conn waits for its turn before writing, and gives up when the
// context ends; an unpaced one (a real key's node) never waits.
func TestConnPaced(t *testing.T) {
	c, dev := pair(t)
	if c.Paced() {
		t.Fatal("a socket pair is paced")
	}
	c.pace = ctaphid.NewPacer(time.Hour, 2)
	ctx, cancel := context.WithCancel(context.Background())
	for i := 0; i < 2; i++ {
		if err := c.WriteReport(ctx, report(byte(i))); err != nil {
			t.Fatalf("report %d of the burst: %v", i, err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- c.WriteReport(ctx, report(2)) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("third report within the interval: %v", err)
	}
	buf := make([]byte, 100)
	for i := 0; i < 2; i++ {
		if n, err := unix.Read(dev, buf); err != nil || buf[1] != byte(i) || n != 65 {
			t.Fatalf("device read %d: % x %v", i, buf[:n], err)
		}
	}
	if err := unix.SetNonblock(dev, true); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Read(dev, buf); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("the report past the burst reached the device: %v", err)
	}
}
