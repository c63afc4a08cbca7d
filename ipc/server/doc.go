// Package server is mfad's HTTP/JSON API on a Unix socket.
//
// Each connection's peer credentials are read once, at accept, from
// SO_PEERCRED (ipc/peercred); on the connection's first request they are
// mapped by the pure function Decide to a Principal, with the user's
// membership of the admin group read from the group database then, so that
// joining or leaving the group counts from the next connection. The route table (routes.go) is data: method, pattern,
// the permission the router enforces before any handler runs, and the
// handler. Every error leaves as application/problem+json with a stable
// code; the one translation from authn error classes to HTTP statuses is
// in problem.go. Connections and streams are limited per uid with capacity
// kept for uid 0, so that no local user can starve sign-ins. A lone
// connection's quick first request (a code sign-in) is answered on the
// goroutine that accepted it when Config.AnswerOnAccept says the store
// never waits on a network, and everything else by net/http from the same
// bytes (inline.go): a sign-in from idle wakes fewer threads.
//
// It may import ipc/api, ipc/peercred, authn and the standard library.
package server
