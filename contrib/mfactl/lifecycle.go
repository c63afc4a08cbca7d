package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mfad/mfad/ipc/api"
)

func (a *app) printDevice(d *api.Device) error {
	return a.print(d, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "device\t%s (%s)\nstate\t%s\n", d.ID, d.Type, d.State)
	})
}

// deviceAction is a command on one device of an account: ACCOUNT DEVICE
// (the device named by id, id prefix or label) and extra arguments.
func (a *app) deviceAction(use string, extra int, short, example string, run func(cmd *cobra.Command, account, id string, rest []string) error) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Example: example, Args: cobra.ExactArgs(2 + extra),
		ValidArgsFunction: a.completeDevices,
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := a.deviceID(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			return run(cmd, args[0], id, args[2:])
		}}
}

// lifecycleCmds are the device verbs for lost, broken and replaced devices.
func lifecycleCmds(a *app) []*cobra.Command {
	var inventory bool
	del := a.yesFlag(a.deviceAction("delete ACCOUNT DEVICE", 0, "Delete a deactivated device (its history stays in the audit log)",
		`  mfactl device delete alice phone --yes
  mfactl device delete bob token --return-to-inventory   # admin: the token is back in hand`,
		func(cmd *cobra.Command, account, id string, _ []string) error {
			if err := a.confirm(fmt.Sprintf("delete device %s of %s", id, account)); err != nil {
				return err
			}
			if err := a.client().DeleteDevice(cmd.Context(), account, id, inventory); err != nil {
				return err
			}
			if a.json {
				return a.print(map[string]string{"deleted": id, "account": account}, nil)
			}
			fmt.Fprintf(a.out, "deleted device %s\n", id)
			return nil
		}))
	del.Flags().BoolVar(&inventory, "return-to-inventory", false, "admin: the hardware token is back in hand; put its serial back in the inventory")

	var req api.CreateDevice
	var noQR bool
	replace := a.deviceAction("replace ACCOUNT DEVICE totp|hardware-otp|fido", 1, "Deactivate and delete a device and enroll its replacement (any type) in one step",
		`  mfactl device replace alice key fido          # touch the new key
  mfactl device replace alice phone totp --label new-phone
  mfactl device replace bob token hardware-otp --serial 1000002`,
		func(cmd *cobra.Command, account, id string, rest []string) error {
			req.Type = rest[0]
			if req.Type == "fido" {
				e, err := withPIN(a, func(pin string) (*api.Enrollment, error) {
					r := req
					r.PIN = pin
					return a.client().ReplaceDevice(cmd.Context(), account, id, r, a.showProgress)
				})
				if err != nil {
					return err
				}
				return a.print(e, func(w *tabwriter.Writer) {
					fmt.Fprintf(w, "device\t%s (security key) replaces %s\n", e.Device.ID, id)
				})
			}
			e, err := a.client().ReplaceDevice(cmd.Context(), account, id, req, nil)
			if err != nil {
				return err
			}
			return a.showEnrollment(account, e, noQR)
		})
	replace.Flags().StringVar(&req.Label, "label", "", "a name for the new device")
	replace.Flags().StringVar(&req.Serial, "serial", "", "hardware-otp: the new token's serial")
	replace.Flags().BoolVar(&noQR, "no-qr", false, "do not draw the QR code")
	return []*cobra.Command{
		a.deviceAction("deactivate ACCOUNT DEVICE", 0, "Take a device out of use (admins: help someone who lost one)",
			`  mfactl device deactivate alice phone`,
			func(cmd *cobra.Command, account, id string, _ []string) error {
				d, err := a.client().DeactivateDevice(cmd.Context(), account, id)
				if err != nil {
					return err
				}
				return a.printDevice(d)
			}),
		del, replace,
		a.deviceAction("report-lost ACCOUNT DEVICE", 0, "Report a device lost, stolen or broken: deactivates it and asks for a password change (no step-up needed)",
			`  mfactl device report-lost alice phone`,
			func(cmd *cobra.Command, account, id string, _ []string) error {
				d, err := a.client().ReportLost(cmd.Context(), account, id)
				if err != nil {
					return err
				}
				if err := a.printDevice(d); err != nil {
					return err
				}
				if !a.json {
					fmt.Fprintln(a.errOut, "Change your password once a replacement is set up: whoever holds the device may know it too.")
				}
				return nil
			}),
	}
}

// showEnrollment prints a new OTP enrollment (secret and QR once).
func (a *app) showEnrollment(account string, e *api.Enrollment, noQR bool) error {
	if a.json {
		return a.print(e, nil)
	}
	fmt.Fprintf(a.out, "device %s (%s) is pending until %s\n", e.Device.ID, e.Device.Type, e.Device.ExpiresAt.Local().Format("15:04:05"))
	if e.Secret != "" {
		if len(e.QRPNG) > 0 && !noQR {
			if err := drawQR(a.out, e.QRPNG); err != nil {
				fmt.Fprintln(a.errOut, "(cannot draw the QR code:", err, ")")
			}
		}
		fmt.Fprintf(a.out, "secret: %s\nuri:    %s\n", e.Secret, e.OTPAuthURI)
		fmt.Fprintln(a.out, "this is the only time mfad shows the secret.")
	}
	ref := e.Device.ID
	if e.Device.Label != "" {
		ref = e.Device.Label
	}
	fmt.Fprintf(a.out, "activate it with two consecutive codes (asked for, or on stdin):\n  mfactl device activate %s %s\n", account, ref)
	return nil
}

