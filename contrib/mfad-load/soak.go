package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mfad/mfad/authn/totp"
	"github.com/mfad/mfad/ipc/api"
	"github.com/mfad/mfad/ipc/client"
)

// soakKinds are the soak's kinds of work, in the report's order:
//
//   - otp: 8 clients signing in with event-based tokens' next codes;
//   - fido: 2 clients signing in with a software key (answering at once);
//   - enroll: one client creating an account, enrolling a TOTP device,
//     activating it with two codes, and deleting the account;
//   - recovery: one client, every 3 s (soakRecoveryPause), creating an
//     owner account with a verified e-mail address and phone, recovering
//     it (the e-mail code, then the phone code, each read from the outbox
//     mfad writes them to), signing in with the recovery token, and
//     deleting the account;
//   - events: 2 clients opening the event stream, reading for 0.5-2 s and
//     leaving; one counts when the stream delivered at least one event.
var soakKinds = []string{"otp", "fido", "enroll", "recovery", "events"}

// The soak's tolerances: over the steady part of the run (from a third of
// it on, once the audit log has reached its retention), the median of the
// later half's samples may exceed the earlier half's by at most these;
// after the load stops, goroutines and fds must be back within the same
// margins of what they were after setup, before the load began.
const (
	soakGoroutineSlack = 8
	soakFDSlack        = 5
	soakRSSSlack       = 0.10 // of the earlier half's median
)

// soakRecoveryPause paces the recovery client: each recovery leaves its
// account's send counts in memory for the sliding hour they limit, and its
// state until its session ends (15 minutes), by design; at the other
// clients' pace (several recoveries a second) they would grow the heap for
// the whole run (measured: ~1.2 MB a minute at 8 a second).
const soakRecoveryPause = 3 * time.Second

// soakSample is one row of the report.
type soakSample struct {
	at         time.Duration
	goroutines int
	fds        int
	mem        memory
	loaded     bool // taken while the load ran
}

// soakTotal is what one kind of work did over the whole run.
type soakTotal struct {
	ok, errs int64
	active   int // samples under load whose interval had a success
}

