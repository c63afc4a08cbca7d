package gadget

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Defaults of Config fields left zero. 0x1209 is pid.codes, whose product
// ids 0x0001-0x000F are set aside for private testing.
const (
	DefaultName         = "mfad"
	DefaultVendorID     = 0x1209
	DefaultProductID    = 0x0001
	DefaultManufacturer = "mfad"
	DefaultProduct      = "mfad software key"
	DefaultConfigFS     = "/sys/kernel/config"
	DefaultSysRoot      = "/sys"
	DefaultDevDir       = "/dev"

	function = "hid.usb0"
	langUS   = "0x409"
)

// ErrNoUDC is returned when the machine has no USB device controller (load
// dummy_hcd for a loopback one).
var ErrNoUDC = errors.New("gadget: no USB device controller in /sys/class/udc")

// fidoDescriptor is the FIDO HID report descriptor, CTAP 2.2 §11.2.8.1.
var fidoDescriptor = []byte{
	0x06, 0xd0, 0xf1, 0x09, 0x01, 0xa1, 0x01,
	0x09, 0x20, 0x15, 0x00, 0x26, 0xff, 0x00, 0x75, 0x08, 0x95, 0x40, 0x81, 0x02,
	0x09, 0x21, 0x15, 0x00, 0x26, 0xff, 0x00, 0x75, 0x08, 0x95, 0x40, 0x91, 0x02,
	0xc0,
}

// Config describes the USB device.
type Config struct {
	// Name is the gadget's directory under usb_gadget (default "mfad").
	Name string
	// VendorID, ProductID and BCDDevice are the device descriptor's ids.
	VendorID, ProductID, BCDDevice uint16
	// Manufacturer, Product and Serial are the USB strings (English).
	Manufacturer, Product, Serial string
	// ReportDescriptor is the HID report descriptor; nil means FIDO's.
	ReportDescriptor []byte
	// UDC is the controller to bind to; empty means the first one.
	UDC string
	// ConfigFS, SysRoot and DevDir are where configfs, sysfs and devtmpfs
	// are mounted (defaults /sys/kernel/config, /sys and /dev).
	ConfigFS, SysRoot, DevDir string
}

func (c *Config) defaults() {
	set := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	set(&c.Name, DefaultName)
	set(&c.Manufacturer, DefaultManufacturer)
	set(&c.Product, DefaultProduct)
	set(&c.ConfigFS, DefaultConfigFS)
	set(&c.SysRoot, DefaultSysRoot)
	set(&c.DevDir, DefaultDevDir)
	if c.VendorID == 0 {
		c.VendorID = DefaultVendorID
	}
	if c.ProductID == 0 {
		c.ProductID = DefaultProductID
	}
	if c.BCDDevice == 0 {
		c.BCDDevice = 0x0100
	}
	if c.ReportDescriptor == nil {
		c.ReportDescriptor = fidoDescriptor
	}
}

// Gadget is a configured USB HID gadget.
type Gadget struct {
	cfg Config
	dir string

	mu  sync.Mutex
	udc string // bound controller, "" when unbound
}

// Create writes the gadget's configfs tree (it is not bound yet: see Bind).
// A gadget of the same name left behind by an earlier run is removed first.
func Create(cfg Config) (*Gadget, error) {
	cfg.defaults()
	if strings.ContainsAny(cfg.Name, "/") || cfg.Name == "." || cfg.Name == ".." {
		return nil, fmt.Errorf("gadget: bad name %q", cfg.Name)
	}
	if len(cfg.ReportDescriptor) > 4096 {
		return nil, fmt.Errorf("gadget: report descriptor of %d bytes", len(cfg.ReportDescriptor))
	}
	root := filepath.Join(cfg.ConfigFS, "usb_gadget")
	if _, err := os.Stat(root); err != nil {
		return nil, fmt.Errorf("gadget: %s: %w (mount configfs and load libcomposite)", root, err)
	}
	g := &Gadget{cfg: cfg, dir: filepath.Join(root, cfg.Name)}
	if _, err := os.Stat(g.dir); err == nil {
		if err := g.remove(); err != nil {
			return nil, fmt.Errorf("gadget: removing a stale %s: %w", g.dir, err)
		}
	}
	if err := g.create(); err != nil {
		_ = g.remove()
		return nil, err
	}
	return g, nil
}

