package totp

import (
	"encoding/base32"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

var (
	seed20 = []byte("12345678901234567890")
	seed32 = []byte("12345678901234567890123456789012")
	seed64 = []byte("1234567890123456789012345678901234567890123456789012345678901234")
)

// RFC 4226 Appendix D: HOTP values for counters 0..9.
func TestRFC4226AppendixD(t *testing.T) {
	want := []string{"755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"}
	p := Params{Algorithm: SHA1, Digits: 6}
	for c, w := range want {
		if got := Code(seed20, p, uint64(c)); got != w {
			t.Errorf("counter %d: got %s, want %s", c, got, w)
		}
	}
}

// RFC 6238 Appendix B: TOTP values, 8 digits, 30 s steps.
func TestRFC6238AppendixB(t *testing.T) {
	tests := []struct {
		unix int64
		step uint64
		sha1 string
		s256 string
		s512 string
	}{
		{59, 0x1, "94287082", "46119246", "90693936"},
		{1111111109, 0x23523EC, "07081804", "68084774", "25091201"},
		{1111111111, 0x23523ED, "14050471", "67062674", "99943326"},
		{1234567890, 0x273EF07, "89005924", "91819424", "93441116"},
		{2000000000, 0x3F940AA, "69279037", "90698825", "38618901"},
		{20000000000, 0x27BC86AA, "65353130", "77737706", "47863826"},
	}
	for _, tc := range tests {
		step := StepAt(time.Unix(tc.unix, 0), 30*time.Second)
		if step != tc.step {
			t.Errorf("StepAt(%d) = %#x, want %#x", tc.unix, step, tc.step)
		}
		for _, h := range []struct {
			alg    Algorithm
			secret []byte
			want   string
		}{{SHA1, seed20, tc.sha1}, {SHA256, seed32, tc.s256}, {SHA512, seed64, tc.s512}} {
			k := &Key{Type: TOTP, Secret: h.secret, Params: Params{Algorithm: h.alg, Digits: 8, Period: 30 * time.Second}}
			if err := k.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := k.Code(step); got != h.want {
				t.Errorf("%v at %d: got %s, want %s", h.alg, tc.unix, got, h.want)
			}
			// The verifier finds the same step.
			if got, ok := k.Match(h.want, Window{Center: step, Behind: 1, Ahead: 1}); !ok || got != step {
				t.Errorf("%v at %d: Match = %d, %v; want %d, true", h.alg, tc.unix, got, ok, step)
			}
		}
	}
}

func TestStepAt(t *testing.T) {
	tests := []struct {
		t      time.Time
		period time.Duration
		want   uint64
	}{
		{time.Unix(0, 0), 30 * time.Second, 0},
		{time.Unix(29, 999999999), 30 * time.Second, 0},
		{time.Unix(30, 0), 30 * time.Second, 1},
		{time.Unix(119, 0), 60 * time.Second, 1},
		{time.Unix(120, 0), 60 * time.Second, 2},
		{time.Unix(-5, 0), 30 * time.Second, 0},
		{time.Unix(1000, 0), 0, 0},
		{time.Unix(1000, 0), time.Millisecond, 0},
	}
	for _, tc := range tests {
		if got := StepAt(tc.t, tc.period); got != tc.want {
			t.Errorf("StepAt(%v, %v) = %d, want %d", tc.t.Unix(), tc.period, got, tc.want)
		}
	}
}

func TestParamsValidate(t *testing.T) {
	good := []Params{
		{SHA1, 6, 30 * time.Second}, {SHA256, 8, 60 * time.Second}, {SHA512, 6, 60 * time.Second}, DefaultParams,
	}
	for _, p := range good {
		if err := p.Validate(); err != nil {
			t.Errorf("%+v: %v", p, err)
		}
	}
	bad := []struct {
		p    Params
		want string
	}{
		{Params{0, 6, 30 * time.Second}, "algorithm"},
		{Params{Algorithm(9), 6, 30 * time.Second}, "algorithm"},
		{Params{SHA1, 7, 30 * time.Second}, "7 digits"},
		{Params{SHA1, 0, 30 * time.Second}, "0 digits"},
		{Params{SHA1, 6, 45 * time.Second}, "period 45s"},
		{Params{SHA1, 6, 0}, "period 0s"},
	}
	for _, tc := range bad {
		err := tc.p.Validate()
		if !errors.Is(err, ErrParams) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want ErrParams mentioning %q", tc.p, err, tc.want)
		}
	}
	if Code(seed20, Params{Algorithm: SHA1, Digits: 7}, 0) != "" {
		t.Error("Code with 7 digits did not return empty")
	}
}

