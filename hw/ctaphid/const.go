package ctaphid

import "fmt"

// Report geometry, CTAP 2.2 section 11.2.4 (message and packet structure), for the 64-byte
// reports every FIDO HID device uses.
const (
	// ReportSize is the size of one HID report without the report-id byte.
	ReportSize = 64
	// InitDataSize is the payload carried by an initialization packet (CID, CMD, BCNTH, BCNTL).
	InitDataSize = ReportSize - 7
	// ContDataSize is the payload carried by a continuation packet (CID, SEQ).
	ContDataSize = ReportSize - 5
	// MaxSeq is the largest continuation sequence number (0x00..0x7f).
	MaxSeq = 0x7f
	// MaxPayload is the largest message: one initialization packet and 128 continuations.
	MaxPayload = InitDataSize + (MaxSeq+1)*ContDataSize // 7609
)

// BroadcastCID is the broadcast channel, on which only CTAPHID_INIT is allowed (section 11.2.3).
const BroadcastCID uint32 = 0xffffffff

// ProtocolVersion is the CTAPHID protocol version reported by CTAPHID_INIT (section 11.2.9.1.3).
const ProtocolVersion = 2

// Cmd is a CTAPHID command, without the initialization-packet bit 0x80 (section 11.2.9).
type Cmd byte

// Commands, CTAP 2.2 sections 11.2.9.1 (mandatory) and 11.2.9.2 (optional).
const (
	CmdPing      Cmd = 0x01 // 11.2.9.1.4 CTAPHID_PING
	CmdMsg       Cmd = 0x03 // 11.2.9.1.1 CTAPHID_MSG (CTAP1/U2F)
	CmdLock      Cmd = 0x04 // 11.2.9.2.2 CTAPHID_LOCK
	CmdInit      Cmd = 0x06 // 11.2.9.1.3 CTAPHID_INIT
	CmdWink      Cmd = 0x08 // 11.2.9.2.1 CTAPHID_WINK
	CmdCBOR      Cmd = 0x10 // 11.2.9.1.2 CTAPHID_CBOR
	CmdCancel    Cmd = 0x11 // 11.2.9.1.5 CTAPHID_CANCEL
	CmdKeepalive Cmd = 0x3b // 11.2.9.1.7 CTAPHID_KEEPALIVE
	CmdError     Cmd = 0x3f // 11.2.9.1.6 CTAPHID_ERROR
)

func (c Cmd) String() string {
	switch c {
	case CmdPing:
		return "PING"
	case CmdMsg:
		return "MSG"
	case CmdLock:
		return "LOCK"
	case CmdInit:
		return "INIT"
	case CmdWink:
		return "WINK"
	case CmdCBOR:
		return "CBOR"
	case CmdCancel:
		return "CANCEL"
	case CmdKeepalive:
		return "KEEPALIVE"
	case CmdError:
		return "ERROR"
	}
	return fmt.Sprintf("Cmd(0x%02x)", byte(c))
}

// ErrorCode is the one-byte payload of CTAPHID_ERROR (section 11.2.9.1.6).
type ErrorCode byte

// Error codes, CTAP 2.2 section 11.2.9.1.6.
const (
	CodeInvalidCmd     ErrorCode = 0x01 // ERR_INVALID_CMD: the command is not known or not allowed
	CodeInvalidPar     ErrorCode = 0x02 // ERR_INVALID_PAR: a parameter is invalid
	CodeInvalidLen     ErrorCode = 0x03 // ERR_INVALID_LEN: the length field (BCNT) is invalid
	CodeInvalidSeq     ErrorCode = 0x04 // ERR_INVALID_SEQ: a sequence error
	CodeMsgTimeout     ErrorCode = 0x05 // ERR_MSG_TIMEOUT: a message has timed out
	CodeChannelBusy    ErrorCode = 0x06 // ERR_CHANNEL_BUSY: the device is busy for the requesting channel
	CodeLockRequired   ErrorCode = 0x0a // ERR_LOCK_REQUIRED: the command requires a channel lock
	CodeInvalidChannel ErrorCode = 0x0b // ERR_INVALID_CHANNEL: the CID is not valid
	CodeOther          ErrorCode = 0x7f // ERR_OTHER: unspecified error
)

func (c ErrorCode) String() string {
	switch c {
	case CodeInvalidCmd:
		return "ERR_INVALID_CMD"
	case CodeInvalidPar:
		return "ERR_INVALID_PAR"
	case CodeInvalidLen:
		return "ERR_INVALID_LEN"
	case CodeInvalidSeq:
		return "ERR_INVALID_SEQ"
	case CodeMsgTimeout:
		return "ERR_MSG_TIMEOUT"
	case CodeChannelBusy:
		return "ERR_CHANNEL_BUSY"
	case CodeLockRequired:
		return "ERR_LOCK_REQUIRED"
	case CodeInvalidChannel:
		return "ERR_INVALID_CHANNEL"
	case CodeOther:
		return "ERR_OTHER"
	}
	return fmt.Sprintf("ErrorCode(0x%02x)", byte(c))
}

// Keepalive status bytes, CTAP 2.2 section 11.2.9.1.7.
const (
	StatusProcessing byte = 1 // STATUS_PROCESSING: the authenticator is still processing
	StatusUPNeeded   byte = 2 // STATUS_UPNEEDED: the authenticator waits for user presence
)

// CTAP2ErrKeepaliveCancel is the CTAP2 status byte (CTAP 2.2 section 8.2) a CBOR request
// answers with once CTAPHID_CANCEL has cancelled it.
const CTAP2ErrKeepaliveCancel byte = 0x2d

// Capabilities are the capability flags of the CTAPHID_INIT response (section 11.2.9.1.3).
type Capabilities byte

// Capability flags, CTAP 2.2 section 11.2.9.1.3.
const (
	CapWink Capabilities = 0x01 // CAPABILITY_WINK: implements CTAPHID_WINK
	CapCBOR Capabilities = 0x04 // CAPABILITY_CBOR: implements CTAPHID_CBOR
	CapNMSG Capabilities = 0x08 // CAPABILITY_NMSG: does not implement CTAPHID_MSG
)

// Has reports whether every flag of f is set in c.
func (c Capabilities) Has(f Capabilities) bool { return c&f == f }

func (c Capabilities) String() string {
	s := ""
	add := func(n string) {
		if s != "" {
			s += "|"
		}
		s += n
	}
	if c&CapWink != 0 {
		add("WINK")
	}
	if c&CapCBOR != 0 {
		add("CBOR")
	}
	if c&CapNMSG != 0 {
		add("NMSG")
	}
	if rest := c &^ (CapWink | CapCBOR | CapNMSG); rest != 0 {
		add(fmt.Sprintf("0x%02x", byte(rest)))
	}
	if s == "" {
		return "0"
	}
	return s
}
