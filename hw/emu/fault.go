package emu

import (
	"errors"
	"fmt"
	"time"

	"github.com/mfad/mfad/hw/ctap2"
)

// Fault kinds, the names the daemon's API uses.
const (
	FaultNoAnswer        = "no_answer"        // the key answers nothing (CTAPHID reports are dropped)
	FaultCTAPError       = "ctap_error"       // the next Count CBOR commands answer Status
	FaultCorruptFrames   = "corrupt_frames"   // every report sent has its packet type bit flipped
	FaultCounterRollback = "counter_rollback" // the sign counter goes back by Count (a cloned key)
	FaultSlowKeepalive   = "slow_keepalive"   // KEEPALIVE only every Interval
	FaultClear           = "clear"            // no fault
)

// Defaults of Fault fields left zero.
const (
	DefaultRollback          = 5
	DefaultSlowKeepalive     = 2 * time.Second
	defaultCTAPErrorCount    = 1
	defaultCTAPErrorStatusOK = ctap2.ErrOther
)

// ErrTransportFault is returned by Authenticator.SetFault for the faults
// that live in the CTAPHID server (no_answer, corrupt_frames,
// slow_keepalive): use Key.SetFault.
var ErrTransportFault = errors.New("emu: fault needs an attached key")

// Fault is a deliberate misbehaviour.
//
//   - no_answer: nothing is sent back until cleared; the host's ctx deadline
//     ends its wait.
//   - ctap_error: the next Count (default 1) CBOR commands are answered with
//     the status byte Status (default CTAP1_ERR_OTHER) without being run.
//   - corrupt_frames: every report sent has bit 0x80 of its command byte
//     flipped until cleared; the host sees framing errors.
//   - counter_rollback: the sign counter goes back by Count (default 5), so
//     that the next signatures carry counters at or below ones already seen,
//     as a cloned key's would. It stays (it is state, not a mode).
//   - slow_keepalive: KEEPALIVE is sent only every Interval (default 2 s)
//     for transactions started afterwards, until cleared.
//   - clear: removes the no_answer, ctap_error, corrupt_frames and
//     slow_keepalive faults.
type Fault struct {
	Kind     string        `json:"kind"`
	Status   byte          `json:"status,omitempty"`
	Count    int           `json:"count,omitempty"`
	Interval time.Duration `json:"interval,omitempty"`
}

// authFaults are the faults the Authenticator itself applies.
type authFaults struct {
	ctapStatus byte
	ctapCount  int
}

// SetFault applies the faults that live in the authenticator (ctap_error,
// counter_rollback, clear). Others give ErrTransportFault.
func (a *Authenticator) SetFault(f Fault) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch f.Kind {
	case FaultClear:
		a.faults = authFaults{}
		return nil
	case FaultCTAPError:
		st := f.Status
		if st == 0 {
			st = byte(defaultCTAPErrorStatusOK)
		}
		n := f.Count
		if n <= 0 {
			n = defaultCTAPErrorCount
		}
		a.faults.ctapStatus, a.faults.ctapCount = st, n
		return nil
	case FaultCounterRollback:
		n := f.Count
		if n <= 0 {
			n = DefaultRollback
		}
		if uint32(n) > a.st.Counter {
			a.st.Counter = 0
		} else {
			a.st.Counter -= uint32(n)
		}
		return a.save()
	case FaultNoAnswer, FaultCorruptFrames, FaultSlowKeepalive:
		return fmt.Errorf("%w: %s", ErrTransportFault, f.Kind)
	}
	return fmt.Errorf("emu: unknown fault kind %q", f.Kind)
}

// takeCTAPError consumes one injected CTAP error, if any.
func (a *Authenticator) takeCTAPError() (byte, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.faults.ctapCount <= 0 {
		return 0, false
	}
	a.faults.ctapCount--
	return a.faults.ctapStatus, true
}
