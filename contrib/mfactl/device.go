package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mfad/mfad/ipc/api"
)

// accountArg is the account named on the command line, or the caller's own.
func accountArg(args []string, i int) (string, error) {
	if len(args) > i {
		return args[i], nil
	}
	u, err := user.Current()
	if err != nil {
		return "", errors.New("name the account: your user name could not be looked up")
	}
	return u.Username, nil
}

func deviceCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "device", Short: "Enroll, activate, resync, replace and list MFA devices",
		Long: `Devices are named by id, a unique id prefix (4 characters or more) or their
label. A user changing their own account needs a step-up token once a device
is active (--step-up TOKEN or $MFAD_STEP_UP); admins need none.`,
		Example: `  mfactl device list alice
  mfactl device add totp alice --label phone
  oathtool --totp -b SECRET -w 1 -N '30 seconds ago' | mfactl device activate alice phone`}
	cmd.AddCommand(lifecycleCmds(a)...)
	cmd.AddCommand(deviceAddCmd(a), deviceCodesCmd(a, "activate"), deviceCodesCmd(a, "resync"), &cobra.Command{
		Use: "list [ACCOUNT]", Short: "List an account's devices (default: yours)", Args: cobra.MaximumNArgs(1),
		Example: `  mfactl device list            # your own
  mfactl device list alice --json`,
		ValidArgsFunction: a.completeAccounts,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := accountArg(args, 0)
			if err != nil {
				return err
			}
			list, err := a.client().Devices(cmd.Context(), name)
			if err != nil {
				return err
			}
			if err := a.print(list.Devices, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "ID\tTYPE\tSTATE\tLABEL\tSERIAL\tDRIFT\tLAST USED")
				for _, d := range list.Devices {
					drift := "-"
					if d.OTP != nil && d.OTP.Kind == "totp" {
						drift = fmt.Sprintf("%+ds", d.OTP.DriftSeconds)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Type, d.State, dash(d.Label), dash(d.Serial), drift, when(d.LastUsedAt))
				}
			}); err != nil {
				return err
			}
			if list.Warning != "" && !a.json {
				fmt.Fprintln(a.errOut, "warning:", list.Warning)
			}
			return nil
		},
	})
	return cmd
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}

func deviceAddCmd(a *app) *cobra.Command {
	var req api.CreateDevice
	var noQR bool
	cmd := &cobra.Command{
		Use:   "add totp|hardware-otp|fido [ACCOUNT]",
		Short: "Enroll a device: a new authenticator-app secret, a hardware token by --serial, or a security key (touch it)",
		Long: `Enroll a device. totp shows a new secret and its QR code once; the device
stays pending until activated with two consecutive codes. hardware-otp takes a
token from the inventory (mfactl token import) by --serial. fido asks the
connected security keys for a credential: touch the one to enroll.

The first device of an account needs no step-up token; later ones do, unless
an admin adds them.`,
		Example: `  mfactl device add totp alice --label phone
  mfactl device add hardware-otp bob --serial 1000001 --label token
  mfactl device add fido alice --label yubikey --step-up TOKEN`,
		Args:      cobra.RangeArgs(1, 2),
		ValidArgs: []string{"totp", "hardware-otp", "fido"},
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return []string{"totp", "hardware-otp", "fido"}, cobra.ShellCompDirectiveNoFileComp
			}
			return a.completeAccounts(cmd, nil, "")
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Type = args[0]
			name, err := accountArg(args, 1)
			if err != nil {
				return err
			}
			if req.Type == "fido" {
				return a.addKeyDevice(cmd.Context(), name, req.Label, req.WaitForKey)
			}
			e, err := a.client().AddDevice(cmd.Context(), name, req)
			if err != nil {
				return err
			}
			return a.showEnrollment(name, e, noQR)
		},
	}
	cmd.Flags().StringVar(&req.Label, "label", "", "a name for the device (\"phone\", \"yubikey 5\"); commands accept it in place of the id")
	cmd.Flags().StringVar(&req.Serial, "serial", "", "hardware-otp: the token's serial in the inventory")
	cmd.Flags().StringVar(&req.Algorithm, "algorithm", "", "totp: SHA1 (default, what most apps support), SHA256 or SHA512")
	cmd.Flags().IntVar(&req.Digits, "digits", 0, "totp: 6 (default) or 8")
	cmd.Flags().IntVar(&req.Period, "period", 0, "totp: 30 (default) or 60 seconds")
	cmd.Flags().BoolVar(&noQR, "no-qr", false, "do not draw the QR code")
	cmd.Flags().BoolVar(&req.WaitForKey, "wait", false, "fido: wait for a key to be plugged in")
	return cmd
}

