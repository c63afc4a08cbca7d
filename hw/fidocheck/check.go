package fidocheck

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mfad/mfad/hw/ctap2"
	"github.com/mfad/mfad/hw/fidokey"
)

// Verdict is the result of one check.
type Verdict string

// Verdicts.
const (
	Pass Verdict = "pass"
	Fail Verdict = "fail"
	Skip Verdict = "skip"
)

// Check describes one check of the battery.
type Check struct {
	// ID is the stable name of the check ("ctaphid.ping"), what reports
	// and callers key on.
	ID string `json:"id"`
	// Name says in a few words what the key must do.
	Name string `json:"name"`
	// Section is the specification section the check tests.
	Section string `json:"section"`
	// Touch is set when the check needs the user to touch the key.
	Touch bool `json:"touch,omitempty"`
	// Destructive is set when the check changes what the key holds (PIN,
	// credentials, reset); it runs only when Options.Destructive is set.
	Destructive bool `json:"destructive,omitempty"`
}

// Result is the outcome of one check.
type Result struct {
	Check
	Verdict Verdict `json:"result"`
	// Reason says why a check failed or was skipped.
	Reason string `json:"reason,omitempty"`
	// Observed lists what the check saw, one fact per line.
	Observed []string      `json:"observed,omitempty"`
	Duration time.Duration `json:"-"`
}

// Identity says which key a report is about.
type Identity struct {
	Path         string `json:"path"`
	VendorID     uint16 `json:"vendor_id,omitempty"`
	ProductID    uint16 `json:"product_id,omitempty"`
	Manufacturer string `json:"manufacturer,omitempty"`
	Product      string `json:"product,omitempty"`
	Serial       string `json:"serial,omitempty"`
	// AAGUID in its 8-4-4-4-12 hex form.
	AAGUID string `json:"aaguid"`
	// Firmware is GetInfo's firmwareVersion, when the key gives it.
	Firmware uint64 `json:"firmware,omitempty"`
	// DeviceVersion is the device version of the CTAPHID_INIT answer
	// ("major.minor.build").
	DeviceVersion string   `json:"device_version"`
	Versions      []string `json:"versions,omitempty"`
}

// Report is the battery's outcome on one key.
type Report struct {
	Key      Identity      `json:"key"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"-"`
	Results  []Result      `json:"results"`
}

// Counts returns how many checks passed, failed and were skipped.
func (r *Report) Counts() (pass, fail, skip int) {
	for _, x := range r.Results {
		switch x.Verdict {
		case Pass:
			pass++
		case Fail:
			fail++
		case Skip:
			skip++
		}
	}
	return pass, fail, skip
}

// Event kinds passed to Options.Progress.
const (
	EventCheck   = "check"   // a check starts (Check is set)
	EventTouch   = "touch"   // the key waits for a touch (Message says what for)
	EventNoTouch = "notouch" // the key will wait for a touch that must not come
	EventReplug  = "replug"  // unplug the key and plug it back in
	EventResult  = "result"  // a check ended (Result is set)
)

// Event is progress of a running battery.
type Event struct {
	Kind    string
	Check   Check
	Message string
	Result  *Result
}

// Options tune a battery run. The zero value runs every non-destructive
// check with the default timeouts.
type Options struct {
	// Destructive allows the checks that change what the key holds.
	Destructive bool
	// PIN is the key's PIN when it has one (credential checks need it on
	// such keys), or the PIN the destructive PIN checks set.
	PIN string
	// Only, when not empty, runs only the checks with these ids.
	Only []string
	// Timeout bounds each exchange that needs no touch (default 5 s).
	Timeout time.Duration
	// TouchTimeout bounds each wait for a touch (default 30 s).
	TouchTimeout time.Duration
	// Progress, when not nil, receives events as the battery runs, on the
	// battery's goroutine.
	Progress func(Event)
	// Replug waits until the key has been unplugged and plugged in again
	// and returns it opened anew; the reset check needs it (a key allows
	// authenticatorReset only within 10 s of power-up).
	Replug func(ctx context.Context) (*fidokey.Key, error)
}

// Defaults of Options.
const (
	DefaultTimeout      = 5 * time.Second
	DefaultTouchTimeout = 30 * time.Second
)

// Checks lists the battery's checks in the order they run.
func Checks() []Check {
	out := make([]Check, len(battery))
	for i, d := range battery {
		out[i] = d.Check
	}
	return out
}

