// Package usbhid is mfad's second transport for FIDO security keys, over
// github.com/karalabe/hid (hidapi on its libusb backend on Linux, the
// native HID APIs on macOS and Windows). It offers the same ctaphid.Conn
// as hw/hidraw, which stays the default on Linux; usbhid is the default
// where there is no hidraw, and opt-in on Linux.
//
// It owns discovery (Enumerate) and the Conn over a karalabe/hid device.
// Two facts of the Linux (libusb) backend shape it:
//
//   - libusb reports no HID usage page or usage (hid.DeviceInfo.UsagePage
//     is 0), so FIDO interfaces cannot be told from keyboards by what
//     karalabe/hid says. Enumerate therefore reads the report descriptors
//     from sysfs through hw/hidraw's parser, and opens the matching
//     karalabe/hid device by its USB interface: hidapi's libusb path is the
//     interface's sysfs name ("1-1:1.0": bus, port chain, configuration,
//     interface) in the karalabe/hid of go.mod, "bbbb:dddd:ii" (bus,
//     address, interface in hex) in older hidapi versions; both match.
//   - hidapi's libusb backend detaches the kernel's usbhid driver from the
//     interface while the device is open, and attaches it again on Close.
//     Meanwhile /dev/hidrawN is gone: browsers, libfido2 and mfad's hidraw
//     driver lose the key, and a hotplug watcher sees it removed and added
//     again. Hold a Conn only for the length of an operation.
//
// It needs cgo (karalabe/hid bundles libusb and hidapi; nothing to install).
// Without cgo, or on a platform karalabe/hid does not support, Enumerate
// and Open fail with ErrUnsupported.
//
// Imports: github.com/karalabe/hid, hw/ctaphid, hw/hidraw and the standard
// library only.
package usbhid
