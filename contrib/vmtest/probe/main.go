// Command probe runs inside the VM test's guest (contrib/vmtest): it is the
// software key's process (probe emulator ..., which is `mfad emulator`), and
// it drives the key through mfad's three drivers, printing the results as
// the serial-console lines run.sh reads:
//
//	VMTEST PASS name
//	VMTEST FAIL name: why
//	VMTEST METRIC name value
//
// Subcommands: emulator ARGS (mfad emulator), time NAME CMD [ARG...],
// list, info, drivers, hotplug --control SOCKET.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/karalabe/hid"

	"github.com/mfad/mfad/daemon/emulator"
	"github.com/mfad/mfad/hw/ctap2"
	"github.com/mfad/mfad/hw/fidokey"
	"github.com/mfad/mfad/hw/hidraw"
	"github.com/mfad/mfad/hw/libfido2"
	"github.com/mfad/mfad/hw/usbhid"
)

const (
	rpID      = "pam://vmtest"
	vendorID  = 0x1209
	productID = 0x0001
	rounds    = 10
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: probe emulator|time|list|info|drivers|hotplug|crosscheck ...")
		os.Exit(2)
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "emulator":
		os.Exit(emulator.Main(args))
	case "time":
		os.Exit(timeCmd(args))
	case "list":
		os.Exit(list())
	case "info":
		os.Exit(info())
	case "drivers":
		os.Exit(drivers())
	case "hotplug":
		os.Exit(hotplug(args))
	case "crosscheck":
		os.Exit(crosscheck(args))
	}
	fmt.Fprintln(os.Stderr, "probe: unknown command", os.Args[1])
	os.Exit(2)
}

