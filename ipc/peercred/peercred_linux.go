package peercred

import (
	"encoding/binary"
	"fmt"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Get reads the peer credentials of a connected Unix socket.
func Get(c *net.UnixConn) (Cred, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return Cred{}, err
	}
	var cred Cred
	var opErr error
	err = raw.Control(func(fd uintptr) {
		uc, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil {
			opErr = fmt.Errorf("peercred: SO_PEERCRED: %w", err)
			return
		}
		cred = Cred{UID: uc.Uid, GID: uc.Gid, PID: uc.Pid}
		cred.Groups, opErr = peerGroups(int(fd))
	})
	if err != nil {
		return Cred{}, err
	}
	return cred, opErr
}

// peerGroups reads SO_PEERGROUPS with a raw getsockopt (x/sys's string
// helper would cut the list at the first zero byte, and gid 0 has three),
// growing the buffer when the kernel answers ERANGE with the size it needs.
func peerGroups(fd int) ([]uint32, error) {
	buf := make([]byte, 64*4)
	for range 3 {
		n := uint32(len(buf))
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		switch errno {
		case 0:
			return decodeGroups(buf[:n]), nil
		case unix.ERANGE:
			buf = make([]byte, max(int(n), 2*len(buf)))
		default:
			return nil, fmt.Errorf("peercred: SO_PEERGROUPS: %w", errno)
		}
	}
	return nil, fmt.Errorf("peercred: SO_PEERGROUPS: group list keeps growing")
}

func decodeGroups(b []byte) []uint32 {
	out := make([]uint32, 0, len(b)/4)
	for i := 0; i+4 <= len(b); i += 4 {
		out = append(out, binary.NativeEndian.Uint32(b[i:]))
	}
	return out
}
