package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mfad/mfad/ipc/api"
	"github.com/mfad/mfad/ipc/client"
)

// app holds what every command shares.
type app struct {
	socket string
	json   bool
	bearer string
	out    io.Writer
	errOut io.Writer
	c      *client.Client
}

func (a *app) client() *client.Client {
	if a.c == nil {
		a.c = &client.Client{Socket: a.socket, Bearer: a.bearer}
	}
	return a.c
}

// print writes v as JSON with --json, else calls human.
func (a *app) print(v any, human func(w *tabwriter.Writer)) error {
	if a.json || human == nil {
		enc := json.NewEncoder(a.out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	human(tw)
	return tw.Flush()
}

func newRoot(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:           "mfactl",
		Short:         "Manage mfad: accounts, MFA devices, security keys, tokens and audit",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&a.socket, "socket", client.SocketFromEnv(), "mfad API socket ($MFAD_SOCKET)")
	root.PersistentFlags().BoolVar(&a.json, "json", false, "print JSON instead of tables")
	root.PersistentFlags().StringVar(&a.bearer, "step-up", os.Getenv("MFAD_STEP_UP"), "step-up token from `mfactl authenticate` ($MFAD_STEP_UP)")
	root.AddCommand(infoCmd(a), accountCmd(a), deviceCmd(a), authenticateCmd(a), tokenCmd(a), keyCmd(a), emulatorCmd(a), eventsCmd(a), recoverCmd(a), auditCmd(a), adminCmd(a))
	return root
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{out: os.Stdout, errOut: os.Stderr}
	root := newRoot(a)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "mfactl:", describe(err))
		os.Exit(exitCode(err))
	}
}

// describe turns API problems into one readable line.
func describe(err error) string {
	var p *api.Problem
	if errors.As(err, &p) {
		s := fmt.Sprintf("%s [%s]", p.Detail, p.Code)
		if p.RetryAfter > 0 {
			s += fmt.Sprintf(" (retry in %ds)", p.RetryAfter)
		}
		if hint, ok := hints[p.Code]; ok {
			s += "\n  " + hint
		}
		return s
	}
	return err.Error()
}

var hints = map[string]string{
	api.CodePermissionDenied: "run it as the account's own user, as root, or as a member of the mfad admin group",
	api.CodeStepUpRequired:   "sign in first: `mfactl authenticate` prints a token; pass it with --step-up or $MFAD_STEP_UP",
	api.CodeDeviceOutOfSync:  "resync the device: `mfactl device resync ACCOUNT DEVICE CODE1 CODE2`",
	api.CodeLockedOut:        "an admin can clear it: `mfactl admin unlock ACCOUNT`",
}

// exitCode: 1 for refusals and failures, 3 when mfad is not running.
func exitCode(err error) int {
	var nr *client.ErrNotRunning
	if errors.As(err, &nr) {
		return 3
	}
	return 1
}

func infoCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "info",
		Short: "Show the daemon's version, store, key drivers, keys, host clock check and who you are to it",
		Example: `  mfactl info
  mfactl info --json      # one JSON object`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info, err := a.client().Info(cmd.Context())
			if err != nil {
				return err
			}
			return a.print(info, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "version\t%s (API %s)\n", info.Version, info.API)
				fmt.Fprintf(w, "started\t%s\n", info.StartedAt.Local().Format("2006-01-02 15:04:05"))
				fmt.Fprintf(w, "store\t%s %s (schema %d)\n", info.Store.Backend, info.Store.Path, info.Store.Schema)
				fmt.Fprintf(w, "drivers\t%s\n", dash(strings.Join(info.Drivers, ", ")))
				fmt.Fprintf(w, "keys\t%d connected\n", info.Keys)
				fmt.Fprintf(w, "software keys\t%s\n", onOff(info.Emulators))
				fmt.Fprintf(w, "host clock\t%s\n", clockLine(info.Clock))
				fmt.Fprintf(w, "you\tuid %d %s (admin: %v)\n", info.Caller.UID, info.Caller.Name, info.Caller.Admin)
			})
		},
	}
}

// clockLine says what the host clock check concluded from the TOTP
// devices verified lately.
func clockLine(c api.Clock) string {
	switch c.Verdict {
	case "ok":
		return fmt.Sprintf("ok (checked against %d TOTP devices used lately)", c.Devices)
	case "host_clock_suspect":
		return fmt.Sprintf("suspect: %d of %d TOTP devices agree it is off by %+d s; check NTP (timedatectl)", c.Agreeing, c.Devices, c.OffsetSeconds)
	}
	return fmt.Sprintf("not known yet (%d TOTP devices used lately; 3 are needed)", c.Devices)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
