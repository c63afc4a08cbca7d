package gadget

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func fakeRoots(t *testing.T) (configfs, sys string) {
	t.Helper()
	root := t.TempDir()
	configfs = filepath.Join(root, "config")
	sys = filepath.Join(root, "sys")
	for _, d := range []string{configfs + "/usb_gadget", sys + "/class/udc/dummy_udc.1", sys + "/class/udc/dummy_udc.0"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return configfs, sys
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCreateBind(t *testing.T) {
	configfs, sys := fakeRoots(t)
	g, err := Create(Config{ConfigFS: configfs, SysRoot: sys, DevDir: "/dev", Serial: "0001"})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(configfs, "usb_gadget", "mfad")
	want := map[string]string{
		"idVendor":                                "0x1209\n",
		"idProduct":                               "0x0001\n",
		"bcdUSB":                                  "0x0200\n",
		"strings/0x409/manufacturer":              "mfad\n",
		"strings/0x409/product":                   "mfad software key\n",
		"strings/0x409/serialnumber":              "0001\n",
		"functions/hid.usb0/report_length":        "64\n",
		"functions/hid.usb0/protocol":             "0\n",
		"configs/c.1/MaxPower":                    "100\n",
		"functions/hid.usb0/report_desc":          string(fidoDescriptor),
		"configs/c.1/strings/0x409/configuration": "FIDO\n",
	}
	for f, v := range want {
		if got := read(t, filepath.Join(dir, f)); got != v {
			t.Errorf("%s = %q, want %q", f, got, v)
		}
	}
	if l, err := os.Readlink(filepath.Join(dir, "configs/c.1/hid.usb0")); err != nil || l != filepath.Join(dir, "functions/hid.usb0") {
		t.Errorf("function link %q, %v", l, err)
	}
	if err := g.Bind(); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(dir, "UDC")); got != "dummy_udc.0\n" || g.UDC() != "dummy_udc.0" {
		t.Errorf("UDC = %q (%q), want the first controller", got, g.UDC())
	}
	if err := g.Unbind(); err != nil || read(t, filepath.Join(dir, "UDC")) != "\n" || g.UDC() != "" {
		t.Errorf("Unbind: %v, UDC %q", err, read(t, filepath.Join(dir, "UDC")))
	}

	os.WriteFile(filepath.Join(dir, "functions/hid.usb0/dev"), []byte("245:3\n"), 0o644)
	if p, err := g.DevicePath(); err != nil || p != "/dev/hidg3" {
		t.Errorf("DevicePath = %q, %v", p, err)
	}
	for _, bad := range []string{"245\n", "245:x\n", "245:-1\n", "245:999\n"} {
		os.WriteFile(filepath.Join(dir, "functions/hid.usb0/dev"), []byte(bad), 0o644)
		if p, err := g.DevicePath(); err == nil {
			t.Errorf("dev %q gave %q", bad, p)
		}
	}
}

func TestBindNoUDC(t *testing.T) {
	configfs, _ := fakeRoots(t)
	g, err := Create(Config{ConfigFS: configfs, SysRoot: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Bind(); !errors.Is(err, ErrNoUDC) {
		t.Fatalf("err = %v", err)
	}
}

func TestCreateRefuses(t *testing.T) {
	configfs, _ := fakeRoots(t)
	if _, err := Create(Config{ConfigFS: configfs, Name: "../x"}); err == nil {
		t.Error("a name with a slash was accepted")
	}
	if _, err := Create(Config{ConfigFS: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "libcomposite") {
		t.Errorf("no usb_gadget directory: %v", err)
	}
	if _, err := Create(Config{ConfigFS: configfs, ReportDescriptor: bytes.Repeat([]byte{0}, 5000)}); err == nil {
		t.Error("oversized descriptor accepted")
	}
}
