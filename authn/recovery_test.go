package authn_test

import (
	"context"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/mfad/mfad/authn"
)

type outbox struct {
	mu    sync.Mutex
	mails []string
	codes []string
}

func (o *outbox) SendMail(_ context.Context, to, subject, body string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.mails = append(o.mails, body)
	return nil
}

func (o *outbox) SendCode(_ context.Context, phone, account, code string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.codes = append(o.codes, code)
	return nil
}

var mailCode = regexp.MustCompile(`Recovery code: (\d{8})`)

func (o *outbox) lastMailCode() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := len(o.mails) - 1; i >= 0; i-- {
		if m := mailCode.FindStringSubmatch(o.mails[i]); m != nil {
			return m[1]
		}
	}
	return ""
}

func TestRecoveryCodesExpireAndAreSingleUse(t *testing.T) {
	f := newFixture(t)
	box := &outbox{}
	f.svc = authn.NewService(f.st, authn.Config{Now: f.clk.Now, Mailer: box, Phone: box})
	if _, err := f.svc.CreateAccount(f.ctx, f.admin, authn.NewAccount{Name: "olive", Kind: authn.KindOwner,
		Email: "o@example.org", EmailVerified: true, Phone: "+1 555 0199", PhoneVerified: true}); err != nil {
		t.Fatal(err)
	}
	owner := authn.Actor{UID: 1500, Name: "olive"}
	r, err := f.svc.StartRecovery(f.ctx, owner, "olive")
	if err != nil {
		t.Fatal(err)
	}
	code := box.lastMailCode()
	// The e-mail code expires.
	f.clk.Add(16 * time.Minute)
	_, err = f.svc.VerifyRecoveryCode(f.ctx, owner, r.ID, authn.StageEmail, code)
	wantCode(t, err, authn.CodeInvalidCode)
	// A fresh one works once.
	f.clk.Add(2 * time.Second)
	if r, err = f.svc.ResendRecoveryCode(f.ctx, owner, r.ID); err != nil {
		t.Fatal(err)
	}
	code = box.lastMailCode()
	if _, err := f.svc.VerifyRecoveryCode(f.ctx, owner, r.ID, authn.StageEmail, code); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.VerifyRecoveryCode(f.ctx, owner, r.ID, authn.StageEmail, code)
	wantCode(t, err, authn.CodeRecoveryWrongStep)
	st, err := f.svc.VerifyRecoveryCode(f.ctx, owner, r.ID, authn.StagePhone, box.codes[len(box.codes)-1])
	if err != nil || st.Token == "" {
		t.Fatalf("phone step: %+v %v", st, err)
	}
	// The recovery session ends: the token no longer signs in.
	f.clk.Add(16 * time.Minute)
	_, err = f.svc.Authenticate(f.ctx, owner, authn.AuthRequest{Account: "olive", RecoveryToken: st.Token}, nil)
	wantCode(t, err, authn.CodeInvalidCode)
}
