package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/hw/ctap2"
	"github.com/mfad/mfad/hw/ctaphid"
	"github.com/mfad/mfad/hw/fidokey"
	"github.com/mfad/mfad/hw/hidraw"
	"github.com/mfad/mfad/hw/libfido2"
	"github.com/mfad/mfad/hw/usbhid"
)

// keyDriver is one connected key, whatever reaches it: the native stack
// (hw/fidokey over hidraw, karalabe/hid or an in-process software key) or
// libfido2.
type keyDriver interface {
	Info() *ctap2.GetInfoResponse
	Device() fidokey.DeviceInfo
	MakeCredential(ctx context.Context, p authn.MakeCredentialParams) (*ctap2.MakeCredentialResponse, error)
	GetAssertion(ctx context.Context, p authn.GetAssertionParams) ([]*ctap2.GetAssertionResponse, error)
	PINRetries(ctx context.Context) (int, error)
	SetPIN(ctx context.Context, pin string) error
	ChangePIN(ctx context.Context, current, pin string) error
	Reset(ctx context.Context) error
	Wink(ctx context.Context) error
	Close() error
}

// nativeKey is the native stack.
type nativeKey struct{ k *fidokey.Key }

func (n nativeKey) Info() *ctap2.GetInfoResponse { return n.k.Info() }
func (n nativeKey) Device() fidokey.DeviceInfo   { return n.k.Device() }
func (n nativeKey) Close() error                 { return n.k.Close() }
func (n nativeKey) Wink(ctx context.Context) error {
	return n.k.Wink(ctx)
}
func (n nativeKey) SetPIN(ctx context.Context, pin string) error { return n.k.SetPIN(ctx, pin) }
func (n nativeKey) ChangePIN(ctx context.Context, cur, pin string) error {
	return n.k.ChangePIN(ctx, cur, pin)
}
func (n nativeKey) Reset(ctx context.Context) error { return n.k.Reset(ctx, nil) }
func (n nativeKey) PINRetries(ctx context.Context) (int, error) {
	r, _, err := n.k.PINRetries(ctx)
	return r, err
}

func (n nativeKey) MakeCredential(ctx context.Context, p authn.MakeCredentialParams) (*ctap2.MakeCredentialResponse, error) {
	return n.k.MakeCredential(ctx, fidokey.MakeCredentialParams{ClientDataHash: p.ClientDataHash, RP: p.RP, User: p.User,
		ExcludeList: p.ExcludeList, UV: p.UV, PIN: p.PIN, OnKeepalive: p.OnKeepalive})
}

func (n nativeKey) GetAssertion(ctx context.Context, p authn.GetAssertionParams) ([]*ctap2.GetAssertionResponse, error) {
	return n.k.GetAssertion(ctx, fidokey.GetAssertionParams{RPID: p.RPID, ClientDataHash: p.ClientDataHash, AllowList: p.AllowList,
		UP: true, UV: p.UV, PIN: p.PIN, OnKeepalive: p.OnKeepalive})
}

// fido2Key is a key driven through libfido2.
type fido2Key struct {
	d    *libfido2.Device
	info *ctap2.GetInfoResponse
	dev  fidokey.DeviceInfo
}

func (f *fido2Key) Info() *ctap2.GetInfoResponse { return f.info }
func (f *fido2Key) Device() fidokey.DeviceInfo   { return f.dev }
func (f *fido2Key) Close() error                 { return nil }
func (f *fido2Key) Wink(context.Context) error {
	return errors.New("the libfido2 driver cannot wink (use driver = \"native\")")
}
func (f *fido2Key) SetPIN(ctx context.Context, pin string) error { return f.d.SetPIN(ctx, pin) }
func (f *fido2Key) ChangePIN(ctx context.Context, cur, pin string) error {
	return f.d.ChangePIN(ctx, cur, pin)
}
func (f *fido2Key) Reset(ctx context.Context) error             { return f.d.Reset(ctx) }
func (f *fido2Key) PINRetries(ctx context.Context) (int, error) { return f.d.PINRetries(ctx) }

func (f *fido2Key) MakeCredential(ctx context.Context, p authn.MakeCredentialParams) (*ctap2.MakeCredentialResponse, error) {
	// go-libfido2 takes no exclude list: with this driver the same key can
	// be registered twice on an account (docs/hardware.md says so).
	return f.d.MakeCredential(ctx, libfido2.MakeCredentialParams{ClientDataHash: p.ClientDataHash, RP: p.RP, User: p.User, UV: p.UV, PIN: p.PIN})
}

func (f *fido2Key) GetAssertion(ctx context.Context, p authn.GetAssertionParams) ([]*ctap2.GetAssertionResponse, error) {
	r, err := f.d.GetAssertion(ctx, libfido2.GetAssertionParams{RPID: p.RPID, ClientDataHash: p.ClientDataHash, AllowList: p.AllowList, UP: true, UV: p.UV, PIN: p.PIN})
	if err != nil {
		return nil, err
	}
	return []*ctap2.GetAssertionResponse{r}, nil
}