func TestKeyValidate(t *testing.T) {
	ok := &Key{Type: HOTP, Secret: seed20, Params: Params{Algorithm: SHA1, Digits: 6}, Counter: 5}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []*Key{
		{Type: TOTP, Secret: seed20[:15], Params: DefaultParams},
		{Type: TOTP, Secret: make([]byte, MaxSecretLen+1), Params: DefaultParams},
		{Type: TOTP, Secret: seed20, Params: DefaultParams, Counter: 1},
		{Type: HOTP, Secret: seed20, Params: DefaultParams},
		{Type: Type(7), Secret: seed20, Params: DefaultParams},
	}
	for i, k := range bad {
		if err := k.Validate(); err == nil {
			t.Errorf("bad key %d validated", i)
		}
	}
}

func TestParseAlgorithm(t *testing.T) {
	for in, want := range map[string]Algorithm{
		"SHA1": SHA1, "sha1": SHA1, "HMAC-SHA1": SHA1, "hmac-sha256": SHA256, "SHA-256": SHA256,
		"SHA512": SHA512, " HMAC-SHA-512 ": SHA512,
	} {
		if got, err := ParseAlgorithm(in); err != nil || got != want {
			t.Errorf("ParseAlgorithm(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MD5", "SHA384", "SHA", "OCRA-1:HOTP-SHA1-6:QN08"} {
		if _, err := ParseAlgorithm(in); !errors.Is(err, ErrParams) {
			t.Errorf("ParseAlgorithm(%q): got %v, want ErrParams", in, err)
		}
	}
}

func TestKeyFormatHidesSecret(t *testing.T) {
	k := Key{Type: TOTP, Secret: []byte("SUPERSECRETSEED!!!!!"), Params: DefaultParams}
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s", k, &k, k, k), fmt.Sprintf("%+v", Token{Key: k})} {
		if strings.Contains(s, "SUPERSECRET") || strings.Contains(s, "83 85 80") || strings.Contains(s, "5355504552") {
			t.Errorf("formatted key shows its secret: %s", s)
		}
	}
}

func testKey(alg Algorithm, digits int) *Key {
	secret := map[Algorithm][]byte{SHA1: seed20, SHA256: seed32, SHA512: seed64}[alg]
	return &Key{Type: TOTP, Secret: secret, Params: Params{Algorithm: alg, Digits: digits, Period: 30 * time.Second}}
}

func TestMatch(t *testing.T) {
	k := testKey(SHA1, 6)
	const now = uint64(55555555)
	tests := []struct {
		name   string
		code   string
		w      Window
		want   uint64
		wantOK bool
	}{
		{"current", k.Code(now), Window{Center: now, Behind: 1, Ahead: 1}, now, true},
		{"previous", k.Code(now - 1), Window{Center: now, Behind: 1, Ahead: 1}, now - 1, true},
		{"next", k.Code(now + 1), Window{Center: now, Behind: 1, Ahead: 1}, now + 1, true},
		{"two behind, outside", k.Code(now - 2), Window{Center: now, Behind: 1, Ahead: 1}, 0, false},
		{"two ahead, outside", k.Code(now + 2), Window{Center: now, Behind: 1, Ahead: 1}, 0, false},
		{"zero window", k.Code(now), Window{Center: now}, now, true},
		{"drift centre +5", k.Code(now + 6), Window{Center: now + 5, Behind: 1, Ahead: 1}, now + 6, true},
		{"drift centre -7", k.Code(now - 8), Window{Center: now - 7, Behind: 1, Ahead: 1}, now - 8, true},
		{"replay of last used", k.Code(now), Window{Center: now, Behind: 1, Ahead: 1, Min: now + 1}, 0, false},
		{"older than last used", k.Code(now - 1), Window{Center: now, Behind: 1, Ahead: 1, Min: now}, 0, false},
		{"at floor", k.Code(now), Window{Center: now, Behind: 1, Ahead: 1, Min: now}, now, true},
		{"after last used", k.Code(now + 1), Window{Center: now, Behind: 1, Ahead: 1, Min: now}, now + 1, true},
		{"spaces", spaced(k.Code(now)), Window{Center: now, Behind: 1, Ahead: 1}, now, true},
		{"wrong code", wrong(k, now), Window{Center: now, Behind: 1, Ahead: 1}, 0, false},
		{"too short", k.Code(now)[:5], Window{Center: now, Behind: 1, Ahead: 1}, 0, false},
		{"too long", k.Code(now) + "0", Window{Center: now, Behind: 1, Ahead: 1}, 0, false},
		{"letters", "12a456", Window{Center: now, Behind: 1, Ahead: 1}, 0, false},
		{"empty", "", Window{Center: now, Behind: 1, Ahead: 1}, 0, false},
		{"negative window", k.Code(now), Window{Center: now, Behind: -1, Ahead: 1}, 0, false},
		{"oversized window", k.Code(now), Window{Center: now, Behind: MaxWindow + 1}, 0, false},
		{"centre 0, behind clamps", k.Code(0), Window{Center: 0, Behind: 3, Ahead: 1}, 0, true},
		{"top of range", k.Code(math.MaxUint64), Window{Center: math.MaxUint64, Behind: 1, Ahead: 5}, math.MaxUint64, true},
	}
	for _, tc := range tests {
		got, ok := k.Match(tc.code, tc.w)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("%s: Match = %d, %v; want %d, %v", tc.name, got, ok, tc.want, tc.wantOK)
		}
	}
}

