package emulator

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mfad/mfad/hw/ctaphid"
	"github.com/mfad/mfad/hw/emu"
	"github.com/mfad/mfad/hw/emu/udp"
)

// Port exposes the key to a host: Plug makes the device appear and returns
// the device-side Conn the CTAPHID server runs on, Unplug makes it go away
// (closing that Conn), Close releases everything.
type Port interface {
	Plug() (ctaphid.Conn, error)
	Unplug() error
	Close() error
	Name() string
}

// Emulator is one software key behind a Port.
type Emulator struct {
	auth *emu.Authenticator
	srv  *ctaphid.Server
	port Port
	log  *slog.Logger

	ctx context.Context

	mu           sync.Mutex
	presenceName string
	conn         ctaphid.Conn
	stop         context.CancelFunc
	done         chan struct{}
	closed       bool
}

// New makes an Emulator of the authenticator cfg describes, on port. It is
// not plugged in yet.
func New(ctx context.Context, cfg emu.Config, port Port, log *slog.Logger) (*Emulator, error) {
	a, err := emu.New(cfg)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Emulator{
		auth: a,
		srv: &ctaphid.Server{
			Handler:      a,
			Capabilities: ctaphid.CapCBOR | ctaphid.CapWink,
			Major:        1,
		},
		port:         port,
		log:          log,
		ctx:          ctx,
		presenceName: cfg.Presence.String(),
	}, nil
}

// Authenticator is the software key.
func (e *Emulator) Authenticator() *emu.Authenticator { return e.auth }

// Plug powers the key up and plugs it in. Plugging a plugged key does
// nothing.
func (e *Emulator) Plug() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.closed:
		return emu.ErrClosed
	case e.conn != nil:
		return nil
	}
	if err := e.auth.PowerCycle(); err != nil {
		return err
	}
	conn, err := e.port.Plug()
	if err != nil {
		return err
	}
	ctx, stop := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := e.srv.Serve(ctx, conn)
		if ctx.Err() == nil {
			e.log.Warn("CTAPHID server stopped", "err", err)
		}
	}()
	e.conn, e.stop, e.done = conn, stop, done
	e.log.Info("plugged in", "port", e.port.Name())
	return nil
}

// Unplug takes the key out. Unplugging an unplugged key does nothing.
func (e *Emulator) Unplug() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.unplug()
}

func (e *Emulator) unplug() error {
	if e.conn == nil {
		return nil
	}
	e.stop()
	err := e.port.Unplug()
	<-e.done
	e.conn, e.stop, e.done = nil, nil, nil
	e.log.Info("unplugged", "port", e.port.Name())
	return err
}

// Plugged reports whether the key is plugged in.
func (e *Emulator) Plugged() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.conn != nil
}

// Close unplugs the key and releases the port.
func (e *Emulator) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	return errors.Join(e.unplug(), e.port.Close())
}

// SetFault applies a fault: the CTAPHID ones to the server, the others to
// the authenticator (as emu.Key.SetFault does in-process).
func (e *Emulator) SetFault(f emu.Fault) error {
	hf := e.srv.Faults()
	switch f.Kind {
	case emu.FaultNoAnswer:
		hf.NoAnswer = true
	case emu.FaultCorruptFrames:
		hf.CorruptFrames = true
	case emu.FaultSlowKeepalive:
		hf.KeepaliveInterval = f.Interval
		if hf.KeepaliveInterval <= 0 {
			hf.KeepaliveInterval = emu.DefaultSlowKeepalive
		}
	case emu.FaultClear:
		e.srv.SetFaults(ctaphid.Faults{})
		return e.auth.SetFault(f)
	default:
		return e.auth.SetFault(f)
	}
	e.srv.SetFaults(hf)
	return nil
}

// Status is the answer to the status command.
type Status struct {
	Plugged             bool   `json:"plugged"`
	Transport           string `json:"transport"`
	Presence            string `json:"presence"`
	Counter             uint32 `json:"counter"`
	ResidentCredentials int    `json:"resident_credentials"`
	Winks               int    `json:"winks"`
	Cancellations       int    `json:"cancellations"`
	AAGUID              string `json:"aaguid"`
}

// reply is one control answer.
type reply struct {
	OK     bool    `json:"ok"`
	Error  string  `json:"error,omitempty"`
	Status *Status `json:"status,omitempty"`
	CAPEM  string  `json:"ca_pem,omitempty"`
}