func deviceCodesCmd(a *app, verb string) *cobra.Command {
	short := "Activate a pending device with two consecutive codes"
	long := `Activate a pending TOTP/HOTP device with two consecutive codes: CODE1, then
CODE2, the one after it. Without them on the command line, mfactl asks for
them without echo on a terminal, or reads them from stdin (better than
arguments, which shell history and ps show).`
	example := `  mfactl device activate alice phone           # asks for the two codes
  oathtool --totp -b SECRET -w 1 -N '30 seconds ago' | mfactl device activate alice phone
  mfactl device activate alice 3f2a 123456 654321`
	if verb == "resync" {
		short = "Resynchronise a drifted TOTP/HOTP device with two consecutive codes"
		long = `Resynchronise a TOTP/HOTP device whose clock drifted (or an HOTP token
pressed many times), with two consecutive codes it shows now. mfad searches a
wide window and stores the drift. Security keys never drift.`
		example = `  mfactl device resync bob token               # asks for the two codes
  oathtool --totp -b SECRET -w 1 | mfactl device resync bob token`
	}
	return &cobra.Command{
		Use: verb + " ACCOUNT DEVICE [CODE1 CODE2]", Short: short, Long: long, Example: example,
		Args:              cobra.RangeArgs(2, 4),
		ValidArgsFunction: a.completeDevices,
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := a.deviceID(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			codes, err := a.readCodes(args[2:], "First code: ", "Next code: ")
			if err != nil {
				return err
			}
			call := a.client().ActivateDevice
			if verb == "resync" {
				call = a.client().ResyncDevice
			}
			d, err := call(cmd.Context(), args[0], id, api.CodePair{Code1: codes[0], Code2: codes[1]})
			if err != nil {
				return err
			}
			return a.print(d, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "device\t%s\nstate\t%s\n", d.ID, d.State)
				if d.OTP != nil && d.OTP.Kind == "totp" {
					fmt.Fprintf(w, "drift\t%+d s (%+d steps)\n", d.OTP.DriftSeconds, d.OTP.DriftSteps)
				}
			})
		},
	}
}

