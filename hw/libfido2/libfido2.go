//go:build cgo

package libfido2

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	fido2 "github.com/keys-pub/go-libfido2"

	"github.com/mfad/mfad/hw/ctap2"
	"github.com/mfad/mfad/hw/hidraw"
)

// List returns the FIDO devices libfido2 finds (it enumerates hidraw
// through libudev on Linux, and keeps only bus USB devices). The serial
// number, which libfido2 does not report, comes from hw/hidraw when the
// paths match.
func List() ([]hidraw.Device, error) {
	callMu.Lock()
	locs, err := fido2.DeviceLocations()
	callMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("libfido2: list: %w", err)
	}
	serials := map[string]string{}
	if hs, err := hidraw.Enumerate(""); err == nil {
		for _, h := range hs {
			serials[h.Path] = h.Serial
		}
	}
	devs := make([]hidraw.Device, 0, len(locs))
	for _, l := range locs {
		devs = append(devs, hidraw.Device{
			Path:         l.Path,
			VendorID:     uint16(l.VendorID),
			ProductID:    uint16(l.ProductID),
			Manufacturer: l.Manufacturer,
			Product:      l.Product,
			Serial:       serials[l.Path],
			Bus:          "usb",
		})
	}
	sort.Slice(devs, func(i, j int) bool { return devs[i].Path < devs[j].Path })
	return devs, nil
}

// callMu serialises enumeration, which libfido2 does not make thread-safe.
var callMu sync.Mutex

// Device is a key reached through libfido2. libfido2 opens the device for
// each call and closes it afterwards. Its methods are safe for concurrent
// use; they run one at a time.
type Device struct {
	path string

	mu  sync.Mutex // held around every call into go-libfido2, Cancel's included
	dev *fido2.Device
}

// Open returns the device at path (a /dev/hidraw node on Linux). Nothing is
// sent to it yet.
func Open(path string) (*Device, error) {
	d, err := fido2.NewDevice(path)
	if err != nil {
		return nil, fmt.Errorf("libfido2: %w", err)
	}
	return &Device{path: path, dev: d}, nil
}

// Path is the device's path.
func (d *Device) Path() string { return d.path }

// call runs f under the device mutex. When ctx ends first, call returns its
// error at once; f goes on in the background until libfido2 returns (see
// the package comment on cancellation).
func call[T any](ctx context.Context, d *Device, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	done := make(chan result, 1)
	go func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		v, err := f()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, translate(r.err)
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// Cancel asks libfido2 to cancel the device's request in progress. It
// takes the device mutex, so it waits for a call in progress to end (go-
// libfido2 cannot cancel one without a data race): it is safe, and cancels
// nothing that is still running.
func (d *Device) Cancel() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return translate(d.dev.Cancel())
}

// Info reads authenticatorGetInfo, in the native stack's type. See the
// package comment for the members libfido2 does not pass on.
func (d *Device) Info(ctx context.Context) (*ctap2.GetInfoResponse, error) {
	info, err := call(ctx, d, d.dev.Info)
	if err != nil {
		return nil, fmt.Errorf("libfido2: info %s: %w", d.path, err)
	}
	return convertInfo(info), nil
}

func convertInfo(info *fido2.DeviceInfo) *ctap2.GetInfoResponse {
	r := &ctap2.GetInfoResponse{
		Versions:   append([]string(nil), info.Versions...),
		Extensions: append([]string(nil), info.Extensions...),
		AAGUID:     append([]byte(nil), info.AAGUID...),
	}
	if len(info.Options) > 0 {
		r.Options = make(map[string]bool, len(info.Options))
		for _, o := range info.Options {
			r.Options[o.Name] = o.Value == fido2.True
		}
	}
	for _, p := range info.Protocols {
		r.PinUvAuthProtocols = append(r.PinUvAuthProtocols, uint64(p))
	}
	return r
}

// MakeCredential creates a credential and returns the attestation object
// rebuilt from libfido2's pieces (RebuildAttestation).
func (d *Device) MakeCredential(ctx context.Context, p MakeCredentialParams) (*ctap2.MakeCredentialResponse, error) {
	alg := p.Algorithm
	if alg == 0 {
		alg = ctap2.AlgES256
	}
	opts := &fido2.MakeCredentialOpts{}
	if p.ResidentKey {
		opts.RK = fido2.True
	}
	if p.UV {
		opts.UV = fido2.True
	}
	user := fido2.User{ID: p.User.ID, Name: p.User.Name, DisplayName: p.User.DisplayName}
	if user.Name == "" {
		user.Name = "-" // go-libfido2 refuses an empty name
	}
	att, err := call(ctx, d, func() (*fido2.Attestation, error) {
		return d.dev.MakeCredential(p.ClientDataHash, fido2.RelyingParty{ID: p.RP.ID, Name: p.RP.Name}, user,
			fido2.CredentialType(alg), p.PIN, opts)
	})
	if err != nil {
		return nil, fmt.Errorf("libfido2: make credential %s: %w", d.path, err)
	}
	return RebuildAttestation(Pieces{
		Format: att.Format, AuthData: att.AuthData, Sig: att.Sig, Cert: att.Cert,
		CredentialAlg: ctap2.COSEAlgorithm(att.CredentialType),
	})
}

