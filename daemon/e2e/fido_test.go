package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mfad/mfad/ipc/api"
	"github.com/mfad/mfad/ipc/client"
)

func startWithEmulators(t *testing.T, extra string) *daemon {
	t.Helper()
	return startDaemon(t, "", "admin_group = \""+adminGroup+"\"\n[emulator]\nenabled = true\n"+extra)
}

// TestFIDOEndToEnd: two software keys and a TOTP device on one account
// through mfactl, sign-in with either key (streamed prompts), the same key
// refused twice, no_key_present, and a counter rollback flagged.
func TestFIDOEndToEnd(t *testing.T) {
	d := startWithEmulators(t, "")
	c := d.client()
	ctx := context.Background()
	for _, n := range []string{"blue", "green"} {
		if _, err := c.AddEmulator(ctx, api.AddEmulator{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	// With two keys plugged in, enrollment takes the one touched: unplug the other.
	if err := c.EmulatorAction(ctx, "green", "unplug", nil); err != nil {
		t.Fatal(err)
	}
	out, errs, code := mfactl(t, d.sock, "device", "add", "fido", "vera", "--label", "blue key")
	if code != 0 || !strings.Contains(errs, "Touch your security key") || !strings.Contains(out, "is active") {
		t.Fatalf("enroll blue: %d %q %q", code, out, errs)
	}
	if _, errs, code = mfactl(t, d.sock, "device", "add", "fido", "vera"); code == 0 || !strings.Contains(errs, "[credential_excluded]") {
		t.Errorf("same key twice: %d %s", code, errs)
	}
	c.EmulatorAction(ctx, "blue", "unplug", nil)
	c.EmulatorAction(ctx, "green", "plug", nil)
	if _, errs, code = mfactl(t, d.sock, "device", "add", "fido", "vera", "--label", "green key"); code != 0 {
		t.Fatalf("enroll green: %s", errs)
	}
	if _, err := c.AddDevice(ctx, "vera", api.CreateDevice{Type: "totp"}); err != nil {
		t.Fatal(err)
	}
	list, _ := c.Devices(ctx, "vera")
	if len(list.Devices) != 3 {
		t.Fatalf("devices: %+v", list.Devices)
	}
	// Sign in with either key, the other unplugged.
	for _, pair := range [][2]string{{"green", "blue"}, {"blue", "green"}} {
		c.EmulatorAction(ctx, pair[1], "unplug", nil)
		c.EmulatorAction(ctx, pair[0], "plug", nil)
		out, errs, code = mfactl(t, d.sock, "--json", "authenticate", "--key", "vera")
		// JSON lines: the stream's events, then the result.
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 0 || len(lines) < 2 || lines[0] != `{"event":"touch_required"}` {
			t.Fatalf("sign in with %s: %d %s %s", pair[0], code, out, errs)
		}
		var res api.AuthResult
		json.Unmarshal([]byte(lines[len(lines)-1]), &res)
		if res.Device == nil || res.Device.Type != "fido" || !strings.Contains(res.Device.Label, pair[0]) {
			t.Errorf("signed in with %+v, want the %s key", res.Device, pair[0])
		}
	}
	// Nothing plugged in.
	c.EmulatorAction(ctx, "blue", "unplug", nil)
	if _, errs, code = mfactl(t, d.sock, "authenticate", "--key", "vera"); code == 0 || !strings.Contains(errs, "[no_key_present]") {
		t.Errorf("no key: %d %s", code, errs)
	}
	// A cloned key: its counter goes back.
	c.EmulatorAction(ctx, "blue", "plug", nil)
	c.EmulatorAction(ctx, "blue", "fault", &api.Fault{Kind: "counter_rollback", Count: 10})
	if _, errs, code = mfactl(t, d.sock, "authenticate", "--key", "vera"); code == 0 || !strings.Contains(errs, "[possibly_cloned]") {
		t.Errorf("rolled-back counter: %d %s", code, errs)
	}
	list, _ = c.Devices(ctx, "vera")
	flagged := 0
	for _, dev := range list.Devices {
		if dev.FIDO != nil && dev.FIDO.PossiblyCloned {
			flagged++
		}
	}
	if flagged != 1 {
		t.Errorf("%d devices flagged possibly cloned, want 1", flagged)
	}
	// Admins read back the signed registration bytes.
	for _, dev := range list.Devices {
		if dev.FIDO == nil {
			continue
		}
		full, err := c.Device(ctx, "vera", dev.ID)
		if err != nil || full.FIDO.AttestationObject == "" || full.FIDO.ClientDataJSON == "" {
			t.Errorf("admin device read: %+v %v", full.FIDO, err)
		}
	}
}

// TestFIDOTimeoutAndHangUp: a manual key nobody touches ends in
// no_key_touched; a client that hangs up cancels the operation on the key.
func TestFIDOTimeoutAndHangUp(t *testing.T) {
	d := startWithEmulators(t, "[fido]\ntouch_timeout = \"2s\"\n")
	c := d.client()
	ctx := context.Background()
	if _, err := c.AddEmulator(ctx, api.AddEmulator{Name: "slow", Presence: "manual"}); err != nil {
		t.Fatal(err)
	}
	// Enroll with a touch given when the key asks for it.
	enrolled := make(chan error, 1)
	go func() {
		_, err := c.AddKeyDevice(ctx, "walt", api.CreateDevice{}, func(e api.Event) {
			if e.Event == "keepalive" && e.Status == "up_needed" {
				c.EmulatorAction(ctx, "slow", "touch", nil)
			}
		})
		enrolled <- err
	}()
	if err := <-enrolled; err != nil {
		t.Fatal(err)
	}
	_, err := c.AuthenticateKey(ctx, api.Authenticate{Account: "walt"}, nil)
	if !errors.Is(err, &api.Problem{Code: api.CodeNoKeyTouched}) {
		t.Fatalf("untouched: %v", err)
	}
	before := emulatorState(t, c, "slow").Cancellations
	// Hang up while the key waits for a touch.
	conn, err := net.Dial("unix", d.sock)
	if err != nil {
		t.Fatal(err)
	}
	body := `{"account":"walt"}`
	conn.Write([]byte("POST /v1/authenticate HTTP/1.1\r\nHost: mfad\r\nAccept: application/x-ndjson\r\nContent-Type: application/json\r\nContent-Length: " +
		itoa(len(body)) + "\r\n\r\n" + body))
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(line, `"touch_required"`) {
			break
		}
	}
	time.Sleep(200 * time.Millisecond) // the key is now waiting
	conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for emulatorState(t, c, "slow").Cancellations == before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if emulatorState(t, c, "slow").Cancellations == before {
		t.Fatal("hanging up did not cancel the operation on the key")
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func emulatorState(t *testing.T, c *client.Client, name string) api.Emulator {
	t.Helper()
	list, err := c.Emulators(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range list {
		if e.ID == name {
			return e
		}
	}
	t.Fatalf("no emulator %s", name)
	return api.Emulator{}
}

// TestFaultyKeyDoesNotHurtTheDaemon: corrupt frames, CTAP errors and no
// answer end the operation with an error, /v1/keys shows the key failing,
// the daemon keeps serving, and no goroutine is left behind.
func TestFaultyKeyDoesNotHurtTheDaemon(t *testing.T) {
	d := startWithEmulators(t, "[fido]\ntouch_timeout = \"2s\"\n")
	c := d.client()
	ctx := context.Background()
	if _, err := c.AddEmulator(ctx, api.AddEmulator{Name: "flaky"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddKeyDevice(ctx, "xena", api.CreateDevice{}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AuthenticateKey(ctx, api.Authenticate{Account: "xena"}, nil); err != nil {
		t.Fatal(err)
	}
	info, _ := c.Info(ctx)
	baseline := info.Goroutines
	for _, f := range []api.Fault{{Kind: "corrupt_frames"}, {Kind: "ctap_error", Status: 0x7f, Count: 1}, {Kind: "no_answer"}} {
		if err := c.EmulatorAction(ctx, "flaky", "fault", &f); err != nil {
			t.Fatal(err)
		}
		_, err := c.AuthenticateKey(ctx, api.Authenticate{Account: "xena"}, nil)
		if err == nil {
			t.Errorf("fault %s: sign-in succeeded", f.Kind)
		}
		var p *api.Problem
		if !errors.As(err, &p) || p.Status == 0 {
			t.Errorf("fault %s: %v is not a problem", f.Kind, err)
		}
		if f.Kind == "corrupt_frames" {
			keys, _ := c.Keys(ctx)
			if len(keys) != 1 || keys[0].Status != "failing" || keys[0].LastError == "" {
				t.Errorf("after corrupt frames /v1/keys shows %+v", keys)
			}
		}
		c.EmulatorAction(ctx, "flaky", "fault", &api.Fault{Kind: "clear"})
	}
	// Still serving, and the key works again.
	if _, err := c.AuthenticateKey(ctx, api.Authenticate{Account: "xena"}, nil); err != nil {
		t.Fatalf("after the faults: %v", err)
	}
	var now int
	for i := 0; i < 50; i++ {
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if now = info.Goroutines; now <= baseline+2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if now > baseline+2 {
		t.Errorf("goroutines %d after the faults, %d before: a leak", now, baseline)
	}
}

// TestEventsStream: plug and unplug show as key events; a user sees their
// own account's security events and not another's.
func TestEventsStream(t *testing.T) {
	d := startWithEmulators(t, "")
	c := d.client()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := make(chan api.Event, 64)
	ready := make(chan struct{})
	go c.Events(ctx, func(e api.Event) bool {
		if e.Event == "subscribed" {
			close(ready)
			return true
		}
		got <- e
		return true
	})
	<-ready
	c.AddEmulator(ctx, api.AddEmulator{Name: "ev"})
	c.EmulatorAction(ctx, "ev", "unplug", nil)
	want := []string{"key_added", "key_removed"}
	for _, w := range want {
		select {
		case e := <-got:
			for e.Event == "audit" {
				e = <-got
			}
			if e.Event != w || e.Key == nil || e.Key.EmulatorID != "ev" {
				t.Errorf("event %+v, want %s of ev", e, w)
			}
		case <-ctx.Done():
			t.Fatalf("no %s event", w)
		}
	}
	if os.Getuid() != 0 {
		return
	}
	// Users: their own security events only (real uids).
	c.CreateAccount(ctx, api.CreateAccount{Name: userSelf})
	c.CreateAccount(ctx, api.CreateAccount{Name: userOther})
	lines := runEventsAs(t, userSelf, d.sock, func() {
		c.PatchAccount(ctx, userOther, api.PatchAccount{Unlock: true})
		c.PatchAccount(ctx, userSelf, api.PatchAccount{Unlock: true})
	})
	if !strings.Contains(lines, userSelf) || strings.Contains(lines, userOther) {
		t.Errorf("a user's event stream: %s", lines)
	}
}

// runEventsAs follows /v1/events as who with mfactl while act runs.
func runEventsAs(t *testing.T, who, sock string, act func()) string {
	t.Helper()
	var out strings.Builder
	cmd := mfactlCmd(who, sock, "--json", "events")
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	act()
	time.Sleep(500 * time.Millisecond)
	cmd.Process.Kill()
	cmd.Wait()
	return out.String()
}

// TestTrustedAttestationFromConfig: attestation = "trusted" refuses a
// software key until its CA is put among the trusted roots.
func TestTrustedAttestationFromConfig(t *testing.T) {
	roots := filepath.Join(work, "roots-"+strings.ReplaceAll(t.Name(), "/", "_"))
	os.MkdirAll(roots, 0o755)
	// Another software key's CA is not this one's.
	d0 := startWithEmulators(t, "")
	e0, err := d0.client().AddEmulator(context.Background(), api.AddEmulator{Name: "stranger"})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(roots, "stranger.pem"), []byte(e0.CACertificatePEM), 0o644)
	d0.stop()

	cfg := "[fido]\nattestation = \"trusted\"\ntrusted_roots = \"" + roots + "\"\n"
	d := startWithEmulators(t, cfg)
	c := d.client()
	ctx := context.Background()
	e, err := c.AddEmulator(ctx, api.AddEmulator{Name: "lab"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.AddKeyDevice(ctx, "yara", api.CreateDevice{}, nil)
	if !errors.Is(err, &api.Problem{Code: api.CodeAttestationRefused}) {
		t.Fatalf("untrusted key: %v", err)
	}
	os.WriteFile(filepath.Join(roots, "lab.pem"), []byte(e.CACertificatePEM), 0o644)
	d.stop()
	d2 := startDaemon(t, d.state, "admin_group = \""+adminGroup+"\"\n[emulator]\nenabled = true\nattach = [\"lab\"]\n"+cfg)
	if _, err := d2.client().AddKeyDevice(ctx, "yara", api.CreateDevice{}, nil); err != nil {
		t.Fatalf("trusted key: %v", err)
	}
}

// TestFIDOPINRequired: a key with a PIN (set through the admin route)
// answers pin_required at enrollment; the same request with the PIN
// succeeds, and so does a sign-in with it.
func TestFIDOPINRequired(t *testing.T) {
	d := startWithEmulators(t, "")
	c := d.client()
	ctx := context.Background()
	e, err := c.AddEmulator(ctx, api.AddEmulator{Name: "pinned"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetKeyPIN(ctx, e.KeyID, api.KeyPIN{PIN: "2468"}); err != nil {
		t.Fatal(err)
	}
	keys, _ := c.Keys(ctx)
	if len(keys) != 1 || keys[0].PINRetries == nil || *keys[0].PINRetries != 8 {
		t.Errorf("key after setting its PIN: %+v", keys)
	}
	_, err = c.AddKeyDevice(ctx, "uli", api.CreateDevice{}, nil)
	if !errors.Is(err, &api.Problem{Code: api.CodePINRequired}) {
		t.Fatalf("enrollment without the PIN: %v", err)
	}
	_, err = c.AddKeyDevice(ctx, "uli", api.CreateDevice{PIN: "1357"}, nil)
	if !errors.Is(err, &api.Problem{Code: api.CodeInvalidPIN}) {
		t.Fatalf("enrollment with a wrong PIN: %v", err)
	}
	if _, err := c.AddKeyDevice(ctx, "uli", api.CreateDevice{PIN: "2468"}, nil); err != nil {
		t.Fatalf("enrollment with the PIN: %v", err)
	}
	if _, err := c.AuthenticateKey(ctx, api.Authenticate{Account: "uli", PIN: "2468"}, nil); err != nil {
		t.Fatalf("sign-in with the PIN: %v", err)
	}
	// Changing the PIN needs the current one.
	if err := c.SetKeyPIN(ctx, e.KeyID, api.KeyPIN{PIN: "9999", CurrentPIN: "2468"}); err != nil {
		t.Fatalf("change PIN: %v", err)
	}
}
