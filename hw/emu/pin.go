package emu

import (
	"crypto/ecdh"
	"crypto/subtle"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/mfad/mfad/hw/ctap2"
)

// newToken replaces the pinUvAuthToken and drops its permissions
// (CTAP 2.1 §6.5.5.1 resetPinUvAuthToken). Called with a.mu held.
func (a *Authenticator) newToken() error {
	tok := make([]byte, 32)
	if _, err := io.ReadFull(a.rnd, tok); err != nil {
		return fmt.Errorf("emu: pinUvAuthToken: %w", err)
	}
	a.token, a.tokenPerms, a.tokenRPID = tok, 0, ""
	return nil
}

// verifyToken checks the pinUvAuthParam of MakeCredential or GetAssertion:
// authenticate(token, clientDataHash), the permission needed, and the
// token's RP ID, which the first use binds (CTAP 2.1 §6.1.2 step 11,
// §6.2.2 step 6).
func (a *Authenticator) verifyToken(proto ctap2.PINProtocol, param, cdh []byte, perm ctap2.Permission, rpID string) error {
	if a.tokenPerms == 0 {
		return ctap2.ErrPINAuthInvalid
	}
	if err := proto.Verify(a.token, cdh, param); err != nil {
		return ctap2.ErrPINAuthInvalid
	}
	if a.tokenPerms&perm == 0 {
		return ctap2.ErrPINAuthInvalid
	}
	if a.tokenRPID != "" && a.tokenRPID != rpID {
		return ctap2.ErrPINAuthInvalid
	}
	a.tokenRPID = rpID
	return nil
}

// clientPIN is authenticatorClientPIN (CTAP 2.1 §6.5.5).
func (a *Authenticator) clientPIN(r *ctap2.ClientPINRequest) (any, error) {
	if r.SubCommand == ctap2.PINGetRetries {
		n := uint64(a.st.PINRetries)
		blocked := a.pinFails >= PINAttemptsPerPowerCycle
		return &ctap2.ClientPINResponse{PINRetries: &n, PowerCycleState: &blocked}, nil
	}
	switch r.SubCommand {
	case ctap2.PINGetKeyAgreement, ctap2.PINSet, ctap2.PINChange, ctap2.PINGetToken, ctap2.PINGetTokenUsingPinWithPermissions:
	default:
		return nil, ctap2.ErrInvalidSubcommand
	}
	proto, err := a.pinProtocol(r.PinUvAuthProtocol)
	if err != nil {
		return nil, err
	}
	switch r.SubCommand {
	case ctap2.PINGetKeyAgreement:
		k, err := ctap2.NewKeyAgreementKey(a.keyAgree.PublicKey())
		if err != nil {
			return nil, err
		}
		return &ctap2.ClientPINResponse{KeyAgreement: k}, nil
	case ctap2.PINSet:
		return nil, a.setPIN(proto, r)
	case ctap2.PINChange:
		return nil, a.changePIN(proto, r)
	}
	return a.getToken(proto, r)
}

// shared decapsulates the platform's key agreement key.
func (a *Authenticator) shared(proto ctap2.PINProtocol, platformKey *ctap2.COSEKey) ([]byte, error) {
	peer, err := platformKey.ECDHPublicKey()
	if err != nil {
		return nil, ctap2.ErrInvalidParameter
	}
	s, err := proto.SharedSecret(a.keyAgree, peer)
	if err != nil {
		return nil, ctap2.ErrInvalidParameter
	}
	return s, nil
}

// newPIN decrypts and checks a newPinEnc.
func newPIN(proto ctap2.PINProtocol, shared, newPINEnc []byte) ([]byte, error) {
	pin, err := ctap2.DecryptNewPIN(proto, shared, newPINEnc)
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(pin) || utf8.RuneCount(pin) < MinPINLength {
		return nil, ctap2.ErrPINPolicyViolation
	}
	return pin, nil
}

func (a *Authenticator) setPIN(proto ctap2.PINProtocol, r *ctap2.ClientPINRequest) error {
	if r.KeyAgreement == nil || r.PinUvAuthParam == nil || r.NewPINEnc == nil {
		return ctap2.ErrMissingParameter
	}
	if a.st.PINHash != nil {
		return ctap2.ErrNotAllowed
	}
	shared, err := a.shared(proto, r.KeyAgreement)
	if err != nil {
		return err
	}
	if err := proto.Verify(shared, r.NewPINEnc, r.PinUvAuthParam); err != nil {
		return ctap2.ErrPINAuthInvalid
	}
	pin, err := newPIN(proto, shared, r.NewPINEnc)
	if err != nil {
		return err
	}
	a.st.PINHash = ctap2.PINHash(pin)
	a.st.PINRetries = MaxPINRetries
	return a.save()
}

