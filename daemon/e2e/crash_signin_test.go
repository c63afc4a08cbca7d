package e2e

import (
	"context"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfad/mfad/authn/totp"
	"github.com/mfad/mfad/ipc/api"
)

// TestSIGKILLDuringSignInsKeepsEveryUsedCode kills mfad with SIGKILL while
// 32 connections sign in with HOTP codes and 8 more send wrong ones. After
// the restart no acknowledged code signs in again, and every acknowledged
// wrong code is still counted: a crash gives an attacker neither a replay
// nor a fresh set of guesses.
func TestSIGKILLDuringSignInsKeepsEveryUsedCode(t *testing.T) {
	// Guessers never reach the back-off: what is checked is the count.
	d := startDaemon(t, "", "[lockout]\nmax_failures = 1000000\nlockout_after = 1000001\n")
	ctx := context.Background()
	c := d.client()
	secret := []byte("12345678901234567890")
	b32 := base32.StdEncoding.EncodeToString(secret)

	const signers, guessers = 32, 8
	for i := range signers + guessers {
		name := fmt.Sprintf("crash%02d", i)
		if _, err := c.CreateAccount(ctx, api.CreateAccount{Name: name}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ImportDevice(ctx, name, api.ImportDevice{Kind: "hotp", Secret: b32, Source: "test"}); err != nil {
			t.Fatal(err)
		}
	}

	// The guessers' codes stay clear of every counter a look-ahead reaches.
	valid := map[string]bool{}
	for n := range uint64(1000) {
		valid[totp.Code(secret, totp.DefaultParams, n)] = true
	}

	var mu sync.Mutex
	lastUsed := map[string]uint64{} // account: highest counter acknowledged
	used := map[string]int{}        // account: acknowledged sign-ins
	refused := map[string]int{}     // account: acknowledged wrong codes
	total := 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range signers + guessers {
		name := fmt.Sprintf("crash%02d", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := d.client()
			for n := uint64(0); ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				code := totp.Code(secret, totp.DefaultParams, n)
				if i >= signers {
					code = fmt.Sprintf("%06d", (999_999-int(n))%1_000_000)
					if valid[code] {
						continue
					}
				}
				_, err := cl.Authenticate(ctx, api.Authenticate{Account: name, Code: code})
				var p *api.Problem
				switch {
				case err == nil && i < signers:
					mu.Lock()
					lastUsed[name], used[name] = n, used[name]+1
					total++
					mu.Unlock()
				case errors.As(err, &p) && p.Code == api.CodeInvalidCode && i >= signers:
					mu.Lock()
					refused[name]++
					total++
					mu.Unlock()
				case err != nil && errors.As(err, &p):
					t.Errorf("%s: code %d: unexpected answer %s %s", name, n, p.Code, p.Detail)
					return
				default: // the connection died with the daemon
					return
				}
			}
		}()
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		n := total
		mu.Unlock()
		if n >= 600 || time.Now().After(deadline) {
			break
		}
	}
	d.cmd.Process.Kill()
	<-d.exited
	close(stop)
	wg.Wait()
	if t.Failed() {
		return
	}
	if len(used) < signers/2 || len(refused) == 0 {
		t.Fatalf("too little traffic before the kill: %d signers and %d guessers answered", len(used), len(refused))
	}

	d.start("--socket", d.sock, "--state-dir", d.state, "--config", d.dir+"/mfad.toml")
	// The restart rebuilt the database from its write-ahead log: what is
	// checked below is what the log kept, not what the page cache did.
	if !strings.Contains(d.stderr.String(), "store recovered after an unclean stop") {
		t.Errorf("the restart after SIGKILL did not replay the write-ahead log:\n%s", d.stderr.String())
	}
	for name, n := range lastUsed {
		for _, c := range []uint64{n, 0} {
			_, err := d.client().Authenticate(ctx, api.Authenticate{Account: name, Code: totp.Code(secret, totp.DefaultParams, c)})
			var p *api.Problem
			if err == nil || !errors.As(err, &p) || (p.Code != api.CodeCodeAlreadyUsed && p.Code != api.CodeInvalidCode) {
				t.Errorf("%s: code %d, acknowledged before the kill, after restart: %v", name, c, err)
			}
		}
	}
	for name, n := range refused {
		a, err := d.client().Account(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if a.FailedAttempts < n {
			t.Errorf("%s: %d wrong codes acknowledged before the kill, %d counted after restart", name, n, a.FailedAttempts)
		}
	}
	t.Logf("%d answers before SIGKILL (%d accounts signed in, %d guessed)", total, len(used), len(refused))
}
