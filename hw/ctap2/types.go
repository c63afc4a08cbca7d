package ctap2

import (
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// CredentialTypePublicKey is the only credential type (WebAuthn §5.8.2).
const CredentialTypePublicKey = "public-key"

// Option keys of GetInfo, MakeCredential and GetAssertion
// (CTAP 2.1 §6.4 options, §6.1 and §6.2 options parameter).
const (
	OptionResidentKey      = "rk"
	OptionUserPresence     = "up"
	OptionUserVerification = "uv"
	OptionPlatformDevice   = "plat"
	OptionClientPIN        = "clientPin"
	OptionPinUvAuthToken   = "pinUvAuthToken"
	OptionMakeCredUvNotRqd = "makeCredUvNotRqd"
	OptionAlwaysUv         = "alwaysUv"
	OptionCredMgmt         = "credMgmt"
)

// Versions strings of GetInfo (CTAP 2.1 §6.4 versions).
const (
	VersionU2F       = "U2F_V2"
	VersionFIDO20    = "FIDO_2_0"
	VersionFIDO21    = "FIDO_2_1"
	VersionFIDO21PRE = "FIDO_2_1_PRE"
)

// RPEntity is a PublicKeyCredentialRpEntity (WebAuthn §5.4.2).
type RPEntity struct {
	ID   string `cbor:"id"`
	Name string `cbor:"name,omitempty"`
}

// UserEntity is a PublicKeyCredentialUserEntity (WebAuthn §5.4.3). A
// GetAssertion response may carry the id alone.
type UserEntity struct {
	ID          []byte `cbor:"id"`
	Name        string `cbor:"name,omitempty"`
	DisplayName string `cbor:"displayName,omitempty"`
}

// CredentialParameter is a PublicKeyCredentialParameters (WebAuthn §5.3),
// used in pubKeyCredParams and in GetInfo algorithms.
type CredentialParameter struct {
	Type string        `cbor:"type"`
	Alg  COSEAlgorithm `cbor:"alg"`
}

// CredentialDescriptor is a PublicKeyCredentialDescriptor (WebAuthn
// §5.8.3), used in excludeList, allowList and GetAssertion responses.
type CredentialDescriptor struct {
	Type       string   `cbor:"type"`
	ID         []byte   `cbor:"id"`
	Transports []string `cbor:"transports,omitempty"`
}

// GetInfoResponse is the authenticatorGetInfo response (CTAP 2.1 §6.4,
// CTAP 2.2 §6.4 for members 0x16 and above). Optional members absent from
// the response are zero; members whose zero value is meaningful are
// pointers.
type GetInfoResponse struct {
	Versions                         []string              `cbor:"1,keyasint"`
	Extensions                       []string              `cbor:"2,keyasint,omitempty"`
	AAGUID                           []byte                `cbor:"3,keyasint"`
	Options                          map[string]bool       `cbor:"4,keyasint,omitempty"`
	MaxMsgSize                       uint64                `cbor:"5,keyasint,omitempty"`
	PinUvAuthProtocols               []uint64              `cbor:"6,keyasint,omitempty"`
	MaxCredentialCountInList         uint64                `cbor:"7,keyasint,omitempty"`
	MaxCredentialIDLength            uint64                `cbor:"8,keyasint,omitempty"`
	Transports                       []string              `cbor:"9,keyasint,omitempty"`
	Algorithms                       []CredentialParameter `cbor:"10,keyasint,omitempty"`
	MaxSerializedLargeBlobArray      uint64                `cbor:"11,keyasint,omitempty"`
	ForcePINChange                   *bool                 `cbor:"12,keyasint,omitempty"`
	MinPINLength                     uint64                `cbor:"13,keyasint,omitempty"`
	FirmwareVersion                  uint64                `cbor:"14,keyasint,omitempty"`
	MaxCredBlobLength                uint64                `cbor:"15,keyasint,omitempty"`
	MaxRPIDsForSetMinPINLength       uint64                `cbor:"16,keyasint,omitempty"`
	PreferredPlatformUvAttempts      uint64                `cbor:"17,keyasint,omitempty"`
	UvModality                       uint64                `cbor:"18,keyasint,omitempty"`
	Certifications                   map[string]uint64     `cbor:"19,keyasint,omitempty"`
	RemainingDiscoverableCredentials *uint64               `cbor:"20,keyasint,omitempty"`
	VendorPrototypeConfigCommands    []uint64              `cbor:"21,keyasint,omitempty"`
	AttestationFormats               []string              `cbor:"22,keyasint,omitempty"`
	UvCountSinceLastPINEntry         *uint64               `cbor:"23,keyasint,omitempty"`
	LongTouchForReset                *bool                 `cbor:"24,keyasint,omitempty"`
	EncIdentifier                    []byte                `cbor:"25,keyasint,omitempty"`
	TransportsForReset               []string              `cbor:"26,keyasint,omitempty"`
	PINComplexityPolicy              *bool                 `cbor:"27,keyasint,omitempty"`
	PINComplexityPolicyURL           []byte                `cbor:"28,keyasint,omitempty"`
	MaxPINLength                     uint64                `cbor:"29,keyasint,omitempty"`
	EncCredStoreState                []byte                `cbor:"30,keyasint,omitempty"`
	AuthenticatorConfigCommands      []uint64              `cbor:"31,keyasint,omitempty"`
}

func (r *GetInfoResponse) validate() error {
	if len(r.Versions) == 0 {
		return fmt.Errorf("getInfo: versions (0x01): %w", ErrMissingParameter)
	}
	if len(r.AAGUID) != 16 {
		return fmt.Errorf("getInfo: aaguid (0x03) is %d bytes, want 16", len(r.AAGUID))
	}
	return nil
}

// Option reports the value of a GetInfo option and whether the
// authenticator lists it at all.
func (r *GetInfoResponse) Option(name string) (value, present bool) {
	value, present = r.Options[name]
	return value, present
}

// SupportsPinUvAuthProtocol reports whether version is in pinUvAuthProtocols.
func (r *GetInfoResponse) SupportsPinUvAuthProtocol(version uint64) bool {
	for _, v := range r.PinUvAuthProtocols {
		if v == version {
			return true
		}
	}
	return false
}

// MakeCredentialRequest holds the authenticatorMakeCredential parameters
// (CTAP 2.1 §6.1, CTAP 2.2 §6.1 for 0x0B). Extension inputs are kept as raw
// CBOR, keyed by extension identifier. A nil PinUvAuthParam is absent; an
// empty non-nil one is sent as a zero-length byte string, the probe a
// platform uses to have the user pick an authenticator by touch
// (CTAP 2.1 §6.1.2 step 1); ParseRequest keeps the distinction.
type MakeCredentialRequest struct {
	ClientDataHash               []byte                     `cbor:"1,keyasint"`
	RP                           *RPEntity                  `cbor:"2,keyasint"`
	User                         *UserEntity                `cbor:"3,keyasint"`
	PubKeyCredParams             []CredentialParameter      `cbor:"4,keyasint"`
	ExcludeList                  []CredentialDescriptor     `cbor:"5,keyasint,omitempty"`
	Extensions                   map[string]cbor.RawMessage `cbor:"6,keyasint,omitempty"`
	Options                      map[string]bool            `cbor:"7,keyasint,omitempty"`
	PinUvAuthParam               []byte                     `cbor:"8,keyasint,omitzero"`
	PinUvAuthProtocol            uint64                     `cbor:"9,keyasint,omitempty"`
	EnterpriseAttestation        uint64                     `cbor:"10,keyasint,omitempty"`
	AttestationFormatsPreference []string                   `cbor:"11,keyasint,omitempty"`
}

func (r *MakeCredentialRequest) validate() error {
	switch {
	case r.ClientDataHash == nil:
		return fmt.Errorf("clientDataHash (0x01): %w", ErrMissingParameter)
	case r.RP == nil || r.RP.ID == "":
		return fmt.Errorf("rp (0x02) or rp.id: %w", ErrMissingParameter)
	case r.User == nil || r.User.ID == nil:
		return fmt.Errorf("user (0x03) or user.id: %w", ErrMissingParameter)
	case r.PubKeyCredParams == nil:
		return fmt.Errorf("pubKeyCredParams (0x04): %w", ErrMissingParameter)
	}
	for i, p := range r.PubKeyCredParams {
		if p.Type == "" {
			return fmt.Errorf("pubKeyCredParams[%d].type: %w", i, ErrMissingParameter)
		}
	}
	return validateDescriptors("excludeList (0x05)", r.ExcludeList)
}

func validateDescriptors(what string, list []CredentialDescriptor) error {
	for i, d := range list {
		if d.Type == "" || d.ID == nil {
			return fmt.Errorf("%s[%d]: type or id: %w", what, i, ErrMissingParameter)
		}
	}
	return nil
}

// Option reports an option of the request and whether it was given.
func (r *MakeCredentialRequest) Option(name string) (value, present bool) {
	value, present = r.Options[name]
	return value, present
}

// MakeCredentialResponse is the authenticatorMakeCredential response, an
// attestation object with integer keys (CTAP 2.1 §6.1). AuthData is the raw
// authenticator data (see ParseAuthData); AttStmt is the raw CBOR map of the
// attestation statement, its shape given by Fmt (see ParseAttestationStatement).
type MakeCredentialResponse struct {
	Fmt                      string          `cbor:"1,keyasint"`
	AuthData                 []byte          `cbor:"2,keyasint"`
	AttStmt                  cbor.RawMessage `cbor:"3,keyasint"`
	EPAtt                    *bool           `cbor:"4,keyasint,omitempty"`
	LargeBlobKey             []byte          `cbor:"5,keyasint,omitempty"`
	UnsignedExtensionOutputs cbor.RawMessage `cbor:"6,keyasint,omitempty"`
}

func (r *MakeCredentialResponse) validate() error {
	switch {
	case r.Fmt == "":
		return fmt.Errorf("makeCredential: fmt (0x01): %w", ErrMissingParameter)
	case r.AuthData == nil:
		return fmt.Errorf("makeCredential: authData (0x02): %w", ErrMissingParameter)
	case len(r.AttStmt) == 0:
		return fmt.Errorf("makeCredential: attStmt (0x03): %w", ErrMissingParameter)
	}
	return nil
}

// AttestationStatement is the attestation statement of the "packed"
// (WebAuthn §8.2) and "fido-u2f" (WebAuthn §8.6) formats. Alg is zero for
// fido-u2f, X5C empty for packed self attestation. The format "none" has
// an empty statement.
type AttestationStatement struct {
	Alg COSEAlgorithm `cbor:"alg,omitempty"`
	Sig []byte        `cbor:"sig"`
	X5C [][]byte      `cbor:"x5c,omitempty"`
}

// ParseAttestationStatement decodes a packed or fido-u2f attestation
// statement. It needs a signature; certificates are not parsed here.
func ParseAttestationStatement(raw []byte) (*AttestationStatement, error) {
	var s AttestationStatement
	if err := Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("ctap2: attStmt: %w", err)
	}
	if len(s.Sig) == 0 {
		return nil, fmt.Errorf("%w: attStmt without sig", ErrMalformed)
	}
	return &s, nil
}

