package daemon

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"time"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/authn/fido2"
	"github.com/mfad/mfad/authn/store"
	"github.com/mfad/mfad/daemon/notify"
	"github.com/mfad/mfad/hw/emu"
	"github.com/mfad/mfad/ipc/api"
	"github.com/mfad/mfad/ipc/server"
)

// Version is set at build time (-ldflags "-X github.com/mfad/mfad/daemon.Version=...").
var Version = "dev"

// shutdownGrace bounds how long in-flight requests may take after SIGTERM.
const shutdownGrace = 10 * time.Second

// Run serves until ctx ends, then finishes in-flight requests, closes the
// store and returns nil.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	files := [][2]string{{store.DBFileName, "database"}, {store.WALFileName, "write-ahead log"},
		{store.WALFileName + ".0", "write-ahead log"}, {store.WALFileName + ".1", "write-ahead log"}, {store.KeyFileName, "master key"}}
	// A base copy is what recovery rebuilds the database from.
	bases, _ := filepath.Glob(filepath.Join(cfg.StateDir, store.BaseFilePrefix+"*"))
	for _, b := range bases {
		files = append(files, [2]string{filepath.Base(b), "base copy of the database"})
	}
	if err := prepareStateDir(cfg.StateDir, files...); err != nil {
		return err
	}
	if cfg.Store.Backend != BackendPostgres {
		// After a crash, mfad.db is rebuilt from its base copy and the
		// write-ahead log before anything reads it (LoadKey would too).
		n, err := store.RecoverLog(cfg.StateDir, cfg.Store.LockTimeout.Duration)
		if err != nil {
			return err
		}
		if n > 0 {
			log.Warn("store recovered after an unclean stop", "replayed_commits", n)
		}
	}
	key, keyPath, err := store.LoadKey(cfg.StateDir)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg, key, log)
	clear(key)
	if err != nil {
		return err
	}
	defer st.Close()
	log.Info("store open", "backend", cfg.Store.Backend, "path", st.Path(), "key", keyPath, "state", st.info().State)

	fidoPolicy, err := relyingParty(cfg, st, log)
	if err != nil {
		return err
	}
	events := newHub()
	keys := newKeyRing(ctx, log, st, events, cfg.Emulator.Enabled)
	defer keys.close()
	keys.mds = fidoPolicy.Attestation.MDS
	if cfg.Emulator.Presence == "manual" {
		keys.presence = emu.PresenceManual
	}
	cfg.Recovery.Config.Resolve(cfg.StateDir)
	mailer, phone, err := notify.New(cfg.Recovery.Config)
	if err != nil {
		return err
	}
	acfg := authn.Config{Logger: log, Policy: cfg.Policy(), FIDO: fidoPolicy, Keys: keys,
		OnAudit: func(e authn.AuditEvent) {
			if events.idle() {
				return
			}
			ae := api.AuditEvent(e)
			events.publish(api.Event{Event: "audit", Audit: &ae})
		}}
	// Typed nils would look configured: set the channels only when they are.
	if mailer != nil {
		acfg.Mailer = mailer
	}
	if phone != nil {
		acfg.Phone = phone
	}
	svc := authn.NewService(st, acfg)
	if cfg.Keys.Driver != DriverNone {
		go keys.watchHardware(cfg.Keys.Driver, cfg.Keys.SysRoot)
	}
	for _, name := range cfg.Emulator.Attach {
		if _, err := keys.AddEmulator(name, ""); err != nil {
			return fmt.Errorf("attaching software key %s: %w", name, err)
		}
	}
	// The admin group's members are looked up at each connection; this
	// only tells the operator what to expect now, off the way to ready (a
	// group database lookup can take milliseconds).
	if cfg.AdminGroup != "" {
		go func() {
			if _, err := user.LookupGroup(cfg.AdminGroup); err != nil {
				log.Info("admin group does not exist; only uid 0 is an admin until it does", "group", cfg.AdminGroup)
			}
		}()
	}
	started := time.Now().UTC()
	info := infoFunc(func() api.Info {
		return api.Info{
			Version: Version, API: api.Version, StartedAt: started,
			Store:      st.info(),
			Drivers:    drivers(cfg),
			Keys:       keys.count(),
			Emulators:  cfg.Emulator.Enabled,
			Clock:      clockInfo(svc.ClockCheck()),
			Goroutines: runtime.NumGoroutine(),
		}
	})
	l := cfg.Limits
	srv := server.New(server.Config{
		AdminGroup: cfg.AdminGroup,
		// A sign-in on PostgreSQL may wait on the network; the accept
		// loop must not.
		AnswerOnAccept:    cfg.Store.Backend == BackendBolt,
		MaxBodyBytes:      l.MaxBodyBytes,
		Conns:             server.Limits{Max: l.Connections, Reserve: l.ConnectionsRootReserved, PerUID: l.ConnectionsPerUID},
		Streams:           server.Limits{Max: l.Streams, Reserve: l.StreamsRootReserved, PerUID: l.StreamsPerUID},
		ReadHeaderTimeout: l.ReadHeaderTimeout.Duration,
		ReadTimeout:       l.ReadTimeout.Duration,
		WriteTimeout:      l.WriteTimeout.Duration,
		IdleTimeout:       l.IdleTimeout.Duration,
		Logger:            log,
	}, server.Backends{Accounts: svc, Devices: svc, Tokens: svc, Backup: st,
		MasterKey: masterKeyOf(st, keyPath, cfg.StateDir), Info: info, Keys: keys, Events: events})

	ln, activated, err := listen(cfg.Socket, cfg.SocketName, log)
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	where := ln.Addr().String()
	log.Info("serving", "socket", where, "socket_activated", activated, "version", Version)
	sdNotify(log, fmt.Sprintf("READY=1\nSTATUS=serving on %s", where))

	wdCtx, stopWatchdog := context.WithCancel(ctx)
	defer stopWatchdog()
	go watchdog(wdCtx, log, st.health)

	select {
	case err := <-served:
		sdNotify(log, "STOPPING=1\nSTATUS=server failed")
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sdNotify(log, "STOPPING=1\nSTATUS=finishing in-flight requests")
	log.Info("stopping: finishing in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown did not finish in time", "err", err)
	}
	<-served
	log.Info("stopped")
	return nil
}

