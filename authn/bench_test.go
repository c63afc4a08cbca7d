package authn_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/authn/store"
	"github.com/mfad/mfad/authn/totp"
)

// benchTokens sets up n accounts, each with an active HOTP token, and
// returns their secrets. Event-based tokens accept the next counter at
// once, so a benchmark can verify as fast as it likes without replays.
func benchTokens(b *testing.B, svc *authn.Service, n int) [][]byte {
	b.Helper()
	ctx, admin := context.Background(), authn.Actor{Admin: true}
	var pskc strings.Builder
	pskc.WriteString(`<?xml version="1.0"?><KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">`)
	secrets := make([][]byte, n)
	for i := range secrets {
		secrets[i] = bytes.Repeat([]byte{byte(i), byte(i >> 8)}, 10)
		fmt.Fprintf(&pskc, `<KeyPackage><DeviceInfo><SerialNo>B%d</SerialNo></DeviceInfo><Key Id="B%d" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp">`+
			`<AlgorithmParameters><ResponseFormat Length="6" Encoding="DECIMAL"/></AlgorithmParameters><Data><Secret><PlainValue>%s</PlainValue></Secret>`+
			`<Counter><PlainValue>0</PlainValue></Counter></Data></Key></KeyPackage>`, i, i, base64.StdEncoding.EncodeToString(secrets[i]))
	}
	pskc.WriteString(`</KeyContainer>`)
	if _, err := svc.ImportTokens(ctx, admin, []byte(pskc.String()), totp.PSKCOptions{}); err != nil {
		b.Fatal(err)
	}
	for i := range secrets {
		acct := fmt.Sprintf("b%d", i)
		e, err := svc.Enroll(ctx, admin, acct, authn.EnrollRequest{Type: authn.DeviceHardwareOTP, Serial: fmt.Sprintf("B%d", i)})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := svc.Activate(ctx, admin, acct, e.Device.ID, authn.CodePair{Code1: hotp(secrets[i], 0), Code2: hotp(secrets[i], 1)}); err != nil {
			b.Fatal(err)
		}
	}
	return secrets
}

func hotp(secret []byte, c uint64) string {
	return totp.Code(secret, totp.Params{Algorithm: totp.SHA1, Digits: 6, Period: 30 * time.Second}, c)
}

// BenchmarkAuthenticateDurable is one durable verification through
// authn.Service and the bbolt store (group commit, fsync on), without the
// socket; -cpu sets the parallelism, one token per goroutine.
func BenchmarkAuthenticateDurable(b *testing.B) {
	for _, clients := range []int{1, 32} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			st, err := store.Open(b.TempDir(), bytes.Repeat([]byte{1}, store.KeySize), store.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			svc := authn.NewService(st, authn.Config{Policy: authn.Policy{MaxFailures: 1 << 30, LockoutAfter: 1<<30 + 1}})
			par := max(1, clients/runtime.GOMAXPROCS(0))
			goroutines := par * runtime.GOMAXPROCS(0)
			if clients == 1 {
				goroutines = 1
			}
			secrets := benchTokens(b, svc, goroutines)
			if clients == 1 {
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := svc.Authenticate(context.Background(), authn.Actor{}, authn.AuthRequest{Account: "b0", Code: hotp(secrets[0], uint64(i+2))}, nil); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			var next atomic.Int64
			b.SetParallelism(par)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(1) - 1)
				acct, counter := fmt.Sprintf("b%d", i), uint64(2)
				for pb.Next() {
					if _, err := svc.Authenticate(context.Background(), authn.Actor{}, authn.AuthRequest{Account: acct, Code: hotp(secrets[i], counter)}, nil); err != nil {
						b.Error(err)
						return
					}
					counter++
				}
			})
			c, u := st.Stats()
			b.ReportMetric(float64(u)/float64(max(c, 1)), "updates/commit")
		})
	}
}
