package fidokey

import (
	"context"
	"fmt"

	"github.com/mfad/mfad/hw/ctap2"
)

// protocol picks the PIN/UV auth protocol: two when the key lists it, else
// one (CTAP 2.1 §6.5.4: the platform uses the first supported in the key's
// order of preference, and every key that lists none supports one).
func (k *Key) protocol() ctap2.PINProtocol {
	info := k.Info()
	if info.SupportsPinUvAuthProtocol(2) {
		return ctap2.ProtocolTwo{}
	}
	return ctap2.ProtocolOne{}
}

// keyAgreement runs getKeyAgreement.
func (k *Key) keyAgreement(ctx context.Context, proto ctap2.PINProtocol) (*ctap2.COSEKey, error) {
	var resp ctap2.ClientPINResponse
	req := &ctap2.ClientPINRequest{PinUvAuthProtocol: proto.Version(), SubCommand: ctap2.PINGetKeyAgreement}
	if err := k.call(ctx, ctap2.CmdClientPIN, req, &resp, nil); err != nil {
		return nil, err
	}
	if resp.KeyAgreement == nil {
		return nil, fmt.Errorf("fidokey: %s: %w: getKeyAgreement without keyAgreement", k.dev.Path, ctap2.ErrMalformed)
	}
	return resp.KeyAgreement, nil
}

// pinToken obtains a pinUvAuthToken with the PIN: on a CTAP 2.1 key that
// supports pinUvAuthToken, getPinUvAuthTokenUsingPinWithPermissions with
// perms bound to rpID; otherwise getPinToken.
func (k *Key) pinToken(ctx context.Context, pin string, perms ctap2.Permission, rpID string) (ctap2.PINProtocol, []byte, error) {
	proto := k.protocol()
	ka, err := k.keyAgreement(ctx, proto)
	if err != nil {
		return nil, nil, err
	}
	if v, _ := k.Info().Option(ctap2.OptionPinUvAuthToken); !v || !k.supportsFIDO21() {
		perms, rpID = 0, ""
	}
	req, shared, err := ctap2.GetPINTokenRequest(proto, ka, pin, perms, rpID)
	if err != nil {
		return nil, nil, fmt.Errorf("fidokey: %s: %w", k.dev.Path, err)
	}
	var resp ctap2.ClientPINResponse
	if err := k.call(ctx, ctap2.CmdClientPIN, req, &resp, nil); err != nil {
		return nil, nil, err
	}
	token, err := ctap2.DecryptPinUvAuthToken(proto, shared, resp.PinUvAuthToken)
	if err != nil {
		return nil, nil, fmt.Errorf("fidokey: %s: %w", k.dev.Path, err)
	}
	return proto, token, nil
}

// KeyAgreement runs getKeyAgreement with the PIN/UV auth protocol the key
// is spoken to with, and returns both, for extensions that encrypt with
// the shared secret (hmac-secret, CTAP 2.1 §12.5).
func (k *Key) KeyAgreement(ctx context.Context) (ctap2.PINProtocol, *ctap2.COSEKey, error) {
	proto := k.protocol()
	ka, err := k.keyAgreement(ctx, proto)
	return proto, ka, err
}

// PINToken obtains a pinUvAuthToken with the PIN, as MakeCredential and
// GetAssertion do (permissions and RP ID are used only on keys that take
// them), and returns it with the PIN/UV auth protocol it belongs to, for
// requests built by the caller (pinUvAuthParam = ctap2.PinUvAuthParam).
func (k *Key) PINToken(ctx context.Context, pin string, perms ctap2.Permission, rpID string) (ctap2.PINProtocol, []byte, error) {
	return k.pinToken(ctx, pin, perms, rpID)
}

// PINRetries returns how many PIN attempts are left (getPINRetries) and
// whether the key wants a power cycle before the next one (powerCycleState,
// CTAP 2.1; false when the key does not say).
func (k *Key) PINRetries(ctx context.Context) (retries int, powerCycle bool, err error) {
	var resp ctap2.ClientPINResponse
	req := &ctap2.ClientPINRequest{PinUvAuthProtocol: k.protocol().Version(), SubCommand: ctap2.PINGetRetries}
	if err := k.call(ctx, ctap2.CmdClientPIN, req, &resp, nil); err != nil {
		return 0, false, err
	}
	if resp.PINRetries == nil {
		return 0, false, fmt.Errorf("fidokey: %s: %w: getPINRetries without pinRetries", k.dev.Path, ctap2.ErrMalformed)
	}
	if resp.PowerCycleState != nil {
		powerCycle = *resp.PowerCycleState
	}
	return int(*resp.PINRetries), powerCycle, nil
}

// SetPIN sets the first PIN (setPIN). A key that has one answers
// CTAP2_ERR_NOT_ALLOWED.
func (k *Key) SetPIN(ctx context.Context, pin string) error {
	proto := k.protocol()
	ka, err := k.keyAgreement(ctx, proto)
	if err != nil {
		return err
	}
	req, err := ctap2.SetPINRequest(proto, ka, pin)
	if err != nil {
		return fmt.Errorf("fidokey: %s: %w", k.dev.Path, err)
	}
	if err := k.call(ctx, ctap2.CmdClientPIN, req, nil, nil); err != nil {
		return err
	}
	return k.RefreshInfo(ctx)
}

// ChangePIN replaces the PIN (changePIN); a wrong current PIN gives
// CTAP2_ERR_PIN_INVALID, then PIN_AUTH_BLOCKED or PIN_BLOCKED.
func (k *Key) ChangePIN(ctx context.Context, current, newPIN string) error {
	proto := k.protocol()
	ka, err := k.keyAgreement(ctx, proto)
	if err != nil {
		return err
	}
	req, err := ctap2.ChangePINRequest(proto, ka, current, newPIN)
	if err != nil {
		return fmt.Errorf("fidokey: %s: %w", k.dev.Path, err)
	}
	return k.call(ctx, ctap2.CmdClientPIN, req, nil, nil)
}
