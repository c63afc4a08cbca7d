package client

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mfad/mfad/ipc/api"
	"github.com/mfad/mfad/ipc/server"
)

// fakeServer answers every route of the real route table with an empty
// JSON object and records which route each request hit.
func fakeServer(t *testing.T) (*Client, func() map[string]bool) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	hit := map[string]bool{}
	mux := http.NewServeMux()
	for _, r := range server.Table() {
		key := r.Method + " " + r.Pattern
		mux.HandleFunc(key, func(w http.ResponseWriter, _ *http.Request) {
			mu.Lock()
			hit[key] = true
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, "{}")
		})
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &Client{Socket: sock}, func() map[string]bool {
		mu.Lock()
		defer mu.Unlock()
		return hit
	}
}

// TestOneMethodPerRoute calls every client method and checks that together
// they reach every route of the server, so a route without a client
// method fails here.
func TestOneMethodPerRoute(t *testing.T) {
	c, hits := fakeServer(t)
	ctx := context.Background()
	calls := []func() error{
		func() error { _, err := c.Info(ctx); return err },
		func() error { _, err := c.Accounts(ctx); return err },
		func() error { _, err := c.CreateAccount(ctx, api.CreateAccount{Name: "a"}); return err },
		func() error { _, err := c.Account(ctx, "a"); return err },
		func() error { _, err := c.PatchAccount(ctx, "a", api.PatchAccount{}); return err },
		func() error { return c.DeleteAccount(ctx, "a") },
		func() error { _, err := c.Audit(ctx, 0, 10); return err },
		func() error { _, err := c.Backup(ctx, io.Discard); return err },
		func() error { _, err := c.KeyedBackup(ctx, "a long passphrase", io.Discard); return err },
		func() error { _, err := c.RotateKey(ctx); return err },
		func() error { _, err := c.Devices(ctx, "a"); return err },
		func() error { _, err := c.Device(ctx, "a", "d"); return err },
		func() error { _, err := c.AddDevice(ctx, "a", api.CreateDevice{Type: "totp"}); return err },
		func() error { _, err := c.ActivateDevice(ctx, "a", "d", api.CodePair{}); return err },
		func() error { _, err := c.ImportDevice(ctx, "a", api.ImportDevice{}); return err },
		func() error { _, err := c.ResyncDevice(ctx, "a", "d", api.CodePair{}); return err },
		func() error { _, err := c.Authenticate(ctx, api.Authenticate{Account: "a"}); return err },
		func() error { _, err := c.ImportTokens(ctx, api.TokenImport{}); return err },
		func() error { _, err := c.Tokens(ctx); return err },
		func() error { _, err := c.PasswordChanged(ctx, "a"); return err },
		func() error { _, err := c.Keys(ctx); return err },
		func() error { return c.WinkKey(ctx, "k") },
		func() error { return c.SetKeyPIN(ctx, "k", api.KeyPIN{PIN: "1234"}) },
		func() error { return c.ResetKey(ctx, "k") },
		func() error { _, err := c.CheckKey(ctx, "k", api.KeyCheckRequest{}, nil); return err },
		func() error { _, err := c.Emulators(ctx); return err },
		func() error { _, err := c.AddEmulator(ctx, api.AddEmulator{Name: "e"}); return err },
		func() error { return c.RemoveEmulator(ctx, "e") },
		func() error { return c.EmulatorAction(ctx, "e", "touch", nil) },
		func() error { return c.Events(ctx, func(api.Event) bool { return false }) },
		func() error { _, err := c.DeactivateDevice(ctx, "a", "d"); return err },
		func() error { return c.DeleteDevice(ctx, "a", "d", false) },
		func() error {
			_, err := c.ReplaceDevice(ctx, "a", "d", api.CreateDevice{Type: "totp"}, nil)
			return err
		},
		func() error { _, err := c.ReportLost(ctx, "a", "d"); return err },
		func() error { _, err := c.TemporaryCode(ctx, "a", 0); return err },
		func() error { _, err := c.ChangeContact(ctx, "a", api.ContactChange{Email: "x@y.z"}); return err },
		func() error { _, err := c.VerifyContact(ctx, "a", "1"); return err },
		func() error { _, err := c.StartRecovery(ctx, "a"); return err },
		func() error { _, err := c.RecoveryStep(ctx, "r", "email", "1"); return err },
	}
	for i, call := range calls {
		if err := call(); err != nil {
			t.Errorf("call %d: %v", i, err)
		}
	}
	hit := hits()
	for _, r := range server.Table() {
		if k := r.Method + " " + r.Pattern; !hit[k] {
			t.Errorf("route %s has no client method (or its method does not reach it)", k)
		}
	}
}

func TestProblemsBecomeErrors(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	ln, _ := net.Listen("unix", sock)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", api.ContentProblem)
		w.WriteHeader(403)
		io.WriteString(w, `{"type":"about:blank","title":"Forbidden","status":403,"detail":"no","code":"step_up_required"}`)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	_, err := (&Client{Socket: sock}).Info(context.Background())
	if !errors.Is(err, &api.Problem{Code: api.CodeStepUpRequired}) {
		t.Fatalf("err = %v, want the step_up_required problem", err)
	}
}

func TestNotRunningSaysHowToStart(t *testing.T) {
	_, err := (&Client{Socket: filepath.Join(t.TempDir(), "none")}).Info(context.Background())
	var nr *ErrNotRunning
	if !errors.As(err, &nr) {
		t.Fatalf("err = %v, want ErrNotRunning", err)
	}
}

// A caller that ends the event stream while a line is half read gets no
// error: the cut line is not an event.
func TestEventsEndedMidLine(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	ln, _ := net.Listen("unix", sock)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", api.ContentNDJSON)
		io.WriteString(w, "{\"event\":\"subscribed\"}\n{\"event\":\"au")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})}
	go srv.Serve(ln)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var got []string
	err := (&Client{Socket: sock}).Events(ctx, func(e api.Event) bool {
		got = append(got, e.Event)
		cancel() // the second line is cut: end the stream while it waits
		return true
	})
	if err != nil || len(got) != 1 {
		t.Fatalf("events %v, err %v; want one event and no error", got, err)
	}
}
