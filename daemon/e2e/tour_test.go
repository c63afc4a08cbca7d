package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mfad/mfad/ipc/client"
)

// tourStep is one command line of README.md's tour and who runs it.
type tourStep struct {
	who  string // "root" or "alice" as the README says
	line string
}

// readTour extracts the tour's shell blocks from README.md: the section
// "## A short tour" up to the next section; each block but `make run`
// starts with "# as root" or "# as alice", and continuation lines are
// joined. Comment-only lines are left out.
func readTour(t *testing.T, root string) []tourStep {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "\n## A short tour")
	if i < 0 {
		t.Fatal("README.md has no section \"## A short tour\"")
	}
	s = s[i+1:]
	if j := strings.Index(s[3:], "\n## "); j >= 0 {
		s = s[:j+3]
	}
	var steps []tourStep
	blocks := strings.Split(s, "```sh\n")[1:]
	for _, blk := range blocks {
		blk = blk[:strings.Index(blk, "```")]
		lines := strings.Split(strings.TrimSpace(blk), "\n")
		if len(lines) == 1 && lines[0] == "make run" {
			continue
		}
		who, ok := strings.CutPrefix(lines[0], "# as ")
		if !ok || (who != "root" && who != "alice") {
			t.Fatalf("a tour block does not start with \"# as root\" or \"# as alice\":\n%s", blk)
		}
		for k := 1; k < len(lines); k++ {
			l := lines[k]
			for strings.HasSuffix(l, "\\") && k+1 < len(lines) {
				k++
				l = strings.TrimSuffix(l, "\\") + " " + strings.TrimSpace(lines[k])
			}
			if t := strings.TrimSpace(l); t == "" || strings.HasPrefix(t, "#") {
				continue
			}
			steps = append(steps, tourStep{who: who, line: l})
		}
	}
	if len(steps) < 10 {
		t.Fatalf("only %d tour commands found in README.md", len(steps))
	}
	return steps
}

// placeholders are the values a reader copies from the previous
// command's output: `NAME=...` lines of the tour.
var placeholders = map[string]*regexp.Regexp{
	"SECRET": regexp.MustCompile(`(?m)^secret: ([A-Z2-7]+)$`),
}

var placeholderLine = regexp.MustCompile(`^([A-Z_]+)=\.\.\.(\s+#.*)?$`)

// startLikeMakeRun starts mfad with the commands `make run` would run
// (make -n, with the build taken as done), in dir, where bin/ holds the
// binaries and contrib/ is the repository's.
func startLikeMakeRun(t *testing.T, root, dir string) (sock, rundir string) {
	t.Helper()
	rundir = filepath.Join(dir, ".mfad")
	recipe, err := exec.Command("make", "-s", "--no-print-directory", "-C", root, "-n", "-o", "build", "run", "RUNDIR="+rundir).Output()
	if err != nil {
		t.Fatalf("make -n run: %v", err)
	}
	if !strings.Contains(string(recipe), "exec bin/mfad ") {
		t.Fatalf("make run no longer execs bin/mfad:\n%s", recipe)
	}
	for _, l := range []struct{ link, to string }{{"bin", binDir}, {"contrib", filepath.Join(root, "contrib")}} {
		if err := os.Symlink(l.to, filepath.Join(dir, l.link)); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("bash", "-e", "-c", string(recipe))
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "NOTIFY_SOCKET=", "LISTEN_FDS=", "HOME=" + dir}
	stderr := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	d := &daemon{t: t, sock: filepath.Join(rundir, "mfad.sock"), stderr: stderr, exited: exited, cmd: cmd}
	d.waitReady()
	return d.sock, rundir
}

