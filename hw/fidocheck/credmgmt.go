package fidocheck

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/mfad/mfad/hw/ctap2"
)

// cmRPID is the relying party of the credential management check, whose
// one resident credential the check deletes.
const cmRPID = "credmgmt.battery.mfad.invalid"

// cmCall runs one credential management subcommand, authenticated with
// token when it is not nil. result may be nil for subcommands that answer
// with the status alone.
func (r *runner) cmCall(proto ctap2.PINProtocol, token []byte, sub ctap2.CredMgmtSubCommand, params *ctap2.CredMgmtParams, result *ctap2.CredentialManagementResponse) error {
	req := &ctap2.CredentialManagementRequest{SubCommand: sub}
	if params != nil {
		b, err := ctap2.Marshal(params)
		if err != nil {
			return err
		}
		req.Params = b
	}
	if token != nil {
		req.PinUvAuthProtocol = proto.Version()
		req.PinUvAuthParam = proto.Authenticate(token, ctap2.CredMgmtAuthMessage(sub, req.Params))
	}
	ctx, cancel := r.op(false)
	defer cancel()
	var out any
	if result != nil {
		out = result
	}
	return ctap2.Call(ctx, r.k.Channel(), ctap2.CmdCredentialManagement, req, out, nil)
}

// cmCredentials enumerates the resident credentials of rpID.
func (r *runner) cmCredentials(proto ctap2.PINProtocol, token []byte, rpID string) ([]ctap2.CredentialManagementResponse, error) {
	h := sha256.Sum256([]byte(rpID))
	var first ctap2.CredentialManagementResponse
	if err := r.cmCall(proto, token, ctap2.CredMgmtEnumerateCredentialsBegin, &ctap2.CredMgmtParams{RPIDHash: h[:]}, &first); err != nil {
		return nil, err
	}
	out := []ctap2.CredentialManagementResponse{first}
	for i := uint64(1); i < min(first.TotalCredentials, maxEnumerated); i++ {
		var next ctap2.CredentialManagementResponse
		if err := r.cmCall(proto, nil, ctap2.CredMgmtEnumerateCredentialsNext, nil, &next); err != nil {
			return nil, fmt.Errorf("enumerateCredentialsGetNextCredential %d of %d: %w", i+1, first.TotalCredentials, err)
		}
		out = append(out, next)
	}
	return out, nil
}

// maxEnumerated bounds the enumeration loops against a key announcing an
// absurd total.
const maxEnumerated = 1000

func (r *runner) cmMetadata(proto ctap2.PINProtocol, token []byte) (uint64, error) {
	var m ctap2.CredentialManagementResponse
	if err := r.cmCall(proto, token, ctap2.CredMgmtGetMetadata, nil, &m); err != nil {
		return 0, err
	}
	if m.ExistingResidentCredentialsCount == nil || m.MaxPossibleRemainingResidentCredentialsCount == nil {
		return 0, errors.New("getCredsMetadata without its two counts")
	}
	r.note("getCredsMetadata: %d resident credentials, room for %d more", *m.ExistingResidentCredentialsCount, *m.MaxPossibleRemainingResidentCredentialsCount)
	return *m.ExistingResidentCredentialsCount, nil
}