// A code that matches two counters of the window returns the higher one, so
// that the same code cannot be replayed against the other.
func TestMatchCollisionTakesHighest(t *testing.T) {
	k := testKey(SHA1, 6)
	seen := map[string]uint64{}
	for c := uint64(0); c < 5000; c++ {
		code := k.Code(c)
		if first, dup := seen[code]; dup {
			got, ok := k.Match(code, Window{Center: first, Ahead: int(c - first)})
			if !ok || got != c {
				t.Fatalf("collision %s at %d and %d: Match = %d, %v", code, first, c, got, ok)
			}
			return
		}
		seen[code] = c
	}
	t.Skip("no collision among the first 5000 counters")
}

func TestHOTPForward(t *testing.T) {
	k := &Key{Type: HOTP, Secret: seed20, Params: Params{Algorithm: SHA1, Digits: 6}}
	// RFC 4226 Appendix D: counter 7 is 162583.
	if got, ok := k.Match("162583", Forward(3, 10)); !ok || got != 7 {
		t.Errorf("forward from 3: %d, %v", got, ok)
	}
	if _, ok := k.Match("162583", Forward(8, 10)); ok {
		t.Error("forward from 8 matched counter 7")
	}
	if _, ok := k.Match("162583", Forward(0, 5)); ok {
		t.Error("forward 0..5 matched counter 7")
	}
	if got, ok := k.FindConsecutive("287922", "162583", Forward(0, 100)); !ok || got != 7 {
		t.Errorf("FindConsecutive forward: %d, %v", got, ok)
	}
	if _, ok := k.FindConsecutive("287922", "162583", Forward(7, 100)); ok {
		t.Error("FindConsecutive forward from 7 matched pair at 6,7")
	}
}

