package fidocheck

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/mfad/mfad/hw/ctap2"
	"github.com/mfad/mfad/hw/ctaphid"
)

// U2F instructions, parameters and status words (FIDO U2F Raw Message
// Formats §3, §4, §5; ISO 7816-4 status words).
const (
	u2fRegister            = 0x01
	u2fAuthenticate        = 0x02
	u2fVersion             = 0x03
	u2fCheckOnly           = 0x07
	u2fEnforcePresence     = 0x03
	swNoError              = 0x9000
	swConditionsNotSatisfy = 0x6985
	swWrongData            = 0x6A80
)

// u2fPoll is how often a U2F request is repeated while the key answers
// SW_CONDITIONS_NOT_SATISFIED (waiting for a touch).
const u2fPoll = 200 * time.Millisecond

// apdu builds an extended-length command APDU (ISO 7816-4 §5.1, as U2F
// over HID uses it): case 2E (Le only, 3 bytes) without data, case 4E
// (Lc, data, 2-byte Le) with.
func apdu(ins, p1 byte, data []byte) []byte {
	b := []byte{0x00, ins, p1, 0x00}
	if len(data) == 0 {
		return append(b, 0x00, 0x00, 0x00)
	}
	b = append(b, 0x00, byte(len(data)>>8), byte(len(data)))
	b = append(b, data...)
	return append(b, 0x00, 0x00)
}

// msg sends one APDU and splits the status word off.
func (r *runner) msg(ctx context.Context, a []byte) ([]byte, uint16, error) {
	resp, err := r.k.Channel().Msg(ctx, a)
	if err != nil {
		return nil, 0, err
	}
	if len(resp) < 2 {
		return nil, 0, fmt.Errorf("response APDU of %d bytes", len(resp))
	}
	n := len(resp) - 2
	return resp[:n], binary.BigEndian.Uint16(resp[n:]), nil
}

// msgTouch repeats an APDU while the key asks for a touch.
func (r *runner) msgTouch(a []byte, what string) ([]byte, uint16, error) {
	ctx, cancel := r.op(true)
	defer cancel()
	r.promptTouch(what) // U2F has no STATUS_UPNEEDED to wait for
	for {
		data, sw, err := r.msg(ctx, a)
		if err != nil || sw != swConditionsNotSatisfy {
			return data, sw, err
		}
		select {
		case <-ctx.Done():
			return nil, sw, fmt.Errorf("not touched: %w", ctx.Err())
		case <-time.After(u2fPoll):
		}
	}
}

// u2fKey is a U2F registration the battery made.
type u2fKey struct {
	app    []byte
	handle []byte
	pub    *ecdsa.PublicKey
}

func (r *runner) u2fOffered() string {
	if !r.hasVersion(ctap2.VersionU2F) {
		return "GetInfo versions do not list U2F_V2"
	}
	if r.k.Channel().Capabilities().Has(ctaphid.CapNMSG) {
		return "the key announces CAPABILITY_NMSG (no CTAPHID_MSG)"
	}
	return ""
}

var u2fApp = sha256.Sum256([]byte("https://" + checkRPID))

