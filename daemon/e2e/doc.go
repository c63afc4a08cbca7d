// Package e2e holds the end-to-end tests: they build the real mfad and
// mfactl binaries, start mfad on a temporary socket and state directory,
// and call it as distinct real Unix users (created once per run when the
// tests run as root), through ipc/client, mfactl and raw HTTP.
//
// It has no non-test code.
package e2e