// GetAssertionRequest holds the authenticatorGetAssertion parameters
// (CTAP 2.1 §6.2). PinUvAuthParam is nil when absent and empty non-nil
// when sent as a zero-length byte string, as in MakeCredentialRequest.
type GetAssertionRequest struct {
	RPID              string                     `cbor:"1,keyasint"`
	ClientDataHash    []byte                     `cbor:"2,keyasint"`
	AllowList         []CredentialDescriptor     `cbor:"3,keyasint,omitempty"`
	Extensions        map[string]cbor.RawMessage `cbor:"4,keyasint,omitempty"`
	Options           map[string]bool            `cbor:"5,keyasint,omitempty"`
	PinUvAuthParam    []byte                     `cbor:"6,keyasint,omitzero"`
	PinUvAuthProtocol uint64                     `cbor:"7,keyasint,omitempty"`
}

func (r *GetAssertionRequest) validate() error {
	switch {
	case r.RPID == "":
		return fmt.Errorf("rpId (0x01): %w", ErrMissingParameter)
	case r.ClientDataHash == nil:
		return fmt.Errorf("clientDataHash (0x02): %w", ErrMissingParameter)
	}
	return validateDescriptors("allowList (0x03)", r.AllowList)
}

// Option reports an option of the request and whether it was given.
func (r *GetAssertionRequest) Option(name string) (value, present bool) {
	value, present = r.Options[name]
	return value, present
}

