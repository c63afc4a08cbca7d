package e2e

import (
	"fmt"
	"testing"

	"github.com/mfad/mfad/ipc/api"
)

// TestConcurrentEnrollmentsStopAtEight: 32 connections enrolling at once,
// by the account's own user and by root, never leave more than the eight
// devices an account may hold; the rest are told device_limit_reached.
func TestConcurrentEnrollmentsStopAtEight(t *testing.T) {
	w := newWorld(t)
	for _, who := range []string{userSelf, ""} {
		account := userSelf
		if who == "" {
			account = userOther
		}
		w.must(w.as("", "POST", "/v1/accounts", fmt.Sprintf(`{"name":%q}`, account), nil), 201)
		bodies := make([]string, 32)
		for i := range bodies {
			bodies[i] = fmt.Sprintf(`{"type":"totp","label":"app %d"}`, i)
		}
		answers := burstAs(t, who, w.d.sock, "/v1/accounts/"+account+"/devices", bodies)
		created := 0
		for _, a := range answers {
			switch {
			case a.Status == 201:
				created++
			case a.Code == api.CodeDeviceLimitReached:
			default:
				t.Fatalf("%s: unexpected answer %d %s %s", account, a.Status, a.Code, a.Body)
			}
		}
		var list api.DeviceList
		w.must(w.as("", "GET", "/v1/accounts/"+account+"/devices", "", &list), 200)
		if created != 8 || len(list.Devices) != 8 {
			t.Fatalf("%s: %d enrollments answered 201, %d devices stored; want 8 and 8", account, created, len(list.Devices))
		}
	}
}
