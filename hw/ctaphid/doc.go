// Package ctaphid implements CTAPHID, the USB HID transport of FIDO CTAP 2.1/2.2
// (section 11.2, "USB Human Interface Device (USB HID)"), on both sides of the wire.
//
// It owns:
//
//   - the pure frame codec: [Frames] splits a message into 64-byte initialization and
//     continuation packets, and an [Assembler] rebuilds a [Message] from reports, checking
//     packet type, sequence numbers, channel and length (section 11.2.4);
//   - the host side: [Open] allocates a channel with CTAPHID_INIT, and a [Channel] runs
//     transactions (CBOR, MSG, PING, WINK, LOCK), passes KEEPALIVE to a callback, turns
//     CTAPHID_ERROR into a [*DeviceError], and sends CTAPHID_CANCEL when its context ends;
//   - the device side: a [Server] allocates channels, reassembles requests, runs a [Handler]
//     for CBOR and MSG while sending KEEPALIVE, honours CANCEL and LOCK, and answers
//     CTAPHID_ERROR to anything malformed; it carries the fault hooks the software
//     authenticator needs ([Faults]);
//   - [Pacer], which spaces the reports of a link without flow control (Linux uhid, a USB
//     gadget on dummy_hcd) the way a full-speed USB interrupt endpoint would;
//   - [Pipe], an in-memory pair of [Conn]s that attaches a device-side Server to a host-side
//     Channel at the HID report boundary, so tests run the same code as a real key.
//
// Reports are exchanged through the [Conn] interface, one 64-byte report per call without
// the report-id byte; the drivers (hw/hidraw, hw/usbhid, the emulator's uhid bridge) own the
// device handles. Input from the peer never panics: malformed frames are error values, and
// the Server answers them with the CTAPHID error code the specification names.
//
// This package imports only the Go standard library.
package ctaphid
