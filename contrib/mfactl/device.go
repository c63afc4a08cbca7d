package main

import (
	"bufio"
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
	cmd := &cobra.Command{Use: "device", Short: "Enroll, activate, resync and list MFA devices"}
	cmd.AddCommand(lifecycleCmds(a)...)
	cmd.AddCommand(deviceAddCmd(a), deviceCodesCmd(a, "activate"), deviceCodesCmd(a, "resync"), &cobra.Command{
		Use: "list [ACCOUNT]", Short: "List an account's devices (default: yours)", Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := accountArg(args, 0)
			if err != nil {
				return err
			}
			list, err := a.client().Devices(cmd.Context(), name)
			if err != nil {
				return err
			}
			if err := a.print(list, func(w *tabwriter.Writer) {
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
		Use:       "add totp|hardware-otp|fido [ACCOUNT]",
		Short:     "Enroll a device: a new authenticator-app secret, a hardware token by --serial, or a security key (touch it)",
		Args:      cobra.RangeArgs(1, 2),
		ValidArgs: []string{"totp", "hardware-otp", "fido"},
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
	cmd.Flags().StringVar(&req.Label, "label", "", "a name for the device (\"phone\", \"yubikey 5\")")
	cmd.Flags().StringVar(&req.Serial, "serial", "", "hardware-otp: the token's serial in the inventory")
	cmd.Flags().StringVar(&req.Algorithm, "algorithm", "", "totp: SHA1 (default, what most apps support), SHA256 or SHA512")
	cmd.Flags().IntVar(&req.Digits, "digits", 0, "totp: 6 (default) or 8")
	cmd.Flags().IntVar(&req.Period, "period", 0, "totp: 30 (default) or 60 seconds")
	cmd.Flags().BoolVar(&noQR, "no-qr", false, "do not draw the QR code")
	cmd.Flags().BoolVar(&req.WaitForKey, "wait", false, "fido: wait for a key to be plugged in")
	return cmd
}

func deviceCodesCmd(a *app, verb string) *cobra.Command {
	short := "Activate a pending device with two consecutive codes (CODE2 is the one shown now)"
	if verb == "resync" {
		short = "Resynchronise a drifted TOTP/HOTP device with two consecutive codes"
	}
	return &cobra.Command{
		Use: verb + " ACCOUNT DEVICE CODE1 CODE2", Short: short, Args: cobra.ExactArgs(4),
		RunE: func(cmd *cobra.Command, args []string) error {
			codes := api.CodePair{Code1: args[2], Code2: args[3]}
			call := a.client().ActivateDevice
			if verb == "resync" {
				call = a.client().ResyncDevice
			}
			d, err := call(cmd.Context(), args[0], args[1], codes)
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
	cmd := &cobra.Command{
		Use:   "authenticate [ACCOUNT] [CODE]",
		Short: "Sign in with a device code or (--key) a security key; prints a step-up token for changes",
		Args:  cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := accountArg(args, 0)
			if err != nil {
				return err
			}
			code := ""
			var res *api.AuthResult
			if useKey {
				res, err = withPIN(a, func(pin string) (*api.AuthResult, error) {
					return a.client().AuthenticateKey(cmd.Context(), api.Authenticate{Account: name, PIN: pin, WaitForKey: wait}, a.showProgress)
				})
			} else if len(args) > 1 {
				code = args[1]
			} else {
				fmt.Fprint(a.errOut, "code: ")
				line, err := bufio.NewReader(os.Stdin).ReadString('\n')
				if err != nil && line == "" {
					return errors.New("no code given")
				}
				code = strings.TrimSpace(line)
			}
			if !useKey {
				res, err = a.client().Authenticate(cmd.Context(), api.Authenticate{Account: name, Code: code})
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
	cmd.Flags().BoolVar(&tokenOnly, "token-only", false, "print only the step-up token (for scripts: export MFAD_STEP_UP=$(mfactl authenticate --token-only ...))")
	return cmd
}

func tokenCmd(a *app) *cobra.Command {
	var password, psk string
	cmd := &cobra.Command{Use: "token", Short: "Hardware OTP token inventory (admin)"}
	imp := &cobra.Command{
		Use: "import FILE.pskc", Short: "Import a vendor seed file (PSKC, RFC 6030); refused whole on any problem", Args: cobra.ExactArgs(1),
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
					return fmt.Errorf("%s must hold the pre-shared key in hex", psk)
				}
			}
			toks, err := a.client().ImportTokens(cmd.Context(), req)
			if err != nil {
				return err
			}
			return printTokens(a, toks)
		},
	}
	imp.Flags().StringVar(&password, "password-file", "", "file holding the password of a PBKDF2-protected file")
	imp.Flags().StringVar(&psk, "key-file", "", "file holding the pre-shared AES key (hex) of an encrypted file")
	cmd.AddCommand(imp, &cobra.Command{
		Use: "list", Short: "List the inventory", Args: cobra.NoArgs,
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
