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
//
// --ceiling also measures, interleaved alike, the least server that does
// the same durable work (ceiling.go): mfad's ratio to it says how close
// mfad comes to what the machine allows, on any machine.
//
//	mfad-load --mfad bin/mfad --ceiling --clients 1,32 --rounds 5 --modes group
//
// --ceiling-log makes that ceiling keep a write-ahead log as a store with
// one does (bbolt unsynced, each commit's changes appended to a log file
// and flushed first), so that mfad with its log is compared like with like.
//
// --gap 10ms pauses each client before each request and opens a new
// connection for it: with --clients 1, a lone sign-in as pam_mfad makes it
// (an idle mfad, a connection of its own), timed from the request to the
// answer. --blocking sends each code as pam_mfad does (a new socket and
// blocking system calls on the client's thread, blocking.go), so that the
// client's side costs what a C client's does and what is timed beyond it
// is mfad's; --gap 10ms --blocking --clients 1 is a lone PAM sign-in.
//
// --rss 10000,1000000 drives the first --clients count until the total
// verifications reach each count and reports mfad's resident memory.
//
// --startup 10000 times mfad's starts to READY=1 on a store of 10,000
// accounts of 3 devices each (startup.go); --soak 30m keeps mixed load on
// one mfad and samples its goroutines, fds and RSS each minute (soak.go,
// make soak).
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
	modes := flag.String("modes", "group,single", "commit modes: group (default config) and single (max_batch = 1); with --dsn also postgres (one mfad on the database), postgres2 and postgres4 (two or four mfad sharing it, clients spread over them)")
	flag.StringVar(&pgDSN, "dsn", "", "PostgreSQL DSN for the postgres modes (each mode's accounts have names of their own, so one database serves every run)")
	flag.StringVar(&profileDir, "cpuprofile-dir", "", "have mfad (and the ceiling, with --ceiling) write a CPU profile per commit mode into this directory")
	fido := flag.Bool("fido", false, "sign in with security keys (one in-process software key answering at once) instead of codes")
	compare := flag.String("compare", "", "a second mfad binary to measure in the same run, interleaved, reporting the ratio")
	rounds := flag.Int("rounds", 3, "with --compare or --ceiling: interleaved rounds per point")
	ceilingFlag := flag.Bool("ceiling", false, "also measure the minimal server of the same durable work (the machine's ceiling), interleaved, reporting mfad's ratio to it")
	ceilingLog := flag.Bool("ceiling-log", false, "with --ceiling: the ceiling keeps a write-ahead log, as a store with one does (bbolt with NoSync; each commit's puts appended as one CRC-32C record to a preallocated ceiling.wal and fdatasync'ed before bbolt commits), to compare an mfad with a write-ahead log like with like")
	serve := flag.String("serve-ceiling", "", "run as the ceiling server in this directory (mfad-load starts it so)")
	batch := flag.Int("ceiling-batch", 256, "with --serve-ceiling: updates per commit at most")
	ceilingProfile := flag.String("ceiling-cpuprofile", "", "with --serve-ceiling: write a CPU profile of the ceiling server here")
	startup := flag.Int("startup", 0, "instead of load: fill a store with this many accounts of 3 active TOTP devices each, then time mfad's starts on it to READY=1 (NOTIFY_SOCKET) and report its idle RSS")
	starts := flag.Int("starts", 11, "with --startup: starts to time")
	soak := flag.Duration("soak", 0, "instead of load points: keep mixed load (codes, a software key, enrollments, recoveries, event streams) for this long, sampling mfad's goroutines, fds and RSS; exits non-zero when a kind of work never succeeded or they grew")
	soakEvery := flag.Duration("soak-every", time.Minute, "with --soak: time between samples")
	soakPause := flag.Duration("soak-pause", 50*time.Millisecond, "with --soak: each client's pause between its operations (the soak measures flatness, not speed)")
	flag.BoolVar(&blockingFlag, "blocking", false, "send each code verification as pam_mfad does: a new connection, blocking system calls on the client's thread (no Go network poller), so that the client side of a lone sign-in costs what a C client's does")
	flag.DurationVar(&gap, "gap", 0, "each client pauses this long before each request and sends it on a new connection, as a PAM sign-in does (mfad idle, a connection of its own); the p50 is then a lone sign-in's as PAM sees it")
	rssMarks := flag.String("rss", "", "instead of timed points: drive the first --clients count until the total verifications reach each of these counts (e.g. 10000,1000000) and report mfad's RSS at start and at each")
	flag.Parse()
	if *serve != "" {
		serveCeiling(*serve, ceilingOptions{maxBatch: *batch, logged: *ceilingLog, cpuProfile: *ceilingProfile})
		return
	}
	if *ceilingLog && !*ceilingFlag {
		fail("--ceiling-log chooses how the --ceiling server commits: it needs --ceiling")
	}
	if *ceilingFlag && *fido {
		fail("--ceiling measures code verifications, not --fido")
	}
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
	setup := func(mfad, mode string, maxClients int) *target { return setupOTP(mfad, mode, maxClients, "") }
	kind := "otp"
	if *fido {
		setup, kind = setupFIDO, "fido"
	}
	if *soak > 0 {
		soakRun(*mfad, *soak, *soakEvery, *soakPause)
		return
	}
	if *startup > 0 {
		builds := []string{*mfad}
		if *compare != "" {
			builds = append(builds, *compare)
		}
		startupRun(builds, *startup, *starts)
		return
	}
	if *rssMarks != "" {
		var marks []int
		for _, f := range strings.Split(*rssMarks, ",") {
			m, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || m < 1 || (len(marks) > 0 && m <= marks[len(marks)-1]) {
				fail("bad --rss %q: increasing counts", *rssMarks)
			}
			marks = append(marks, m)
		}
		mode := strings.Split(*modes, ",")[0]
		tg := setup(*mfad, mode, counts[0])
		rssRun(tg, counts[0], marks)
		tg.stop()
		return
	}
	fmt.Println("| kind/commit mode | clients | verifications/s | p50 | p99 | errors | mfad CPU/op | client CPU/op |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	var summary []string
	for _, mode := range strings.Split(*modes, ",") {
		label := kind + "/" + mode
		ts := []*target{setup(*mfad, mode, slices.Max(counts))}
		ts[0].name = "A"
		if *compare != "" {
			ts = append(ts, setup(*compare, mode, slices.Max(counts)))
			ts[len(ts)-1].name = "B"
		}
		if *ceilingFlag {
			ts = append(ts, setupCeiling(mode, slices.Max(counts), *ceilingLog))
		}
		if len(ts) == 1 {
			for _, n := range counts {
				measure(ts[0], n, *duration).print(label, n)
			}
			ts[0].stop()
			continue
		}
		for _, n := range counts {
			res := interleave(*rounds, ts, func(tg *target) result { return measure(tg, n, *duration) })
			for r := range *rounds {
				for i, tg := range ts {
					res[i][r].print(fmt.Sprintf("%s %s r%d", label, tg.name, r+1), n)
				}
			}
			for i := 1; i < len(ts); i++ {
				summary = append(summary, compareRow(label, n, ts[i].name, res[0], res[i]))
			}
		}
		for _, tg := range ts {
			tg.stop()
		}
	}
	if len(summary) > 0 {
		fmt.Printf("\nMedians over the rounds; ratio = A / the other (A: %s", *mfad)
		if *compare != "" {
			fmt.Printf(", B: %s", *compare)
		}
		if *ceilingFlag {
			fmt.Print(", ceiling: the minimal server of the same durable work")
			if *ceilingLog {
				fmt.Print(", made durable by a write-ahead log record fdatasync'ed per commit, bbolt unsynced")
			}
		}
		fmt.Print(").\n\n")
		fmt.Println("| kind/commit mode | clients | other | A verif/s | other verif/s | ratio | A p50 | other p50 | ratio | A mfad CPU/op | other CPU/op | ratio |")
		fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|")
		for _, row := range summary {
			fmt.Println(row)
		}
	}
}

