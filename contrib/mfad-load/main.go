// Command mfad-load measures durable verifications per second through
// mfad's socket. It starts mfad itself (twice: with group commit, then with
// one commit per request), fills it with event-based (HOTP) hardware
// tokens imported from a PSKC file it writes, one token per client so
// that every request is a fresh, valid code, and drives POST
// /v1/authenticate from N concurrent clients, each on its own connection.
//
// HOTP rather than TOTP: a TOTP device accepts at most a few codes per
// 30 s step (replay protection), while an event-based token accepts the
// next counter at once. Both take the same path through mfad: read the
// account and its devices, match the code, store the counter and an audit
// entry in the transaction that accepts it, and flush.
//
//	mfad-load --mfad bin/mfad --clients 1,32,256 --duration 5s
//
// --compare OTHER measures a second build in the same run: both are
// started and filled alike, and each point is measured in --rounds
// interleaved rounds (this build then the other, then the other first),
// so that the machine's changing speed falls on both; the summary gives
// the medians and their ratio (this build / the other).
//
//	mfad-load --mfad bin/mfad --compare /tmp/mfad-old --clients 32 --rounds 5
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mfad/mfad/authn/totp"
	"github.com/mfad/mfad/ipc/api"
	"github.com/mfad/mfad/ipc/client"
)

func main() {
	mfad := flag.String("mfad", "bin/mfad", "mfad binary to start")
	clientsFlag := flag.String("clients", "1,32,256", "concurrent client counts to measure")
	duration := flag.Duration("duration", 5*time.Second, "measuring time per client count")
	modes := flag.String("modes", "group,single", "commit modes: group (default config) and single (max_batch = 1)")
	flag.StringVar(&profileDir, "cpuprofile-dir", "", "have mfad write a CPU profile per commit mode into this directory")
	fido := flag.Bool("fido", false, "sign in with security keys (one in-process software key answering at once) instead of codes")
	compare := flag.String("compare", "", "a second mfad binary to measure in the same run, interleaved, reporting the ratio")
	rounds := flag.Int("rounds", 3, "with --compare: interleaved rounds per point")
	flag.Parse()
	if *rounds < 1 {
		fail("bad --rounds %d", *rounds)
	}
	var counts []int
	for _, s := range strings.Split(*clientsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fail("bad --clients %q", *clientsFlag)
		}
		counts = append(counts, n)
	}
	host, _ := os.Hostname()
	fmt.Printf("mfad-load: %s, GOMAXPROCS of mfad default, %s per point, %s\n", host, *duration, time.Now().UTC().Format(time.RFC3339))
	if *compare != "" {
		fmt.Printf("A = %s, B = %s, %d interleaved rounds per point\n", *mfad, *compare, *rounds)
	}
	fmt.Println()
	fmt.Println("| kind/commit mode | clients | verifications/s | p50 | p99 | errors | mfad CPU/op | client CPU/op |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	setup := setupOTP
	kind := "otp"
	if *fido {
		setup, kind = setupFIDO, "fido"
	}
	var summary []string
	for _, mode := range strings.Split(*modes, ",") {
		label := kind + "/" + mode
		a := setup(*mfad, mode, slices.Max(counts))
		if *compare == "" {
			for _, n := range counts {
				measure(a, n, *duration).print(label, n)
			}
			a.stop()
			continue
		}
		b := setup(*compare, mode, slices.Max(counts))
		for _, n := range counts {
			var ra, rb []result
			for r := range *rounds {
				first, second := a, b
				if r%2 == 1 {
					first, second = b, a
				}
				r1, r2 := measure(first, n, *duration), measure(second, n, *duration)
				if first == b {
					r1, r2 = r2, r1
				}
				ra, rb = append(ra, r1), append(rb, r2)
				r1.print(fmt.Sprintf("%s A r%d", label, r+1), n)
				r2.print(fmt.Sprintf("%s B r%d", label, r+1), n)
			}
			summary = append(summary, compareRow(label, n, ra, rb))
		}
		a.stop()
		b.stop()
	}
	if len(summary) > 0 {
		fmt.Printf("\nMedians over the rounds; ratio = A / B (A: %s, B: %s).\n\n", *mfad, *compare)
		fmt.Println("| kind/commit mode | clients | A verif/s | B verif/s | ratio | A p50 | B p50 | ratio | A mfad CPU/op | B mfad CPU/op | ratio |")
		fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|")
		for _, row := range summary {
			fmt.Println(row)
		}
	}
}