// TestREADMETour runs the tour of README.md as written, against mfad
// started the way `make run` starts it: root's steps as root, alice's as
// a second, unprivileged user.
func TestREADMETour(t *testing.T) {
	needRoot(t)
	for _, tool := range []string{"make", "oathtool", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	steps := readTour(t, root)
	dir, err := os.MkdirTemp(work, "tour-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	sock, rundir := startLikeMakeRun(t, root, dir)

	// Every local user reaches the socket; nobody else lists or reads the state.
	if fi, err := os.Stat(rundir); err != nil || fi.Mode().Perm() != 0o711 {
		t.Fatalf("%s: %v %v, want mode 0711", rundir, fi.Mode(), err)
	}

	names := map[string]string{"alice": userSelf, "bob": userOther}
	rename := regexp.MustCompile(`\b(alice|bob)\b`)
	env := map[string]string{}
	last := ""
	for n, st := range steps {
		line := rename.ReplaceAllStringFunc(st.line, func(s string) string { return names[s] })
		who := ""
		if st.who == "alice" {
			who = userSelf
		}
		if m := placeholderLine.FindStringSubmatch(line); m != nil {
			re, ok := placeholders[m[1]]
			if !ok {
				t.Fatalf("tour line %q: the test does not know where %s comes from", st.line, m[1])
			}
			v := re.FindStringSubmatch(last)
			if v == nil {
				t.Fatalf("tour line %q: the previous command printed no %s:\n%s", st.line, m[1], last)
			}
			line = m[1] + "=" + v[1]
		}
		out, errs, code := runTourLine(t, who, dir, rundir, env, line)
		t.Logf("step %d as %s: %s\n%s%s", n+1, st.who, st.line, out, errs)
		if code != 0 {
			t.Fatalf("tour step %d (as %s) failed with exit %d:\n  %s\n%s%s", n+1, st.who, code, st.line, out, errs)
		}
		if strings.HasPrefix(line, "mfactl info") {
			for _, w := range []string{"version", "store", "drivers", "keys", "host clock", "you"} {
				if !regexp.MustCompile(`(?m)^` + w + `\s`).MatchString(out) {
					t.Errorf("mfactl info does not print %q as the README says:\n%s", w, out)
				}
			}
		}
		last = out
	}

	// Where the tour leaves things.
	c := &client.Client{Socket: sock}
	ctx := context.Background()
	list, err := c.Devices(ctx, userSelf)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, d := range list.Devices {
		states[d.Label+"/"+d.Type] += d.State + " "
	}
	if !strings.Contains(states["phone/totp"], "lost") && !strings.Contains(states["phone/totp"], "deactivated") {
		t.Errorf("alice's phone after report-lost: %v", states)
	}
	if !strings.Contains(states["/fido"], "active") {
		t.Errorf("alice's replacement key: %v", states)
	}
	page, err := c.Audit(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range page.Events {
		seen[e.Action+" "+e.Outcome] = true
	}
	for _, want := range []string{"device.resync ok", "device.replace ok", "recovery.start ok"} {
		if !seen[want] {
			t.Errorf("audit has no %q: %v", want, seen)
		}
	}
}

// runTourLine runs one tour line in bash as who (root for ""), in dir,
// with the variables earlier lines set (bash's allexport), and records
// the variables it leaves. `mfactl recover` gets the codes a reader
// would copy from the outbox; a command the README says to stop with
// Ctrl-C gets an interrupt after a moment.
func runTourLine(t *testing.T, who, dir, rundir string, env map[string]string, line string) (string, string, int) {
	t.Helper()
	envFile := filepath.Join(dir, "env-"+strconv.Itoa(len(env))+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	os.WriteFile(envFile, nil, 0o600)
	if who != "" {
		u := users[who]
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		os.Chown(envFile, uid, gid)
	}
	defer os.Remove(envFile)
	script := "set -a -o pipefail\n" + line + "\nrc=$?\nenv -0 >" + envFile + "\nexit $rc\n"
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = dir
	base := map[string]string{"PATH": "/usr/bin:/bin", "HOME": dir, "LANG": "C.UTF-8"}
	if who == "" {
		base["USER"] = "root"
	} else {
		base["USER"] = who
	}
	for k, v := range env {
		base[k] = v
	}
	for k, v := range base {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	runAs(cmd, who)
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	var answer func(io.WriteCloser)
	interrupt := strings.Contains(line, "Ctrl-C")
	if strings.Contains(line, "mfactl recover") {
		answer = func(w io.WriteCloser) { answerRecovery(t, rundir, w) }
	}
	var stdin io.WriteCloser
	if answer != nil {
		var err error
		if stdin, err = cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if answer != nil {
		go answer(stdin)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	if interrupt {
		select {
		case err = <-done:
		case <-time.After(2 * time.Second):
			// Ctrl-C reaches the whole foreground process group.
			syscall.Kill(cmd.Process.Pid, syscall.SIGINT)
			exec.Command("pkill", "-INT", "-P", strconv.Itoa(cmd.Process.Pid)).Run()
			err = <-done
			if err != nil {
				err = nil // stopped as the README says
			}
		}
	} else {
		select {
		case err = <-done:
		case <-time.After(2 * time.Minute):
			cmd.Process.Kill()
			t.Fatalf("tour line %q did not finish", line)
		}
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if b, rerr := os.ReadFile(envFile); rerr == nil && len(b) > 0 {
		for _, kv := range strings.Split(string(b), "\x00") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "PWD" || k == "OLDPWD" || k == "SHLVL" || k == "_" || strings.HasPrefix(k, "BASH") {
				continue
			}
			env[k] = v
		}
	}
	return out.String(), errb.String(), code
}

var (
	mailCode = regexp.MustCompile(`Recovery code: (\d+)`)
	smsCode  = regexp.MustCompile(`(\S+)\n?$`)
)

// answerRecovery types the two recovery codes as a reader would: the
// e-mail's from the newest .eml in the outbox, then the text message's
// from the last line of sms.txt, each once it has arrived.
func answerRecovery(t *testing.T, rundir string, w io.WriteCloser) {
	defer w.Close()
	outbox := filepath.Join(rundir, "outbox")
	mails := func() []string {
		m, _ := filepath.Glob(filepath.Join(outbox, "mail", "*.eml"))
		return m
	}
	smsLines := func() []string {
		b, _ := os.ReadFile(filepath.Join(outbox, "sms.txt"))
		var ls []string
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			ls = append(ls, sc.Text())
		}
		return ls
	}
	nMail, nSMS := len(mails()), len(smsLines())
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := mails(); len(m) > nMail {
			b, _ := os.ReadFile(m[len(m)-1])
			if c := mailCode.FindStringSubmatch(string(b)); c != nil {
				fmt.Fprintln(w, c[1])
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	for time.Now().Before(deadline) {
		if ls := smsLines(); len(ls) > nSMS {
			if c := smsCode.FindStringSubmatch(ls[len(ls)-1]); c != nil {
				fmt.Fprintln(w, c[1])
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("no recovery code arrived in %s", outbox)
}
