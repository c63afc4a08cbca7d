package usbhid

import (
	"testing"

	"github.com/karalabe/hid"

	"github.com/mfad/mfad/hw/hidraw"
)

func TestParsePath(t *testing.T) {
	tests := []struct {
		in               string
		bus, addr, iface int
		ok               bool
	}{
		{"0001:0002:00", 1, 2, 0, true},
		{"0003:000a:01", 3, 10, 1, true},
		{"0001:0002", 0, 0, 0, false},
		{"/dev/hidraw0", 0, 0, 0, false},
		{"0001::00", 0, 0, 0, false},
		{"zz:01:00", 0, 0, 0, false},
		{"10000:01:00", 0, 0, 0, false},
	}
	for _, tc := range tests {
		b, a, i, ok := ParsePath(tc.in)
		if b != tc.bus || a != tc.addr || i != tc.iface || ok != tc.ok {
			t.Errorf("ParsePath(%q) = %d %d %d %v", tc.in, b, a, i, ok)
		}
	}
}

// The YubiKey's keyboard interface (usage page 0 from libusb) is left out,
// its FIDO interface kept, by the sysfs descriptors of hw/hidraw's fake tree.
func TestMatch(t *testing.T) {
	fidos, err := hidraw.Enumerate("../hidraw/testdata/sys")
	if err != nil {
		t.Fatal(err)
	}
	infos := []hid.DeviceInfo{
		{Path: "1-2:1.0", VendorID: 0x1050, ProductID: 0x0407, Interface: 0},
		{Path: "1-2:1.1", VendorID: 0x1050, ProductID: 0x0407, Interface: 1},
		{Path: "0001:0009:00", VendorID: 0x0483, ProductID: 0xa2ca},
		{Path: "0001:000b:00", VendorID: 0x1209, ProductID: 0xbeef}, // truncated descriptor in sysfs
		{Path: "0002:0005:00", VendorID: 0x1234},                    // not in sysfs
		{Path: "DevSrvsID:4294971234", UsagePage: 0xf1d0, Usage: 1}, // macOS
	}
	got := match(infos, fidos)
	want := []string{"1-2:1.1", "0001:0009:00", "DevSrvsID:4294971234"}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i, w := range want {
		if got[i].Info.Path != w {
			t.Errorf("device %d = %s, want %s", i, got[i].Info.Path, w)
		}
	}
	if got[0].Hidraw.Path != "/dev/hidraw1" || got[1].Hidraw.Serial != "2061368A4E4B" {
		t.Errorf("hidraw pairing: %+v %+v", got[0].Hidraw, got[1].Hidraw)
	}
}
