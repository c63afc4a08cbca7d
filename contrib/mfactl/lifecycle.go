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

// lifecycleCmds are the device verbs for lost, broken and replaced devices.
func lifecycleCmds(a *app) []*cobra.Command {
	var inventory bool
	del := &cobra.Command{Use: "delete ACCOUNT DEVICE", Short: "Delete a deactivated device (its history stays in the audit log)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().DeleteDevice(cmd.Context(), args[0], args[1], inventory); err != nil {
				return err
			}
			if !a.json {
				fmt.Fprintf(a.out, "deleted device %s\n", args[1])
			}
			return nil
		}}
	del.Flags().BoolVar(&inventory, "return-to-inventory", false, "admin: the hardware token is back in hand; put its serial back in the inventory")

	var req api.CreateDevice
	var noQR bool
	replace := &cobra.Command{Use: "replace ACCOUNT DEVICE totp|hardware-otp|fido", Short: "Deactivate and delete a device and enroll its replacement (any type) in one step", Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Type = args[2]
			if req.Type == "fido" {
				e, err := withPIN(a, func(pin string) (*api.Enrollment, error) {
					r := req
					r.PIN = pin
					return a.client().ReplaceDevice(cmd.Context(), args[0], args[1], r, a.showProgress)
				})
				if err != nil {
					return err
				}
				return a.print(e, func(w *tabwriter.Writer) {
					fmt.Fprintf(w, "device\t%s (security key) replaces %s\n", e.Device.ID, args[1])
				})
			}
			e, err := a.client().ReplaceDevice(cmd.Context(), args[0], args[1], req, nil)
			if err != nil {
				return err
			}
			return a.showEnrollment(args[0], e, noQR)
		}}
	replace.Flags().StringVar(&req.Label, "label", "", "a name for the new device")
	replace.Flags().StringVar(&req.Serial, "serial", "", "hardware-otp: the new token's serial")
	replace.Flags().BoolVar(&noQR, "no-qr", false, "do not draw the QR code")
	return []*cobra.Command{
		{Use: "deactivate ACCOUNT DEVICE", Short: "Take a device out of use (admins: help someone who lost one)", Args: cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				d, err := a.client().DeactivateDevice(cmd.Context(), args[0], args[1])
				if err != nil {
					return err
				}
				return a.printDevice(d)
			}},
		del, replace,
		{Use: "report-lost ACCOUNT DEVICE", Short: "Report a device lost, stolen or broken: deactivates it and asks for a password change", Args: cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				d, err := a.client().ReportLost(cmd.Context(), args[0], args[1])
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
			}},
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
	fmt.Fprintf(a.out, "activate it with two consecutive codes:\n  mfactl device activate %s %s CODE1 CODE2\n", account, e.Device.ID)
	return nil
}

func tempCodeCmd(a *app) *cobra.Command {
	var hours int
	cmd := &cobra.Command{Use: "temp-code ACCOUNT", Short: "Issue a single-use temporary access code (shown once)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tc, err := a.client().TemporaryCode(cmd.Context(), args[0], hours)
			if err != nil {
				return err
			}
			return a.print(tc, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "code\t%s\nexpires\t%s\n", tc.Code, tc.ExpiresAt.Local().Format("2006-01-02 15:04"))
				fmt.Fprintf(w, "tell %s\tsign in once with it as the code, then enroll a new device\n", args[0])
			})
		}}
	cmd.Flags().IntVar(&hours, "hours", 0, "validity in hours (default 24)")
	return cmd
}

func adminDeactivateCmd(a *app) *cobra.Command {
	return &cobra.Command{Use: "deactivate ACCOUNT DEVICE", Short: "Deactivate someone's lost device (the account is told by e-mail)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := a.client().DeactivateDevice(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			return a.printDevice(d)
		}}
}

func contactCmd(a *app) *cobra.Command {
	var email, phone string
	cmd := &cobra.Command{Use: "contact ACCOUNT --email ADDR | --phone NUMBER", Short: "Change your e-mail or phone: a code goes to the new one, and you type it here", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sent, err := a.client().ChangeContact(cmd.Context(), args[0], api.ContactChange{Email: email, Phone: phone})
			if err != nil {
				return err
			}
			code, err := prompt(a, fmt.Sprintf("Code sent to %s: ", sent.SentTo))
			if err != nil {
				return err
			}
			acct, err := a.client().VerifyContact(cmd.Context(), args[0], code)
			if err != nil {
				return err
			}
			return a.printAccount(acct)
		}}
	cmd.Flags().StringVar(&email, "email", "", "new e-mail address")
	cmd.Flags().StringVar(&phone, "phone", "", "new phone number (an owner's needs an admin)")
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
				code, err := prompt(a, fmt.Sprintf("Code sent to %s (%s; empty to resend): ", r.SentTo, r.Stage))
				if err != nil {
					return err
				}
				next, err := a.client().RecoveryStep(ctx, r.ID, map[bool]string{true: "resend", false: r.Stage}[code == ""], code)
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
				fmt.Fprintf(w, "now\treplace the lost device: MFAD_STEP_UP=%s mfactl device replace %s DEVICE totp|fido\n", res.StepUpToken, name)
				fmt.Fprintf(w, "then\tchange your password (the account asks for it at the next sign-in)\n")
			})
		}}
}
