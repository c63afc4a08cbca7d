package main

// crosscheck holds the battery's verdicts on a key against libfido2's own
// tools (fido2-token, fido2-cred, fido2-assert) run on the same key: each
// flow the tools can drive has a check of the battery that must agree
// with it (pass where the tools succeed, not pass where they fail), and
// GetInfo as fido2-token -I prints it must equal what the battery saw.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// batteryReport is the part of `mfactl key check --report json` read here
// (docs/hardware.md has the whole schema).
type batteryReport struct {
	Reports []struct {
		Key struct {
			VendorID  uint16 `json:"vendor_id"`
			ProductID uint16 `json:"product_id"`
			AAGUID    string `json:"aaguid"`
		} `json:"key"`
		Results []struct {
			ID       string   `json:"id"`
			Result   string   `json:"result"`
			Reason   string   `json:"reason"`
			Observed []string `json:"observed"`
		} `json:"results"`
	} `json:"reports"`
}

// verdicts indexes a one-key report's results by check id.
type verdicts struct {
	result   map[string]string
	reason   map[string]string
	observed map[string][]string
	aaguid   string
	// vendor and product are the USB ids the report names (0 when unknown).
	vendor, product uint16
}

func readVerdicts(data []byte) (*verdicts, error) {
	var r batteryReport
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("battery report: %w", err)
	}
	if len(r.Reports) != 1 {
		return nil, fmt.Errorf("battery report: %d keys, want 1", len(r.Reports))
	}
	k := r.Reports[0]
	v := &verdicts{result: map[string]string{}, reason: map[string]string{}, observed: map[string][]string{},
		aaguid: k.Key.AAGUID, vendor: k.Key.VendorID, product: k.Key.ProductID}
	for _, x := range k.Results {
		v.result[x.ID], v.reason[x.ID], v.observed[x.ID] = x.Result, x.Reason, x.Observed
	}
	return v, nil
}

// getInfo is the GetInfo members both sides print.
type getInfo struct {
	Versions, Extensions []string
	AAGUID               string // 32 lowercase hex digits
	Options              map[string]bool
	MaxMsgSize           int
	PinProtocols         []int
}

func (a getInfo) String() string {
	return fmt.Sprintf("versions %v extensions %v aaguid %s options %v maxMsgSize %d pinProtocols %v",
		a.Versions, a.Extensions, a.AAGUID, a.Options, a.MaxMsgSize, a.PinProtocols)
}

// diff lists the members where a and b differ (sets compared as sets).
func (a getInfo) diff(b getInfo) []string {
	var d []string
	set := func(x []string) []string { y := slices.Clone(x); slices.Sort(y); return y }
	if !slices.Equal(set(a.Versions), set(b.Versions)) {
		d = append(d, fmt.Sprintf("versions %v / %v", a.Versions, b.Versions))
	}
	if !slices.Equal(set(a.Extensions), set(b.Extensions)) {
		d = append(d, fmt.Sprintf("extensions %v / %v", a.Extensions, b.Extensions))
	}
	if a.AAGUID != b.AAGUID {
		d = append(d, fmt.Sprintf("aaguid %s / %s", a.AAGUID, b.AAGUID))
	}
	if len(a.Options) != len(b.Options) {
		d = append(d, fmt.Sprintf("options %v / %v", a.Options, b.Options))
	} else {
		for k, x := range a.Options {
			if y, ok := b.Options[k]; !ok || x != y {
				d = append(d, fmt.Sprintf("options %v / %v", a.Options, b.Options))
				break
			}
		}
	}
	if a.MaxMsgSize != b.MaxMsgSize {
		d = append(d, fmt.Sprintf("maxMsgSize %d / %d", a.MaxMsgSize, b.MaxMsgSize))
	}
	if !slices.Equal(a.PinProtocols, b.PinProtocols) {
		d = append(d, fmt.Sprintf("pinUvAuthProtocols %v / %v", a.PinProtocols, b.PinProtocols))
	}
	return d
}

// The battery's getinfo.fields observations (hw/fidocheck/info.go).
var (
	obsVersions = regexp.MustCompile(`^versions \[([^\]]*)\], extensions \[([^\]]*)\]$`)
	obsAAGUID   = regexp.MustCompile(`^aaguid ([0-9a-f-]{36}), options map\[([^\]]*)\]$`)
	obsMsgSize  = regexp.MustCompile(`^maxMsgSize (\d+), pinUvAuthProtocols \[([^\]]*)\]`)
)

