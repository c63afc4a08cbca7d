package udp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/mfad/mfad/hw/ctaphid"
)

// DefaultAddr is where the open-source FIDO2 simulators listen.
const DefaultAddr = "127.0.0.1:8111"

// queueDepth is how many reports wait for the CTAPHID server, like the
// hidraw driver's per-reader queue; a report arriving at a full queue
// waits in the socket's receive buffer until the server reads on.
const queueDepth = 64

// Port is a UDP socket that a key can be plugged into.
type Port struct {
	pc   *net.UDPConn
	done chan struct{} // closed when the reader ends

	mu   sync.Mutex
	cur  *Conn          // the plugged-in key's Conn; nil when unplugged
	peer netip.AddrPort // where reports are sent: the last sender

	dropped atomic.Uint64
	closed  atomic.Bool
}

// Listen binds a UDP socket on addr (host:port; port 0 picks one) and
// starts reading it. Nothing is plugged in yet.
func Listen(addr string) (*Port, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("udp: %w", err)
	}
	pc, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("udp: %w", err)
	}
	p := &Port{pc: pc, done: make(chan struct{})}
	go p.read()
	return p, nil
}

// Addr is the address the port listens on.
func (p *Port) Addr() *net.UDPAddr { return p.pc.LocalAddr().(*net.UDPAddr) }

// Dropped is how many datagrams were not 64 bytes long.
func (p *Port) Dropped() uint64 { return p.dropped.Load() }

func (p *Port) read() {
	defer close(p.done)
	buf := make([]byte, 64*1024)
	for {
		n, from, err := p.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if p.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. ICMP port unreachable surfaced on Linux; keep serving
		}
		p.Deliver(buf[:n], from)
	}
}

// Deliver handles one datagram from a peer: a 64-byte report goes to the
// plugged-in key (whose answers then go to from); anything else, or
// anything while unplugged, is dropped and changes nothing.
func (p *Port) Deliver(datagram []byte, from netip.AddrPort) {
	p.mu.Lock()
	c := p.cur
	if c != nil && len(datagram) == ctaphid.ReportSize {
		p.peer = from
	}
	p.mu.Unlock()
	if c == nil {
		return
	}
	if len(datagram) != ctaphid.ReportSize {
		p.dropped.Add(1)
		return
	}
	// A full queue waits for the key, as a USB host waits for the device
	// to poll: meanwhile datagrams wait in the socket's receive buffer. A
	// report dropped here would break a long message mid-sequence.
	r := append([]byte(nil), datagram...)
	select {
	case c.in <- r:
	case <-c.gone:
	}
}

// Plug plugs a key in and returns its device-side Conn. Reports read from
// it are the datagrams received from now on.
func (p *Port) Plug() (ctaphid.Conn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() {
		return nil, ctaphid.ErrClosed
	}
	if p.cur != nil {
		return p.cur, nil
	}
	p.cur = &Conn{p: p, in: make(chan []byte, queueDepth), gone: make(chan struct{})}
	return p.cur, nil
}

// Unplug takes the key out: its Conn's reads and writes fail with
// ctaphid.ErrClosed and datagrams are dropped until the next Plug.
func (p *Port) Unplug() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur != nil {
		close(p.cur.gone)
		p.cur = nil
	}
	return nil
}

// Close unplugs the key and closes the socket.
func (p *Port) Close() error {
	p.Unplug()
	if p.closed.Swap(true) {
		return nil
	}
	err := p.pc.Close()
	<-p.done
	return err
}

// Name is the transport's name in the emulator's status.
func (p *Port) Name() string { return "udp" }

// Conn is the device side of a plugged-in key: ReadReport returns the
// reports received, WriteReport sends one datagram to the last sender.
type Conn struct {
	p    *Port
	in   chan []byte
	gone chan struct{}
}

// ReadReport returns the next report received.
func (c *Conn) ReadReport(ctx context.Context) ([]byte, error) {
	select {
	case <-c.gone:
		return nil, ctaphid.ErrClosed
	default:
	}
	select {
	case r := <-c.in:
		return r, nil
	case <-c.gone:
		return nil, ctaphid.ErrClosed
	case <-ctx.Done():
		return nil, fmt.Errorf("udp: read report: %w", ctx.Err())
	}
}

// WriteReport sends a 64-byte report to the peer that sent the last
// datagram; before any peer has spoken it goes nowhere.
func (c *Conn) WriteReport(ctx context.Context, report []byte) error {
	if len(report) != ctaphid.ReportSize {
		return fmt.Errorf("%w: %d bytes", ctaphid.ErrReportSize, len(report))
	}
	select {
	case <-c.gone:
		return ctaphid.ErrClosed
	default:
	}
	c.p.mu.Lock()
	peer := c.p.peer
	c.p.mu.Unlock()
	if !peer.IsValid() {
		return nil
	}
	if _, err := c.p.pc.WriteToUDPAddrPort(report, peer); err != nil {
		if c.p.closed.Load() {
			return ctaphid.ErrClosed
		}
		// A peer gone away (ICMP unreachable) is not the device's failure:
		// the report is lost as on a bus nobody reads.
		return nil
	}
	return nil
}
