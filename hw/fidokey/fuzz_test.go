package fidokey_test

import (
	"context"
	"sync"
	"testing"

	"github.com/mfad/mfad/hw/ctap2"
	"github.com/mfad/mfad/hw/ctaphid"
	"github.com/mfad/mfad/hw/emu"
	"github.com/mfad/mfad/hw/fidokey"
)

// scripted is a device that answers every CTAP2 command but GetInfo with
// the same frame.
type scripted struct {
	mu     sync.Mutex
	answer []byte
	info   []byte
}

func (s *scripted) CBOR(_ context.Context, req []byte, _ func(byte)) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(req) > 0 && ctap2.Command(req[0]) == ctap2.CmdGetInfo {
		return s.info
	}
	return s.answer
}
func (s *scripted) Msg(context.Context, []byte) []byte { return []byte{0x6d, 0x00} }
func (s *scripted) Wink()                              {}

// FuzzGetAssertion feeds arbitrary GetAssertion and GetNextAssertion
// answers to the host side: an error or assertions, never a panic.
func FuzzGetAssertion(f *testing.F) {
	// Seeds: real answers of the emulator.
	a, err := emu.New(emu.Config{})
	if err != nil {
		f.Fatal(err)
	}
	cdh := make([]byte, 32)
	mc, _ := ctap2.EncodeCommand(ctap2.CmdMakeCredential, &ctap2.MakeCredentialRequest{
		ClientDataHash: cdh, RP: &ctap2.RPEntity{ID: rpID}, User: &ctap2.UserEntity{ID: []byte{1}},
		PubKeyCredParams: []ctap2.CredentialParameter{{Type: "public-key", Alg: ctap2.AlgES256}}, Options: map[string]bool{"rk": true},
	})
	a.CBOR(context.Background(), mc, nil)
	mc2 := append([]byte(nil), mc...)
	mc2[len(mc2)-1]++ // another user id... or an invalid frame, both fine as seeds
	a.CBOR(context.Background(), mc2, nil)
	ga, _ := ctap2.EncodeCommand(ctap2.CmdGetAssertion, &ctap2.GetAssertionRequest{RPID: rpID, ClientDataHash: cdh})
	f.Add(a.CBOR(context.Background(), ga, nil))
	f.Add([]byte{0x2e})
	f.Add([]byte{0x00})
	f.Add([]byte{0x00, 0xa1, 0x05, 0x19, 0xff, 0xff})
	gi, _ := ctap2.EncodeCommand(ctap2.CmdGetInfo, nil)
	dev := &scripted{info: a.CBOR(context.Background(), gi, nil)}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	host, devConn := ctaphid.Pipe()
	srv := &ctaphid.Server{Handler: dev, Capabilities: ctaphid.CapCBOR}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ctx, devConn)
	}()
	defer func() {
		host.Close()
		<-done
	}()
	k, err := fidokey.Open(ctx, host, fidokey.DeviceInfo{Path: "fuzz"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, answer []byte) {
		dev.mu.Lock()
		dev.answer = answer
		dev.mu.Unlock()
		as, err := k.GetAssertion(ctx, fidokey.GetAssertionParams{RPID: rpID, ClientDataHash: cdh, UP: true})
		if err == nil {
			for _, x := range as {
				if x.Credential == nil {
					t.Fatal("assertion without credential")
				}
			}
		}
	})
}