// def is a check and the function that runs it.
type def struct {
	Check
	run func(r *runner) outcome
}

// outcome is what a check function returns.
type outcome struct {
	v      Verdict
	reason string
}

func pass() outcome                             { return outcome{v: Pass} }
func failf(f string, a ...any) outcome          { return outcome{Fail, fmt.Sprintf(f, a...)} }
func skipf(f string, a ...any) outcome          { return outcome{Skip, fmt.Sprintf(f, a...)} }
func (o outcome) failed() bool                  { return o.v == Fail }
func errOutcome(what string, err error) outcome { return failf("%s: %v", what, err) }

// battery is every check, in order: transport framing first (it needs
// nothing of the key but CTAPHID), GetInfo, then what builds on them.
var battery = []def{
	{Check{ID: "ctaphid.init", Name: "INIT allocates distinct channels and resynchronises", Section: "CTAP 2.1 §11.2.9.1.3, §11.2.5.3"}, checkInit},
	{Check{ID: "ctaphid.ping", Name: "PING echoes 0, 1, 57, 58 and 7609 bytes", Section: "CTAP 2.1 §11.2.9.1.4, §11.2.4"}, checkPing},
	{Check{ID: "ctaphid.invalid-channel", Name: "Requests on unallocated channels get ERR_INVALID_CHANNEL", Section: "CTAP 2.1 §11.2.3, §11.2.9.1.6"}, checkInvalidChannel},
	{Check{ID: "ctaphid.busy", Name: "Another channel gets ERR_CHANNEL_BUSY while a message arrives", Section: "CTAP 2.1 §11.2.5.1"}, checkBusy},
	{Check{ID: "ctaphid.init-while-busy", Name: "INIT on the broadcast channel is answered while another channel's message arrives", Section: "CTAP 2.1 §11.2.9.1.3"}, checkInitWhileBusy},
	{Check{ID: "ctaphid.sequence", Name: "A continuation packet out of sequence gets ERR_INVALID_SEQ", Section: "CTAP 2.1 §11.2.5.4"}, checkSequence},
	{Check{ID: "ctaphid.timeout", Name: "An unfinished message gets ERR_MSG_TIMEOUT", Section: "CTAP 2.1 §11.2.5.2"}, checkTimeout},
	{Check{ID: "getinfo.fields", Name: "GetInfo answers with well-formed members", Section: "CTAP 2.1 §6.4"}, checkInfoFields},
	{Check{ID: "getinfo.consistency", Name: "GetInfo agrees with itself and with CTAPHID", Section: "CTAP 2.1 §6.4, §11.2.9.1.3"}, checkInfoConsistency},
	{Check{ID: "ctaphid.keepalive", Name: "KEEPALIVE with STATUS_UPNEEDED at least every 100 ms while waiting for a touch", Section: "CTAP 2.1 §11.2.9.1.7"}, checkKeepalive},
	{Check{ID: "ctaphid.cancel", Name: "CANCEL ends a wait for a touch with CTAP2_ERR_KEEPALIVE_CANCEL", Section: "CTAP 2.1 §11.2.9.1.5"}, checkCancel},
	{Check{ID: "cred.es256", Name: "MakeCredential and GetAssertion with ES256, non-resident", Section: "CTAP 2.1 §6.1, §6.2", Touch: true}, checkES256},
	{Check{ID: "cred.eddsa", Name: "MakeCredential and GetAssertion with EdDSA, non-resident", Section: "CTAP 2.1 §6.1, §6.2", Touch: true}, checkEdDSA},
	{Check{ID: "cred.resident", Name: "A resident credential is found without an allow list", Section: "CTAP 2.1 §6.1, §6.2", Touch: true}, checkResident},
	{Check{ID: "cred.exclude", Name: "The exclude list refuses a key already registered", Section: "CTAP 2.1 §6.1.2 step 7", Touch: true}, checkExclude},
	{Check{ID: "cred.allow-list", Name: "The allow list selects the key's credential and refuses others", Section: "CTAP 2.1 §6.2.2 step 7", Touch: true}, checkAllowList},
	{Check{ID: "cred.user-presence", Name: "User presence is required, reported, and skipped only when asked", Section: "CTAP 2.1 §6.1.2 step 4, §6.2.2 step 5", Touch: true}, checkUserPresence},
	{Check{ID: "cred.rp-binding", Name: "A credential signs only for its relying party, with its rpIdHash", Section: "CTAP 2.1 §6.2.2 step 7; WebAuthn §6.1"}, checkRPBinding},
	{Check{ID: "cred.counter", Name: "The signature counter increases", Section: "CTAP 2.1 §6.2.2 step 12; WebAuthn §6.1.1", Touch: true}, checkCounter},
	{Check{ID: "ext.hmac-secret", Name: "hmac-secret: the same salt gives the same output, another credential another", Section: "CTAP 2.1 §12.5", Touch: true}, checkHMACSecret},
	{Check{ID: "ext.cred-protect", Name: "credProtect: level 3 needs UV, level 2 is hidden from discovery without UV", Section: "CTAP 2.1 §12.1", Touch: true}, checkCredProtect},
	{Check{ID: "u2f.register", Name: "U2F REGISTER over CTAPHID_MSG", Section: "CTAP 2.1 §11.2.9.1.1; FIDO U2F Raw Message Formats §4", Touch: true}, checkU2FRegister},
	{Check{ID: "u2f.authenticate", Name: "U2F AUTHENTICATE: check-only, sign, wrong application", Section: "FIDO U2F Raw Message Formats §5", Touch: true}, checkU2FAuthenticate},
	{Check{ID: "pin.set", Name: "setPIN refuses a PIN below minPINLength and sets a valid one", Section: "CTAP 2.1 §6.5.5.5, §6.4 minPINLength", Destructive: true}, checkPINSet},
	{Check{ID: "pin.retries", Name: "A wrong PIN spends a retry; the right one restores them", Section: "CTAP 2.1 §6.5.2.1, §6.5.5.7", Destructive: true}, checkPINRetries},
	{Check{ID: "pin.token", Name: "A pinUvAuthToken from the PIN authorises MakeCredential with UV; a token request without permissions is refused", Section: "CTAP 2.1 §6.5.5.7, §6.5.5.7.2, §6.1.2 step 11", Touch: true, Destructive: true}, checkPINToken},
	{Check{ID: "pin.change", Name: "changePIN replaces the PIN", Section: "CTAP 2.1 §6.5.5.6", Destructive: true}, checkPINChange},
	{Check{ID: "credmgmt", Name: "Credential management enumerates relying parties and credentials, and deletes one", Section: "CTAP 2.1 §6.8", Touch: true, Destructive: true}, checkCredMgmt},
	{Check{ID: "pin.lockout", Name: "Three wrong PINs in a row block PIN entry until a power cycle", Section: "CTAP 2.1 §6.5.2.1, §6.5.5.7", Destructive: true}, checkPINLockout},
	{Check{ID: "reset", Name: "authenticatorReset after a replug erases credentials and PIN", Section: "CTAP 2.1 §6.6", Touch: true, Destructive: true}, checkReset},
}

