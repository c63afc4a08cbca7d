package emu

import (
	"context"
	"errors"
	"sync"

	"github.com/mfad/mfad/hw/ctaphid"
)

// ErrPlugged is returned by Plug when the key is already plugged in, and
// ErrClosed once the key is closed.
var (
	ErrPlugged = errors.New("emu: key already plugged in")
	ErrClosed  = errors.New("emu: key closed")
)

// Key is an Authenticator attached in-process: a ctaphid.Server serving it
// on the device end of a ctaphid.Pipe, whose host end a driver (hw/fidokey)
// uses like a hidraw device.
type Key struct {
	*Authenticator

	ctx context.Context
	srv *ctaphid.Server

	mu     sync.Mutex
	dev    *ctaphid.PipeConn
	stop   context.CancelFunc
	done   chan struct{}
	closed bool
}

// Attach creates an Authenticator from cfg and plugs it in: it starts
// ctaphid.Server.Serve on the device end of a new Pipe (until ctx ends or
// the key is unplugged or closed) and returns the host end. Close the Key
// to stop it.
func Attach(ctx context.Context, cfg Config) (*Key, ctaphid.Conn, error) {
	a, err := New(cfg)
	if err != nil {
		return nil, nil, err
	}
	k := &Key{
		Authenticator: a,
		ctx:           ctx,
		srv: &ctaphid.Server{
			Handler:      a,
			Capabilities: ctaphid.CapCBOR | ctaphid.CapWink,
			Major:        1,
		},
	}
	conn, err := k.Plug()
	if err != nil {
		return nil, nil, err
	}
	return k, conn, nil
}

// Plug plugs an unplugged key in again: power-up (the PIN soft lock ends,
// the Reset window starts) and a new Pipe, whose host end it returns.
func (k *Key) Plug() (ctaphid.Conn, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	switch {
	case k.closed:
		return nil, ErrClosed
	case k.dev != nil:
		return nil, ErrPlugged
	}
	if err := k.PowerCycle(); err != nil {
		return nil, err
	}
	host, dev := ctaphid.Pipe()
	ctx, stop := context.WithCancel(k.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = k.srv.Serve(ctx, dev) // ends with the pipe or ctx; nothing to report to
	}()
	k.dev, k.stop, k.done = dev, stop, done
	return host, nil
}

// Unplug closes the pipe (the host side's reads and writes fail with
// ctaphid.ErrClosed), cancels a running request and waits for the server
// to stop. Unplugging an unplugged key does nothing.
func (k *Key) Unplug() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.unplug()
}

func (k *Key) unplug() {
	if k.dev == nil {
		return
	}
	k.dev.Close()
	k.stop()
	<-k.done
	k.dev, k.stop, k.done = nil, nil, nil
}

// Plugged reports whether the key is plugged in.
func (k *Key) Plugged() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.dev != nil
}

// Close unplugs the key for good.
func (k *Key) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.unplug()
	k.closed = true
	return nil
}

// SetFault applies a fault (see Fault): no_answer, corrupt_frames and
// slow_keepalive through the CTAPHID server's fault hooks, the others in
// the authenticator. clear removes both kinds.
func (k *Key) SetFault(f Fault) error {
	hf := k.srv.Faults()
	switch f.Kind {
	case FaultNoAnswer:
		hf.NoAnswer = true
	case FaultCorruptFrames:
		hf.CorruptFrames = true
	case FaultSlowKeepalive:
		hf.KeepaliveInterval = f.Interval
		if hf.KeepaliveInterval <= 0 {
			hf.KeepaliveInterval = DefaultSlowKeepalive
		}
	case FaultClear:
		k.srv.SetFaults(ctaphid.Faults{})
		return k.Authenticator.SetFault(f)
	default:
		return k.Authenticator.SetFault(f)
	}
	k.srv.SetFaults(hf)
	return nil
}
