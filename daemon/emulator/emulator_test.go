package emulator

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfad/mfad/hw/ctap2"
	"github.com/mfad/mfad/hw/ctaphid"
	"github.com/mfad/mfad/hw/emu"
	"github.com/mfad/mfad/hw/fidokey"
)

// pipePort is a Port over ctaphid.Pipe: each Plug hands the host end to
// the test through hosts.
type pipePort struct {
	mu      sync.Mutex
	dev     *ctaphid.PipeConn
	hosts   chan *ctaphid.PipeConn
	plugs   int
	unplugs int
}

func (p *pipePort) Name() string { return "pipe" }

func (p *pipePort) Plug() (ctaphid.Conn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	host, dev := ctaphid.Pipe()
	p.dev = dev
	p.plugs++
	p.hosts <- host
	return dev, nil
}

func (p *pipePort) Unplug() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dev != nil {
		p.dev.Close()
		p.dev = nil
		p.unplugs++
	}
	return nil
}

func (p *pipePort) Close() error { return p.Unplug() }

func newTestEmulator(t *testing.T, pres emu.Presence) (*Emulator, *pipePort) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	port := &pipePort{hosts: make(chan *ctaphid.PipeConn, 4)}
	e, err := New(ctx, emu.Config{Persister: emu.FilePersister(filepath.Join(t.TempDir(), "state")), Presence: pres}, port, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(); cancel() })
	return e, port
}

