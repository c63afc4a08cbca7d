package gadget

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mfad/mfad/hw/ctaphid"
)

var (
	// ErrClosed is returned by a Conn after Close.
	ErrClosed = errors.New("gadget: connection closed")
	// ErrUnplugged is returned when the function is gone (the gadget was
	// unbound or removed).
	ErrUnplugged = errors.New("gadget: function unbound")
)

// WriteTimeout is how long WriteReport waits for the host to collect the
// previous report before it drops the new one. usbhid polls the IN endpoint
// only while a program holds the hidraw node open, so an answer to a host
// that went away would otherwise block for ever.
var WriteTimeout = time.Second

// Conn is the gadget side of a HID function, /dev/hidgN, as a ctaphid.Conn:
// reads return the host's 64-byte output reports, writes send input reports.
type Conn struct {
	path string
	fd   int
	wake int

	mu         sync.RWMutex
	wmu        sync.Mutex
	closed     atomic.Bool
	wakeMu     sync.Mutex
	wakeClosed bool
	dropped    atomic.Int64
	pace       *ctaphid.Pacer // spaces input reports (see WriteReport)
}

var _ ctaphid.Conn = (*Conn)(nil)

// OpenConn opens a /dev/hidgN node.
func OpenConn(path string) (*Conn, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("gadget: open %s: %w", path, err)
	}
	c, err := newConn(fd, path)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return c, nil
}

func newConn(fd int, path string) (*Conn, error) {
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("gadget: eventfd: %w", err)
	}
	return &Conn{path: path, fd: fd, wake: wake, pace: ctaphid.NewPacer(ctaphid.FrameInterval, ctaphid.PaceBurst)}, nil
}

// Dropped is how many reports were dropped because the host did not collect
// them within WriteTimeout.
func (c *Conn) Dropped() int64 { return c.dropped.Load() }

func (c *Conn) signal() {
	c.wakeMu.Lock()
	defer c.wakeMu.Unlock()
	if !c.wakeClosed {
		one := [8]byte{1}
		_, _ = unix.Write(c.wake, one[:])
	}
}

func gone(err error) bool {
	return errors.Is(err, unix.ESHUTDOWN) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EIO) ||
		errors.Is(err, unix.EPIPE) || errors.Is(err, unix.ECONNRESET)
}

// wait polls the node for events (and the wake eventfd) for at most
// timeout (-1: no limit). It reports whether the node is ready.
func (c *Conn) wait(events int16, timeout time.Duration) (bool, error) {
	ms := -1
	if timeout >= 0 {
		ms = int((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	fds := []unix.PollFd{{Fd: int32(c.fd), Events: events}, {Fd: int32(c.wake), Events: unix.POLLIN}}
	if _, err := unix.Poll(fds, ms); err != nil && !errors.Is(err, unix.EINTR) {
		return false, fmt.Errorf("gadget: poll %s: %w", c.path, err)
	}
	if fds[1].Revents&unix.POLLIN != 0 {
		var b [8]byte
		_, _ = unix.Read(c.wake, b[:])
	}
	if r := fds[0].Revents; r&events == 0 && r&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 {
		return false, fmt.Errorf("gadget: %s: %w", c.path, ErrUnplugged)
	}
	return fds[0].Revents&events != 0, nil
}

// ReadReport returns the next output report from the host.
func (c *Conn) ReadReport(ctx context.Context) ([]byte, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	stop := context.AfterFunc(ctx, c.signal)
	defer stop()
	buf := make([]byte, ctaphid.ReportSize+1)
	for {
		if c.closed.Load() {
			return nil, ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := unix.Read(c.fd, buf)
		switch {
		case err == nil && n == 0:
			return nil, fmt.Errorf("gadget: read %s: %w", c.path, ErrUnplugged)
		case err == nil && n > ctaphid.ReportSize:
			return nil, fmt.Errorf("gadget: read %s: %w", c.path, ctaphid.ErrReportSize)
		case err == nil:
			r := make([]byte, ctaphid.ReportSize)
			copy(r, buf[:n])
			return r, nil
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
		case gone(err):
			return nil, fmt.Errorf("gadget: read %s: %w (%v)", c.path, ErrUnplugged, err)
		default:
			return nil, fmt.Errorf("gadget: read %s: %w", c.path, err)
		}
		if _, err := c.wait(unix.POLLIN, -1); err != nil {
			return nil, err
		}
	}
}

// WriteReport sends one 64-byte input report. When the host has not taken
// the previous one within WriteTimeout, the report is dropped (see Dropped)
// and WriteReport returns nil, as a real key's report would be lost.
//
// Reports are paced like a full-speed endpoint's (ctaphid.Pacer). Over
// dummy_hcd the link does not pace them: it polls an interrupt endpoint as
// fast as a bulk one, and usbhid hands every report to hidraw, which keeps
// 64 unread per open file and drops the newest past them. Unpaced, a
// 129-report answer lost a report whenever the host's reader was not
// scheduled (the one-CPU VM test's 7,609-byte PING: ERR_INVALID_SEQ).
func (c *Conn) WriteReport(ctx context.Context, report []byte) error {
	if len(report) != ctaphid.ReportSize {
		return fmt.Errorf("gadget: write %s: %w", c.path, ctaphid.ErrReportSize)
	}
	if err := c.pace.Wait(ctx); err != nil {
		return err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	deadline := time.Now().Add(WriteTimeout)
	for {
		if c.closed.Load() {
			return ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := unix.Write(c.fd, report)
		switch {
		case err == nil && n == len(report):
			return nil
		case err == nil:
			return fmt.Errorf("gadget: write %s: %d of %d bytes", c.path, n, len(report))
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
		case gone(err):
			return fmt.Errorf("gadget: write %s: %w (%v)", c.path, ErrUnplugged, err)
		default:
			return fmt.Errorf("gadget: write %s: %w", c.path, err)
		}
		left := time.Until(deadline)
		if left <= 0 {
			c.dropped.Add(1)
			return nil
		}
		if left > 50*time.Millisecond {
			left = 50 * time.Millisecond // re-check ctx and Close now and then
		}
		if _, err := c.wait(unix.POLLOUT, left); err != nil {
			return err
		}
	}
}

// Close closes the node; a ReadReport in progress returns ErrClosed.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.signal()
	c.mu.Lock()
	defer c.mu.Unlock()
	err := unix.Close(c.fd)
	c.wakeMu.Lock()
	unix.Close(c.wake)
	c.wakeClosed = true
	c.wakeMu.Unlock()
	if err != nil {
		return fmt.Errorf("gadget: close %s: %w", c.path, err)
	}
	return nil
}
