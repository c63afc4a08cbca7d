package emu

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/mfad/mfad/hw/ctap2"
	"github.com/mfad/mfad/hw/ctaphid"
)

// located is a credential found for a GetAssertion.
type located struct {
	id    []byte
	key   *credKey
	flags byte                // the credential id's flag bits
	user  *residentCredential // nil for a non-resident credential
}

// nextAssertions is the state GetNextAssertion continues (CTAP 2.1 §6.3).
type nextAssertions struct {
	creds    []located
	rpIDHash []byte
	cdh      []byte
	hmac     *hmacRequest
	flags    ctap2.AuthDataFlags
	uv       bool
	total    int
	expires  time.Time
}

// CBOR implements ctaphid.Handler: it answers one CTAP2 request frame.
func (a *Authenticator) CBOR(ctx context.Context, req []byte, keepalive func(status byte)) []byte {
	a.req.Lock()
	defer a.req.Unlock()
	if s, ok := a.takeCTAPError(); ok {
		return []byte{s}
	}
	r, err := ctap2.ParseRequest(req)
	if err != nil {
		return ctap2.EncodeError(ctap2.StatusOf(err))
	}
	if keepalive == nil {
		keepalive = func(byte) {}
	}
	resp, err := a.handle(ctx, r, keepalive)
	if err != nil {
		return ctap2.EncodeError(ctap2.StatusOf(err))
	}
	if resp == nil {
		return []byte{ctap2.StatusOK}
	}
	b, err := ctap2.EncodeResponse(resp)
	if err != nil {
		return ctap2.EncodeError(ctap2.ErrOther)
	}
	return b
}

func (a *Authenticator) handle(ctx context.Context, r *ctap2.Request, keepalive func(byte)) (any, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if r.Command != ctap2.CmdGetNextAssertion {
		a.next = nil
	}
	if r.Command != ctap2.CmdCredentialManagement {
		a.cm = cmState{}
	}
	switch r.Command {
	case ctap2.CmdGetInfo:
		return a.getInfo(), nil
	case ctap2.CmdMakeCredential:
		return a.makeCredential(ctx, r.MakeCredential, keepalive)
	case ctap2.CmdGetAssertion:
		return a.getAssertion(ctx, r.GetAssertion, keepalive)
	case ctap2.CmdGetNextAssertion:
		return a.getNextAssertion()
	case ctap2.CmdClientPIN:
		if a.cfg.Options.NoClientPIN {
			return nil, ctap2.ErrInvalidCommand
		}
		return a.clientPIN(r.ClientPIN)
	case ctap2.CmdCredentialManagement:
		if a.cfg.Options.NoClientPIN || a.cfg.Options.NoResidentKeys {
			return nil, ctap2.ErrInvalidCommand
		}
		return a.credMgmt(r.CredMgmt)
	case ctap2.CmdReset:
		return nil, a.reset(ctx, keepalive)
	case ctap2.CmdSelection:
		return nil, a.presenceLocked(ctx, keepalive)
	}
	return nil, ctap2.ErrInvalidCommand
}

// presenceLocked runs a user presence test with a.mu released while it
// waits.
func (a *Authenticator) presenceLocked(ctx context.Context, keepalive func(byte)) error {
	a.mu.Unlock()
	defer a.mu.Lock()
	return a.waitPresence(ctx, keepalive)
}

func (a *Authenticator) getInfo() *ctap2.GetInfoResponse {
	opts := map[string]bool{
		ctap2.OptionResidentKey:    !a.cfg.Options.NoResidentKeys,
		ctap2.OptionUserPresence:   true,
		ctap2.OptionPlatformDevice: false,
	}
	if !a.cfg.Options.NoClientPIN {
		opts[ctap2.OptionClientPIN] = a.st.PINHash != nil
		opts[ctap2.OptionPinUvAuthToken] = true
		opts[ctap2.OptionCredMgmt] = !a.cfg.Options.NoResidentKeys
	}
	if a.cfg.Options.UV {
		opts[ctap2.OptionUserVerification] = true
	}
	info := &ctap2.GetInfoResponse{
		Versions:                 []string{ctap2.VersionU2F, ctap2.VersionFIDO20, ctap2.VersionFIDO21},
		Extensions:               []string{extCredProtect, extHMACSecret},
		AAGUID:                   AAGUID[:],
		Options:                  opts,
		MaxMsgSize:               MaxMsgSize,
		MaxCredentialCountInList: maxCredentialsInList,
		MaxCredentialIDLength:    credIDLen,
		Transports:               []string{"usb"},
		Algorithms: []ctap2.CredentialParameter{
			{Type: ctap2.CredentialTypePublicKey, Alg: ctap2.AlgES256},
			{Type: ctap2.CredentialTypePublicKey, Alg: ctap2.AlgEdDSA},
		},
		MinPINLength:    MinPINLength,
		FirmwareVersion: 1,
	}
	if !a.cfg.Options.NoClientPIN {
		info.PinUvAuthProtocols = []uint64{2, 1}
	}
	if !a.cfg.Options.NoResidentKeys {
		n := uint64(MaxResidentCredentials - len(a.st.Resident))
		info.RemainingDiscoverableCredentials = &n
	}
	return info
}