func openKey(t *testing.T, port *pipePort) *fidokey.Key {
	t.Helper()
	host := <-port.hosts
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	k, err := fidokey.Open(ctx, host, fidokey.DeviceInfo{Path: "pipe"})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestPlugUnplugControl(t *testing.T) {
	e, port := newTestEmulator(t, emu.PresenceAuto)
	if r := e.Control("plug"); !r.OK {
		t.Fatal(r.Error)
	}
	k := openKey(t, port)
	if got := k.Info().AAGUID; !bytes.Equal(got, emu.AAGUID[:]) {
		t.Fatalf("AAGUID % x", got)
	}
	st := e.Control("status")
	if !st.OK || !st.Status.Plugged || st.Status.Transport != "pipe" || st.Status.Presence != "auto" || st.Status.AAGUID != emu.AAGUIDString {
		t.Fatalf("status %+v %+v", st, st.Status)
	}

	if r := e.Control("unplug"); !r.OK {
		t.Fatal(r.Error)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := k.Wink(ctx); !errors.Is(err, ctaphid.ErrClosed) {
		t.Fatalf("wink on an unplugged key: %v", err)
	}
	if st := e.Control("status"); st.Status.Plugged {
		t.Fatal("still plugged")
	}
	if r := e.Control("unplug"); !r.OK || port.unplugs != 1 {
		t.Fatalf("second unplug: %+v, %d unplugs", r, port.unplugs)
	}
	if r := e.Control("plug"); !r.OK {
		t.Fatal(r.Error)
	}
	k = openKey(t, port)
	if err := k.Wink(ctx); err != nil {
		t.Fatal(err)
	}
	if e.Authenticator().Winks() != 1 {
		t.Fatal("wink not seen")
	}
}

func TestManualPresenceTouch(t *testing.T) {
	e, port := newTestEmulator(t, emu.PresenceManual)
	e.Plug()
	k := openKey(t, port)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	upNeeded := make(chan struct{}, 1)
	errc := make(chan error, 1)
	go func() {
		err := k.Selection(ctx, func(s byte) {
			if s == ctaphid.StatusUPNeeded {
				select {
				case upNeeded <- struct{}{}:
				default:
				}
			}
		})
		errc <- err
	}()
	<-upNeeded
	if r := e.Control("touch"); !r.OK {
		t.Fatal(r.Error)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if r := e.Control("presence auto"); !r.OK || e.Control("status").Status.Presence != "auto" {
		t.Fatal("presence auto not taken")
	}
	if err := k.Selection(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

func TestFaults(t *testing.T) {
	e, port := newTestEmulator(t, emu.PresenceAuto)
	e.Plug()
	k := openKey(t, port)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r := e.Control("fault ctap_error status=0x31 count=1"); !r.OK {
		t.Fatal(r.Error)
	}
	if err := k.RefreshInfo(ctx); !errors.Is(err, ctap2.ErrPINInvalid) {
		t.Fatalf("after ctap_error: %v", err)
	}
	if err := k.RefreshInfo(ctx); err != nil {
		t.Fatalf("count=1 should last one command: %v", err)
	}
	e.Control("fault no_answer")
	short, cancel2 := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel2()
	if err := k.RefreshInfo(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("no_answer: %v", err)
	}
	e.Control("fault clear")
	if err := k.RefreshInfo(ctx); err != nil {
		t.Fatalf("after clear: %v", err)
	}
}

func TestControlParsing(t *testing.T) {
	e, _ := newTestEmulator(t, emu.PresenceAuto)
	for _, bad := range []string{"", "dance", "presence", "presence maybe", "fault", "fault melt",
		"fault ctap_error status=300", "fault ctap_error count=-1", "fault slow_keepalive interval=forever",
		"fault ctap_error colour=red", "fault ctap_error 5"} {
		if r := e.Control(bad); r.OK || r.Error == "" {
			t.Errorf("%q accepted", bad)
		}
	}
	f, err := parseFault(strings.Fields("slow_keepalive interval=3s"))
	if err != nil || f.Interval != 3*time.Second {
		t.Fatalf("parseFault = %+v, %v", f, err)
	}
	if r := e.Control("ca"); !r.OK || !strings.Contains(r.CAPEM, "BEGIN CERTIFICATE") {
		t.Fatalf("ca: %+v", r)
	}
}

func TestControlSocket(t *testing.T) {
	e, _ := newTestEmulator(t, emu.PresenceAuto)
	sock := filepath.Join(t.TempDir(), "ctl.sock")
	l, err := ListenControl(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.ServeControl(ctx, l) }()

	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("status\nbogus\n" + strings.Repeat("x", maxLine+10) + "\n"))
	rd := bufio.NewReader(c)
	var r reply
	line, _ := rd.ReadBytes('\n')
	if json.Unmarshal(line, &r) != nil || !r.OK || r.Status == nil {
		t.Fatalf("status answer %s", line)
	}
	line, _ = rd.ReadBytes('\n')
	if json.Unmarshal(line, &r) != nil || r.OK {
		t.Fatalf("bogus answer %s", line)
	}
	// The over-long line ends the connection.
	if _, err := rd.ReadBytes('\n'); err == nil {
		t.Fatal("connection kept after an over-long line")
	}
	c.Close()

	// ctl, the command-line client.
	var out, errb bytes.Buffer
	if code := ctl([]string{"--control", sock, "status"}, &out, &errb); code != 0 || !strings.Contains(out.String(), `"plugged":false`) {
		t.Fatalf("ctl status: %d %s %s", code, out.String(), errb.String())
	}
	out.Reset()
	if code := ctl([]string{"--control", sock, "fault", "melt"}, &out, &errb); code != 1 {
		t.Fatalf("ctl fault melt: exit %d", code)
	}

	// A second emulator may not take over a live socket.
	if _, err := ListenControl(sock); err == nil {
		t.Fatal("live socket taken over")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("ServeControl: %v", err)
	}
}

func TestMainUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"--gadget", "--uhid", "--state", "x"}, {"--uhid"}, {"--uhid", "--state", "x", "--presence", "maybe"},
		{"--udp", "--uhid", "--state", "x"}, {"--udp", "127.0.0.1:0", "--gadget", "--state", "x"}, {"--udp=127.0.0.1:0"}, {"--udp", "0.0.0.0:0", "--state", "x"}, {"--udp=[::]:0", "--state", "x"}, {"--udp", "127.0.0.1:0", "extra", "--state", "x"}} {
		if code := Main(args); code != 2 {
			t.Errorf("Main(%q) = %d, want 2", args, code)
		}
	}
}
