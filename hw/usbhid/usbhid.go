package usbhid

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/karalabe/hid"

	"github.com/mfad/mfad/hw/ctaphid"
	"github.com/mfad/mfad/hw/hidraw"
)

var (
	// ErrUnsupported: karalabe/hid has no backend here (no cgo, or an
	// unsupported platform).
	ErrUnsupported = errors.New("usbhid: karalabe/hid is not supported in this build (needs cgo)")
	// ErrRemoved: the device went away (or the handle was closed under a read).
	ErrRemoved = errors.New("usbhid: device removed")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("usbhid: connection closed")
	// ErrNotFound: no karalabe/hid device matches the FIDO interface asked for.
	ErrNotFound = errors.New("usbhid: device not found")
)

// Device is a FIDO interface as karalabe/hid sees it, with what sysfs told
// about it on Linux.
type Device struct {
	// Info is karalabe/hid's description; Info.Path opens it.
	Info hid.DeviceInfo
	// Hidraw is the same interface seen through hw/hidraw (its node while
	// the kernel driver is attached), zero when not on Linux.
	Hidraw hidraw.Device
}

// pollInterval is how long one hidapi read waits before ctx is checked again.
const pollInterval = 20 * time.Millisecond

// Enumerate lists the FIDO interfaces karalabe/hid can open. On Linux it
// takes the FIDO interfaces hw/hidraw finds in sysRoot (the report
// descriptors decide) and pairs each with the karalabe/hid device on the
// same bus, address and interface; elsewhere it keeps devices whose usage
// page is 0xF1D0 and usage 0x01.
func Enumerate(sysRoot string) ([]Device, error) {
	if !hid.Supported() {
		return nil, ErrUnsupported
	}
	infos, err := hid.Enumerate(0, 0)
	if err != nil {
		return nil, fmt.Errorf("usbhid: enumerate: %w", err)
	}
	fidos, err := hidraw.Enumerate(sysRoot)
	if err != nil {
		return nil, err
	}
	return match(infos, fidos), nil
}

// match pairs karalabe/hid devices with FIDO interfaces.
func match(infos []hid.DeviceInfo, fidos []hidraw.Device) []Device {
	var out []Device
	for _, info := range infos {
		if info.UsagePage == hidraw.FIDOUsagePage && info.Usage == hidraw.FIDOUsageCTAP {
			out = append(out, Device{Info: info}) // macOS, Windows: the backend knows the usage
			continue
		}
		bus, addr, iface, numeric := ParsePath(info.Path)
		for _, f := range fidos {
			u := f.USB
			if u == nil {
				continue
			}
			if (numeric && u.BusNum == bus && u.DevNum == addr && u.Interface == iface) || (!numeric && info.Path == u.Name) {
				out = append(out, Device{Info: info, Hidraw: f})
				break
			}
		}
	}
	return out
}

// ParsePath reads the device path of older hidapi libusb backends,
// "bbbb:dddd:ii": bus number, device address and interface number in hex.
// Newer ones (the karalabe/hid in go.mod) use the interface's sysfs name,
// "1-1:1.0", which Enumerate matches with hidraw.USBLocation.Name.
func ParsePath(p string) (bus, addr, iface int, ok bool) {
	parts := strings.Split(p, ":")
	if len(parts) != 3 {
		return 0, 0, 0, false
	}
	var n [3]int
	for i, s := range parts {
		v, err := strconv.ParseUint(s, 16, 16)
		if err != nil || s == "" {
			return 0, 0, 0, false
		}
		n[i] = int(v)
	}
	return n[0], n[1], n[2], true
}

// Find returns the karalabe/hid device of a FIDO interface hw/hidraw found
// (by its USB location).
func Find(sysRoot string, d hidraw.Device) (Device, error) {
	devs, err := Enumerate(sysRoot)
	if err != nil {
		return Device{}, err
	}
	for _, x := range devs {
		if d.USB != nil && x.Hidraw.USB != nil && *x.Hidraw.USB == *d.USB {
			return x, nil
		}
	}
	return Device{}, fmt.Errorf("%w: %s", ErrNotFound, d.Path)
}

// Conn is an open karalabe/hid device carrying CTAPHID reports.
type Conn struct {
	info hid.DeviceInfo

	// mu is read-held around every call into hidapi and write-held by
	// Close: karalabe/hid's Close frees the handle that a read in progress
	// still uses.
	mu      sync.RWMutex
	dev     hid.Device
	closed  atomic.Bool
	removed atomic.Bool
}

var _ ctaphid.Conn = (*Conn)(nil)

// Open opens a device (on Linux this detaches the kernel driver until Close).
func Open(d Device) (*Conn, error) {
	if !hid.Supported() {
		return nil, ErrUnsupported
	}
	dev, err := d.Info.Open()
	if err != nil {
		return nil, fmt.Errorf("usbhid: open %s: %w", d.Info.Path, err)
	}
	return &Conn{info: d.Info, dev: dev}, nil
}

// ReadReport returns the next 64-byte input report, waiting in slices of
// 20 ms so that ctx's end is seen.
func (c *Conn) ReadReport(ctx context.Context) ([]byte, error) {
	buf := make([]byte, ctaphid.ReportSize+1)
	for {
		if c.closed.Load() {
			return nil, ErrClosed
		}
		if c.removed.Load() {
			return nil, ErrRemoved
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c.mu.RLock()
		if c.closed.Load() {
			c.mu.RUnlock()
			return nil, ErrClosed
		}
		n, err := c.dev.ReadTimeout(buf, int(pollInterval/time.Millisecond))
		c.mu.RUnlock()
		switch {
		case err != nil && c.closed.Load():
			return nil, ErrClosed
		case err != nil:
			// hidapi's libusb backend fails a read only once its reader
			// thread stopped: the device is gone.
			c.removed.Store(true)
			return nil, fmt.Errorf("usbhid: read %s: %w (%v)", c.info.Path, ErrRemoved, err)
		case n == 0:
			continue
		case n > ctaphid.ReportSize:
			return nil, fmt.Errorf("usbhid: read %s: %w", c.info.Path, ctaphid.ErrReportSize)
		}
		r := make([]byte, ctaphid.ReportSize)
		copy(r, buf[:n])
		return r, nil
	}
}

// WriteReport writes one 64-byte output report behind report id 0.
func (c *Conn) WriteReport(ctx context.Context, report []byte) error {
	if len(report) != ctaphid.ReportSize {
		return fmt.Errorf("usbhid: write: %w", ctaphid.ErrReportSize)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed.Load() {
		return ErrClosed
	}
	buf := append([]byte{0}, report...)
	n, err := c.dev.Write(buf)
	if err != nil {
		if c.closed.Load() {
			return ErrClosed
		}
		c.removed.Store(true)
		return fmt.Errorf("usbhid: write %s: %w (%v)", c.info.Path, ErrRemoved, err)
	}
	if n < ctaphid.ReportSize {
		return fmt.Errorf("usbhid: write %s: %d bytes written", c.info.Path, n)
	}
	return nil
}

// Close releases the device (and gives it back to the kernel driver).
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.dev.Close(); err != nil {
		return fmt.Errorf("usbhid: close %s: %w", c.info.Path, err)
	}
	return nil
}
