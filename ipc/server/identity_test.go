package server

import (
	"context"
	"net/http"

	"github.com/mfad/mfad/ipc/peercred"
)

// withPrincipalForTest gives a request the identity of a connection whose
// principal is already decided as p.
func withPrincipalForTest(r *http.Request, p Principal) *http.Request {
	id := &identity{cred: peercred.Cred{UID: p.UID, GID: p.GID, PID: p.PID}}
	id.once.Do(func() { id.p = p })
	return r.WithContext(context.WithValue(r.Context(), principalKey{}, id))
}