// batteryInfo reads GetInfo back from the battery's observations.
func batteryInfo(obs []string) (getInfo, error) {
	var a getInfo
	seen := 0
	for _, line := range obs {
		if m := obsVersions.FindStringSubmatch(line); m != nil {
			a.Versions, a.Extensions = strings.Fields(m[1]), strings.Fields(m[2])
			seen++
		}
		if m := obsAAGUID.FindStringSubmatch(line); m != nil {
			a.AAGUID = strings.ReplaceAll(m[1], "-", "")
			a.Options = map[string]bool{}
			for _, kv := range strings.Fields(m[2]) {
				k, v, ok := strings.Cut(kv, ":")
				if !ok || (v != "true" && v != "false") {
					return getInfo{}, fmt.Errorf("option %q", kv)
				}
				a.Options[k] = v == "true"
			}
			seen++
		}
		if m := obsMsgSize.FindStringSubmatch(line); m != nil {
			a.MaxMsgSize, _ = strconv.Atoi(m[1])
			for _, p := range strings.Fields(m[2]) {
				n, err := strconv.Atoi(p)
				if err != nil {
					return getInfo{}, fmt.Errorf("pin protocol %q", p)
				}
				a.PinProtocols = append(a.PinProtocols, n)
			}
			seen++
		}
	}
	if seen != 3 {
		return getInfo{}, fmt.Errorf("the battery's getinfo.fields observations lack GetInfo's members: %q", obs)
	}
	return a, nil
}

// tokenInfo reads `fido2-token -I` output (libfido2 tools/token.c).
func tokenInfo(out string) (getInfo, error) {
	a := getInfo{Options: map[string]bool{}}
	list := func(v string) []string {
		var l []string
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				l = append(l, s)
			}
		}
		return l
	}
	sawAAGUID := false
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		switch k {
		case "version strings":
			a.Versions = list(v)
		case "extension strings":
			a.Extensions = list(v)
		case "aaguid":
			a.AAGUID, sawAAGUID = strings.TrimSpace(v), true
		case "options":
			// A false option is printed with "no" in front; one option's
			// own name begins with it (noMcGaPermissionsWithClientPin).
			for _, o := range list(v) {
				if name, no := strings.CutPrefix(o, "no"); no && name != "" && !strings.HasPrefix(o, "noMc") {
					a.Options[name] = false
				} else {
					a.Options[o] = true
				}
			}
		case "maxmsgsiz":
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return getInfo{}, fmt.Errorf("maxmsgsiz %q", v)
			}
			a.MaxMsgSize = n
		case "pin protocols":
			for _, p := range list(v) {
				n, err := strconv.Atoi(p)
				if err != nil {
					return getInfo{}, fmt.Errorf("pin protocol %q", p)
				}
				a.PinProtocols = append(a.PinProtocols, n)
			}
		}
	}
	if !sawAAGUID || len(a.Versions) == 0 {
		return getInfo{}, errors.New("fido2-token -I printed no aaguid or no version strings")
	}
	return a, nil
}

// agree compares one battery verdict with whether the tools' flow worked,
// and prints the VMTEST line.
func agree(v *verdicts, name string, checks []string, flowErr error) {
	ok, msg := agreement(v, checks, flowErr)
	switch {
	case !ok:
		fail(name, "%s", msg)
	case msg != "":
		fmt.Printf("  [%s] %s\n", name, msg)
		pass(name)
	default:
		pass(name)
	}
}

// agreement says whether the battery's verdicts on checks (all pass, or
// not) agree with the tools' flow (no error, or one), and why not.
func agreement(v *verdicts, checks []string, flowErr error) (bool, string) {
	batteryOK := true
	var why []string
	for _, id := range checks {
		r, ok := v.result[id]
		if !ok {
			return false, "the battery report has no " + id
		}
		if r != "pass" {
			batteryOK = false
			why = append(why, fmt.Sprintf("%s %s (%s)", id, r, v.reason[id]))
		}
	}
	switch {
	case batteryOK && flowErr == nil:
		return true, ""
	case !batteryOK && flowErr != nil:
		return true, fmt.Sprintf("both fail: battery %s; fido2 tools: %v", strings.Join(why, ", "), flowErr)
	case batteryOK:
		return false, fmt.Sprintf("the battery passes %s, the fido2 tools fail: %v", strings.Join(checks, ", "), flowErr)
	default:
		return false, "the fido2 tools succeed, the battery says " + strings.Join(why, ", ")
	}
}

// tools runs libfido2's tools in dir on one device.
type tools struct {
	dev, dir string
}

func (t tools) run(stdin string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	if d := time.Since(start); d > 5*time.Second {
		fmt.Printf("  slow: %s %s took %v\n", name, strings.Join(args, " "), d.Round(time.Millisecond))
	}
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(lastLines(out.String(), 2)))
	}
	return out.String(), nil
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " | ")
}