// u2fRegistration runs VERSION and REGISTER once per battery run.
func (r *runner) u2fRegistration() (*u2fKey, error) {
	ctx, cancel := r.op(false)
	v, sw, err := r.msg(ctx, apdu(u2fVersion, 0, nil))
	cancel()
	if err != nil {
		return nil, fmt.Errorf("VERSION: %w", err)
	}
	r.note("VERSION: %q, status %04x", v, sw)
	if sw != swNoError || string(v) != ctap2.VersionU2F {
		return nil, fmt.Errorf("VERSION answered %q with status %04x, want \"U2F_V2\" and 9000", v, sw)
	}
	challenge := sha256.Sum256(clientDataHash("u2f register"))
	data, sw, err := r.msgTouch(apdu(u2fRegister, 0, append(challenge[:], u2fApp[:]...)), "U2F registration")
	if err != nil {
		return nil, fmt.Errorf("REGISTER: %w", err)
	}
	if sw != swNoError {
		return nil, fmt.Errorf("REGISTER answered status %04x", sw)
	}
	// 0x05 || public key (65) || L || key handle (L) || certificate || signature
	if len(data) < 1+65+1 || data[0] != 0x05 {
		return nil, errors.New("REGISTER response does not start with 0x05 and a public key")
	}
	point := data[1:66]
	l := int(data[66])
	rest := data[67:]
	if len(rest) < l {
		return nil, errors.New("REGISTER response: key handle truncated")
	}
	handle, rest := rest[:l], rest[l:]
	var certRaw asn1.RawValue
	sig, err := asn1.Unmarshal(rest, &certRaw)
	if err != nil {
		return nil, fmt.Errorf("REGISTER response: attestation certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(rest[:len(rest)-len(sig)])
	if err != nil {
		return nil, fmt.Errorf("REGISTER response: attestation certificate: %w", err)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	if err != nil {
		return nil, fmt.Errorf("REGISTER response: user public key: %w", err)
	}
	msg := []byte{0}
	msg = append(msg, u2fApp[:]...)
	msg = append(msg, challenge[:]...)
	msg = append(msg, handle...)
	msg = append(msg, point...)
	if err := ctap2.VerifySignature(cert.PublicKey, ctap2.AlgES256, msg, sig); err != nil {
		return nil, fmt.Errorf("REGISTER signature by the attestation certificate: %w", err)
	}
	r.note("REGISTER: key handle of %d bytes, attested by %q, signature verified", len(handle), cert.Subject.CommonName)
	return &u2fKey{app: u2fApp[:], handle: append([]byte(nil), handle...), pub: pub}, nil
}

func checkU2FRegister(r *runner) outcome {
	if why := r.u2fOffered(); why != "" {
		return skipf("U2F not offered: %s", why)
	}
	k, err := r.u2fRegistration()
	if err != nil {
		return failf("%v", err)
	}
	r.u2f = k
	return pass()
}

func checkU2FAuthenticate(r *runner) outcome {
	if why := r.u2fOffered(); why != "" {
		return skipf("U2F not offered: %s", why)
	}
	if r.u2f == nil {
		return skipf("needs the registration of u2f.register, which was not made")
	}
	k := r.u2f
	challenge := sha256.Sum256(clientDataHash("u2f sign"))
	body := func(app []byte) []byte {
		b := append(append([]byte(nil), challenge[:]...), app...)
		b = append(b, byte(len(k.handle)))
		return append(b, k.handle...)
	}
	ctx, cancel := r.op(false)
	_, sw, err := r.msg(ctx, apdu(u2fAuthenticate, u2fCheckOnly, body(k.app)))
	cancel()
	if err != nil {
		return errOutcome("AUTHENTICATE check-only", err)
	}
	r.note("AUTHENTICATE check-only with the key's handle: status %04x", sw)
	if sw != swConditionsNotSatisfy {
		return failf("AUTHENTICATE check-only with a handle of this key: want 6985, got %04x", sw)
	}
	other := sha256.Sum256([]byte("https://" + otherRPID))
	ctx, cancel = r.op(false)
	_, sw, err = r.msg(ctx, apdu(u2fAuthenticate, u2fEnforcePresence, body(other[:])))
	cancel()
	if err != nil {
		return errOutcome("AUTHENTICATE for another application", err)
	}
	r.note("AUTHENTICATE for another application: status %04x", sw)
	if sw != swWrongData {
		return failf("AUTHENTICATE with the handle for another application: want 6a80, got %04x", sw)
	}
	data, sw, err := r.msgTouch(apdu(u2fAuthenticate, u2fEnforcePresence, body(k.app)), "U2F authentication")
	if err != nil {
		return errOutcome("AUTHENTICATE", err)
	}
	if sw != swNoError || len(data) < 5 {
		return failf("AUTHENTICATE answered status %04x with %d bytes", sw, len(data))
	}
	msg := append(append([]byte(nil), k.app...), data[:5]...)
	msg = append(msg, challenge[:]...)
	if err := ctap2.VerifySignature(k.pub, ctap2.AlgES256, msg, data[5:]); err != nil {
		return failf("AUTHENTICATE signature: %v", err)
	}
	r.note("AUTHENTICATE: user presence %#02x, counter %d, signature verified", data[0], binary.BigEndian.Uint32(data[1:5]))
	if data[0]&1 == 0 {
		return failf("AUTHENTICATE with enforce-user-presence lacks the user presence bit")
	}
	return pass()
}
