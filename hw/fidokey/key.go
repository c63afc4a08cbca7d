package fidokey

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/mfad/mfad/hw/ctap2"
	"github.com/mfad/mfad/hw/ctaphid"
)

// DeviceInfo describes where a key is and what the driver knows of it.
type DeviceInfo struct {
	// Path identifies the device: a /dev/hidraw path, a platform path, or
	// "emu:<id>" for an emulator.
	Path string
	// VendorID and ProductID are the USB ids, zero when unknown.
	VendorID, ProductID uint16
	// Manufacturer, Product and Serial are the USB strings, when known.
	Manufacturer, Product, Serial string
}

// Key is an open security key. Its methods are safe for concurrent use;
// the CTAPHID channel runs one transaction at a time.
type Key struct {
	conn ctaphid.Conn
	ch   *ctaphid.Channel
	dev  DeviceInfo

	mu   sync.Mutex
	info *ctap2.GetInfoResponse
}

// Open allocates a CTAPHID channel on conn (CTAPHID_INIT) and reads the
// key's GetInfo, which Info then returns. The key must speak CTAP2.
func Open(ctx context.Context, conn ctaphid.Conn, dev DeviceInfo) (*Key, error) {
	ch, err := ctaphid.Open(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("fidokey: open %s: %w", dev.Path, err)
	}
	if !ch.Capabilities().Has(ctaphid.CapCBOR) {
		return nil, fmt.Errorf("fidokey: open %s: %w", dev.Path, ErrNotCTAP2)
	}
	k := &Key{conn: conn, ch: ch, dev: dev}
	var info ctap2.GetInfoResponse
	if err := ctap2.Call(ctx, ch, ctap2.CmdGetInfo, nil, &info, nil); err != nil {
		return nil, fmt.Errorf("fidokey: open %s: %w", dev.Path, err)
	}
	k.info = &info
	return k, nil
}

// ErrNotCTAP2 is returned by Open for a U2F-only key.
var ErrNotCTAP2 = errors.New("fidokey: device does not implement CTAP2 (CTAPHID_CBOR)")

// Info is the last GetInfo response (read by Open and RefreshInfo). Do not
// modify it.
func (k *Key) Info() *ctap2.GetInfoResponse {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.info
}

// Device is what Open was told about the device.
func (k *Key) Device() DeviceInfo { return k.dev }

// Channel is the key's CTAPHID channel, for CTAPHID commands not wrapped
// here (PING, LOCK, MSG).
func (k *Key) Channel() *ctaphid.Channel { return k.ch }

