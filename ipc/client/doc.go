// Package client is the Go client of mfad's API: one method per route,
// problems turned back into *api.Problem errors (match them with
// errors.Is(err, &api.Problem{Code: ...})). The zero Client talks to
// DefaultSocket.
//
// It imports ipc/api and the standard library.
package client
