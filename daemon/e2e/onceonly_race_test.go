package e2e

import (
	"encoding/base32"
	"fmt"
	"testing"
	"time"

	"github.com/mfad/mfad/authn/totp"
	"github.com/mfad/mfad/ipc/api"
)

// TestOneCodeOverManyConnectionsSignsInOnce: the account's own user sends
// one valid code over 32 connections at once, for each kind of single-use
// code: a TOTP code, an admin's temporary code and a scratch code. Exactly
// one connection signs in; the others are told the code is used (or
// wrong, for the codes that are gone once spent, and those wrong codes
// count towards the back-off).
func TestOneCodeOverManyConnectionsSignsInOnce(t *testing.T) {
	w := newWorld(t)
	me := userSelf
	w.must(w.as("", "POST", "/v1/accounts", fmt.Sprintf(`{"name":%q}`, me), nil), 201)
	secret := []byte("12345678901234567890")
	b32 := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(secret)
	const scratch = "73198245"
	w.must(w.as("", "POST", "/v1/accounts/"+me+"/devices/import",
		fmt.Sprintf(`{"kind":"totp","secret":%q,"scratch_codes":[%q],"source":"test"}`, b32, scratch), nil), 201)
	var temp api.TemporaryCode
	w.must(w.as("", "POST", "/v1/accounts/"+me+"/temporary-code", `{}`, &temp), 201)

	for _, c := range []struct{ kind, code string }{
		{"totp", totp.Code(secret, totp.DefaultParams, totp.StepAt(time.Now(), 30*time.Second))},
		{"temporary", temp.Code},
		{"scratch", scratch},
	} {
		bodies := make([]string, 32)
		for i := range bodies {
			bodies[i] = fmt.Sprintf(`{"account":%q,"code":%q}`, me, c.code)
		}
		ok := 0
		for _, a := range burstAs(t, me, w.d.sock, api.PathAuthenticate, bodies) {
			switch {
			case a.Status == 200:
				ok++
			case a.Code == api.CodeCodeAlreadyUsed || a.Code == api.CodeInvalidCode,
				a.Code == api.CodeRetryLater || a.Code == api.CodeLockedOut: // a spent code is a wrong one
			default:
				t.Fatalf("%s: unexpected answer %d %s %s", c.kind, a.Status, a.Code, a.Body)
			}
		}
		if ok != 1 {
			t.Fatalf("%s code sent over 32 connections at once: %d sign-ins, want 1", c.kind, ok)
		}
		w.unlock(me) // the losers' refusals may count as failures
	}
}
