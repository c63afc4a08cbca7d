package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/mfad/mfad/ipc/api"
)

func auditCmd(a *app) *cobra.Command {
	var after uint64
	var limit int
	var all bool
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read the audit log (admin); --all --json exports it as JSON lines",
		Example: `  mfactl audit
  mfactl audit --after 120 --limit 20
  mfactl audit --all --json > audit.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			enc := json.NewEncoder(a.out)
			tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
			if !a.json {
				fmt.Fprintln(tw, "SEQ\tTIME\tACTOR\tACTION\tOUTCOME\tACCOUNT\tDEVICE\tDETAIL")
			}
			for {
				page, err := a.client().Audit(cmd.Context(), after, limit)
				if err != nil {
					return err
				}
				for _, e := range page.Events {
					if a.json {
						enc.Encode(e)
						continue
					}
					actor := fmt.Sprintf("uid %d", e.ActorUID)
					if e.Actor != "" {
						actor = e.Actor
					}
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.Local().Format("2006-01-02 15:04:05"),
						actor, e.Action, e.Outcome, dash(e.Account), dash(e.Device), e.Detail)
				}
				if !all || len(page.Events) < limit {
					break
				}
				after = page.Next
			}
			return tw.Flush()
		},
	}
	cmd.Flags().Uint64Var(&after, "after", 0, "show entries after this sequence number")
	cmd.Flags().IntVar(&limit, "limit", 100, "entries per page (1..1000)")
	cmd.Flags().BoolVar(&all, "all", false, "read every page")
	return cmd
}

func adminCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "admin", Short: "Administration: backup, restore, rotate-key, unlock, deactivate, temp-code",
		Example: `  mfactl admin deactivate bob token && mfactl admin temp-code bob
  mfactl admin backup /var/backups/mfad.db`}
	cmd.AddCommand(
		backupCmd(a), rotateKeyCmd(a),
		restoreCmd(a), tempCodeCmd(a), adminDeactivateCmd(a),
		&cobra.Command{
			Use: "unlock ACCOUNT", Short: "Clear an account's failed attempts and lockout (admin)", Args: cobra.ExactArgs(1),
			Example:           `  mfactl admin unlock alice`,
			ValidArgsFunction: a.completeAccounts,
			RunE: func(cmd *cobra.Command, args []string) error {
				x, err := a.client().PatchAccount(cmd.Context(), args[0], api.PatchAccount{Unlock: true})
				if err != nil {
					return err
				}
				return a.printAccount(x)
			},
		},
	)
	return cmd
}

func backupCmd(a *app) *cobra.Command {
	var withKey bool
	var passFile string
	cmd := &cobra.Command{
		Use: "backup FILE", Short: "Stream a consistent copy of the database to FILE (admin; --with-key: root)", Args: cobra.ExactArgs(1),
		Long: `Stream a consistent copy of the database to FILE while mfad runs. Secrets in it stay
sealed under the master key: keep the key (mfad.key) too, apart from the backup. With
--with-key (root), the backup carries the master key sealed under a passphrase (Argon2id),
for recovery on a new machine: mfad restore asks the passphrase and puts the key in place.`,
		Example: `  mfactl admin backup /var/backups/mfad-$(date +%F).db
  mfactl admin backup --with-key /media/offsite/mfad.backup`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var pass string
			if withKey {
				var err error
				if pass, err = newPassphrase(passFile); err != nil {
					return err
				}
			} else if passFile != "" {
				return usagef("--passphrase-file goes with --with-key")
			}
			f, err := os.OpenFile(args[0], os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			var n int64
			if withKey {
				n, err = a.client().KeyedBackup(cmd.Context(), pass, f)
			} else {
				n, err = a.client().Backup(cmd.Context(), f)
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				os.Remove(args[0])
				return err
			}
			if withKey {
				fmt.Fprintf(a.errOut, "wrote %d bytes to %s, with the master key sealed under the passphrase (mfad restore asks for it)\n", n, args[0])
			} else {
				fmt.Fprintf(a.errOut, "wrote %d bytes to %s (keep the master key mfad.key too: secrets in the backup are sealed under it)\n", n, args[0])
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&withKey, "with-key", false, "include the master key, sealed under a passphrase (root)")
	cmd.Flags().StringVar(&passFile, "passphrase-file", "", "read the passphrase from the first line of `FILE` instead of asking twice on the terminal")
	return cmd
}

// newPassphrase returns a keyed backup's passphrase: the first line of
// file, or asked twice on the terminal.
func newPassphrase(file string) (string, error) {
	var p string
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		p, _, _ = strings.Cut(string(b), "\n")
		p = strings.TrimSuffix(p, "\r")
	} else {
		fd := int(os.Stdin.Fd())
		if !term.IsTerminal(fd) {
			return "", usagef("no terminal to ask the passphrase on: give --passphrase-file FILE")
		}
		var err error
		ask := func(prompt string) (string, error) {
			fmt.Fprint(os.Stderr, prompt)
			b, err := term.ReadPassword(fd)
			fmt.Fprintln(os.Stderr)
			return string(b), err
		}
		if p, err = ask("Passphrase for the master key in the backup: "); err != nil {
			return "", err
		}
		again, err := ask("The same passphrase again: ")
		if err != nil {
			return "", err
		}
		if again != p {
			return "", usagef("the two passphrases differ; nothing was written")
		}
	}
	if len(p) < api.MinBackupPassphrase {
		return "", usagef("the passphrase needs at least %d characters", api.MinBackupPassphrase)
	}
	return p, nil
}

func rotateKeyCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate-key",
		Short: "Re-seal every secret under a new master key (root)",
		Long: `Re-seal every secret under a new master key, in one transaction, while mfad runs. The
replaced key is kept as mfad.key.old: backups taken before need it. A crash at any point
leaves a database that one of the two keys opens, and mfad picks that one at its next start.`,
		Example: `  sudo mfactl admin rotate-key
  sudo mfactl admin backup --with-key /media/offsite/mfad-after-rotation.backup`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := a.client().RotateKey(cmd.Context())
			if err != nil {
				return err
			}
			if a.json {
				return json.NewEncoder(a.out).Encode(r)
			}
			fmt.Fprintf(a.out, "re-sealed %d secrets under a new master key in %s\n", r.Resealed, r.KeyFile)
			fmt.Fprintf(a.out, "the replaced key is %s: older backups need it; keep it with them, away from this machine, then delete it here\n", r.OldKeyFile)
			return nil
		},
	}
}

// restoreCmd runs `mfad restore`: restoring works on a stopped daemon's
// files, which only the daemon's own binary may touch.
func restoreCmd(a *app) *cobra.Command {
	var stateDir, mfad, keyFile, passFile string
	cmd := &cobra.Command{
		Use:   "restore FILE --state-dir DIR",
		Short: "Check a backup and that its master key opens it, then install both into a stopped daemon's state directory",
		Example: `  systemctl stop mfad.socket mfad.service
  mfactl admin restore /var/backups/mfad.db --state-dir /var/lib/mfad --yes
  mfactl admin restore /mnt/mfad.db --state-dir /var/lib/mfad --key /mnt/mfad.key --yes`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if stateDir == "" {
				return usagef("--state-dir is required (the stopped daemon's, e.g. /var/lib/mfad)")
			}
			if err := a.confirm("replace the database in " + stateDir + " with " + args[0]); err != nil {
				return err
			}
			bin := mfad
			if bin == "" {
				bin = findMfad()
			}
			argv := []string{"restore", "--state-dir", stateDir}
			if keyFile != "" {
				argv = append(argv, "--key", keyFile)
			}
			if passFile != "" {
				argv = append(argv, "--passphrase-file", passFile)
			}
			c := exec.CommandContext(cmd.Context(), bin, append(argv, args[0])...)
			c.Stdin, c.Stdout, c.Stderr = os.Stdin, a.out, a.errOut
			if err := c.Run(); err != nil {
				return fmt.Errorf("restore failed (%s): %w", bin, err)
			}
			return nil
		},
	}
	a.yesFlag(cmd)
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "state `DIR` of the stopped mfad")
	cmd.Flags().StringVar(&mfad, "mfad", "", "path of the mfad binary (default: next to mfactl, then $PATH)")
	cmd.Flags().StringVar(&keyFile, "key", "", "the master key the backup was sealed under (default: the key a backup made --with-key carries, else the state directory's mfad.key)")
	cmd.Flags().StringVar(&passFile, "passphrase-file", "", "file whose first line is the passphrase of a backup made --with-key (default: asked on the terminal)")
	return cmd
}

func findMfad() string {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "mfad")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("mfad"); err == nil {
		return p
	}
	return "/usr/sbin/mfad"
}
