package hidraw

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// DefaultSysRoot is where sysfs is mounted.
const DefaultSysRoot = "/sys"

// maxAttrSize bounds every sysfs attribute read (strings are at most 126
// UTF-16 code units in USB, 128 bytes in a HID uevent).
const maxAttrSize = 4096

// Device is a FIDO HID interface found in sysfs.
type Device struct {
	// Path is the device node, /dev/hidrawN.
	Path string
	// VendorID and ProductID are the USB (or Bluetooth, ...) ids.
	VendorID, ProductID uint16
	// Manufacturer, Product and Serial are the USB strings, or the HID name
	// and unique id when the device has no USB parent (uhid, Bluetooth).
	Manufacturer, Product, Serial string
	// Bus is the HID bus: "usb", "bluetooth", "virtual", "i2c", or the
	// number in hex when unknown.
	Bus string
	// USB locates the USB interface when Bus is "usb" and sysfs has a USB
	// parent: its bus number, device address and interface number, what
	// libusb (hw/usbhid) opens it by.
	USB *USBLocation
}

// USBLocation is where a USB interface sits: sysfs busnum, devnum and
// bInterfaceNumber, and the interface's sysfs name (bus-ports:config.interface,
// "1-1:1.0"), which newer hidapi libusb backends use as the device path.
type USBLocation struct {
	BusNum, DevNum int
	Interface      int
	Name           string
}

// HID bus types, linux/input.h BUS_*.
var busNames = map[uint16]string{
	0x03: "usb",
	0x05: "bluetooth",
	0x06: "virtual",
	0x18: "i2c",
	0x1c: "spi",
}

// Enumerate lists the FIDO devices (usage page 0xF1D0, usage 0x01) under
// sysRoot/class/hidraw, sorted by path. An empty sysRoot means /sys. Nodes
// whose report descriptor cannot be read or parsed are skipped: a device that
// disappears while it is read, or that declares nonsense, is not a key. A
// missing class directory (no hidraw support) is no devices.
func Enumerate(sysRoot string) ([]Device, error) {
	if sysRoot == "" {
		sysRoot = DefaultSysRoot
	}
	dir := filepath.Join(sysRoot, "class", "hidraw")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("hidraw: enumerate: %w", err)
	}
	var devs []Device
	for _, e := range entries {
		d, ok := readNode(filepath.Join(dir, e.Name()), e.Name())
		if ok {
			devs = append(devs, d)
		}
	}
	sort.Slice(devs, func(i, j int) bool { return devs[i].Path < devs[j].Path })
	return devs, nil
}

