package e2e

import (
	"context"
	"errors"
	"testing"

	"github.com/mfad/mfad/ipc/api"
)

// TestFIDOWrongKeyIsRefused: a key that holds no credential of the
// account and a key enrolled on another account are refused; the
// account's own key still signs in.
func TestFIDOWrongKeyIsRefused(t *testing.T) {
	d := startWithEmulators(t, "[fido]\ntouch_timeout = \"2s\"\n")
	c := d.client()
	ctx := context.Background()
	for _, n := range []string{"mine", "theirs", "stranger"} {
		if _, err := c.AddEmulator(ctx, api.AddEmulator{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	plugged := map[string]bool{"mine": true, "theirs": true, "stranger": true}
	only := func(key string) {
		for _, n := range []string{"mine", "theirs", "stranger"} {
			if plugged[n] == (n == key) {
				continue
			}
			plugged[n] = n == key
			action := "unplug"
			if n == key {
				action = "plug"
			}
			if err := c.EmulatorAction(ctx, n, action, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	for account, key := range map[string]string{"vera": "mine", "walt": "theirs"} {
		if _, err := c.CreateAccount(ctx, api.CreateAccount{Name: account}); err != nil {
			t.Fatal(err)
		}
		only(key)
		if _, err := c.AddKeyDevice(ctx, account, api.CreateDevice{Type: "fido"}, nil); err != nil {
			t.Fatalf("enroll %s's key: %v", account, err)
		}
	}
	for _, key := range []string{"theirs", "stranger"} {
		only(key)
		res, err := c.AuthenticateKey(ctx, api.Authenticate{Account: "vera"}, nil)
		var p *api.Problem
		if err == nil || !errors.As(err, &p) {
			t.Fatalf("vera signed in with the %s key: %+v %v", key, res, err)
		}
		if p.Code != api.CodeInvalidCode {
			t.Errorf("%s key: %s (%s), want invalid_code", key, p.Code, p.Detail)
		}
	}
	only("mine")
	if _, err := c.AuthenticateKey(ctx, api.Authenticate{Account: "vera"}, nil); err != nil {
		t.Fatalf("vera's own key: %v", err)
	}
}
