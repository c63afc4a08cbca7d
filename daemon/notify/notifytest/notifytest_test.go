package notifytest_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/mfad/mfad/daemon/notify/notifytest"
)

// dialog speaks to the server line by line and checks each reply's code.
func dialog(t *testing.T, addr string, steps [][2]string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := textproto.NewReader(bufio.NewReader(c))
	for _, s := range steps {
		if s[0] != "" {
			fmt.Fprintf(c, "%s\r\n", s[0])
		}
		code, msg, err := r.ReadResponse(0)
		if got := fmt.Sprint(code); got != s[1] {
			t.Fatalf("after %q: %d %s (%v), want %s", s[0], code, msg, err, s[1])
		}
	}
}

func TestServerProtocol(t *testing.T) {
	srv := notifytest.StartSMTP(t)
	data := "Subject: =?utf-8?q?caf=C3=A9?=\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n..dot=\r\n soft break =3D ok\r\n."
	dialog(t, srv.Addr, [][2]string{
		{"", "220"},
		{"MAIL FROM:<a@x>", "503"}, // before HELO
		{"HELO client", "250"},
		{"RCPT TO:<b@y>", "503"}, // before MAIL
		{"DATA", "503"},
		{"MAIL FROM:<a@x>", "250"},
		{"RSET", "250"},
		{"RCPT TO:<b@y>", "503"}, // RSET forgot MAIL
		{"NOOP", "250"},
		{"MAIL FROM:<a@x> BODY=8BITMIME", "250"},
		{"RCPT TO:<b@y>", "250"},
		{"RCPT TO:<c@z>", "250"},
		{"DATA", "354"},
		{data, "250"},
		{"VRFY b", "502"},
		{"QUIT", "221"},
	})
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	m := msgs[0]
	if m.From != "a@x" || strings.Join(m.To, ",") != "b@y,c@z" || m.Subject != "café" || m.Body != ".dot soft break = ok\n" || m.TLS {
		t.Errorf("%+v", m)
	}
}

func TestServerReply(t *testing.T) {
	srv := notifytest.StartSMTP(t, notifytest.WithReply("rcpt", "550 5.1.1 no such user"))
	dialog(t, srv.Addr, [][2]string{{"", "220"}, {"EHLO c", "250"}, {"MAIL FROM:<a@x>", "250"}, {"RCPT TO:<b@y>", "550"}})
}

func TestServerAuthRequired(t *testing.T) {
	srv := notifytest.StartSMTP(t, notifytest.WithAuth("u", "p"))
	dialog(t, srv.Addr, [][2]string{
		{"", "220"}, {"EHLO c", "250"},
		{"MAIL FROM:<a@x>", "530"},
		{"AUTH PLAIN AHUAeA==", "535"}, // \0u\0x
		{"AUTH PLAIN AHUAcA==", "235"}, // \0u\0p
		{"MAIL FROM:<a@x>", "250"},
	})
}

func TestWaitHonoursContext(t *testing.T) {
	srv := notifytest.StartSMTP(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := srv.Wait(ctx, 1); err == nil {
		t.Fatal("Wait returned without messages")
	}
	if msgs, err := srv.Wait(ctx, 0); err != nil || len(msgs) != 0 {
		t.Fatalf("Wait(0): %v %v", msgs, err)
	}
}

func TestCloseRefusesConnections(t *testing.T) {
	srv := notifytest.StartSMTP(t)
	c, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv.Close()
	if c2, err := net.Dial("tcp", srv.Addr); err == nil {
		c2.Close()
		t.Fatal("connection accepted after Close")
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	br.ReadString('\n') // the greeting, if it was sent
	if _, err := br.ReadString('\n'); err == nil {
		t.Error("open connection survived Close")
	}
}

func TestPhoneScriptEmpty(t *testing.T) {
	_, read := notifytest.PhoneScript(t, t.TempDir())
	if got := read(); len(got) != 0 {
		t.Errorf("%v", got)
	}
}
