package emulator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mfad/mfad/hw/ctap2"
	"github.com/mfad/mfad/hw/ctaphid"
	"github.com/mfad/mfad/hw/emu"
	"github.com/mfad/mfad/hw/emu/udp"
	"github.com/mfad/mfad/hw/fidokey"
)

// udpHost is the host side of the UDP transport: a suite's socket sending
// 64-byte reports to the emulator and reading its answers.
type udpHost struct{ c *net.UDPConn }

func dialUDP(t testing.TB, to *net.UDPAddr) *udpHost {
	t.Helper()
	c, err := net.DialUDP("udp", nil, to)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &udpHost{c: c}
}

func (h *udpHost) ReadReport(ctx context.Context) ([]byte, error) {
	stop := context.AfterFunc(ctx, func() { h.c.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 2*ctaphid.ReportSize)
	for {
		n, err := h.c.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		if n == ctaphid.ReportSize {
			return buf[:n], nil
		}
	}
}

func (h *udpHost) WriteReport(_ context.Context, r []byte) error {
	_, err := h.c.Write(r)
	return err
}

func newUDPEmulator(t testing.TB, pres emu.Presence) (*Emulator, *udp.Port) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	port, err := udp.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(ctx, emu.Config{Persister: emu.FilePersister(filepath.Join(t.TempDir(), "state")), Presence: pres}, port, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(); cancel() })
	if err := e.Plug(); err != nil {
		t.Fatal(err)
	}
	return e, port
}

