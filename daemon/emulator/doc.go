// Package emulator is `mfad emulator`: one software FIDO2 key (hw/emu) run
// as its own process and exposed to the kernel as a real device, through a
// configfs USB HID gadget (hw/emu/gadget: a whole USB device, on the dummy
// controller in tests) or through /dev/uhid (hw/emu/uhid: a HID device on
// bus USB, without USB strings). Programs on the machine, mfad's hidraw
// driver included, then reach it like any key. Or it is reached over UDP
// (hw/emu/udp: one 64-byte HID report per datagram, the convention of the
// open-source FIDO2 simulators, 127.0.0.1:8111 by default, answers to the
// sender's address), without a kernel device, root or uhid.
//
//	mfad emulator --gadget|--uhid|--udp [HOST:PORT] --state FILE
//	              [--presence auto|manual] [--control SOCKET]
//	              [--controller HOST:PORT|SOCKET]
//	              [--serial S] [--udc NAME] [--name NAME]
//	mfad emulator ctl --control SOCKET COMMAND [ARG...]
//
// The control socket (a Unix socket, mode 0600) takes one command per line
// and answers each with one JSON object, {"ok":true,...} or
// {"ok":false,"error":"..."}, like libfprint's virtual devices:
//
//	touch                     approve the presence test waiting (manual presence)
//	presence auto|manual      switch the presence mode
//	unplug, plug              unbind/bind the gadget, destroy/create the uhid device
//	fault KIND [status=N] [count=N] [interval=DURATION]
//	                          no_answer, ctap_error, corrupt_frames,
//	                          counter_rollback, slow_keepalive, clear
//	status                    plugged, transport, presence, counter, credentials
//	ca                        the attestation CA certificate (PEM)
//
// The controller (--controller, see [Controller]) answers the same touch,
// power and fault requests over HTTP, GET /usbN/touch/on|off,
// /usbN/power/on|off, /usbN/fault/KIND and /usbN/status, for unattended
// suites; it listens only on a loopback address or a Unix socket.
//
// Imports: hw/emu, hw/emu/gadget, hw/emu/uhid, hw/emu/udp, hw/ctaphid and
// the standard library (it sits under daemon, which may import everything).
package emulator