func tempCodeCmd(a *app) *cobra.Command {
	var hours int
	cmd := &cobra.Command{Use: "temp-code ACCOUNT", Short: "Issue a single-use temporary access code (shown once)", Args: cobra.ExactArgs(1),
		Example: `  mfactl admin temp-code bob
  mfactl admin temp-code bob --hours 2`,
		ValidArgsFunction: a.completeAccounts,
		RunE: func(cmd *cobra.Command, args []string) error {
			tc, err := a.client().TemporaryCode(cmd.Context(), args[0], hours)
			if err != nil {
				return err
			}
			return a.print(tc, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "code\t%s\nexpires\t%s\n", tc.Code, tc.ExpiresAt.Local().Format("2006-01-02 15:04"))
				fmt.Fprintf(w, "tell %s\tsign in once with it (mfactl authenticate asks for it), then enroll a new device\n", args[0])
			})
		}}
	cmd.Flags().IntVar(&hours, "hours", 0, "validity in hours (default 24)")
	return cmd
}

func adminDeactivateCmd(a *app) *cobra.Command {
	return a.deviceAction("deactivate ACCOUNT DEVICE", 0, "Deactivate someone's lost device (the account is told by e-mail)",
		`  mfactl admin deactivate bob token && mfactl admin temp-code bob`,
		func(cmd *cobra.Command, account, id string, _ []string) error {
			d, err := a.client().DeactivateDevice(cmd.Context(), account, id)
			if err != nil {
				return err
			}
			return a.printDevice(d)
		})
}

func contactCmd(a *app) *cobra.Command {
	var email, phone string
	cmd := &cobra.Command{Use: "contact ACCOUNT --email ADDR | --phone NUMBER", Short: "Change your e-mail or phone: a code goes to the new one, and you type it here", Args: cobra.ExactArgs(1),
		Example: `  mfactl account contact alice --email alice@new.example
  mfactl account contact alice --phone "+1 555 0199"`,
		ValidArgsFunction: a.completeAccounts,
		RunE: func(cmd *cobra.Command, args []string) error {
			if (email == "") == (phone == "") {
				return usagef("give --email or --phone")
			}
			sent, err := a.client().ChangeContact(cmd.Context(), args[0], api.ContactChange{Email: email, Phone: phone})
			if err != nil {
				return err
			}
			code, err := readSecret(fmt.Sprintf("Code sent to %s: ", sent.SentTo))
			if err != nil {
				return err
			}
			acct, err := a.client().VerifyContact(cmd.Context(), args[0], code)
			if err != nil {
				return err
			}
			return a.printAccount(acct)
		}}
	cmd.Flags().StringVar(&email, "email", "", "new e-mail `ADDR`")
	cmd.Flags().StringVar(&phone, "phone", "", "new phone `NUMBER` (an owner's needs an admin)")
	return cmd
}

var stdin = bufio.NewReader(os.Stdin)

func prompt(a *app, q string) (string, error) {
	fmt.Fprint(a.errOut, q)
	line, err := stdin.ReadString('\n')
	if err != nil && line == "" {
		return "", errors.New("no answer")
	}
	return strings.TrimSpace(line), nil
}

// recoverCmd walks an owner through recovery: the e-mail code, then the
// phone code (an empty answer resends), then signs in with the token.
func recoverCmd(a *app) *cobra.Command {
	return &cobra.Command{Use: "recover [ACCOUNT]", Short: "Lost your only device? Recover an owner account with its e-mail and phone", Args: cobra.MaximumNArgs(1),
		Long: `Recover an owner account whose devices are lost: mfad sends a code to the
account's verified e-mail address, then one to its phone; type each when
asked (without echo; an empty answer sends it again), or give them on stdin,
one per line. Success signs you in with a recovery session: replace the lost
device with the step-up token it prints, then change your password.`,
		Example: `  mfactl recover                # your own account
  mfactl recover alice          # as root, for alice`,
		ValidArgsFunction: a.completeAccounts,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := accountArg(args, 0)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			r, err := a.client().StartRecovery(ctx, name)
			if err != nil {
				return err
			}
			for r.Stage != "done" {
				if !isTerminal() {
					fmt.Fprintf(a.errOut, "Code sent to %s (%s; empty to resend): ", r.SentTo, r.Stage)
				}
				code, err := readSecret(fmt.Sprintf("Code sent to %s (%s; empty to resend): ", r.SentTo, r.Stage))
				if err != nil {
					return err
				}
				step := r.Stage
				if code == "" {
					step = "resend"
				}
				next, err := a.client().RecoveryStep(ctx, r.ID, step, code)
				if err != nil {
					if errors.Is(err, &api.Problem{Code: api.CodeInvalidCode}) {
						fmt.Fprintln(a.errOut, describe(err))
						continue
					}
					return err
				}
				r = next
			}
			res, err := a.client().Authenticate(ctx, api.Authenticate{Account: name, RecoveryToken: r.RecoveryToken})
			if err != nil {
				return err
			}
			return a.print(res, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "recovered\t%s: signed in; the recovery session lasts until %s\n", name, res.StepUpExpiry.Local().Format("15:04:05"))
				fmt.Fprintf(w, "now\treplace the lost device: mfactl device replace %s DEVICE totp|fido --step-up %s\n", name, res.StepUpToken)
				fmt.Fprintf(w, "then\tchange your password (the account asks for it at the next sign-in)\n")
			})
		}}
}