func cdh(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

// TestUDPTransport drives the key over UDP with mfad's own host stack:
// INIT (in fidokey.Open), GetInfo, MakeCredential, GetAssertion.
func TestUDPTransport(t *testing.T) {
	e, port := newUDPEmulator(t, emu.PresenceAuto)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	k, err := fidokey.Open(ctx, dialUDP(t, port.Addr()), fidokey.DeviceInfo{Path: "udp:" + port.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	if cid := k.Channel().CID(); cid == 0 || cid == 0xffffffff {
		t.Fatalf("INIT allocated channel %#x", cid)
	}
	if err := k.RefreshInfo(ctx); err != nil {
		t.Fatal(err)
	}
	if got := k.Info().AAGUID; !bytes.Equal(got, emu.AAGUID[:]) {
		t.Fatalf("AAGUID % x", got)
	}
	const rpID = "udp.example"
	mc, err := k.MakeCredential(ctx, fidokey.MakeCredentialParams{
		ClientDataHash: cdh("mc"), RP: ctap2.RPEntity{ID: rpID}, User: ctap2.UserEntity{ID: []byte("u1"), Name: "alice"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ad, err := ctap2.ParseAuthData(mc.AuthData)
	if err != nil || ad.AttestedCredential == nil {
		t.Fatalf("MakeCredential authData: %v", err)
	}
	if ad.RPIDHash != sha256.Sum256([]byte(rpID)) {
		t.Fatal("MakeCredential rpIdHash")
	}
	pub, alg, err := ad.AttestedCredential.Key()
	if err != nil {
		t.Fatal(err)
	}
	// A 1000-byte PING crosses many datagrams each way.
	if err := k.Channel().Ping(ctx, bytes.Repeat([]byte{7}, 1000)); err != nil {
		t.Fatal(err)
	}
	q := cdh("ga")
	as, err := k.GetAssertion(ctx, fidokey.GetAssertionParams{RPID: rpID, ClientDataHash: q, AllowList: [][]byte{ad.AttestedCredential.CredentialID}, UP: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 || !bytes.Equal(as[0].Credential.ID, ad.AttestedCredential.CredentialID) {
		t.Fatalf("GetAssertion answered %d assertions", len(as))
	}
	if err := ctap2.VerifySignature(pub, alg, append(append([]byte{}, as[0].AuthData...), q...), as[0].Signature); err != nil {
		t.Fatalf("assertion signature: %v", err)
	}
	if st := e.Control("status").Status; st.Transport != "udp" || !st.Plugged {
		t.Fatalf("status %+v", st)
	}
}

func get(t *testing.T, base, path string) (int, reply) {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r reply
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %s", path, b)
	}
	return resp.StatusCode, r
}

// TestController drives touch, power and faults through the HTTP
// controller while a host uses the key over UDP.
func TestController(t *testing.T) {
	e, port := newUDPEmulator(t, emu.PresenceManual)
	n := port.Addr().Port
	srv := httptest.NewServer(NewController(e, n))
	defer srv.Close()
	usb := fmt.Sprintf("/usb%d", n)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	k, err := fidokey.Open(ctx, dialUDP(t, port.Addr()), fidokey.DeviceInfo{Path: "udp"})
	if err != nil {
		t.Fatal(err)
	}

	// touch/on approves the presence test waiting.
	upNeeded := make(chan struct{}, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- k.Selection(ctx, func(s byte) {
			if s == ctaphid.StatusUPNeeded {
				select {
				case upNeeded <- struct{}{}:
				default:
				}
			}
		})
	}()
	<-upNeeded
	if code, r := get(t, srv.URL, usb+"/touch/on"); code != 200 || !r.OK {
		t.Fatalf("touch/on: %d %+v", code, r)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if _, r := get(t, srv.URL, usb+"/status"); r.Status.Presence != "auto" {
		t.Fatalf("presence after touch/on: %+v", r.Status)
	}
	if _, r := get(t, srv.URL, usb+"/touch/off"); !r.OK || e.Control("status").Status.Presence != "manual" {
		t.Fatalf("touch/off: %+v", r)
	}

	// A fault through the controller.
	if code, r := get(t, srv.URL, usb+"/fault/ctap_error?status=0x31&count=1"); code != 200 || !r.OK {
		t.Fatalf("fault: %d %+v", code, r)
	}
	if err := k.RefreshInfo(ctx); !errors.Is(err, ctap2.ErrPINInvalid) {
		t.Fatalf("after fault ctap_error: %v", err)
	}

	// power/off: the key is gone, nothing answers; power/on: a new INIT works.
	if _, r := get(t, srv.URL, usb+"/power/off"); !r.OK || e.Plugged() {
		t.Fatalf("power/off: %+v", r)
	}
	short, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	if err := k.RefreshInfo(short); err == nil {
		t.Fatal("an unplugged key answered")
	}
	if _, r := get(t, srv.URL, usb+"/power/on"); !r.OK || !e.Plugged() {
		t.Fatalf("power/on: %+v", r)
	}
	k, err = fidokey.Open(ctx, dialUDP(t, port.Addr()), fidokey.DeviceInfo{Path: "udp"})
	if err != nil {
		t.Fatalf("after power/on: %v", err)
	}

	for _, bad := range []struct {
		path string
		code int
	}{
		{"/usb1/touch/on", 404}, {usb + "/touch/maybe", 404}, {usb + "/dance", 404}, {"/", 404},
		{usb + "/fault/melt", 400}, {usb + "/fault/ctap_error?colour=red", 400}, {usb + "/fault/ctap_error?count=-1", 400},
	} {
		if n == 1 && strings.HasPrefix(bad.path, "/usb1/") {
			continue
		}
		if code, r := get(t, srv.URL, bad.path); code != bad.code || r.OK || r.Error == "" {
			t.Errorf("%s: %d %+v, want %d", bad.path, code, r, bad.code)
		}
	}
	resp, err := http.Post(srv.URL+usb+"/status", "text/plain", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST status: %v %v", resp, err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest(http.MethodDelete, srv.URL+usb+"/status", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("DELETE: %v %v", resp, err)
	}
}

func TestListenController(t *testing.T) {
	for _, bad := range []string{"0.0.0.0:0", "192.0.2.1:0", ":0", "example.com:80", "nonsense"} {
		if l, err := ListenController(bad); err == nil {
			l.Close()
			t.Errorf("controller listening on %q", bad)
		}
	}
	for _, good := range []string{"127.0.0.1:0", "[::1]:0", filepath.Join(t.TempDir(), "c.sock")} {
		l, err := ListenController(good)
		if err != nil {
			if good == "[::1]:0" {
				continue // no IPv6 loopback here
			}
			t.Fatalf("%s: %v", good, err)
		}
		l.Close()
	}
}

// pythonFido2 is a python3 that imports fido2 (Debian's python3-fido2).
func pythonFido2(t *testing.T) string {
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		if p, err := exec.LookPath(py); err == nil && exec.Command(p, "-c", "import fido2").Run() == nil {
			return p
		}
	}
	if os.Getenv("MFAD_REQUIRE_TOOLS") == "1" {
		t.Fatal("no python3 with the fido2 module (Debian python3-fido2); needed under MFAD_REQUIRE_TOOLS=1")
	}
	t.Skip("no python3 with the fido2 module (install Debian's python3-fido2); set MFAD_REQUIRE_TOOLS=1 to make this fatal")
	return ""
}

// pyClient is a python-fido2 CtapHidDevice over a UDP connection class, the
// way suites written for the open-source simulators reach a device: PING,
// GetInfo, ClientPIN (set, retries, pinUvAuthToken), MakeCredential and
// GetAssertion with the token, the assertion's signature checked by
// python-fido2 against the credential's public key.
const pyClient = `
import hashlib, json, socket, sys
from fido2.hid import CtapHidDevice
from fido2.hid.base import CtapHidConnection, HidDescriptor
from fido2.ctap2 import Ctap2, ClientPin

class UdpConnection(CtapHidConnection):
    def __init__(self, host, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(10)
        self.dev = (host, port)
    def write_packet(self, data):
        self.sock.sendto(data, self.dev)
    def read_packet(self):
        data, _ = self.sock.recvfrom(64)
        return data
    def close(self):
        self.sock.close()

host, port = sys.argv[1], int(sys.argv[2])
dev = CtapHidDevice(HidDescriptor("udp", 0x1209, 0x0001, 64, 64), UdpConnection(host, port))
assert dev.ping(b"x" * 100) == b"x" * 100
ctap = Ctap2(dev)
info = ctap.get_info()

cp = ClientPin(ctap)
cp.set_pin("2468")
retries = cp.get_pin_retries()[0]
rp = "py.example"
perms = ClientPin.PERMISSION.MAKE_CREDENTIAL | ClientPin.PERMISSION.GET_ASSERTION
token = cp.get_pin_token("2468", perms, rp)
cdh = hashlib.sha256(b"mc").digest()
att = ctap.make_credential(cdh, {"id": rp, "name": rp}, {"id": b"u1", "name": "alice"},
                           [{"type": "public-key", "alg": -7}],
                           pin_uv_param=cp.protocol.authenticate(token, cdh), pin_uv_protocol=cp.protocol.VERSION)
cred = att.auth_data.credential_data
q = hashlib.sha256(b"ga").digest()
token = cp.get_pin_token("2468", ClientPin.PERMISSION.GET_ASSERTION, rp)
a = ctap.get_assertion(rp, q, [{"type": "public-key", "id": cred.credential_id}],
                       pin_uv_param=cp.protocol.authenticate(token, q), pin_uv_protocol=cp.protocol.VERSION)
a.verify(q, cred.public_key)
print(json.dumps({"versions": list(info.versions), "aaguid": bytes(info.aaguid).hex(),
                  "max_msg_size": info.max_msg_size, "options": info.options,
                  "pin_retries": retries, "credential_aaguid": bytes(cred.aaguid).hex(),
                  "uv": bool(a.auth_data.flags & 0x04), "counter": a.auth_data.counter}))
`

// TestUDPPythonFido2 drives the key over the UDP transport with
// python-fido2, an independent host stack.
func TestUDPPythonFido2(t *testing.T) {
	py := pythonFido2(t)
	_, port := newUDPEmulator(t, emu.PresenceAuto)
	script := filepath.Join(t.TempDir(), "client.py")
	if err := os.WriteFile(script, []byte(pyClient), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, script, "127.0.0.1", fmt.Sprint(port.Addr().Port)).CombinedOutput()
	if err != nil {
		t.Fatalf("python-fido2 client: %v\n%s", err, out)
	}
	var info struct {
		Versions         []string        `json:"versions"`
		AAGUID           string          `json:"aaguid"`
		MaxMsgSize       int             `json:"max_msg_size"`
		Options          map[string]bool `json:"options"`
		PINRetries       int             `json:"pin_retries"`
		CredentialAAGUID string          `json:"credential_aaguid"`
		UV               bool            `json:"uv"`
		Counter          uint32          `json:"counter"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if info.AAGUID != fmt.Sprintf("%x", emu.AAGUID[:]) {
		t.Errorf("python-fido2 read AAGUID %s", info.AAGUID)
	}
	if !strings.Contains(strings.Join(info.Versions, ","), "FIDO_2_0") || info.MaxMsgSize != emu.MaxMsgSize || !info.Options["rk"] {
		t.Errorf("python-fido2 read GetInfo %+v", info)
	}
	if info.PINRetries != emu.MaxPINRetries || info.CredentialAAGUID != info.AAGUID || !info.UV || info.Counter == 0 {
		t.Errorf("python-fido2 PIN, MakeCredential, GetAssertion: %+v", info)
	}
}