// interleave measures every target in each round, each round starting
// with the next target, so that the machine's changing speed falls on all
// of them alike; it returns each target's results by round.
func interleave(rounds int, ts []*target, measure func(*target) result) [][]result {
	res := make([][]result, len(ts))
	for r := range rounds {
		for k := range ts {
			i := (r + k) % len(ts)
			res[i] = append(res[i], measure(ts[i]))
		}
	}
	return res
}

// medianOf is the median of f over xs (of an even count, the mean of the
// middle two).
func medianOf[T any](xs []T, f func(T) float64) float64 {
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// compareRow is the summary of one point measured on both builds.
func compareRow(label string, n int, other string, a, b []result) string {
	med := medianOf[result]
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
	return fmt.Sprintf("| %s | %d | %s | %.0f | %.0f | %s | %s | %s | %s | %.0f µs | %.0f µs | %s |", label, n, other, ra, rb, ratio(ra, rb),
		time.Duration(la).Round(time.Microsecond), time.Duration(lb).Round(time.Microsecond), ratio(la, lb),
		ca/1e3, cb/1e3, ratio(ca, cb))
}

// target is one running mfad and the sign-in that loads it.
type target struct {
	name  string // in tables: A, B, ceiling or ceiling (log)
	dir   string // its state lives under it
	sock  string
	pid   int
	socks []string // every mfad of the target (a fleet on one database): clients spread over them
	pids  []int
	stop  func()
	op    func(w int, cl *client.Client) error
	// blocking is op as pam_mfad makes it (--blocking): a new socket,
	// blocking system calls on the calling thread, no Go network poller.
	blocking func(w int, sock string) error
}

// startMfad starts mfad with a configuration for load and waits for it.
func startMfad(mfad, mode string, maxClients int, extra string) *target {
	var tg *target
	for range fleetSize(mode) {
		one := startOneMfad(mfad, mode, maxClients, extra)
		if tg == nil {
			tg = one
			continue
		}
		stop := tg.stop
		tg.socks, tg.pids = append(tg.socks, one.sock), append(tg.pids, one.pid)
		tg.stop = func() { stop(); one.stop() }
	}
	return tg
}

func startOneMfad(mfad, mode string, maxClients int, extra string) *target {
	command, sock, dir := mfadCommand(mfad, mode, maxClients, extra)
	return start(command(), sock, dir)
}

// mfadCommand writes a configuration for load into a new directory and
// returns how to start mfad on it (as often as wanted), its socket and
// the directory.
func mfadCommand(mfad, mode string, maxClients int, extra string) (command func() *exec.Cmd, sock, dir string) {
	dir, err := os.MkdirTemp("", "mfad-load-")
	if err != nil {
		fail("%v", err)
	}
	g, _ := user.LookupGroupId(strconv.Itoa(os.Getgid()))
	batch := 256
	if mode == "single" {
		batch = 1
	}
	store := fmt.Sprintf("max_batch = %d", batch)
	if strings.HasPrefix(mode, "postgres") {
		if pgDSN == "" {
			fail("mode %s needs --dsn", mode)
		}
		os.Mkdir(filepath.Join(dir, "state"), 0o700)
		if err := os.WriteFile(filepath.Join(dir, "state", "mfad.key"), fleetKey, 0o600); err != nil {
			fail("%v", err)
		}
		store += fmt.Sprintf("\nbackend = \"postgres\"\ndsn = %q\nauto_migrate = true\nmax_conns = %d", pgDSN, min(maxClients, 16))
	}
	cfg := fmt.Sprintf(`admin_group = %q
[store]
%s
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
%s`, g.Name, store, maxClients+64, maxClients+32, maxClients+64, maxClients+32, extra)
	cfgPath := filepath.Join(dir, "mfad.toml")
	os.WriteFile(cfgPath, []byte(cfg), 0o600)
	sock = filepath.Join(dir, "mfad.sock")
	args := []string{"--config", cfgPath, "--socket", sock, "--state-dir", filepath.Join(dir, "state"), "--log-level", "warn"}
	if profileDir != "" {
		// One profile per build and mode (with --compare, two builds run).
		args = append(args, "--cpuprofile", filepath.Join(profileDir, fmt.Sprintf("%s-%s.prof", mode, filepath.Base(mfad))))
	}
	return func() *exec.Cmd {
		cmd := exec.Command(mfad, args...)
		cmd.Stderr = os.Stderr
		return cmd
	}, sock, dir
}

// start starts cmd and waits until it answers on sock; stopping it
// removes dir.
func start(cmd *exec.Cmd, sock, dir string) *target {
	if err := cmd.Start(); err != nil {
		fail("start %s: %v", cmd.Path, err)
	}
	c := &client.Client{Socket: sock}
	defer c.Close()
	for i := 0; ; i++ {
		if _, err := c.Info(context.Background()); err == nil {
			break
		} else if i > 200 {
			fail("%s did not start: %v", cmd.Path, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
	return &target{sock: sock, pid: cmd.Process.Pid, dir: dir, socks: []string{sock}, pids: []int{cmd.Process.Pid},
		stop: func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait(); os.RemoveAll(dir) }}
}

// profileDir, when set, receives mfad's CPU profiles.
var profileDir string

// pgDSN is the database of the postgres modes; fleetKey the master key
// every mfad on it shares.
var (
	pgDSN    string
	fleetKey = func() []byte { k := make([]byte, 32); rand.Read(k); return k }()
)

// fleetSize is how many mfad a mode runs: postgresN runs N, the others 1.
func fleetSize(mode string) int {
	switch mode {
	case "postgres2":
		return 2
	case "postgres4":
		return 4
	}
	return 1
}

// reported bounds how many errors are printed.
var reported atomic.Int32

// cpu is the CPU time of the target's mfad processes (PostgreSQL's own is
// not counted).
func (tg *target) cpu() time.Duration {
	if len(tg.pids) == 0 {
		return cpuTime(tg.pid)
	}
	var t time.Duration
	for _, p := range tg.pids {
		t += cpuTime(p)
	}
	return t
}

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

// memory is a process's resident memory from /proc/PID/status, in kB.
type memory struct{ rss, anon, file int }

func memoryOf(pid int) memory {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}
	}
	var m memory
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		switch k {
		case "VmRSS":
			m.rss = n
		case "RssAnon":
			m.anon = n
		case "RssFile":
			m.file = n
		}
	}
	return m
}

