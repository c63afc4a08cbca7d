package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfad/mfad/authn/totp"
	"github.com/mfad/mfad/ipc/api"
	"github.com/mfad/mfad/ipc/client"
)

func TestInterleave(t *testing.T) {
	ts := []*target{{name: "a"}, {name: "b"}, {name: "c"}}
	var order []string
	n := 0
	res := interleave(3, ts, func(tg *target) result {
		order = append(order, tg.name)
		n++
		return result{rate: float64(n)}
	})
	if got := strings.Join(order, ""); got != "abcbcacab" {
		t.Errorf("order %s, want abcbcacab", got)
	}
	// Each target's results, by round, whatever ran first.
	for i, want := range [][]float64{{1, 6, 8}, {2, 4, 9}, {3, 5, 7}} {
		for r, w := range want {
			if res[i][r].rate != w {
				t.Errorf("%s round %d: %v, want %v", ts[i].name, r, res[i][r].rate, w)
			}
		}
	}
}

func TestCompareRow(t *testing.T) {
	r := func(rate float64, p50, cpu time.Duration) result { return result{rate: rate, p50: p50, srvCPU: cpu} }
	a := []result{r(900, 2*time.Millisecond, 100*time.Microsecond), r(1000, 3*time.Millisecond, 90*time.Microsecond),
		r(5000, time.Millisecond, 80*time.Microsecond)}
	b := []result{r(500, 4*time.Millisecond, 200*time.Microsecond), r(400, 4*time.Millisecond, 220*time.Microsecond)}
	// Medians: A 1000/s, 2 ms, 90 µs; B (an even count: the mean of the middle two) 450/s, 4 ms, 210 µs.
	want := "| otp/group | 32 | B | 1000 | 450 | **2.22** | 2ms | 4ms | **0.50** | 90 µs | 210 µs | **0.43** |"
	if got := compareRow("otp/group", 32, "B", a, b); got != want {
		t.Errorf("row\n got %s\nwant %s", got, want)
	}
	if row := compareRow("x", 1, "B", a, []result{{}}); !strings.Contains(row, "| - |") {
		t.Errorf("a zero baseline gives no ratio: %s", row)
	}
}

// With --gap, each request goes on a new connection (a PAM sign-in's
// pattern); without it, a client keeps its connection.
func TestGapOpensAConnectionPerRequest(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int64
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`{}`)) }),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		},
	}
	go srv.Serve(ln)
	defer srv.Close()
	tg := &target{sock: sock, op: func(_ int, cl *client.Client) error { _, err := cl.Info(context.Background()); return err }}
	for _, c := range []struct {
		gap  time.Duration
		want int64
	}{{0, 1}, {time.Millisecond, 3}} {
		gap = c.gap
		conns.Store(0)
		n := 0
		drive(tg, 1, func() bool { n++; return n <= 3 }, func(_ int, _ time.Duration, err error) {
			if err != nil {
				t.Error(err)
			}
		})
		if got := conns.Load(); got != c.want {
			t.Errorf("gap %v: %d connections for 3 requests, want %d", c.gap, got, c.want)
		}
	}
	gap = 0
}

// --blocking sends the same sign-in as the client library, on a new
// connection each time, and reads answers however the server splits them.
func TestBlockingOTPOp(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int64
	var got []api.Authenticate
	status := http.StatusOK
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var a api.Authenticate
			if r.Method != "POST" || r.URL.Path != api.PathAuthenticate || json.NewDecoder(r.Body).Decode(&a) != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			got = append(got, a)
			body := []byte(`{"result":"success","account":"` + a.Account + `"}`)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.WriteHeader(status)
			// Head and body in two writes: the client must wait for the body.
			w.(http.Flusher).Flush()
			w.Write(body)
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		},
	}
	go srv.Serve(ln)
	defer srv.Close()
	seeds := newSeeds(1)
	counters := []uint64{2}
	op := blockingOTPOp(seeds, counters)
	for i := range 2 {
		if err := op(0, sock); err != nil {
			t.Fatalf("sign-in %d: %v", i, err)
		}
	}
	if conns.Load() != 2 {
		t.Errorf("%d connections for 2 sign-ins, want 2", conns.Load())
	}
	for i, a := range got {
		if want := totp.Code(seeds[0].secret, params, uint64(2+i)); a.Account != seeds[0].account || a.Code != want {
			t.Errorf("sign-in %d sent %+v, want account %s code %s", i, a, seeds[0].account, want)
		}
	}
	status = http.StatusUnauthorized
	if err := op(0, sock); err == nil || !strings.Contains(err.Error(), "status 401") {
		t.Errorf("a refused sign-in: %v, want status 401", err)
	}
}
