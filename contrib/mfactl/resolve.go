package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/mfad/mfad/ipc/api"
)

// errNotFound classes a name on the command line that names nothing.
var errNotFound = errors.New("not found")

// minPrefix is the shortest id prefix that names a device.
const minPrefix = 4

// deviceID resolves how the command line names a device of account: its
// id, a unique id prefix (at least 4 characters), or its label when no
// other device of the account has the same label.
func (a *app) deviceID(ctx context.Context, account, ref string) (string, error) {
	list, err := a.client().Devices(ctx, account)
	if err != nil {
		return "", err
	}
	return pickDevice(list.Devices, account, ref)
}

func pickDevice(devs []api.Device, account, ref string) (string, error) {
	var byLabel, byPrefix []api.Device
	for _, d := range devs {
		switch {
		case d.ID == ref:
			return d.ID, nil
		case d.Label == ref:
			byLabel = append(byLabel, d)
		case len(ref) >= minPrefix && strings.HasPrefix(d.ID, ref):
			byPrefix = append(byPrefix, d)
		}
	}
	for _, set := range [][]api.Device{byLabel, byPrefix} {
		switch len(set) {
		case 0:
			continue
		case 1:
			return set[0].ID, nil
		}
		var ids []string
		for _, d := range set {
			ids = append(ids, fmt.Sprintf("%s (%s, %s)", d.ID, d.Type, d.State))
		}
		return "", usagef("%q names %d devices of %s: %s; name one by its id", ref, len(set), account, strings.Join(ids, ", "))
	}
	return "", fmt.Errorf("%s has no device %q (by id, id prefix or label); see `mfactl device list %s`: %w", account, ref, account, errNotFound)
}

// isTerminal reports whether stdin is a terminal.
func isTerminal() bool { return term.IsTerminal(int(os.Stdin.Fd())) }

// confirm asks on a terminal before something that cannot be undone;
// elsewhere it needs --yes.
func (a *app) confirm(what string) error {
	if a.yes {
		return nil
	}
	if !isTerminal() {
		return usagef("%s cannot be undone: confirm with --yes (stdin is not a terminal to ask on)", what)
	}
	answer, err := prompt(a, what+": are you sure? [y/N] ")
	if err != nil {
		return err
	}
	if a := strings.ToLower(answer); a != "y" && a != "yes" {
		return errors.New("not confirmed; nothing was changed")
	}
	return nil
}

// yesFlag adds --yes to a destructive command.
func (a *app) yesFlag(cmd *cobra.Command) *cobra.Command {
	cmd.Flags().BoolVarP(&a.yes, "yes", "y", false, "do not ask for confirmation (needed when stdin is not a terminal)")
	return cmd
}

// readCodes returns the n codes given on the command line, or reads them:
// on a terminal from a prompt without echo, one at a time, else from
// stdin (whitespace-separated, as `oathtool -w 1` prints them).
func (a *app) readCodes(given []string, prompts ...string) ([]string, error) {
	if len(given) == len(prompts) {
		return given, nil
	}
	if len(given) != 0 {
		return nil, usagef("give all %d codes, or none to be asked for them", len(prompts))
	}
	codes := make([]string, 0, len(prompts))
	if isTerminal() {
		for _, p := range prompts {
			c, err := readSecret(p)
			if err != nil {
				return nil, err
			}
			codes = append(codes, strings.TrimSpace(c))
		}
	} else {
		for len(codes) < len(prompts) {
			line, err := stdin.ReadString('\n')
			codes = append(codes, strings.Fields(line)...)
			if err != nil {
				break
			}
		}
	}
	if len(codes) != len(prompts) {
		return nil, usagef("expected %d codes on stdin, read %d", len(prompts), len(codes))
	}
	for _, c := range codes {
		if c == "" {
			return nil, usagef("an empty code")
		}
	}
	return codes, nil
}

// completeDevices offers, after the account, its devices by id with their
// type and label.
func (a *app) completeDevices(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	switch len(args) {
	case 0:
		return a.completeAccounts(cmd, nil, "")
	case 1:
		list, err := a.client().Devices(cmd.Context(), args[0])
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, d := range list.Devices {
			desc := d.Type + " " + d.State
			if d.Label != "" {
				desc = d.Label + ", " + desc
			}
			out = append(out, d.ID+"\t"+desc)
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
	return nil, cobra.ShellCompDirectiveNoFileComp
}

// completeKeys offers connected keys' ids.
func (a *app) completeKeys(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	keys, err := a.client().Keys(cmd.Context())
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, k := range keys {
		out = append(out, k.ID+"\t"+strings.TrimSpace(k.Manufacturer+" "+k.Product))
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeEmulators offers software keys' names.
func (a *app) completeEmulators(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	list, err := a.client().Emulators(cmd.Context())
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, e := range list {
		out = append(out, e.ID)
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
