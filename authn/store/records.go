package store

import (
	"fmt"

	"github.com/mfad/mfad/authn"
)

// Records is the record encoding and sealing that every backend beneath
// this package shares, so that a record and a sealed secret mean the same
// bytes in bbolt and in PostgreSQL, under the same master key.
type Records struct{ seal *sealer }

// NewRecords returns the codec and sealer for key (KeySize bytes).
func NewRecords(key []byte) (*Records, error) {
	s, err := newSealer(key)
	if err != nil {
		return nil, err
	}
	return &Records{seal: s}, nil
}

// EncodeAccount returns a's record.
func (r *Records) EncodeAccount(a *authn.Account) ([]byte, error) { return encode(accountToRec(a)) }

// DecodeAccount reads an account record.
func (r *Records) DecodeAccount(b []byte) (*authn.Account, error) {
	var a accountRec
	if err := decode(b, &a); err != nil {
		return nil, fmt.Errorf("store: account record: %w", err)
	}
	return a.account(), nil
}

// EncodeDevice returns d's record (without its secret) and the secret
// sealed to the device's path.
func (r *Records) EncodeDevice(d *authn.Device) (rec, sealed []byte, err error) {
	rec, err = encodeDevice(deviceToRec(d))
	if err != nil {
		return nil, nil, err
	}
	return rec, r.seal.seal(d.Secret, deviceAD(d.Account, d.ID)), nil
}

// DecodeDevice reads a device record and opens its sealed secret.
func (r *Records) DecodeDevice(rec, sealed []byte) (*authn.Device, error) {
	var dr deviceRecord
	if err := decodeDeviceRec(rec, &dr); err != nil {
		return nil, fmt.Errorf("store: device record: %w", err)
	}
	if sealed == nil {
		sealed = dr.Sealed
	}
	secret, err := r.seal.open(sealed, deviceAD(dr.Account, dr.ID))
	if err != nil {
		return nil, fmt.Errorf("store: device %s/%s: %w", dr.Account, dr.ID, err)
	}
	d := dr.device()
	d.Secret = secret
	return d, nil
}

// EncodeToken returns t's record (without its secret) and the sealed secret.
func (r *Records) EncodeToken(t *authn.Token) (rec, sealed []byte, err error) {
	rec, err = encode(tokenToRec(t))
	if err != nil {
		return nil, nil, err
	}
	return rec, r.seal.seal(t.Secret, tokenAD(t.Serial)), nil
}

// DecodeToken reads a token record and opens its sealed secret.
func (r *Records) DecodeToken(rec, sealed []byte) (*authn.Token, error) {
	var tr tokenRecord
	if err := decode(rec, &tr); err != nil {
		return nil, fmt.Errorf("store: token record: %w", err)
	}
	if sealed == nil {
		sealed = tr.Sealed
	}
	secret, err := r.seal.open(sealed, tokenAD(tr.Serial))
	if err != nil {
		return nil, fmt.Errorf("store: token %s: %w", tr.Serial, err)
	}
	tok := tr.token()
	tok.Secret = secret
	return tok, nil
}

// Seal seals plain to the record path ad (a blob's "blobs/<name>", say).
func (r *Records) Seal(plain []byte, ad string) []byte { return r.seal.seal(plain, ad) }

// Open opens what Seal sealed to ad; another key or path is an error.
func (r *Records) Open(sealed []byte, ad string) ([]byte, error) { return r.seal.open(sealed, ad) }

// NotFound is the error a backend returns for an absent record.
func NotFound(what, name string) error { return notFound(what, name) }
