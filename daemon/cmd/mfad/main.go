// Command mfad is the multi-factor authentication daemon.
//
//	mfad [--config FILE] [--socket PATH] [--state-dir DIR] [--log-level LEVEL] [--emulators]
//	mfad restore --state-dir DIR [--key FILE] [--passphrase-file FILE] BACKUP
//	mfad migrate [--config FILE]                    (PostgreSQL schema, see docs/fleet.md)
//	mfad emulator --gadget|--uhid --state FILE ...   (see daemon/emulator)
//	mfad version
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/mfad/mfad/daemon"
	"github.com/mfad/mfad/daemon/emulator"
)

// exitError carries an exit status out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func fail(code int, format string, args ...any) error {
	return &exitError{code: code, err: fmt.Errorf(format, args...)}
}

func main() {
	root := newRoot()
	if err := root.Execute(); err != nil {
		code := 2 // flags and arguments
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(os.Stderr, "mfad:", msg)
		}
		if ee == nil {
			fmt.Fprintln(os.Stderr, "  see mfad --help, or mfad COMMAND --help")
		}
		os.Exit(code)
	}
}

func newRoot() *cobra.Command {
	var configPath, socket, stateDir, logLevel, cpuProfile string
	var emulators, version bool
	root := &cobra.Command{
		Use:   "mfad",
		Short: "The local multi-factor authentication daemon",
		Long: `mfad keeps the accounts and MFA devices (security keys, TOTP apps, hardware
OTP tokens) of this host and serves its API on a Unix socket. Without a
subcommand it runs the daemon in the foreground until SIGTERM or SIGINT.
Flags override the configuration file. See mfad(8) and mfad.toml(5).`,
		Example: `  mfad --config /etc/mfad/mfad.toml
  mfad --config contrib/dev.toml --socket .mfad/mfad.sock --state-dir .mfad   # what make run does
  mfad restore --state-dir /var/lib/mfad backup.db
  mfad emulator --uhid --state /var/lib/mfad-emu/key.state`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if version {
				fmt.Println("mfad", daemon.Version)
				return nil
			}
			cfg := daemon.DefaultConfig()
			if configPath != "" {
				var err error
				if cfg, err = daemon.LoadConfig(configPath); err != nil {
					return fail(2, "%w", err)
				}
			}
			f := cmd.Flags()
			if f.Changed("socket") {
				cfg.Socket = socket
			}
			if f.Changed("state-dir") {
				cfg.StateDir = stateDir
			}
			if f.Changed("log-level") {
				cfg.LogLevel = logLevel
			}
			if f.Changed("emulators") {
				cfg.Emulator.Enabled = emulators
			}
			if emulators && os.Getenv("INVOCATION_ID") != "" {
				return fail(2, "--emulators is refused under systemd; software keys are turned on only by the config ([emulator] enabled = true)")
			}
			return serve(cfg, cpuProfile)
		},
	}
	f := root.Flags()
	f.StringVar(&configPath, "config", "", "TOML configuration `FILE` (see contrib/mfad.toml, mfad.toml(5))")
	f.StringVar(&socket, "socket", "", "API socket `PATH` (default /run/mfad/mfad.sock)")
	f.StringVar(&stateDir, "state-dir", "", "`DIR` holding the state (default /var/lib/mfad)")
	f.StringVar(&logLevel, "log-level", "", "`LEVEL`: debug, info, warn or error")
	f.BoolVar(&emulators, "emulators", false, "turn software FIDO2 keys on (not under systemd: use [emulator] enabled in the config)")
	f.BoolVar(&version, "version", false, "print the version and exit")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile to `FILE` until mfad stops (for performance work)")
	root.AddCommand(restoreCmd(), migrateCmd(), emulatorCmd(), &cobra.Command{
		Use: "version", Short: "Print the version", Args: cobra.NoArgs, Example: "  mfad version",
		Run: func(*cobra.Command, []string) { fmt.Println("mfad", daemon.Version) },
	})
	root.CompletionOptions.HiddenDefaultCmd = true
	return root
}

func serve(cfg daemon.Config, cpuProfile string) error {
	log := daemon.NewLogger(os.Stderr, cfg.LogLevel)

	// mfad's live heap is small and allocation-heavy per request (HTTP,
	// JSON, records): collecting at 4x the live heap instead of 2x cuts
	// GC work on the sign-in path for a few MB. GOGC still overrides.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(300)
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return fail(2, "%w", err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := daemon.Run(ctx, cfg, log); err != nil {
		log.Error("mfad failed", "err", err)
		return &exitError{code: 1, err: err}
	}
	return nil
}

func restoreCmd() *cobra.Command {
	var stateDir string
	var o daemon.RestoreOptions
	cmd := &cobra.Command{
		Use:   "restore --state-dir DIR [--key FILE] [--passphrase-file FILE] BACKUP",
		Short: "Check a backup and install it into a stopped mfad's state directory",
		Example: `  systemctl stop mfad.socket mfad.service
  mfad restore --state-dir /var/lib/mfad /var/backups/mfad.db
  mfad restore --state-dir /var/lib/mfad --passphrase-file pass.txt keyed-backup.db`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if stateDir == "" {
				return fail(2, "restore: --state-dir is required (the stopped daemon's, e.g. /var/lib/mfad)")
			}
			msg, err := daemon.Restore(args[0], stateDir, o)
			if err != nil {
				return fail(1, "restore: %w", err)
			}
			fmt.Println(msg)
			return nil
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "`DIR` holding a stopped mfad's state")
	cmd.Flags().StringVar(&o.KeyFile, "key", "", "the master key `FILE` the backup was sealed under (default: the key a backup made --with-key carries, else the state directory's mfad.key)")
	cmd.Flags().StringVar(&o.PassphraseFile, "passphrase-file", "", "`FILE` whose first line is the passphrase of a backup made --with-key (default: asked on the terminal)")
	return cmd
}

func migrateCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "migrate [--config FILE]",
		Short: "Apply the PostgreSQL schema's pending migrations (fleets; see docs/fleet.md)",
		Long: `Applies the PostgreSQL schema's pending migrations; every daemon of the
fleet may then run this mfad.`,
		Example: `  mfad migrate --config /etc/mfad/mfad.toml`,
		Args:    cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			cfg, err := daemon.LoadConfig(configPath)
			if err != nil {
				return fail(2, "migrate: %w", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			msg, err := daemon.Migrate(ctx, cfg)
			if err != nil {
				return fail(1, "migrate: %w", err)
			}
			fmt.Println(msg)
			return nil
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "/etc/mfad/mfad.toml", "TOML configuration `FILE` naming the PostgreSQL database ([store])")
	return cmd
}

// emulatorCmd hands its arguments to daemon/emulator, which parses them.
func emulatorCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "emulator --gadget|--uhid|--udp [HOST:PORT] --state FILE [--presence auto|manual] [--control SOCKET] [--controller HOST:PORT|SOCKET] | ctl ...",
		Short: "Run a software FIDO2 key that the kernel sees as a real one (uhid or a USB gadget), or over UDP",
		Example: `  mfad emulator --uhid --state /var/lib/mfad-emu/key.state --control /run/mfad-emu.sock
  mfad emulator --gadget --state key.state --presence manual
  mfad emulator --udp 127.0.0.1:8111 --state key.state --controller 127.0.0.1:8112
  mfad emulator ctl --control /run/mfad-emu.sock touch`,
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 && (args[0] == "--help" || args[0] == "-h") {
				args = []string{"-h"}
			}
			if code := emulator.Main(args); code != 0 {
				return &exitError{code: code, err: errors.New("")} // it said why
			}
			return nil
		},
	}
}