func checkCredMgmt(r *runner) outcome {
	if v, _ := r.info().Option(ctap2.OptionCredMgmt); !v {
		return skipf("the key does not offer credential management (option credMgmt)")
	}
	if !contains(r.info().Versions, ctap2.VersionFIDO21) {
		return skipf("a FIDO_2_1_PRE key: its prototype command 0x41 is not checked")
	}
	if o, ok := r.pinReady(); !ok {
		return o
	}
	c, err := r.makeCredential(func() *ctap2.MakeCredentialRequest {
		req := r.makeCredRequest(ctap2.AlgES256, true, nil, nil)
		req.RP.ID = cmRPID
		return req
	}(), "MakeCredential rk=true to enumerate and delete")
	if err != nil {
		return errOutcome("MakeCredential with rk", err)
	}
	ctx, cancel := r.op(false)
	proto, token, err := r.k.PINToken(ctx, r.opts.PIN, ctap2.PermCredentialManagement, "")
	cancel()
	if err != nil {
		return errOutcome("a pinUvAuthToken with the cm permission", err)
	}
	before, err := r.cmMetadata(proto, token)
	if err != nil {
		return errOutcome("getCredsMetadata", err)
	}
	var first ctap2.CredentialManagementResponse
	if err := r.cmCall(proto, token, ctap2.CredMgmtEnumerateRPsBegin, nil, &first); err != nil {
		return errOutcome("enumerateRPsBegin", err)
	}
	all := []ctap2.CredentialManagementResponse{first}
	for i := uint64(1); i < min(first.TotalRPs, maxEnumerated); i++ {
		var next ctap2.CredentialManagementResponse
		if err := r.cmCall(proto, nil, ctap2.CredMgmtEnumerateRPsNext, nil, &next); err != nil {
			return errOutcome(fmt.Sprintf("enumerateRPsGetNextRP %d of %d", i+1, first.TotalRPs), err)
		}
		all = append(all, next)
	}
	var rps []string
	for _, rp := range all {
		if rp.RP == nil {
			return failf("enumerateRPs answer without rp")
		}
		if h := sha256.Sum256([]byte(rp.RP.ID)); !bytes.Equal(h[:], rp.RPIDHash) {
			return failf("enumerateRPs: rpIDHash of %q is not its SHA-256", rp.RP.ID)
		}
		rps = append(rps, rp.RP.ID)
	}
	r.note("enumerateRPs: %d relying parties", len(rps))
	if !contains(rps, cmRPID) {
		return failf("enumerateRPs does not list %q, which has a resident credential", cmRPID)
	}
	creds, err := r.cmCredentials(proto, token, cmRPID)
	if err != nil {
		return errOutcome("enumerateCredentials", err)
	}
	var found *ctap2.CredentialManagementResponse
	for i := range creds {
		if creds[i].CredentialID != nil && bytes.Equal(creds[i].CredentialID.ID, c.id) {
			found = &creds[i]
		}
	}
	if found == nil {
		return failf("enumerateCredentials of %q does not list the credential just made", cmRPID)
	}
	pub, _, err := ctap2.ParseCOSEKey(found.PublicKey)
	if err != nil {
		return errOutcome("enumerated public key", err)
	}
	if eq, ok := pub.(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(c.pub) {
		return failf("the enumerated public key differs from the one MakeCredential returned")
	}
	if found.User == nil || !bytes.Equal(found.User.ID, []byte(checkUser2)) {
		return failf("the enumerated credential does not carry its user id")
	}
	r.note("enumerateCredentials of %q: %d, the new one with its user and public key", cmRPID, len(creds))
	if err := r.cmCall(proto, token, ctap2.CredMgmtDeleteCredential, &ctap2.CredMgmtParams{CredentialID: &ctap2.CredentialDescriptor{Type: ctap2.CredentialTypePublicKey, ID: c.id}}, nil); err != nil {
		return errOutcome("deleteCredential", err)
	}
	after, err := r.cmMetadata(proto, token)
	if err != nil {
		return errOutcome("getCredsMetadata after deleteCredential", err)
	}
	if after != before-1 {
		return failf("deleteCredential took the resident credentials from %d to %d", before, after)
	}
	up := false
	_, err = r.getAssertion(cmRPID, nil, &up, []*credential{c}, "GetAssertion for the deleted credential's RP")
	r.note("GetAssertion by discovery after deleteCredential: %s", describe(err))
	if !errors.Is(err, ctap2.ErrNoCredentials) {
		return failf("the deleted credential is still found: want CTAP2_ERR_NO_CREDENTIALS, got %s", describe(err))
	}
	return pass()
}
