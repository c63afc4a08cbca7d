package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/mfad/mfad/ipc/api"
)

// An importItem is one device to bring over, read from a file a tool wrote.
type importItem struct {
	where   string // FILE or FILE:LINE
	account string
	req     api.ImportDevice
	notes   []string // what mfad does not carry over, said to the admin
}

// maxImportFile bounds what an importer reads of a file.
const maxImportFile = 1 << 20

// gaFile is what a ~/.google_authenticator file holds.
type gaFile struct {
	req     api.ImportDevice
	scratch int
	notes   []string
}

// parseGoogleAuthenticator reads google-authenticator's file: the base32
// secret on the first line, options on lines starting with `" `, then
// 8-digit scratch codes. Errors never quote the secret.
func parseGoogleAuthenticator(r io.Reader) (*gaFile, error) {
	sc := bufio.NewScanner(io.LimitReader(r, maxImportFile))
	if !sc.Scan() {
		return nil, errors.New("empty file")
	}
	f := &gaFile{req: api.ImportDevice{Kind: "totp", Source: "google-authenticator"}}
	secret := strings.TrimSpace(sc.Text())
	if secret == "" || strings.ContainsAny(secret, " \"") {
		return nil, errors.New("the first line is not a base32 secret")
	}
	for _, c := range strings.ToUpper(secret) {
		if !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7' || c == '=') {
			return nil, errors.New("the first line is not a base32 secret")
		}
	}
	f.req.Secret = strings.ToUpper(secret)
	line := 1
	for sc.Scan() {
		line++
		l := strings.TrimSpace(sc.Text())
		if l == "" {
			continue
		}
		opt, ok := strings.CutPrefix(l, `" `)
		if !ok {
			if len(l) != 8 || strings.Trim(l, "0123456789") != "" {
				return nil, fmt.Errorf("line %d is neither an option nor a scratch code", line)
			}
			f.scratch++
			f.req.ScratchCodes = append(f.req.ScratchCodes, l)
			continue
		}
		fields := strings.Fields(opt)
		if len(fields) == 0 {
			continue
		}
		nums := make([]uint64, 0, len(fields)-1)
		for _, v := range fields[1:] {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: %s takes numbers", line, fields[0])
			}
			nums = append(nums, n)
		}
		switch fields[0] {
		case "TOTP_AUTH":
		case "HOTP_COUNTER":
			if len(nums) != 1 {
				return nil, fmt.Errorf("line %d: HOTP_COUNTER takes one number", line)
			}
			f.req.Kind, f.req.Counter = "hotp", nums[0]
		case "STEP_SIZE":
			if len(nums) != 1 || nums[0] < 1 || nums[0] > 3600 {
				return nil, fmt.Errorf("line %d: STEP_SIZE takes one number of seconds", line)
			}
			f.req.Period = int(nums[0])
		case "DISALLOW_REUSE":
			f.req.UsedSteps = nums
		case "WINDOW_SIZE":
			f.notes = append(f.notes, "its WINDOW_SIZE is not carried over: mfad's [otp] verify_window applies")
		case "RATE_LIMIT":
			f.notes = append(f.notes, "its RATE_LIMIT is not carried over: mfad's [lockout] applies")
		default:
			f.notes = append(f.notes, fmt.Sprintf("unknown option %q ignored", fields[0]))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if f.req.Kind == "hotp" {
		f.req.UsedSteps, f.req.Period = nil, 0
	}
	if len(f.req.UsedSteps) == 0 {
		f.req.UsedSteps = nil
	}
	if f.scratch > 0 {
		f.notes = append(f.notes, fmt.Sprintf("its %d scratch codes become single-use temporary codes of the account, with no expiry", f.scratch))
	}
	return f, nil
}

