package hidraw

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestEnumerate(t *testing.T) {
	got, err := Enumerate("testdata/sys")
	if err != nil {
		t.Fatal(err)
	}
	want := []Device{
		// hidraw0 (the YubiKey's OTP keyboard) and hidraw4 (truncated
		// descriptor) are not FIDO interfaces.
		{Path: "/dev/hidraw1", VendorID: 0x1050, ProductID: 0x0407, Manufacturer: "Yubico", Product: "YubiKey OTP+FIDO+CCID", Bus: "usb",
			USB: &USBLocation{BusNum: 1, DevNum: 7, Interface: 1, Name: "1-2:1.1"}},
		{Path: "/dev/hidraw2", VendorID: 0x0483, ProductID: 0xa2ca, Manufacturer: "SoloKeys", Product: "Solo 4.1.5", Serial: "2061368A4E4B", Bus: "usb",
			USB: &USBLocation{BusNum: 1, DevNum: 9, Interface: 0, Name: "1-3:1.0"}},
		{Path: "/dev/hidraw3", VendorID: 0x20a0, ProductID: 0x42b2, Manufacturer: "Nitrokey", Product: "Nitrokey 3", Serial: "9E3F1E2D", Bus: "usb",
			USB: &USBLocation{BusNum: 2, DevNum: 3, Interface: 1, Name: "2-1:1.1"}},
		// uhid: no USB parent; HID_NAME and HID_UNIQ stand in.
		{Path: "/dev/hidraw5", VendorID: 0x1209, ProductID: 0x0001, Product: "mfad software key", Serial: "mfad-emu-0001", Bus: "usb"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d devices, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("device %d:\n got %+v %+v\nwant %+v %+v", i, got[i], got[i].USB, want[i], want[i].USB)
		}
	}
}

func TestEnumerateMissingClass(t *testing.T) {
	devs, err := Enumerate(t.TempDir())
	if err != nil || devs != nil {
		t.Fatalf("Enumerate(empty) = %v, %v; want nothing", devs, err)
	}
}

func TestEnumerateHostileStrings(t *testing.T) {
	root := copyTree(t, "testdata/sys")
	usb := filepath.Join(root, "devices/pci0000:00/0000:00:14.0/usb1/1-3")
	write(t, filepath.Join(usb, "product"), "Solo\x1b[31m\x00\xff red\n")
	write(t, filepath.Join(usb, "idVendor"), "zzzz\n")
	write(t, filepath.Join(usb, "serial"), string(make([]byte, maxAttrSize+10)))
	devs, err := Enumerate(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if d.Path != "/dev/hidraw2" {
			continue
		}
		if d.Product != "Solo[31m red" {
			t.Errorf("product %q: control characters kept", d.Product)
		}
		if d.VendorID != 0x0483 {
			t.Errorf("vendor %04x: want the uevent's 0483 when idVendor is garbage", d.VendorID)
		}
		if d.Serial != "" {
			t.Errorf("oversized serial kept (%d bytes)", len(d.Serial))
		}
		return
	}
	t.Fatal("hidraw2 not found")
}

func TestParseHIDID(t *testing.T) {
	tests := []struct {
		in            string
		bus, vid, pid uint16
		ok            bool
	}{
		{"0003:00001050:00000407", 3, 0x1050, 0x0407, true},
		{"0005:0000046D:0000B019", 5, 0x046d, 0xb019, true},
		{"0003:00011050:00000407", 0, 0, 0, false},
		{"0003:1050", 0, 0, 0, false},
		{"", 0, 0, 0, false},
		{"x:y:z", 0, 0, 0, false},
	}
	for _, tc := range tests {
		bus, vid, pid, ok := parseHIDID(tc.in)
		if bus != tc.bus || vid != tc.vid || pid != tc.pid || ok != tc.ok {
			t.Errorf("parseHIDID(%q) = %x %x %x %v", tc.in, bus, vid, pid, ok)
		}
	}
}

func TestReportDescriptor(t *testing.T) {
	d, err := ReportDescriptor("testdata/sys", "hidraw1")
	if err != nil || !IsFIDO(d) {
		t.Fatalf("ReportDescriptor(hidraw1) = %x, %v", d, err)
	}
	if _, err := ReportDescriptor("testdata/sys", "../hidraw1"); err == nil {
		t.Fatal("a path in the name was accepted")
	}
}

// copyTree copies a directory tree, symlinks included, into a temporary
// directory and returns the copy's root.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "sys")
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		switch {
		case d.Type()&os.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, target)
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, 0o644)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
