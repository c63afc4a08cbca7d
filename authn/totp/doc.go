// Package totp owns the one-time-password arithmetic of mfad: RFC 4226 HOTP
// and RFC 6238 TOTP codes (HMAC-SHA-1, -256, -512; 6 or 8 digits; 30 or 60 s
// steps), verification that returns the matched counter (time step) so that
// the caller can keep drift and replay state, the wide resynchronisation
// search over two consecutive codes, the comparator for user-typed codes,
// key generation, otpauth:// URIs and their QR codes, and RFC 6030 PSKC
// (hardware token seed file) parsing with AES-CBC decryption and HMAC checks.
//
// The package is pure: it does no I/O of its own and never reads the clock or
// the environment. Time, randomness and input arrive as arguments.
//
// Replay protection lives in one place: every verification takes a Window
// whose Min field is the lowest counter that may still match (the device's
// last used counter + 1). The caller stores the returned counter as the new
// last used counter, in the same transaction that accepts the code.
//
// Secrets never appear in errors or in the fmt output of Key and Token.
//
// Imports: the standard library and github.com/pquerna/otp (with its
// github.com/boombuler/barcode dependency, for QR images) only. A test keeps
// this true.
package totp
