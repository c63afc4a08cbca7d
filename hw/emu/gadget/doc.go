// Package gadget exposes a device-side ctaphid.Conn to a USB host as a whole
// USB device: a configfs HID gadget (libcomposite, function hid.usb0) bound to
// a USB device controller (UDC). On a machine with the dummy_hcd module the
// controller loops back to the same kernel, which enumerates the gadget like
// any USB key: usbhid binds it, /dev/hidrawN and /dev/bus/usb nodes appear
// with a USB parent carrying the manufacturer, product and serial strings,
// so libusb, karalabe/hid, libfido2 and browsers all see a real USB key. On
// a board with a device-mode port the same gadget is a USB key for another
// computer.
//
// It owns the configfs layout (Create: the gadget directory with its ids,
// strings, one configuration and the HID function with the FIDO report
// descriptor; Bind and Unbind, which are plug and unplug; Remove) and Conn,
// the ctaphid.Conn over /dev/hidgN: one 64-byte report per read and per
// write, no report-id byte in either direction. Writes that the host does
// not collect (no program holds the hidraw node open, so usbhid does not
// poll the IN endpoint) are dropped after WriteTimeout instead of blocking.
// Writes are paced like a full-speed endpoint's (ctaphid.Pacer), because
// dummy_hcd polls interrupt endpoints without their interval and the host's
// hidraw buffer drops input reports past 64 unread.
//
// Everything must be configured before the UDC is bound: the kernel refuses
// attribute changes afterwards (EBUSY).
//
// Imports: golang.org/x/sys/unix, hw/ctaphid and the standard library only.
package gadget
