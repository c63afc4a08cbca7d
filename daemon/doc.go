// Package daemon wires mfad together and runs it: the configuration file
// and its defaults, the store, the domain service, the API server, socket
// activation and sd_notify (READY, STATUS, STOPPING, watchdog), logging to
// the journal or stderr, and a graceful stop.
//
// It may import everything below it: authn and its subpackages, hw, ipc.
package daemon