// GetAssertionResponse is the authenticatorGetAssertion and
// authenticatorGetNextAssertion response (CTAP 2.1 §6.2). Credential may
// be absent when the allowList held exactly one credential.
type GetAssertionResponse struct {
	Credential               *CredentialDescriptor `cbor:"1,keyasint,omitempty"`
	AuthData                 []byte                `cbor:"2,keyasint"`
	Signature                []byte                `cbor:"3,keyasint"`
	User                     *UserEntity           `cbor:"4,keyasint,omitempty"`
	NumberOfCredentials      uint64                `cbor:"5,keyasint,omitempty"`
	UserSelected             *bool                 `cbor:"6,keyasint,omitempty"`
	LargeBlobKey             []byte                `cbor:"7,keyasint,omitempty"`
	UnsignedExtensionOutputs cbor.RawMessage       `cbor:"8,keyasint,omitempty"`
}

func (r *GetAssertionResponse) validate() error {
	switch {
	case r.AuthData == nil:
		return fmt.Errorf("getAssertion: authData (0x02): %w", ErrMissingParameter)
	case len(r.Signature) == 0:
		return fmt.Errorf("getAssertion: signature (0x03): %w", ErrMissingParameter)
	case r.Credential != nil && r.Credential.ID == nil:
		return fmt.Errorf("getAssertion: credential.id: %w", ErrMissingParameter)
	case r.User != nil && r.User.ID == nil:
		return fmt.Errorf("getAssertion: user.id: %w", ErrMissingParameter)
	}
	return nil
}

