package hidraw

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/mfad/mfad/hw/ctaphid"
)

var (
	// ErrRemoved is returned by a Conn whose device was unplugged (the
	// kernel answers ENODEV or EIO, or poll reports POLLHUP): at once, not
	// when the caller's deadline passes.
	ErrRemoved = errors.New("hidraw: device removed")
	// ErrClosed is returned by a Conn after Close.
	ErrClosed = errors.New("hidraw: connection closed")
)

// Conn is an open /dev/hidraw node carrying CTAPHID reports. It implements
// ctaphid.Conn: one reader and one writer may use it at once, and Close may
// be called from anywhere, which ends a pending ReadReport.
type Conn struct {
	path string
	fd   int
	wake int // eventfd that ends a poll when the read's ctx ends or Close is called

	mu      sync.RWMutex // read-held by I/O, write-held by Close to release the fds
	closed  atomic.Bool
	removed atomic.Bool

	wakeMu     sync.Mutex // orders signal with the closing of wake
	wakeClosed bool

	// pace spaces the output reports of a node whose device is virtual
	// (uhid), which has no flow control; nil for a real key, whose USB
	// endpoint is flow control enough (see ctaphid.Pacer).
	pace *ctaphid.Pacer
}

var _ ctaphid.Conn = (*Conn)(nil)

// Open opens a hidraw node (O_RDWR|O_CLOEXEC; reads do not block, they wait
// in poll(2)). Open it per operation: the kernel drops input that arrives
// before the node is opened.
func Open(path string) (*Conn, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO) {
			return nil, fmt.Errorf("hidraw: open %s: %w", path, ErrRemoved)
		}
		return nil, fmt.Errorf("hidraw: open %s: %w", path, err)
	}
	c, err := newConn(fd, path)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFCHR && isUHID(DefaultSysRoot, st.Rdev) {
		c.pace = ctaphid.NewPacer(ctaphid.FrameInterval, ctaphid.PaceBurst)
	}
	return c, nil
}

// isUHID reports whether the character device rdev is the hidraw node of a
// uhid device: sysfs places those under devices/virtual/misc/uhid/<hid id>.
func isUHID(sysRoot string, rdev uint64) bool {
	link := filepath.Join(sysRoot, "dev", "char", fmt.Sprintf("%d:%d", unix.Major(rdev), unix.Minor(rdev)), "device")
	dir, err := filepath.EvalSymlinks(link)
	if err != nil {
		return false
	}
	parent := filepath.Dir(dir)
	return filepath.Base(parent) == "uhid" && filepath.Base(filepath.Dir(parent)) == "misc"
}

// Paced reports whether the Conn spaces its output reports, as it does on
// a uhid device's node.
func (c *Conn) Paced() bool { return c.pace != nil }

// newConn wraps an open, non-blocking descriptor: a hidraw node, or one end
// of a SOCK_SEQPACKET socket pair in tests.
func newConn(fd int, path string) (*Conn, error) {
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("hidraw: eventfd: %w", err)
	}
	return &Conn{path: path, fd: fd, wake: wake}, nil
}

// Path is the node this Conn was opened on.
func (c *Conn) Path() string { return c.path }

// signal wakes a poll in progress.
// It may run after Close (context.AfterFunc does not wait), hence wakeMu.
func (c *Conn) signal() {
	c.wakeMu.Lock()
	defer c.wakeMu.Unlock()
	if c.wakeClosed {
		return
	}
	one := [8]byte{1}
	_, _ = unix.Write(c.wake, one[:]) // EAGAIN only when the counter is saturated: already signalled
}

func (c *Conn) drain() {
	var b [8]byte
	_, _ = unix.Read(c.wake, b[:])
}

