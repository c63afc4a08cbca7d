package emu

import (
	"context"
	"encoding/binary"

	"github.com/mfad/mfad/hw/ctap2"
)

// U2F instructions and status words (FIDO U2F Raw Message Formats v1.2,
// §3 and §3.3; ISO 7816-4 status words).
const (
	u2fRegister     = 0x01
	u2fAuthenticate = 0x02
	u2fVersion      = 0x03

	u2fCheckOnly           = 0x07 // AUTHENTICATE P1: check only
	u2fEnforcePresence     = 0x03 // AUTHENTICATE P1: enforce user presence and sign
	u2fDontEnforcePresence = 0x08 // AUTHENTICATE P1: sign without user presence

	SWNoError                = 0x9000
	SWConditionsNotSatisfied = 0x6985
	SWWrongData              = 0x6A80
	SWWrongLength            = 0x6700
	SWClaNotSupported        = 0x6E00
	SWInsNotSupported        = 0x6D00
	SWIncorrectP1P2          = 0x6A86
)

func sw(data []byte, word uint16) []byte {
	return binary.BigEndian.AppendUint16(data, word)
}

// parseAPDU reads a command APDU in short or extended encoding (ISO
// 7816-4 §5.1; U2F uses extended lengths): it returns CLA, INS, P1, P2
// and the data.
func parseAPDU(b []byte) (cla, ins, p1, p2 byte, data []byte, ok bool) {
	if len(b) < 4 {
		return 0, 0, 0, 0, nil, false
	}
	cla, ins, p1, p2 = b[0], b[1], b[2], b[3]
	rest := b[4:]
	switch {
	case len(rest) == 0: // case 1
		return cla, ins, p1, p2, nil, true
	case rest[0] == 0 && len(rest) >= 3: // extended
		if len(rest) == 3 { // case 2E: Le only
			return cla, ins, p1, p2, nil, true
		}
		n := int(binary.BigEndian.Uint16(rest[1:3]))
		body := rest[3:]
		if n == 0 || len(body) < n {
			return 0, 0, 0, 0, nil, false
		}
		// Le (2 bytes) may follow
		if extra := len(body) - n; extra != 0 && extra != 2 {
			return 0, 0, 0, 0, nil, false
		}
		return cla, ins, p1, p2, body[:n], true
	case len(rest) == 1: // case 2S: Le only
		return cla, ins, p1, p2, nil, true
	default: // short Lc
		n := int(rest[0])
		body := rest[1:]
		if n == 0 || len(body) < n {
			return 0, 0, 0, 0, nil, false
		}
		if extra := len(body) - n; extra > 1 {
			return 0, 0, 0, 0, nil, false
		}
		return cla, ins, p1, p2, body[:n], true
	}
}

// Msg implements ctaphid.Handler: it answers one U2F request APDU. In
// manual presence mode REGISTER and AUTHENTICATE wait for Touch like CTAP2
// requests do (instead of answering SW_CONDITIONS_NOT_SATISFIED for the
// host to poll); a timeout or cancellation answers
// SW_CONDITIONS_NOT_SATISFIED.
func (a *Authenticator) Msg(ctx context.Context, apdu []byte) []byte {
	a.req.Lock()
	defer a.req.Unlock()
	cla, ins, p1, _, data, ok := parseAPDU(apdu)
	if !ok {
		return sw(nil, SWWrongLength)
	}
	if cla != 0 {
		return sw(nil, SWClaNotSupported)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.next = nil
	switch ins {
	case u2fVersion:
		if len(data) != 0 {
			return sw(nil, SWWrongLength)
		}
		return sw([]byte(ctap2.VersionU2F), SWNoError)
	case u2fRegister:
		return a.u2fRegister(ctx, data)
	case u2fAuthenticate:
		return a.u2fAuthenticate(ctx, p1, data)
	}
	return sw(nil, SWInsNotSupported)
}

// u2fRegister answers REGISTER (U2F Raw Message Formats §4.3):
// 0x05 || public key || key handle length || key handle || attestation
// certificate || signature over 0x00 || application || challenge || key
// handle || public key.
func (a *Authenticator) u2fRegister(ctx context.Context, data []byte) []byte {
	if len(data) != 64 {
		return sw(nil, SWWrongLength)
	}
	challenge, app := data[:32], data[32:]
	if err := a.presenceLocked(ctx, nil); err != nil {
		return sw(nil, SWConditionsNotSatisfied)
	}
	key, err := newCredKey(ctap2.AlgES256, a.rnd)
	if err != nil {
		return sw(nil, SWConditionsNotSatisfied)
	}
	handle, err := wrap(a.st.WrapKey, a.rnd, key, app, 0)
	if err != nil {
		return sw(nil, SWConditionsNotSatisfied)
	}
	pub, err := key.ec.PublicKey.Bytes() // uncompressed point, 65 bytes
	if err != nil {
		return sw(nil, SWConditionsNotSatisfied)
	}
	msg := make([]byte, 0, 1+32+32+len(handle)+65)
	msg = append(msg, 0x00)
	msg = append(msg, app...)
	msg = append(msg, challenge...)
	msg = append(msg, handle...)
	msg = append(msg, pub...)
	sig, err := signES256(a.rnd, a.batchKey, msg)
	if err != nil {
		return sw(nil, SWConditionsNotSatisfied)
	}
	out := []byte{0x05}
	out = append(out, pub...)
	out = append(out, byte(len(handle)))
	out = append(out, handle...)
	out = append(out, a.batchCert.Raw...)
	out = append(out, sig...)
	return sw(out, SWNoError)
}

// u2fAuthenticate answers AUTHENTICATE (U2F Raw Message Formats §5):
// user presence || counter || signature over application || user presence
// || counter || challenge.
func (a *Authenticator) u2fAuthenticate(ctx context.Context, p1 byte, data []byte) []byte {
	if len(data) < 65 || len(data) != 65+int(data[64]) {
		return sw(nil, SWWrongLength)
	}
	challenge, app, handle := data[:32], data[32:64], data[65:]
	key, _, err := unwrap(a.st.WrapKey, handle, app)
	if err != nil || key.ec == nil {
		return sw(nil, SWWrongData)
	}
	var flags byte
	switch p1 {
	case u2fCheckOnly:
		return sw(nil, SWConditionsNotSatisfied)
	case u2fEnforcePresence:
		if err := a.presenceLocked(ctx, nil); err != nil {
			return sw(nil, SWConditionsNotSatisfied)
		}
		flags = 0x01
	case u2fDontEnforcePresence:
	default:
		return sw(nil, SWIncorrectP1P2)
	}
	a.st.Counter++
	var ctr [4]byte
	binary.BigEndian.PutUint32(ctr[:], a.st.Counter)
	msg := make([]byte, 0, 32+1+4+32)
	msg = append(msg, app...)
	msg = append(msg, flags)
	msg = append(msg, ctr[:]...)
	msg = append(msg, challenge...)
	sig, err := key.sign(a.rnd, msg)
	if err != nil {
		return sw(nil, SWConditionsNotSatisfied)
	}
	if err := a.save(); err != nil {
		return sw(nil, SWConditionsNotSatisfied)
	}
	out := append([]byte{flags}, ctr[:]...)
	return sw(append(out, sig...), SWNoError)
}