// soakRun keeps mixed load (soakKinds) on one mfad for d, each client
// pausing pause between its operations, and samples, every interval, its
// goroutines (GET /v1/info), open file descriptors and resident memory
// (/proc), with what each kind of work did since the last sample. It ends
// with the totals and its verdict (soakJudge), and exits non-zero when the
// soak failed.
func soakRun(mfad string, d, interval, pause time.Duration) {
	const otpClients, fidoClients = 8, 2
	// A retention the load reaches in the first minutes: the database
	// stops growing early, and what could grow after is a leak.
	tg := setupOTP(mfad, "group", otpClients, `[emulator]
enabled = true
attach = ["load"]
[audit]
retention = 10000
[recovery.email]
outbox = "outbox"
from = "mfad <mfad@soak.test>"
[recovery.phone]
outbox = "outbox"
`)
	defer tg.stop()
	outbox := filepath.Join(tg.dir, "state", "outbox")
	ctx := context.Background()
	admin := &client.Client{Socket: tg.sock}
	defer admin.Close()
	for i := range fidoClients {
		if _, err := admin.AddKeyDevice(ctx, fmt.Sprintf("key%d", i), api.CreateDevice{}, nil); err != nil {
			fail("enroll a key: %v", err)
		}
	}
	var stop atomic.Bool
	type counter struct{ ok, errs atomic.Int64 }
	counts := map[string]*counter{}
	totals := map[string]*soakTotal{}
	for _, k := range soakKinds {
		counts[k], totals[k] = &counter{}, &soakTotal{}
	}
	note := func(kind string, err error) {
		if err != nil {
			if counts[kind].errs.Add(1) <= 3 {
				fmt.Fprintf(os.Stderr, "mfad-load: soak %s: %v\n", kind, err)
			}
			return
		}
		counts[kind].ok.Add(1)
	}
	fmt.Printf("mfad-load --soak: %s, %s, one sample every %s, clients pausing %s between operations\n\n", mfad, time.Now().UTC().Format(time.RFC3339), interval, pause)
	fmt.Printf("| elapsed | load avg | goroutines | open fds | RSS | database |")
	for _, k := range soakKinds {
		fmt.Printf(" %s |", k)
	}
	fmt.Println(" errors |")
	fmt.Println("|---|---|---|---|---|---|" + strings.Repeat("---|", len(soakKinds)) + "---|")
	var samples []soakSample
	sample := func(at time.Duration, loaded bool) {
		s := soakSample{at: at, goroutines: -1, fds: -1, mem: memoryOf(tg.pid), loaded: loaded}
		if info, err := admin.Info(ctx); err == nil {
			s.goroutines = info.Goroutines
		}
		if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", tg.pid)); err == nil {
			s.fds = len(ents)
		}
		samples = append(samples, s)
		db := "-"
		if fi, err := os.Stat(filepath.Join(tg.dir, "state", "mfad.db")); err == nil {
			db = fmt.Sprintf("%.1f MB", float64(fi.Size())/(1<<20))
		}
		row := fmt.Sprintf("| %s | %s | %d | %d | %s | %s |", at.Round(time.Second), loadAverage(), s.goroutines, s.fds, s.mem, db)
		var errs int64
		for _, k := range soakKinds {
			ok, e := counts[k].ok.Swap(0), counts[k].errs.Swap(0)
			row += fmt.Sprintf(" %d |", ok)
			t := totals[k]
			t.ok, t.errs = t.ok+ok, t.errs+e
			if loaded && at > 0 && ok > 0 {
				t.active++
			}
			errs += e
		}
		fmt.Printf("%s %d |\n", row, errs)
	}
	start := time.Now()
	sample(0, false) // before the load
	var wg sync.WaitGroup
	work := func(kind string, every time.Duration, fn func(cl *client.Client, n int) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &client.Client{Socket: tg.sock}
			defer cl.Close()
			for n := 0; !stop.Load(); n++ {
				note(kind, fn(cl, n))
				time.Sleep(every)
			}
		}()
	}
	for w := range otpClients {
		work("otp", pause, func(cl *client.Client, _ int) error { return tg.op(w, cl) })
	}
	for w := range fidoClients {
		work("fido", pause, func(cl *client.Client, _ int) error {
			_, err := cl.AuthenticateKey(ctx, api.Authenticate{Account: fmt.Sprintf("key%d", w)}, nil)
			return err
		})
	}
	work("enroll", pause, func(cl *client.Client, n int) error {
		return enrollCycle(ctx, cl, fmt.Sprintf("soak%d", n))
	})
	work("recovery", soakRecoveryPause, func(cl *client.Client, n int) error {
		return recoveryCycle(ctx, cl, outbox, fmt.Sprintf("rec%d", n))
	})
	for w := range 2 {
		work("events", pause, func(cl *client.Client, n int) error {
			return eventsVisit(ctx, cl, time.Duration(500+(w*700+n*370)%1500)*time.Millisecond)
		})
	}
	for next := interval; next <= d; next += interval {
		time.Sleep(time.Until(start.Add(next)))
		sample(next, true)
	}
	stop.Store(true)
	wg.Wait()
	time.Sleep(2 * time.Second)
	sample(time.Since(start), false) // 2 s after the load stopped

	fmt.Println()
	fmt.Println("| kind | successes | errors | intervals with a success |")
	fmt.Println("|---|---|---|---|")
	under := 0
	for _, s := range samples {
		if s.loaded {
			under++
		}
	}
	final := map[string]soakTotal{}
	for _, k := range soakKinds {
		t := *totals[k]
		final[k] = t
		fmt.Printf("| %s | %d | %d | %d of %d |\n", k, t.ok, t.errs, t.active, under)
	}
	fmt.Println()
	verdict, failures := soakJudge(samples, final)
	for _, v := range verdict {
		fmt.Println(v)
	}
	if len(failures) > 0 {
		fmt.Printf("\nsoak FAILED: %s\n", strings.Join(failures, "; "))
		tg.stop()
		os.Exit(1)
	}
	fmt.Println("\nsoak passed: every kind of work succeeded; goroutines, fds and RSS flat within the tolerances")
}

