package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfad/mfad/daemon/notify"
)

type hookBody struct {
	Phone   string `json:"phone"`
	Account string `json:"account"`
	Code    string `json:"code"`
}

func TestWebhook(t *testing.T) {
	var got hookBody
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Method != http.MethodPost || r.URL.Path != "/sms" {
			t.Errorf("%s %s", r.Method, r.URL.Path)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil {
			t.Errorf("body: %v", err)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	err := notify.Webhook{URL: srv.URL + "/sms"}.SendCode(context.Background(), "+15551234567", "alice", testCode)
	if err != nil {
		t.Fatal(err)
	}
	if want := (hookBody{"+15551234567", "alice", testCode}); got != want || calls.Load() != 1 {
		t.Errorf("got %+v in %d calls, want %+v once", got, calls.Load(), want)
	}
}

func TestWebhookHTTPS(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		io.WriteString(w, `{"status":"queued"}`)
	}))
	defer srv.Close()
	if !strings.HasPrefix(srv.URL, "https://") {
		t.Fatal(srv.URL)
	}
	if err := (notify.Webhook{URL: srv.URL, Client: srv.Client()}).SendCode(context.Background(), "+1555", "alice", testCode); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 {
		t.Errorf("%d calls", calls.Load())
	}
	// Without the test CA the certificate is not trusted.
	err := notify.Webhook{URL: srv.URL}.SendCode(context.Background(), "+1555", "alice", testCode)
	if !errors.Is(err, notify.ErrDelivery) || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("err = %v, want a certificate error", err)
	}
	noCode(t, err, testCode)
}

func TestWebhookErrorStatus(t *testing.T) {
	for _, status := range []int{http.StatusInternalServerError, http.StatusBadRequest, http.StatusUnauthorized, http.StatusMultipleChoices} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			// A provider echoing the request, and a lot of it.
			w.WriteHeader(status)
			w.Write(b)
			io.WriteString(w, strings.Repeat("x", 1<<20))
		}))
		err := notify.Webhook{URL: srv.URL + "/hook?token=s3cr3t-token"}.SendCode(context.Background(), "+1555", "alice", testCode)
		srv.Close()
		if !errors.Is(err, notify.ErrDelivery) {
			t.Fatalf("%d: err = %v, want ErrDelivery", status, err)
		}
		if !strings.Contains(err.Error(), http.StatusText(status)) || !strings.Contains(err.Error(), "/hook") {
			t.Errorf("%d: error lacks the status or the endpoint: %v", status, err)
		}
		noCode(t, err, testCode)
		noCode(t, err, "s3cr3t-token")
		if len(err.Error()) > 300 {
			t.Errorf("error echoes the answer: %.400s", err)
		}
	}
}

func TestWebhookRedirectNotFollowed(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	err := notify.Webhook{URL: srv.URL, Client: &http.Client{}}.SendCode(context.Background(), "+1555", "alice", testCode)
	if !errors.Is(err, notify.ErrDelivery) || !strings.Contains(err.Error(), "307") {
		t.Errorf("err = %v, want the 307 as an error", err)
	}
	if elsewhere.Load() != 0 {
		t.Error("the redirect was followed: the code went elsewhere")
	}
}

// failTransport fails the test if any request is made.
type failTransport struct{ t *testing.T }

func (f failTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	f.t.Errorf("request made to %s", r.URL.Host)
	return nil, errors.New("no network in this test")
}

func TestWebhookRefusesPlainHTTP(t *testing.T) {
	client := &http.Client{Transport: failTransport{t}}
	for _, u := range []string{
		"http://sms.example.com/hook",
		"http://10.0.0.1/hook",
		"http://localhost.example.com/hook",
		"ftp://sms.example.com/hook",
		"https:///nohost",
		"://bad",
	} {
		err := notify.Webhook{URL: u, Client: client}.SendCode(context.Background(), "+1555", "alice", testCode)
		if !errors.Is(err, notify.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", u, err)
		}
	}
	// Loopback may be plain http.
	for _, u := range []string{"http://127.0.0.1:1/hook", "http://localhost:1/hook", "http://[::1]:1/hook"} {
		err := notify.Webhook{URL: u}.SendCode(context.Background(), "+1555", "alice", testCode)
		if errors.Is(err, notify.ErrInvalid) || !errors.Is(err, notify.ErrDelivery) {
			t.Errorf("%s: err = %v, want a delivery error (nothing listens)", u, err)
		}
		noCode(t, err, testCode)
	}
}

func TestWebhookTimeoutAndCancel(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	err := notify.Webhook{URL: srv.URL, Timeout: 50 * time.Millisecond}.SendCode(context.Background(), "+1555", "alice", testCode)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context.DeadlineExceeded", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = notify.Webhook{URL: srv.URL}.SendCode(ctx, "+1555", "alice", testCode)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	noCode(t, err, testCode)
}
