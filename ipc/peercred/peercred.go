package peercred

import "errors"

// Cred is a peer's identity.
type Cred struct {
	UID    uint32
	GID    uint32
	PID    int32
	Groups []uint32 // supplementary groups
}

// ErrUnsupported is returned where the platform cannot tell.
var ErrUnsupported = errors.New("peercred: not supported on this platform or socket")