// Close closes the connection when it is an io.Closer.
func (k *Key) Close() error {
	if c, ok := k.conn.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// call runs one CTAP2 command, wrapping errors with the key's path.
func (k *Key) call(ctx context.Context, cmd ctap2.Command, params, result any, onKeepalive func(byte)) error {
	if err := ctap2.Call(ctx, k.ch, cmd, params, result, onKeepalive); err != nil {
		return fmt.Errorf("fidokey: %s: %w", k.dev.Path, err)
	}
	return nil
}

// MakeCredentialParams are the inputs of MakeCredential.
type MakeCredentialParams struct {
	ClientDataHash []byte
	RP             ctap2.RPEntity
	User           ctap2.UserEntity
	// Algorithms in order of preference; empty means ES256 then EdDSA.
	Algorithms []ctap2.COSEAlgorithm
	// ExcludeList holds credential ids already registered for the user.
	ExcludeList [][]byte
	// ResidentKey asks for a discoverable credential (rk).
	ResidentKey bool
	// UV asks for built-in user verification (the uv option) when no PIN
	// is given.
	UV bool
	// PIN, when set, obtains a pinUvAuthToken (permission mc, bound to
	// RP.ID) and sends pinUvAuthParam.
	PIN string
	// OnKeepalive receives the KEEPALIVE status bytes (1 processing,
	// 2 user presence needed), may be nil.
	OnKeepalive func(status byte)
}

// MakeCredential creates a credential (authenticatorMakeCredential, CTAP
// 2.1 §6.1) and returns the attestation object.
func (k *Key) MakeCredential(ctx context.Context, p MakeCredentialParams) (*ctap2.MakeCredentialResponse, error) {
	algs := p.Algorithms
	if len(algs) == 0 {
		algs = []ctap2.COSEAlgorithm{ctap2.AlgES256, ctap2.AlgEdDSA}
	}
	rp, user := p.RP, p.User
	req := &ctap2.MakeCredentialRequest{ClientDataHash: p.ClientDataHash, RP: &rp, User: &user}
	for _, a := range algs {
		req.PubKeyCredParams = append(req.PubKeyCredParams, ctap2.CredentialParameter{Type: ctap2.CredentialTypePublicKey, Alg: a})
	}
	for _, id := range p.ExcludeList {
		req.ExcludeList = append(req.ExcludeList, ctap2.CredentialDescriptor{Type: ctap2.CredentialTypePublicKey, ID: id})
	}
	opts := map[string]bool{}
	if p.ResidentKey {
		opts[ctap2.OptionResidentKey] = true
	}
	if p.PIN != "" {
		proto, token, err := k.pinToken(ctx, p.PIN, ctap2.PermMakeCredential, p.RP.ID)
		if err != nil {
			return nil, err
		}
		req.PinUvAuthParam = ctap2.PinUvAuthParam(proto, token, p.ClientDataHash)
		req.PinUvAuthProtocol = proto.Version()
	} else if p.UV {
		opts[ctap2.OptionUserVerification] = true
	}
	if len(opts) > 0 {
		req.Options = opts
	}
	var resp ctap2.MakeCredentialResponse
	if err := k.call(ctx, ctap2.CmdMakeCredential, req, &resp, p.OnKeepalive); err != nil {
		return nil, err
	}
	return &resp, nil
}

// GetAssertionParams are the inputs of GetAssertion.
type GetAssertionParams struct {
	RPID           string
	ClientDataHash []byte
	// AllowList holds the credential ids the relying party accepts; empty
	// asks for the key's discoverable credentials of RPID.
	AllowList [][]byte
	// UP asks for user presence (a touch). False sends up=false, a silent
	// assertion (used to probe which credentials a key holds).
	UP bool
	// UV asks for built-in user verification when no PIN is given.
	UV bool
	// PIN, when set, obtains a pinUvAuthToken (permission ga, bound to
	// RPID) and sends pinUvAuthParam.
	PIN string
	// OnKeepalive receives the KEEPALIVE status bytes, may be nil.
	OnKeepalive func(status byte)
}

// GetAssertion signs with the key's credentials for RPID
// (authenticatorGetAssertion, CTAP 2.1 §6.2) and, when the key reports
// more than one, fetches the others with GetNextAssertion (§6.3). Every
// returned assertion names its credential (filled in from the allow list
// when the key left it out).
func (k *Key) GetAssertion(ctx context.Context, p GetAssertionParams) ([]*ctap2.GetAssertionResponse, error) {
	req := &ctap2.GetAssertionRequest{RPID: p.RPID, ClientDataHash: p.ClientDataHash}
	for _, id := range p.AllowList {
		req.AllowList = append(req.AllowList, ctap2.CredentialDescriptor{Type: ctap2.CredentialTypePublicKey, ID: id})
	}
	opts := map[string]bool{}
	if !p.UP {
		opts[ctap2.OptionUserPresence] = false
	}
	if p.PIN != "" {
		proto, token, err := k.pinToken(ctx, p.PIN, ctap2.PermGetAssertion, p.RPID)
		if err != nil {
			return nil, err
		}
		req.PinUvAuthParam = ctap2.PinUvAuthParam(proto, token, p.ClientDataHash)
		req.PinUvAuthProtocol = proto.Version()
	} else if p.UV {
		opts[ctap2.OptionUserVerification] = true
	}
	if len(opts) > 0 {
		req.Options = opts
	}
	var first ctap2.GetAssertionResponse
	if err := k.call(ctx, ctap2.CmdGetAssertion, req, &first, p.OnKeepalive); err != nil {
		return nil, err
	}
	if first.Credential == nil {
		if len(p.AllowList) != 1 {
			return nil, fmt.Errorf("fidokey: %s: %w: assertion without credential", k.dev.Path, ctap2.ErrMalformed)
		}
		first.Credential = &ctap2.CredentialDescriptor{Type: ctap2.CredentialTypePublicKey, ID: p.AllowList[0]}
	}
	out := []*ctap2.GetAssertionResponse{&first}
	n := min(first.NumberOfCredentials, uint64(maxAssertions))
	for i := uint64(1); i < n; i++ {
		var next ctap2.GetAssertionResponse
		if err := k.call(ctx, ctap2.CmdGetNextAssertion, nil, &next, p.OnKeepalive); err != nil {
			return nil, err
		}
		if next.Credential == nil {
			return nil, fmt.Errorf("fidokey: %s: %w: next assertion without credential", k.dev.Path, ctap2.ErrMalformed)
		}
		out = append(out, &next)
	}
	return out, nil
}

// maxAssertions bounds the GetNextAssertion loop against a key that
// announces an absurd numberOfCredentials.
const maxAssertions = 256

// Wink asks the key to show itself (CTAPHID_WINK).
func (k *Key) Wink(ctx context.Context) error {
	if err := k.ch.Wink(ctx); err != nil {
		return fmt.Errorf("fidokey: %s: wink: %w", k.dev.Path, err)
	}
	return nil
}

// Selection waits for the user to touch the key
// (authenticatorSelection, CTAP 2.1 §6.9).
func (k *Key) Selection(ctx context.Context, onKeepalive func(status byte)) error {
	return k.call(ctx, ctap2.CmdSelection, nil, nil, onKeepalive)
}

// Reset erases the key's credentials and PIN (authenticatorReset, CTAP 2.1
// §6.6). Keys allow it only within seconds of being plugged in, and with a
// touch; otherwise the error wraps ctap2.ErrNotAllowed.
func (k *Key) Reset(ctx context.Context, onKeepalive func(status byte)) error {
	if err := k.call(ctx, ctap2.CmdReset, nil, nil, onKeepalive); err != nil {
		return err
	}
	return k.RefreshInfo(ctx)
}

// RefreshInfo reads GetInfo again (its clientPin option changes with
// SetPIN and Reset, which call it themselves).
func (k *Key) RefreshInfo(ctx context.Context) error {
	var info ctap2.GetInfoResponse
	if err := k.call(ctx, ctap2.CmdGetInfo, nil, &info, nil); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.info = &info
	return nil
}

// supportsFIDO21 reports whether the key lists FIDO_2_1 (or its
// pre-release) in GetInfo versions.
func (k *Key) supportsFIDO21() bool {
	info := k.Info()
	return slices.Contains(info.Versions, ctap2.VersionFIDO21) || slices.Contains(info.Versions, ctap2.VersionFIDO21PRE)
}
