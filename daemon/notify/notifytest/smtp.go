package notifytest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"
)

// Message is one message the server accepted.
type Message struct {
	// From and To are the envelope: MAIL FROM and every RCPT TO.
	From string
	To   []string
	// Subject is the Subject header, RFC 2047 words decoded.
	Subject string
	// Body is the body decoded from its Content-Transfer-Encoding
	// (quoted-printable or base64), with LF line ends.
	Body string
	// Header holds the message's headers as sent.
	Header mail.Header
	// Raw is the message as received after DATA (dot-unstuffed, LF line
	// ends).
	Raw string
	// TLS reports that the message came over STARTTLS.
	TLS bool
	// User is the name the client authenticated as, if any.
	User string
}

// Option configures StartSMTP.
type Option func(*SMTPServer)

// WithTLS offers STARTTLS with cfg (a certificate minted by the test).
func WithTLS(cfg *tls.Config) Option { return func(s *SMTPServer) { s.tls = cfg } }

// WithAuth offers AUTH PLAIN and requires it before MAIL.
func WithAuth(user, password string) Option {
	return func(s *SMTPServer) { s.user, s.password = user, password }
}

// WithReply makes the server answer reply (a full SMTP reply line such as
// "550 5.1.1 no such user") to a command instead of accepting it. verb is
// "MAIL", "RCPT", "DATA", or "." for the end of the message data.
func WithReply(verb, reply string) Option {
	return func(s *SMTPServer) { s.replies[strings.ToUpper(verb)] = reply }
}

// maxData bounds one message.
const maxData = 10 << 20

// SMTPServer is a small SMTP server on 127.0.0.1 (EHLO/HELO, STARTTLS,
// AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT). It stops when the test
// ends.
type SMTPServer struct {
	// Addr is the server's host:port.
	Addr string

	tls            *tls.Config
	user, password string
	replies        map[string]string

	ln      net.Listener
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]bool
	closed  bool
	msgs    []Message
	changed chan struct{} // closed and replaced when a message arrives
}

// StartSMTP starts a server on 127.0.0.1:0 and stops it at the test's
// cleanup.
func StartSMTP(t testing.TB, opts ...Option) *SMTPServer {
	t.Helper()
	s := &SMTPServer{replies: map[string]string{}, conns: map[net.Conn]bool{}, changed: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("notifytest: listen: %v", err)
	}
	s.ln, s.Addr = ln, ln.Addr().String()
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.Close)
	return s
}

