package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Controller answers the touch and power requests of unattended test
// suites over HTTP, N being the emulator's port (its UDP port, 0 without
// one):
//
//	GET /usbN/touch/on     the button is held: every presence test passes,
//	                       and one already waiting is approved
//	GET /usbN/touch/off    the button is released: presence tests wait
//	GET /usbN/power/on     plug in (power-up: the Reset window opens)
//	GET /usbN/power/off    unplug
//	GET /usbN/fault/KIND[?status=N&count=N&interval=D]
//	                       inject a fault, as the control socket's fault
//	GET /usbN/status       the emulator's status
//
// POST is taken as GET. Each answer is the control socket's JSON object;
// a refused request is 400, an unknown path 404.
type Controller struct {
	e *Emulator
	n int
}

// NewController returns the controller of e, which is port n.
func NewController(e *Emulator, n int) *Controller { return &Controller{e: e, n: n} }

func (c *Controller) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		writeReply(w, http.StatusMethodNotAllowed, reply{Error: "method not allowed"})
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) < 2 || parts[0] != "usb"+strconv.Itoa(c.n) {
		writeReply(w, http.StatusNotFound, reply{Error: fmt.Sprintf("no such path; this emulator is /usb%d", c.n)})
		return
	}
	var rep reply
	switch what := parts[1:]; {
	case len(what) == 2 && what[0] == "touch" && what[1] == "on":
		if rep = c.e.Control("presence auto"); rep.OK {
			rep = c.e.Control("touch")
		}
	case len(what) == 2 && what[0] == "touch" && what[1] == "off":
		rep = c.e.Control("presence manual")
	case len(what) == 2 && what[0] == "power" && what[1] == "on":
		rep = c.e.Control("plug")
	case len(what) == 2 && what[0] == "power" && what[1] == "off":
		rep = c.e.Control("unplug")
	case len(what) == 2 && what[0] == "fault":
		args := []string{what[1]}
		q := r.URL.Query()
		for _, k := range []string{"status", "count", "interval"} {
			if v := q.Get(k); v != "" {
				args = append(args, k+"="+v)
			}
		}
		for k := range q {
			if k != "status" && k != "count" && k != "interval" {
				writeReply(w, http.StatusBadRequest, reply{Error: fmt.Sprintf("unknown fault argument %q", k)})
				return
			}
		}
		f, err := parseFault(args)
		if err == nil {
			err = c.e.SetFault(f)
		}
		rep = reply{OK: err == nil}
		if err != nil {
			rep.Error = err.Error()
		}
	case len(what) == 1 && what[0] == "status":
		rep = c.e.Control("status")
	default:
		writeReply(w, http.StatusNotFound, reply{Error: "no such path (touch/on|off, power/on|off, fault/KIND, status)"})
		return
	}
	code := http.StatusOK
	if !rep.OK {
		code = http.StatusBadRequest
	}
	writeReply(w, code, rep)
}

func writeReply(w http.ResponseWriter, code int, r reply) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(r)
}

// ListenController listens where the controller is to answer: an absolute
// path is a Unix socket (mode 0600), anything else HOST:PORT on a loopback
// address. The controller has no authentication, so it is refused on any
// other address.
func ListenController(addr string) (net.Listener, error) {
	if strings.HasPrefix(addr, "/") {
		return ListenControl(addr)
	}
	if err := loopback(addr); err != nil {
		return nil, fmt.Errorf("emulator: controller address %q: %w (or an absolute Unix socket path); the controller has no authentication", addr, err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("emulator: controller: %w", err)
	}
	return l, nil
}

// ServeController answers controller requests on l until ctx ends.
func (e *Emulator) ServeController(ctx context.Context, l net.Listener, n int) error {
	srv := &http.Server{Handler: NewController(e, n), ReadHeaderTimeout: 10 * time.Second}
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	err := srv.Serve(l)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("emulator: controller: %w", err)
}

// loopback accepts HOST:PORT whose host is localhost or a loopback address.
func loopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want HOST:PORT")
	}
	if host == "localhost" {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err != nil || !ip.IsLoopback() {
		return errors.New("only a loopback address is allowed")
	}
	return nil
}