// PINSubCommand is the subCommand of authenticatorClientPIN (CTAP 2.1 §6.5.5).
type PINSubCommand uint64

// ClientPIN subcommands, CTAP 2.1 §6.5.5 "authenticatorClientPIN".
const (
	PINGetRetries                      PINSubCommand = 0x01 // getPINRetries, §6.5.5.2
	PINGetKeyAgreement                 PINSubCommand = 0x02 // getKeyAgreement, §6.5.5.4
	PINSet                             PINSubCommand = 0x03 // setPIN, §6.5.5.5
	PINChange                          PINSubCommand = 0x04 // changePIN, §6.5.5.6
	PINGetToken                        PINSubCommand = 0x05 // getPinToken, §6.5.5.7.1
	PINGetTokenUsingUvWithPermissions  PINSubCommand = 0x06 // getPinUvAuthTokenUsingUvWithPermissions, §6.5.5.7.3
	PINGetUVRetries                    PINSubCommand = 0x07 // getUVRetries, §6.5.5.3
	PINGetTokenUsingPinWithPermissions PINSubCommand = 0x09 // getPinUvAuthTokenUsingPinWithPermissions, §6.5.5.7.2
)

// Permission is the permissions bit set of a pinUvAuthToken
// (CTAP 2.1 §6.5.5.7 "Operations to Obtain a pinUvAuthToken", permissions).
type Permission uint64

// Permission bits, CTAP 2.1 §6.5.5.7 and CTAP 2.2 §6.5.5.7.
const (
	PermMakeCredential       Permission = 0x01 // mc
	PermGetAssertion         Permission = 0x02 // ga
	PermCredentialManagement Permission = 0x04 // cm
	PermBioEnrollment        Permission = 0x08 // be
	PermLargeBlobWrite       Permission = 0x10 // lbw
	PermAuthenticatorConfig  Permission = 0x20 // acfg
	PermPerCredMgmtReadOnly  Permission = 0x40 // pcmr (CTAP 2.2)
)

// ClientPINRequest holds the authenticatorClientPIN parameters
// (CTAP 2.1 §6.5.5, keys 0x07 and 0x08 are reserved).
type ClientPINRequest struct {
	PinUvAuthProtocol uint64        `cbor:"1,keyasint,omitempty"`
	SubCommand        PINSubCommand `cbor:"2,keyasint"`
	KeyAgreement      *COSEKey      `cbor:"3,keyasint,omitempty"`
	PinUvAuthParam    []byte        `cbor:"4,keyasint,omitempty"`
	NewPINEnc         []byte        `cbor:"5,keyasint,omitempty"`
	PINHashEnc        []byte        `cbor:"6,keyasint,omitempty"`
	// Permissions is nil when absent, which getPinUvAuthTokenUsing...
	// WithPermissions tells apart from 0 (§6.5.5.7.2 step 1 and 3).
	Permissions *Permission `cbor:"9,keyasint,omitempty"`
	RPID        string      `cbor:"10,keyasint,omitempty"`
}

func (r *ClientPINRequest) validate() error {
	if r.SubCommand == 0 {
		return fmt.Errorf("subCommand (0x02): %w", ErrMissingParameter)
	}
	return nil
}

