package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/mfad/mfad/ipc/api"
)

// readSecret asks for a PIN or a code on the terminal without echo;
// elsewhere it reads one line of stdin.
func readSecret(prompt string) (string, error) {
	fd := int(os.Stdin.Fd())
	if term.IsTerminal(fd) {
		fmt.Fprint(os.Stderr, prompt)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(os.Stderr)
		return strings.TrimSpace(string(b)), err
	}
	line, err := stdin.ReadString('\n')
	if err != nil && line == "" {
		return "", usagef("stdin ended: no answer to %q", strings.TrimSuffix(prompt, ": "))
	}
	return strings.TrimSpace(line), nil
}

// showProgress prints what a key is waiting for.
// Under --json each event is a JSON line on stdout, before the result's.
func (a *app) showProgress(e api.Event) {
	if a.json {
		a.printJSON(e)
		return
	}
	switch {
	case e.Event == "touch_required":
		fmt.Fprintln(a.errOut, "Touch your security key.")
	case e.Event == "key_added":
		fmt.Fprintln(a.errOut, "Security key found.")
	case e.Event == "keepalive" && e.Status == "up_needed":
		// already asked; keep quiet
	}
}

// withPIN runs op, and once more with a PIN read from the terminal when
// the key answers pin_required.
func withPIN[T any](a *app, op func(pin string) (T, error)) (T, error) {
	v, err := op("")
	if !errors.Is(err, &api.Problem{Code: api.CodePINRequired}) {
		return v, err
	}
	pin, rerr := readSecret("Security key PIN: ")
	if rerr != nil {
		return v, rerr
	}
	return op(pin)
}

func (a *app) addKeyDevice(ctx context.Context, account, label string, wait bool) error {
	e, err := withPIN(a, func(pin string) (*api.Enrollment, error) {
		return a.client().AddKeyDevice(ctx, account, api.CreateDevice{Label: label, PIN: pin, WaitForKey: wait}, a.showProgress)
	})
	if err != nil {
		return err
	}
	return a.print(e, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "device\t%s (security key) is active\n", e.Device.ID)
		if f := e.Device.FIDO; f != nil {
			fmt.Fprintf(w, "aaguid\t%s %s\n", f.AAGUID, f.Model)
			fmt.Fprintf(w, "attestation\t%s\n", f.Verdict)
		}
	})
}

// resetRule is what a reset needs of the person at the key.
const resetRule = `A reset erases every credential on the key and its PIN, and cannot be undone.
Keys accept it only within about 10 seconds of being plugged in (CTAP 2.1
§6.6), and with a touch: unplug the key, plug it back in, answer at once and
touch the key when it blinks.`

func keyCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Connected security keys: list, info, wink, PIN, reset",
		Example: `  mfactl key list
  mfactl key info KEY`}
	list := func(cmd *cobra.Command, args []string) error {
		keys, err := a.client().Keys(cmd.Context())
		if err != nil {
			return err
		}
		if len(args) == 1 {
			for _, k := range keys {
				if k.ID == args[0] {
					return a.print(k, func(w *tabwriter.Writer) {
						fmt.Fprintf(w, "id\t%s\ndriver\t%s %s\n", k.ID, k.Driver, k.Transport)
						fmt.Fprintf(w, "device\t%s %s %s (%04x:%04x)\n", k.Manufacturer, k.Product, k.Serial, k.VendorID, k.ProductID)
						fmt.Fprintf(w, "aaguid\t%s\nversions\t%s\nextensions\t%s\n", k.AAGUID, strings.Join(k.Versions, " "), dash(strings.Join(k.Extensions, " ")))
						var opts []string
						for o, on := range k.Options {
							opts = append(opts, fmt.Sprintf("%s=%v", o, on))
						}
						fmt.Fprintf(w, "options\t%s\n", strings.Join(opts, " "))
						if k.PINRetries != nil {
							fmt.Fprintf(w, "pin retries\t%d\n", *k.PINRetries)
						}
					})
				}
			}
			return &api.Problem{Code: api.CodeKeyNotFound, Detail: "no connected key " + args[0]}
		}
		return a.print(keys, func(w *tabwriter.Writer) {
			fmt.Fprintln(w, "ID\tDRIVER\tDEVICE\tAAGUID\tVERSIONS")
			for _, k := range keys {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.Driver, strings.TrimSpace(k.Manufacturer+" "+k.Product), k.AAGUID, strings.Join(k.Versions, ","))
			}
		})
	}
	// setPIN reads the PINs (never from the command line: a no-echo prompt
	// on a terminal, else lines of stdin) and sets or changes the key's PIN.
	setPIN := func(cmd *cobra.Command, key string, change bool) error {
		var req api.KeyPIN
		if change {
			cur, err := readSecret("Current PIN: ")
			if err != nil {
				return err
			}
			req.CurrentPIN = cur
		}
		p1, err := readSecret("New PIN: ")
		if err != nil {
			return err
		}
		p2, err := readSecret("New PIN again: ")
		if err != nil {
			return err
		}
		if p1 != p2 {
			return errors.New("the PINs differ")
		}
		if p1 == "" {
			return usagef("the new PIN is empty")
		}
		req.PIN = p1
		if err := a.client().SetKeyPIN(cmd.Context(), key, req); err != nil {
			return err
		}
		fmt.Fprintf(a.errOut, "The PIN of key %s is %s.\n", key, map[bool]string{false: "set", true: "changed"}[change])
		return nil
	}
	pin := &cobra.Command{
		Use: "pin set|change KEY", Short: "Set a key's first PIN, or change it (admin; PINs are asked for, never arguments)", Args: cobra.ExactArgs(1),
		Long: `Sets the first PIN of a key (pin set) or changes it (pin change, which asks
for the current PIN first). The PINs are read from a prompt without echo on a
terminal, else one per line from stdin; they are never command-line arguments.`,
		Example: `  mfactl key pin set KEY
  mfactl key pin change KEY
  printf '%s\n%s\n' "$PIN" "$PIN" | mfactl key pin set KEY`,
		ValidArgsFunction: a.completeKeys,
		RunE: func(cmd *cobra.Command, args []string) error {
			change, _ := cmd.Flags().GetBool("change")
			return setPIN(cmd, args[0], change)
		},
	}
	pin.AddCommand(
		&cobra.Command{Use: "set KEY", Short: "Set the first PIN of a key (admin)", Args: cobra.ExactArgs(1),
			Example: "  mfactl key pin set KEY", ValidArgsFunction: a.completeKeys,
			RunE: func(cmd *cobra.Command, args []string) error { return setPIN(cmd, args[0], false) }},
		&cobra.Command{Use: "change KEY", Short: "Change a key's PIN, asking for the current one (admin)", Args: cobra.ExactArgs(1),
			Example: "  mfactl key pin change KEY", ValidArgsFunction: a.completeKeys,
			RunE: func(cmd *cobra.Command, args []string) error { return setPIN(cmd, args[0], true) }},
	)
	pin.Flags().Bool("change", false, "change an existing PIN (the same as pin change KEY)")
	cmd.AddCommand(
		&cobra.Command{Use: "list", Short: "List connected keys", Args: cobra.NoArgs, RunE: list,
			Example: `  mfactl key list
  mfactl key list --json`},
		&cobra.Command{Use: "info KEY", Short: "Show one key's GetInfo", Args: cobra.ExactArgs(1), RunE: list,
			Example: `  mfactl key info KEY`, ValidArgsFunction: a.completeKeys},
		&cobra.Command{Use: "wink KEY", Short: "Make a key blink (admin)", Args: cobra.ExactArgs(1),
			Example: `  mfactl key wink KEY`, ValidArgsFunction: a.completeKeys,
			RunE: func(cmd *cobra.Command, args []string) error { return a.client().WinkKey(cmd.Context(), args[0]) }},
		pin,
		a.yesFlag(&cobra.Command{Use: "reset KEY", Short: "Erase a key (admin; within ~10 s of plugging it in, with a touch)", Args: cobra.ExactArgs(1),
			Long: resetRule + `

The key must be named; on a terminal mfactl asks for confirmation, elsewhere
--yes is required.`,
			Example: `  mfactl key reset KEY          # asks first, then touch the key
  mfactl key reset KEY --yes`, ValidArgsFunction: a.completeKeys,
			RunE: func(cmd *cobra.Command, args []string) error {
				if !a.yes && isTerminal() {
					fmt.Fprintln(a.errOut, resetRule)
				}
				if err := a.confirm("erase every credential and the PIN of key " + args[0]); err != nil {
					return err
				}
				fmt.Fprintln(a.errOut, "Touch the key to confirm the reset.")
				if err := a.client().ResetKey(cmd.Context(), args[0]); err != nil {
					return err
				}
				fmt.Fprintf(a.errOut, "Key %s is reset: its credentials and its PIN are gone.\n", args[0])
				return nil
			}}),
	)
	cmd.AddCommand(labCmds(a)...)
	return cmd
}

func emulatorCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "emulator", Short: "Software FIDO2 keys (admin; when enabled)",
		Example: `  mfactl emulator add spare-key
  mfactl emulator list`}
	var presence string
	add := &cobra.Command{Use: "add NAME", Short: "Attach a software key (its state persists under NAME)", Args: cobra.ExactArgs(1),
		Example: `  mfactl emulator add spare-key
  mfactl emulator add lab-key --presence manual`,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.client().AddEmulator(cmd.Context(), api.AddEmulator{Name: args[0], Presence: presence})
			if err != nil {
				return err
			}
			return a.print(e, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "software key\t%s (key %s, presence %s)\n", e.ID, e.KeyID, e.Presence)
			})
		}}
	add.Flags().StringVar(&presence, "presence", "", "auto (every touch approved) or manual (mfactl emulator touch)")
	act := func(action string) *cobra.Command {
		return &cobra.Command{Use: action + " NAME", Short: strings.ToUpper(action[:1]) + action[1:] + " a software key", Args: cobra.ExactArgs(1),
			Example: "  mfactl emulator " + action + " dev-key", ValidArgsFunction: a.completeEmulators,
			RunE: func(cmd *cobra.Command, args []string) error {
				return a.client().EmulatorAction(cmd.Context(), args[0], action, nil)
			}}
	}
	var fault api.Fault
	faultCmd := &cobra.Command{Use: "fault NAME KIND", Short: "Inject a fault: no_answer, ctap_error, corrupt_frames, counter_rollback, slow_keepalive, clear", Args: cobra.ExactArgs(2),
		Example: `  mfactl emulator fault dev-key ctap_error --status 0x2e --count 1
  mfactl emulator fault dev-key clear`,
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return a.completeEmulators(cmd, nil, "")
			}
			return []string{"no_answer", "ctap_error", "corrupt_frames", "counter_rollback", "slow_keepalive", "clear"}, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			fault.Kind = args[1]
			return a.client().EmulatorAction(cmd.Context(), args[0], "fault", &fault)
		}}
	faultCmd.Flags().Uint8Var(&fault.Status, "status", 0, "ctap_error: the CTAP status byte to answer")
	faultCmd.Flags().IntVar(&fault.Count, "count", 0, "ctap_error: how many commands; counter_rollback: by how much")
	faultCmd.Flags().IntVar(&fault.IntervalMS, "interval-ms", 0, "slow_keepalive: keepalive interval")
	cmd.AddCommand(add,
		&cobra.Command{Use: "list", Short: "List software keys", Args: cobra.NoArgs, Example: "  mfactl emulator list", RunE: func(cmd *cobra.Command, _ []string) error {
			list, err := a.client().Emulators(cmd.Context())
			if err != nil {
				return err
			}
			return a.print(list, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "NAME\tKEY\tPLUGGED")
				for _, e := range list {
					fmt.Fprintf(w, "%s\t%s\t%v\n", e.ID, e.KeyID, e.Plugged)
				}
			})
		}},
		&cobra.Command{Use: "rm NAME", Short: "Remove a software key and its state", Args: cobra.ExactArgs(1),
			Example: "  mfactl emulator rm spare-key", ValidArgsFunction: a.completeEmulators,
			RunE: func(cmd *cobra.Command, args []string) error {
				return a.client().RemoveEmulator(cmd.Context(), args[0])
			}},
		act("touch"), act("unplug"), act("plug"), faultCmd)
	return cmd
}

func eventsCmd(a *app) *cobra.Command {
	return &cobra.Command{Use: "events", Short: "Follow key and security events (yours; all for admins)", Args: cobra.NoArgs,
		Example: `  mfactl events
  mfactl events --json          # one event per line`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.client().Events(cmd.Context(), func(e api.Event) bool {
				if a.json {
					a.print(e, nil)
					return true
				}
				switch {
				case e.Key != nil:
					fmt.Fprintf(a.out, "%s %s %s\n", e.Event, e.Key.ID, strings.TrimSpace(e.Key.Manufacturer+" "+e.Key.Product))
				case e.Audit != nil:
					fmt.Fprintf(a.out, "%s %s %s %s %s\n", e.Audit.Action, e.Audit.Outcome, dash(e.Audit.Account), dash(e.Audit.Device), e.Audit.Detail)
				case e.Event != "heartbeat":
					fmt.Fprintln(a.out, e.Event)
				}
				return true
			})
		}}
}
