package daemon

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfad/mfad/authn/totp"
	"github.com/mfad/mfad/ipc/api"
	"github.com/mfad/mfad/ipc/client"
)

// BenchmarkAuthenticateSocket is a durable HOTP verification through the
// whole daemon (socket, HTTP, router, domain, group commit, fsync), client
// and server in one process: run with -cpuprofile to see where it goes.
// mfad-load measures the same across processes.
func BenchmarkAuthenticateSocket(b *testing.B) {
	for _, clients := range []int{1, 32} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			dir := b.TempDir()
			cfg := DefaultConfig()
			cfg.Socket, cfg.StateDir = filepath.Join(dir, "mfad.sock"), filepath.Join(dir, "state")
			cfg.Keys.Driver = DriverNone
			cfg.Lockout.MaxFailures, cfg.Lockout.LockoutAfter = 1<<30, 1<<30+1
			cfg.Limits.ConnectionsPerUID = 512
			cfg.Limits.Connections, cfg.Limits.ConnectionsRootReserved = 1024, 16
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
			defer func() { cancel(); <-done }()
			c := &client.Client{Socket: cfg.Socket}
			for i := 0; ; i++ {
				if _, err := c.Info(ctx); err == nil {
					break
				}
				if i > 200 {
					b.Fatal("daemon did not start")
				}
				time.Sleep(10 * time.Millisecond)
			}
			p := totp.Params{Algorithm: totp.SHA1, Digits: 8, Period: 30 * time.Second} // 8 digits: no collision in the look-ahead over long runs
			secrets := make([][]byte, clients)
			var pskc strings.Builder
			pskc.WriteString(`<?xml version="1.0"?><KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">`)
			for i := range secrets {
				secrets[i] = bytes.Repeat([]byte{byte(i + 1), 7}, 10)
				fmt.Fprintf(&pskc, `<KeyPackage><DeviceInfo><SerialNo>S%d</SerialNo></DeviceInfo><Key Id="S%d" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp">`+
					`<AlgorithmParameters><ResponseFormat Length="8" Encoding="DECIMAL"/></AlgorithmParameters><Data><Secret><PlainValue>%s</PlainValue></Secret>`+
					`<Counter><PlainValue>0</PlainValue></Counter></Data></Key></KeyPackage>`, i, i, base64.StdEncoding.EncodeToString(secrets[i]))
			}
			pskc.WriteString(`</KeyContainer>`)
			if _, err := c.ImportTokens(ctx, api.TokenImport{PSKC: pskc.String()}); err != nil {
				b.Fatal(err)
			}
			for i := range secrets {
				acct := fmt.Sprintf("b%d", i)
				e, err := c.AddDevice(ctx, acct, api.CreateDevice{Type: "hardware-otp", Serial: fmt.Sprintf("S%d", i)})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.ActivateDevice(ctx, acct, e.Device.ID, api.CodePair{Code1: totp.Code(secrets[i], p, 0), Code2: totp.Code(secrets[i], p, 1)}); err != nil {
					b.Fatal(err)
				}
			}
			// Exactly one goroutine per client and account: b.RunParallel
			// starts GOMAXPROCS×parallelism goroutines, and two sharing one
			// token would race each other's counters into replays.
			var wg sync.WaitGroup
			b.ResetTimer()
			for i := range clients {
				n := b.N / clients
				if i < b.N%clients {
					n++
				}
				wg.Go(func() {
					cl := &client.Client{Socket: cfg.Socket}
					defer cl.Close()
					acct := fmt.Sprintf("b%d", i)
					for k := range n {
						// Counters 0 and 1 activated the token.
						if _, err := cl.Authenticate(ctx, api.Authenticate{Account: acct, Code: totp.Code(secrets[i], p, uint64(k)+2)}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}
