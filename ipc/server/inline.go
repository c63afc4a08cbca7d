package server

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"syscall"
	"time"
)

// A connection that arrives while mfad has no other open is served its
// first request on the goroutine that accepted it, when that request is
// quick (a code sign-in, the device list, /v1/info): a PAM sign-in then
// costs no goroutine start, no background read and no wake of another
// thread before its answer, which is most of what a lone request costs a
// daemon woken from idle. Anything else, and the rest of the connection,
// is handed to net/http as the bytes it sent, so one server decides what
// every request means.
//
// The accept loop waits at most inlineWait for the request to arrive: a
// peer that connects and sends nothing holds it up that long once, and
// its connection is then open, so the next one goes to net/http.
const inlineWait = 20 * time.Millisecond

// handOff is the listener net/http serves: connections the accept loop
// passes on.
type handOff struct {
	conns  chan net.Conn
	addr   net.Addr
	done   chan struct{}
	closed sync.Once
	close  func() error // closes the real listener
}

func (h *handOff) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

func (h *handOff) Close() error {
	var err error
	h.closed.Do(func() { close(h.done); err = h.close() })
	return err
}

func (h *handOff) Addr() net.Addr { return h.addr }

// give passes c on; when net/http has stopped, c is closed.
func (h *handOff) give(c net.Conn) {
	select {
	case h.conns <- c:
	case <-h.done:
		c.Close()
	}
}

// replayConn gives net/http the bytes the accept loop read first.
type replayConn struct {
	*peerConn
	pending []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.peerConn.Read(p)
}

// recorder keeps every byte read from the connection until the accept
// loop decides, so that a handed-off request reaches net/http whole.
type recorder struct {
	r   io.Reader
	buf []byte
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.buf = append(r.buf, p[:n]...)
	return n, err
}

// inlineWriter buffers a quick answer; it is written in one piece.
type inlineWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *inlineWriter) Header() http.Header { return w.header }

func (w *inlineWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *inlineWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}

// tryInline serves c's first request if it is quick, and passes the
// connection on to net/http unless it is to be closed. It never lets a
// handler's panic reach the accept loop.
func (s *Server) tryInline(c *peerConn) {
	s.inflight.Add(1)
	defer s.inflight.Done()
	pc, err := newPatientConn(c.UnixConn, time.Now().Add(s.inlineWait), s.cfg.WriteTimeout)
	if err != nil {
		c.Close()
		return
	}
	rec := &recorder{r: pc}
	br := bufio.NewReaderSize(rec, 4096)
	handOff := func() {
		pc.clearDeadlines()
		s.handoff.give(&replayConn{peerConn: c, pending: rec.buf})
	}
	req, err := http.ReadRequest(br)
	if err != nil || !plainRequest(req, rec.buf, s.cfg.MaxBodyBytes) || !s.quickRoute(req) {
		handOff()
		return
	}
	body := make([]byte, req.ContentLength)
	if _, err := io.ReadFull(br, body); err != nil {
		handOff()
		return
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.RemoteAddr = "@"
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), principalKey{}, c.id))
	defer cancel()
	req = req.WithContext(ctx)
	w := &inlineWriter{header: http.Header{}}
	handed := false
	func() {
		defer func() {
			if v := recover(); v != nil {
				if v != http.ErrAbortHandler {
					s.log.Error("handler panicked", "panic", v, "stack", string(debug.Stack()))
				}
				w.status = -1
			}
		}()
		s.mux.ServeHTTP(w, req)
		handed = w.status == statusHandOff
	}()
	if handed {
		handOff()
		return
	}
	if w.status <= 0 {
		c.Close()
		return
	}
	closing := req.Close || w.header.Get("Connection") == "close"
	resp := http.Response{
		StatusCode: w.status, ProtoMajor: 1, ProtoMinor: 1, Header: w.header,
		ContentLength: int64(w.body.Len()), Body: io.NopCloser(&w.body), Close: closing, Request: req,
	}
	if w.header.Get("Content-Type") == "" && w.body.Len() > 0 {
		w.header.Set("Content-Type", http.DetectContentType(w.body.Bytes()))
	}
	if w.header.Get("Date") == "" {
		w.header.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	s.inlineAnswers.Add(1)
	out := bufio.NewWriterSize(pc, 4096)
	err = resp.Write(out)
	if err == nil {
		err = out.Flush()
	}
	if err != nil || closing {
		c.Close()
		return
	}
	// The rest of the connection is net/http's, with what the peer sent
	// after the first request.
	rest, _ := br.Peek(br.Buffered())
	pc.clearDeadlines()
	s.handoff.give(&replayConn{peerConn: c, pending: bytes.Clone(rest)})
}

