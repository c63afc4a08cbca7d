package hidraw

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseUevent(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want uevent
		ok   bool
	}{
		{"add", "add@/devices/platform/dummy_hcd.0/usb1/1-1/1-1:1.0/0003:1209:0001.0001/hidraw/hidraw0\x00ACTION=add\x00DEVPATH=/devices/platform/dummy_hcd.0/usb1/1-1/1-1:1.0/0003:1209:0001.0001/hidraw/hidraw0\x00SUBSYSTEM=hidraw\x00MAJOR=244\x00MINOR=0\x00DEVNAME=hidraw0\x00SEQNUM=1234\x00",
			uevent{Action: "add", DevPath: "/devices/platform/dummy_hcd.0/usb1/1-1/1-1:1.0/0003:1209:0001.0001/hidraw/hidraw0", Subsystem: "hidraw", DevName: "hidraw0"}, true},
		{"remove", "remove@/devices/x/hidraw/hidraw3\x00ACTION=remove\x00DEVPATH=/devices/x/hidraw/hidraw3\x00SUBSYSTEM=hidraw\x00DEVNAME=hidraw3\x00",
			uevent{Action: "remove", DevPath: "/devices/x/hidraw/hidraw3", Subsystem: "hidraw", DevName: "hidraw3"}, true},
		{"udevd", "libudev\x00\xfe\xed\xca\xfe junk ACTION=add\x00SUBSYSTEM=hidraw\x00", uevent{}, false},
		{"no header", "ACTION=add\x00SUBSYSTEM=hidraw\x00", uevent{}, false},
		{"empty", "", uevent{}, false},
		{"no subsystem", "add@/x\x00ACTION=add\x00", uevent{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseUevent([]byte(tc.in))
			if ok != tc.ok || (ok && got != tc.want) {
				t.Fatalf("parseUevent = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func FuzzParseUevent(f *testing.F) {
	f.Add([]byte("add@/devices/x/hidraw/hidraw0\x00ACTION=add\x00SUBSYSTEM=hidraw\x00DEVNAME=hidraw0\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, ok := parseUevent(b)
		if ok && (u.Action == "" || u.Subsystem == "") {
			t.Fatalf("accepted %+v", u)
		}
	})
}

func TestRescan(t *testing.T) {
	root := copyTree(t, "testdata/sys")
	s := &scanner{sysRoot: root, known: map[string]Device{}}
	now := time.Now()
	evs := s.rescan(now)
	if len(evs) != 4 {
		t.Fatalf("first scan: %d events, want 4 additions: %+v", len(evs), evs)
	}
	for _, e := range evs {
		if !e.Added || !e.Time.Equal(now) {
			t.Fatalf("first scan event %+v", e)
		}
	}
	if evs := s.rescan(now); len(evs) != 0 {
		t.Fatalf("nothing changed, got %+v", evs)
	}
	// Unplug the SoloKey; replace the uhid key by another device on the same node.
	if err := os.Remove(filepath.Join(root, "class/hidraw/hidraw2")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(root, "devices/virtual/misc/uhid/0003:1209:0001.0006/uevent"),
		"HID_ID=0003:00001209:00000002\nHID_NAME=another key\nHID_UNIQ=\n")
	evs = s.rescan(now)
	want := []struct {
		added bool
		path  string
		pid   uint16
	}{{false, "/dev/hidraw2", 0xa2ca}, {false, "/dev/hidraw5", 1}, {true, "/dev/hidraw5", 2}}
	if len(evs) != len(want) {
		t.Fatalf("events %+v", evs)
	}
	for i, w := range want {
		if evs[i].Added != w.added || evs[i].Device.Path != w.path || evs[i].Device.ProductID != w.pid {
			t.Errorf("event %d = %+v, want %+v", i, evs[i], w)
		}
	}
}

// Watch with the re-scan fallback sees a device appear and go.
func TestWatchRescanFallback(t *testing.T) {
	noNetlinkForTest = true
	defer func() { noNetlinkForTest = false }()
	old := RescanInterval
	RescanInterval = 10 * time.Millisecond
	defer func() { RescanInterval = old }()

	root := copyTree(t, "testdata/sys")
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan Event)
	done := make(chan error, 1)
	go func() { done <- Watch(ctx, root, events) }()

	next := func() Event {
		t.Helper()
		select {
		case e := <-events:
			return e
		case <-time.After(5 * time.Second):
			t.Fatal("no event")
		}
		return Event{}
	}
	for i := 0; i < 4; i++ {
		if e := next(); !e.Added {
			t.Fatalf("initial event %+v", e)
		}
	}
	link := filepath.Join(root, "class/hidraw/hidraw1")
	target, _ := os.Readlink(link)
	os.Remove(link)
	if e := next(); e.Added || e.Device.Path != "/dev/hidraw1" || e.Device.Manufacturer != "Yubico" {
		t.Fatalf("removal event %+v", e)
	}
	os.Symlink(target, link)
	if e := next(); !e.Added || e.Device.Path != "/dev/hidraw1" {
		t.Fatalf("addition event %+v", e)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Watch returned %v", err)
	}
}

// Watch over netlink (where the sandbox allows it) delivers the initial
// scan and ends with its context.
func TestWatchNetlink(t *testing.T) {
	fd, err := openUevents()
	if err != nil {
		t.Skipf("no NETLINK_KOBJECT_UEVENT here: %v", err)
	}
	unix.Close(fd)
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan Event, 10)
	done := make(chan error, 1)
	go func() { done <- Watch(ctx, "testdata/sys", events) }()
	for i := 0; i < 4; i++ {
		select {
		case <-events:
		case <-time.After(5 * time.Second):
			t.Fatal("no initial event")
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Fatalf("Watch returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not end with its context")
	}
}