// readNode describes one /sys/class/hidraw/<name> entry if it is a FIDO
// interface.
func readNode(node, name string) (Device, bool) {
	desc, err := readAttr(filepath.Join(node, "device", "report_descriptor"), MaxDescriptorSize+1)
	if err != nil || !IsFIDO(desc) {
		return Device{}, false
	}
	d := Device{Path: "/dev/" + name}
	if ue, err := readUevent(filepath.Join(node, "uevent")); err == nil {
		if dn := ue["DEVNAME"]; dn != "" && !strings.Contains(dn, "..") {
			d.Path = "/dev/" + dn
		}
	}
	hid, _ := readUevent(filepath.Join(node, "device", "uevent"))
	bus, vid, pid, ok := parseHIDID(hid["HID_ID"])
	if ok {
		d.VendorID, d.ProductID = vid, pid
	}
	d.Bus = busNames[bus]
	if d.Bus == "" {
		d.Bus = fmt.Sprintf("0x%04x", bus)
	}
	d.Product = hid["HID_NAME"]
	d.Serial = hid["HID_UNIQ"]

	// The USB parent: the hidraw node sits at
	// .../<usb device>/<interface>/<hid device>/hidraw/hidrawN.
	hidDir, err := filepath.EvalSymlinks(filepath.Join(node, "device"))
	if err != nil || bus != 0x03 {
		return d, true
	}
	ifDir := filepath.Dir(hidDir)
	usbDir := filepath.Dir(ifDir)
	vidS, err1 := readString(filepath.Join(usbDir, "idVendor"))
	pidS, err2 := readString(filepath.Join(usbDir, "idProduct"))
	if err1 != nil || err2 != nil {
		return d, true // usbhid without a USB parent in this tree: keep the uevent's view
	}
	if v, err := strconv.ParseUint(vidS, 16, 16); err == nil {
		d.VendorID = uint16(v)
	}
	if p, err := strconv.ParseUint(pidS, 16, 16); err == nil {
		d.ProductID = uint16(p)
	}
	d.Manufacturer, _ = readString(filepath.Join(usbDir, "manufacturer"))
	if p, err := readString(filepath.Join(usbDir, "product")); err == nil {
		d.Product = p
	}
	if s, err := readString(filepath.Join(usbDir, "serial")); err == nil {
		d.Serial = s
	} else {
		d.Serial = ""
	}
	busNum, e1 := readInt(filepath.Join(usbDir, "busnum"), 10)
	devNum, e2 := readInt(filepath.Join(usbDir, "devnum"), 10)
	iface, e3 := readInt(filepath.Join(ifDir, "bInterfaceNumber"), 16)
	if e1 == nil && e2 == nil && e3 == nil {
		d.USB = &USBLocation{BusNum: busNum, DevNum: devNum, Interface: iface, Name: filepath.Base(ifDir)}
	}
	return d, true
}

// ReportDescriptor reads the report descriptor of the hidraw node name
// (hidrawN) from sysfs, for drivers that cannot ask the device (hw/usbhid).
func ReportDescriptor(sysRoot, name string) ([]byte, error) {
	if sysRoot == "" {
		sysRoot = DefaultSysRoot
	}
	if strings.ContainsAny(name, "/") || name == ".." {
		return nil, fmt.Errorf("hidraw: bad node name %q", name)
	}
	return readAttr(filepath.Join(sysRoot, "class", "hidraw", name, "device", "report_descriptor"), MaxDescriptorSize+1)
}

// parseHIDID reads a uevent HID_ID, "BBBB:VVVVVVVV:PPPPPPPP" in hex.
func parseHIDID(s string) (bus, vid, pid uint16, ok bool) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0, 0, 0, false
	}
	b, e1 := strconv.ParseUint(parts[0], 16, 16)
	v, e2 := strconv.ParseUint(parts[1], 16, 32)
	p, e3 := strconv.ParseUint(parts[2], 16, 32)
	if e1 != nil || e2 != nil || e3 != nil || v > 0xffff || p > 0xffff {
		return 0, 0, 0, false
	}
	return uint16(b), uint16(v), uint16(p), true
}

// readAttr reads at most limit bytes of a sysfs file.
func readAttr(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) >= limit {
		return nil, fmt.Errorf("hidraw: %s: longer than %d bytes", path, limit-1)
	}
	return b, nil
}

// readString reads a one-line sysfs attribute, without the newline, keeping
// only printable characters.
func readString(path string) (string, error) {
	b, err := readAttr(path, maxAttrSize)
	if err != nil {
		return "", err
	}
	return clean(string(bytes.TrimRight(b, "\n"))), nil
}

func readInt(path string, base int) (int, error) {
	s, err := readString(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(s), base, 16)
	return int(n), err
}

// readUevent parses a uevent file: KEY=value lines.
func readUevent(path string) (map[string]string, error) {
	b, err := readAttr(path, maxAttrSize)
	if err != nil {
		return nil, err
	}
	m := make(map[string]string)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok {
			m[k] = clean(v)
		}
	}
	return m, nil
}

// clean drops control characters and invalid UTF-8 from a string a device
// chose, so that it can go into logs and JSON as it is.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, ""))
}