// parseOTPAuth reads one otpauth:// URI (Key Uri Format) as authenticator
// apps export them. Errors never quote the secret.
func parseOTPAuth(s string) (api.ImportDevice, error) {
	req := api.ImportDevice{Source: "otpauth"}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "otpauth" {
		return req, errors.New("not an otpauth:// URI")
	}
	switch u.Host {
	case "totp", "hotp":
		req.Kind = u.Host
	default:
		return req, errors.New("otpauth type must be totp or hotp")
	}
	q := u.Query()
	req.Secret = strings.ToUpper(strings.TrimSpace(q.Get("secret")))
	if req.Secret == "" {
		return req, errors.New("no secret")
	}
	req.Label = strings.TrimPrefix(u.Path, "/")
	if iss := q.Get("issuer"); iss != "" && !strings.Contains(req.Label, ":") {
		req.Label = iss + ":" + req.Label
	}
	if len(req.Label) > 64 {
		req.Label = req.Label[:64]
	}
	req.Algorithm = strings.ToUpper(q.Get("algorithm"))
	for _, p := range []struct {
		name string
		dst  *int
	}{{"digits", &req.Digits}, {"period", &req.Period}} {
		if v := q.Get(p.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 || n > 3600 {
				return req, fmt.Errorf("%s is not a small number", p.name)
			}
			*p.dst = n
		}
	}
	if req.Kind == "hotp" {
		if req.Period != 0 {
			return req, errors.New("an hotp URI has no period")
		}
		v := q.Get("counter")
		if v == "" {
			return req, errors.New("an hotp URI needs its counter")
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return req, errors.New("counter is not a number")
		}
		req.Counter = n
	}
	return req, nil
}

// fileOwner is the user name owning path, the account a home directory's
// file belongs to.
func fileOwner(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", errors.New("no owner")
	}
	u, err := user.LookupId(strconv.FormatUint(uint64(st.Uid), 10))
	if err != nil {
		return "", fmt.Errorf("its owner uid %d is no user: %w", st.Uid, err)
	}
	return u.Username, nil
}

// importResult is one line of an importer's report.
type importResult struct {
	Where   string      `json:"where"`
	Account string      `json:"account,omitempty"`
	Kind    string      `json:"kind,omitempty"`
	Action  string      `json:"action"` // would_import, imported, refused
	Device  *api.Device `json:"device,omitempty"`
	Reason  string      `json:"reason,omitempty"`
	Notes   []string    `json:"notes,omitempty"`
}

// runImport reports, then (with apply) imports, each item; it fails when
// any item was refused.
func (a *app) runImport(cmd *cobra.Command, items []importItem, apply bool) error {
	refused := 0
	for _, it := range items {
		res := importResult{Where: it.where, Account: it.account, Kind: it.req.Kind, Notes: it.notes}
		req := it.req
		req.DryRun = !apply
		d, err := a.client().ImportDevice(cmd.Context(), it.account, req)
		switch {
		case err != nil:
			var p *api.Problem
			if !errors.As(err, &p) {
				return err // mfad unreachable: stop
			}
			res.Action, res.Reason = "refused", describe(err)
			refused++
		case apply:
			res.Action, res.Device = "imported", d
		default:
			res.Action, res.Device = "would_import", d
		}
		if a.json {
			if err := a.printJSON(res); err != nil {
				return err
			}
			continue
		}
		switch res.Action {
		case "refused":
			fmt.Fprintf(a.out, "%s: %s: refused: %s\n", res.Where, res.Account, res.Reason)
		case "imported":
			fmt.Fprintf(a.out, "%s: %s: imported as %s device %s\n", res.Where, res.Account, res.Kind, d.ID)
		default:
			if d.OTP != nil {
				fmt.Fprintf(a.out, "%s: %s: would import a %s device (%s, %d digits)\n", res.Where, res.Account, res.Kind, d.OTP.Algorithm, d.OTP.Digits)
			} else {
				fmt.Fprintf(a.out, "%s: %s: would import a %s device (security key, no attestation)\n", res.Where, res.Account, res.Kind)
			}
		}
		for _, n := range res.Notes {
			fmt.Fprintf(a.out, "  note: %s\n", n)
		}
	}
	if !apply && !a.json && refused < len(items) {
		fmt.Fprintln(a.errOut, "dry run: nothing was imported; run again with --apply")
	}
	if refused > 0 {
		return fmt.Errorf("%d of %d refused", refused, len(items))
	}
	return nil
}

