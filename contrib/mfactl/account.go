package main

import (
	"fmt"
	"os/user"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mfad/mfad/ipc/api"
)

func accountCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "account", Short: "List, show, create, update and delete accounts",
		Example: `  mfactl account create alice --kind owner --email alice@example.org --email-verified
  mfactl account list
  mfactl account show alice`}
	cmd.AddCommand(
		&cobra.Command{
			Use: "list", Short: "List accounts (admin)", Args: cobra.NoArgs,
			Example: `  mfactl account list
  mfactl account list --json     # one account per line`,
			RunE: func(cmd *cobra.Command, _ []string) error {
				accts, err := a.client().Accounts(cmd.Context())
				if err != nil {
					return err
				}
				return a.print(accts, func(w *tabwriter.Writer) {
					fmt.Fprintln(w, "NAME\tKIND\tEMAIL\tPHONE\tFLAGS")
					for _, x := range accts {
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", x.Name, x.Kind, contact(x.Email, x.EmailVerified),
							contact(x.Phone, x.PhoneVerified), dash(strings.Join(x.Flags, ",")))
					}
				})
			},
		},
		&cobra.Command{
			Use: "show NAME", Short: "Show one account (yours, or any as admin)", Args: cobra.ExactArgs(1),
			Example:           `  mfactl account show alice`,
			ValidArgsFunction: a.completeAccounts,
			RunE: func(cmd *cobra.Command, args []string) error {
				x, err := a.client().Account(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return a.printAccount(x)
			},
		},
		accountCreateCmd(a), contactCmd(a),
		accountUpdateCmd(a),
		a.yesFlag(&cobra.Command{
			Use: "delete NAME", Short: "Delete an account and its devices (admin)", Args: cobra.ExactArgs(1),
			Example: `  mfactl account delete bob          # asks first
  mfactl account delete bob --yes`,
			ValidArgsFunction: a.completeAccounts,
			RunE: func(cmd *cobra.Command, args []string) error {
				if err := a.confirm("delete account " + args[0] + " and its devices"); err != nil {
					return err
				}
				if err := a.client().DeleteAccount(cmd.Context(), args[0]); err != nil {
					return err
				}
				if a.json {
					return a.print(map[string]string{"deleted": args[0]}, nil)
				}
				fmt.Fprintf(a.out, "deleted account %s\n", args[0])
				return nil
			},
		}),
	)
	return cmd
}

func (a *app) printAccount(x *api.Account) error {
	return a.print(x, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "name\t%s\n", x.Name)
		fmt.Fprintf(w, "kind\t%s\n", x.Kind)
		fmt.Fprintf(w, "e-mail\t%s\n", contact(x.Email, x.EmailVerified))
		fmt.Fprintf(w, "phone\t%s\n", contact(x.Phone, x.PhoneVerified))
		fmt.Fprintf(w, "flags\t%s\n", dash(strings.Join(x.Flags, ", ")))
		fmt.Fprintf(w, "failed attempts\t%d\n", x.FailedAttempts)
		if !x.LockedUntil.IsZero() {
			fmt.Fprintf(w, "locked until\t%s\n", x.LockedUntil.Local().Format("2006-01-02 15:04:05"))
		}
		fmt.Fprintf(w, "created\t%s\n", x.CreatedAt.Local().Format("2006-01-02 15:04:05"))
	})
}

func contact(v string, verified bool) string {
	switch {
	case v == "":
		return "-"
	case verified:
		return v + " (verified)"
	}
	return v + " (unverified)"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func accountCreateCmd(a *app) *cobra.Command {
	var req api.CreateAccount
	var force bool
	cmd := &cobra.Command{
		Use: "create NAME", Short: "Create an account for a Unix user (admin)", Args: cobra.ExactArgs(1),
		Long: `Create an account for the Unix user NAME. Owners recover a lost device
themselves with their verified e-mail and phone; members ask an admin.

NAME must be a user of this host: an account under a mistyped name would
leave the real user unguarded where PAM lets users without an account in
(nouserok). mfactl refuses a name it cannot look up unless --force.`,
		Example: `  mfactl account create alice --kind owner --email alice@example.org --email-verified \
      --phone "+1 555 0100" --phone-verified
  mfactl account create bob
  mfactl account create ci-robot --force   # not a user of this host`,
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Name = args[0]
			if _, err := user.Lookup(req.Name); err != nil {
				if !force {
					return usagef("%s is not a user of this host (%v): a typo would leave the real user unguarded under nouserok; check the name, or add --force", req.Name, err)
				}
				fmt.Fprintf(a.errOut, "warning: %s is not a user of this host; creating the account anyway (--force)\n", req.Name)
			}
			x, err := a.client().CreateAccount(cmd.Context(), req)
			if err != nil {
				return err
			}
			return a.printAccount(x)
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Kind, "kind", "member", "owner (recovers with e-mail and phone) or member (needs an admin)")
	f.StringVar(&req.Email, "email", "", "e-mail address")
	f.StringVar(&req.Phone, "phone", "", "phone number")
	f.BoolVar(&req.EmailVerified, "email-verified", false, "record the e-mail address as already verified")
	f.BoolVar(&req.PhoneVerified, "phone-verified", false, "record the phone number as already verified")
	f.StringSliceVar(&req.Flags, "flag", nil, "account flag (password_change_required, disabled)")
	f.BoolVar(&force, "force", false, "create the account even if NAME is not a user of this host")
	cmd.RegisterFlagCompletionFunc("kind", cobra.FixedCompletions([]string{"owner", "member"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func accountUpdateCmd(a *app) *cobra.Command {
	var kind, email, phone string
	var emailV, phoneV bool
	var flags []string
	cmd := &cobra.Command{
		Use: "update NAME", Short: "Change an account's kind, contacts, verified marks or flags (admin)", Args: cobra.ExactArgs(1),
		Example: `  mfactl account update alice --kind owner
  mfactl account update alice --phone "+1 555 0100" --phone-verified
  mfactl account update bob --flags ''        # clear every flag`,
		ValidArgsFunction: a.completeAccounts,
		RunE: func(cmd *cobra.Command, args []string) error {
			var req api.PatchAccount
			f := cmd.Flags()
			if f.Changed("kind") {
				req.Kind = &kind
			}
			if f.Changed("email") {
				req.Email = &email
			}
			if f.Changed("phone") {
				req.Phone = &phone
			}
			if f.Changed("email-verified") {
				req.EmailVerified = &emailV
			}
			if f.Changed("phone-verified") {
				req.PhoneVerified = &phoneV
			}
			if f.Changed("flags") {
				req.Flags = &flags
			}
			x, err := a.client().PatchAccount(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			return a.printAccount(x)
		},
	}
	f := cmd.Flags()
	f.StringVar(&kind, "kind", "", "owner or member")
	f.StringVar(&email, "email", "", "e-mail address (clears its verified mark unless --email-verified)")
	f.StringVar(&phone, "phone", "", "phone number (clears its verified mark unless --phone-verified)")
	f.BoolVar(&emailV, "email-verified", false, "mark the e-mail address verified (or not, with =false)")
	f.BoolVar(&phoneV, "phone-verified", false, "mark the phone number verified (or not, with =false)")
	f.StringSliceVar(&flags, "flags", nil, "replace the account's flags (empty to clear)")
	return cmd
}

// completeAccounts offers account names (works for admins).
func (a *app) completeAccounts(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	accts, err := a.client().Accounts(cmd.Context())
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	names := make([]string, len(accts))
	for i, x := range accts {
		names[i] = x.Name
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}
