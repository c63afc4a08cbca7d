package fidokey_test

import (
	"testing"

	"github.com/mfad/mfad/hw/ctap2"
	"github.com/mfad/mfad/hw/emu"
	"github.com/mfad/mfad/hw/fidokey"
)

// The whole stack: fidokey -> ctap2 -> ctaphid.Channel -> Pipe ->
// ctaphid.Server -> emu, ES256, automatic presence, state in memory.

func BenchmarkMakeCredential(b *testing.B) {
	_, k := attach(b, emu.Config{})
	p := mcParams("bench")
	p.Algorithms = []ctap2.COSEAlgorithm{ctap2.AlgES256}
	ctx := tctx(b)
	for b.Loop() {
		if _, err := k.MakeCredential(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetAssertion(b *testing.B) {
	ek, k := attach(b, emu.Config{})
	p := mcParams("bench")
	p.Algorithms = []ctap2.COSEAlgorithm{ctap2.AlgES256}
	c := register(b, ek, k, p)
	ctx := tctx(b)
	ga := fidokey.GetAssertionParams{RPID: rpID, ClientDataHash: cdh("q"), AllowList: [][]byte{c.id}, UP: true}
	for b.Loop() {
		if _, err := k.GetAssertion(ctx, ga); err != nil {
			b.Fatal(err)
		}
	}
}