// GetAssertion signs with a credential of RPID. libfido2 returns the first
// assertion only; its authenticator data is unwrapped from libfido2's CBOR
// byte string so that the response reads like the native stack's.
func (d *Device) GetAssertion(ctx context.Context, p GetAssertionParams) (*ctap2.GetAssertionResponse, error) {
	opts := &fido2.AssertionOpts{UP: fido2.False}
	if p.UP {
		opts.UP = fido2.True
	}
	if p.UV {
		opts.UV = fido2.True
	}
	a, err := call(ctx, d, func() (*fido2.Assertion, error) {
		return d.dev.Assertion(p.RPID, p.ClientDataHash, p.AllowList, p.PIN, opts)
	})
	if err != nil {
		return nil, fmt.Errorf("libfido2: get assertion %s: %w", d.path, err)
	}
	return convertAssertion(a)
}

func convertAssertion(a *fido2.Assertion) (*ctap2.GetAssertionResponse, error) {
	authData, err := unwrapAuthData(a.AuthDataCBOR)
	if err != nil {
		return nil, err
	}
	if _, err := ctap2.ParseAuthData(authData); err != nil {
		return nil, fmt.Errorf("libfido2: assertion: %w", err)
	}
	r := &ctap2.GetAssertionResponse{AuthData: authData, Signature: a.Sig}
	if len(a.CredentialID) > 0 {
		r.Credential = &ctap2.CredentialDescriptor{Type: ctap2.CredentialTypePublicKey, ID: a.CredentialID}
	}
	if len(a.User.ID) > 0 {
		r.User = &ctap2.UserEntity{ID: a.User.ID}
	}
	return r, nil
}

// SetPIN sets the first PIN.
func (d *Device) SetPIN(ctx context.Context, pin string) error {
	_, err := call(ctx, d, func() (struct{}, error) { return struct{}{}, d.dev.SetPIN(pin, "") })
	if err != nil {
		return fmt.Errorf("libfido2: set PIN %s: %w", d.path, err)
	}
	return nil
}

// ChangePIN replaces the PIN.
func (d *Device) ChangePIN(ctx context.Context, current, newPIN string) error {
	if current == "" {
		return fmt.Errorf("libfido2: change PIN: %w", ctap2.ErrPINInvalid)
	}
	_, err := call(ctx, d, func() (struct{}, error) { return struct{}{}, d.dev.SetPIN(newPIN, current) })
	if err != nil {
		return fmt.Errorf("libfido2: change PIN %s: %w", d.path, err)
	}
	return nil
}

// PINRetries is the PIN retry counter.
func (d *Device) PINRetries(ctx context.Context) (int, error) {
	n, err := call(ctx, d, d.dev.RetryCount)
	if err != nil {
		return 0, fmt.Errorf("libfido2: PIN retries %s: %w", d.path, err)
	}
	return n, nil
}

// Reset erases the key (allowed only shortly after it was plugged in).
func (d *Device) Reset(ctx context.Context) error {
	_, err := call(ctx, d, func() (struct{}, error) { return struct{}{}, d.dev.Reset() })
	if err != nil {
		return fmt.Errorf("libfido2: reset %s: %w", d.path, err)
	}
	return nil
}

// translate maps go-libfido2's errors to ctap2 status errors where one
// exists, so that errors.Is works as with the native driver.
func translate(err error) error {
	if err == nil {
		return nil
	}
	for _, m := range errorMap {
		if errors.Is(err, m.lib) {
			return fmt.Errorf("%w (%v)", m.status, err)
		}
	}
	var le fido2.Error
	if errors.As(err, &le) && le.Code > 0 && le.Code <= 0xff {
		return fmt.Errorf("%w (%v)", ctap2.StatusError(le.Code), err)
	}
	return err
}

var errorMap = []struct {
	lib    error
	status ctap2.StatusError
}{
	{fido2.ErrInvalidCommand, ctap2.ErrInvalidCommand},
	{fido2.ErrInvalidLength, ctap2.ErrInvalidLength},
	{fido2.ErrMissingParameter, ctap2.ErrMissingParameter},
	{fido2.ErrNotAllowed, ctap2.ErrNotAllowed},
	{fido2.ErrActionTimeout, ctap2.ErrActionTimeout},
	{fido2.ErrPinNotSet, ctap2.ErrPINNotSet},
	{fido2.ErrInvalidCredential, ctap2.ErrInvalidCredential},
	{fido2.ErrUnsupportedOption, ctap2.ErrUnsupportedOption},
	{fido2.ErrPinInvalid, ctap2.ErrPINInvalid},
	{fido2.ErrPinPolicyViolation, ctap2.ErrPINPolicyViolation},
	{fido2.ErrNoCredentials, ctap2.ErrNoCredentials},
	{fido2.ErrPinAuthBlocked, ctap2.ErrPINAuthBlocked},
	{fido2.ErrPinRequired, ctap2.ErrPINRequired},
	{fido2.ErrUPRequired, ctap2.ErrUPRequired},
	{fido2.ErrOperationDenied, ctap2.ErrOperationDenied},
	{fido2.ErrKeepaliveCancel, ctap2.ErrKeepaliveCancel},
	{fido2.ErrInvalidOption, ctap2.ErrInvalidOption},
	{fido2.ErrOther, ctap2.ErrOther},
}
