package emu_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"testing"
	"time"

	"github.com/mfad/mfad/hw/ctap2"
	"github.com/mfad/mfad/hw/ctaphid"
	"github.com/mfad/mfad/hw/emu"
	"github.com/mfad/mfad/hw/fidokey"
)

// apdu builds an extended-length command APDU (U2F over CTAPHID uses them).
func apdu(ins, p1 byte, data []byte) []byte {
	b := []byte{0x00, ins, p1, 0x00}
	if len(data) > 0 {
		b = append(b, 0x00, byte(len(data)>>8), byte(len(data)))
		b = append(b, data...)
		return append(b, 0x00, 0x00) // Le
	}
	return append(b, 0x00, 0x00, 0x00) // extended Le alone
}

func status(t *testing.T, resp []byte) (uint16, []byte) {
	t.Helper()
	if len(resp) < 2 {
		t.Fatalf("response of %d bytes", len(resp))
	}
	return binary.BigEndian.Uint16(resp[len(resp)-2:]), resp[:len(resp)-2]
}

func TestU2F(t *testing.T) {
	ek, conn := attach(t, emu.Config{})
	ctx := tctx(t)
	ch, err := ctaphid.Open(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	msg := func(b []byte) (uint16, []byte) {
		t.Helper()
		resp, err := ch.Msg(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		return status(t, resp)
	}

	if sw, data := msg([]byte{0, 3, 0, 0}); sw != emu.SWNoError || string(data) != "U2F_V2" {
		t.Fatalf("VERSION: %04x %q", sw, data)
	}
	if sw, data := msg(apdu(3, 0, nil)); sw != emu.SWNoError || string(data) != "U2F_V2" {
		t.Fatalf("VERSION (extended): %04x %q", sw, data)
	}

	const facet = "https://u2f.example"
	app := sha256.Sum256([]byte(facet))
	chal := sha256.Sum256([]byte("register challenge"))
	sw, reg := msg(apdu(1, 0, append(chal[:], app[:]...)))
	if sw != emu.SWNoError || len(reg) < 67 || reg[0] != 0x05 {
		t.Fatalf("REGISTER: %04x %x", sw, reg)
	}
	pubBytes := reg[1:66]
	hl := int(reg[66])
	handle := reg[67 : 67+hl]
	var certRaw asn1.RawValue
	rest, err := asn1.Unmarshal(reg[67+hl:], &certRaw)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(certRaw.FullBytes)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.Equal(ek.BatchCertificate()) {
		t.Error("REGISTER attestation certificate is not the batch certificate")
	}
	signed := append(append(append(append([]byte{0}, app[:]...), chal[:]...), handle...), pubBytes...)
	if err := ctap2.VerifySignature(cert.PublicKey, ctap2.AlgES256, signed, rest); err != nil {
		t.Fatalf("REGISTER signature: %v", err)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pubBytes)
	if err != nil {
		t.Fatal(err)
	}

	auth := func(p1 byte, app []byte, handle []byte) (uint16, []byte) {
		data := append(append(append([]byte(nil), chal[:]...), app...), byte(len(handle)))
		return msg(apdu(2, p1, append(data, handle...)))
	}
	if sw, _ := auth(0x07, app[:], handle); sw != emu.SWConditionsNotSatisfied {
		t.Errorf("check-only, known handle: %04x", sw)
	}
	other := sha256.Sum256([]byte("https://other.example"))
	if sw, _ := auth(0x07, other[:], handle); sw != emu.SWWrongData {
		t.Errorf("check-only, other application: %04x", sw)
	}
	bad := bytes.Clone(handle)
	bad[len(bad)-1] ^= 1
	if sw, _ := auth(0x03, app[:], bad); sw != emu.SWWrongData {
		t.Errorf("altered handle: %04x", sw)
	}
	sw, sig := auth(0x03, app[:], handle)
	if sw != emu.SWNoError || len(sig) < 6 || sig[0] != 0x01 {
		t.Fatalf("AUTHENTICATE: %04x %x", sw, sig)
	}
	signed = append(append(append([]byte(nil), app[:]...), sig[:5]...), chal[:]...)
	if err := ctap2.VerifySignature(pub, ctap2.AlgES256, signed, sig[5:]); err != nil {
		t.Fatalf("AUTHENTICATE signature: %v", err)
	}
	ctr := binary.BigEndian.Uint32(sig[1:5])

	// The U2F credential answers CTAP2 GetAssertion for the same rpIdHash.
	k, err := fidokey.Open(ctx, conn, fidokey.DeviceInfo{Path: "emu:u2f"})
	if err != nil {
		t.Fatal(err)
	}
	as, err := k.GetAssertion(ctx, fidokey.GetAssertionParams{RPID: facet, ClientDataHash: chal[:], AllowList: [][]byte{handle}, UP: true})
	if err != nil {
		t.Fatalf("CTAP2 with a U2F handle: %v", err)
	}
	ad, _ := ctap2.ParseAuthData(as[0].AuthData)
	if err := ctap2.VerifySignature(pub, ctap2.AlgES256, append(bytes.Clone(as[0].AuthData), chal[:]...), as[0].Signature); err != nil || ad.SignCount <= ctr {
		t.Errorf("CTAP2 assertion: %v, counter %d after %d", err, ad.SignCount, ctr)
	}

	// Malformed requests.
	for name, tc := range map[string]struct {
		apdu []byte
		want uint16
	}{
		"class":         {[]byte{0x80, 3, 0, 0}, emu.SWClaNotSupported},
		"instruction":   {[]byte{0, 0x55, 0, 0}, emu.SWInsNotSupported},
		"short":         {[]byte{0, 1}, emu.SWWrongLength},
		"register 63":   {apdu(1, 0, make([]byte, 63)), emu.SWWrongLength},
		"authenticate":  {apdu(2, 3, make([]byte, 64)), emu.SWWrongLength},
		"bad length":    {[]byte{0, 1, 0, 0, 0, 0, 0x40, 1}, emu.SWWrongLength},
		"p1":            {apdu(2, 0x55, append(append(append(make([]byte, 32), app[:]...), byte(len(handle))), handle...)), emu.SWIncorrectP1P2},
		"short version": {[]byte{0, 3, 0, 0, 0}, emu.SWNoError},
	} {
		if sw, _ := msg(tc.apdu); sw != tc.want {
			t.Errorf("%s: %04x, want %04x", name, sw, tc.want)
		}
	}
}

func TestU2FManualPresence(t *testing.T) {
	ek, conn := attach(t, emu.Config{Presence: emu.PresenceManual, PresenceTimeout: 50 * time.Millisecond})
	ch, err := ctaphid.Open(tctx(t), conn)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ch.Msg(tctx(t), apdu(1, 0, make([]byte, 64)))
	if err != nil {
		t.Fatal(err)
	}
	if sw, _ := status(t, resp); sw != emu.SWConditionsNotSatisfied {
		t.Errorf("REGISTER without touch: %04x", sw)
	}
	ek.SetPresence(emu.PresenceAuto)
	resp, err = ch.Msg(tctx(t), apdu(1, 0, make([]byte, 64)))
	if err != nil {
		t.Fatal(err)
	}
	if sw, _ := status(t, resp); sw != emu.SWNoError {
		t.Errorf("REGISTER with presence: %04x", sw)
	}
}