// soakJudge checks a soak's samples and totals: every kind of work
// succeeded at least once, errors stayed under 1% of a kind's attempts,
// goroutines, fds and RSS did not trend upward over the steady part of the
// run (from a third of it on: the later half's median against the earlier
// half's, within soakGoroutineSlack, soakFDSlack and soakRSSSlack), and
// goroutines and fds came back after the load. It returns a line per
// check and the failures.
func soakJudge(samples []soakSample, totals map[string]soakTotal) (verdict, failures []string) {
	check := func(ok bool, format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		if ok {
			verdict = append(verdict, "- ok: "+line)
		} else {
			verdict = append(verdict, "- FAILED: "+line)
			failures = append(failures, line)
		}
	}
	for _, k := range soakKinds {
		t := totals[k]
		check(t.ok > 0, "%s: %d successes", k, t.ok)
		check(t.errs*100 <= t.ok+t.errs, "%s: %d errors of %d attempts (at most 1%%)", k, t.errs, t.ok+t.errs)
	}
	var loaded []soakSample
	for _, s := range samples {
		if s.loaded {
			loaded = append(loaded, s)
		}
	}
	if len(loaded) < 4 || len(samples) < 2 {
		failures = append(failures, fmt.Sprintf("%d samples under load: too few to judge a trend (at least 4)", len(loaded)))
		verdict = append(verdict, "- FAILED: "+failures[len(failures)-1])
		return verdict, failures
	}
	end := loaded[len(loaded)-1].at
	var steady []soakSample
	for _, s := range loaded {
		if s.at >= end/3 {
			steady = append(steady, s)
		}
	}
	early, late := steady[:len(steady)/2], steady[(len(steady)+1)/2:]
	span := fmt.Sprintf("(%s-%s against %s-%s)", late[0].at.Round(time.Second), late[len(late)-1].at.Round(time.Second),
		early[0].at.Round(time.Second), early[len(early)-1].at.Round(time.Second))
	median := medianOf[soakSample]
	for _, m := range []struct {
		name  string
		f     func(soakSample) float64
		slack func(base float64) float64
		unit  string
	}{
		{"goroutines", func(s soakSample) float64 { return float64(s.goroutines) }, func(float64) float64 { return soakGoroutineSlack }, ""},
		{"open fds", func(s soakSample) float64 { return float64(s.fds) }, func(float64) float64 { return soakFDSlack }, ""},
		{"RSS", func(s soakSample) float64 { return float64(s.mem.rss) / 1024 }, func(b float64) float64 { return b * soakRSSSlack }, " MB"},
		{"anonymous RSS", func(s soakSample) float64 { return float64(s.mem.anon) / 1024 }, func(b float64) float64 { return b * soakRSSSlack }, " MB"},
	} {
		a, b := median(early, m.f), median(late, m.f)
		check(b-a <= m.slack(a), "%s under load: median %.1f%s %s against %.1f%s, tolerance +%.1f%s", m.name, b, m.unit, span, a, m.unit, m.slack(a), m.unit)
	}
	setup, after := samples[0], samples[len(samples)-1]
	check(after.goroutines >= 0 && after.goroutines <= setup.goroutines+soakGoroutineSlack,
		"goroutines after the load: %d, after setup %d, tolerance +%d", after.goroutines, setup.goroutines, soakGoroutineSlack)
	check(after.fds >= 0 && after.fds <= setup.fds+soakFDSlack,
		"open fds after the load: %d, after setup %d, tolerance +%d", after.fds, setup.fds, soakFDSlack)
	return verdict, failures
}

// loadAverage is the machine's 1-minute load average, as /proc has it.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "-"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "-"
	}
	return f[0]
}

// enrollCycle is an account's whole life: created, a TOTP device enrolled
// and activated with two consecutive codes, and deleted (its sign-ins are
// the otp clients' work: a third code of the same device would be a
// future one, or wait for the next step).
func enrollCycle(ctx context.Context, cl *client.Client, name string) error {
	if _, err := cl.CreateAccount(ctx, api.CreateAccount{Name: name}); err != nil {
		return err
	}
	e, err := cl.AddDevice(ctx, name, api.CreateDevice{Type: "totp"})
	if err != nil {
		return err
	}
	secret, err := totp.DecodeSecret(e.Secret)
	if err != nil {
		return err
	}
	p := totp.Params{Algorithm: totp.SHA1, Digits: 6, Period: 30 * time.Second}
	step := totp.StepAt(time.Now(), p.Period)
	// The code shown now and the one before: no drift to learn.
	if _, err := cl.ActivateDevice(ctx, name, e.Device.ID, api.CodePair{Code1: totp.Code(secret, p, step-1), Code2: totp.Code(secret, p, step)}); err != nil {
		return err
	}
	return cl.DeleteAccount(ctx, name)
}