func (t tools) file(name string) string { return filepath.Join(t.dir, name) }

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// cdh is a client data hash: any 32 bytes do.
func cdh(tag string) string { return b64(fmt.Sprintf("%-32.32s", tag)) }

// credential makes a credential with fido2-cred -M and verifies it with
// -V; it returns the credential id and the PEM public key file.
func (t tools) credential(tag, rp, typ string, flags ...string) (credID, pubFile string, err error) {
	in := cdh(tag) + "\n" + rp + "\nvmtest-" + tag + "\n" + b64("uid-"+tag) + "\n"
	out := t.file(tag + ".cred")
	args := append([]string{"-M"}, flags...)
	args = append(args, "-o", out, t.dev, typ)
	if _, err := t.run(in, "fido2-cred", args...); err != nil {
		return "", "", err
	}
	vflags := slices.DeleteFunc(slices.Clone(flags), func(f string) bool { return f == "-r" || f == "-u" })
	vout := t.file(tag + ".vout")
	if _, err := t.run("", "fido2-cred", append(append([]string{"-V"}, vflags...), "-i", out, "-o", vout, typ)...); err != nil {
		return "", "", err
	}
	v, err := os.ReadFile(vout)
	if err != nil {
		return "", "", err
	}
	id, pem, ok := strings.Cut(string(v), "\n")
	if !ok || id == "" || !strings.Contains(pem, "PUBLIC KEY") {
		return "", "", fmt.Errorf("fido2-cred -V printed no credential id and public key: %q", v)
	}
	pubFile = t.file(tag + ".pem")
	return id, pubFile, os.WriteFile(pubFile, []byte(pem), 0o600)
}

// assertion gets an assertion with fido2-assert -G (credID empty: a
// resident credential), verifies it with -V, and returns -G's output lines.
func (t tools) assertion(tag, rp, credID, pubFile, typ string, salt string, flags ...string) ([]string, error) {
	in := cdh(tag+"-a") + "\n" + rp + "\n"
	if credID != "" {
		in += credID + "\n"
	}
	if salt != "" {
		in += salt + "\n"
	}
	out, err := t.run(in, "fido2-assert", append(append([]string{"-G"}, flags...), t.dev)...)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 4 {
		return nil, fmt.Errorf("fido2-assert -G printed %d lines", len(lines))
	}
	verify := strings.Join(lines[:4], "\n") + "\n"
	vflags := []string{"-V"}
	if salt != "" {
		vflags = append(vflags, "-h")
	}
	if _, err := t.run(verify, "fido2-assert", append(vflags, pubFile, typ)...); err != nil {
		return nil, err
	}
	return lines, nil
}

