//go:build !linux

package peercred

import "net"

// Get is not implemented off Linux: mfad fails closed there.
func Get(c *net.UnixConn) (Cred, error) { return Cred{}, ErrUnsupported }
