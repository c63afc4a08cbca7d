package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"reflect"
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
	yes    bool
	out    io.Writer
	errOut io.Writer
	c      *client.Client
	// ran is set once a command's arguments and flags were accepted:
	// an error before that is a usage error.
	ran bool
}

func (a *app) client() *client.Client {
	if a.c == nil {
		a.c = &client.Client{Socket: a.socket, Bearer: a.bearer}
	}
	return a.c
}

// print writes v as one line of JSON with --json (JSON lines: a list is
// one object per line), else calls human.
func (a *app) print(v any, human func(w *tabwriter.Writer)) error {
	if a.json || human == nil {
		return a.printJSON(v)
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	human(tw)
	return tw.Flush()
}

// printJSON writes v as JSON lines: a slice, or a list answer (an object
// whose one field is a list), as one line per element.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.out)
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer && !rv.IsNil() && rv.Elem().Kind() == reflect.Slice {
		rv = rv.Elem()
	}
	if rv.Kind() == reflect.Slice {
		for i := range rv.Len() {
			if err := enc.Encode(rv.Index(i).Interface()); err != nil {
				return err
			}
		}
		return nil
	}
	return enc.Encode(v)
}

// Exit codes (documented in mfactl(1)).
const (
	exitOK          = 0
	exitRefused     = 1 // the daemon (or mfactl) said no: invalid code, denied, conflict
	exitUsage       = 2 // bad arguments or flags; a needed confirmation missing
	exitUnreachable = 3 // nothing answers on the socket, or it may not be opened
	exitNotFound    = 4 // no such account, device, key, token or software key
)

// usageError is a mistake on the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

func newRoot(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "mfactl",
		Short: "Manage mfad: accounts, MFA devices, security keys, tokens and audit",
		Long: `mfactl manages mfad, the local multi-factor authentication daemon, over its
socket ($MFAD_SOCKET, default /run/mfad/mfad.sock). Admins (root and the
mfad admin group) manage every account; any other user manages their own,
and changes to an account with an active device need a step-up token from
` + "`mfactl authenticate`" + ` (--step-up TOKEN or $MFAD_STEP_UP).

Devices are named by id, a unique id prefix, or their label.
Exit status: 0 ok, 1 refused, 2 usage, 3 mfad unreachable, 4 not found.`,
		Example: `  mfactl info
  mfactl account create alice --kind owner --email alice@example.org
  oathtool --totp -b SECRET | mfactl authenticate alice --token-only`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			a.ran = true
			if a.bearer == "" {
				a.bearer = os.Getenv("MFAD_STEP_UP")
			}
			return nil
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{msg: err.Error()} })
	root.PersistentFlags().StringVar(&a.socket, "socket", client.SocketFromEnv(), "mfad API socket ($MFAD_SOCKET)")
	root.PersistentFlags().BoolVar(&a.json, "json", false, "print JSON lines (one object per line); errors as problem+json on stderr")
	root.PersistentFlags().StringVar(&a.bearer, "step-up", "", "step-up `TOKEN` from mfactl authenticate, for changes by a non-admin (default $MFAD_STEP_UP)")
	root.AddCommand(infoCmd(a), importCmd(a), accountCmd(a), deviceCmd(a), authenticateCmd(a), tokenCmd(a), keyCmd(a), emulatorCmd(a), eventsCmd(a), recoverCmd(a), auditCmd(a), adminCmd(a))
	return root
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{out: os.Stdout, errOut: os.Stderr}
	os.Exit(run(ctx, a, os.Args[1:]))
}

// run executes one command line and returns the exit status.
func run(ctx context.Context, a *app, args []string) int {
	root := newRoot(a)
	root.SetArgs(args)
	root.SetOut(a.out)
	root.SetErr(a.errOut)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code := exitCode(err, a.ran)
	if a.json {
		json.NewEncoder(a.errOut).Encode(problemOf(err, code))
	} else {
		fmt.Fprintln(a.errOut, "mfactl:", describe(err))
		if code == exitUsage && !a.ran {
			fmt.Fprintln(a.errOut, "  see `mfactl help` and the command's --help")
		}
	}
	return code
}

// problemOf is err as a problem object: the daemon's own, or one made
// for errors that arose in mfactl.
func problemOf(err error, code int) *api.Problem {
	var p *api.Problem
	if errors.As(err, &p) {
		return p
	}
	pc := map[int]string{exitUsage: "usage", exitUnreachable: "unreachable", exitNotFound: api.CodeNotFound}[code]
	if pc == "" {
		pc = "refused"
	}
	return &api.Problem{Type: "about:blank", Title: "mfactl: " + pc, Detail: err.Error(), Code: pc}
}

// describe turns API problems into one readable line, and a hint that
// names the mfactl command that helps.
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
		if p.Hint == api.HintResync {
			s += "\n  the device's clock may be off: sign in with this code and the next one (`mfactl authenticate ACCOUNT --next-code NEXT`), or resync it (`mfactl device resync ACCOUNT DEVICE`)"
		}
		return s
	}
	return err.Error()
}