func (m memory) String() string {
	return fmt.Sprintf("%.1f MB (anon %.1f, file %.1f)", float64(m.rss)/1024, float64(m.anon)/1024, float64(m.file)/1024)
}

// rssRun drives n clients until the verifications reach each mark, and
// reports the target's resident memory at start and at each mark (the
// load paused for a second first, so that what is measured is what stays).
func rssRun(tg *target, n int, marks []int) {
	dbSize := func() string {
		fi, err := os.Stat(filepath.Join(tg.dir, "state", "mfad.db"))
		if err != nil {
			return "-"
		}
		return fmt.Sprintf("%.1f MB", float64(fi.Size())/(1<<20))
	}
	fmt.Printf("| verifications | mfad RSS | database file | verifications/s since the last mark | errors |\n|---|---|---|---|---|\n")
	fmt.Printf("| 0 (idle, after setup) | %s | %s | | |\n", memoryOf(tg.pid), dbSize())
	var done, errs atomic.Int64
	prev := 0
	for _, mark := range marks {
		start := time.Now()
		drive(tg, n, func() bool { return done.Add(1) <= int64(mark) }, func(w int, _ time.Duration, err error) {
			if err != nil && errs.Add(1) <= 3 {
				fmt.Fprintf(os.Stderr, "mfad-load: client %d: %v\n", w, err)
			}
		})
		done.Store(int64(mark))
		rate := float64(mark-prev) / time.Since(start).Seconds()
		prev = mark
		time.Sleep(time.Second)
		fmt.Printf("| %d | %s | %s | %.0f | %d |\n", mark, memoryOf(tg.pid), dbSize(), rate, errs.Load())
	}
}

