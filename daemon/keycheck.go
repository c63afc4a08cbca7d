package daemon

import (
	"context"
	"slices"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/hw/fidocheck"
	"github.com/mfad/mfad/hw/fidokey"
	"github.com/mfad/mfad/ipc/api"
)

// CheckKey runs the conformance battery (hw/fidocheck) on a key reached
// through the native stack, one battery per key at a time.
func (r *keyRing) CheckKey(ctx context.Context, id string, req api.KeyCheckRequest, progress func(string, map[string]any)) (*api.KeyCheckReport, error) {
	e, err := r.entry(id)
	if err != nil {
		return nil, err
	}
	nk, ok := e.drv.(nativeKey)
	if !ok {
		return nil, authn.Errorf(authn.ClassInvalid, authn.CodeInvalidRequest,
			"key %s is driven by %s: the battery needs mfad's own stack (driver native or usbhid)", id, e.driver)
	}
	known := fidocheck.Checks()
	for _, o := range req.Only {
		if !slices.ContainsFunc(known, func(c fidocheck.Check) bool { return c.ID == o }) {
			return nil, authn.Errorf(authn.ClassInvalid, authn.CodeInvalidRequest, "no check %q", o)
		}
	}
	if !e.checking.CompareAndSwap(false, true) {
		return nil, authn.Errorf(authn.ClassConflict, authn.CodeInvalidRequest, "a battery already runs on key %s", id)
	}
	defer e.checking.Store(false)
	opts := fidocheck.Options{Destructive: req.Destructive, PIN: req.PIN, Only: req.Only,
		Progress: func(ev fidocheck.Event) { checkProgress(progress, ev) }}
	if req.Destructive {
		cur := e // the entry of the key as last plugged in
		opts.Replug = func(ctx context.Context) (*fidokey.Key, error) {
			k, next, err := r.replug(ctx, cur)
			if err == nil {
				cur = next
			}
			return k, err
		}
	}
	r.log.Info("key check started", "key", id, "destructive", req.Destructive, "only", req.Only)
	rep := fidocheck.Run(ctx, nk.k, opts)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := r.apiReport(e, rep)
	r.log.Info("key check done", "key", id, "passed", out.Passed, "failed", out.Failed, "skipped", out.Skipped)
	return out, nil
}

// checkProgress turns the battery's events into the stream's.
func checkProgress(progress func(string, map[string]any), ev fidocheck.Event) {
	if progress == nil {
		return
	}
	c := apiCheck(ev.Check, ev.Result)
	switch ev.Kind {
	case fidocheck.EventCheck:
		progress("check_started", map[string]any{"check": c})
	case fidocheck.EventResult:
		progress("check_done", map[string]any{"check": c})
	case fidocheck.EventTouch:
		progress("touch_required", map[string]any{"check": c, "message": ev.Message})
	case fidocheck.EventNoTouch:
		progress("do_not_touch", map[string]any{"check": c, "message": ev.Message})
	case fidocheck.EventReplug:
		progress("replug_required", map[string]any{"check": c, "message": ev.Message})
	}
}

func apiCheck(c fidocheck.Check, res *fidocheck.Result) *api.KeyCheckResult {
	out := &api.KeyCheckResult{ID: c.ID, Name: c.Name, Section: c.Section, Touch: c.Touch, Destructive: c.Destructive}
	if res != nil {
		out.Result, out.Reason, out.Observed = string(res.Verdict), res.Reason, res.Observed
		out.DurationMS = res.Duration.Milliseconds()
	}
	return out
}

func (r *keyRing) apiReport(e *keyEntry, rep *fidocheck.Report) *api.KeyCheckReport {
	k := rep.Key
	out := &api.KeyCheckReport{
		Key: api.KeyIdentity{ID: e.id, Driver: e.driver, Path: k.Path, VendorID: k.VendorID, ProductID: k.ProductID,
			Manufacturer: k.Manufacturer, Product: k.Product, Serial: k.Serial, AAGUID: k.AAGUID,
			Firmware: k.Firmware, DeviceVersion: k.DeviceVersion, Versions: k.Versions},
		Started:    rep.Started.UTC(),
		DurationMS: rep.Duration.Milliseconds(),
		Results:    []api.KeyCheckResult{},
	}
	out.Passed, out.Failed, out.Skipped = rep.Counts()
	if r.mds != nil && len(k.AAGUID) == 36 {
		var a [16]byte
		copy(a[:], e.drv.Info().AAGUID)
		if m, ok := r.mds.Lookup(a); ok {
			out.Key.AAGUIDDescription = m.Description
		}
	}
	for i := range rep.Results {
		out.Results = append(out.Results, *apiCheck(rep.Results[i].Check, &rep.Results[i]))
	}
	return out
}

// replug waits until the key has been unplugged and plugged in again, and
// returns it opened anew. A software key is power-cycled here; a hardware
// key is waited for: the same serial (or, without one, the same USB ids)
// coming back after its entry went away.
func (r *keyRing) replug(ctx context.Context, old *keyEntry) (*fidokey.Key, *keyEntry, error) {
	if old.emulator != "" {
		if err := r.EmulatorAct(old.emulator, "unplug", nil); err != nil {
			return nil, nil, err
		}
		if err := r.EmulatorAct(old.emulator, "plug", nil); err != nil {
			return nil, nil, err
		}
	}
	dev := old.drv.Device()
	same := func(d fidokey.DeviceInfo) bool {
		if dev.Serial != "" {
			return d.Serial == dev.Serial && d.VendorID == dev.VendorID && d.ProductID == dev.ProductID
		}
		return d.VendorID == dev.VendorID && d.ProductID == dev.ProductID
	}
	gone := false
	for {
		r.mu.Lock()
		if r.keys[old.id] != old {
			gone = true
		}
		if gone {
			for _, e := range r.sorted() {
				if nk, ok := e.drv.(nativeKey); ok && e != old && same(e.drv.Device()) {
					r.mu.Unlock()
					return nk.k, e, nil
				}
			}
		}
		changed := r.changed
		r.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
}
