package totp

import (
	"crypto/subtle"
	"math"
	"math/bits"
)

// MaxWindow bounds Window.Behind and Window.Ahead, so that a caller's
// mistake cannot turn one verification into millions of HMACs.
const MaxWindow = 10000

// Window says which counters a code may match.
//
// For TOTP, Center is the current time step plus the device's learned drift
// (in steps), and Behind/Ahead are the tolerance (typically 1 and 1). For
// HOTP, Center is the token's next counter, Behind is 0 and Ahead is the
// look-ahead (see Forward).
//
// Min is the replay floor: the lowest counter that may match, that is the
// device's last used counter + 1 (0 for a device that never matched).
// Counters below Min are still computed, so that timing does not depend on
// them, but never match.
type Window struct {
	Center        uint64
	Behind, Ahead int
	Min           uint64
}

// Forward is the HOTP window: counters from through from+n, none before.
func Forward(from uint64, n int) Window {
	return Window{Center: from, Ahead: n, Min: from}
}

// bounds returns the first and last counter of the window, clamped to the
// uint64 range, or ok=false for a negative or oversized window.
func (w Window) bounds() (lo, hi uint64, ok bool) {
	if w.Behind < 0 || w.Ahead < 0 || w.Behind > MaxWindow || w.Ahead > MaxWindow {
		return 0, 0, false
	}
	lo, hi = 0, uint64(math.MaxUint64)
	if w.Center >= uint64(w.Behind) {
		lo = w.Center - uint64(w.Behind)
	}
	if w.Center <= math.MaxUint64-uint64(w.Ahead) {
		hi = w.Center + uint64(w.Ahead)
	}
	return lo, hi, true
}

// Match reports whether code is the key's code for a counter in
// [Center-Behind, Center+Ahead] that is at least Min, and returns that
// counter. The caller stores it as the last used counter (and derives drift
// from counter - current step).
//
// Every counter of the window is computed and compared in constant time, so
// the time taken does not depend on which counter matched, or whether one
// did; one MAC is reused across the window. When several counters match
// (a code collision) the highest wins, so that the same code cannot be
// replayed against the other.
func (k *Key) Match(code string, w Window) (counter uint64, ok bool) {
	if k.Params.validateCode() != nil || len(k.Secret) == 0 {
		return 0, false
	}
	want, valid := parseCode(code, k.Digits)
	lo, hi, wok := w.bounds()
	if !valid || !wok {
		return 0, false
	}
	c := newCoder(k.Secret, k.Params)
	var found, any uint64
	for ctr := lo; ; ctr++ {
		eq := uint64(subtle.ConstantTimeEq(int32(c.value(ctr)), int32(want)))
		eq &= geq(ctr, w.Min)
		found = sel(eq, ctr, found)
		any |= eq
		if ctr == hi {
			break
		}
	}
	return found, any == 1
}

// FindConsecutive finds two consecutive counters c and c+1 with code1 at c
// and code2 at c+1, with c in [Center-Behind, Center+Ahead] and c >= Min,
// and returns c+1: the counter to store as last used. It serves activation
// and resynchronisation (RFC 4226 section 7.4, RFC 6238 section 6), where
// callers search a wide window (1000 steps either side). Each counter's code
// is computed once with one reused MAC, and every pair is compared in
// constant time; of several matching pairs the highest wins.
func (k *Key) FindConsecutive(code1, code2 string, w Window) (counter2 uint64, ok bool) {
	if k.Params.validateCode() != nil || len(k.Secret) == 0 {
		return 0, false
	}
	want1, ok1 := parseCode(code1, k.Digits)
	want2, ok2 := parseCode(code2, k.Digits)
	lo, hi, wok := w.bounds()
	if !ok1 || !ok2 || !wok || hi == math.MaxUint64 {
		return 0, false
	}
	c := newCoder(k.Secret, k.Params)
	var found, any uint64
	prev := uint64(subtle.ConstantTimeEq(int32(c.value(lo)), int32(want1))) & geq(lo, w.Min)
	for ctr := lo + 1; ctr <= hi+1; ctr++ {
		v := int32(c.value(ctr))
		eq := prev & uint64(subtle.ConstantTimeEq(v, int32(want2)))
		found = sel(eq, ctr, found)
		any |= eq
		prev = uint64(subtle.ConstantTimeEq(v, int32(want1))) & geq(ctr, w.Min)
	}
	return found, any == 1
}

// geq returns 1 if a >= b, else 0, without branching.
func geq(a, b uint64) uint64 {
	_, borrow := bits.Sub64(a, b, 0)
	return borrow ^ 1
}

// sel returns a if bit is 1, else b, without branching.
func sel(bit, a, b uint64) uint64 {
	mask := -bit
	return (a & mask) | (b &^ mask)
}

// maxCodeInput bounds what parseCode looks at: a code with its spaces.
const maxCodeInput = 64

// parseCode normalises a typed code: it drops ASCII spaces and tabs (people
// type "123 456"), requires exactly digits ASCII digits, and returns their
// value. It reads untrusted input only; its timing depends on the input, not
// on any secret.
func parseCode(s string, digits int) (uint32, bool) {
	if len(s) > maxCodeInput || (digits != 6 && digits != 8) {
		return 0, false
	}
	var v uint32
	n := 0
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == ' ' || ch == '\t':
			continue
		case ch >= '0' && ch <= '9':
			if n == digits {
				return 0, false
			}
			v = v*10 + uint32(ch-'0')
			n++
		default:
			return 0, false
		}
	}
	if n != digits {
		return 0, false
	}
	return v, true
}

// NormalizeCode returns a typed code without its spaces and tabs, or
// ok=false unless what remains is exactly digits ASCII digits.
func NormalizeCode(typed string, digits int) (code string, ok bool) {
	v, ok := parseCode(typed, digits)
	if !ok {
		return "", false
	}
	var b [8]byte
	return string(formatCode(&b, v, digits)), true
}

// EqualCode reports whether a user-typed code equals want, a code of the
// given digits as Code returns it. The typed code is normalised as in
// NormalizeCode; the comparison takes the same time wherever the codes
// differ.
func EqualCode(typed, want string, digits int) bool {
	t, ok1 := parseCode(typed, digits)
	if len(want) != digits {
		return false
	}
	w, ok2 := parseCode(want, digits)
	eq := subtle.ConstantTimeEq(int32(t), int32(w))
	return ok1 && ok2 && eq == 1
}

// Center returns step shifted by drift (in steps), saturating at 0 and at
// the top of the uint64 range: the Window.Center for a device whose clock
// runs drift steps ahead (positive) or behind (negative).
func Center(step uint64, drift int64) uint64 {
	if drift >= 0 {
		if step > math.MaxUint64-uint64(drift) {
			return math.MaxUint64
		}
		return step + uint64(drift)
	}
	d := uint64(-(drift + 1)) + 1 // -drift without overflow at MinInt64
	if step < d {
		return 0
	}
	return step - d
}

// Drift returns matched - step in steps, clamped to the int64 range: the
// drift to learn from a code that matched at counter matched when the host
// clock's step was step.
func Drift(matched, step uint64) int64 {
	if matched >= step {
		if d := matched - step; d <= math.MaxInt64 {
			return int64(d)
		}
		return math.MaxInt64
	}
	if d := step - matched; d <= math.MaxInt64 {
		return -int64(d)
	}
	return math.MinInt64
}