var hints = map[string]string{
	api.CodePermissionDenied:    "run it as the account's own user, as root, or as a member of the mfad admin group",
	api.CodeStepUpRequired:      "sign in first: `export MFAD_STEP_UP=$(mfactl authenticate ACCOUNT --token-only)`, or pass --step-up TOKEN",
	api.CodeDeviceOutOfSync:     "resync the device: `mfactl device resync ACCOUNT DEVICE` (asks for two consecutive codes)",
	api.CodeLockedOut:           "an admin can clear it: `mfactl admin unlock ACCOUNT`",
	api.CodeNotFound:            "see what there is: `mfactl account list`, `mfactl device list ACCOUNT`",
	api.CodeAccountExists:       "see it with `mfactl account show NAME`; change it with `mfactl account update NAME`",
	api.CodeDeviceLimitReached:  "remove one first: `mfactl device list ACCOUNT`, then `mfactl device deactivate` and `mfactl device delete`",
	api.CodeInvalidCode:         "type the code your device shows now; for activate and resync, two consecutive codes (`oathtool --totp -b SECRET -w 1` prints the current one and the next)",
	api.CodeCodeAlreadyUsed:     "a code works once: wait for the next one (up to 30 s)",
	api.CodeStoreOffline:        "the fleet's database is out of reach: sign in with a security key, or try again when `mfactl info` says online",
	api.CodeBackupElsewhere:     "back the PostgreSQL database up with pg_dump (or its own backups), and keep the master key with it",
	api.CodeAccountDisabled:     "an admin can enable it: `mfactl account update ACCOUNT --flags ''`",
	api.CodeResyncNotApplicable: "security keys never drift; to change one use `mfactl device replace ACCOUNT DEVICE fido`",
	api.CodeDeviceNotPending:    "the device is already active: `mfactl device list ACCOUNT`",
	api.CodeDeviceExpired:       "enroll it again: `mfactl device add totp ACCOUNT`",
	api.CodeTokenNotInInventory: "import its seed file first: `mfactl token import FILE.pskc`, then `mfactl token list`",
	api.CodeTokenAssigned:       "see who holds it: `mfactl token list`",
	api.CodeNoActiveDevice:      "enroll a device: `mfactl device add totp|fido ACCOUNT`",
	api.CodeRecoveryPending:     "every device was lost: an admin issues `mfactl admin temp-code ACCOUNT`, or an owner runs `mfactl recover`",
	api.CodeAccountHasDevices:   "delete its devices first: `mfactl device list ACCOUNT`",
	api.CodeNoKeyPresent:        "plug in a security key (`mfactl key list` shows what mfad sees), or add --wait",
	api.CodeNoKeyTouched:        "touch the key when asked, within the time allowed",
	api.CodePINRequired:         "the key has a PIN: mfactl asks for it on a terminal",
	api.CodePINBlocked:          "the key's PIN is blocked: only `mfactl key reset KEY` (erasing it) helps",
	api.CodeCredentialExcluded:  "this key is already enrolled on the account: use another key, or `mfactl device list ACCOUNT`",
	api.CodeEmulatedKeyRefused:  "software keys sign in only while mfad runs with [emulator] enabled",
	api.CodeKeyNotFound:         "see the connected keys: `mfactl key list`",
	api.CodeEmulatorsDisabled:   "software keys are off: [emulator] enabled = true in mfad's configuration",
	api.CodeRecoveryNeedsAdmin:  "ask an admin for a temporary code: `mfactl admin temp-code ACCOUNT`",
	api.CodeContactNotPending:   "start the change first: `mfactl account contact ACCOUNT --email ADDR`",
}

// exitCode maps an error to mfactl's exit status; ran is whether the
// command line was accepted.
func exitCode(err error, ran bool) int {
	var nr *client.ErrNotRunning
	var ue *usageError
	var p *api.Problem
	switch {
	case errors.As(err, &nr), errors.Is(err, syscall.EACCES):
		return exitUnreachable
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &p):
		switch p.Code {
		case api.CodeNotFound, api.CodeKeyNotFound, api.CodeTokenNotInInventory:
			return exitNotFound
		}
		return exitRefused
	case errors.Is(err, errNotFound):
		return exitNotFound
	case !ran:
		return exitUsage
	}
	return exitRefused
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
				fmt.Fprintf(w, "store\t%s %s (schema %d)\n", storeState(info.Store), info.Store.Path, info.Store.Schema)
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

// storeState is the backend and, for a shared database, whether it answers:
// "bbolt", "postgres (online)", "postgres (offline since 15:04:05)".
func storeState(s api.StoreInfo) string {
	switch {
	case s.State == "":
		return s.Backend
	case s.OfflineSince != nil:
		return fmt.Sprintf("%s (%s since %s)", s.Backend, s.State, s.OfflineSince.Local().Format("2006-01-02 15:04:05"))
	default:
		return fmt.Sprintf("%s (%s)", s.Backend, s.State)
	}
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
