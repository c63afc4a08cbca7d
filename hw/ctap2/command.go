package ctap2

import (
	"context"
	"fmt"
)

// Command is the first byte of a CTAP2 request frame (CTAP 2.1 §6
// "Authenticator API", command values in §6 and §8.1).
type Command byte

// Commands this package models.
const (
	CmdMakeCredential       Command = 0x01 // authenticatorMakeCredential, CTAP 2.1 §6.1
	CmdGetAssertion         Command = 0x02 // authenticatorGetAssertion, CTAP 2.1 §6.2
	CmdGetInfo              Command = 0x04 // authenticatorGetInfo, CTAP 2.1 §6.4
	CmdClientPIN            Command = 0x06 // authenticatorClientPIN, CTAP 2.1 §6.5
	CmdReset                Command = 0x07 // authenticatorReset, CTAP 2.1 §6.6
	CmdGetNextAssertion     Command = 0x08 // authenticatorGetNextAssertion, CTAP 2.1 §6.3
	CmdCredentialManagement Command = 0x0A // authenticatorCredentialManagement, CTAP 2.1 §6.8
	CmdSelection            Command = 0x0B // authenticatorSelection, CTAP 2.1 §6.9
)

// String names the command as the specification does.
func (c Command) String() string {
	switch c {
	case CmdMakeCredential:
		return "authenticatorMakeCredential"
	case CmdGetAssertion:
		return "authenticatorGetAssertion"
	case CmdGetInfo:
		return "authenticatorGetInfo"
	case CmdClientPIN:
		return "authenticatorClientPIN"
	case CmdReset:
		return "authenticatorReset"
	case CmdGetNextAssertion:
		return "authenticatorGetNextAssertion"
	case CmdCredentialManagement:
		return "authenticatorCredentialManagement"
	case CmdSelection:
		return "authenticatorSelection"
	}
	return fmt.Sprintf("command(0x%02X)", byte(c))
}

// Transport carries one CTAP2 message to an authenticator and returns its
// answer: req is a request frame (command byte + CBOR) and the result is a
// response frame (status byte + CBOR). onKeepalive, when not nil, is called
// with the status byte of each CTAPHID_KEEPALIVE (1 processing, 2 user
// presence needed) while the authenticator works. Cancelling ctx must
// cancel the request at the authenticator (CTAPHID_CANCEL).
// hw/ctaphid.Channel satisfies it.
type Transport interface {
	CBOR(ctx context.Context, req []byte, onKeepalive func(status byte)) ([]byte, error)
}

// EncodeCommand builds a request frame: the command byte followed by the
// canonical CBOR of params, or the command byte alone when params is nil.
func EncodeCommand(cmd Command, params any) ([]byte, error) {
	if params == nil {
		return []byte{byte(cmd)}, nil
	}
	b, err := Marshal(params)
	if err != nil {
		return nil, fmt.Errorf("ctap2: %v: %w", cmd, err)
	}
	return append([]byte{byte(cmd)}, b...), nil
}

// validator is implemented by response types that check their mandatory
// members after decoding.
type validator interface{ validate() error }

// ParseResponse reads a response frame. A non-zero status byte returns that
// StatusError (unwrapped). On success the CBOR body, if any, is decoded into
// v; v may be nil for commands that answer with the status alone, in which
// case a body is ignored. A body that is not one well-formed CBOR item, or
// a typed response that lacks a mandatory member, gives an error wrapping
// ErrMalformed.
func ParseResponse(frame []byte, v any) error {
	if len(frame) == 0 {
		return fmt.Errorf("%w: empty response frame", ErrMalformed)
	}
	if frame[0] != StatusOK {
		return StatusError(frame[0])
	}
	if v == nil {
		return nil
	}
	if len(frame) == 1 {
		return fmt.Errorf("%w: response has no body", ErrMalformed)
	}
	if err := Unmarshal(frame[1:], v); err != nil {
		return err
	}
	if val, ok := v.(validator); ok {
		if err := val.validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrMalformed, err)
		}
	}
	return nil
}

// EncodeResponse builds a success response frame: status 0x00 followed by
// the canonical CBOR of v, or the status byte alone when v is nil.
func EncodeResponse(v any) ([]byte, error) {
	if v == nil {
		return []byte{StatusOK}, nil
	}
	b, err := Marshal(v)
	if err != nil {
		return nil, err
	}
	return append([]byte{StatusOK}, b...), nil
}