// pinProtocol checks the pinUvAuthProtocol of a request that carries a
// pinUvAuthParam (CTAP 2.1 §6.1.2 steps 2.1-2.2).
func (a *Authenticator) pinProtocol(v uint64) (ctap2.PINProtocol, error) {
	if v == 0 {
		return nil, fmt.Errorf("emu: pinUvAuthProtocol: %w", ctap2.ErrMissingParameter)
	}
	if a.cfg.Options.NoClientPIN {
		return nil, ctap2.ErrInvalidParameter
	}
	return ctap2.PINProtocolByVersion(v)
}

// probe answers the zero-length pinUvAuthParam a platform sends to have
// the user pick a key (CTAP 2.1 §6.1.2 step 1).
func (a *Authenticator) probe(ctx context.Context, keepalive func(byte)) error {
	if err := a.presenceLocked(ctx, keepalive); err != nil {
		return err
	}
	if a.st.PINHash != nil {
		return ctap2.ErrPINInvalid
	}
	return ctap2.ErrPINNotSet
}

func (a *Authenticator) makeCredential(ctx context.Context, r *ctap2.MakeCredentialRequest, keepalive func(byte)) (any, error) {
	if r.PinUvAuthParam != nil && len(r.PinUvAuthParam) == 0 {
		return nil, a.probe(ctx, keepalive)
	}
	var proto ctap2.PINProtocol
	if r.PinUvAuthParam != nil {
		var err error
		if proto, err = a.pinProtocol(r.PinUvAuthProtocol); err != nil {
			return nil, err
		}
	}
	alg := ctap2.COSEAlgorithm(0)
	for _, p := range r.PubKeyCredParams {
		if p.Type == ctap2.CredentialTypePublicKey && (p.Alg == ctap2.AlgES256 || p.Alg == ctap2.AlgEdDSA) {
			alg = p.Alg
			break
		}
	}
	if alg == 0 {
		return nil, ctap2.ErrUnsupportedAlgorithm
	}
	ext, err := parseMCExtensions(r.Extensions)
	if err != nil {
		return nil, err
	}
	rk, _ := r.Option(ctap2.OptionResidentKey)
	if rk && a.cfg.Options.NoResidentKeys {
		return nil, ctap2.ErrUnsupportedOption
	}
	if up, ok := r.Option(ctap2.OptionUserPresence); ok && !up {
		return nil, ctap2.ErrInvalidOption
	}
	uvOpt, _ := r.Option(ctap2.OptionUserVerification)
	if uvOpt && (!a.cfg.Options.UV || r.PinUvAuthParam != nil) {
		return nil, ctap2.ErrInvalidOption
	}
	uv := false
	switch {
	case proto != nil:
		if err := a.verifyToken(proto, r.PinUvAuthParam, r.ClientDataHash, ctap2.PermMakeCredential, r.RP.ID); err != nil {
			return nil, err
		}
		uv = true
	case uvOpt:
		uv = true // built-in UV: the touch below stands for it
	case a.st.PINHash != nil:
		return nil, ctap2.ErrPUATRequired
	}
	rpIDHash := sha256.Sum256([]byte(r.RP.ID))
	for _, d := range r.ExcludeList {
		if d.Type != ctap2.CredentialTypePublicKey {
			continue
		}
		// A credential that needs user verification is excluded only
		// when the user was verified (CTAP 2.1 §6.1.2 step 7).
		if _, idFlags, err := unwrap(a.st.WrapKey, d.ID, rpIDHash[:]); err == nil && (uv || protectLevel(idFlags) != protectUVRequired) {
			if err := a.presenceLocked(ctx, keepalive); err != nil && err != ctap2.ErrUserActionTimeout {
				return nil, err
			}
			return nil, ctap2.ErrCredentialExcluded
		}
	}
	if rk && len(a.st.Resident) >= MaxResidentCredentials && a.findResident(r.RP.ID, r.User.ID) < 0 {
		return nil, ctap2.ErrKeyStoreFull
	}
	if err := a.presenceLocked(ctx, keepalive); err != nil {
		return nil, err
	}
	key, err := newCredKey(alg, a.rnd)
	if err != nil {
		return nil, err
	}
	idFlags := ext.flags()
	if rk {
		idFlags |= credFlagResident
	}
	id, err := wrap(a.st.WrapKey, a.rnd, key, rpIDHash[:], idFlags)
	if err != nil {
		return nil, err
	}
	extOut, err := ext.output()
	if err != nil {
		return nil, err
	}
	pub, err := key.cose()
	if err != nil {
		return nil, err
	}
	if rk {
		rc := residentCredential{
			ID: id, RPID: r.RP.ID, RPName: r.RP.Name, UserID: r.User.ID,
			UserName: r.User.Name, DisplayName: r.User.DisplayName, Created: a.nextCreated(),
		}
		if i := a.findResident(r.RP.ID, r.User.ID); i >= 0 {
			a.st.Resident[i] = rc
		} else {
			a.st.Resident = append(a.st.Resident, rc)
		}
	}
	flags := ctap2.FlagUP
	if uv {
		flags |= ctap2.FlagUV
	}
	a.st.Counter++
	ad := ctap2.AuthData{
		RPIDHash:  rpIDHash,
		Flags:     flags,
		SignCount: a.st.Counter,
		AttestedCredential: &ctap2.AttestedCredentialData{
			AAGUID:       AAGUID,
			CredentialID: id,
			PublicKey:    pub,
		},
		Extensions: extOut,
	}
	authData, err := ad.Marshal()
	if err != nil {
		return nil, err
	}
	sig, err := signES256(a.rnd, a.batchKey, append(append([]byte(nil), authData...), r.ClientDataHash...))
	if err != nil {
		return nil, err
	}
	attStmt, err := ctap2.Marshal(&ctap2.AttestationStatement{Alg: ctap2.AlgES256, Sig: sig, X5C: [][]byte{a.batchCert.Raw}})
	if err != nil {
		return nil, err
	}
	if err := a.save(); err != nil {
		return nil, err
	}
	return &ctap2.MakeCredentialResponse{Fmt: "packed", AuthData: authData, AttStmt: attStmt}, nil
}

