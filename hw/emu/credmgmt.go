package emu

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"slices"

	"github.com/mfad/mfad/hw/ctap2"
)

// cmState is what the GetNext subcommands of credential management
// continue: the relying parties or credentials not yet returned. Any other
// command ends it.
type cmState struct {
	rps   []residentCredential // one per RP ID
	creds []residentCredential
}

// credMgmt is authenticatorCredentialManagement (CTAP 2.1 §6.8) over the
// resident credentials: metadata, enumeration of relying parties and of
// their credentials, deletion and user information update. Every
// subcommand but the GetNext ones needs a pinUvAuthToken with the cm
// permission. Called with a.mu held.
func (a *Authenticator) credMgmt(r *ctap2.CredentialManagementRequest) (any, error) {
	switch r.SubCommand {
	case ctap2.CredMgmtEnumerateRPsNext:
		if len(a.cm.rps) == 0 {
			return nil, ctap2.ErrNotAllowed
		}
		rc := a.cm.rps[0]
		a.cm.rps = a.cm.rps[1:]
		return rpResponse(rc, 0), nil
	case ctap2.CredMgmtEnumerateCredentialsNext:
		if len(a.cm.creds) == 0 {
			return nil, ctap2.ErrNotAllowed
		}
		rc := a.cm.creds[0]
		a.cm.creds = a.cm.creds[1:]
		return a.credentialResponse(rc, 0)
	case ctap2.CredMgmtGetMetadata, ctap2.CredMgmtEnumerateRPsBegin, ctap2.CredMgmtEnumerateCredentialsBegin,
		ctap2.CredMgmtDeleteCredential, ctap2.CredMgmtUpdateUserInformation:
	default:
		return nil, ctap2.ErrInvalidSubcommand
	}
	a.cm = cmState{}
	if r.PinUvAuthParam == nil {
		return nil, ctap2.ErrPUATRequired
	}
	proto, err := a.pinProtocol(r.PinUvAuthProtocol)
	if err != nil {
		return nil, err
	}
	if a.tokenPerms&ctap2.PermCredentialManagement == 0 || proto.Verify(a.token, ctap2.CredMgmtAuthMessage(r.SubCommand, r.Params), r.PinUvAuthParam) != nil {
		return nil, ctap2.ErrPINAuthInvalid
	}
	var p ctap2.CredMgmtParams
	if len(r.Params) > 0 {
		if err := ctap2.Unmarshal(r.Params, &p); err != nil {
			return nil, ctap2.ErrInvalidCBOR
		}
	}
	switch r.SubCommand {
	case ctap2.CredMgmtGetMetadata:
		n := uint64(len(a.st.Resident))
		left := uint64(MaxResidentCredentials) - n
		return &ctap2.CredentialManagementResponse{ExistingResidentCredentialsCount: &n, MaxPossibleRemainingResidentCredentialsCount: &left}, nil
	case ctap2.CredMgmtEnumerateRPsBegin:
		var rps []residentCredential
		for _, c := range a.st.Resident {
			if !slices.ContainsFunc(rps, func(x residentCredential) bool { return x.RPID == c.RPID }) {
				rps = append(rps, c)
			}
		}
		if len(rps) == 0 {
			return nil, ctap2.ErrNoCredentials
		}
		slices.SortFunc(rps, func(x, y residentCredential) int { return cmp.Compare(x.RPID, y.RPID) })
		a.cm.rps = rps[1:]
		return rpResponse(rps[0], uint64(len(rps))), nil
	case ctap2.CredMgmtEnumerateCredentialsBegin:
		if p.RPIDHash == nil {
			return nil, ctap2.ErrMissingParameter
		}
		var creds []residentCredential
		for _, c := range a.st.Resident {
			if h := sha256.Sum256([]byte(c.RPID)); bytes.Equal(h[:], p.RPIDHash) {
				creds = append(creds, c)
			}
		}
		if len(creds) == 0 {
			return nil, ctap2.ErrNoCredentials
		}
		slices.SortFunc(creds, func(x, y residentCredential) int { return cmp.Compare(y.Created, x.Created) })
		a.cm.creds = creds[1:]
		return a.credentialResponse(creds[0], uint64(len(creds)))
	}
	if p.CredentialID == nil {
		return nil, ctap2.ErrMissingParameter
	}
	i := slices.IndexFunc(a.st.Resident, func(c residentCredential) bool { return bytes.Equal(c.ID, p.CredentialID.ID) })
	if i < 0 {
		return nil, ctap2.ErrNoCredentials
	}
	if r.SubCommand == ctap2.CredMgmtDeleteCredential {
		a.st.Resident = slices.Delete(a.st.Resident, i, i+1)
		return nil, a.save()
	}
	if p.User == nil {
		return nil, ctap2.ErrMissingParameter
	}
	rc := &a.st.Resident[i]
	if !bytes.Equal(p.User.ID, rc.UserID) {
		return nil, ctap2.ErrInvalidParameter
	}
	rc.UserName, rc.DisplayName = p.User.Name, p.User.DisplayName
	return nil, a.save()
}

func rpResponse(rc residentCredential, total uint64) *ctap2.CredentialManagementResponse {
	h := sha256.Sum256([]byte(rc.RPID))
	return &ctap2.CredentialManagementResponse{RP: &ctap2.RPEntity{ID: rc.RPID, Name: rc.RPName}, RPIDHash: h[:], TotalRPs: total}
}

// credentialResponse describes one resident credential: its user, id,
// public key and credProtect level.
func (a *Authenticator) credentialResponse(rc residentCredential, total uint64) (*ctap2.CredentialManagementResponse, error) {
	h := sha256.Sum256([]byte(rc.RPID))
	k, flags, err := unwrap(a.st.WrapKey, rc.ID, h[:])
	if err != nil {
		return nil, ctap2.ErrOther
	}
	pub, err := k.cose()
	if err != nil {
		return nil, err
	}
	return &ctap2.CredentialManagementResponse{
		User:             &ctap2.UserEntity{ID: rc.UserID, Name: rc.UserName, DisplayName: rc.DisplayName},
		CredentialID:     &ctap2.CredentialDescriptor{Type: ctap2.CredentialTypePublicKey, ID: rc.ID},
		PublicKey:        pub,
		TotalCredentials: total,
		CredProtect:      uint64(protectLevel(flags)),
	}, nil
}
