package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	sddaemon "github.com/coreos/go-systemd/v22/daemon"
)

// listen returns the API listener: the socket systemd passed under name
// (FileDescriptorName=), else one mfad binds itself at path, in a
// directory no other user may write (socketDir). A path where a live mfad
// answers is refused; a stale socket is removed.
func listen(path, name string, log *slog.Logger) (net.Listener, bool, error) {
	if os.Getenv("LISTEN_FDS") != "" {
		named, err := activation.ListenersWithNames()
		if err != nil {
			return nil, false, fmt.Errorf("socket activation: %w", err)
		}
		if ls := named[name]; len(ls) > 0 && ls[0] != nil {
			for _, extra := range ls[1:] {
				extra.Close()
			}
			return ls[0], true, nil
		}
		var names []string
		for n, ls := range named {
			names = append(names, n)
			for _, l := range ls {
				if l != nil {
					l.Close()
				}
			}
		}
		log.Warn("systemd passed no socket with the expected name; listening myself", "want", name, "got", names)
	}
	// The directory first: in one another user may write, the stale
	// socket below, or the new one, could be swapped under mfad.
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, false, err
	}
	if err := socketDir(dir); err != nil {
		return nil, false, err
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, false, fmt.Errorf("%s exists and is not a socket; refusing to replace it", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, false, fmt.Errorf("another mfad is already serving on %s", path)
		}
		log.Info("removing stale socket", "path", path)
		if err := os.Remove(path); err != nil {
			return nil, false, err
		}
	}
	// Every request is authorized by peer uid, so every local user may
	// connect: the socket is made 0666 as it is bound.
	l, err := bindSocket(path)
	if err != nil {
		return nil, false, err
	}
	return l, false, nil
}

// sdNotify sends a state to systemd; outside systemd it does nothing.
func sdNotify(log *slog.Logger, state string) {
	if _, err := sddaemon.SdNotify(false, state); err != nil {
		log.Warn("sd_notify failed", "err", err)
	}
}

// watchdog pings systemd at half the WATCHDOG_USEC interval while healthy
// says so, until ctx ends.
func watchdog(ctx context.Context, log *slog.Logger, healthy func() error) {
	interval, err := sddaemon.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := healthy(); err != nil {
				log.Error("health check failed; withholding watchdog ping", "err", err)
				continue
			}
			sdNotify(log, sddaemon.SdNotifyWatchdog)
		}
	}
}
