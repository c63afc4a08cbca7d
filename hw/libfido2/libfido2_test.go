//go:build cgo

package libfido2

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	fido2 "github.com/keys-pub/go-libfido2"

	"github.com/mfad/mfad/hw/ctap2"
	"github.com/mfad/mfad/hw/emu"
)

func TestConvertInfo(t *testing.T) {
	in := &fido2.DeviceInfo{
		Versions: []string{"U2F_V2", "FIDO_2_0"}, Extensions: []string{"credProtect"},
		AAGUID:    emu.AAGUID[:],
		Options:   []fido2.Option{{Name: "rk", Value: fido2.True}, {Name: "clientPin", Value: fido2.False}},
		Protocols: []byte{2, 1},
	}
	got := convertInfo(in)
	if !bytes.Equal(got.AAGUID, emu.AAGUID[:]) || len(got.Versions) != 2 || !got.Options["rk"] || got.Options["clientPin"] ||
		len(got.PinUvAuthProtocols) != 2 || got.PinUvAuthProtocols[0] != 2 {
		t.Fatalf("convertInfo = %+v", got)
	}
}

func TestTranslate(t *testing.T) {
	if err := translate(fido2.ErrPinInvalid); !errors.Is(err, ctap2.ErrPINInvalid) {
		t.Errorf("pin invalid: %v", err)
	}
	if err := translate(fido2.Error{Code: 0x2e}); !errors.Is(err, ctap2.ErrNoCredentials) {
		t.Errorf("code 0x2e: %v", err)
	}
	if err := translate(fido2.ErrTX); errors.Is(err, ctap2.ErrOther) || err == nil {
		t.Errorf("tx: %v", err)
	}
}

// Cancel and calls share one mutex: concurrent use is race-free (run with
// -race). The device does not exist, so each call fails at open.
func TestCancelSerialised(t *testing.T) {
	d, err := Open("/nonexistent/hidraw99")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(2)
		go func() { defer wg.Done(); d.Info(ctx) }()
		go func() { defer wg.Done(); d.Cancel() }()
	}
	wg.Wait()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := d.Info(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: %v", err)
	}
}
