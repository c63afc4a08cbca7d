package e2e

import (
	"encoding/base32"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mfad/mfad/authn/totp"
	"github.com/mfad/mfad/ipc/api"
)

// The brute-force guard against a real user who opens many connections at
// once: never more guesses compared than the policy allows.

// burstAs sends every body to path at once, one connection each, from a
// process running as who.
func burstAs(t *testing.T, who, sock, path string, bodies []string) []answer {
	t.Helper()
	out := runHelper(t, who, []string{"MFAD_E2E_HELPER=burst", "MFAD_E2E_SOCK=" + sock, "MFAD_E2E_PATH=" + path},
		strings.NewReader(strings.Join(bodies, "\n")+"\n"))
	var answers []answer
	if err := json.Unmarshal(out, &answers); err != nil || len(answers) != len(bodies) {
		t.Fatalf("burst answers %q: %v", out, err)
	}
	return answers
}

// auditSince returns the audit entries of account after seq.
func (w *world) auditSince(account string, seq uint64) []api.AuditEvent {
	w.t.Helper()
	var out []api.AuditEvent
	for {
		var page api.AuditPage
		w.must(w.as("", "GET", fmt.Sprintf("/v1/audit?after=%d&limit=1000", seq), "", &page), 200)
		for _, e := range page.Events {
			if e.Account == account {
				out = append(out, e)
			}
		}
		if len(page.Events) < 1000 {
			return out
		}
		seq = page.Next
	}
}

func (w *world) lastSeq() uint64 {
	w.t.Helper()
	var last uint64
	for {
		var page api.AuditPage
		w.must(w.as("", "GET", fmt.Sprintf("/v1/audit?after=%d&limit=1000", last), "", &page), 200)
		if len(page.Events) == 0 {
			return last
		}
		last = page.Next
	}
}

func (w *world) unlock(account string) {
	w.t.Helper()
	w.must(w.as("", "PATCH", "/v1/accounts/"+account, `{"unlock":true}`, nil), 200)
}

// TestConcurrentGuessesOnTheRealDaemon: 32 connections of one user carry
// 31 wrong codes and the right one, 20 times (a fresh device each round).
func TestConcurrentGuessesOnTheRealDaemon(t *testing.T) {
	w := newWorld(t)
	me := userSelf
	w.must(w.as("", "POST", "/v1/accounts", fmt.Sprintf(`{"name":%q}`, me), nil), 201)
	const maxFailures = 5
	prev := ""
	for round := range 20 {
		if prev != "" {
			w.must(w.as("", "POST", "/v1/accounts/"+me+"/devices/"+prev+"/deactivate", "", nil), 200)
			w.must(w.as("", "DELETE", "/v1/accounts/"+me+"/devices/"+prev, "", nil), 204)
		}
		var e api.Enrollment
		w.must(w.as("", "POST", "/v1/accounts/"+me+"/devices", `{"type":"totp"}`, &e), 201)
		secret, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.TrimRight(e.Secret, "="))
		if err != nil {
			t.Fatal(err)
		}
		w.unlock(me) // the previous round left the account waiting
		step := totp.StepAt(time.Now(), 30*time.Second)
		code := func(c uint64) string { return totp.Code(secret, totp.DefaultParams, c) }
		w.must(w.as("", "POST", "/v1/accounts/"+me+"/devices/"+e.Device.ID+"/activate",
			fmt.Sprintf(`{"code1":%q,"code2":%q}`, code(step-1), code(step)), nil), 200)
		prev = e.Device.ID
		seq := w.lastSeq()

		right := code(step + 1) // in the window, not used by the activation
		var bodies []string
		for i := range 32 {
			c := fmt.Sprintf("%06d", (round*131+i*7919)%1_000_000)
			if i == 16 {
				c = right
			} else if c == right || c == code(step) || c == code(step-1) {
				c = "X" + c[1:]
			}
			bodies = append(bodies, fmt.Sprintf(`{"account":%q,"code":%q}`, me, c))
		}
		answers := burstAs(t, me, w.d.sock, api.PathAuthenticate, bodies)

		compared, failures, successes := 0, 0, 0
		for _, ev := range w.auditSince(me, seq) {
			if ev.Action != "authenticate" {
				continue
			}
			switch {
			case ev.Outcome == "ok":
				if failures >= maxFailures {
					t.Fatalf("round %d: a success after %d failures, while the account had to wait", round, failures)
				}
				compared++
				successes++
				failures = 0
			case ev.Detail == "invalid code":
				compared++
				if failures++; failures > maxFailures {
					t.Fatalf("round %d: %d wrong codes compared in a row, the policy allows %d", round, failures, maxFailures)
				}
			}
		}
		if successes > 1 || compared > 2*maxFailures+1 {
			t.Fatalf("round %d: %d codes compared (%d successes); answers %v", round, compared, successes, answers)
		}
		var a api.Account
		w.must(w.as("", "GET", "/v1/accounts/"+me, "", &a), 200)
		if a.FailedAttempts != failures {
			t.Fatalf("round %d: failed_attempts %d, the audit log counts %d", round, a.FailedAttempts, failures)
		}
		for _, an := range answers {
			switch an.Code {
			case "", api.CodeInvalidCode, api.CodeRetryLater, api.CodeLockedOut:
			default:
				t.Fatalf("round %d: unexpected answer %+v", round, an)
			}
		}
	}
}