// Control runs one control command line and returns its answer.
func (e *Emulator) Control(line string) reply {
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return reply{Error: "empty command"}
	}
	fail := func(err error) reply {
		if err != nil {
			return reply{Error: err.Error()}
		}
		return reply{OK: true}
	}
	switch cmd, args := fields[0], fields[1:]; cmd {
	case "touch":
		e.auth.Touch()
		return reply{OK: true}
	case "presence":
		if len(args) != 1 {
			return reply{Error: "usage: presence auto|manual"}
		}
		p, err := parsePresence(args[0])
		if err == nil {
			e.auth.SetPresence(p)
			e.mu.Lock()
			e.presenceName = p.String()
			e.mu.Unlock()
		}
		return fail(err)
	case "plug":
		return fail(e.Plug())
	case "unplug":
		return fail(e.Unplug())
	case "fault":
		f, err := parseFault(args)
		if err != nil {
			return fail(err)
		}
		return fail(e.SetFault(f))
	case "status":
		return reply{OK: true, Status: e.status()}
	case "ca":
		return reply{OK: true, CAPEM: string(e.auth.CACertificatePEM())}
	default:
		return reply{Error: fmt.Sprintf("unknown command %q (touch, presence, plug, unplug, fault, status, ca)", cmd)}
	}
}

func (e *Emulator) status() *Status {
	return &Status{
		Plugged:             e.Plugged(),
		Transport:           e.port.Name(),
		Presence:            e.presence(),
		Counter:             e.auth.Counter(),
		ResidentCredentials: e.auth.ResidentCredentials(),
		Winks:               e.auth.Winks(),
		Cancellations:       e.auth.Cancellations(),
		AAGUID:              emu.AAGUIDString,
	}
}

// presence is kept here because the Authenticator does not report it.
func (e *Emulator) presence() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.presenceName
}

func parsePresence(s string) (emu.Presence, error) {
	switch s {
	case "auto":
		return emu.PresenceAuto, nil
	case "manual":
		return emu.PresenceManual, nil
	}
	return 0, fmt.Errorf("presence %q: want auto or manual", s)
}

// parseFault reads "KIND [status=N] [count=N] [interval=DURATION]".
func parseFault(args []string) (emu.Fault, error) {
	if len(args) == 0 {
		return emu.Fault{}, errors.New("usage: fault KIND [status=N] [count=N] [interval=DURATION]")
	}
	f := emu.Fault{Kind: args[0]}
	switch f.Kind {
	case emu.FaultNoAnswer, emu.FaultCTAPError, emu.FaultCorruptFrames, emu.FaultCounterRollback,
		emu.FaultSlowKeepalive, emu.FaultClear:
	default:
		return f, fmt.Errorf("unknown fault %q", f.Kind)
	}
	for _, a := range args[1:] {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return f, fmt.Errorf("fault argument %q: want key=value", a)
		}
		switch k {
		case "status":
			n, err := strconv.ParseUint(v, 0, 8)
			if err != nil {
				return f, fmt.Errorf("fault status %q: %w", v, err)
			}
			f.Status = byte(n)
		case "count":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 1<<20 {
				return f, fmt.Errorf("fault count %q", v)
			}
			f.Count = n
		case "interval":
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 || d > time.Hour {
				return f, fmt.Errorf("fault interval %q", v)
			}
			f.Interval = d
		default:
			return f, fmt.Errorf("unknown fault argument %q", k)
		}
	}
	return f, nil
}

// maxLine bounds a control command.
const maxLine = 4096

// ServeControl answers control commands on l until ctx ends.
func (e *Emulator) ServeControl(ctx context.Context, l net.Listener) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("emulator: control: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			stopConn := context.AfterFunc(ctx, func() { c.Close() })
			defer stopConn()
			sc := bufio.NewScanner(c)
			sc.Buffer(make([]byte, 512), maxLine)
			enc := json.NewEncoder(c)
			for sc.Scan() {
				if err := enc.Encode(e.Control(sc.Text())); err != nil {
					return
				}
			}
		}()
	}
}

// ListenControl listens on a Unix socket at path (mode 0600), replacing a
// stale socket file but not another kind of file.
func ListenControl(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("emulator: %s exists and is not a socket", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("emulator: %s is in use", path)
		}
		os.Remove(path)
	}
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("emulator: control socket: %w", err)
	}
	return l, nil
}

