package gadget

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mfad/mfad/hw/ctaphid"
)

func pair(t *testing.T) (*Conn, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.SetNonblock(fds[0], true)
	c, err := newConn(fds[0], "hidg-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); unix.Close(fds[1]) })
	return c, fds[1]
}

func TestConnReadWrite(t *testing.T) {
	c, host := pair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rep := bytes.Repeat([]byte{5}, 64)
	unix.Write(host, rep)
	if r, err := c.ReadReport(ctx); err != nil || !bytes.Equal(r, rep) {
		t.Fatalf("ReadReport = % x, %v", r, err)
	}
	if err := c.WriteReport(ctx, rep); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	if n, _ := unix.Read(host, buf); n != 64 || !bytes.Equal(buf[:n], rep) {
		t.Fatalf("host got % x", buf[:n])
	}
	if err := c.WriteReport(ctx, rep[:10]); !errors.Is(err, ctaphid.ErrReportSize) {
		t.Fatalf("short write: %v", err)
	}
	unix.Write(host, make([]byte, 65))
	if _, err := c.ReadReport(ctx); !errors.Is(err, ctaphid.ErrReportSize) {
		t.Fatalf("oversized: %v", err)
	}
}

// A host that never collects input: writes are dropped after WriteTimeout
// instead of blocking the server.
func TestConnWriteDropped(t *testing.T) {
	old := WriteTimeout
	WriteTimeout = 30 * time.Millisecond
	defer func() { WriteTimeout = old }()
	c, _ := pair(t)
	unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 1024)
	ctx := context.Background()
	rep := make([]byte, 64)
	start := time.Now()
	for i := 0; i < 2000 && c.Dropped() == 0; i++ {
		if err := c.WriteReport(ctx, rep); err != nil {
			t.Fatal(err)
		}
	}
	if c.Dropped() == 0 {
		t.Fatal("no report dropped")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestConnUnplugAndClose(t *testing.T) {
	c, host := pair(t)
	errc := make(chan error, 1)
	go func() { _, err := c.ReadReport(context.Background()); errc <- err }()
	time.Sleep(20 * time.Millisecond)
	unix.Close(host)
	if err := <-errc; !errors.Is(err, ErrUnplugged) {
		t.Fatalf("err = %v", err)
	}
	c2, _ := pair(t)
	go func() { _, err := c2.ReadReport(context.Background()); errc <- err }()
	time.Sleep(20 * time.Millisecond)
	c2.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v", err)
	}
}

// Input reports are paced: past the burst, a report waits for its turn and
// gives up when the context ends, without reaching the host.
func TestConnPaced(t *testing.T) {
	c, host := pair(t)
	c.pace = ctaphid.NewPacer(time.Hour, 2)
	rep := bytes.Repeat([]byte{7}, 64)
	for i := 0; i < 2; i++ {
		if err := c.WriteReport(context.Background(), rep); err != nil {
			t.Fatalf("report %d of the burst: %v", i, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.WriteReport(ctx, rep); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third report: %v, want it held until the deadline", err)
	}
	buf := make([]byte, 100)
	for i := 0; i < 2; i++ {
		if n, _ := unix.Read(host, buf); n != 64 {
			t.Fatalf("host read %d: %d bytes", i, n)
		}
	}
	unix.SetNonblock(host, true)
	if n, err := unix.Read(host, buf); err == nil {
		t.Fatalf("host got a third report (%d bytes)", n)
	}
}
