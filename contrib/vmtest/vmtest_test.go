package vmtest

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// results are the VMTEST lines of a serial log.
type results struct {
	pass    []string
	fail    []string // "name: why"
	metrics []string // "name value unit"
	done    bool
}

func parse(r io.Reader) results {
	var res results
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		rest, ok := strings.CutPrefix(line, "VMTEST ")
		if !ok {
			continue
		}
		kind, arg, _ := strings.Cut(rest, " ")
		switch kind {
		case "PASS":
			res.pass = append(res.pass, arg)
		case "FAIL":
			res.fail = append(res.fail, arg)
		case "METRIC":
			res.metrics = append(res.metrics, arg)
		case "DONE":
			res.done = true
		}
	}
	return res
}

func TestParse(t *testing.T) {
	log := "SeaBIOS\r\n=== step boot\nVMTEST PASS boot\nVMTEST METRIC vm_boot_to_init_s 2.75 s\n" +
		"  [x] VMTEST PASS not-at-line-start\nVMTEST FAIL fido2_token_list: no device\nVMTEST SKIP y\nVMTEST DONE\r\n"
	r := parse(strings.NewReader(log))
	if len(r.pass) != 1 || r.pass[0] != "boot" || len(r.fail) != 1 || r.fail[0] != "fido2_token_list: no device" ||
		len(r.metrics) != 1 || !r.done {
		t.Fatalf("parse = %+v", r)
	}
	if r := parse(strings.NewReader("VMTEST PASS boot\n")); r.done {
		t.Fatal("DONE found where there is none")
	}
}

// TestVM boots the VM through run.sh (about 15 s here once the Debian
// packages are cached; the first run downloads about 80 MB).
func TestVM(t *testing.T) {
	if os.Getenv("MFAD_VMTEST") != "1" {
		t.Skip("the VM test boots QEMU: run it with MFAD_VMTEST=1 (or contrib/vmtest/run.sh)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "./run.sh")
	cmd.Env = append(os.Environ(), "VMTEST_TIMEOUT=300")
	out, err := cmd.CombinedOutput()
	r := parse(strings.NewReader(string(out)))
	for _, m := range r.metrics {
		t.Log("METRIC", m)
	}
	for _, f := range r.fail {
		t.Error("FAIL", f)
	}
	if !r.done {
		t.Error("the guest did not print VMTEST DONE")
	}
	if len(r.pass) == 0 {
		t.Error("no PASS line")
	}
	if err != nil || ctx.Err() != nil {
		t.Errorf("run.sh: %v (ctx %v)\n%s", err, ctx.Err(), tail(string(out), 40))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
