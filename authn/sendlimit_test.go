package authn_test

import (
	"testing"
	"time"

	"github.com/mfad/mfad/authn"
)

// TestSendLimits: codes sent for an account are bounded per hour, per
// account and per user; refusals spend nothing; the budget comes back.
func TestSendLimits(t *testing.T) {
	f := newPipelineFixture(t, authn.Policy{SendsPerAccount: 3, SendsPerUser: 10, PhonePrefixes: []string{"+1"}})
	mia := authn.Actor{UID: 1800, Name: "mia"}
	if _, err := f.svc.CreateAccount(f.ctx, f.admin, authn.NewAccount{Name: "mia"}); err != nil {
		t.Fatal(err)
	}
	// A number outside the allowed prefixes is refused before anything is sent.
	_, err := f.svc.RequestContactChange(f.ctx, mia, "mia", authn.ContactChange{Phone: "+44 20 7946 0000"})
	wantCode(t, err, authn.CodeInvalidRequest)
	sent := len(f.box.codes)
	for i := range 3 {
		if _, err := f.svc.RequestContactChange(f.ctx, mia, "mia", authn.ContactChange{Phone: "+1 555 0100"}); err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
	}
	if len(f.box.codes) != sent+3 {
		t.Fatalf("%d codes sent, want 3", len(f.box.codes)-sent)
	}
	_, err = f.svc.RequestContactChange(f.ctx, mia, "mia", authn.ContactChange{Email: "mia@example.org"})
	if e := wantCode(t, err, authn.CodeRetryLater); e.RetryAfter <= 0 || e.RetryAfter > time.Hour {
		t.Errorf("retry_after %v", e.RetryAfter)
	}
	if len(f.box.mails) != 0 || len(f.box.codes) != sent+3 {
		t.Error("a refused send went out")
	}
	// An admin may record any number, but the account's budget holds for admins too.
	_, err = f.svc.RequestContactChange(f.ctx, f.admin, "mia", authn.ContactChange{Phone: "+44 20 7946 0000"})
	wantCode(t, err, authn.CodeRetryLater)
	f.clk.Add(time.Hour)
	if _, err := f.svc.RequestContactChange(f.ctx, f.admin, "mia", authn.ContactChange{Phone: "+44 20 7946 0000"}); err != nil {
		t.Fatalf("after the hour: %v", err)
	}
}

// TestSendLimitsPerUser: one user's requests are bounded whatever the
// account, and a refused request (not allowed) spends nothing.
func TestSendLimitsPerUser(t *testing.T) {
	f := newPipelineFixture(t, authn.Policy{SendsPerAccount: 10, SendsPerUser: 2})
	f.owner(t, "olaf")
	olaf := authn.Actor{UID: 1900, Name: "olaf"}
	// An owner's phone needs an admin: refused, and not counted.
	for range 3 {
		_, err := f.svc.RequestContactChange(f.ctx, olaf, "olaf", authn.ContactChange{Phone: "+1 555 0101"})
		wantCode(t, err, authn.CodePermissionDenied)
	}
	if _, err := f.svc.StartRecovery(f.ctx, olaf, "olaf"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.RequestContactChange(f.ctx, olaf, "olaf", authn.ContactChange{Email: "olaf2@example.org"}); err != nil {
		t.Fatal(err)
	}
	_, err := f.svc.StartRecovery(f.ctx, olaf, "olaf")
	wantCode(t, err, authn.CodeRetryLater)
	// uid 0 (PAM relays every user's recovery) is bounded per account only.
	if _, err := f.svc.StartRecovery(f.ctx, f.admin, "olaf"); err != nil {
		t.Fatal(err)
	}
}
