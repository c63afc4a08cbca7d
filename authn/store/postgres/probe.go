package postgres

import (
	"errors"

	"github.com/mfad/mfad/authn"
)

// A batch's functions mostly begin alike: a sign-in, as most changes,
// first reads one account. probe runs a function up to its first read,
// answered by errProbe, to learn which account that is, so that the batch
// reads every function's first account, with its devices, in one round
// trip with BEGIN. authn.Store's contract allows it: a function may run
// more than once and has no effect outside its transaction.

var errProbe = errors.New("store: probing the first read")

// probe returns the account fn reads first ("" when it first does
// anything else).
func probe(fn func(authn.Tx) error) string {
	p := &probeTx{}
	safeCall(fn, p)
	return p.account
}

// probeTx answers every call with errProbe, and records the first one when
// it is Account.
type probeTx struct {
	account string
	called  bool
}

func (p *probeTx) stop() error { p.called = true; return errProbe }

func (p *probeTx) Account(name string) (*authn.Account, error) {
	if !p.called {
		p.account = name
	}
	return nil, p.stop()
}

func (p *probeTx) Accounts() ([]authn.Account, error)     { return nil, p.stop() }
func (p *probeTx) PutAccount(*authn.Account) error        { return p.stop() }
func (p *probeTx) DeleteAccount(string) error             { return p.stop() }
func (p *probeTx) Devices(string) ([]authn.Device, error) { return nil, p.stop() }
func (p *probeTx) Device(string, string) (*authn.Device, error) {
	return nil, p.stop()
}
func (p *probeTx) ActiveOTPDevices(string) ([]authn.Device, int, error) {
	return nil, 0, p.stop()
}
func (p *probeTx) PutDevice(*authn.Device) error       { return p.stop() }
func (p *probeTx) DeleteDevice(string, string) error   { return p.stop() }
func (p *probeTx) Token(string) (*authn.Token, error)  { return nil, p.stop() }
func (p *probeTx) Tokens() ([]authn.Token, error)      { return nil, p.stop() }
func (p *probeTx) PutToken(*authn.Token) error         { return p.stop() }
func (p *probeTx) DeleteToken(string) error            { return p.stop() }
func (p *probeTx) AppendAudit(*authn.AuditEvent) error { return p.stop() }
func (p *probeTx) Audit(uint64, int) ([]authn.AuditEvent, error) {
	return nil, p.stop()
}