// drive runs the target's op from n clients, each on its own connection,
// while more says so, and hands each outcome to done (in the client's
// goroutine), then waits for all.
func drive(tg *target, n int, more func() bool, done func(w int, dt time.Duration, err error)) {
	var wg sync.WaitGroup
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sock := tg.sock
			if len(tg.socks) > 0 {
				sock = tg.socks[w%len(tg.socks)]
			}
			cl := &client.Client{Socket: sock}
			defer cl.Close()
			for more() {
				if gap > 0 {
					time.Sleep(gap)
					cl.Close()
				}
				t0 := time.Now()
				var err error
				if blockingFlag && tg.blocking != nil {
					err = tg.blocking(w, sock)
				} else {
					err = tg.op(w, cl)
				}
				done(w, time.Since(t0), err)
			}
		}()
	}
	wg.Wait()
}

// gap is --gap: the pause before each request, sent on a new connection.
var gap time.Duration

// blockingFlag is --blocking: each request as pam_mfad sends it.
var blockingFlag bool

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
	srv0, cli0 := tg.cpu(), cpuTime(os.Getpid())
	deadline := time.Now().Add(dur)
	start := time.Now()
	drive(tg, n, func() bool { return time.Now().Before(deadline) }, func(w int, dt time.Duration, err error) {
		lat[w] = append(lat[w], dt)
		if err != nil {
			if errs[w] == 0 && reported.Add(1) <= 3 {
				fmt.Fprintf(os.Stderr, "mfad-load: client %d: %v\n", w, err)
			}
			errs[w]++
		}
	})
	elapsed := time.Since(start)
	var all []time.Duration
	nerr := 0
	for w := range n {
		all = append(all, lat[w]...)
		nerr += errs[w]
	}
	srv, cli := tg.cpu()-srv0, cpuTime(os.Getpid())-cli0
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
func setupOTP(mfad, mode string, maxClients int, extra string) *target {
	tg := startMfad(mfad, mode, maxClients, extra)
	c := &client.Client{Socket: tg.sock}
	ctx := context.Background()

	seeds := newSeeds(maxClients)
	var pskc strings.Builder
	pskc.WriteString(`<?xml version="1.0" encoding="UTF-8"?><KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">`)
	for i := range seeds {
		fmt.Fprintf(&pskc, `<KeyPackage><DeviceInfo><Manufacturer>mfad-load</Manufacturer><SerialNo>%s</SerialNo></DeviceInfo>`+
			`<Key Id="%s" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp"><AlgorithmParameters><ResponseFormat Length="8" Encoding="DECIMAL"/></AlgorithmParameters>`+
			`<Data><Secret><PlainValue>%s</PlainValue></Secret><Counter><PlainValue>0</PlainValue></Counter></Data></Key></KeyPackage>`,
			seeds[i].serial, seeds[i].serial, base64.StdEncoding.EncodeToString(seeds[i].secret))
	}
	pskc.WriteString(`</KeyContainer>`)
	if _, err := c.ImportTokens(ctx, api.TokenImport{PSKC: pskc.String()}); err != nil {
		fail("import: %v", err)
	}
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
	tg.op = otpOp(seeds, counters)
	tg.blocking = blockingOTPOp(seeds, counters)
	return tg
}

