package fidocheck

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"

	"github.com/mfad/mfad/hw/ctap2"
	"github.com/mfad/mfad/hw/ctaphid"
)

// knownVersions are the GetInfo versions strings of CTAP 2.1 §6.4 (and
// CTAP 2.2's FIDO_2_2).
var knownVersions = []string{ctap2.VersionU2F, ctap2.VersionFIDO20, ctap2.VersionFIDO21PRE, ctap2.VersionFIDO21, "FIDO_2_2"}

// knownTransports are the AuthenticatorTransport values (WebAuthn §5.8.4).
var knownTransports = []string{"usb", "nfc", "ble", "smart-card", "hybrid", "internal"}

// getInfo reads GetInfo afresh (not the copy cached at open).
func (r *runner) getInfo() (*ctap2.GetInfoResponse, error) {
	ctx, cancel := r.op(false)
	defer cancel()
	var info ctap2.GetInfoResponse
	if err := ctap2.Call(ctx, r.k.Channel(), ctap2.CmdGetInfo, nil, &info, nil); err != nil {
		return nil, err
	}
	return &info, nil
}

func checkInfoFields(r *runner) outcome {
	info, err := r.getInfo()
	if err != nil {
		r.note("GetInfo: %s", describe(err))
		return errOutcome("GetInfo", err)
	}
	r.note("versions %v, extensions %v", info.Versions, info.Extensions)
	r.note("aaguid %s, options %v", FormatAAGUID(info.AAGUID), info.Options)
	r.note("maxMsgSize %d, pinUvAuthProtocols %v, transports %v, minPINLength %d, firmwareVersion %d", info.MaxMsgSize, info.PinUvAuthProtocols, info.Transports, info.MinPINLength, info.FirmwareVersion)
	var problems []string
	known := 0
	for _, v := range info.Versions {
		if contains(knownVersions, v) {
			known++
		}
	}
	if known == 0 {
		problems = append(problems, fmt.Sprintf("no known version in %v", info.Versions))
	}
	if !contains(info.Versions, ctap2.VersionFIDO20) && !contains(info.Versions, ctap2.VersionFIDO21) && !contains(info.Versions, ctap2.VersionFIDO21PRE) {
		problems = append(problems, "versions lists no FIDO_2_x although the key answers CTAP2")
	}
	if bytes.Equal(info.AAGUID, make([]byte, 16)) {
		r.note("the AAGUID is all zero (allowed, but it names no model)")
	}
	if info.MaxMsgSize != 0 && info.MaxMsgSize < 1024 {
		problems = append(problems, fmt.Sprintf("maxMsgSize %d is below the 1024 every authenticator must take", info.MaxMsgSize))
	}
	for _, p := range info.PinUvAuthProtocols {
		if p != 1 && p != 2 {
			problems = append(problems, fmt.Sprintf("unknown pinUvAuthProtocol %d", p))
		}
	}
	for _, t := range info.Transports {
		if !contains(knownTransports, t) {
			problems = append(problems, fmt.Sprintf("unknown transport %q", t))
		}
	}
	for _, a := range info.Algorithms {
		if a.Type != ctap2.CredentialTypePublicKey {
			problems = append(problems, fmt.Sprintf("algorithm %d of type %q", a.Alg, a.Type))
		}
	}
	if info.MinPINLength != 0 && info.MinPINLength < 4 {
		problems = append(problems, fmt.Sprintf("minPINLength %d is below 4", info.MinPINLength))
	}
	if len(problems) > 0 {
		return failf("%s", strings.Join(problems, "; "))
	}
	return pass()
}

func checkInfoConsistency(r *runner) outcome {
	a, err := r.getInfo()
	if err != nil {
		return errOutcome("GetInfo", err)
	}
	b, err := r.getInfo()
	if err != nil {
		return errOutcome("second GetInfo", err)
	}
	var problems []string
	if !reflect.DeepEqual(a, b) {
		problems = append(problems, "two GetInfo in a row differ")
	} else {
		r.note("two GetInfo in a row are identical")
	}
	if !reflect.DeepEqual(a, r.info()) {
		r.note("GetInfo differs from the one read when the key was opened (a PIN change in between explains clientPin)")
	}
	caps := r.k.Channel().Capabilities()
	r.note("CTAPHID capabilities %v", caps)
	if !caps.Has(ctaphid.CapCBOR) {
		problems = append(problems, "GetInfo answered over CTAPHID_CBOR but INIT does not announce CAPABILITY_CBOR")
	}
	u2f := contains(a.Versions, ctap2.VersionU2F)
	if u2f && caps.Has(ctaphid.CapNMSG) {
		problems = append(problems, "versions lists U2F_V2 but INIT announces CAPABILITY_NMSG (no CTAPHID_MSG)")
	}
	if !u2f && !caps.Has(ctaphid.CapNMSG) {
		r.note("INIT announces CTAPHID_MSG but versions lists no U2F_V2")
	}
	if _, ok := a.Option(ctap2.OptionClientPIN); ok && len(a.PinUvAuthProtocols) == 0 {
		problems = append(problems, "option clientPin is present but pinUvAuthProtocols is empty")
	}
	fido21 := contains(a.Versions, ctap2.VersionFIDO21)
	if _, ok := a.Option(ctap2.OptionClientPIN); ok && fido21 {
		if v, _ := a.Option(ctap2.OptionPinUvAuthToken); !v {
			problems = append(problems, "a FIDO_2_1 key with clientPin must support pinUvAuthToken (option true)")
		}
	}
	if v, _ := a.Option(ctap2.OptionCredMgmt); v && !fido21 && !contains(a.Versions, ctap2.VersionFIDO21PRE) {
		problems = append(problems, "option credMgmt on a key that lists neither FIDO_2_1 nor FIDO_2_1_PRE")
	}
	if a.MaxMsgSize > ctaphid.MaxPayload {
		r.note("maxMsgSize %d exceeds what CTAPHID can carry (%d)", a.MaxMsgSize, ctaphid.MaxPayload)
	}
	if len(problems) > 0 {
		return failf("%s", strings.Join(problems, "; "))
	}
	return pass()
}