func signES256(rnd io.Reader, k *ecdsa.PrivateKey, msg []byte) ([]byte, error) {
	h := sha256.Sum256(msg)
	return ecdsa.SignASN1(rnd, k, h[:])
}

func (a *Authenticator) nextCreated() uint64 {
	var m uint64
	for _, c := range a.st.Resident {
		m = max(m, c.Created)
	}
	return m + 1
}

func (a *Authenticator) findResident(rpID string, userID []byte) int {
	for i, c := range a.st.Resident {
		if c.RPID == rpID && bytes.Equal(c.UserID, userID) {
			return i
		}
	}
	return -1
}

func (a *Authenticator) residentByID(id []byte) *residentCredential {
	for i := range a.st.Resident {
		if bytes.Equal(a.st.Resident[i].ID, id) {
			return &a.st.Resident[i]
		}
	}
	return nil
}

func (a *Authenticator) getAssertion(ctx context.Context, r *ctap2.GetAssertionRequest, keepalive func(byte)) (any, error) {
	if r.PinUvAuthParam != nil && len(r.PinUvAuthParam) == 0 {
		return nil, a.probe(ctx, keepalive)
	}
	var proto ctap2.PINProtocol
	if r.PinUvAuthParam != nil {
		var err error
		if proto, err = a.pinProtocol(r.PinUvAuthProtocol); err != nil {
			return nil, err
		}
	}
	if _, ok := r.Option(ctap2.OptionResidentKey); ok {
		return nil, ctap2.ErrUnsupportedOption
	}
	up := true
	if v, ok := r.Option(ctap2.OptionUserPresence); ok {
		up = v
	}
	uvOpt, _ := r.Option(ctap2.OptionUserVerification)
	if uvOpt && (!a.cfg.Options.UV || r.PinUvAuthParam != nil) {
		return nil, ctap2.ErrInvalidOption
	}
	uv := uvOpt
	if proto != nil {
		if err := a.verifyToken(proto, r.PinUvAuthParam, r.ClientDataHash, ctap2.PermGetAssertion, r.RPID); err != nil {
			return nil, err
		}
		uv = true
	}
	hs, err := a.parseHMACSecret(r.Extensions)
	if err != nil {
		return nil, err
	}
	rpIDHash := sha256.Sum256([]byte(r.RPID))
	var creds []located
	if len(r.AllowList) > 0 {
		for _, d := range r.AllowList {
			if d.Type != ctap2.CredentialTypePublicKey || slices.ContainsFunc(creds, func(c located) bool { return bytes.Equal(c.id, d.ID) }) {
				continue
			}
			k, idFlags, err := unwrap(a.st.WrapKey, d.ID, rpIDHash[:])
			if err != nil || !uv && !usableWithoutUV(idFlags, true) {
				continue
			}
			c := located{id: d.ID, key: k, flags: idFlags}
			if idFlags&credFlagResident != 0 {
				c.user = a.residentByID(d.ID)
			}
			creds = append(creds, c)
		}
		if len(creds) > 1 {
			creds = creds[:1] // with an allowList, the authenticator picks one
		}
	} else {
		var rs []residentCredential
		for _, c := range a.st.Resident {
			if c.RPID == r.RPID {
				rs = append(rs, c)
			}
		}
		slices.SortFunc(rs, func(x, y residentCredential) int { return cmp.Compare(y.Created, x.Created) }) // newest first
		for i := range rs {
			k, idFlags, err := unwrap(a.st.WrapKey, rs[i].ID, rpIDHash[:])
			if err != nil || !uv && !usableWithoutUV(idFlags, false) {
				continue
			}
			creds = append(creds, located{id: rs[i].ID, key: k, flags: idFlags, user: &rs[i]})
		}
	}
	if len(creds) == 0 {
		return nil, ctap2.ErrNoCredentials
	}
	var flags ctap2.AuthDataFlags
	if up {
		if err := a.presenceLocked(ctx, keepalive); err != nil {
			return nil, err
		}
		flags |= ctap2.FlagUP
	} else if uvOpt {
		if err := a.presenceLocked(ctx, keepalive); err != nil { // built-in UV needs the user too
			return nil, err
		}
	}
	if uv {
		flags |= ctap2.FlagUV
	}
	resp, err := a.assert(creds[0], rpIDHash[:], r.ClientDataHash, flags, uv, hs)
	if err != nil {
		return nil, err
	}
	if len(creds) > 1 {
		resp.NumberOfCredentials = uint64(len(creds))
		a.next = &nextAssertions{
			creds: creds[1:], rpIDHash: rpIDHash[:], cdh: r.ClientDataHash, hmac: hs,
			flags: flags, uv: uv, total: len(creds), expires: a.now().Add(nextAssertionTimeout),
		}
	}
	return resp, nil
}

