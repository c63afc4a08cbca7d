package emu

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/mfad/mfad/hw/ctap2"
)

// Credential id (and U2F key handle) layout:
//
//	version(1) alg(1) flags(1) nonce(12) AES-256-GCM(private key)(32+16)
//
// sealed under the wrapping key with header || rpIdHash as additional data.
const (
	credVersion      = 0x01
	credAlgES256     = 0x01
	credAlgEdDSA     = 0x02
	credFlagResident = 0x01
	credHeaderLen    = 3
	credNonceLen     = 12
	credKeyLen       = 32
	credIDLen        = credHeaderLen + credNonceLen + credKeyLen + 16
)

var errNotOurs = errors.New("emu: credential id not ours")

// credKey is a credential private key.
type credKey struct {
	alg ctap2.COSEAlgorithm
	ec  *ecdsa.PrivateKey
	ed  ed25519.PrivateKey
}

func newCredKey(alg ctap2.COSEAlgorithm, rnd io.Reader) (*credKey, error) {
	switch alg {
	case ctap2.AlgES256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rnd)
		if err != nil {
			return nil, err
		}
		return &credKey{alg: alg, ec: k}, nil
	case ctap2.AlgEdDSA:
		_, k, err := ed25519.GenerateKey(rnd)
		if err != nil {
			return nil, err
		}
		return &credKey{alg: alg, ed: k}, nil
	}
	return nil, ctap2.ErrUnsupportedAlgorithm
}

func (k *credKey) public() crypto.PublicKey {
	if k.ec != nil {
		return &k.ec.PublicKey
	}
	return k.ed.Public()
}

// cose returns the COSE_Key of the public key.
func (k *credKey) cose() ([]byte, error) { return ctap2.MarshalCOSEKey(k.public(), k.alg) }

// sign signs msg: ES256 is DER ECDSA over SHA-256(msg), EdDSA is Ed25519
// over msg.
func (k *credKey) sign(rnd io.Reader, msg []byte) ([]byte, error) {
	if k.ec != nil {
		h := sha256.Sum256(msg)
		return ecdsa.SignASN1(rnd, k.ec, h[:])
	}
	return ed25519.Sign(k.ed, msg), nil
}

// raw is the 32-byte private scalar (ES256) or seed (EdDSA).
func (k *credKey) raw() ([]byte, error) {
	if k.ec != nil {
		return k.ec.Bytes()
	}
	return k.ed.Seed(), nil
}

// wrap seals k into a credential id bound to rpIDHash, with the flag bits
// (credFlagResident, credFlagHMACSecret, the credProtect level) in its
// authenticated header.
func wrap(wrapKey []byte, rnd io.Reader, k *credKey, rpIDHash []byte, flags byte) ([]byte, error) {
	aead, err := newAEAD(wrapKey)
	if err != nil {
		return nil, err
	}
	id := make([]byte, credHeaderLen+credNonceLen, credIDLen)
	id[0] = credVersion
	id[1] = credAlgES256
	if k.alg == ctap2.AlgEdDSA {
		id[1] = credAlgEdDSA
	}
	id[2] = flags
	if _, err := io.ReadFull(rnd, id[credHeaderLen:]); err != nil {
		return nil, err
	}
	raw, err := k.raw()
	if err != nil {
		return nil, err
	}
	aad := append(append([]byte(nil), id[:credHeaderLen]...), rpIDHash...)
	return aead.Seal(id, id[credHeaderLen:credHeaderLen+credNonceLen], raw, aad), nil
}

// unwrap opens a credential id made by wrap for rpIDHash and returns its
// key and flag bits. Any other input gives errNotOurs.
func unwrap(wrapKey []byte, id, rpIDHash []byte) (*credKey, byte, error) {
	if len(id) != credIDLen || id[0] != credVersion {
		return nil, 0, errNotOurs
	}
	aead, err := newAEAD(wrapKey)
	if err != nil {
		return nil, 0, err
	}
	aad := append(append([]byte(nil), id[:credHeaderLen]...), rpIDHash...)
	raw, err := aead.Open(nil, id[credHeaderLen:credHeaderLen+credNonceLen], id[credHeaderLen+credNonceLen:], aad)
	if err != nil {
		return nil, 0, errNotOurs
	}
	flags := id[2]
	switch id[1] {
	case credAlgES256:
		k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), raw)
		if err != nil {
			return nil, 0, errNotOurs
		}
		return &credKey{alg: ctap2.AlgES256, ec: k}, flags, nil
	case credAlgEdDSA:
		if len(raw) != ed25519.SeedSize {
			return nil, 0, errNotOurs
		}
		return &credKey{alg: ctap2.AlgEdDSA, ed: ed25519.NewKeyFromSeed(raw)}, flags, nil
	}
	return nil, 0, errNotOurs
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("emu: wrapping key: %w", err)
	}
	return cipher.NewGCM(b)
}
