package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/mfad/mfad/ipc/api"
	"github.com/mfad/mfad/ipc/peercred"
)

// peerListener reads each connection's peer credentials once, at accept,
// and refuses connections beyond the peer's share.
type peerListener struct {
	*net.UnixListener
	srv      *Server
	slots    *slots
	refusing chan struct{} // bounds the refusals being answered at once

	// A flood of refused connections is logged once a second, with a count.
	logMu    sync.Mutex
	lastLog  time.Time
	unlogged int
}

func (l *peerListener) logRefusal() (int, bool) {
	l.logMu.Lock()
	defer l.logMu.Unlock()
	l.unlogged++
	if time.Since(l.lastLog) < time.Second {
		return 0, false
	}
	n := l.unlogged
	l.lastLog, l.unlogged = time.Now(), 0
	return n, true
}

type peerConn struct {
	*net.UnixConn
	id      *identity
	release func()
	once    sync.Once
}

func (c *peerConn) peer() *identity { return c.id }

func (c *peerConn) Close() error {
	c.once.Do(c.release)
	return c.UnixConn.Close()
}

func (l *peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			return nil, err
		}
		cred, err := peercred.Get(c)
		if err != nil {
			// Fail closed: a peer we cannot identify gets nothing.
			l.srv.log.Warn("dropping connection: peer credentials unreadable", "err", err)
			c.Close()
			continue
		}
		if err := l.slots.acquire(cred.UID); err != nil {
			if n, ok := l.logRefusal(); ok {
				l.srv.log.Warn("refusing connection", "uid", cred.UID, "pid", cred.PID, "reason", err, "refused_since_last_log", n)
			}
			// Answering a refused connection costs a goroutine for up to a
			// second; a flood of them is closed without an answer.
			select {
			case l.refusing <- struct{}{}:
				go func() { refuse(c, err.Error()); <-l.refusing }()
			default:
				c.Close()
			}
			continue
		}
		uid := cred.UID
		l.srv.open.Add(1)
		return &peerConn{UnixConn: c, id: &identity{cred: cred, srv: l.srv}, release: func() {
			l.slots.release(uid)
			l.srv.open.Add(-1)
		}}, nil
	}
}

// refuse answers one 429 problem on a connection that was not admitted.
func refuse(c net.Conn, why string) {
	defer c.Close()
	body, _ := json.Marshal(api.Problem{
		Type: "about:blank", Title: http.StatusText(http.StatusTooManyRequests), Status: http.StatusTooManyRequests,
		Code: api.CodeTooManyConnections, Detail: "too many connections: " + why, RetryAfter: 1,
	})
	c.SetDeadline(time.Now().Add(time.Second))
	// Read the request head first, so the client is not writing into a
	// closed socket when the answer comes.
	br := bufio.NewReaderSize(c, 4096)
	for total := 0; total < 16<<10; {
		line, err := br.ReadSlice('\n')
		total += len(line)
		if err != nil || len(line) <= 2 {
			break
		}
	}
	fmt.Fprintf(c, "HTTP/1.1 429 Too Many Requests\r\nContent-Type: %s\r\nContent-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s",
		api.ContentProblem, len(body), body)
}

// userNames caches uid -> user name lookups for a minute.
type userNames struct {
	mu     sync.Mutex
	lookup func(uid uint32) string
	cache  map[uint32]nameEntry
}

type nameEntry struct {
	name string
	at   time.Time
}

func (u *userNames) get(uid uint32) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if e, ok := u.cache[uid]; ok && time.Since(e.at) < time.Minute {
		return e.name
	}
	n := u.lookup(uid)
	if len(u.cache) > 4096 {
		clear(u.cache)
	}
	u.cache[uid] = nameEntry{n, time.Now()}
	return n
}
