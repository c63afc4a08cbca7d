package hidraw

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// noNetlinkForTest makes Watch use the re-scan fallback.
var noNetlinkForTest bool

// Watch reports FIDO devices plugged in and out under sysRoot (empty means
// /sys) until ctx ends, when it returns ctx's error. It first sends an Added
// event for every device already present, then follows the kernel's hidraw
// uevents (NETLINK_KOBJECT_UEVENT; no udevd needed), re-scanning sysfs on
// each one. Where netlink is unavailable it re-scans every RescanInterval.
// A removal carries the Device as it was last seen. Watch blocks while
// events is full.
func Watch(ctx context.Context, sysRoot string, events chan<- Event) error {
	s := &scanner{sysRoot: sysRoot, known: map[string]Device{}}
	fd, err := openUevents()
	if err != nil {
		if e := send(ctx, events, s.rescan(time.Now())); e != nil {
			return e
		}
		return pollWatch(ctx, s, events)
	}
	defer unix.Close(fd)
	// Listening before the first scan: nothing is missed in between.
	if err := send(ctx, events, s.rescan(time.Now())); err != nil {
		return err
	}

	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("hidraw: watch: eventfd: %w", err)
	}
	var (
		wakeMu     sync.Mutex // orders the callback's write with the closing of wake
		wakeClosed bool
	)
	stop := context.AfterFunc(ctx, func() {
		wakeMu.Lock()
		defer wakeMu.Unlock()
		if !wakeClosed {
			one := [8]byte{1}
			_, _ = unix.Write(wake, one[:])
		}
	})
	defer func() {
		stop()
		wakeMu.Lock()
		unix.Close(wake)
		wakeClosed = true
		wakeMu.Unlock()
	}()

	buf := make([]byte, 16<<10)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(wake), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, -1); err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("hidraw: watch: poll: %w", err)
		}
		if fds[0].Revents == 0 {
			continue
		}
		for {
			n, from, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				break
			}
			now := time.Now()
			if errors.Is(err, unix.ENOBUFS) {
				// Uevents were lost: the scan tells what changed.
				if err := send(ctx, events, s.rescan(now)); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return fmt.Errorf("hidraw: watch: receive: %w", err)
			}
			if sa, ok := from.(*unix.SockaddrNetlink); !ok || sa.Pid != 0 {
				continue // only the kernel's messages are trusted
			}
			u, ok := parseUevent(buf[:n])
			if !ok || u.Subsystem != "hidraw" {
				continue
			}
			var evs []Event
			if u.Action == "remove" && u.DevName != "" {
				if d, ok := s.known["/dev/"+u.DevName]; ok {
					delete(s.known, d.Path)
					evs = append(evs, Event{Added: false, Device: d, Time: now})
				}
			}
			if u.Action == "add" || u.Action == "remove" {
				evs = append(evs, s.rescan(now)...)
			}
			if err := send(ctx, events, evs); err != nil {
				return err
			}
		}
	}
}

// openUevents subscribes to the kernel's uevent multicast group.
func openUevents() (int, error) {
	if noNetlinkForTest {
		return -1, errors.New("hidraw: netlink disabled for a test")
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return -1, err
	}
	// A burst of uevents (a hub with many devices) must not overflow the
	// socket; SO_RCVBUFFORCE needs CAP_NET_ADMIN, SO_RCVBUF is the fallback.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 1<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}
