// Command mfad is the multi-factor authentication daemon.
//
//	mfad [--config FILE] [--socket PATH] [--state-dir DIR] [--log-level LEVEL]
//	mfad restore --state-dir DIR [--key FILE] [--passphrase-file FILE] BACKUP
//	mfad migrate --config FILE                      (PostgreSQL schema, see docs/fleet.md)
//	mfad emulator --gadget|--uhid --state FILE ...   (see daemon/emulator)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/mfad/mfad/daemon"
	"github.com/mfad/mfad/daemon/emulator"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "restore":
			os.Exit(restore(os.Args[2:]))
		case "migrate":
			os.Exit(migrate(os.Args[2:]))
		case "emulator":
			os.Exit(emulator.Main(os.Args[2:]))
		}
	}
	fs := flag.NewFlagSet("mfad", flag.ExitOnError)
	configPath := fs.String("config", "", "TOML configuration file (see contrib/mfad.toml)")
	socket := fs.String("socket", "", "API socket path (default /run/mfad/mfad.sock)")
	stateDir := fs.String("state-dir", "", "state directory (default /var/lib/mfad)")
	logLevel := fs.String("log-level", "", "debug, info, warn or error")
	emulators := fs.Bool("emulators", false, "turn software FIDO2 keys on (not under systemd: use [emulator] enabled in the config)")
	version := fs.Bool("version", false, "print the version and exit")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file until mfad stops (for performance work)")
	fs.Parse(os.Args[1:])
	if *version {
		fmt.Println("mfad", daemon.Version)
		return
	}

	cfg := daemon.DefaultConfig()
	if *configPath != "" {
		var err error
		if cfg, err = daemon.LoadConfig(*configPath); err != nil {
			fmt.Fprintln(os.Stderr, "mfad:", err)
			os.Exit(2)
		}
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "socket":
			cfg.Socket = *socket
		case "state-dir":
			cfg.StateDir = *stateDir
		case "log-level":
			cfg.LogLevel = *logLevel
		case "emulators":
			cfg.Emulator.Enabled = *emulators
		}
	})
	if *emulators && os.Getenv("INVOCATION_ID") != "" {
		fmt.Fprintln(os.Stderr, "mfad: --emulators is refused under systemd; software keys are turned on only by the config ([emulator] enabled = true)")
		os.Exit(2)
	}
	log := daemon.NewLogger(os.Stderr, cfg.LogLevel)

	// mfad's live heap is small and allocation-heavy per request (HTTP,
	// JSON, records): collecting at 4x the live heap instead of 2x cuts
	// GC work on the sign-in path for a few MB. GOGC still overrides.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(300)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mfad:", err)
			os.Exit(2)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := daemon.Run(ctx, cfg, log); err != nil {
		log.Error("mfad failed", "err", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func restore(args []string) int {
	fs := flag.NewFlagSet("mfad restore", flag.ExitOnError)
	stateDir := fs.String("state-dir", "", "state directory of a stopped mfad")
	var o daemon.RestoreOptions
	fs.StringVar(&o.KeyFile, "key", "", "the master key the backup was sealed under (default: the key a backup made --with-key carries, else the state directory's mfad.key)")
	fs.StringVar(&o.PassphraseFile, "passphrase-file", "", "file whose first line is the passphrase of a backup made --with-key (default: asked on the terminal)")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: mfad restore --state-dir DIR [--key FILE] [--passphrase-file FILE] BACKUP")
		fs.PrintDefaults()
	}
	fs.Parse(args)
	if *stateDir == "" || fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	msg, err := daemon.Restore(fs.Arg(0), *stateDir, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mfad restore:", err)
		return 1
	}
	fmt.Println(msg)
	return 0
}

func migrate(args []string) int {
	fs := flag.NewFlagSet("mfad migrate", flag.ExitOnError)
	configPath := fs.String("config", "/etc/mfad/mfad.toml", "TOML configuration file naming the PostgreSQL database ([store])")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: mfad migrate [--config FILE]\n\nApplies the PostgreSQL schema's pending migrations; every daemon of the fleet may then run this mfad.")
		fs.PrintDefaults()
	}
	fs.Parse(args)
	if fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	cfg, err := daemon.LoadConfig(*configPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mfad migrate:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	msg, err := daemon.Migrate(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mfad migrate:", err)
		return 1
	}
	fmt.Println(msg)
	return 0
}
