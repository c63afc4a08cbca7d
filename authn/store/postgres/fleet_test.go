package postgres

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/authn/store/postgres/pgtest"
	"github.com/mfad/mfad/authn/store/storetest"
	"github.com/mfad/mfad/authn/totp"
)

// host is one workstation of a fleet: its own authn.Service over its own
// Store on the fleet's database, with a shared test clock.
type host struct {
	svc *authn.Service
	st  *Store
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func twoHosts(t *testing.T, p authn.Policy) (*host, *host, *fakeClock) {
	t.Helper()
	dsn := pgtest.DB(t)
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0).UTC()}
	var hs []*host
	for _, name := range []string{"ws-a", "ws-b"} {
		st, err := openOpts(dsn, storetest.Key(), Options{Host: name, MaxConns: 20})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		hs = append(hs, &host{st: st, svc: authn.NewService(st, authn.Config{Now: clk.Now, Policy: p})})
	}
	return hs[0], hs[1], clk
}

func code(clk *fakeClock, secret []byte, offset int64) string {
	return totp.Code(secret, totp.DefaultParams, uint64(int64(totp.StepAt(clk.Now(), 30*time.Second))+offset))
}

var alice = authn.Actor{UID: 1000, Name: "alice"}

func enroll(t *testing.T, h *host, clk *fakeClock) (*authn.Device, []byte) {
	t.Helper()
	ctx := context.Background()
	e, err := h.svc.Enroll(ctx, alice, "alice", authn.EnrollRequest{Type: authn.DeviceTOTP, Label: "phone"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := h.svc.Activate(ctx, alice, "alice", e.Device.ID, authn.CodePair{Code1: code(clk, e.Secret, -1), Code2: code(clk, e.Secret, 0)})
	if err != nil {
		t.Fatal(err)
	}
	return d, e.Secret
}

func errCode(err error) string {
	var e *authn.Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

// TestFleetCodeAcceptedOnce: 2 x 16 sign-ins race the same valid code
// across two hosts; exactly one is accepted, every other one is refused as
// a spent code, in each of several rounds.
func TestFleetCodeAcceptedOnce(t *testing.T) {
	a, b, clk := twoHosts(t, authn.Policy{MaxFailures: 1000, LockoutAfter: 1000})
	_, secret := enroll(t, a, clk)
	for round := range 4 {
		clk.Add(30 * time.Second)
		if n := race(t, round, []*host{a, b}, 32, code(clk, secret, 0), nil); n != 1 {
			t.Fatalf("round %d: the code was accepted %d times across two hosts, want once", round, n)
		}
	}
}

// race sends n sign-ins with code at once, spread over hosts, and returns
// how many were accepted; each other one must be refused as a spent code.
// started, if not nil, runs once they are all under way.
func race(t *testing.T, round int, hosts []*host, n int, code string, started func()) int {
	t.Helper()
	var ok atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := hosts[i%len(hosts)]
			_, err := h.svc.Authenticate(context.Background(), alice, authn.AuthRequest{Account: "alice", Code: code}, nil)
			switch {
			case err == nil:
				ok.Add(1)
			case errCode(err) != authn.CodeInvalidCode && errCode(err) != "code_already_used":
				errs <- errCode(err)
			}
		}()
	}
	if started != nil {
		started()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("round %d: a racing sign-in failed otherwise than as a spent code: %s", round, e)
	}
	return int(ok.Load())
}

// TestFleetLossAndLockoutHoldEverywhere: a device reported lost on A is
// refused on B at once; a lockout earned on A holds on B; the audit log
// names the host of each entry.
func TestFleetLossAndLockoutHoldEverywhere(t *testing.T) {
	a, b, clk := twoHosts(t, authn.Policy{MaxFailures: 2, LockoutAfter: 3})
	ctx := context.Background()
	d1, s1 := enroll(t, a, clk)
	clk.Add(30 * time.Second)
	res, err := b.svc.Authenticate(ctx, alice, authn.AuthRequest{Account: "alice", Code: code(clk, s1, 0)}, nil)
	if err != nil {
		t.Fatalf("sign-in on B with a device enrolled on A: %v", err)
	}
	stepped := alice
	stepped.StepUp = res.StepUpToken
	e2, err := b.svc.Enroll(ctx, stepped, "alice", authn.EnrollRequest{Type: authn.DeviceTOTP, Label: "spare"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.Activate(ctx, alice, "alice", e2.Device.ID, authn.CodePair{Code1: code(clk, e2.Secret, -1), Code2: code(clk, e2.Secret, 0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.svc.ReportLost(ctx, alice, "alice", d1.ID); err != nil {
		t.Fatal(err)
	}
	clk.Add(30 * time.Second)
	if _, err := b.svc.Authenticate(ctx, alice, authn.AuthRequest{Account: "alice", Code: code(clk, s1, 0)}, nil); errCode(err) != authn.CodeInvalidCode {
		t.Fatalf("B with a code of the device reported lost on A: %v, want %s", err, authn.CodeInvalidCode)
	}

	// Failures on A up to the lockout (time passes between them, so no
	// delay refuses them first).
	// Each answer is checked, so that a sign-in failing for another reason
	// (a database error under load, say) shows here rather than as a
	// missing lockout below.
	for i, want := range []string{authn.CodeInvalidCode, authn.CodeInvalidCode, authn.CodeLockedOut} {
		clk.Add(time.Minute)
		_, err := a.svc.Authenticate(ctx, alice, authn.AuthRequest{Account: "alice", Code: "000000"}, nil)
		if errCode(err) != want {
			t.Fatalf("wrong code #%d on A: %v, want %s", i+2, err, want)
		}
	}
	clk.Add(time.Minute)
	_, err = b.svc.Authenticate(ctx, alice, authn.AuthRequest{Account: "alice", Code: code(clk, e2.Secret, 0)}, nil)
	if errCode(err) != authn.CodeLockedOut {
		t.Fatalf("B after a lockout earned on A: %v, want %s", err, authn.CodeLockedOut)
	}

	var hosts = map[string]bool{}
	rows, err := a.st.Pool().Query(ctx, `SELECT DISTINCT host FROM audit`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var h string
		rows.Scan(&h)
		hosts[h] = true
	}
	if !hosts["ws-a"] || !hosts["ws-b"] || len(hosts) != 2 {
		t.Errorf("audit hosts = %v, want ws-a and ws-b", hosts)
	}
}