// compareRow is the summary of one point measured on both builds.
func compareRow(label string, n int, a, b []result) string {
	med := func(rs []result, f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	rate := func(r result) float64 { return r.rate }
	p50 := func(r result) float64 { return float64(r.p50) }
	cpu := func(r result) float64 { return float64(r.srvCPU) }
	ratio := func(x, y float64) string {
		if y == 0 {
			return "-"
		}
		return fmt.Sprintf("**%.2f**", x/y)
	}
	ra, rb, la, lb, ca, cb := med(a, rate), med(b, rate), med(a, p50), med(b, p50), med(a, cpu), med(b, cpu)
	return fmt.Sprintf("| %s | %d | %.0f | %.0f | %s | %s | %s | %s | %.0f µs | %.0f µs | %s |", label, n, ra, rb, ratio(ra, rb),
		time.Duration(la).Round(time.Microsecond), time.Duration(lb).Round(time.Microsecond), ratio(la, lb),
		ca/1e3, cb/1e3, ratio(ca, cb))
}

// target is one running mfad and the sign-in that loads it.
type target struct {
	sock string
	pid  int
	stop func()
	op   func(w int, cl *client.Client) error
}

// startMfad starts mfad with a configuration for load and waits for it.
func startMfad(mfad, mode string, maxClients int, extra string) *target {
	dir, err := os.MkdirTemp("", "mfad-load-")
	if err != nil {
		fail("%v", err)
	}
	g, _ := user.LookupGroupId(strconv.Itoa(os.Getgid()))
	batch := 256
	if mode == "single" {
		batch = 1
	}
	cfg := fmt.Sprintf(`admin_group = %q
[store]
max_batch = %d
[limits]
connections = %d
connections_per_uid = %d
connections_root_reserved = 16
streams = %d
streams_per_uid = %d
streams_root_reserved = 16
[lockout]
max_failures = 1000000
lockout_after = 1000001
[keys]
driver = "none"
%s`, g.Name, batch, maxClients+64, maxClients+32, maxClients+64, maxClients+32, extra)
	cfgPath := filepath.Join(dir, "mfad.toml")
	os.WriteFile(cfgPath, []byte(cfg), 0o600)
	sock := filepath.Join(dir, "mfad.sock")
	args := []string{"--config", cfgPath, "--socket", sock, "--state-dir", filepath.Join(dir, "state"), "--log-level", "warn"}
	if profileDir != "" {
		// One profile per build and mode (with --compare, two builds run).
		args = append(args, "--cpuprofile", filepath.Join(profileDir, fmt.Sprintf("%s-%s.prof", mode, filepath.Base(mfad))))
	}
	cmd := exec.Command(mfad, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		fail("start %s: %v", mfad, err)
	}
	c := &client.Client{Socket: sock}
	defer c.Close()
	for i := 0; ; i++ {
		if _, err := c.Info(context.Background()); err == nil {
			break
		} else if i > 200 {
			fail("mfad did not start: %v", err)
		}
		time.Sleep(25 * time.Millisecond)
	}
	return &target{sock: sock, pid: cmd.Process.Pid,
		stop: func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait(); os.RemoveAll(dir) }}
}

// profileDir, when set, receives mfad's CPU profiles.
var profileDir string

// reported bounds how many errors are printed.
var reported atomic.Int32

// cpuTime is a process's user+system CPU time from /proc (Linux).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ = 100
}

// result is one measured point.
type result struct {
	rate           float64 // successful verifications per second
	p50, p99       time.Duration
	errs           int
	srvCPU, cliCPU time.Duration // per operation
}

func (r result) print(label string, n int) {
	fmt.Printf("| %s | %d | %.0f | %s | %s | %d | %.0f µs | %.0f µs |\n", label, n, r.rate, r.p50.Round(time.Microsecond),
		r.p99.Round(time.Microsecond), r.errs, float64(r.srvCPU.Nanoseconds())/1e3, float64(r.cliCPU.Nanoseconds())/1e3)
}

