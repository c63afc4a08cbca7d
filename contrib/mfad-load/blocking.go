package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"syscall"

	"github.com/mfad/mfad/authn/totp"
	"github.com/mfad/mfad/ipc/api"
)

// blockingOTPOp signs client w in with its token's next code the way
// pam_mfad does: socket, connect, the listener's credentials, one write of
// the request, blocking reads until the answer is whole, close; every call
// blocks the calling thread in the kernel, so that no Go network poller or
// scheduler wakeup on the client's side is timed.
func blockingOTPOp(seeds []tokenSeed, counters []uint64) func(w int, sock string) error {
	return func(w int, sock string) error {
		s := seeds[w]
		code := totp.Code(s.secret, params, counters[w])
		counters[w]++
		body, err := json.Marshal(api.Authenticate{Account: s.account, Code: code})
		if err != nil {
			return err
		}
		req := fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: mfad\r\nUser-Agent: mfad-load\r\nAccept: application/json\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			api.PathAuthenticate, len(body), body)
		status, answer, err := blockingRoundTrip(sock, req)
		if err != nil {
			return err
		}
		if status != 200 {
			return fmt.Errorf("status %d: %s", status, answer)
		}
		var res api.AuthResult
		if err := json.Unmarshal(answer, &res); err != nil {
			return fmt.Errorf("answer: %w", err)
		}
		return nil
	}
}

// blockingRoundTrip sends req on a new connection to sock and reads one
// answer with a Content-Length body.
func blockingRoundTrip(sock string, req []byte) (int, []byte, error) {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, nil, err
	}
	defer syscall.Close(fd)
	if err := syscall.Connect(fd, &syscall.SockaddrUnix{Name: sock}); err != nil {
		return 0, nil, err
	}
	// pam_mfad asks who listens before it sends a code.
	if _, err := syscall.GetsockoptUcred(fd, syscall.SOL_SOCKET, syscall.SO_PEERCRED); err != nil {
		return 0, nil, err
	}
	for len(req) > 0 {
		n, err := syscall.Write(fd, req)
		if err != nil {
			return 0, nil, err
		}
		req = req[n:]
	}
	buf := make([]byte, 0, 4096)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := syscall.Read(fd, buf[len(buf):cap(buf)])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, nil, err
		}
		if n == 0 {
			return 0, nil, fmt.Errorf("connection closed after %d bytes", len(buf))
		}
		buf = buf[:len(buf)+n]
		head, body, ok := bytes.Cut(buf, []byte("\r\n\r\n"))
		if !ok {
			continue
		}
		status, length, err := parseHead(head)
		if err != nil {
			return 0, nil, err
		}
		if len(body) >= length {
			return status, body[:length], nil
		}
	}
}

// parseHead is the status and Content-Length of an answer's head.
func parseHead(head []byte) (status, length int, err error) {
	lines := bytes.Split(head, []byte("\r\n"))
	f := bytes.Fields(lines[0])
	if len(f) < 2 {
		return 0, 0, fmt.Errorf("bad status line %q", lines[0])
	}
	if status, err = strconv.Atoi(string(f[1])); err != nil {
		return 0, 0, fmt.Errorf("bad status line %q", lines[0])
	}
	length = -1
	for _, l := range lines[1:] {
		k, v, ok := bytes.Cut(l, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(k), []byte("Content-Length")) {
			if length, err = strconv.Atoi(string(bytes.TrimSpace(v))); err != nil {
				return 0, 0, fmt.Errorf("bad Content-Length %q", v)
			}
		}
	}
	if length < 0 {
		return 0, 0, fmt.Errorf("answer without Content-Length")
	}
	return status, length, nil
}
