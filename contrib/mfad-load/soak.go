package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mfad/mfad/authn/totp"
	"github.com/mfad/mfad/ipc/api"
	"github.com/mfad/mfad/ipc/client"
)

// soakRun keeps mixed load on one mfad for d and samples, every interval,
// its goroutines (GET /v1/info), open file descriptors and resident memory
// (/proc), with what each kind of work did since the last sample:
//
//   - otp: 8 clients signing in with event-based tokens' next codes;
//   - fido: 2 clients signing in with a software key (answering at once);
//   - enroll: one client creating an account, enrolling a TOTP device,
//     activating it with two codes, and deleting the account;
//   - events: 2 clients opening the event stream, reading for 0.2-2 s and
//     leaving.
//
// Flat columns for goroutines, fds and RSS over the run say nothing leaks.
func soakRun(mfad string, d, interval time.Duration) {
	const otpClients, fidoClients = 8, 2
	tg := setupOTP(mfad, "group", otpClients, "[emulator]\nenabled = true\nattach = [\"load\"]\n")
	defer tg.stop()
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
	kinds := []string{"otp", "fido", "enroll", "events"}
	counts := map[string]*counter{}
	for _, k := range kinds {
		counts[k] = &counter{}
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
	var wg sync.WaitGroup
	work := func(kind string, fn func(cl *client.Client) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &client.Client{Socket: tg.sock}
			defer cl.Close()
			for !stop.Load() {
				note(kind, fn(cl))
			}
		}()
	}
	for w := range otpClients {
		work("otp", func(cl *client.Client) error { return tg.op(w, cl) })
	}
	for w := range fidoClients {
		work("fido", func(cl *client.Client) error {
			_, err := cl.AuthenticateKey(ctx, api.Authenticate{Account: fmt.Sprintf("key%d", w)}, nil)
			return err
		})
	}
	n := 0
	work("enroll", func(cl *client.Client) error {
		n++
		return enrollCycle(ctx, cl, fmt.Sprintf("soak%d", n))
	})
	for w := range 2 {
		work("events", func(cl *client.Client) error {
			ectx, cancel := context.WithTimeout(ctx, time.Duration(200+(w*700+n*37)%1800)*time.Millisecond)
			defer cancel()
			err := cl.Events(ectx, func(api.Event) bool { return true })
			if ectx.Err() != nil {
				return nil // left as planned, even before the stream began
			}
			return err
		})
	}

	fmt.Printf("mfad-load --soak: %s, %s, one sample every %s\n\n", mfad, time.Now().UTC().Format(time.RFC3339), interval)
	fmt.Println("| elapsed | goroutines | open fds | RSS | otp sign-ins | fido sign-ins | enrollment cycles | event streams | errors |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	sample := func(at time.Duration) {
		g := -1
		if info, err := admin.Info(ctx); err == nil {
			g = info.Goroutines
		}
		fds := -1
		if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", tg.pid)); err == nil {
			fds = len(ents)
		}
		var errs int64
		row := fmt.Sprintf("| %s | %d | %d | %s |", at.Round(time.Second), g, fds, memoryOf(tg.pid))
		for _, k := range kinds {
			row += fmt.Sprintf(" %d |", counts[k].ok.Swap(0))
			errs += counts[k].errs.Swap(0)
		}
		fmt.Printf("%s %d |\n", row, errs)
	}
	start := time.Now()
	sample(0)
	for next := interval; next <= d; next += interval {
		time.Sleep(time.Until(start.Add(next)))
		sample(next)
	}
	stop.Store(true)
	wg.Wait()
	time.Sleep(2 * time.Second)
	sample(time.Since(start)) // 2 s after the load stopped

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
