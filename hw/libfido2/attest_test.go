package libfido2

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/mfad/mfad/hw/ctap2"
	"github.com/mfad/mfad/hw/emu"
	"github.com/mfad/mfad/hw/fidokey"
)

// packedFromEmulator makes a real packed attestation with the software key.
func packedFromEmulator(t *testing.T) *ctap2.MakeCredentialResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	k, conn, err := emu.Attach(ctx, emu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	key, err := fidokey.Open(ctx, conn, fidokey.DeviceInfo{Path: "emu"})
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte("client data"))
	r, err := key.MakeCredential(ctx, fidokey.MakeCredentialParams{
		ClientDataHash: h[:],
		RP:             ctap2.RPEntity{ID: "pam://vmtest"},
		User:           ctap2.UserEntity{ID: []byte{1, 2, 3}, Name: "alice"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// wrap is what libfido2's fido_cred_authdata_ptr gives: a CBOR byte string.
func wrap(t *testing.T, b []byte) []byte {
	t.Helper()
	w, err := ctap2.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// Taking a packed attestation apart as libfido2 does and rebuilding it gives
// the same attestation object back, byte for byte.
func TestRebuildPackedRoundTrip(t *testing.T) {
	orig := packedFromEmulator(t)
	st, err := ctap2.ParseAttestationStatement(orig.AttStmt)
	if err != nil {
		t.Fatal(err)
	}
	ad, _ := ctap2.ParseAuthData(orig.AuthData)
	_, credAlg, _ := ad.AttestedCredential.Key()
	got, err := RebuildAttestation(Pieces{Format: orig.Fmt, AuthData: wrap(t, orig.AuthData), Sig: st.Sig, Cert: st.X5C[0], CredentialAlg: credAlg})
	if err != nil {
		t.Fatal(err)
	}
	if got.Fmt != orig.Fmt || !bytes.Equal(got.AuthData, orig.AuthData) || !bytes.Equal(got.AttStmt, orig.AttStmt) {
		t.Fatalf("rebuilt %s % x\nwant %s % x", got.Fmt, got.AttStmt, orig.Fmt, orig.AttStmt)
	}
	// Raw authenticator data is taken as it is too.
	if got, err := RebuildAttestation(Pieces{Format: "packed", AuthData: orig.AuthData, Sig: st.Sig, Cert: st.X5C[0]}); err != nil || !bytes.Equal(got.AttStmt, orig.AttStmt) {
		t.Fatalf("raw authData: %v", err)
	}
}

func TestRebuildMutations(t *testing.T) {
	orig := packedFromEmulator(t)
	st, _ := ctap2.ParseAttestationStatement(orig.AttStmt)
	cert := st.X5C[0]
	ad := wrap(t, orig.AuthData)
	tests := []struct {
		name  string
		p     Pieces
		check func(*ctap2.AttestationStatement) bool
		err   bool
	}{
		{name: "self attestation takes the credential's alg", p: Pieces{Format: "packed", AuthData: ad, Sig: st.Sig, CredentialAlg: ctap2.AlgEdDSA},
			check: func(s *ctap2.AttestationStatement) bool { return s.Alg == ctap2.AlgEdDSA && len(s.X5C) == 0 }},
		{name: "fido-u2f", p: Pieces{Format: "fido-u2f", AuthData: ad, Sig: st.Sig, Cert: cert},
			check: func(s *ctap2.AttestationStatement) bool { return s.Alg == 0 && len(s.X5C) == 1 }},
		{name: "none", p: Pieces{Format: "none", AuthData: ad}},
		{name: "self attestation without alg", p: Pieces{Format: "packed", AuthData: ad, Sig: st.Sig}, err: true},
		{name: "packed without sig", p: Pieces{Format: "packed", AuthData: ad, Cert: cert}, err: true},
		{name: "garbage certificate", p: Pieces{Format: "packed", AuthData: ad, Sig: st.Sig, Cert: []byte{0x30, 1, 2}}, err: true},
		{name: "u2f without certificate", p: Pieces{Format: "fido-u2f", AuthData: ad, Sig: st.Sig}, err: true},
		{name: "unknown format", p: Pieces{Format: "tpm", AuthData: ad, Sig: st.Sig, Cert: cert}, err: true},
		{name: "short authData", p: Pieces{Format: "none", AuthData: []byte{1, 2, 3}}, err: true},
		{name: "authData cut", p: Pieces{Format: "none", AuthData: wrap(t, orig.AuthData[:50])}, err: true},
		{name: "authData without credential", p: Pieces{Format: "none", AuthData: wrap(t, orig.AuthData[:37])}, err: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := RebuildAttestation(tc.p)
			if tc.err {
				if !errors.Is(err, ErrAttestation) {
					t.Fatalf("err = %v, want ErrAttestation", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				s, err := ctap2.ParseAttestationStatement(r.AttStmt)
				if err != nil || !tc.check(s) {
					t.Fatalf("statement %+v, %v", s, err)
				}
			}
			if tc.p.Format == "none" && !bytes.Equal(r.AttStmt, []byte{0xa0}) {
				t.Fatalf("none statement % x", r.AttStmt)
			}
		})
	}
}

func FuzzRebuildAttestation(f *testing.F) {
	f.Add("packed", []byte{0x58, 0x25}, []byte{1}, []byte{0x30})
	f.Fuzz(func(t *testing.T, format string, authData, sig, cert []byte) {
		r, err := RebuildAttestation(Pieces{Format: format, AuthData: authData, Sig: sig, Cert: cert, CredentialAlg: ctap2.AlgES256})
		if err == nil && (r.Fmt != format || r.AttStmt == nil) {
			t.Fatalf("bad result %+v", r)
		}
	})
}
