// Package uhid exposes a device-side ctaphid.Conn to the kernel as a HID
// device through /dev/uhid (Documentation/hid/uhid.rst), so that a software
// authenticator appears as /dev/hidrawN to every program on the machine:
// mfad's hw/hidraw driver, libfido2, browsers.
//
// It owns the uhid event encoding (UHID_CREATE2 with the FIDO report
// descriptor, UHID_INPUT2, UHID_OUTPUT, UHID_GET_REPORT and UHID_SET_REPORT
// answered with EIO, UHID_DESTROY) and a Device that pumps UHID_OUTPUT
// reports to its reader and its writer's reports to UHID_INPUT2, paced like
// a full-speed USB endpoint's (ctaphid.Pacer), because the kernel drops
// input reports a hidraw reader has not taken, 64 behind.
//
// The device is created on bus USB (BUS_USB), because libfido2 ignores HID
// devices on other buses; it has no USB parent in sysfs, so programs that
// read the manufacturer and product strings from a USB parent (libfido2's
// fido2-token -L) show none. Use hw/emu/gadget for a whole USB device.
//
// Imports: golang.org/x/sys/unix, hw/ctaphid and the standard library only.
package uhid
