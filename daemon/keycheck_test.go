package daemon

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/mfad/mfad/hw/emu"
	"github.com/mfad/mfad/hw/fidokey"
)

// A hardware key's replug, as the battery's reset and lockout checks wait
// for it: the key's entry goes away and a key with the same serial comes
// back, under another id (another hidraw node); a different key plugged in
// meanwhile is not taken for it.
func TestReplugWaitsForTheSameKey(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r := newKeyRing(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), nil, newHub(), false)
	defer r.close()
	plug := func(id, serial string) {
		t.Helper()
		ek, conn, err := emu.Attach(ctx, emu.Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ek.Close() })
		dev := fidokey.DeviceInfo{Path: "/dev/" + id, VendorID: 0x1050, ProductID: 0x0407, Serial: serial}
		if err := r.add(id, DriverNative, "hidraw", "", conn, dev); err != nil {
			t.Fatal(err)
		}
	}
	plug("hidraw3", "A1")
	old, err := r.entry("hidraw3")
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		k   *fidokey.Key
		e   *keyEntry
		err error
	}
	done := make(chan result, 1)
	go func() {
		k, e, err := r.replug(ctx, old)
		done <- result{k, e, err}
	}()
	plug("hidraw4", "B2") // another key: not the one unplugged
	r.remove("hidraw3")
	plug("hidraw5", "A1")
	res := <-done
	if res.err != nil || res.e == nil || res.e.id != "hidraw5" || res.k != res.e.drv.(nativeKey).k {
		t.Fatalf("replug: %+v", res)
	}
	// A second replug waits for that entry to go in turn.
	ctx2, cancel2 := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel2()
	if _, _, err := r.replug(ctx2, res.e); err == nil {
		t.Fatal("a replug returned although the key never went away")
	}
}