func authenticateCmd(a *app) *cobra.Command {
	var tokenOnly, useKey, wait bool
	var nextCode string
	cmd := &cobra.Command{
		Use:   "authenticate [ACCOUNT] [CODE]",
		Short: "Sign in with a device code or (--key) a security key; prints a step-up token for changes",
		Long: `Sign in as ACCOUNT (default: yourself) with a TOTP/HOTP code, a temporary
code from an admin, or (--key) a security key. Without CODE, mfactl asks for
it without echo on a terminal, or reads it from stdin.

The answer carries a step-up token: a non-admin changing their own account
passes it with --step-up TOKEN or $MFAD_STEP_UP (valid 5 minutes).

When a device's clock drifted, mfad refuses the code with a resync hint: on a
terminal mfactl then asks for the next code and sends both; elsewhere give it
with --next-code.`,
		Example: `  mfactl authenticate alice                     # asks for the code
  oathtool --totp -b SECRET | mfactl authenticate alice
  export MFAD_STEP_UP=$(oathtool --totp -b SECRET | mfactl authenticate alice --token-only)
  mfactl authenticate --key alice               # touch the key`,
		Args:              cobra.MaximumNArgs(2),
		ValidArgsFunction: a.completeAccounts,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := accountArg(args, 0)
			if err != nil {
				return err
			}
			var res *api.AuthResult
			if useKey {
				if len(args) > 1 {
					return usagef("--key takes no code")
				}
				res, err = withPIN(a, func(pin string) (*api.AuthResult, error) {
					return a.client().AuthenticateKey(cmd.Context(), api.Authenticate{Account: name, PIN: pin, WaitForKey: wait}, a.showProgress)
				})
			} else {
				codes, cerr := a.readCodes(args[1:], "Code: ")
				if cerr != nil {
					return cerr
				}
				req := api.Authenticate{Account: name, Code: codes[0], NextCode: nextCode}
				res, err = a.client().Authenticate(cmd.Context(), req)
				var p *api.Problem
				if errors.As(err, &p) && p.Hint == api.HintResync && req.NextCode == "" && isTerminal() {
					fmt.Fprintln(a.errOut, describe(err))
					fmt.Fprintln(a.errOut, "The device's clock may have drifted: wait for its next code and type it, to resync and sign in.")
					if req.NextCode, err = readSecret("Next code: "); err != nil {
						return err
					}
					res, err = a.client().Authenticate(cmd.Context(), req)
				}
			}
			if err != nil {
				return err
			}
			if tokenOnly {
				fmt.Fprintln(a.out, res.StepUpToken)
				return nil
			}
			if err := a.print(res, func(w *tabwriter.Writer) {
				if res.Device != nil {
					fmt.Fprintf(w, "signed in\t%s with device %s (%s)\n", res.Account, res.Device.ID, res.Device.Type)
				} else {
					fmt.Fprintf(w, "signed in\t%s with a %s\n", res.Account, strings.ReplaceAll(res.Method, "_", " "))
				}
				fmt.Fprintf(w, "step-up token\t%s (until %s)\n", res.StepUpToken, res.StepUpExpiry.Local().Format("15:04:05"))
				fmt.Fprintf(w, "use it\texport MFAD_STEP_UP=%s\n", res.StepUpToken)
			}); err != nil {
				return err
			}
			if res.Warning != "" && !a.json {
				fmt.Fprintln(a.errOut, "warning:", res.Warning)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&useKey, "key", false, "sign in with a security key (touch it)")
	cmd.Flags().BoolVar(&wait, "wait", false, "with --key: wait for a key to be plugged in")
	cmd.Flags().StringVar(&nextCode, "next-code", "", "the `CODE` the device shows after CODE: resyncs a drifted device while signing in")
	cmd.Flags().BoolVar(&tokenOnly, "token-only", false, "print only the step-up token (for scripts: export MFAD_STEP_UP=$(mfactl authenticate ... --token-only))")
	return cmd
}

func tokenCmd(a *app) *cobra.Command {
	var password, psk string
	cmd := &cobra.Command{Use: "token", Short: "Hardware OTP token inventory (admin)",
		Example: `  mfactl token import contrib/tokens.pskc
  mfactl token list`}
	imp := &cobra.Command{
		Use: "import FILE.pskc", Short: "Import a vendor seed file (PSKC, RFC 6030); refused whole on any problem", Args: cobra.ExactArgs(1),
		Example: `  mfactl token import contrib/tokens.pskc
  mfactl token import vendor.pskc --password-file pw.txt
  mfactl token import vendor.pskc --key-file aes.hex`,
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			req := api.TokenImport{PSKC: string(b)}
			if password != "" {
				pw, err := os.ReadFile(password)
				if err != nil {
					return err
				}
				req.Password = strings.TrimRight(string(pw), "\r\n")
			}
			if psk != "" {
				k, err := os.ReadFile(psk)
				if err != nil {
					return err
				}
				req.PreSharedKey = strings.TrimSpace(string(k))
				if _, err := hex.DecodeString(req.PreSharedKey); err != nil {
					return usagef("%s must hold the pre-shared key in hex", psk)
				}
			}
			toks, err := a.client().ImportTokens(cmd.Context(), req)
			if err != nil {
				return err
			}
			return printTokens(a, toks)
		},
	}
	imp.Flags().StringVar(&password, "password-file", "", "`FILE` holding the password of a PBKDF2-protected seed file")
	imp.Flags().StringVar(&psk, "key-file", "", "`FILE` holding the pre-shared AES key (hex) of an encrypted seed file")
	cmd.AddCommand(imp, &cobra.Command{
		Use: "list", Short: "List the inventory", Args: cobra.NoArgs,
		Example: `  mfactl token list
  mfactl token list --json`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			toks, err := a.client().Tokens(cmd.Context())
			if err != nil {
				return err
			}
			return printTokens(a, toks)
		},
	})
	return cmd
}

func printTokens(a *app, toks []api.Token) error {
	return a.print(toks, func(w *tabwriter.Writer) {
		fmt.Fprintln(w, "SERIAL\tKIND\tALGORITHM\tDIGITS\tMODEL\tASSIGNED TO\tSTATE")
		for _, t := range toks {
			state := "in inventory"
			switch {
			case t.Retired:
				state = "retired"
			case t.AssignedTo != "":
				state = "assigned"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", t.Serial, t.Kind, t.Algorithm, t.Digits, dash(strings.TrimSpace(t.Manufacturer+" "+t.Model)), dash(t.AssignedTo), state)
		}
	})
}
