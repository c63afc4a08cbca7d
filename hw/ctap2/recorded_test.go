package ctap2

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"slices"
	"testing"
)

// oidFIDOGenCeAAGUID is id-fido-gen-ce-aaguid (WebAuthn §8.2.1).
var oidFIDOGenCeAAGUID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 45724, 1, 1, 4}

const recordedAAGUID = "f8a011f38c0a4d15800617111f9edc7d"

// roundTrip checks that decoding a canonical response frame and encoding
// it again gives the same bytes.
func roundTrip(t *testing.T, frame []byte, v any) {
	t.Helper()
	again, err := EncodeResponse(v)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, frame) {
		t.Errorf("re-encoded frame differs\n got %x\nwant %x", again, frame)
	}
}

func TestRecordedGetInfo(t *testing.T) {
	frame := loadWiredata(t)["WIREDATA_CTAP_CBOR_INFO"]
	info, err := ParseGetInfo(frame)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"U2F_V2", "FIDO_2_0", "FIDO_2_1_PRE", "FIDO_2_1", "FIDO_2_3"}; !slices.Equal(info.Versions, want) {
		t.Errorf("versions %q, want %q", info.Versions, want)
	}
	if !slices.Contains(info.Extensions, "hmac-secret") || len(info.Extensions) != 8 {
		t.Errorf("extensions %q", info.Extensions)
	}
	if hex.EncodeToString(info.AAGUID) != recordedAAGUID {
		t.Errorf("aaguid %x", info.AAGUID)
	}
	for opt, want := range map[string]bool{"rk": true, "up": true, "plat": false, "clientPin": false, "pinUvAuthToken": true, "ep": false} {
		if v, ok := info.Option(opt); !ok || v != want {
			t.Errorf("option %s = %v, %v; want %v, true", opt, v, ok, want)
		}
	}
	if _, ok := info.Option("uv"); ok {
		t.Error("option uv present")
	}
	if info.MaxMsgSize != 1536 || info.MaxCredentialCountInList != 8 || info.MaxCredentialIDLength != 128 {
		t.Errorf("maxMsgSize %d, maxCredentialCountInList %d, maxCredentialIdLength %d", info.MaxMsgSize, info.MaxCredentialCountInList, info.MaxCredentialIDLength)
	}
	if !slices.Equal(info.PinUvAuthProtocols, []uint64{2, 1}) || !info.SupportsPinUvAuthProtocol(1) || info.SupportsPinUvAuthProtocol(3) {
		t.Errorf("pinUvAuthProtocols %v", info.PinUvAuthProtocols)
	}
	if !slices.Equal(info.Transports, []string{"nfc", "usb", "smart-card"}) {
		t.Errorf("transports %q", info.Transports)
	}
	var algs []COSEAlgorithm
	for _, a := range info.Algorithms {
		if a.Type != CredentialTypePublicKey {
			t.Errorf("algorithm type %q", a.Type)
		}
		algs = append(algs, a.Alg)
	}
	if !slices.Equal(algs, []COSEAlgorithm{AlgES256, AlgEdDSA, AlgES384}) {
		t.Errorf("algorithms %v", algs)
	}
	if info.ForcePINChange == nil || *info.ForcePINChange || info.MinPINLength != 4 || info.MaxPINLength != 63 {
		t.Errorf("forcePINChange %v, minPINLength %d, maxPINLength %d", info.ForcePINChange, info.MinPINLength, info.MaxPINLength)
	}
	if info.RemainingDiscoverableCredentials == nil || *info.RemainingDiscoverableCredentials != 100 {
		t.Errorf("remainingDiscoverableCredentials %v", info.RemainingDiscoverableCredentials)
	}
	if !slices.Equal(info.AttestationFormats, []string{"packed"}) || info.LongTouchForReset == nil || !*info.LongTouchForReset {
		t.Errorf("attestationFormats %q, longTouchForReset %v", info.AttestationFormats, info.LongTouchForReset)
	}
	if string(info.PINComplexityPolicyURL) != "https://example.com" || len(info.EncIdentifier) != 32 || len(info.EncCredStoreState) != 32 {
		t.Errorf("pinComplexityPolicyURL %q, encIdentifier %d bytes", info.PINComplexityPolicyURL, len(info.EncIdentifier))
	}
	if !slices.Equal(info.AuthenticatorConfigCommands, []uint64{1, 2, 3}) {
		t.Errorf("authenticatorConfigCommands %v", info.AuthenticatorConfigCommands)
	}
	roundTrip(t, frame, info)
}

