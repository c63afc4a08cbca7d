package uhid

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/mfad/mfad/hw/ctaphid"
)

// Event types and sizes, include/uapi/linux/uhid.h.
const (
	evDestroy        = 1
	evStart          = 2
	evStop           = 3
	evOpen           = 4
	evClose          = 5
	evOutput         = 6
	evGetReport      = 9
	evGetReportReply = 10
	evCreate2        = 11
	evInput2         = 12
	evSetReport      = 13
	evSetReportReply = 14

	dataMax   = 4096
	eventSize = 4 + 128 + 64 + 64 + 2 + 2 + 4*4 + dataMax // struct uhid_event, the create2 member being the largest: 4376

	// BusUSB is BUS_USB, linux/input.h.
	BusUSB = 0x03
)

// DefaultPath is the uhid character device.
const DefaultPath = "/dev/uhid"

var (
	// ErrClosed is returned once the Device is closed (destroyed).
	ErrClosed = errors.New("uhid: device closed")
)

// Config describes the HID device to create.
type Config struct {
	// Name is the HID name (HID_NAME in sysfs), at most 127 bytes.
	Name string
	// Phys and Uniq are the physical path and unique id (HID_UNIQ: libfido2
	// and hw/hidraw take it as the serial number), at most 63 bytes each.
	Phys, Uniq string
	// Bus is the HID bus; zero means BusUSB.
	Bus uint16
	// VendorID, ProductID, Version and Country identify the device.
	VendorID, ProductID uint32
	Version, Country    uint32
	// ReportDescriptor is the HID report descriptor; nil means the FIDO one.
	ReportDescriptor []byte
	// Path is the uhid character device; empty means DefaultPath.
	Path string
}

// fidoDescriptor is the FIDO HID report descriptor, CTAP 2.2 §11.2.8.1
// (usage page 0xF1D0, usage 0x01, 64-byte input and output reports).
var fidoDescriptor = []byte{
	0x06, 0xd0, 0xf1, 0x09, 0x01, 0xa1, 0x01,
	0x09, 0x20, 0x15, 0x00, 0x26, 0xff, 0x00, 0x75, 0x08, 0x95, 0x40, 0x81, 0x02,
	0x09, 0x21, 0x15, 0x00, 0x26, 0xff, 0x00, 0x75, 0x08, 0x95, 0x40, 0x91, 0x02,
	0xc0,
}

// FIDOReportDescriptor returns a copy of the FIDO report descriptor.
func FIDOReportDescriptor() []byte { return append([]byte(nil), fidoDescriptor...) }

// encodeCreate2 builds the UHID_CREATE2 event.
func encodeCreate2(cfg Config) ([]byte, error) {
	rd := cfg.ReportDescriptor
	if rd == nil {
		rd = fidoDescriptor
	}
	switch {
	case len(rd) == 0 || len(rd) > dataMax:
		return nil, fmt.Errorf("uhid: report descriptor of %d bytes", len(rd))
	case len(cfg.Name) > 127, len(cfg.Phys) > 63, len(cfg.Uniq) > 63:
		return nil, errors.New("uhid: name, phys or uniq too long")
	}
	bus := cfg.Bus
	if bus == 0 {
		bus = BusUSB
	}
	b := make([]byte, eventSize)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], evCreate2)
	copy(b[4:4+128], cfg.Name)
	copy(b[132:132+64], cfg.Phys)
	copy(b[196:196+64], cfg.Uniq)
	ne.PutUint16(b[260:], uint16(len(rd)))
	ne.PutUint16(b[262:], bus)
	ne.PutUint32(b[264:], cfg.VendorID)
	ne.PutUint32(b[268:], cfg.ProductID)
	ne.PutUint32(b[272:], cfg.Version)
	ne.PutUint32(b[276:], cfg.Country)
	copy(b[280:], rd)
	return b, nil
}

// encodeInput2 builds a UHID_INPUT2 event carrying one input report.
func encodeInput2(report []byte) []byte {
	b := make([]byte, eventSize)
	binary.NativeEndian.PutUint32(b[0:], evInput2)
	binary.NativeEndian.PutUint16(b[4:], uint16(len(report)))
	copy(b[6:], report)
	return b
}

