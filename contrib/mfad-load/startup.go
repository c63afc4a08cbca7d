package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/authn/store"
	"github.com/mfad/mfad/ipc/client"
)

// startupRun measures mfad's start on a large store: a first start creates
// the state directory and its master key; the store is then filled
// directly (accounts of 3 active TOTP devices, secrets sealed as mfad
// seals them), and mfad is started again and again, each start timed from
// exec to the READY=1 it sends on NOTIFY_SOCKET, as systemd waits for it.
// After the last start it reports mfad's resident memory once idle, and
// checks that mfad serves the filled store. With several builds, each has
// its own store, and their starts are interleaved.
func startupRun(builds []string, accounts, starts int) {
	type build struct {
		bin   string
		run   func() (*exec.Cmd, time.Duration)
		sock  string
		times []time.Duration
		empty time.Duration
		idle  memory
		size  int64
		fill  time.Duration
		n     int
	}
	var bs []*build
	for _, bin := range builds {
		command, sock, dir := mfadCommand(bin, "group", 32, "")
		defer os.RemoveAll(dir)
		notify := filepath.Join(dir, "notify")
		nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
		if err != nil {
			fail("%v", err)
		}
		defer nc.Close()
		b := &build{bin: bin, sock: sock, run: func() (*exec.Cmd, time.Duration) {
			cmd := command()
			cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notify, "LISTEN_FDS=", "WATCHDOG_USEC=")
			t0 := time.Now()
			if err := cmd.Start(); err != nil {
				fail("start %s: %v", bin, err)
			}
			buf := make([]byte, 4096)
			nc.SetReadDeadline(time.Now().Add(30 * time.Second))
			for {
				n, err := nc.Read(buf)
				if err != nil {
					cmd.Process.Kill()
					fail("no READY=1 from %s: %v", bin, err)
				}
				if strings.Contains(string(buf[:n]), "READY=1") {
					return cmd, time.Since(t0)
				}
			}
		}}
		var cmd *exec.Cmd
		cmd, b.empty = b.run()
		stopMfad(cmd)
		stateDir := filepath.Join(dir, "state")
		t0 := time.Now()
		fillStore(stateDir, accounts)
		b.fill = time.Since(t0)
		if fi, err := os.Stat(filepath.Join(stateDir, store.DBFileName)); err == nil {
			b.size = fi.Size()
		}
		bs = append(bs, b)
	}
	for i := range starts {
		for k := range bs {
			b := bs[(i+k)%len(bs)]
			cmd, d := b.run()
			b.times = append(b.times, d)
			if i == starts-1 {
				time.Sleep(2 * time.Second)
				b.idle = memoryOf(cmd.Process.Pid)
				c := &client.Client{Socket: b.sock}
				as, err := c.Accounts(context.Background())
				c.Close()
				if err != nil {
					fail("accounts: %v", err)
				}
				b.n = len(as)
			}
			stopMfad(cmd)
		}
	}
	fmt.Printf("mfad-load --startup, %s; %d accounts × 3 active TOTP devices; starts interleaved\n\n", time.Now().UTC().Format(time.RFC3339), accounts)
	fmt.Printf("| build | first start (empty) | database | exec to READY=1: median | min | max | idle RSS after the last start | accounts served |\n|---|---|---|---|---|---|---|---|\n")
	for _, b := range bs {
		sorted := slices.Clone(b.times)
		slices.Sort(sorted)
		r := func(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
		fmt.Printf("| %s | %s | %.1f MB (filled in %s) | **%s** | %s | %s | %s | %d |\n", b.bin, r(b.empty), float64(b.size)/(1<<20), b.fill.Round(time.Millisecond),
			r(sorted[len(sorted)/2]), r(sorted[0]), r(sorted[len(sorted)-1]), b.idle, b.n)
	}
}

func stopMfad(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		fail("mfad did not stop cleanly: %v", err)
	}
}

// fillStore writes accounts of 3 active TOTP devices each into the store
// of stateDir, with mfad stopped, 500 accounts per transaction.
func fillStore(stateDir string, accounts int) {
	key, _, err := store.LoadKey(stateDir)
	if err != nil {
		fail("%v", err)
	}
	st, err := store.Open(stateDir, key, store.Options{})
	if err != nil {
		fail("%v", err)
	}
	defer st.Close()
	now := time.Now().UTC()
	for first := 0; first < accounts; first += 500 {
		err := st.Update(context.Background(), func(tx authn.Tx) error {
			for i := first; i < min(first+500, accounts); i++ {
				a := &authn.Account{Name: fmt.Sprintf("user%05d", i), Kind: authn.KindMember, CreatedAt: now, UpdatedAt: now, EverEnrolled: true}
				if err := tx.PutAccount(a); err != nil {
					return err
				}
				for j := range 3 {
					secret := make([]byte, 20)
					rand.Read(secret)
					d := &authn.Device{ID: fmt.Sprintf("%08x%08x", i, j), Account: a.Name, Type: authn.DeviceTOTP, State: authn.StateActive,
						Label: fmt.Sprintf("phone %d", j+1), CreatedAt: now, ActivatedAt: now, Secret: secret,
						OTP: &authn.OTPState{Algorithm: "SHA1", Digits: 6, Period: 30}}
					if err := tx.PutDevice(d); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			fail("fill: %v", err)
		}
	}
}
