package totp

import (
	"crypto/sha512"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// oathtool finds Debian's oathtool (package oathtool), the independent
// implementation our codes are checked against. Without it the test fails
// under MFAD_REQUIRE_TOOLS=1 (make test) and is skipped otherwise.
func oathtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("oathtool")
	if err != nil {
		if os.Getenv("MFAD_REQUIRE_TOOLS") == "1" {
			t.Fatalf("oathtool not found (apt-get install oathtool): %v", err)
		}
		t.Skip("oathtool not found; set MFAD_REQUIRE_TOOLS=1 to make this fatal")
	}
	return path
}

// runOathtool returns the codes oathtool prints, one per line.
func runOathtool(t *testing.T, path string, args ...string) []string {
	t.Helper()
	out, err := exec.Command(path, args...).Output()
	if err != nil {
		t.Fatalf("oathtool %s: %v", strings.Join(args, " "), err)
	}
	return strings.Fields(string(out))
}

func oathSecret(n int, label string) []byte {
	h := sha512.Sum512([]byte(label))
	return append(h[:0:0], h[:n]...)
}

func TestOathtoolTOTP(t *testing.T) {
	path := oathtool(t)
	times := []int64{0, 59, 1111111109, 1234567890, 1700000000, 2000000000, 20000000000}
	const window = 3 // oathtool -w 3 prints 4 consecutive codes
	for _, alg := range []Algorithm{SHA1, SHA256, SHA512} {
		for _, digits := range []int{6, 8} {
			for _, period := range []time.Duration{30 * time.Second, 60 * time.Second} {
				for i, unix := range times {
					n := []int{16, 20, 32, 64, 17, 40, 25}[i]
					secret := oathSecret(n, fmt.Sprint(alg, digits, period, unix))
					k := &Key{Type: TOTP, Secret: secret, Params: Params{alg, digits, period}}
					if err := k.Validate(); err != nil {
						t.Fatal(err)
					}
					algArg := map[Algorithm]string{SHA1: "sha1", SHA256: "sha256", SHA512: "sha512"}[alg]
					codes := runOathtool(t, path, "--totp="+algArg, "-d", fmt.Sprint(digits), "-s", fmt.Sprint(int(period/time.Second)),
						"-w", fmt.Sprint(window), "-b", EncodeSecret(secret), "-N", fmt.Sprintf("@%d", unix))
					if len(codes) != window+1 {
						t.Fatalf("oathtool printed %q", codes)
					}
					step := StepAt(time.Unix(unix, 0), period)
					for j, want := range codes {
						if got := k.Code(step + uint64(j)); got != want {
							t.Errorf("%v %d digits %v, %d-byte secret, t=%d+%d steps: ours %s, oathtool %s", alg, digits, period, n, unix, j, got, want)
						}
						if c, ok := k.Match(want, Window{Center: step + 1, Behind: 1, Ahead: 1}); j <= 2 && (!ok || c != step+uint64(j)) {
							t.Errorf("%v t=%d: Match(oathtool code %d) = %d, %v", alg, unix, j, c, ok)
						}
					}
				}
			}
		}
	}
}

func TestOathtoolHOTP(t *testing.T) {
	path := oathtool(t)
	for _, digits := range []int{6, 8} {
		for _, counter := range []uint64{0, 1, 7, 1000, 1 << 31, 1 << 40} {
			secret := oathSecret(20, fmt.Sprint("hotp", digits, counter))
			k := &Key{Type: HOTP, Secret: secret, Params: Params{Algorithm: SHA1, Digits: digits}, Counter: counter}
			codes := runOathtool(t, path, "--hotp", "-d", fmt.Sprint(digits), "-c", fmt.Sprint(counter), "-w", "4", "-b", EncodeSecret(secret))
			if len(codes) != 5 {
				t.Fatalf("oathtool printed %q", codes)
			}
			for j, want := range codes {
				if got := k.Code(counter + uint64(j)); got != want {
					t.Errorf("HOTP %d digits counter %d: ours %s, oathtool %s", digits, counter+uint64(j), got, want)
				}
			}
			if c, ok := k.Match(codes[3], Forward(counter, 10)); !ok || c != counter+3 {
				t.Errorf("HOTP forward: %d %v", c, ok)
			}
			if c, ok := k.FindConsecutive(codes[2], codes[3], Forward(counter, 100)); !ok || c != counter+3 {
				t.Errorf("HOTP FindConsecutive: %d %v", c, ok)
			}
		}
	}
}
