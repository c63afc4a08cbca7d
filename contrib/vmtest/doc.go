// Package vmtest is the VM test of mfad's kernel paths: run.sh boots the
// current Debian kernel under QEMU (TCG) with an initramfs holding busybox,
// fido2-tools, the probe (./probe) and mfad, and init.sh, the guest's PID 1,
// runs the software key as a USB gadget on dummy_hcd and as a uhid device,
// and checks it through libfido2's tools and mfad's three drivers (hidraw,
// libfido2, usbhid), hotplug included. Results come back on the serial
// console as "VMTEST PASS|FAIL|METRIC" lines.
//
// The Go test here runs run.sh when MFAD_VMTEST=1 (it skips otherwise) and
// fails on a FAIL line, a missing expected line, a timeout or run.sh's
// failure.
//
// The probe imports the hw drivers, daemon/emulator and karalabe/hid; this
// package imports the standard library only.
package vmtest