// Drivers for hardware keys.
const (
	DriverNative   = "native"   // hidraw + mfad's own CTAPHID/CTAP2 stack
	DriverLibfido2 = "libfido2" // the system libfido2
	DriverUSBHID   = "usbhid"   // karalabe/hid (libusb on Linux) + mfad's stack
	DriverNone     = "none"     // no hardware keys (software keys only)
)

func keyID(driver string, d hidraw.Device) string {
	base := filepath.Base(d.Path)
	switch {
	case driver == DriverNative:
		return base
	case driver == DriverUSBHID && d.USB != nil:
		// libusb detaches the kernel driver: the hidraw node comes and
		// goes while the key stays; the USB interface names it.
		return "usb:" + d.USB.Name
	}
	return driver + ":" + base
}

// stillPlugged reports whether d's USB interface is still in sysfs: with
// the usbhid driver a hidraw node vanishes when libusb detaches the kernel
// driver, which is not an unplug.
func stillPlugged(sysRoot string, d hidraw.Device) bool {
	if d.USB == nil {
		return false
	}
	_, err := os.Stat(filepath.Join(sysRoot, "bus", "usb", "devices", d.USB.Name))
	return err == nil
}

func devInfo(d hidraw.Device) fidokey.DeviceInfo {
	return fidokey.DeviceInfo{Path: d.Path, VendorID: d.VendorID, ProductID: d.ProductID,
		Manufacturer: d.Manufacturer, Product: d.Product, Serial: d.Serial}
}

// openHardware opens d through driver.
func (r *keyRing) openHardware(driver, sysRoot string, d hidraw.Device) error {
	id := keyID(driver, d)
	ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
	defer cancel()
	switch driver {
	case DriverNative, DriverUSBHID:
		var conn ctaphid.Conn
		transport := "hidraw"
		if driver == DriverNative {
			c, err := hidraw.Open(d.Path)
			if err != nil {
				return err
			}
			conn = c
		} else {
			ud, err := usbhid.Find(sysRoot, d)
			if err != nil {
				return err
			}
			c, err := usbhid.Open(ud)
			if err != nil {
				return err
			}
			conn, transport = c, "usb (libusb)"
		}
		k, err := fidokey.Open(ctx, conn, devInfo(d))
		if err != nil {
			if c, ok := conn.(interface{ Close() error }); ok {
				c.Close()
			}
			return err
		}
		r.insert(&keyEntry{id: id, driver: driver, transport: transport, drv: nativeKey{k}, added: time.Now()})
	case DriverLibfido2:
		dev, err := libfido2.Open(d.Path)
		if err != nil {
			return err
		}
		info, err := dev.Info(ctx)
		if err != nil {
			return err
		}
		r.insert(&keyEntry{id: id, driver: driver, transport: "hidraw (libfido2)", drv: &fido2Key{d: dev, info: info, dev: devInfo(d)}, added: time.Now()})
	default:
		return fmt.Errorf("unknown driver %q", driver)
	}
	return nil
}

// watchHardware keeps the ring in step with the keys plugged in, from
// kernel uevents (hidraw.Watch, with its re-scan fallback).
func (r *keyRing) watchHardware(driver, sysRoot string) {
	events := make(chan hidraw.Event, 16)
	go func() {
		if err := hidraw.Watch(r.ctx, sysRoot, events); err != nil && r.ctx.Err() == nil {
			r.log.Error("hotplug watch stopped", "err", err)
		}
		close(events)
	}()
	devs, err := hidraw.Enumerate(sysRoot)
	if err != nil {
		r.log.Warn("cannot list hidraw devices", "err", err)
	}
	for _, d := range devs {
		if err := r.openHardware(driver, sysRoot, d); err != nil {
			r.log.Warn("security key not usable", "path", d.Path, "driver", driver, "err", err)
		}
	}
	for ev := range events {
		id := keyID(driver, ev.Device)
		if !ev.Added {
			if driver == DriverUSBHID && stillPlugged(sysRoot, ev.Device) {
				continue
			}
			r.remove(id)
			continue
		}
		r.mu.Lock()
		_, known := r.keys[id]
		r.mu.Unlock()
		if known {
			continue
		}
		if err := r.openHardware(driver, sysRoot, ev.Device); err != nil {
			r.log.Warn("security key not usable", "path", ev.Device.Path, "driver", driver, "err", err)
		}
	}
}

// removedError maps a key that went away to key_removed, at once.
func removedError(err error) error {
	if errors.Is(err, hidraw.ErrRemoved) || errors.Is(err, ctaphid.ErrClosed) {
		return &authn.Error{Class: authn.ClassConflict, Code: authn.CodeKeyRemoved, Detail: "the security key was unplugged", Err: err}
	}
	return err
}