// Close stops the server: the listener and every open connection. Later
// connections are refused. It is safe to call more than once.
func (s *SMTPServer) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		s.ln.Close()
		for c := range s.conns {
			c.Close()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Messages returns a copy of the messages accepted so far, in order.
func (s *SMTPServer) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Wait returns the messages once at least n have arrived, or the
// context's error.
func (s *SMTPServer) Wait(ctx context.Context, n int) ([]Message, error) {
	for {
		s.mu.Lock()
		if len(s.msgs) >= n {
			msgs := append([]Message(nil), s.msgs...)
			s.mu.Unlock()
			return msgs, nil
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("notifytest: waiting for %d messages: %w", n, ctx.Err())
		}
	}
}

func (s *SMTPServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = true
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			(&session{srv: s}).serve(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

func (s *SMTPServer) record(m Message) {
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// session is one client connection.
type session struct {
	srv   *SMTPServer
	conn  net.Conn
	r     *textproto.Reader
	hello bool
	tls   bool
	user  string
	from  *string
	to    []string
}

func (ss *session) reply(format string, args ...any) error {
	_, err := fmt.Fprintf(ss.conn, format+"\r\n", args...)
	return err
}

func (ss *session) setConn(c net.Conn) {
	ss.conn = c
	ss.r = textproto.NewReader(bufio.NewReader(c))
}

func (ss *session) reset() { ss.from, ss.to = nil, nil }

func (ss *session) serve(c net.Conn) {
	ss.setConn(c)
	if ss.reply("220 notifytest ESMTP") != nil {
		return
	}
	for {
		ss.conn.SetDeadline(time.Now().Add(time.Minute))
		line, err := ss.r.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		if r, ok := ss.srv.replies[verb]; ok && verb != "." {
			if ss.reply("%s", r) != nil {
				return
			}
			continue
		}
		if !ss.command(verb, arg) {
			return
		}
	}
}

// command handles one command; false ends the session.
func (ss *session) command(verb, arg string) bool {
	s := ss.srv
	switch verb {
	case "EHLO":
		ss.hello = true
		ss.reset()
		ext := []string{"notifytest", "8BITMIME", "PIPELINING"}
		if s.tls != nil && !ss.tls {
			ext = append(ext, "STARTTLS")
		}
		if s.user != "" {
			ext = append(ext, "AUTH PLAIN")
		}
		for i, e := range ext {
			sep := "-"
			if i == len(ext)-1 {
				sep = " "
			}
			if ss.reply("250%s%s", sep, e) != nil {
				return false
			}
		}
		return true
	case "HELO":
		ss.hello = true
		ss.reset()
		return ss.reply("250 notifytest") == nil
	case "STARTTLS":
		if s.tls == nil || ss.tls {
			return ss.reply("502 5.5.1 STARTTLS not offered") == nil
		}
		if ss.reply("220 2.0.0 ready to start TLS") != nil {
			return false
		}
		tc := tls.Server(ss.conn, s.tls)
		if tc.Handshake() != nil {
			return false
		}
		ss.setConn(tc)
		ss.tls, ss.hello, ss.user = true, false, ""
		ss.reset()
		return true
	case "AUTH":
		return ss.auth(arg)
	case "MAIL":
		switch {
		case !ss.hello:
			return ss.reply("503 5.5.1 say EHLO first") == nil
		case s.user != "" && ss.user == "":
			return ss.reply("530 5.7.0 authentication required") == nil
		case ss.from != nil:
			return ss.reply("503 5.5.1 nested MAIL") == nil
		}
		addr, ok := pathArg(arg, "FROM:")
		if !ok {
			return ss.reply("501 5.5.4 syntax: MAIL FROM:<address>") == nil
		}
		ss.from = &addr
		return ss.reply("250 2.1.0 ok") == nil
	case "RCPT":
		if ss.from == nil {
			return ss.reply("503 5.5.1 need MAIL first") == nil
		}
		addr, ok := pathArg(arg, "TO:")
		if !ok || addr == "" {
			return ss.reply("501 5.5.4 syntax: RCPT TO:<address>") == nil
		}
		ss.to = append(ss.to, addr)
		return ss.reply("250 2.1.5 ok") == nil
	case "DATA":
		if len(ss.to) == 0 {
			return ss.reply("503 5.5.1 need RCPT first") == nil
		}
		return ss.data()
	case "RSET":
		ss.reset()
		return ss.reply("250 2.0.0 ok") == nil
	case "NOOP":
		return ss.reply("250 2.0.0 ok") == nil
	case "QUIT":
		ss.reply("221 2.0.0 bye")
		return false
	default:
		return ss.reply("502 5.5.2 command not implemented") == nil
	}
}

func (ss *session) auth(arg string) bool {
	s := ss.srv
	mech, initial, _ := strings.Cut(arg, " ")
	switch {
	case s.user == "" || !strings.EqualFold(mech, "PLAIN"):
		return ss.reply("504 5.5.4 mechanism not supported") == nil
	case !ss.hello || ss.user != "":
		return ss.reply("503 5.5.1 bad sequence") == nil
	}
	if initial == "" {
		if ss.reply("334 ") != nil {
			return false
		}
		line, err := ss.r.ReadLine()
		if err != nil {
			return false
		}
		initial = line
	}
	b, err := base64.StdEncoding.DecodeString(initial)
	if err != nil {
		return ss.reply("501 5.5.2 bad base64") == nil
	}
	parts := strings.Split(string(b), "\x00")
	if len(parts) != 3 || parts[1] != s.user || parts[2] != s.password {
		return ss.reply("535 5.7.8 authentication failed") == nil
	}
	ss.user = parts[1]
	return ss.reply("235 2.7.0 authenticated") == nil
}

func (ss *session) data() bool {
	if ss.reply("354 end data with <CR><LF>.<CR><LF>") != nil {
		return false
	}
	raw, err := io.ReadAll(io.LimitReader(ss.r.DotReader(), maxData+1))
	if err != nil {
		return false
	}
	from, to := *ss.from, ss.to
	ss.reset()
	if len(raw) > maxData {
		return false // the rest of the data cannot be told from commands
	}
	if r, ok := ss.srv.replies["."]; ok {
		return ss.reply("%s", r) == nil
	}
	m, err := parseMessage(raw)
	if err != nil {
		return ss.reply("554 5.6.0 %s", strings.ReplaceAll(err.Error(), "\n", " ")) == nil
	}
	m.From, m.To, m.TLS, m.User = from, to, ss.tls, ss.user
	ss.srv.record(m)
	return ss.reply("250 2.0.0 queued") == nil
}

// pathArg reads "FROM:<addr> params" (prefix "FROM:") to addr.
func pathArg(arg, prefix string) (string, bool) {
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return "", false
	}
	rest := strings.TrimSpace(arg[len(prefix):])
	if !strings.HasPrefix(rest, "<") {
		return "", false
	}
	addr, _, ok := strings.Cut(rest[1:], ">")
	return addr, ok
}

// parseMessage decodes a message's subject and body.
func parseMessage(raw []byte) (Message, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Message{}, err
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		return Message{}, fmt.Errorf("subject: %v", err)
	}
	var body io.Reader = msg.Body
	switch strings.ToLower(strings.TrimSpace(msg.Header.Get("Content-Transfer-Encoding"))) {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return Message{}, fmt.Errorf("body: %v", err)
	}
	return Message{
		Subject: subject,
		Body:    strings.ReplaceAll(string(b), "\r\n", "\n"),
		Header:  msg.Header,
		Raw:     string(raw),
	}, nil
}