func pass(name string) { fmt.Printf("VMTEST PASS %s\n", name) }
func fail(name string, f string, a ...any) {
	fmt.Printf("VMTEST FAIL %s: %s\n", name, fmt.Sprintf(f, a...))
}
func metric(name string, v float64, unit string) {
	fmt.Printf("VMTEST METRIC %s %.2f %s\n", name, v, unit)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// timeCmd runs a command and prints its wall time as a metric.
func timeCmd(args []string) int {
	if len(args) < 2 {
		return 2
	}
	start := time.Now()
	cmd := exec.Command(args[1], args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	metric(args[0], ms(time.Since(start)), "ms")
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		return 1
	}
	return 0
}

// findKey waits for the software key's hidraw node.
func findKey(timeout time.Duration) (hidraw.Device, error) {
	deadline := time.Now().Add(timeout)
	for {
		devs, err := hidraw.Enumerate("")
		if err != nil {
			return hidraw.Device{}, err
		}
		for _, d := range devs {
			if d.VendorID == vendorID && d.ProductID == productID {
				return d, nil
			}
		}
		if time.Now().After(deadline) {
			return hidraw.Device{}, fmt.Errorf("no %04x:%04x hidraw node after %v (found %d FIDO devices)", vendorID, productID, timeout, len(devs))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// list prints what hw/hidraw enumerates; it passes when the software key is
// there with its USB strings (gadget) or HID name (uhid).
func list() int {
	d, err := findKey(10 * time.Second)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Printf("%s vendor=%04x product=%04x manufacturer=%q product=%q serial=%q bus=%s usb=%+v\n",
		d.Path, d.VendorID, d.ProductID, d.Manufacturer, d.Product, d.Serial, d.Bus, d.USB)
	if d.Product != "mfad software key" || d.Bus != "usb" {
		return 1
	}
	return 0
}

func openNative(ctx context.Context, d hidraw.Device) (*fidokey.Key, error) {
	c, err := hidraw.Open(d.Path)
	if err != nil {
		return nil, err
	}
	k, err := fidokey.Open(ctx, c, fidokey.DeviceInfo{Path: d.Path, VendorID: d.VendorID, ProductID: d.ProductID,
		Manufacturer: d.Manufacturer, Product: d.Product, Serial: d.Serial})
	if err != nil {
		c.Close()
		return nil, err
	}
	return k, nil
}

// info reads GetInfo through hidraw and the native stack.
func info() int {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := findKey(10 * time.Second)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	k, err := openNative(ctx, d)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer k.Close()
	i := k.Info()
	fmt.Printf("aaguid=%x versions=%v\n", i.AAGUID, i.Versions)
	return 0
}

func clientDataHash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// drivers runs GetInfo, MakeCredential and GetAssertion through the native
// driver (hidraw), libfido2 and usbhid (karalabe/hid), compares their
// GetInfo, and times get-assertion.
func drivers() int {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	d, err := findKey(10 * time.Second)
	if err != nil {
		fail("native_getinfo", "%v", err)
		return 1
	}
	failed := false
	check := func(name string, err error) bool {
		if err != nil {
			fail(name, "%v", err)
			failed = true
			return false
		}
		pass(name)
		return true
	}

	// Native: hidraw + fidokey.
	k, err := openNative(ctx, d)
	if !check("native_getinfo", err) {
		return 1
	}
	nativeInfo := k.Info()
	mc, err := k.MakeCredential(ctx, fidokey.MakeCredentialParams{
		ClientDataHash: clientDataHash("make"), RP: ctap2.RPEntity{ID: rpID},
		User: ctap2.UserEntity{ID: []byte("vmtest-user"), Name: "vmtest"},
	})
	if !check("native_makecredential", err) {
		k.Close()
		return 1
	}
	ad, err := ctap2.ParseAuthData(mc.AuthData)
	if err != nil || ad.AttestedCredential == nil {
		fail("native_makecredential_authdata", "%v", err)
		k.Close()
		return 1
	}
	credID := ad.AttestedCredential.CredentialID
	pub, alg, err := ad.AttestedCredential.Key()
	if err != nil {
		fail("native_credential_key", "%v", err)
		k.Close()
		return 1
	}
	verify := func(r *ctap2.GetAssertionResponse, cdh []byte) error {
		return ctap2.VerifySignature(pub, alg, append(slices.Clone(r.AuthData), cdh...), r.Signature)
	}
	var held []time.Duration
	var nerr error
	for i := 0; i < rounds && nerr == nil; i++ {
		cdh := clientDataHash(fmt.Sprint("native", i))
		start := time.Now()
		var rs []*ctap2.GetAssertionResponse
		rs, nerr = k.GetAssertion(ctx, fidokey.GetAssertionParams{RPID: rpID, ClientDataHash: cdh, AllowList: [][]byte{credID}, UP: true})
		held = append(held, time.Since(start))
		if nerr == nil {
			nerr = verify(rs[0], cdh)
		}
	}
	k.Close()
	if check("native_getassertion", nerr) {
		metric("native_assert_held_ms", ms(median(held)), "ms")
	}
	// The same with a fresh open per assertion, as libfido2 does.
	var fresh []time.Duration
	nerr = nil
	for i := 0; i < rounds && nerr == nil; i++ {
		cdh := clientDataHash(fmt.Sprint("fresh", i))
		start := time.Now()
		var k2 *fidokey.Key
		if k2, nerr = openNative(ctx, d); nerr == nil {
			var rs []*ctap2.GetAssertionResponse
			rs, nerr = k2.GetAssertion(ctx, fidokey.GetAssertionParams{RPID: rpID, ClientDataHash: cdh, AllowList: [][]byte{credID}, UP: true})
			k2.Close()
			if nerr == nil {
				nerr = verify(rs[0], cdh)
			}
		}
		fresh = append(fresh, time.Since(start))
	}
	if check("native_getassertion_open_each", nerr) {
		metric("native_assert_open_each_ms", ms(median(fresh)), "ms")
	}

	// libfido2.
	lf, err := libfido2.Open(d.Path)
	var lfInfo *ctap2.GetInfoResponse
	if err == nil {
		lfInfo, err = lf.Info(ctx)
	}
	if check("libfido2_getinfo", err) {
		if devs, err := libfido2.List(); err != nil || !slices.ContainsFunc(devs, func(x hidraw.Device) bool { return x.Path == d.Path }) {
			fail("libfido2_list", "%v %+v", err, devs)
			failed = true
		} else {
			pass("libfido2_list")
		}
		var lat []time.Duration
		var lerr error
		for i := 0; i < rounds && lerr == nil; i++ {
			cdh := clientDataHash(fmt.Sprint("libfido2", i))
			start := time.Now()
			var r *ctap2.GetAssertionResponse
			r, lerr = lf.GetAssertion(ctx, libfido2.GetAssertionParams{RPID: rpID, ClientDataHash: cdh, AllowList: [][]byte{credID}, UP: true})
			lat = append(lat, time.Since(start))
			if lerr == nil {
				lerr = verify(r, cdh)
			}
		}
		if check("libfido2_getassertion", lerr) {
			metric("libfido2_assert_ms", ms(median(lat)), "ms")
			metric("native_over_libfido2_open_each_ratio", ms(median(fresh))/ms(median(lat)), "x")
		}
		cdh := clientDataHash("libfido2-make")
		att, err := lf.MakeCredential(ctx, libfido2.MakeCredentialParams{ClientDataHash: cdh, RP: ctap2.RPEntity{ID: rpID},
			User: ctap2.UserEntity{ID: []byte("vmtest-user2"), Name: "vmtest2"}})
		if err == nil {
			err = verifyPacked(att, cdh)
		}
		check("libfido2_makecredential_rebuilt", err)
	}

	// usbhid (karalabe/hid): detaches usbhid while open, so last.
	var ukInfo *ctap2.GetInfoResponse
	ud, err := usbhid.Find("", d)
	if err == nil {
		var uc *usbhid.Conn
		if uc, err = usbhid.Open(ud); err == nil {
			var uk *fidokey.Key
			if uk, err = fidokey.Open(ctx, uc, fidokey.DeviceInfo{Path: ud.Info.Path}); err == nil {
				ukInfo = uk.Info()
				cdh := clientDataHash("usbhid")
				var rs []*ctap2.GetAssertionResponse
				start := time.Now()
				rs, err = uk.GetAssertion(ctx, fidokey.GetAssertionParams{RPID: rpID, ClientDataHash: cdh, AllowList: [][]byte{credID}, UP: true})
				if err == nil {
					metric("usbhid_assert_ms", ms(time.Since(start)), "ms")
					err = verify(rs[0], cdh)
				}
				uk.Close()
			} else {
				uc.Close()
			}
		}
	}
	if !check("usbhid_getinfo_getassertion", err) {
		ukInfo = nil
		infos, herr := hid.Enumerate(0, 0)
		fmt.Printf("karalabe/hid sees %d devices (err %v):\n", len(infos), herr)
		for _, i := range infos {
			fmt.Printf("  path=%s id=%04x:%04x iface=%d usage=%04x:%04x\n", i.Path, i.VendorID, i.ProductID, i.Interface, i.UsagePage, i.Usage)
		}
		bus, _ := os.ReadDir("/dev/bus/usb")
		fmt.Printf("/dev/bus/usb: %v; hidraw says %+v %+v\n", bus, d, d.USB)
	}
	// The kernel driver comes back after usbhid's Close.
	if _, err := findKey(10 * time.Second); err != nil {
		fail("usbhid_reattach", "%v", err)
		failed = true
	} else {
		pass("usbhid_reattach")
	}

	// GetInfo across the three drivers.
	agree := func(name string, a, b *ctap2.GetInfoResponse) {
		switch {
		case a == nil || b == nil:
			fail(name, "missing GetInfo")
			failed = true
		case !bytes.Equal(a.AAGUID, b.AAGUID):
			fail(name, "AAGUID %x vs %x", a.AAGUID, b.AAGUID)
			failed = true
		case !slices.Equal(a.Versions, b.Versions):
			fail(name, "versions %v vs %v", a.Versions, b.Versions)
			failed = true
		case !slices.Equal(a.PinUvAuthProtocols, b.PinUvAuthProtocols):
			fail(name, "PIN/UV protocols %v vs %v", a.PinUvAuthProtocols, b.PinUvAuthProtocols)
			failed = true
		default:
			pass(name)
		}
	}
	fmt.Printf("native GetInfo: aaguid=%s versions=%v\n", hex.EncodeToString(nativeInfo.AAGUID), nativeInfo.Versions)
	agree("getinfo_native_vs_libfido2", nativeInfo, lfInfo)
	agree("getinfo_native_vs_usbhid", nativeInfo, ukInfo)
	if failed {
		return 1
	}
	return 0
}

// verifyPacked checks a packed attestation: sig over authData||cdh with the
// leaf certificate's key.
func verifyPacked(r *ctap2.MakeCredentialResponse, cdh []byte) error {
	if r.Fmt != "packed" {
		return fmt.Errorf("format %q", r.Fmt)
	}
	st, err := ctap2.ParseAttestationStatement(r.AttStmt)
	if err != nil {
		return err
	}
	if len(st.X5C) == 0 {
		return errors.New("no x5c")
	}
	c, err := x509.ParseCertificate(st.X5C[0])
	if err != nil {
		return err
	}
	return ctap2.VerifySignature(c.PublicKey, st.Alg, append(slices.Clone(r.AuthData), cdh...), st.Sig)
}

// control sends one command to the emulator's control socket.
func control(sock, cmd string) error {
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintln(c, cmd)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.Contains(line, `"ok":true`) {
		return fmt.Errorf("%s: %s", cmd, strings.TrimSpace(line))
	}
	return nil
}

// hotplug unplugs and replugs the key through the emulator's control socket
// and times how hidraw.Watch sees it; a read waiting on the key must end
// with ErrRemoved at once.
func hotplug(args []string) int {
	fs := flag.NewFlagSet("hotplug", flag.ExitOnError)
	sock := fs.String("control", "", "emulator control socket")
	fs.Parse(args)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d, err := findKey(10 * time.Second)
	if err != nil {
		fail("hotplug_remove", "%v", err)
		return 1
	}
	events := make(chan hidraw.Event, 16)
	go hidraw.Watch(ctx, "", events)
	next := func(added bool, timeout time.Duration) (hidraw.Event, error) {
		t := time.After(timeout)
		for {
			select {
			case e := <-events:
				if e.Added == added && e.Device.VendorID == vendorID {
					return e, nil
				}
			case <-t:
				return hidraw.Event{}, fmt.Errorf("no event (added=%v) within %v", added, timeout)
			}
		}
	}
	if _, err := next(true, 5*time.Second); err != nil {
		fail("hotplug_initial", "%v", err)
		return 1
	}
	conn, err := hidraw.Open(d.Path)
	if err != nil {
		fail("hidraw_removed_read", "%v", err)
		return 1
	}
	defer conn.Close()
	readDone := make(chan error, 1)
	var readEnd time.Time
	go func() {
		_, err := conn.ReadReport(ctx) // nothing was asked: only the unplug ends it
		readEnd = time.Now()
		readDone <- err
	}()
	time.Sleep(100 * time.Millisecond)

	code := 0
	t0 := time.Now()
	if err := control(*sock, "unplug"); err != nil {
		fail("hotplug_remove", "%v", err)
		return 1
	}
	e, err := next(false, 10*time.Second)
	if err != nil {
		fail("hotplug_remove", "%v", err)
		code = 1
	} else {
		pass("hotplug_remove")
		metric("hotplug_remove_event_ms", ms(e.Time.Sub(t0)), "ms")
	}
	select {
	case err := <-readDone:
		if errors.Is(err, hidraw.ErrRemoved) {
			pass("hidraw_removed_read")
			metric("hidraw_removed_read_ms", ms(readEnd.Sub(t0)), "ms")
		} else {
			fail("hidraw_removed_read", "read ended with %v", err)
			code = 1
		}
	case <-time.After(5 * time.Second):
		fail("hidraw_removed_read", "read still waiting 5 s after the unplug")
		code = 1
	}
	t1 := time.Now()
	if err := control(*sock, "plug"); err != nil {
		fail("hotplug_add", "%v", err)
		return 1
	}
	if e, err := next(true, 15*time.Second); err != nil {
		fail("hotplug_add", "%v", err)
		code = 1
	} else {
		pass("hotplug_add")
		metric("hotplug_add_event_ms", ms(e.Time.Sub(t1)), "ms")
	}
	return code
}