// 8 digits: with 6, one code in ~10^5 also matches another counter of
// the look-ahead window, and mfad (rightly) takes the highest, which
// skips the token ahead and fails the client's next codes.
var params = totp.Params{Algorithm: totp.SHA1, Digits: 8, Period: 30 * time.Second}

// newSeeds makes n event-based tokens, one per client.
func newSeeds(n int) []tokenSeed {
	seeds := make([]tokenSeed, n)
	run := make([]byte, 3)
	rand.Read(run) // names of this setup's own: a shared database outlives a run
	for i := range seeds {
		secret := make([]byte, 20)
		rand.Read(secret)
		seeds[i] = tokenSeed{serial: fmt.Sprintf("LOAD-%x-%05d", run, i), account: fmt.Sprintf("load%x-%d", run, i), secret: secret}
	}
	return seeds
}

// otpOp signs client w in with its token's next code.
func otpOp(seeds []tokenSeed, counters []uint64) func(w int, cl *client.Client) error {
	return func(w int, cl *client.Client) error {
		s := seeds[w]
		code := totp.Code(s.secret, params, counters[w])
		counters[w]++
		_, err := cl.Authenticate(context.Background(), api.Authenticate{Account: s.account, Code: code})
		return err
	}
}

// setupCeiling starts the ceiling server (this binary, --serve-ceiling)
// with a token per client; logged, with a write-ahead log (--ceiling-log).
func setupCeiling(mode string, maxClients int, logged bool) *target {
	dir, err := os.MkdirTemp("", "mfad-ceiling-")
	if err != nil {
		fail("%v", err)
	}
	seeds := newSeeds(maxClients)
	writeSeeds(dir, seeds)
	self, err := os.Executable()
	if err != nil {
		fail("%v", err)
	}
	batch := 256
	if mode == "single" {
		batch = 1
	}
	args := []string{"--serve-ceiling", dir, "--ceiling-batch", strconv.Itoa(batch)}
	name := "ceiling"
	if logged {
		// Named so, a report says which ceiling it compared with.
		args, name = append(args, "--ceiling-log"), "ceiling (log)"
	}
	if profileDir != "" {
		args = append(args, "--ceiling-cpuprofile", filepath.Join(profileDir, fmt.Sprintf("%s-%s.prof", mode, strings.ReplaceAll(name, " ", ""))))
	}
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	tg := start(cmd, filepath.Join(dir, "ceiling.sock"), dir)
	tg.name = name
	tg.op = otpOp(seeds, make([]uint64, maxClients))
	return tg
}