type infoFunc func() api.Info

func (f infoFunc) Info() api.Info { return f() }

func clockInfo(v authn.ClockVerdict) api.Clock {
	c := api.Clock{Verdict: "ok", Devices: v.Devices}
	switch {
	case v.HostClockSuspect:
		c.Verdict, c.OffsetSeconds, c.Agreeing = "host_clock_suspect", -v.OffsetSeconds, v.Agreeing
	case v.Devices < 3:
		c.Verdict = "unknown"
	}
	return c
}

func drivers(cfg Config) []string {
	out := []string{}
	if cfg.Keys.Driver != DriverNone {
		out = append(out, cfg.Keys.Driver)
	}
	if cfg.Emulator.Enabled {
		out = append(out, "emulator")
	}
	return out
}

// relyingParty builds the FIDO policy: the rpId fixed in the store at
// first start, and the attestation policy.
func relyingParty(cfg Config, st backend, log *slog.Logger) (authn.FIDOPolicy, error) {
	want := cfg.FIDO.RPID
	if want == "" {
		host, err := os.Hostname()
		if err != nil {
			return authn.FIDOPolicy{}, err
		}
		want = fido2.DefaultRPID(host)
	}
	rpID, err := st.SetMetaOnce("rp_id", want)
	if err != nil {
		return authn.FIDOPolicy{}, err
	}
	if rpID != want && cfg.FIDO.RPID != "" {
		log.Warn("fido.rp_id differs from the one fixed at first start; keeping the stored one so that no credential is orphaned",
			"stored", rpID, "configured", cfg.FIDO.RPID)
	}
	p := authn.FIDOPolicy{RPID: rpID, RequireUV: cfg.FIDO.RequireUV, TouchTimeout: cfg.FIDO.TouchTimeout.Duration,
		AllowSoftwareKeys: cfg.Emulator.Enabled, SoftwareAAGUIDs: [][16]byte{emu.AAGUID},
		Attestation: fido2.Policy{Mode: fido2.Mode(cfg.FIDO.Attestation), Now: time.Now}}
	if cfg.FIDO.TrustedRoots != "" {
		if p.Attestation.Roots, err = fido2.LoadRootsDir(cfg.FIDO.TrustedRoots); err != nil {
			return p, fmt.Errorf("fido.trusted_roots: %w", err)
		}
	}
	for _, s := range cfg.FIDO.AAGUIDs {
		a, err := fido2.ParseAAGUID(s)
		if err != nil {
			return p, fmt.Errorf("fido.aaguids: %w", err)
		}
		p.Attestation.AllowedAAGUIDs = append(p.Attestation.AllowedAAGUIDs, a)
	}
	if cfg.FIDO.MDS != "" {
		blob, err := os.ReadFile(cfg.FIDO.MDS)
		if err != nil {
			return p, fmt.Errorf("fido.mds: %w", err)
		}
		rootPEM, err := os.ReadFile(cfg.FIDO.MDSRoot)
		if err != nil {
			return p, fmt.Errorf("fido.mds_root: %w", err)
		}
		blk, _ := pem.Decode(rootPEM)
		if blk == nil {
			return p, fmt.Errorf("fido.mds_root: %s holds no PEM certificate", cfg.FIDO.MDSRoot)
		}
		root, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return p, fmt.Errorf("fido.mds_root: %w", err)
		}
		if p.Attestation.MDS, err = fido2.ParseMDS(blob, root, time.Now()); err != nil {
			return p, fmt.Errorf("fido.mds: %w", err)
		}
	}
	return p, nil
}