// patientConn reads and writes the accept loop's connection without a
// deadline while the socket is ready, and sets one only when a call would
// block: a deadline is a timer, and a new timer wakes another thread to
// watch it, which is what answering on the accept loop saves. The peer
// normally sent its request before mfad read it, and a short answer fits
// the socket's buffer.
type patientConn struct {
	c         *net.UnixConn
	raw       syscall.RawConn
	readBy    time.Time
	writeFor  time.Duration
	deadlines bool
}

func newPatientConn(c *net.UnixConn, readBy time.Time, writeFor time.Duration) (*patientConn, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	return &patientConn{c: c, raw: raw, readBy: readBy, writeFor: writeFor}, nil
}

// Read reads what is there; when nothing is, it waits until readBy.
func (p *patientConn) Read(b []byte) (int, error) {
	if !p.deadlines && len(b) > 0 {
		var n int
		var err error
		if rerr := p.raw.Read(func(fd uintptr) bool {
			n, err = syscall.Read(int(fd), b)
			return true
		}); rerr != nil {
			return 0, rerr
		}
		switch {
		case err == nil && n > 0:
			return n, nil
		case err == nil:
			return 0, io.EOF
		case err != syscall.EAGAIN && err != syscall.EINTR:
			return 0, err
		}
		p.setDeadlines()
	}
	return p.c.Read(b)
}

// Write writes what the socket takes at once, and the rest within the
// server's write timeout.
func (p *patientConn) Write(b []byte) (int, error) {
	written := 0
	if !p.deadlines {
		var err error
		if werr := p.raw.Write(func(fd uintptr) bool {
			for written < len(b) {
				var n int
				n, err = syscall.Write(int(fd), b[written:])
				if n <= 0 || err != nil {
					break
				}
				written += n
			}
			return true
		}); werr != nil {
			return written, werr
		}
		if written == len(b) {
			return written, nil
		}
		if err != nil && err != syscall.EAGAIN && err != syscall.EINTR {
			return written, err
		}
		p.setDeadlines()
	}
	n, err := p.c.Write(b[written:])
	return written + n, err
}

func (p *patientConn) setDeadlines() {
	p.deadlines = true
	p.c.SetReadDeadline(p.readBy)
	p.c.SetWriteDeadline(time.Now().Add(p.writeFor))
}

// clearDeadlines leaves the connection as net/http expects it.
func (p *patientConn) clearDeadlines() {
	if p.deadlines {
		p.c.SetDeadline(time.Time{})
	}
}

// plainRequest admits the requests the accept loop answers: HTTP/1.1 GET
// or POST with one Host header, a body of a stated length within the
// limit, no Expect, and header names and values of plain ASCII. Anything
// else goes to net/http, which answers or refuses it as it always does.
// raw holds the bytes read, from the request line on.
func plainRequest(r *http.Request, raw []byte, maxBody int64) bool {
	if r.ProtoMajor != 1 || r.ProtoMinor != 1 || (r.Method != http.MethodGet && r.Method != http.MethodPost) ||
		r.ContentLength < 0 || r.ContentLength > maxBody || len(r.TransferEncoding) > 0 ||
		r.Host == "" || r.Header["Expect"] != nil {
		return false
	}
	// http.ReadRequest keeps the first Host and drops the header; a
	// second one is net/http's to refuse.
	head, _, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		return false
	}
	hosts := 0
	for _, line := range bytes.Split(head, []byte("\r\n"))[1:] {
		if name, _, ok := bytes.Cut(line, []byte(":")); !ok || bytes.EqualFold(bytes.TrimSpace(name), []byte("Host")) {
			hosts++
		}
	}
	if hosts != 1 {
		return false
	}
	for k, vs := range r.Header {
		for i := 0; i < len(k); i++ {
			if c := k[i]; c <= ' ' || c >= 0x7f || c == ':' {
				return false
			}
		}
		for _, v := range vs {
			for i := 0; i < len(v); i++ {
				if c := v[i]; (c < ' ' && c != '\t') || c >= 0x7f {
					return false
				}
			}
		}
	}
	return true
}

// statusHandOff marks an inline answer that the route declined to give.
const statusHandOff = -2

// quickRoute says whether the route r asks for may be answered on the
// accept loop: one that never waits for a person or a device.
func (s *Server) quickRoute(r *http.Request) bool {
	_, pattern := s.mux.Handler(r)
	rt, ok := s.byPattern[pattern]
	return ok && rt.Quick
}