// runner is one battery run on one key.
type runner struct {
	ctx  context.Context
	k    *fidokey.Key
	opts Options

	cur      *Result
	prompted bool

	// Shared between checks.
	es256    *credential // made by cred.es256, used by the checks after it
	counters map[string]uint32
	wait     *waitProbe // the KEEPALIVE/CANCEL exchange, run once
	u2f      *u2fKey    // made by u2f.register
	dead     string     // set when the key stopped answering: the rest is skipped
}

// Run runs the battery on k and returns its report. It returns early only
// when ctx ends (the report then holds the checks run so far).
func Run(ctx context.Context, k *fidokey.Key, opts Options) *Report {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.TouchTimeout <= 0 {
		opts.TouchTimeout = DefaultTouchTimeout
	}
	r := &runner{ctx: ctx, k: k, opts: opts, counters: map[string]uint32{}}
	rep := &Report{Key: identify(k), Started: time.Now()}
	for _, d := range battery {
		if len(opts.Only) > 0 && !contains(opts.Only, d.ID) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		res := r.runOne(d)
		rep.Results = append(rep.Results, res)
		r.emit(Event{Kind: EventResult, Check: d.Check, Result: &res})
	}
	rep.Key = identify(r.k) // the reset check may have reopened the key
	rep.Duration = time.Since(rep.Started)
	return rep
}

