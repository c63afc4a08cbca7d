//go:build !cgo

package libfido2

import (
	"context"

	"github.com/mfad/mfad/hw/ctap2"
	"github.com/mfad/mfad/hw/hidraw"
)

// Without cgo there is no libfido2: every call fails with ErrUnsupported.

// List fails with ErrUnsupported.
func List() ([]hidraw.Device, error) { return nil, ErrUnsupported }

// Device is a key reached through libfido2 (unavailable in this build).
type Device struct{ path string }

// Open fails with ErrUnsupported.
func Open(path string) (*Device, error) { return nil, ErrUnsupported }

// Path is the device's path.
func (d *Device) Path() string { return d.path }

// Cancel fails with ErrUnsupported.
func (d *Device) Cancel() error { return ErrUnsupported }

// Info fails with ErrUnsupported.
func (d *Device) Info(ctx context.Context) (*ctap2.GetInfoResponse, error) {
	return nil, ErrUnsupported
}

// MakeCredential fails with ErrUnsupported.
func (d *Device) MakeCredential(ctx context.Context, p MakeCredentialParams) (*ctap2.MakeCredentialResponse, error) {
	return nil, ErrUnsupported
}

// GetAssertion fails with ErrUnsupported.
func (d *Device) GetAssertion(ctx context.Context, p GetAssertionParams) (*ctap2.GetAssertionResponse, error) {
	return nil, ErrUnsupported
}

// SetPIN fails with ErrUnsupported.
func (d *Device) SetPIN(ctx context.Context, pin string) error { return ErrUnsupported }

// ChangePIN fails with ErrUnsupported.
func (d *Device) ChangePIN(ctx context.Context, current, newPIN string) error { return ErrUnsupported }

// PINRetries fails with ErrUnsupported.
func (d *Device) PINRetries(ctx context.Context) (int, error) { return 0, ErrUnsupported }

// Reset fails with ErrUnsupported.
func (d *Device) Reset(ctx context.Context) error { return ErrUnsupported }
