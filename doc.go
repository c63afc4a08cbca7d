// Package mfad is the root of the mfad module: a local multi-factor
// authentication daemon for Linux workstations and hardware labs. The code
// lives in daemon/, hw/, authn/, ipc/ and contrib/; this package holds only
// the test that keeps their dependency direction (deps_test.go).
package mfad