func TestFindConsecutive(t *testing.T) {
	for _, alg := range []Algorithm{SHA1, SHA256, SHA512} {
		k := testKey(alg, 8)
		const now = uint64(60000000)
		w := Window{Center: now, Behind: 1000, Ahead: 1000}
		for _, drift := range []int64{-1000, -999, -1, 0, 1, 250, 999, 1000} {
			c := uint64(int64(now) + drift)
			got, ok := k.FindConsecutive(k.Code(c), k.Code(c+1), w)
			if !ok || got != c+1 {
				t.Errorf("%v drift %d: got %d, %v; want %d", alg, drift, got, ok, c+1)
			}
		}
		for _, drift := range []int64{-1001, 1001, 5000} {
			c := uint64(int64(now) + drift)
			if got, ok := k.FindConsecutive(k.Code(c), k.Code(c+1), w); ok {
				t.Errorf("%v drift %d outside window matched at %d", alg, drift, got)
			}
		}
		// Not consecutive: codes for c and c+2, or swapped.
		if _, ok := k.FindConsecutive(k.Code(now), k.Code(now+2), w); ok {
			t.Errorf("%v: codes two apart matched", alg)
		}
		if _, ok := k.FindConsecutive(k.Code(now+1), k.Code(now), w); ok {
			t.Errorf("%v: swapped codes matched", alg)
		}
		// Replay floor: the pair must lie at or above Min.
		fw := w
		fw.Min = now + 1
		if _, ok := k.FindConsecutive(k.Code(now), k.Code(now+1), fw); ok {
			t.Errorf("%v: pair below Min matched", alg)
		}
		if got, ok := k.FindConsecutive(k.Code(now+1), k.Code(now+2), fw); !ok || got != now+2 {
			t.Errorf("%v: pair at Min: %d, %v", alg, got, ok)
		}
		if _, ok := k.FindConsecutive("bad", k.Code(now), w); ok {
			t.Errorf("%v: malformed code1 matched", alg)
		}
	}
}

func TestCodeAgainstIndependentLoop(t *testing.T) {
	// Code and Match share the coder; this checks the 6-digit truncation at
	// a few counters against the 8-digit code's low digits (value mod 10^6).
	for _, alg := range []Algorithm{SHA1, SHA256, SHA512} {
		k6, k8 := testKey(alg, 6), testKey(alg, 8)
		for _, c := range []uint64{0, 1, 1 << 32, math.MaxUint64} {
			if a, b := k6.Code(c), k8.Code(c)[2:]; a != b {
				t.Errorf("%v counter %d: 6-digit %s, 8-digit tail %s", alg, c, a, b)
			}
		}
	}
}

func spaced(code string) string { return " " + code[:3] + " \t" + code[3:] + " " }

// wrong returns a code that matches none of the counters around now.
func wrong(k *Key, now uint64) string {
	for i := 0; ; i++ {
		c := fmt.Sprintf("%06d", i)
		hit := false
		for d := now - 1; d <= now+1; d++ {
			hit = hit || k.Code(d) == c
		}
		if !hit {
			return c
		}
	}
}

func TestNormalizeAndEqualCode(t *testing.T) {
	tests := []struct {
		typed  string
		digits int
		want   string
		ok     bool
	}{
		{"123456", 6, "123456", true},
		{" 123 456 ", 6, "123456", true},
		{"1234\t5678", 8, "12345678", true},
		{"000000", 6, "000000", true},
		{"12345", 6, "", false},
		{"1234567", 6, "", false},
		{"123456", 8, "", false},
		{"12-3456", 6, "", false},
		{"１２３４５６", 6, "", false}, // full-width digits are not ASCII
		{"123456\n", 6, "", false},
		{"123456", 7, "", false},
		{strings.Repeat(" ", 70) + "123456", 6, "", false},
	}
	for _, tc := range tests {
		got, ok := NormalizeCode(tc.typed, tc.digits)
		if got != tc.want || ok != tc.ok {
			t.Errorf("NormalizeCode(%q, %d) = %q, %v; want %q, %v", tc.typed, tc.digits, got, ok, tc.want, tc.ok)
		}
		if tc.ok {
			if !EqualCode(tc.typed, tc.want, tc.digits) {
				t.Errorf("EqualCode(%q, %q) = false", tc.typed, tc.want)
			}
		}
	}
	if EqualCode("123456", "123457", 6) || EqualCode("123456", "12345", 6) || EqualCode("123456", " 123456", 6) || EqualCode("", "", 6) {
		t.Error("EqualCode accepted a mismatch")
	}
}