func (a *Authenticator) getNextAssertion() (any, error) {
	n := a.next
	if n == nil || len(n.creds) == 0 || a.now().After(n.expires) {
		a.next = nil
		return nil, ctap2.ErrNotAllowed
	}
	c := n.creds[0]
	n.creds = n.creds[1:]
	n.expires = a.now().Add(nextAssertionTimeout)
	return a.assert(c, n.rpIDHash, n.cdh, n.flags, n.uv, n.hmac)
}

// assert signs one assertion, advancing the global counter, with the
// hmac-secret output when asked for and the credential was made with it.
func (a *Authenticator) assert(c located, rpIDHash, cdh []byte, flags ctap2.AuthDataFlags, uv bool, hs *hmacRequest) (*ctap2.GetAssertionResponse, error) {
	a.st.Counter++
	ad := ctap2.AuthData{Flags: flags, SignCount: a.st.Counter}
	copy(ad.RPIDHash[:], rpIDHash)
	if hs != nil && c.flags&credFlagHMACSecret != 0 {
		out, err := hs.output(a.st.WrapKey, c.id, uv)
		if err != nil {
			return nil, err
		}
		if ad.Extensions, err = ctap2.Marshal(map[string][]byte{extHMACSecret: out}); err != nil {
			return nil, err
		}
	}
	authData, err := ad.Marshal()
	if err != nil {
		return nil, err
	}
	sig, err := c.key.sign(a.rnd, append(append([]byte(nil), authData...), cdh...))
	if err != nil {
		return nil, err
	}
	if err := a.save(); err != nil {
		return nil, err
	}
	resp := &ctap2.GetAssertionResponse{
		Credential: &ctap2.CredentialDescriptor{Type: ctap2.CredentialTypePublicKey, ID: c.id},
		AuthData:   authData,
		Signature:  sig,
	}
	if c.user != nil {
		resp.User = &ctap2.UserEntity{ID: c.user.UserID}
		if uv {
			resp.User.Name, resp.User.DisplayName = c.user.UserName, c.user.DisplayName
		}
	}
	return resp, nil
}

// reset is authenticatorReset (CTAP 2.1 §6.6): within ResetWindow of
// power-up and with the user's touch, it forgets every credential and the
// PIN. The attestation identity and the counter stay.
func (a *Authenticator) reset(ctx context.Context, keepalive func(byte)) error {
	if a.now().Sub(a.powerUp) > ResetWindow {
		return ctap2.ErrNotAllowed
	}
	if err := a.presenceLocked(ctx, keepalive); err != nil {
		return err
	}
	wrapKey := make([]byte, 32)
	if _, err := io.ReadFull(a.rnd, wrapKey); err != nil {
		return err
	}
	a.st.WrapKey = wrapKey
	a.st.Resident = nil
	a.st.PINHash = nil
	a.st.PINRetries = MaxPINRetries
	a.pinFails = 0
	if err := a.newToken(); err != nil {
		return err
	}
	return a.save()
}

var _ ctaphid.Handler = (*Authenticator)(nil)
