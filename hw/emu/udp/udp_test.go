package udp

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/mfad/mfad/hw/ctaphid"
	"github.com/mfad/mfad/hw/emu"
)

func listen(t testing.TB) *Port {
	t.Helper()
	p, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// client is a suite's socket, bound to a port of its own as the
// simulators' clients are.
func client(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestReportsBothWays(t *testing.T) {
	p := listen(t)
	conn, err := p.Plug()
	if err != nil {
		t.Fatal(err)
	}
	cl := client(t)
	report := bytes.Repeat([]byte{0xab}, ctaphid.ReportSize)
	// Datagrams of another size are dropped; the 64-byte one after them arrives.
	cl.WriteToUDP([]byte{1, 2, 3}, p.Addr())
	cl.WriteToUDP(make([]byte, 65), p.Addr())
	cl.WriteToUDP(report, p.Addr())
	got, err := conn.ReadReport(ctx(t))
	if err != nil || !bytes.Equal(got, report) {
		t.Fatalf("ReadReport = % x, %v", got, err)
	}
	if p.Dropped() != 2 {
		t.Fatalf("dropped %d datagrams, want 2", p.Dropped())
	}

	// The answer goes to the sender's address; a malformed datagram from
	// elsewhere does not take the answers away.
	other := client(t)
	other.WriteToUDP([]byte{0xff}, p.Addr())
	for p.Dropped() != 3 {
		time.Sleep(time.Millisecond)
	}
	answer := bytes.Repeat([]byte{0x5a}, ctaphid.ReportSize)
	if err := conn.WriteReport(ctx(t), answer); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	cl.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _, err := cl.ReadFromUDP(buf)
	if err != nil || !bytes.Equal(buf[:n], answer) {
		t.Fatalf("client read % x, %v", buf[:n], err)
	}
	if err := conn.WriteReport(ctx(t), answer[:10]); !errors.Is(err, ctaphid.ErrReportSize) {
		t.Fatalf("short report written: %v", err)
	}
}

func TestUnplugged(t *testing.T) {
	p := listen(t)
	conn, _ := p.Plug()
	p.Unplug()
	if _, err := conn.ReadReport(ctx(t)); !errors.Is(err, ctaphid.ErrClosed) {
		t.Fatalf("read after unplug: %v", err)
	}
	if err := conn.WriteReport(ctx(t), make([]byte, 64)); !errors.Is(err, ctaphid.ErrClosed) {
		t.Fatalf("write after unplug: %v", err)
	}
	// A report sent while unplugged is not seen after the next plug.
	p.Deliver(bytes.Repeat([]byte{1}, 64), netip.MustParseAddrPort("127.0.0.1:9"))
	conn, _ = p.Plug()
	p.Deliver(bytes.Repeat([]byte{2}, 64), netip.MustParseAddrPort("127.0.0.1:9"))
	got, err := conn.ReadReport(ctx(t))
	if err != nil || got[0] != 2 {
		t.Fatalf("after replug read % x, %v", got, err)
	}
	p.Close()
	if _, err := p.Plug(); !errors.Is(err, ctaphid.ErrClosed) {
		t.Fatalf("plug after close: %v", err)
	}
}

// FuzzDatagrams feeds arbitrary datagrams to a port with the software key
// plugged in behind a CTAPHID server: nothing may panic and the server
// keeps running. Each datagram is one length byte (its
// size, modulo 80) and that many bytes.
func FuzzDatagrams(f *testing.F) {
	init := make([]byte, 64)
	copy(init, []byte{0xff, 0xff, 0xff, 0xff, 0x86, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add(append([]byte{64}, init...))
	f.Add([]byte{3, 1, 2, 3})
	f.Add(append([]byte{64, 0, 0, 0, 1, 0x90, 0x1d, 0xb9}, make([]byte, 57)...))
	f.Add(append([]byte{65}, make([]byte, 65)...))
	a, err := emu.New(emu.Config{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := listen(t)
		sink := client(t)
		from := sink.LocalAddr().(*net.UDPAddr).AddrPort()
		conn, err := p.Plug()
		if err != nil {
			t.Fatal(err)
		}
		c, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		srv := &ctaphid.Server{Handler: a, Capabilities: ctaphid.CapCBOR}
		go func() { done <- srv.Serve(c, conn) }()
		for len(data) > 0 {
			n := min(int(data[0])%80, len(data)-1)
			p.Deliver(data[1:1+n], from)
			data = data[1+n:]
		}
		// Let the server take every queued report, then check it still runs.
		for i := 0; len(conn.(*Conn).in) > 0 && i < 1000; i++ {
			time.Sleep(time.Millisecond)
		}
		select {
		case err := <-done:
			t.Fatalf("server stopped: %v", err)
		default:
		}
		cancel()
		<-done
	})
}