func (g *Gadget) create() error {
	c := g.cfg
	fn := filepath.Join(g.dir, "functions", function)
	conf := filepath.Join(g.dir, "configs", "c.1")
	steps := []struct {
		path, value string // value "" with dir: mkdir
		dir         bool
	}{
		{path: g.dir, dir: true},
		{path: "idVendor", value: fmt.Sprintf("0x%04x", c.VendorID)},
		{path: "idProduct", value: fmt.Sprintf("0x%04x", c.ProductID)},
		{path: "bcdDevice", value: fmt.Sprintf("0x%04x", c.BCDDevice)},
		{path: "bcdUSB", value: "0x0200"},
		{path: "strings/" + langUS, dir: true},
		{path: "strings/" + langUS + "/manufacturer", value: c.Manufacturer},
		{path: "strings/" + langUS + "/product", value: c.Product},
		{path: "strings/" + langUS + "/serialnumber", value: c.Serial},
		{path: fn, dir: true},
		{path: fn + "/protocol", value: "0"},
		{path: fn + "/subclass", value: "0"},
		{path: fn + "/report_length", value: "64"},
		{path: conf, dir: true},
		{path: conf + "/strings/" + langUS, dir: true},
		{path: conf + "/strings/" + langUS + "/configuration", value: "FIDO"},
		{path: conf + "/MaxPower", value: "100"},
	}
	for _, s := range steps {
		p := s.path
		if !filepath.IsAbs(p) {
			p = filepath.Join(g.dir, p)
		}
		if s.dir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return fmt.Errorf("gadget: %w", err)
			}
			continue
		}
		if err := writeAttr(p, s.value+"\n"); err != nil {
			return err
		}
	}
	if err := writeAttr(filepath.Join(fn, "report_desc"), string(c.ReportDescriptor)); err != nil {
		return err
	}
	if err := os.Symlink(fn, filepath.Join(conf, function)); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("gadget: link function: %w", err)
	}
	return nil
}

func writeAttr(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("gadget: %w", err)
	}
	_, err = f.Write([]byte(value))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("gadget: write %s: %w", path, err)
	}
	return nil
}

// Dir is the gadget's configfs directory.
func (g *Gadget) Dir() string { return g.dir }

// UDCs lists the USB device controllers under sysRoot/class/udc, sorted.
func UDCs(sysRoot string) ([]string, error) {
	if sysRoot == "" {
		sysRoot = DefaultSysRoot
	}
	entries, err := os.ReadDir(filepath.Join(sysRoot, "class", "udc"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("gadget: %w", err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

// Bind attaches the gadget to its controller: the host sees a USB device
// plugged in. Binding a bound gadget does nothing.
func (g *Gadget) Bind() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.udc != "" {
		return nil
	}
	udc := g.cfg.UDC
	if udc == "" {
		udcs, err := UDCs(g.cfg.SysRoot)
		if err != nil {
			return err
		}
		if len(udcs) == 0 {
			return ErrNoUDC
		}
		udc = udcs[0]
	}
	if err := writeAttr(filepath.Join(g.dir, "UDC"), udc+"\n"); err != nil {
		return fmt.Errorf("gadget: bind to %s: %w", udc, err)
	}
	g.udc = udc
	return nil
}

// Unbind detaches the gadget from its controller: the host sees the device
// unplugged. Unbinding an unbound gadget does nothing.
func (g *Gadget) Unbind() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.unbind()
}

func (g *Gadget) unbind() error {
	if g.udc == "" {
		return nil
	}
	if err := writeAttr(filepath.Join(g.dir, "UDC"), "\n"); err != nil {
		return fmt.Errorf("gadget: unbind: %w", err)
	}
	g.udc = ""
	return nil
}

// UDC is the controller the gadget is bound to, "" when unbound.
func (g *Gadget) UDC() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.udc
}

// DevicePath is the gadget side's character device, /dev/hidgN, named by
// the minor number the function reports in its dev attribute.
func (g *Gadget) DevicePath() (string, error) {
	b, err := os.ReadFile(filepath.Join(g.dir, "functions", function, "dev"))
	if err != nil {
		return "", fmt.Errorf("gadget: %w", err)
	}
	_, minor, ok := strings.Cut(strings.TrimSpace(string(b)), ":")
	n, err := strconv.Atoi(minor)
	if !ok || err != nil || n < 0 || n > 255 {
		return "", fmt.Errorf("gadget: function dev %q", strings.TrimSpace(string(b)))
	}
	return filepath.Join(g.cfg.DevDir, "hidg"+strconv.Itoa(n)), nil
}

// Open opens the gadget side of the HID function (the gadget should be
// bound: /dev/hidgN exists once the UDC is written).
func (g *Gadget) Open() (*Conn, error) {
	p, err := g.DevicePath()
	if err != nil {
		return nil, err
	}
	return OpenConn(p)
}

// Remove unbinds the gadget and deletes its configfs tree.
func (g *Gadget) Remove() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	_ = g.unbind()
	return g.remove()
}

// remove deletes the configfs tree in the reverse order of its creation,
// as configfs requires (rmdir of each directory; attributes go with them).
func (g *Gadget) remove() error {
	// A stale gadget may still be bound.
	if b, err := os.ReadFile(filepath.Join(g.dir, "UDC")); err == nil && strings.TrimSpace(string(b)) != "" {
		_ = writeAttr(filepath.Join(g.dir, "UDC"), "\n")
	}
	conf := filepath.Join(g.dir, "configs", "c.1")
	var errs []error
	rm := func(p string) {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	rm(filepath.Join(conf, function))
	rm(filepath.Join(conf, "strings", langUS))
	rm(conf)
	rm(filepath.Join(g.dir, "functions", function))
	rm(filepath.Join(g.dir, "strings", langUS))
	rm(g.dir)
	return errors.Join(errs...)
}
