// Package hidraw is mfad's Linux driver for FIDO security keys: it finds
// them under /sys/class/hidraw, talks to them through /dev/hidraw*, and
// follows them being plugged in and out.
//
// It owns:
//
//   - a bounded HID report descriptor parser (ParseReportDescriptor, IsFIDO)
//     that reads the top-level collections of a descriptor (HID 1.11 §6.2.2:
//     short and long items, global and local state, Push/Pop), used to keep
//     the FIDO interfaces, usage page 0xF1D0 usage 0x01 (CTAP 2.2 §11.2.8.1).
//     hw/usbhid reuses it, because libusb reports no usage page on Linux;
//   - discovery (Enumerate): the vendor and product ids, the strings and the
//     serial number from the USB parent device in sysfs when there is one,
//     else from the HID device's uevent (HID_ID, HID_NAME, HID_UNIQ);
//   - the transport (Open, Conn): a ctaphid.Conn over one /dev/hidraw node,
//     opened O_RDWR|O_CLOEXEC, that writes each 64-byte report behind the
//     report-id byte 0, waits for input with poll(2) until the context ends,
//     and answers ErrRemoved at once when the device goes away (ENODEV, EIO,
//     POLLHUP) instead of letting a caller wait for its deadline;
//   - hotplug (Watch): kernel uevents over NETLINK_KOBJECT_UEVENT for the
//     hidraw subsystem, with a periodic re-scan where netlink is unavailable.
//
// Everything read from sysfs or a device is untrusted: a USB device may be
// malicious, so every length is bounded and nothing here panics on input.
//
// Imports: golang.org/x/sys/unix, hw/ctaphid and the standard library only.
package hidraw
