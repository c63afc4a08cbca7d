package fidokey_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/mfad/mfad/hw/ctap2"
	"github.com/mfad/mfad/hw/emu"
	"github.com/mfad/mfad/hw/fidokey"
)

// clock is an injected clock for the emulator.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// checkLeaks fails the test when goroutines started during it are still
// running once its cleanups (registered later, so run earlier) are done.
func checkLeaks(t testing.TB) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				t.Errorf("goroutines leaked: %d running, %d before\n%s", runtime.NumGoroutine(), before, buf[:n])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// attach starts an emulator in-process and opens it with fidokey.
func attach(t testing.TB, cfg emu.Config) (*emu.Key, *fidokey.Key) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ek, conn, err := emu.Attach(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ek.Close()
		cancel()
	})
	k, err := fidokey.Open(ctx, conn, fidokey.DeviceInfo{Path: "emu:test"})
	if err != nil {
		t.Fatal(err)
	}
	return ek, k
}

// reopen unplugs and plugs the emulator in again and opens it anew.
func reopen(t testing.TB, ek *emu.Key) *fidokey.Key {
	t.Helper()
	ek.Unplug()
	conn, err := ek.Plug()
	if err != nil {
		t.Fatal(err)
	}
	k, err := fidokey.Open(context.Background(), conn, fidokey.DeviceInfo{Path: "emu:test"})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func tctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func cdh(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

const rpID = "pam://workstation"

func mcParams(user string) fidokey.MakeCredentialParams {
	return fidokey.MakeCredentialParams{
		ClientDataHash: cdh("register " + user),
		RP:             ctap2.RPEntity{ID: rpID, Name: "workstation"},
		User:           ctap2.UserEntity{ID: []byte("id-" + user), Name: user, DisplayName: "User " + user},
	}
}

// credential is what a relying party keeps of a registration.
type credential struct {
	id   []byte
	pub  any
	alg  ctap2.COSEAlgorithm
	sign uint32
}

// register makes a credential and checks the attestation against the
// emulator's CA.
func register(t testing.TB, ek *emu.Key, k *fidokey.Key, p fidokey.MakeCredentialParams) credential {
	t.Helper()
	resp, err := k.MakeCredential(tctx(t), p)
	if err != nil {
		t.Fatalf("MakeCredential: %v", err)
	}
	return checkAttestation(t, ek, resp, p.RP.ID, p.ClientDataHash)
}

func checkAttestation(t testing.TB, ek *emu.Key, resp *ctap2.MakeCredentialResponse, rp string, clientDataHash []byte) credential {
	t.Helper()
	if resp.Fmt != "packed" {
		t.Fatalf("fmt %q", resp.Fmt)
	}
	ad, err := ctap2.ParseAuthData(resp.AuthData)
	if err != nil {
		t.Fatal(err)
	}
	if ad.RPIDHash != sha256.Sum256([]byte(rp)) {
		t.Fatal("rpIdHash")
	}
	if !ad.Flags.Has(ctap2.FlagUP) || ad.AttestedCredential == nil {
		t.Fatalf("flags %08b", ad.Flags)
	}
	if ad.AttestedCredential.AAGUID != emu.AAGUID {
		t.Fatalf("AAGUID %x", ad.AttestedCredential.AAGUID)
	}
	st, err := ctap2.ParseAttestationStatement(resp.AttStmt)
	if err != nil {
		t.Fatal(err)
	}
	if st.Alg != ctap2.AlgES256 || len(st.X5C) != 1 {
		t.Fatalf("attStmt alg %d, %d certificates", st.Alg, len(st.X5C))
	}
	cert, err := x509.ParseCertificate(st.X5C[0])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ek.CACertificate())
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: cert.NotBefore.Add(time.Hour), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("batch certificate does not chain to the CA: %v", err)
	}
	signed := append(append([]byte(nil), resp.AuthData...), clientDataHash...)
	if err := ctap2.VerifySignature(cert.PublicKey, ctap2.AlgES256, signed, st.Sig); err != nil {
		t.Fatalf("attestation signature: %v", err)
	}
	pub, alg, err := ad.AttestedCredential.Key()
	if err != nil {
		t.Fatal(err)
	}
	return credential{id: ad.AttestedCredential.CredentialID, pub: pub, alg: alg, sign: ad.SignCount}
}

// checkAssertion verifies an assertion like a relying party and returns
// its authenticator data.
func checkAssertion(t testing.TB, c credential, a *ctap2.GetAssertionResponse, rp string, clientDataHash []byte) *ctap2.AuthData {
	t.Helper()
	if a.Credential == nil || !bytes.Equal(a.Credential.ID, c.id) {
		t.Fatal("assertion names another credential")
	}
	ad, err := ctap2.ParseAuthData(a.AuthData)
	if err != nil {
		t.Fatal(err)
	}
	if ad.RPIDHash != sha256.Sum256([]byte(rp)) {
		t.Fatal("rpIdHash")
	}
	signed := append(append([]byte(nil), a.AuthData...), clientDataHash...)
	if err := ctap2.VerifySignature(c.pub, c.alg, signed, a.Signature); err != nil {
		t.Fatalf("assertion signature: %v", err)
	}
	return ad
}

// keepalives records KEEPALIVE statuses and signals the first UPNEEDED.
type keepalives struct {
	mu       sync.Mutex
	statuses []byte
	upNeeded chan struct{}
	once     sync.Once
}

func newKeepalives() *keepalives { return &keepalives{upNeeded: make(chan struct{})} }

func (k *keepalives) On(status byte) {
	k.mu.Lock()
	k.statuses = append(k.statuses, status)
	k.mu.Unlock()
	if status == 2 {
		k.once.Do(func() { close(k.upNeeded) })
	}
}

// touchWhenAsked touches the key once it says it waits for the user.
func touchWhenAsked(t testing.TB, ka *keepalives, ek *emu.Key) {
	stop := make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() {
		close(stop)
		<-done
	})
	go func() {
		defer close(done)
		select {
		case <-ka.upNeeded:
			ek.Touch()
		case <-stop:
		}
	}()
}