// encodeReply answers a GET_REPORT or SET_REPORT request with an error.
func encodeReply(typ uint32, id uint32, errno uint16) []byte {
	b := make([]byte, eventSize)
	binary.NativeEndian.PutUint32(b[0:], typ)
	binary.NativeEndian.PutUint32(b[4:], id)
	binary.NativeEndian.PutUint16(b[8:], errno)
	return b
}

// outputReport extracts the report of a UHID_OUTPUT event: the data starts
// with the report number (0 for a device without report ids), which is
// dropped, and is zero-padded to 64 bytes. ok is false for an event too
// short or a report longer than 64 bytes.
func outputReport(ev []byte) ([]byte, bool) {
	if len(ev) < 4+dataMax+2 {
		return nil, false
	}
	n := int(binary.NativeEndian.Uint16(ev[4+dataMax:]))
	if n > dataMax {
		return nil, false
	}
	data := ev[4 : 4+n]
	if len(data) == ctaphid.ReportSize+1 && data[0] == 0 {
		data = data[1:]
	}
	if len(data) > ctaphid.ReportSize {
		return nil, false
	}
	r := make([]byte, ctaphid.ReportSize)
	copy(r, data)
	return r, true
}

// Device is a uhid HID device. It implements ctaphid.Conn on the device
// side: ReadReport returns the host's output reports, WriteReport sends
// input reports.
type Device struct {
	fd   int
	wake int

	mu         sync.RWMutex // read-held by I/O, write-held by Close
	wmu        sync.Mutex   // one event write at a time
	closed     atomic.Bool
	wakeMu     sync.Mutex
	wakeClosed bool

	opens   atomic.Int32 // UHID_OPEN minus UHID_CLOSE: hosts holding the hidraw node open
	started atomic.Bool

	// The kernel keeps at most 32 uhid events (UHID_BUFSIZE) and drops
	// output reports past them ("Output queue is full"), where a USB host
	// would wait for the device: a host writing a long message (129
	// reports) faster than the key handles them would lose reports
	// mid-sequence. pump drains the kernel's queue as fast as it can into
	// reports, for ReadReport; hw/hidraw paces its writes to uhid nodes.
	pumpOnce sync.Once
	reports  chan []byte
	pumpErr  error // why pump stopped; set before reports is closed
	done     chan struct{}

	pace *ctaphid.Pacer // spaces input reports (see ctaphid.Pacer)
}

// reportQueue holds more than the longest CTAPHID message (129 reports).
const reportQueue = 1024

var _ ctaphid.Conn = (*Device)(nil)

// Create opens the uhid device and creates the HID device (UHID_CREATE2).
// The kernel then binds hid-generic to it and a /dev/hidrawN node appears.
func Create(cfg Config) (*Device, error) {
	ev, err := encodeCreate2(cfg)
	if err != nil {
		return nil, err
	}
	path := cfg.Path
	if path == "" {
		path = DefaultPath
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("uhid: open %s: %w", path, err)
	}
	d, err := newDevice(fd)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := d.write(ev); err != nil {
		d.Close()
		return nil, fmt.Errorf("uhid: create: %w", err)
	}
	return d, nil
}

func newDevice(fd int) (*Device, error) {
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("uhid: eventfd: %w", err)
	}
	return &Device{fd: fd, wake: wake, done: make(chan struct{}), pace: ctaphid.NewPacer(ctaphid.FrameInterval, ctaphid.PaceBurst)}, nil
}

// Opened reports whether a host program holds the hidraw node open.
func (d *Device) Opened() bool { return d.opens.Load() > 0 }

func (d *Device) write(ev []byte) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	for {
		n, err := unix.Write(d.fd, ev)
		switch {
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN):
			continue
		case err != nil:
			return err
		case n != len(ev):
			return fmt.Errorf("short write: %d of %d bytes", n, len(ev))
		}
		return nil
	}
}

func (d *Device) signal() {
	d.wakeMu.Lock()
	defer d.wakeMu.Unlock()
	if !d.wakeClosed {
		one := [8]byte{1}
		_, _ = unix.Write(d.wake, one[:])
	}
}