func importCmd(a *app) *cobra.Command {
	var apply bool
	var account, label string
	cmd := &cobra.Command{Use: "import", Short: "Bring over the authenticators users already have (admin): google-authenticator, otpauth URIs, pam-u2f",
		Long: `Import OTP secrets that users already have, so that they go on using the
same authenticator app with mfad. Every importer reports what it would do,
per file or line, and changes nothing until run again with --apply. Secrets
are sent to mfad only; they are never printed.`,
		Example: `  mfactl import google-authenticator /home/alice/.google_authenticator
  mfactl import google-authenticator /home/*/.google_authenticator --apply
  mfactl import otpauth exported.txt --account alice --apply
  mfactl import pam-u2f /etc/u2f_mappings`}
	ga := &cobra.Command{Use: "google-authenticator FILE...", Short: "Import ~/.google_authenticator files (each into its owner's account)",
		Long: `Import google-authenticator's files: each becomes a TOTP (or HOTP) device of
the account named like the file's owner (or --account), active at once, with
the time steps the file lists as used (DISALLOW_REUSE) refused again. Its
window and rate limit give way to mfad's own; scratch codes become single-use
temporary codes of the account (no expiry).`,
		Example: `  mfactl import google-authenticator /home/alice/.google_authenticator
  mfactl import google-authenticator /home/*/.google_authenticator --apply`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if account != "" && len(args) > 1 {
				return usagef("--account names one account: give one file")
			}
			var items []importItem
			for _, path := range args {
				it := importItem{where: path, account: account}
				f, err := os.Open(path)
				if err != nil {
					return err
				}
				ga, err := parseGoogleAuthenticator(f)
				f.Close()
				if err != nil {
					return usagef("%s: %v", path, err)
				}
				if it.account == "" {
					if it.account, err = fileOwner(path); err != nil {
						return usagef("%s: %v; name the account with --account", path, err)
					}
				}
				it.req, it.notes = ga.req, ga.notes
				it.req.Label = label
				if it.req.Label == "" {
					it.req.Label = "google-authenticator"
				}
				items = append(items, it)
			}
			return a.runImport(cmd, items, apply)
		}}
	ga.Flags().StringVar(&account, "account", "", "the `ACCOUNT` to import into (default: the file's owner)")
	ga.Flags().StringVar(&label, "label", "", "the new device's `LABEL` (default google-authenticator)")
	ga.Flags().BoolVar(&apply, "apply", false, "import (without it: report what would be imported)")

	var uriAccount string
	var uriApply bool
	uri := &cobra.Command{Use: "otpauth FILE --account ACCOUNT", Short: "Import otpauth:// URIs, one per line, as authenticator apps export them",
		Example: `  mfactl import otpauth exported.txt --account alice
  mfactl import otpauth - --account alice --apply < exported.txt`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if uriAccount == "" {
				return usagef("name the account with --account (URIs name an app's accounts, not Unix users)")
			}
			var r io.Reader = stdin
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			var items []importItem
			sc := bufio.NewScanner(io.LimitReader(r, maxImportFile))
			n := 0
			for sc.Scan() {
				n++
				l := strings.TrimSpace(sc.Text())
				if l == "" || strings.HasPrefix(l, "#") {
					continue
				}
				req, err := parseOTPAuth(l)
				if err != nil {
					return usagef("%s:%d: %v", args[0], n, err)
				}
				items = append(items, importItem{where: fmt.Sprintf("%s:%d", args[0], n), account: uriAccount, req: req})
			}
			if err := sc.Err(); err != nil {
				return err
			}
			if len(items) == 0 {
				return usagef("%s holds no otpauth:// URI", args[0])
			}
			return a.runImport(cmd, items, uriApply)
		}}
	uri.Flags().StringVar(&uriAccount, "account", "", "the `ACCOUNT` to import into")
	uri.Flags().BoolVar(&uriApply, "apply", false, "import (without it: report what would be imported)")
	for _, c := range []*cobra.Command{ga, uri} {
		c.RegisterFlagCompletionFunc("account", func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
			return a.completeAccounts(cmd, nil, "")
		})
	}
	cmd.AddCommand(ga, uri, importPamU2FCmd(a))
	return cmd
}