func TestSecretEncoding(t *testing.T) {
	s := EncodeSecret(seed20)
	if s != "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" {
		t.Fatalf("EncodeSecret = %s", s)
	}
	for _, in := range []string{s, strings.ToLower(s), "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ"} {
		b, err := DecodeSecret(in)
		if err != nil || string(b) != string(seed20) {
			t.Errorf("DecodeSecret(%q) = %q, %v", in, b, err)
		}
	}
	// 17 bytes: padded and unpadded forms.
	b17 := []byte("12345678901234567")
	padded := base32.StdEncoding.EncodeToString(b17)
	for _, in := range []string{EncodeSecret(b17), padded} {
		if b, err := DecodeSecret(in); err != nil || string(b) != string(b17) {
			t.Errorf("DecodeSecret(%q) = %q, %v", in, b, err)
		}
	}
	for _, in := range []string{"", "GEZDGNBVGY3TQOJQ", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ1", padded + "=", padded[:len(padded)-1], "GEZDGNBV!Y3TQOJQGEZDGNBVGY3TQOJQ", strings.Repeat("A", 1000)} {
		if _, err := DecodeSecret(in); !errors.Is(err, ErrSecret) {
			t.Errorf("DecodeSecret(%q): got %v, want ErrSecret", in, err)
		}
	}
}

func TestCenterAndDrift(t *testing.T) {
	tests := []struct {
		step  uint64
		drift int64
		want  uint64
	}{
		{100, 0, 100}, {100, 5, 105}, {100, -5, 95}, {3, -5, 0}, {0, math.MinInt64, 0},
		{math.MaxUint64 - 1, 5, math.MaxUint64}, {math.MaxUint64, math.MinInt64, math.MaxUint64 - 1<<63},
	}
	for _, tc := range tests {
		if got := Center(tc.step, tc.drift); got != tc.want {
			t.Errorf("Center(%d, %d) = %d, want %d", tc.step, tc.drift, got, tc.want)
		}
	}
	for _, tc := range []struct {
		matched, step uint64
		want          int64
	}{{105, 100, 5}, {95, 100, -5}, {7, 7, 0}, {math.MaxUint64, 0, math.MaxInt64}, {0, math.MaxUint64, math.MinInt64}} {
		if got := Drift(tc.matched, tc.step); got != tc.want {
			t.Errorf("Drift(%d, %d) = %d, want %d", tc.matched, tc.step, got, tc.want)
		}
	}
	// A learned drift re-centres the window: a device 40 steps ahead.
	k := testKey(SHA256, 6)
	step := uint64(1000000)
	c, ok := k.FindConsecutive(k.Code(step+39), k.Code(step+40), Window{Center: step, Behind: 1000, Ahead: 1000})
	if !ok || Drift(c, step) != 40 {
		t.Fatalf("resync: %d %v", c, ok)
	}
	later := step + 100
	got, ok := k.Match(k.Code(later+40), Window{Center: Center(later, Drift(c, step)), Behind: 1, Ahead: 1, Min: c + 1})
	if !ok || got != later+40 {
		t.Errorf("drift-centred match: %d %v", got, ok)
	}
	if _, ok := k.Match(k.Code(later+40), Window{Center: later, Behind: 1, Ahead: 1, Min: c + 1}); ok {
		t.Error("un-centred window matched a code 40 steps ahead")
	}
}
