package emu_test

import (
	"errors"
	"testing"

	"github.com/mfad/mfad/hw/ctap2"
	"github.com/mfad/mfad/hw/emu"
	"github.com/mfad/mfad/hw/fidokey"
)

// Credential management needs a token with the cm permission, refuses a
// forged one, and updates a credential's user names (the battery's
// credmgmt check covers enumeration and deletion).
func TestCredentialManagement(t *testing.T) {
	ek, conn := attach(t, emu.Config{})
	k := open(t, conn)
	ctx := tctx(t)
	if err := k.SetPIN(ctx, "9753"); err != nil {
		t.Fatal(err)
	}
	resp, err := k.MakeCredential(ctx, fidokey.MakeCredentialParams{ClientDataHash: sum("c"), RP: ctap2.RPEntity{ID: "cm.example"},
		User: ctap2.UserEntity{ID: []byte("u1"), Name: "old"}, ResidentKey: true, PIN: "9753"})
	if err != nil {
		t.Fatal(err)
	}
	ad, err := ctap2.ParseAuthData(resp.AuthData)
	if err != nil {
		t.Fatal(err)
	}
	id := ad.AttestedCredential.CredentialID
	call := func(token []byte, proto ctap2.PINProtocol, sub ctap2.CredMgmtSubCommand, p *ctap2.CredMgmtParams, out any) error {
		req := &ctap2.CredentialManagementRequest{SubCommand: sub}
		if p != nil {
			req.Params, _ = ctap2.Marshal(p)
		}
		if token != nil {
			req.PinUvAuthProtocol, req.PinUvAuthParam = proto.Version(), proto.Authenticate(token, ctap2.CredMgmtAuthMessage(sub, req.Params))
		}
		return ctap2.Call(ctx, k.Channel(), ctap2.CmdCredentialManagement, req, out, nil)
	}
	if err := call(nil, nil, ctap2.CredMgmtGetMetadata, nil, &ctap2.CredentialManagementResponse{}); !errors.Is(err, ctap2.ErrPUATRequired) {
		t.Errorf("without a token: %v", err)
	}
	proto, gaToken, err := k.PINToken(ctx, "9753", ctap2.PermGetAssertion, "cm.example")
	if err != nil {
		t.Fatal(err)
	}
	if err := call(gaToken, proto, ctap2.CredMgmtGetMetadata, nil, &ctap2.CredentialManagementResponse{}); !errors.Is(err, ctap2.ErrPINAuthInvalid) {
		t.Errorf("a token without cm: %v", err)
	}
	proto, token, err := k.PINToken(ctx, "9753", ctap2.PermCredentialManagement, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := call(make([]byte, 32), proto, ctap2.CredMgmtGetMetadata, nil, &ctap2.CredentialManagementResponse{}); !errors.Is(err, ctap2.ErrPINAuthInvalid) {
		t.Errorf("a forged pinUvAuthParam: %v", err)
	}
	if err := call(token, proto, ctap2.CredMgmtEnumerateRPsNext, nil, &ctap2.CredentialManagementResponse{}); !errors.Is(err, ctap2.ErrNotAllowed) {
		t.Errorf("GetNextRP without Begin: %v", err)
	}
	desc := &ctap2.CredentialDescriptor{Type: ctap2.CredentialTypePublicKey, ID: id}
	if err := call(token, proto, ctap2.CredMgmtUpdateUserInformation, &ctap2.CredMgmtParams{CredentialID: desc, User: &ctap2.UserEntity{ID: []byte("u2"), Name: "x"}}, nil); !errors.Is(err, ctap2.ErrInvalidParameter) {
		t.Errorf("update with another user id: %v", err)
	}
	if err := call(token, proto, ctap2.CredMgmtUpdateUserInformation, &ctap2.CredMgmtParams{CredentialID: desc, User: &ctap2.UserEntity{ID: []byte("u1"), Name: "new", DisplayName: "New"}}, nil); err != nil {
		t.Fatal(err)
	}
	var c ctap2.CredentialManagementResponse
	if err := call(token, proto, ctap2.CredMgmtEnumerateCredentialsBegin, &ctap2.CredMgmtParams{RPIDHash: sum("cm.example")}, &c); err != nil {
		t.Fatal(err)
	}
	if c.User == nil || c.User.Name != "new" || c.User.DisplayName != "New" || c.TotalCredentials != 1 || c.CredProtect != 1 {
		t.Errorf("after the update: %+v", c)
	}
	if ek.ResidentCredentials() != 1 {
		t.Errorf("%d resident credentials", ek.ResidentCredentials())
	}
}

// getPinUvAuthTokenUsingPinWithPermissions without permissions is a
// missing parameter, with permissions 0 an invalid one (CTAP 2.1
// §6.5.5.7.2 steps 1 and 3); neither spends a PIN retry.
func TestTokenPermissionsParameter(t *testing.T) {
	_, conn := attach(t, emu.Config{})
	k := open(t, conn)
	ctx := tctx(t)
	if err := k.SetPIN(ctx, "8642"); err != nil {
		t.Fatal(err)
	}
	zero := ctap2.Permission(0)
	for _, tc := range []struct {
		perms *ctap2.Permission
		want  ctap2.StatusError
	}{{nil, ctap2.ErrMissingParameter}, {&zero, ctap2.ErrInvalidParameter}} {
		proto, ka, err := k.KeyAgreement(ctx)
		if err != nil {
			t.Fatal(err)
		}
		req, _, err := ctap2.GetPINTokenRequest(proto, ka, "8642", ctap2.PermGetAssertion, "x.example")
		if err != nil {
			t.Fatal(err)
		}
		req.Permissions = tc.perms
		if err := ctap2.Call(ctx, k.Channel(), ctap2.CmdClientPIN, req, &ctap2.ClientPINResponse{}, nil); !errors.Is(err, tc.want) {
			t.Errorf("permissions %v: %v, want %v", tc.perms, err, tc.want)
		}
	}
	if n, _, err := k.PINRetries(ctx); err != nil || n != emu.MaxPINRetries {
		t.Errorf("retries %d %v", n, err)
	}
}