// ReadReport returns the next 64-byte input report. It waits until a report
// comes, the device is removed (ErrRemoved), the Conn is closed (ErrClosed)
// or ctx ends (ctx's error).
func (c *Conn) ReadReport(ctx context.Context) ([]byte, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	stop := context.AfterFunc(ctx, c.signal)
	defer stop()
	buf := make([]byte, ctaphid.ReportSize+1)
	for {
		switch {
		case c.closed.Load():
			return nil, ErrClosed
		case c.removed.Load():
			return nil, fmt.Errorf("hidraw: read %s: %w", c.path, ErrRemoved)
		case ctx.Err() != nil:
			return nil, ctx.Err()
		}
		n, err := unix.Read(c.fd, buf)
		switch {
		case err == nil && n == 0:
			return nil, c.gone("read", unix.ENODEV) // end of file: the peer is gone
		case err == nil && n > ctaphid.ReportSize:
			return nil, fmt.Errorf("hidraw: read %s: %d-byte report: %w", c.path, n, ctaphid.ErrReportSize)
		case err == nil:
			r := make([]byte, ctaphid.ReportSize) // a shorter report is zero-padded
			copy(r, buf[:n])
			return r, nil
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
		case isRemoval(err):
			return nil, c.gone("read", err)
		default:
			return nil, fmt.Errorf("hidraw: read %s: %w", c.path, err)
		}
		fds := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}, {Fd: int32(c.wake), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, -1); err != nil && !errors.Is(err, unix.EINTR) {
			return nil, fmt.Errorf("hidraw: poll %s: %w", c.path, err)
		}
		if fds[1].Revents&unix.POLLIN != 0 {
			c.drain()
		}
		if r := fds[0].Revents; r&unix.POLLIN == 0 && r&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 {
			return nil, c.gone("poll", unix.ENODEV)
		}
	}
}

// WriteReport writes one 64-byte output report, behind the report-id byte 0.
// On a uhid device's node it first waits for its turn (see Paced).
func (c *Conn) WriteReport(ctx context.Context, report []byte) error {
	if len(report) != ctaphid.ReportSize {
		return fmt.Errorf("hidraw: write %s: %w", c.path, ctaphid.ErrReportSize)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.pace.Wait(ctx); err != nil {
		return err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	switch {
	case c.closed.Load():
		return ErrClosed
	case c.removed.Load():
		return fmt.Errorf("hidraw: write %s: %w", c.path, ErrRemoved)
	}
	buf := make([]byte, 1+ctaphid.ReportSize)
	copy(buf[1:], report)
	for {
		n, err := unix.Write(c.fd, buf)
		switch {
		case err == nil && n == len(buf):
			return nil
		case err == nil:
			return fmt.Errorf("hidraw: write %s: %d of %d bytes written", c.path, n, len(buf))
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			fds := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLOUT}}
			if _, err := unix.Poll(fds, 100); err != nil && !errors.Is(err, unix.EINTR) {
				return fmt.Errorf("hidraw: poll %s: %w", c.path, err)
			}
			if fds[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0 {
				return c.gone("write", unix.ENODEV)
			}
			if err := ctx.Err(); err != nil {
				return err
			}
		case isRemoval(err):
			return c.gone("write", err)
		default:
			return fmt.Errorf("hidraw: write %s: %w", c.path, err)
		}
	}
}

// gone records the removal and returns ErrRemoved.
func (c *Conn) gone(op string, cause error) error {
	c.removed.Store(true)
	return fmt.Errorf("hidraw: %s %s: %w (%v)", op, c.path, ErrRemoved, cause)
}

func isRemoval(err error) bool {
	return errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EIO) || errors.Is(err, unix.EPIPE) ||
		errors.Is(err, unix.ECONNRESET) || errors.Is(err, unix.ENXIO)
}

// Removed reports whether the device was seen to go away.
func (c *Conn) Removed() bool { return c.removed.Load() }

// Close releases the node; a ReadReport in progress returns ErrClosed. It is
// safe to call more than once.
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
		return fmt.Errorf("hidraw: close %s: %w", c.path, err)
	}
	return nil
}
