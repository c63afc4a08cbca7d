package store

import (
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// The records a sign-in reads and writes on every verification (an OTP
// device's record, and the audit entry it appends) are encoded and decoded
// here by hand, in the committing transaction: the reflection-driven CBOR
// codec took most of the transaction's own time, and the transaction is
// the single writer's serial work. The hand encoders write byte for byte
// what the CBOR codec writes for the same record (fastcodec_test.go holds
// them equal); the hand decoder reads only the layout those encoders
// write (definite lengths, the record's own keys, each once) and answers
// !ok for anything else, which the CBOR codec then decodes (or refuses) as
// before. A FIDO device's record, and any record outside these shapes,
// takes the CBOR codec's way.

const (
	cborUint   = 0 << 5
	cborNegint = 1 << 5
	cborBytes  = 2 << 5
	cborText   = 3 << 5
	cborArray  = 4 << 5
	cborMap    = 5 << 5
	cborFalse  = 0xf4
	cborTrue   = 0xf5
	cborNull   = 0xf6
)

func appendHead(b []byte, major byte, n uint64) []byte {
	switch {
	case n < 24:
		return append(b, major|byte(n))
	case n <= math.MaxUint8:
		return append(b, major|24, byte(n))
	case n <= math.MaxUint16:
		return append(b, major|25, byte(n>>8), byte(n))
	case n <= math.MaxUint32:
		return append(b, major|26, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, major|27, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendText(b []byte, s string) []byte {
	return append(appendHead(b, cborText, uint64(len(s))), s...)
}

const (
	always    = false
	omitEmpty = true
)

// appendTextField appends a text field: key and v, or nothing for an
// empty v that is omitted so.
func appendTextField(b []byte, key, v string, omit bool) []byte {
	if omit && v == "" {
		return b
	}
	return appendText(appendText(b, key), v)
}

func appendInt(b []byte, v int64) []byte {
	if v < 0 {
		return appendHead(b, cborNegint, uint64(-1-v))
	}
	return appendHead(b, cborUint, uint64(v))
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, cborTrue)
	}
	return append(b, cborFalse)
}

// timeText is how the CBOR codec writes t (RFC 3339 with nanoseconds);
// ok is false for a time it refuses (a year outside 0-9999, an offset of
// a day or more), which the caller leaves to it.
func appendTime(b []byte, t time.Time) ([]byte, bool) {
	if t.IsZero() {
		return append(b, cborNull), true
	}
	_, off := t.Zone()
	if y := t.Year(); y < 0 || y > 9999 || off <= -86400 || off >= 86400 {
		return b, false
	}
	var buf [40]byte
	s := t.AppendFormat(buf[:0], time.RFC3339Nano)
	return append(appendHead(b, cborText, uint64(len(s))), s...), true
}

// appendAuditRec appends r's CBOR.
func appendAuditRec(b []byte, r *auditRec) ([]byte, bool) {
	n := uint64(5)
	for _, s := range [...]string{r.Actor, r.Account, r.Device, r.Detail} {
		if s != "" {
			n++
		}
	}
	b = appendHead(b, cborMap, n)
	b = appendHead(appendText(b, "seq"), cborUint, r.Seq)
	b = appendText(b, "time")
	b, ok := appendTime(b, r.Time)
	if !ok {
		return b, false
	}
	b = appendHead(appendText(b, "actor_uid"), cborUint, uint64(r.ActorUID))
	b = appendTextField(b, "actor", r.Actor, omitEmpty)
	b = appendTextField(b, "action", r.Action, always)
	b = appendTextField(b, "outcome", r.Outcome, always)
	b = appendTextField(b, "account", r.Account, omitEmpty)
	b = appendTextField(b, "device", r.Device, omitEmpty)
	return appendTextField(b, "detail", r.Detail, omitEmpty), true
}

func encodeAudit(r *auditRec) ([]byte, error) {
	if b, ok := appendAuditRec(make([]byte, 0, 192), r); ok {
		return b, nil
	}
	return encode(r)
}

// appendOTPDeviceRec appends r's CBOR; ok is false for a FIDO device and
// for what appendTime leaves to the CBOR codec.
func appendOTPDeviceRec(b []byte, r *deviceRecord) ([]byte, bool) {
	if r.FIDO != nil || r.OTP == nil {
		return b, false
	}
	n := uint64(6) // id, account, type, state, created_at, otp
	for _, present := range [...]bool{r.Label != "", r.Serial != "", !r.ExpiresAt.IsZero(), !r.ActivatedAt.IsZero(),
		!r.DeactivatedAt.IsZero(), !r.LastUsedAt.IsZero(), r.ResyncFailures != 0, !r.ResyncWindowStart.IsZero(), len(r.Sealed) != 0} {
		if present {
			n++
		}
	}
	b = appendHead(b, cborMap, n)
	b = appendTextField(b, "id", r.ID, always)
	b = appendTextField(b, "account", r.Account, always)
	b = appendTextField(b, "type", r.Type, always)
	b = appendTextField(b, "state", r.State, always)
	b = appendTextField(b, "label", r.Label, omitEmpty)
	b = appendTextField(b, "serial", r.Serial, omitEmpty)
	ok := true
	field := func(key string, t time.Time, always bool) {
		if ok && (always || !t.IsZero()) {
			b, ok = appendTime(appendText(b, key), t)
		}
	}
	field("created_at", r.CreatedAt, true)
	field("expires_at", r.ExpiresAt, false)
	field("activated_at", r.ActivatedAt, false)
	field("deactivated_at", r.DeactivatedAt, false)
	field("last_used_at", r.LastUsedAt, false)
	if !ok {
		return b, false
	}
	o := r.OTP
	b = appendText(b, "otp")
	m := uint64(5)
	if o.Event {
		m++
	}
	if o.Period != 0 {
		m++
	}
	b = appendHead(b, cborMap, m)
	if o.Event {
		b = appendBool(appendText(b, "event"), true)
	}
	b = appendTextField(b, "algorithm", o.Algorithm, always)
	b = appendInt(appendText(b, "digits"), int64(o.Digits))
	if o.Period != 0 {
		b = appendInt(appendText(b, "period"), int64(o.Period))
	}
	b = appendHead(appendText(b, "last_counter"), cborUint, o.LastCounter)
	b = appendBool(appendText(b, "used"), o.Used)
	b = appendInt(appendText(b, "drift"), o.Drift)
	if r.ResyncFailures != 0 {
		b = appendInt(appendText(b, "resync_failures"), int64(r.ResyncFailures))
	}
	field("resync_window_start", r.ResyncWindowStart, false)
	if !ok {
		return b, false
	}
	if len(r.Sealed) != 0 {
		b = append(appendHead(appendText(b, "sealed_secret"), cborBytes, uint64(len(r.Sealed))), r.Sealed...)
	}
	return b, true
}

func encodeDevice(r *deviceRecord) ([]byte, error) {
	if b, ok := appendOTPDeviceRec(make([]byte, 0, 320), r); ok {
		return b, nil
	}
	return encode(r)
}

// cborReader reads the layout the hand encoders write; any other input
// sets bad, and the caller leaves the record to the CBOR codec.
type cborReader struct {
	b   []byte
	bad bool
}

// head reads an item's head: its major type and argument (definite only).
func (r *cborReader) head() (major byte, n uint64) {
	if r.bad || len(r.b) == 0 {
		r.bad = true
		return 0, 0
	}
	c := r.b[0]
	major, info := c&0xe0, uint64(c&0x1f)
	size := 0
	switch {
	case info < 24:
		r.b = r.b[1:]
		return major, info
	case info == 24:
		size = 1
	case info == 25:
		size = 2
	case info == 26:
		size = 4
	case info == 27:
		size = 8
	default:
		r.bad = true
		return 0, 0
	}
	if len(r.b) < 1+size {
		r.bad = true
		return 0, 0
	}
	for _, x := range r.b[1 : 1+size] {
		n = n<<8 | uint64(x)
	}
	r.b = r.b[1+size:]
	return major, n
}

// raw reads the payload of a byte or text string of major type want.
func (r *cborReader) raw(want byte) []byte {
	major, n := r.head()
	if r.bad || major != want || n > uint64(len(r.b)) {
		r.bad = true
		return nil
	}
	s := r.b[:n]
	r.b = r.b[n:]
	return s
}

func (r *cborReader) text() string {
	s := r.raw(cborText)
	if !utf8.Valid(s) {
		r.bad = true
		return ""
	}
	return string(s)
}

// bytes copies a non-empty byte string (the codec's handling of an empty
// one is left to it).
func (r *cborReader) bytes() []byte {
	s := r.raw(cborBytes)
	if len(s) == 0 {
		r.bad = true
		return nil
	}
	return append([]byte(nil), s...)
}

func (r *cborReader) uint() uint64 {
	major, n := r.head()
	if major != cborUint {
		r.bad = true
	}
	return n
}

func (r *cborReader) int() int64 {
	major, n := r.head()
	if n > math.MaxInt64 || (major != cborUint && major != cborNegint) {
		r.bad = true
		return 0
	}
	if major == cborNegint {
		return -1 - int64(n)
	}
	return int64(n)
}

func (r *cborReader) bool() bool {
	if r.bad || len(r.b) == 0 || (r.b[0] != cborTrue && r.b[0] != cborFalse) {
		r.bad = true
		return false
	}
	v := r.b[0] == cborTrue
	r.b = r.b[1:]
	return v
}

func (r *cborReader) time() time.Time {
	if !r.bad && len(r.b) > 0 && r.b[0] == cborNull {
		r.b = r.b[1:]
		return time.Time{}
	}
	s := r.raw(cborText)
	if r.bad {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, string(s))
	if err != nil {
		r.bad = true
	}
	return t
}

// mapKeys reads a map whose keys are among keys, and calls field with
// each key's index, in order; a key met twice, or not among keys, is bad.
func (r *cborReader) mapKeys(keys []string, field func(i int)) {
	major, n := r.head()
	if r.bad || major != cborMap || n > uint64(len(keys)) {
		r.bad = true
		return
	}
	var seen uint32
	for range n {
		k := r.raw(cborText)
		i := 0
		for i < len(keys) && keys[i] != string(k) {
			i++
		}
		if r.bad || i == len(keys) || seen&(1<<i) != 0 {
			r.bad = true
			return
		}
		seen |= 1 << i
		if field(i); r.bad {
			return
		}
	}
}

var (
	deviceKeys = []string{"id", "account", "type", "state", "label", "serial", // text
		"created_at", "expires_at", "activated_at", "deactivated_at", "last_used_at", "resync_window_start", // time
		"otp", "resync_failures", "sealed_secret"}
	otpKeys = []string{"event", "algorithm", "digits", "period", "last_counter", "used", "drift"}
)

// smallInt reads an int that fits Go's int.
func (r *cborReader) smallInt() int {
	v := r.int()
	if v != int64(int(v)) {
		r.bad = true
	}
	return int(v)
}

// decodeOTPDeviceRec reads an OTP device's record as the hand encoder
// writes it (its keys in any order); ok is false for anything else.
func decodeOTPDeviceRec(b []byte, d *deviceRecord) bool {
	r := &cborReader{b: b}
	texts := [...]*string{&d.ID, &d.Account, &d.Type, &d.State, &d.Label, &d.Serial}
	times := [...]*time.Time{&d.CreatedAt, &d.ExpiresAt, &d.ActivatedAt, &d.DeactivatedAt, &d.LastUsedAt, &d.ResyncWindowStart}
	r.mapKeys(deviceKeys, func(i int) {
		switch {
		case i < len(texts):
			*texts[i] = r.text()
		case i < len(texts)+len(times):
			*times[i-len(texts)] = r.time()
		case deviceKeys[i] == "otp":
			d.OTP = r.otp()
		case deviceKeys[i] == "resync_failures":
			d.ResyncFailures = r.smallInt()
		default: // sealed_secret
			d.Sealed = r.bytes()
		}
	})
	return !r.bad && len(r.b) == 0 && d.OTP != nil
}

// otp reads the otp map of a device record.
func (r *cborReader) otp() *otpRec {
	o := &otpRec{}
	r.mapKeys(otpKeys, func(i int) {
		switch otpKeys[i] {
		case "event":
			o.Event = r.bool()
		case "algorithm":
			o.Algorithm = r.text()
		case "digits":
			o.Digits = r.smallInt()
		case "period":
			o.Period = r.smallInt()
		case "last_counter":
			o.LastCounter = r.uint()
		case "used":
			o.Used = r.bool()
		default: // drift
			o.Drift = r.int()
		}
	})
	return o
}

// decodeDeviceRec reads a device record, by hand when it can.
func decodeDeviceRec(b []byte, d *deviceRecord) error {
	if decodeOTPDeviceRec(b, d) {
		return nil
	}
	*d = deviceRecord{}
	return decode(b, d)
}

// skip reads past one item of any kind, nested at most depth deep.
func (r *cborReader) skip(depth int) {
	major, n := r.head()
	switch {
	case r.bad:
	case major == cborBytes || major == cborText:
		if n > uint64(len(r.b)) {
			r.bad = true
			return
		}
		r.b = r.b[n:]
	case major == cborArray || major == cborMap:
		if depth == 0 || n > uint64(len(r.b)) {
			r.bad = true
			return
		}
		if major == cborMap {
			n *= 2
		}
		for range n {
			if r.skip(depth - 1); r.bad {
				return
			}
		}
	case major == 6<<5: // a tag and its item
		if depth == 0 {
			r.bad = true
			return
		}
		r.skip(depth - 1)
	} // integers, simple values and floats: the head was all
}

// deviceKind reads a device record's state, and whether it has the otp
// field (an OTP device), without decoding the rest; ok is false when it
// cannot tell as the codec would (the caller decodes the record then).
func deviceKind(b []byte) (state string, otp, ok bool) {
	r := &cborReader{b: b}
	major, n := r.head()
	if r.bad || major != cborMap || n > uint64(len(r.b)) {
		return "", false, false
	}
	seenState := false
	for range n {
		k := string(r.raw(cborText))
		switch {
		case k == "state" && !seenState:
			state, seenState = r.text(), true
		case k == "otp" && !otp:
			otp = true
			r.skip(8)
		case strings.EqualFold(k, "state") || strings.EqualFold(k, "otp"):
			return "", false, false // a repeated key, or one the codec matches in another case
		default:
			r.skip(8)
		}
		if r.bad {
			return "", false, false
		}
	}
	return state, otp, seenState && len(r.b) == 0
}

var accountKeys = []string{"name", "kind", "email", "phone", // text
	"email_verified", "phone_verified", "ever_enrolled", // bool
	"created_at", "updated_at", "last_failure_at", "locked_until", // time
	"flags", "failed_attempts"}

// decodePlainAccountRec reads an account's record by hand when it holds
// no temporary code, scratch codes or pending contact change (the shape
// of nearly every account a sign-in reads); ok is false for anything
// else, which the CBOR codec then decodes (or refuses).
func decodePlainAccountRec(b []byte, a *accountRec) bool {
	r := &cborReader{b: b}
	texts := [...]*string{&a.Name, &a.Kind, &a.Email, &a.Phone}
	bools := [...]*bool{&a.EmailVerified, &a.PhoneVerified, &a.EverEnrolled}
	times := [...]*time.Time{&a.CreatedAt, &a.UpdatedAt, &a.LastFailureAt, &a.LockedUntil}
	r.mapKeys(accountKeys, func(i int) {
		switch {
		case i < len(texts):
			*texts[i] = r.text()
		case i < len(texts)+len(bools):
			*bools[i-len(texts)] = r.bool()
		case i < len(texts)+len(bools)+len(times):
			*times[i-len(texts)-len(bools)] = r.time()
		case accountKeys[i] == "flags":
			a.Flags = r.texts()
		default: // failed_attempts
			a.FailedAttempts = r.smallInt()
		}
	})
	return !r.bad && len(r.b) == 0
}

// texts reads an array of text strings (an empty one as a non-nil
// empty slice, as the codec does).
func (r *cborReader) texts() []string {
	major, n := r.head()
	if r.bad || major != cborArray || n > uint64(len(r.b)) {
		r.bad = true
		return nil
	}
	out := make([]string, 0, n)
	for range n {
		if out = append(out, r.text()); r.bad {
			return nil
		}
	}
	return out
}

// decodeAccountRec reads an account's record, by hand when it can.
func decodeAccountRec(b []byte, a *accountRec) error {
	if decodePlainAccountRec(b, a) {
		return nil
	}
	*a = accountRec{}
	return decode(b, a)
}