// crosscheck: probe crosscheck --report FILE --dev /dev/hidrawN --prefix P
func crosscheck(args []string) int {
	fs := flag.NewFlagSet("crosscheck", flag.ContinueOnError)
	report := fs.String("report", "", "the battery's JSON report on the key")
	dev := fs.String("dev", "", "the key's hidraw node")
	prefix := fs.String("prefix", "", "prefix of the VMTEST names")
	if err := fs.Parse(args); err != nil || *report == "" || *dev == "" || *prefix == "" {
		fmt.Fprintln(os.Stderr, "usage: probe crosscheck --report FILE --dev /dev/hidrawN --prefix NAME")
		return 2
	}
	name := func(s string) string { return *prefix + "_fido2_agree_" + s }
	data, err := os.ReadFile(*report)
	if err != nil {
		fail(name("report"), "%v", err)
		return 1
	}
	v, err := readVerdicts(data)
	if err != nil {
		fail(name("report"), "%v", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "crosscheck")
	if err != nil {
		fail(name("report"), "%v", err)
		return 1
	}
	defer os.RemoveAll(dir)
	t := tools{dev: *dev, dir: dir}
	rp := "pam://crosscheck-" + *prefix

	// fido2-token -L lists the key; -I prints the GetInfo the battery saw.
	list, err := t.run("", "fido2-token", "-L")
	switch {
	case err != nil:
		fail(name("list"), "%v", err)
	case !strings.Contains(list, *dev+":"):
		fail(name("list"), "fido2-token -L does not list %s: %s", *dev, lastLines(list, 3))
	case v.vendor != 0 && !strings.Contains(list, fmt.Sprintf("%s: vendor=0x%04x, product=0x%04x", *dev, v.vendor, v.product)):
		fail(name("list"), "fido2-token -L does not list %s as %04x:%04x like the battery: %s", *dev, v.vendor, v.product, lastLines(list, 3))
	default:
		pass(name("list"))
	}
	out, err := t.run("", "fido2-token", "-I", *dev)
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		fmt.Printf("  [%s] fido2-token -I: %s\n", name("getinfo"), l)
	}
	var tok getInfo
	if err == nil {
		tok, err = tokenInfo(out)
	}
	agree(v, name("getinfo_verdict"), []string{"getinfo.fields", "getinfo.consistency"}, err)
	if err == nil && v.result["getinfo.fields"] == "pass" {
		bat, berr := batteryInfo(v.observed["getinfo.fields"])
		switch d := tok.diff(bat); {
		case berr != nil:
			fail(name("getinfo"), "%v", berr)
		case len(d) > 0:
			fail(name("getinfo"), "fido2-token -I / battery differ: %s", strings.Join(d, "; "))
		case strings.ReplaceAll(v.aaguid, "-", "") != tok.AAGUID:
			fail(name("getinfo"), "the report's key aaguid %s, fido2-token -I %s", v.aaguid, tok.AAGUID)
		default:
			fmt.Printf("  [%s] %s\n", name("getinfo"), tok)
			pass(name("getinfo"))
		}
	} else {
		fail(name("getinfo"), "no GetInfo to compare: fido2-token -I: %v; battery getinfo.fields %s", err, v.result["getinfo.fields"])
	}

	// MakeCredential and GetAssertion, each signature verified by libfido2.
	flow := func(tag, typ string, flags ...string) error {
		id, pub, err := t.credential(tag, rp+"-"+tag, typ, flags...)
		if err != nil {
			return err
		}
		aflags := slices.DeleteFunc(slices.Clone(flags), func(f string) bool { return f == "-r" })
		if slices.Contains(flags, "-r") {
			aflags, id = append(aflags, "-r"), ""
		}
		_, err = t.assertion(tag, rp+"-"+tag, id, pub, typ, "", aflags...)
		return err
	}
	agree(v, name("es256"), []string{"cred.es256"}, flow("es256", "es256"))
	agree(v, name("eddsa"), []string{"cred.eddsa"}, flow("eddsa", "eddsa"))
	agree(v, name("resident"), []string{"cred.resident"}, flow("resident", "es256", "-r"))
	agree(v, name("u2f"), []string{"u2f.register", "u2f.authenticate"}, flow("u2f", "es256", "-u"))

	// hmac-secret: the same salt gives the same secret, another credential
	// another one.
	agree(v, name("hmac_secret"), []string{"ext.hmac-secret"}, t.hmacSecret(rp))
	// credProtect: a level 3 credential (userVerificationRequired) is made
	// with its level signed, and refused to an assertion without UV.
	agree(v, name("cred_protect"), []string{"ext.cred-protect"}, t.credProtect(rp))
	return 0
}

func (t tools) credProtect(rp string) error {
	rp += "-cred-protect"
	id, pub, err := t.credential("cred-protect", rp, "es256", "-c", "3")
	if err != nil {
		return err
	}
	_, err = t.assertion("cred-protect", rp, id, pub, "es256", "")
	switch {
	case err == nil:
		return errors.New("fido2-assert -G without UV got an assertion from a credProtect level 3 credential")
	case !strings.Contains(err.Error(), "FIDO_ERR_NO_CREDENTIALS"):
		return fmt.Errorf("fido2-assert -G refused otherwise than with NO_CREDENTIALS: %w", err)
	}
	return nil
}

func (t tools) hmacSecret(rp string) error {
	salt := b64(strings.Repeat("s", 32))
	secret := func(tag string) (string, string, error) {
		id, pub, err := t.credential(tag, rp+"-"+tag, "es256", "-h")
		if err != nil {
			return "", "", err
		}
		get := func() (string, error) {
			lines, err := t.assertion(tag, rp+"-"+tag, id, pub, "es256", salt, "-h")
			if err != nil {
				return "", err
			}
			if len(lines) < 5 || lines[4] == "" {
				return "", fmt.Errorf("fido2-assert -G -h printed no hmac secret")
			}
			return lines[4], nil
		}
		a, err := get()
		if err != nil {
			return "", "", err
		}
		b, err := get()
		return a, b, err
	}
	a1, a2, err := secret("hmac-a")
	if err != nil {
		return err
	}
	if a1 != a2 {
		return errors.New("the same credential and salt gave two hmac secrets")
	}
	b1, _, err := secret("hmac-b")
	if err != nil {
		return err
	}
	if a1 == b1 {
		return errors.New("two credentials gave the same hmac secret")
	}
	return nil
}