// TestConcurrentRecoveryCodesOnTheRealDaemon: 32 connections of the owner
// carry wrong e-mail codes at once, 20 times: at most the recovery's five
// attempts are compared, then the recovery is over.
func TestConcurrentRecoveryCodesOnTheRealDaemon(t *testing.T) {
	w := newWorldWith(t, "sends_per_hour = 100\nsends_per_hour_per_user = 100") // 20 recoveries in a minute
	me := userSelf
	w.must(w.as("", "POST", "/v1/accounts", fmt.Sprintf(`{"name":%q,"kind":"owner","email":"self@e2e.test","email_verified":true,"phone":"+1 555 0142","phone_verified":true}`, me), nil), 201)
	for round := range 20 {
		w.unlock(me)
		var r api.Recovery
		w.must(w.as(me, "POST", "/v1/recovery", fmt.Sprintf(`{"account":%q}`, me), &r), 201)
		right := w.lastMailCode()
		seq := w.lastSeq()
		var bodies []string
		for i := range 32 {
			c := fmt.Sprintf("%08d", round*32+i)
			if c == right {
				c = "99999999"
			}
			bodies = append(bodies, fmt.Sprintf(`{"code":%q}`, c))
		}
		answers := burstAs(t, me, w.d.sock, "/v1/recovery/"+r.ID+"/email", bodies)
		compared := 0
		for _, ev := range w.auditSince(me, seq) {
			if ev.Detail == "recovery email code refused" {
				compared++
			}
		}
		if compared > 5 || compared == 0 {
			t.Fatalf("round %d: %d codes compared, want at most 5; answers %v", round, compared, answers)
		}
		// The recovery is over, or waits: the right code does not get in.
		if a := w.as(me, "POST", "/v1/recovery/"+r.ID+"/email", fmt.Sprintf(`{"code":%q}`, right), nil); a.Status == 200 {
			t.Fatalf("round %d: the right code was accepted after %d wrong ones", round, compared)
		}
	}
}

// TestSendLimitOnTheRealDaemon: a user asking for contact codes again and
// again gets five sent in the hour, then retry_later with retry_after.
func TestSendLimitOnTheRealDaemon(t *testing.T) {
	w := newWorld(t)
	me := userSelf
	w.must(w.as("", "POST", "/v1/accounts", fmt.Sprintf(`{"name":%q}`, me), nil), 201)
	for i := range 5 {
		w.must(w.as(me, "POST", "/v1/accounts/"+me+"/contact", fmt.Sprintf(`{"email":"self%d@e2e.test"}`, i), nil), 202)
	}
	sent := len(w.smtp.Messages())
	a := w.as(me, "POST", "/v1/accounts/"+me+"/contact", `{"email":"self9@e2e.test"}`, nil)
	var p api.Problem
	json.Unmarshal(a.Body, &p)
	if a.Status != 429 || a.Code != api.CodeRetryLater || p.RetryAfter <= 0 {
		t.Fatalf("sixth contact code: %d %s %+v", a.Status, a.Code, p)
	}
	if len(w.smtp.Messages()) != sent {
		t.Fatal("a refused code was sent")
	}
}
