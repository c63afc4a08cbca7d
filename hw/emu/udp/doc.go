// Package udp carries a device-side ctaphid.Conn over UDP, one 64-byte HID
// report per datagram, in the convention of the open-source FIDO2
// simulators and their test suites: the device listens on a UDP address
// (127.0.0.1:8111 by default), and every report it sends goes to the
// source address of the last datagram it received, so that a suite bound
// to its own port (the simulators' clients use 127.0.0.1:7112) gets the
// answers. Suites written for those simulators then drive mfad's software
// key without a kernel, root or /dev/uhid.
//
// It owns the socket, the reader that turns datagrams into reports, and the
// plug state: while unplugged, datagrams are read and dropped (a device that
// is not there answers nothing) and no report is sent. A datagram that is
// not exactly 64 bytes is dropped and counted; it never reaches the CTAPHID
// server and never makes the port panic.
//
// Imports: hw/ctaphid and the standard library only.
package udp