func TestRecordedMakeCredential(t *testing.T) {
	frame := loadWiredata(t)["WIREDATA_CTAP_CBOR_CRED"]
	resp, err := ParseMakeCredentialResponse(frame)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Fmt != "packed" {
		t.Errorf("fmt %q", resp.Fmt)
	}
	ad, err := ParseAuthData(resp.AuthData)
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256([]byte("localhost")); ad.RPIDHash != want {
		t.Errorf("rpIdHash %x, want SHA-256(\"localhost\")", ad.RPIDHash)
	}
	if ad.Flags != FlagUP|FlagUV|FlagAT || ad.SignCount != 0 {
		t.Errorf("flags %#x signCount %d", ad.Flags, ad.SignCount)
	}
	c := ad.AttestedCredential
	if c == nil || hex.EncodeToString(c.AAGUID[:]) != recordedAAGUID || len(c.CredentialID) != 64 || ad.Extensions != nil {
		t.Fatalf("attested credential %+v, extensions %x", c, ad.Extensions)
	}
	pub, alg, err := c.Key()
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := pub.(*ecdsa.PublicKey); !ok || p.Curve != elliptic.P256() || alg != AlgES256 {
		t.Errorf("credential key %T alg %d", pub, alg)
	}
	again, err := ad.Marshal()
	if err != nil || !bytes.Equal(again, resp.AuthData) {
		t.Errorf("authData re-encoded to %x, %v", again, err)
	}

	st, err := ParseAttestationStatement(resp.AttStmt)
	if err != nil {
		t.Fatal(err)
	}
	if st.Alg != AlgES256 || len(st.X5C) != 1 {
		t.Fatalf("attStmt alg %d with %d certificates", st.Alg, len(st.X5C))
	}
	cert, err := x509.ParseCertificate(st.X5C[0])
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "Yubico U2F EE Serial 1213939126" || cert.Issuer.CommonName != "Yubico FIDO Preview CA" {
		t.Errorf("certificate %q issued by %q", cert.Subject.CommonName, cert.Issuer.CommonName)
	}
	if _, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("attestation key %T", cert.PublicKey)
	}
	var certAAGUID []byte
	for _, e := range cert.Extensions {
		if e.Id.Equal(oidFIDOGenCeAAGUID) {
			if _, err := asn1.Unmarshal(e.Value, &certAAGUID); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !bytes.Equal(certAAGUID, c.AAGUID[:]) {
		t.Errorf("certificate AAGUID %x, authData AAGUID %x", certAAGUID, c.AAGUID)
	}
	// The recording does not keep the clientDataHash the key signed, so
	// the signature is checked only to fail on a made-up one.
	if err := VerifySignature(cert.PublicKey, st.Alg, append(resp.AuthData, make([]byte, 32)...), st.Sig); !errors.Is(err, ErrSignature) {
		t.Errorf("signature over a zero clientDataHash: %v", err)
	}
	roundTrip(t, frame, resp)
}

func TestRecordedAssertion(t *testing.T) {
	frame := loadWiredata(t)["WIREDATA_CTAP_CBOR_ASSERT"]
	resp, err := ParseGetAssertionResponse(frame)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Credential == nil || resp.Credential.Type != CredentialTypePublicKey || len(resp.Credential.ID) != 64 {
		t.Fatalf("credential %+v", resp.Credential)
	}
	ad, err := ParseAuthData(resp.AuthData)
	if err != nil {
		t.Fatal(err)
	}
	if ad.Flags != FlagUV || ad.SignCount != 9 || ad.AttestedCredential != nil {
		t.Errorf("flags %#x signCount %d", ad.Flags, ad.SignCount)
	}
	if len(resp.Signature) != 71 || resp.Signature[0] != 0x30 || resp.User != nil || resp.NumberOfCredentials != 0 {
		t.Errorf("signature %x user %v n %d", resp.Signature, resp.User, resp.NumberOfCredentials)
	}
	roundTrip(t, frame, resp)
}

func TestRecordedClientPIN(t *testing.T) {
	w := loadWiredata(t)

	frame := w["WIREDATA_CTAP_CBOR_AUTHKEY"]
	ka, err := ParseClientPINResponse(frame)
	if err != nil {
		t.Fatal(err)
	}
	if ka.KeyAgreement == nil || ka.KeyAgreement.Alg != AlgECDHESHKDF256 {
		t.Fatalf("keyAgreement %+v", ka.KeyAgreement)
	}
	if _, err := ka.KeyAgreement.ECDHPublicKey(); err != nil {
		t.Errorf("recorded key agreement key: %v", err)
	}
	// A platform can agree on a secret with the recorded key.
	if plat, shared, err := Encapsulate(ProtocolTwo{}, ka.KeyAgreement); err != nil || len(shared) != 64 || plat.Kty != COSEKtyEC2 {
		t.Errorf("encapsulate: %v", err)
	}
	roundTrip(t, frame, ka)

	frame = w["WIREDATA_CTAP_CBOR_PINTOKEN"]
	tok, err := ParseClientPINResponse(frame)
	if err != nil || len(tok.PinUvAuthToken) != 16 {
		t.Fatalf("pinToken %+v, %v", tok, err)
	}
	roundTrip(t, frame, tok)

	frame = w["WIREDATA_CTAP_CBOR_RETRIES"]
	r, err := ParseClientPINResponse(frame)
	if err != nil || r.PINRetries == nil || *r.PINRetries != 8 {
		t.Fatalf("retries %+v, %v", r, err)
	}
	roundTrip(t, frame, r)

	frame = w["WIREDATA_CTAP_CBOR_STATUS"]
	if r, err := ParseClientPINResponse(frame); err != nil || r.KeyAgreement != nil || r.PINRetries != nil {
		t.Errorf("status-only answer: %+v, %v", r, err)
	}
	if err := ParseResponse(frame, nil); err != nil {
		t.Error(err)
	}
}

// python-fido2's vectors: a packed attestation with its clientDataHash,
// so the signature can be checked, and a MakeCredential/GetAssertion pair.
func TestVectorPackedAttestation(t *testing.T) {
	v := loadVectors(t)
	frame := append([]byte{0}, v["packed_attobj"]...)
	resp, err := ParseMakeCredentialResponse(frame)
	if err != nil {
		t.Fatal(err)
	}
	st, err := ParseAttestationStatement(resp.AttStmt)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(st.X5C[0])
	if err != nil {
		t.Fatal(err)
	}
	signed := append(append([]byte(nil), resp.AuthData...), v["packed_cdh"]...)
	if err := VerifySignature(cert.PublicKey, st.Alg, signed, st.Sig); err != nil {
		t.Fatalf("packed attestation signature: %v", err)
	}
	signed[len(signed)-1] ^= 1
	if err := VerifySignature(cert.PublicKey, st.Alg, signed, st.Sig); !errors.Is(err, ErrSignature) {
		t.Errorf("signature over a changed clientDataHash: %v", err)
	}
	roundTrip(t, frame, resp)
}

func TestVectorMakeCredentialGetAssertion(t *testing.T) {
	v := loadVectors(t)
	mcFrame := append([]byte{0}, v["mc_resp"]...)
	mc, err := ParseMakeCredentialResponse(mcFrame)
	if err != nil {
		t.Fatal(err)
	}
	mad, err := ParseAuthData(mc.AuthData)
	if err != nil {
		t.Fatal(err)
	}
	if mad.Flags != FlagUP|FlagAT || mad.SignCount != 28 {
		t.Errorf("makeCredential flags %#x counter %d", mad.Flags, mad.SignCount)
	}
	gaFrame := append([]byte{0}, v["ga_resp"]...)
	ga, err := ParseGetAssertionResponse(gaFrame)
	if err != nil {
		t.Fatal(err)
	}
	gad, err := ParseAuthData(ga.AuthData)
	if err != nil {
		t.Fatal(err)
	}
	if gad.Flags != FlagUP || gad.SignCount != 29 || gad.RPIDHash != mad.RPIDHash {
		t.Errorf("getAssertion flags %#x counter %d", gad.Flags, gad.SignCount)
	}
	if !bytes.Equal(ga.Credential.ID, mad.AttestedCredential.CredentialID) {
		t.Error("assertion names another credential")
	}
	if _, _, err := mad.AttestedCredential.Key(); err != nil {
		t.Error(err)
	}
	// These answers encode authData's length in two bytes where one
	// suffices: not canonical. Re-encoding gives the canonical form.
	roundTrip(t, bytes.Replace(mcFrame, unhex(t, "025900c4"), unhex(t, "0258c4"), 1), mc)
	roundTrip(t, bytes.Replace(gaFrame, unhex(t, "02590025"), unhex(t, "025825"), 1), ga)
}