// Main implements `mfad emulator ...` and returns the exit code.
func Main(args []string) int {
	if len(args) > 0 && args[0] == "ctl" {
		return ctl(args[1:], os.Stdout, os.Stderr)
	}
	fs := flag.NewFlagSet("mfad emulator", flag.ContinueOnError)
	useGadget := fs.Bool("gadget", false, "expose the key as a USB device (configfs HID gadget on a UDC)")
	useUHID := fs.Bool("uhid", false, "expose the key as a HID device through /dev/uhid")
	var udpAddr udpFlag
	fs.Var(&udpAddr, "udp", "expose the key over UDP, one 64-byte report per datagram (--udp alone: "+udp.DefaultAddr+")")
	controller := fs.String("controller", "", "HTTP touch/power controller on a loopback HOST:PORT or a Unix socket path")
	state := fs.String("state", "", "file keeping the key's state (created 0600)")
	presence := fs.String("presence", "auto", "auto (every test approved) or manual (wait for the touch command)")
	control := fs.String("control", "", "Unix socket for control commands (touch, plug, unplug, fault, status)")
	serial := fs.String("serial", "", "USB serial number / HID unique id")
	udc := fs.String("udc", "", "USB device controller for --gadget (default: the first in /sys/class/udc)")
	name := fs.String("name", "mfad", "configfs gadget name")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rest := fs.Args()
	if udpAddr.bare && len(rest) > 0 && strings.Contains(rest[0], ":") {
		// --udp HOST:PORT, the address as a separate argument
		udpAddr.addr, udpAddr.bare = rest[0], false
		if err := fs.Parse(rest[1:]); err != nil {
			return 2
		}
		rest = fs.Args()
	}
	transports := 0
	for _, on := range []bool{*useGadget, *useUHID, udpAddr.addr != ""} {
		if on {
			transports++
		}
	}
	if transports != 1 || *state == "" || len(rest) != 0 {
		fmt.Fprintln(os.Stderr, "usage: mfad emulator --gadget|--uhid|--udp [HOST:PORT] --state FILE [--presence auto|manual] [--control SOCKET] [--controller HOST:PORT|SOCKET]")
		return 2
	}
	pres, err := parsePresence(*presence)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mfad emulator:", err)
		return 2
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintln(os.Stderr, "mfad emulator:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	var port Port
	usbN := 0
	switch {
	case *useGadget:
		port, err = NewGadgetPort(GadgetOptions{Name: *name, Serial: *serial, UDC: *udc})
	case *useUHID:
		port = NewUHIDPort(*serial)
	default:
		if err := loopback(udpAddr.addr); err != nil {
			// Anyone who reaches the socket uses the key: keep it on this machine.
			fmt.Fprintf(os.Stderr, "mfad emulator: --udp %s: %v\n", udpAddr.addr, err)
			return 2
		}
		var up *udp.Port
		if up, err = udp.Listen(udpAddr.addr); err == nil {
			port, usbN = up, up.Addr().Port
			log.Info("listening for HID reports over UDP", "addr", up.Addr().String())
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mfad emulator:", err)
		return 1
	}
	e, err := New(ctx, emu.Config{Persister: emu.FilePersister(*state), Presence: pres}, port, log)
	if err != nil {
		port.Close()
		fmt.Fprintln(os.Stderr, "mfad emulator:", err)
		return 1
	}
	defer e.Close()
	if *control != "" {
		l, err := ListenControl(*control)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mfad emulator:", err)
			return 1
		}
		defer os.Remove(*control)
		go e.ServeControl(ctx, l)
	}
	if *controller != "" {
		l, err := ListenController(*controller)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mfad emulator:", err)
			return 1
		}
		if strings.HasPrefix(*controller, "/") {
			defer os.Remove(*controller)
		}
		log.Info("touch and power controller", "addr", l.Addr().String(), "path", fmt.Sprintf("/usb%d/", usbN))
		go e.ServeController(ctx, l, usbN)
	}
	if err := e.Plug(); err != nil {
		fmt.Fprintln(os.Stderr, "mfad emulator:", err)
		return 1
	}
	<-ctx.Done()
	return 0
}

// ctl sends one command to a running emulator and prints the answer.
func ctl(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mfad emulator ctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	control := fs.String("control", "", "the emulator's control socket")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *control == "" || fs.NArg() == 0 {
		fmt.Fprintln(stderr, "usage: mfad emulator ctl --control SOCKET COMMAND [ARG...]")
		return 2
	}
	c, err := net.DialTimeout("unix", *control, 5*time.Second)
	if err != nil {
		fmt.Fprintln(stderr, "mfad emulator ctl:", err)
		return 1
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintln(c, strings.Join(fs.Args(), " ")); err != nil {
		fmt.Fprintln(stderr, "mfad emulator ctl:", err)
		return 1
	}
	line, err := bufio.NewReader(io.LimitReader(c, 1<<20)).ReadBytes('\n')
	if err != nil {
		fmt.Fprintln(stderr, "mfad emulator ctl:", err)
		return 1
	}
	stdout.Write(line)
	var r reply
	if json.Unmarshal(line, &r) != nil || !r.OK {
		return 1
	}
	return 0
}

// udpFlag is --udp: alone it means udp.DefaultAddr, --udp=HOST:PORT (or
// --udp HOST:PORT, see Main) another address.
type udpFlag struct {
	addr string
	bare bool
}

func (f *udpFlag) String() string   { return f.addr }
func (f *udpFlag) IsBoolFlag() bool { return true }

func (f *udpFlag) Set(v string) error {
	switch v {
	case "true":
		f.addr, f.bare = udp.DefaultAddr, true
	case "false", "":
		f.addr, f.bare = "", false
	default:
		f.addr, f.bare = v, false
	}
	return nil
}