func (r *runner) runOne(d def) Result {
	res := Result{Check: d.Check}
	r.cur, r.prompted = &res, false
	r.emit(Event{Kind: EventCheck, Check: d.Check})
	start := time.Now()
	var o outcome
	switch {
	case d.Destructive && !r.opts.Destructive:
		o = skipf("destructive: runs only when destructive checks are allowed on this key")
	case r.dead != "":
		o = skipf("%s", r.dead)
	default:
		o = r.safeRun(d)
	}
	res.Verdict, res.Reason, res.Duration = o.v, o.reason, time.Since(start)
	r.cur = nil
	return res
}

// safeRun runs a check, turning a panic (a bug of the battery, never
// the key's doing) into a failed check rather than a crash.
func (r *runner) safeRun(d def) (o outcome) {
	defer func() {
		if p := recover(); p != nil {
			o = failf("internal error of the battery: %v", p)
		}
	}()
	return d.run(r)
}

func (r *runner) emit(e Event) {
	if r.opts.Progress != nil {
		r.opts.Progress(e)
	}
}

// note records an observation of the running check.
func (r *runner) note(f string, a ...any) {
	if r.cur != nil {
		r.cur.Observed = append(r.cur.Observed, fmt.Sprintf(f, a...))
	}
}

// op returns the context of one exchange: touch exchanges get the touch
// timeout, others the plain one.
func (r *runner) op(touch bool) (context.Context, context.CancelFunc) {
	d := r.opts.Timeout
	if touch {
		d = r.opts.TouchTimeout
	}
	return context.WithTimeout(r.ctx, d)
}

// keepalive is the KEEPALIVE callback of exchanges that may need a touch:
// the first STATUS_UPNEEDED of a check prompts the user.
func (r *runner) keepalive(what string) func(byte) {
	return func(status byte) {
		if status == 2 && !r.prompted && r.cur != nil {
			r.prompted = true
			r.emit(Event{Kind: EventTouch, Check: r.cur.Check, Message: "touch the key: " + what})
		}
	}
}

// promptTouch announces a touch the battery knows it needs (U2F, which
// has no KEEPALIVE of its own).
func (r *runner) promptTouch(what string) {
	if !r.prompted && r.cur != nil {
		r.prompted = true
		r.emit(Event{Kind: EventTouch, Check: r.cur.Check, Message: "touch the key: " + what})
	}
}

// info is the key's GetInfo as read when it was opened.
func (r *runner) info() *ctap2.GetInfoResponse { return r.k.Info() }

func (r *runner) hasVersion(v string) bool { return contains(r.info().Versions, v) }

func (r *runner) fido21() bool {
	return r.hasVersion(ctap2.VersionFIDO21) || r.hasVersion(ctap2.VersionFIDO21PRE) || r.hasVersion("FIDO_2_2")
}

func identify(k *fidokey.Key) Identity {
	dev := k.Device()
	info := k.Info()
	hi := k.Channel().Info()
	id := Identity{Path: dev.Path, VendorID: dev.VendorID, ProductID: dev.ProductID,
		Manufacturer: dev.Manufacturer, Product: dev.Product, Serial: dev.Serial,
		Firmware:      info.FirmwareVersion,
		DeviceVersion: fmt.Sprintf("%d.%d.%d", hi.Major, hi.Minor, hi.Build),
		Versions:      append([]string(nil), info.Versions...)}
	if len(info.AAGUID) == 16 {
		id.AAGUID = FormatAAGUID(info.AAGUID)
	}
	return id
}

// FormatAAGUID writes a 16-byte AAGUID in its 8-4-4-4-12 hex form.
func FormatAAGUID(a []byte) string {
	if len(a) != 16 {
		return fmt.Sprintf("%x", a)
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", a[0:4], a[4:6], a[6:8], a[8:10], a[10:16])
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// statusOf returns the CTAP status byte an error carries, if any.
func statusOf(err error) (ctap2.StatusError, bool) {
	var s ctap2.StatusError
	if errors.As(err, &s) {
		return s, true
	}
	return 0, false
}

// describe names an error for an observation: its CTAP status when it has
// one, else the error.
func describe(err error) string {
	if err == nil {
		return "success"
	}
	if s, ok := statusOf(err); ok {
		return s.String()
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i > 0 && errors.Is(err, context.DeadlineExceeded) {
		return "no answer in time (" + msg[i+2:] + ")"
	}
	return msg
}
