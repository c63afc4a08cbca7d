#!/usr/bin/env python3
"""Independent check of the mfad emulator with python-fido2.

Usage: verify.py DIR AAGUID_HEX

DIR holds what the Go test wrote:
  attestation.cbor  the WebAuthn attestation object (text keys fmt, attStmt, authData)
  create.json       the clientDataJSON of the registration
  ca.der            the emulator's attestation CA certificate
  get.authdata      the authenticator data of an assertion
  get.sig           its signature
  get.json          the clientDataJSON of the assertion
Prints OK and exits 0 when the packed attestation verifies against the batch
certificate, the batch certificate meets the packed requirements and chains to
the CA, and the assertion signature verifies with the credential key.
"""
import hashlib
import os
import sys

try:  # python-fido2 >= 1.0
    from fido2.webauthn import AttestationObject, AuthenticatorData
except ImportError:  # python-fido2 0.9 (Debian bookworm/trixie)
    from fido2.ctap2 import AttestationObject, AuthenticatorData
from fido2.attestation import PackedAttestation
from fido2.attestation.base import verify_x509_chain


def main():
    d, aaguid_hex = sys.argv[1], sys.argv[2]

    def rd(name):
        with open(os.path.join(d, name), "rb") as f:
            return f.read()

    att = AttestationObject(rd("attestation.cbor"))
    stmt = getattr(att, "att_stmt", None) or getattr(att, "att_statement")
    if att.fmt != "packed":
        sys.exit("fmt is %r" % att.fmt)
    create_hash = hashlib.sha256(rd("create.json")).digest()
    # Checks the signature over authData || clientDataHash and the batch
    # certificate's packed requirements (OU, C, O, CN, CA=false, AAGUID).
    PackedAttestation().verify(stmt, att.auth_data, create_hash)
    cred = att.auth_data.credential_data
    if bytes(cred.aaguid).hex() != aaguid_hex:
        sys.exit("aaguid %s, want %s" % (bytes(cred.aaguid).hex(), aaguid_hex))
    verify_x509_chain([stmt["x5c"][0], rd("ca.der")])

    auth = AuthenticatorData(rd("get.authdata"))
    if auth.rp_id_hash != att.auth_data.rp_id_hash:
        sys.exit("assertion for another rpIdHash")
    get_hash = hashlib.sha256(rd("get.json")).digest()
    cred.public_key.verify(bytes(auth) + get_hash, rd("get.sig"))
    print("OK", type(cred.public_key).__name__, "counter", auth.counter)


if __name__ == "__main__":
    main()