// measure drives the target's op from n clients for dur.
func measure(tg *target, n int, dur time.Duration) result {
	lat := make([][]time.Duration, n)
	errs := make([]int, n)
	srv0, cli0 := cpuTime(tg.pid), cpuTime(os.Getpid())
	deadline := time.Now().Add(dur)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &client.Client{Socket: tg.sock} // its own connection
			defer cl.Close()
			for time.Now().Before(deadline) {
				t0 := time.Now()
				err := tg.op(w, cl)
				lat[w] = append(lat[w], time.Since(t0))
				if err != nil {
					if errs[w] == 0 && reported.Add(1) <= 3 {
						fmt.Fprintf(os.Stderr, "mfad-load: client %d: %v\n", w, err)
					}
					errs[w]++
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	nerr := 0
	for w := range n {
		all = append(all, lat[w]...)
		nerr += errs[w]
	}
	srv, cli := cpuTime(tg.pid)-srv0, cpuTime(os.Getpid())-cli0
	slices.Sort(all)
	if len(all) == 0 {
		return result{}
	}
	p := func(q float64) time.Duration { return all[int(q*float64(len(all)-1))] }
	return result{rate: float64(len(all)-nerr) / elapsed.Seconds(), p50: p(0.50), p99: p(0.99), errs: nerr,
		srvCPU: srv / time.Duration(len(all)), cliCPU: cli / time.Duration(len(all))}
}

// runFIDO measures sign-ins with a security key: one in-process software
// key (automatic presence) holding a credential of every account.
func setupFIDO(mfad, mode string, maxClients int) *target {
	tg := startMfad(mfad, mode, maxClients, "[emulator]\nenabled = true\nattach = [\"load\"]\n")
	c := &client.Client{Socket: tg.sock}
	ctx := context.Background()
	for i := range maxClients {
		if _, err := c.AddKeyDevice(ctx, fmt.Sprintf("key%d", i), api.CreateDevice{}, nil); err != nil {
			fail("enroll: %v", err)
		}
	}
	c.Close()
	tg.op = func(w int, cl *client.Client) error {
		_, err := cl.AuthenticateKey(ctx, api.Authenticate{Account: fmt.Sprintf("key%d", w)}, nil)
		return err
	}
	return tg
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "mfad-load: "+format+"\n", args...)
	os.Exit(1)
}

type tokenSeed struct {
	serial, account string
	secret          []byte
}

// setupOTP starts mfad and gives every client an event-based token.
func setupOTP(mfad, mode string, maxClients int) *target {
	tg := startMfad(mfad, mode, maxClients, "")
	c := &client.Client{Socket: tg.sock}
	ctx := context.Background()

	seeds := make([]tokenSeed, maxClients)
	var pskc strings.Builder
	pskc.WriteString(`<?xml version="1.0" encoding="UTF-8"?><KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">`)
	for i := range seeds {
		secret := make([]byte, 20)
		rand.Read(secret)
		seeds[i] = tokenSeed{serial: fmt.Sprintf("LOAD-%05d", i), account: fmt.Sprintf("load%d", i), secret: secret}
		fmt.Fprintf(&pskc, `<KeyPackage><DeviceInfo><Manufacturer>mfad-load</Manufacturer><SerialNo>%s</SerialNo></DeviceInfo>`+
			`<Key Id="%s" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp"><AlgorithmParameters><ResponseFormat Length="8" Encoding="DECIMAL"/></AlgorithmParameters>`+
			`<Data><Secret><PlainValue>%s</PlainValue></Secret><Counter><PlainValue>0</PlainValue></Counter></Data></Key></KeyPackage>`,
			seeds[i].serial, seeds[i].serial, base64.StdEncoding.EncodeToString(secret))
	}
	pskc.WriteString(`</KeyContainer>`)
	if _, err := c.ImportTokens(ctx, api.TokenImport{PSKC: pskc.String()}); err != nil {
		fail("import: %v", err)
	}
	// 8 digits: with 6, one code in ~10^5 also matches another counter of
	// the look-ahead window, and mfad (rightly) takes the highest, which
	// skips the token ahead and fails the client's next codes.
	params := totp.Params{Algorithm: totp.SHA1, Digits: 8, Period: 30 * time.Second}
	counters := make([]uint64, maxClients)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range seeds {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			s := seeds[i]
			e, err := c.AddDevice(ctx, s.account, api.CreateDevice{Type: "hardware-otp", Serial: s.serial})
			if err != nil {
				fail("assign %s: %v", s.serial, err)
			}
			if _, err := c.ActivateDevice(ctx, s.account, e.Device.ID, api.CodePair{
				Code1: totp.Code(s.secret, params, 0), Code2: totp.Code(s.secret, params, 1)}); err != nil {
				fail("activate %s: %v", s.serial, err)
			}
			counters[i] = 2
		}()
	}
	wg.Wait()
	c.Close()
	tg.op = func(w int, cl *client.Client) error {
		s := seeds[w]
		code := totp.Code(s.secret, params, counters[w])
		counters[w]++
		_, err := cl.Authenticate(ctx, api.Authenticate{Account: s.account, Code: code})
		return err
	}
	return tg
}