// ClientPINResponse is the authenticatorClientPIN response
// (CTAP 2.1 §6.5.5). Members whose zero value is meaningful are pointers.
type ClientPINResponse struct {
	KeyAgreement    *COSEKey `cbor:"1,keyasint,omitempty"`
	PinUvAuthToken  []byte   `cbor:"2,keyasint,omitempty"`
	PINRetries      *uint64  `cbor:"3,keyasint,omitempty"`
	PowerCycleState *bool    `cbor:"4,keyasint,omitempty"`
	UVRetries       *uint64  `cbor:"5,keyasint,omitempty"`
}

// CredMgmtSubCommand is the subCommand of authenticatorCredentialManagement
// (CTAP 2.1 §6.8).
type CredMgmtSubCommand uint64

// Credential management subcommands, CTAP 2.1 §6.8.
const (
	CredMgmtGetMetadata               CredMgmtSubCommand = 0x01 // getCredsMetadata, §6.8.2
	CredMgmtEnumerateRPsBegin         CredMgmtSubCommand = 0x02 // enumerateRPsBegin, §6.8.3
	CredMgmtEnumerateRPsNext          CredMgmtSubCommand = 0x03 // enumerateRPsGetNextRP, §6.8.3
	CredMgmtEnumerateCredentialsBegin CredMgmtSubCommand = 0x04 // enumerateCredentialsBegin, §6.8.4
	CredMgmtEnumerateCredentialsNext  CredMgmtSubCommand = 0x05 // enumerateCredentialsGetNextCredential, §6.8.4
	CredMgmtDeleteCredential          CredMgmtSubCommand = 0x06 // deleteCredential, §6.8.5
	CredMgmtUpdateUserInformation     CredMgmtSubCommand = 0x07 // updateUserInformation, §6.8.6
)

// CredMgmtParams are the subCommandParams of authenticatorCredentialManagement.
type CredMgmtParams struct {
	RPIDHash     []byte                `cbor:"1,keyasint,omitempty"`
	CredentialID *CredentialDescriptor `cbor:"2,keyasint,omitempty"`
	User         *UserEntity           `cbor:"3,keyasint,omitempty"`
}

// CredentialManagementRequest holds the authenticatorCredentialManagement
// parameters (CTAP 2.1 §6.8). Params is kept as the CBOR sent, because
// pinUvAuthParam authenticates those bytes (see CredMgmtAuthMessage).
type CredentialManagementRequest struct {
	SubCommand        CredMgmtSubCommand `cbor:"1,keyasint"`
	Params            cbor.RawMessage    `cbor:"2,keyasint,omitempty"`
	PinUvAuthProtocol uint64             `cbor:"3,keyasint,omitempty"`
	PinUvAuthParam    []byte             `cbor:"4,keyasint,omitempty"`
}

func (r *CredentialManagementRequest) validate() error {
	if r.SubCommand == 0 {
		return fmt.Errorf("subCommand (0x01): %w", ErrMissingParameter)
	}
	return nil
}

// CredMgmtAuthMessage is what a credential management pinUvAuthParam
// authenticates: the subCommand byte followed by the subCommandParams as
// sent (CTAP 2.1 §6.8.2-§6.8.6).
func CredMgmtAuthMessage(sub CredMgmtSubCommand, params []byte) []byte {
	return append([]byte{byte(sub)}, params...)
}

// CredentialManagementResponse is the authenticatorCredentialManagement
// response (CTAP 2.1 §6.8); each subcommand fills its own members.
type CredentialManagementResponse struct {
	ExistingResidentCredentialsCount             *uint64               `cbor:"1,keyasint,omitempty"`
	MaxPossibleRemainingResidentCredentialsCount *uint64               `cbor:"2,keyasint,omitempty"`
	RP                                           *RPEntity             `cbor:"3,keyasint,omitempty"`
	RPIDHash                                     []byte                `cbor:"4,keyasint,omitempty"`
	TotalRPs                                     uint64                `cbor:"5,keyasint,omitempty"`
	User                                         *UserEntity           `cbor:"6,keyasint,omitempty"`
	CredentialID                                 *CredentialDescriptor `cbor:"7,keyasint,omitempty"`
	PublicKey                                    cbor.RawMessage       `cbor:"8,keyasint,omitempty"`
	TotalCredentials                             uint64                `cbor:"9,keyasint,omitempty"`
	CredProtect                                  uint64                `cbor:"10,keyasint,omitempty"`
}