func (a *Authenticator) changePIN(proto ctap2.PINProtocol, r *ctap2.ClientPINRequest) error {
	if r.KeyAgreement == nil || r.PinUvAuthParam == nil || r.NewPINEnc == nil || r.PINHashEnc == nil {
		return ctap2.ErrMissingParameter
	}
	if a.st.PINHash == nil {
		return ctap2.ErrPINNotSet
	}
	if a.st.PINRetries <= 0 {
		return ctap2.ErrPINBlocked
	}
	shared, err := a.shared(proto, r.KeyAgreement)
	if err != nil {
		return err
	}
	msg := append(append([]byte(nil), r.NewPINEnc...), r.PINHashEnc...)
	if err := proto.Verify(shared, msg, r.PinUvAuthParam); err != nil {
		return ctap2.ErrPINAuthInvalid
	}
	if err := a.checkPINHash(proto, shared, r.PINHashEnc); err != nil {
		return err
	}
	pin, err := newPIN(proto, shared, r.NewPINEnc)
	if err != nil {
		return err
	}
	a.st.PINHash = ctap2.PINHash(pin)
	if err := a.newToken(); err != nil {
		return err
	}
	return a.save()
}

func (a *Authenticator) getToken(proto ctap2.PINProtocol, r *ctap2.ClientPINRequest) (any, error) {
	if r.KeyAgreement == nil || r.PINHashEnc == nil {
		return nil, ctap2.ErrMissingParameter
	}
	perms := ctap2.PermMakeCredential | ctap2.PermGetAssertion
	if r.SubCommand == ctap2.PINGetToken {
		if r.Permissions != nil || r.RPID != "" {
			return nil, ctap2.ErrInvalidParameter
		}
	} else {
		// CTAP 2.1 §6.5.5.7.2: permissions is mandatory (step 1,
		// CTAP2_ERR_MISSING_PARAMETER when absent) and not 0 (step 3,
		// CTAP1_ERR_INVALID_PARAMETER).
		switch {
		case r.Permissions == nil:
			return nil, ctap2.ErrMissingParameter
		case *r.Permissions == 0:
			return nil, ctap2.ErrInvalidParameter
		case *r.Permissions&^(ctap2.PermMakeCredential|ctap2.PermGetAssertion|ctap2.PermCredentialManagement) != 0:
			return nil, ctap2.ErrUnauthorizedPermission
		}
		perms = *r.Permissions
	}
	if a.st.PINHash == nil {
		return nil, ctap2.ErrPINNotSet
	}
	if a.st.PINRetries <= 0 {
		return nil, ctap2.ErrPINBlocked
	}
	shared, err := a.shared(proto, r.KeyAgreement)
	if err != nil {
		return nil, err
	}
	if err := a.checkPINHash(proto, shared, r.PINHashEnc); err != nil {
		return nil, err
	}
	if err := a.newToken(); err != nil {
		return nil, err
	}
	a.tokenPerms, a.tokenRPID = perms, r.RPID
	enc, err := proto.Encrypt(shared, a.token)
	if err != nil {
		return nil, err
	}
	return &ctap2.ClientPINResponse{PinUvAuthToken: enc}, nil
}

// checkPINHash compares a pinHashEnc with the stored PIN hash, counting
// the attempt (CTAP 2.1 §6.5.5.5.1): one retry is spent before the
// comparison and given back on success; three wrong PINs in a power cycle
// block PIN entry until the next one; no retries left blocks the PIN.
func (a *Authenticator) checkPINHash(proto ctap2.PINProtocol, shared, pinHashEnc []byte) error {
	if a.pinFails >= PINAttemptsPerPowerCycle {
		return ctap2.ErrPINAuthBlocked
	}
	a.st.PINRetries--
	if err := a.save(); err != nil {
		return err
	}
	h, err := ctap2.DecryptPINHash(proto, shared, pinHashEnc)
	if err != nil || subtle.ConstantTimeCompare(h, a.st.PINHash) != 1 {
		if err := a.powerCycleKeyAgreement(); err != nil {
			return err
		}
		a.pinFails++
		switch {
		case a.st.PINRetries <= 0:
			return ctap2.ErrPINBlocked
		case a.pinFails >= PINAttemptsPerPowerCycle:
			return ctap2.ErrPINAuthBlocked
		}
		return ctap2.ErrPINInvalid
	}
	a.pinFails = 0
	a.st.PINRetries = MaxPINRetries
	return a.save()
}

// powerCycleKeyAgreement replaces the key agreement key after a wrong PIN
// (CTAP 2.1 §6.5.5.5.1 "regenerate").
func (a *Authenticator) powerCycleKeyAgreement() error {
	k, err := ecdh.P256().GenerateKey(a.rnd)
	if err != nil {
		return err
	}
	a.keyAgree = k
	return nil
}