// EncodeError builds the one-byte response frame of a failed command.
func EncodeError(s StatusError) []byte { return []byte{byte(s)} }

// Call sends one command over t and decodes the answer into result (which
// may be nil). It is EncodeCommand, Transport.CBOR and ParseResponse in a
// row; a device error comes back as a StatusError.
func Call(ctx context.Context, t Transport, cmd Command, params, result any, onKeepalive func(status byte)) error {
	req, err := EncodeCommand(cmd, params)
	if err != nil {
		return err
	}
	resp, err := t.CBOR(ctx, req, onKeepalive)
	if err != nil {
		return fmt.Errorf("ctap2: %v: %w", cmd, err)
	}
	if err := ParseResponse(resp, result); err != nil {
		return fmt.Errorf("ctap2: %v: %w", cmd, err)
	}
	return nil
}

// ParseGetInfo reads an authenticatorGetInfo response frame.
func ParseGetInfo(frame []byte) (*GetInfoResponse, error) {
	var r GetInfoResponse
	if err := ParseResponse(frame, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// ParseMakeCredentialResponse reads an authenticatorMakeCredential response
// frame.
func ParseMakeCredentialResponse(frame []byte) (*MakeCredentialResponse, error) {
	var r MakeCredentialResponse
	if err := ParseResponse(frame, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// ParseGetAssertionResponse reads an authenticatorGetAssertion or
// authenticatorGetNextAssertion response frame.
func ParseGetAssertionResponse(frame []byte) (*GetAssertionResponse, error) {
	var r GetAssertionResponse
	if err := ParseResponse(frame, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// ParseClientPINResponse reads an authenticatorClientPIN response frame.
// Subcommands that answer with the status alone (setPIN, changePIN) give
// an empty response.
func ParseClientPINResponse(frame []byte) (*ClientPINResponse, error) {
	var r ClientPINResponse
	if len(frame) == 1 && frame[0] == StatusOK {
		return &r, nil
	}
	if err := ParseResponse(frame, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Request is a request frame decoded on the authenticator side. Exactly
// one of the parameter pointers is set for commands that take parameters;
// all are nil for GetInfo, Reset, GetNextAssertion and Selection.
type Request struct {
	Command        Command
	MakeCredential *MakeCredentialRequest
	GetAssertion   *GetAssertionRequest
	ClientPIN      *ClientPINRequest
	CredMgmt       *CredentialManagementRequest
}

// ParseRequest decodes a request frame for a device. Every error wraps the
// StatusError the device should answer with (see StatusOf):
// ErrInvalidLength for an empty frame or parameters given to a command that
// takes none, ErrInvalidCommand for an unknown command, ErrInvalidCBOR or
// ErrCBORUnexpectedType for bad CBOR, and ErrMissingParameter when a
// mandatory member is absent.
func ParseRequest(frame []byte) (*Request, error) {
	if len(frame) == 0 {
		return nil, fmt.Errorf("ctap2: empty request: %w", ErrInvalidLength)
	}
	r := &Request{Command: Command(frame[0])}
	params := frame[1:]
	var dst validator
	switch r.Command {
	case CmdGetInfo, CmdReset, CmdGetNextAssertion, CmdSelection:
		if len(params) != 0 {
			return nil, fmt.Errorf("ctap2: %v takes no parameters: %w", r.Command, ErrInvalidLength)
		}
		return r, nil
	case CmdMakeCredential:
		r.MakeCredential = new(MakeCredentialRequest)
		dst = r.MakeCredential
	case CmdGetAssertion:
		r.GetAssertion = new(GetAssertionRequest)
		dst = r.GetAssertion
	case CmdClientPIN:
		r.ClientPIN = new(ClientPINRequest)
		dst = r.ClientPIN
	case CmdCredentialManagement:
		r.CredMgmt = new(CredentialManagementRequest)
		dst = r.CredMgmt
	default:
		return nil, fmt.Errorf("ctap2: %v: %w", r.Command, ErrInvalidCommand)
	}
	if len(params) == 0 {
		return nil, fmt.Errorf("ctap2: %v without parameters: %w", r.Command, ErrMissingParameter)
	}
	if err := Unmarshal(params, dst); err != nil {
		return nil, fmt.Errorf("ctap2: %v: %w", r.Command, err)
	}
	if err := dst.validate(); err != nil {
		return nil, fmt.Errorf("ctap2: %v: %w", r.Command, err)
	}
	return r, nil
}