// ReadReport returns the next output report the host wrote to the hidraw
// node (64 bytes, without the report id). Other events (START, OPEN, ...)
// are handled on the way; GET_REPORT and SET_REPORT are answered with EIO.
func (d *Device) ReadReport(ctx context.Context) ([]byte, error) {
	d.pumpOnce.Do(func() {
		d.reports = make(chan []byte, reportQueue)
		go d.pump()
	})
	select {
	case r, ok := <-d.reports:
		if !ok {
			return nil, d.pumpErr
		}
		return r, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// pump reads the kernel's events until the device closes or fails.
func (d *Device) pump() {
	for {
		r, err := d.readEvent()
		if err != nil {
			d.pumpErr = err
			close(d.reports)
			return
		}
		select {
		case d.reports <- r:
		case <-d.done:
			d.pumpErr = ErrClosed
			close(d.reports)
			return
		}
	}
}

// readEvent waits for the next output report, handling other events.
func (d *Device) readEvent() ([]byte, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	buf := make([]byte, eventSize)
	for {
		if d.closed.Load() {
			return nil, ErrClosed
		}
		n, err := unix.Read(d.fd, buf)
		switch {
		case err == nil && n >= 4:
			if r, ok := d.event(buf[:n]); ok {
				return r, nil
			}
			continue
		case err == nil && n == 0:
			return nil, ErrClosed
		case err == nil:
			continue // runt event
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
		default:
			return nil, fmt.Errorf("uhid: read: %w", err)
		}
		fds := []unix.PollFd{{Fd: int32(d.fd), Events: unix.POLLIN}, {Fd: int32(d.wake), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, -1); err != nil && !errors.Is(err, unix.EINTR) {
			return nil, fmt.Errorf("uhid: poll: %w", err)
		}
		if fds[1].Revents&unix.POLLIN != 0 {
			var b [8]byte
			_, _ = unix.Read(d.wake, b[:])
		}
		if fds[0].Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 && fds[0].Revents&unix.POLLIN == 0 {
			return nil, fmt.Errorf("uhid: poll: %w", unix.EIO)
		}
	}
}

// event handles one event from the kernel and returns an output report
// when it carries one.
func (d *Device) event(ev []byte) ([]byte, bool) {
	switch binary.NativeEndian.Uint32(ev) {
	case evStart:
		d.started.Store(true)
	case evStop:
		d.started.Store(false)
	case evOpen:
		d.opens.Add(1)
	case evClose:
		if d.opens.Add(-1) < 0 {
			d.opens.Store(0)
		}
	case evOutput:
		return outputReport(ev)
	case evGetReport, evSetReport:
		if len(ev) >= 8 {
			id := binary.NativeEndian.Uint32(ev[4:])
			reply := uint32(evGetReportReply)
			if binary.NativeEndian.Uint32(ev) == evSetReport {
				reply = evSetReportReply
			}
			_ = d.write(encodeReply(reply, id, uint16(unix.EIO)))
		}
	}
	return nil, false
}

// WriteReport sends one 64-byte input report (UHID_INPUT2), paced like a
// full-speed USB endpoint's (ctaphid.Pacer): the kernel drops input reports
// a host's hidraw reader has not taken, 64 behind, where a USB key would
// wait for the host. It may wait a few milliseconds, or until ctx ends.
func (d *Device) WriteReport(ctx context.Context, report []byte) error {
	if len(report) != ctaphid.ReportSize {
		return fmt.Errorf("uhid: write: %w", ctaphid.ErrReportSize)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := d.pace.Wait(ctx); err != nil {
		return err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed.Load() {
		return ErrClosed
	}
	if err := d.write(encodeInput2(report)); err != nil {
		return fmt.Errorf("uhid: input: %w", err)
	}
	return nil
}

// Close destroys the HID device (the hidraw node goes away, as on unplug)
// and closes the uhid file. It is safe to call more than once.
func (d *Device) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	close(d.done)
	d.signal()
	d.mu.Lock()
	defer d.mu.Unlock()
	ev := make([]byte, eventSize)
	binary.NativeEndian.PutUint32(ev, evDestroy)
	_ = d.write(ev) // closing the file destroys the device too
	err := unix.Close(d.fd)
	d.wakeMu.Lock()
	unix.Close(d.wake)
	d.wakeClosed = true
	d.wakeMu.Unlock()
	if err != nil {
		return fmt.Errorf("uhid: close: %w", err)
	}
	return nil
}
