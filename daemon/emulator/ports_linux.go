package emulator

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/mfad/mfad/hw/ctaphid"
	"github.com/mfad/mfad/hw/emu/gadget"
	"github.com/mfad/mfad/hw/emu/uhid"
)

// USB identity of the software key: pid.codes' vendor id with a product id
// of its private-testing range.
const (
	vendorID  = 0x1209
	productID = 0x0001
)

// uhidPort creates a uhid device on Plug and destroys it on Unplug.
type uhidPort struct {
	serial string
	mu     sync.Mutex
	dev    *uhid.Device
}

// NewUHIDPort returns a Port over /dev/uhid. The HID device is on bus USB
// (libfido2 ignores other buses) and named "mfad software key".
func NewUHIDPort(serial string) Port { return &uhidPort{serial: serial} }

func (p *uhidPort) Name() string { return "uhid" }

func (p *uhidPort) Plug() (ctaphid.Conn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dev != nil {
		return p.dev, nil
	}
	d, err := uhid.Create(uhid.Config{
		Name:      gadget.DefaultProduct,
		Phys:      "mfad-emulator",
		Uniq:      p.serial,
		VendorID:  vendorID,
		ProductID: productID,
		Version:   0x0100,
	})
	if err != nil {
		return nil, err
	}
	p.dev = d
	return d, nil
}

func (p *uhidPort) Unplug() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dev == nil {
		return nil
	}
	err := p.dev.Close()
	p.dev = nil
	return err
}

func (p *uhidPort) Close() error { return p.Unplug() }

// GadgetOptions configure a gadget Port.
type GadgetOptions struct {
	Name, Serial, UDC string
	// ConfigFS, SysRoot, DevDir override the mount points (tests).
	ConfigFS, SysRoot, DevDir string
}

// gadgetPort binds the gadget on Plug and unbinds it on Unplug.
type gadgetPort struct {
	g    *gadget.Gadget
	mu   sync.Mutex
	conn *gadget.Conn
}

// NewGadgetPort writes the configfs gadget (manufacturer "mfad", product
// "mfad software key", the serial given) without binding it.
func NewGadgetPort(o GadgetOptions) (Port, error) {
	g, err := gadget.Create(gadget.Config{
		Name:      o.Name,
		VendorID:  vendorID,
		ProductID: productID,
		Serial:    o.Serial,
		UDC:       o.UDC,
		ConfigFS:  o.ConfigFS,
		SysRoot:   o.SysRoot,
		DevDir:    o.DevDir,
	})
	if err != nil {
		return nil, err
	}
	return &gadgetPort{g: g}, nil
}

func (p *gadgetPort) Name() string { return "gadget" }

func (p *gadgetPort) Plug() (ctaphid.Conn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil {
		return p.conn, nil
	}
	if err := p.g.Bind(); err != nil {
		return nil, err
	}
	// /dev/hidgN is made by devtmpfs as the UDC write returns; give a slow
	// machine a moment.
	var (
		c   *gadget.Conn
		err error
	)
	for i := 0; i < 50; i++ {
		if c, err = p.g.Open(); err == nil || !errors.Is(err, os.ErrNotExist) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		_ = p.g.Unbind()
		return nil, fmt.Errorf("emulator: gadget bound to %s: %w", p.g.UDC(), err)
	}
	p.conn = c
	return c, nil
}

func (p *gadgetPort) Unplug() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil {
		return nil
	}
	err := p.conn.Close()
	p.conn = nil
	return errors.Join(err, p.g.Unbind())
}

func (p *gadgetPort) Close() error {
	return errors.Join(p.Unplug(), p.g.Remove())
}