// recoveryCycle is an owner's recovery with its alternative factors: the
// account is created with a verified e-mail address and phone, recovered
// (the e-mail code, then the phone code, each read from the outbox as
// its owner would read them), signed in with the recovery token, and
// deleted. The outbox is emptied after it, so that it does not grow; one
// cycle runs at a time.
func recoveryCycle(ctx context.Context, cl *client.Client, outbox, name string) error {
	email := name + "@soak.test"
	if _, err := cl.CreateAccount(ctx, api.CreateAccount{Name: name, Kind: "owner", Email: email, EmailVerified: true,
		Phone: "+1 555 0100", PhoneVerified: true}); err != nil {
		return err
	}
	defer cleanOutbox(outbox)
	r, err := cl.StartRecovery(ctx, name)
	if err != nil {
		return err
	}
	code, err := waitCode(func() string { return mailCode(outbox, email) })
	if err != nil {
		return fmt.Errorf("%s: e-mail: %w", name, err)
	}
	if r, err = cl.RecoveryStep(ctx, r.ID, "email", code); err != nil {
		return err
	}
	if code, err = waitCode(func() string { return phoneCode(outbox, name) }); err != nil {
		return fmt.Errorf("%s: phone: %w", name, err)
	}
	if r, err = cl.RecoveryStep(ctx, r.ID, "phone", code); err != nil {
		return err
	}
	if r.Stage != "done" || r.RecoveryToken == "" {
		return fmt.Errorf("%s: recovery at stage %q after the phone code", name, r.Stage)
	}
	res, err := cl.Authenticate(ctx, api.Authenticate{Account: name, RecoveryToken: r.RecoveryToken})
	if err != nil {
		return err
	}
	if res.Method != "recovery" {
		return fmt.Errorf("%s: signed in by %q, not the recovery token", name, res.Method)
	}
	return cl.DeleteAccount(ctx, name)
}

// waitCode polls find for up to 10 s: mfad has written the code before it
// answers, so it is there at once unless something is wrong.
func waitCode(find func() string) (string, error) {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c := find(); c != "" {
			return c, nil
		}
	}
	return "", errors.New("no code in the outbox")
}

var outboxMailCode = regexp.MustCompile(`Recovery code: (\d+)`)

// mailCode is the recovery code of the e-mail to address in the outbox.
func mailCode(outbox, address string) string {
	files, _ := filepath.Glob(filepath.Join(outbox, "mail", "*.eml"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil || !strings.Contains(string(b), "\r\nTo: <"+address+">\r\n") && !strings.Contains(string(b), "\r\nTo: "+address+"\r\n") {
			continue
		}
		if m := outboxMailCode.FindSubmatch(b); m != nil {
			return string(m[1])
		}
	}
	return ""
}

// phoneCode is the last code texted for account in the outbox's sms.txt
// (lines "TIME NUMBER ACCOUNT CODE", the number possibly with spaces).
func phoneCode(outbox, account string) string {
	f, err := os.Open(filepath.Join(outbox, "sms.txt"))
	if err != nil {
		return ""
	}
	defer f.Close()
	code := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) >= 4 && fs[len(fs)-2] == account {
			code = fs[len(fs)-1]
		}
	}
	return code
}

// cleanOutbox empties the outbox between recoveries.
func cleanOutbox(outbox string) {
	files, _ := filepath.Glob(filepath.Join(outbox, "mail", "*.eml"))
	for _, f := range files {
		os.Remove(f)
	}
	os.Truncate(filepath.Join(outbox, "sms.txt"), 0)
}

// eventsVisit opens the event stream, reads it for stay and leaves; it
// fails unless the stream opened and delivered at least one event (the
// other clients' sign-ins are audit events).
func eventsVisit(ctx context.Context, cl *client.Client, stay time.Duration) error {
	ectx, cancel := context.WithTimeout(ctx, stay)
	defer cancel()
	n := 0
	err := cl.Events(ectx, func(api.Event) bool { n++; return true })
	switch {
	case n > 0 && (err == nil || ectx.Err() != nil):
		return nil
	case err != nil && ectx.Err() == nil:
		return err
	}
	return fmt.Errorf("no event in %s", stay)
}
