package fidokey_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mfad/mfad/hw/ctap2"
	"github.com/mfad/mfad/hw/ctaphid"
	"github.com/mfad/mfad/hw/emu"
	"github.com/mfad/mfad/hw/fidokey"
)

func TestFaults(t *testing.T) {
	checkLeaks(t)
	ek, k := attach(t, emu.Config{})
	c := register(t, ek, k, mcParams("alice"))
	q := cdh("q")
	assert := func(ctx context.Context) (*ctap2.AuthData, error) {
		as, err := k.GetAssertion(ctx, fidokey.GetAssertionParams{RPID: rpID, ClientDataHash: q, AllowList: [][]byte{c.id}, UP: true})
		if err != nil {
			return nil, err
		}
		return checkAssertion(t, c, as[0], rpID, q), nil
	}

	t.Run("ctap_error", func(t *testing.T) {
		if err := ek.SetFault(emu.Fault{Kind: emu.FaultCTAPError, Status: byte(ctap2.ErrOperationDenied), Count: 2}); err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			_, err := assert(tctx(t))
			var se ctap2.StatusError
			if !errors.As(err, &se) || se != ctap2.ErrOperationDenied {
				t.Fatalf("command %d: %v", i+1, err)
			}
		}
		if _, err := assert(tctx(t)); err != nil {
			t.Fatalf("after the injected errors: %v", err)
		}
	})

	t.Run("no_answer", func(t *testing.T) {
		if err := ek.SetFault(emu.Fault{Kind: emu.FaultNoAnswer}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if _, err := assert(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("no answer: %v", err)
		}
		if err := ek.SetFault(emu.Fault{Kind: emu.FaultClear}); err != nil {
			t.Fatal(err)
		}
		if _, err := assert(tctx(t)); err != nil {
			t.Fatalf("after clear: %v", err)
		}
	})

	t.Run("corrupt_frames", func(t *testing.T) {
		if err := ek.SetFault(emu.Fault{Kind: emu.FaultCorruptFrames}); err != nil {
			t.Fatal(err)
		}
		_, err := assert(tctx(t))
		var fe *ctaphid.FrameError
		if !errors.As(err, &fe) {
			t.Fatalf("corrupt frames: %v", err)
		}
		if err := ek.SetFault(emu.Fault{Kind: emu.FaultClear}); err != nil {
			t.Fatal(err)
		}
		if _, err := assert(tctx(t)); err != nil {
			t.Fatalf("after clear: %v", err)
		}
	})

	t.Run("slow_keepalive", func(t *testing.T) {
		if err := ek.SetFault(emu.Fault{Kind: emu.FaultSlowKeepalive, Interval: time.Hour}); err != nil {
			t.Fatal(err)
		}
		if _, err := assert(tctx(t)); err != nil {
			t.Fatal(err)
		}
		if err := ek.SetFault(emu.Fault{Kind: emu.FaultClear}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("counter_rollback", func(t *testing.T) {
		before, err := assert(tctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := ek.SetFault(emu.Fault{Kind: emu.FaultCounterRollback}); err != nil {
			t.Fatal(err)
		}
		after, err := assert(tctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if after.SignCount >= before.SignCount {
			t.Fatalf("counter %d after %d: did not go down", after.SignCount, before.SignCount)
		}
	})

	if err := ek.SetFault(emu.Fault{Kind: "melt"}); err == nil {
		t.Error("unknown fault kind accepted")
	}
}
