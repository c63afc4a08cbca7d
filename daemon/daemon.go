package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"strconv"
	"time"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/authn/store"
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
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	key, keyPath, err := store.LoadKey(cfg.StateDir)
	if err != nil {
		return err
	}
	st, err := store.Open(cfg.StateDir, key, store.Options{
		LockTimeout:    cfg.Store.LockTimeout.Duration,
		AuditRetention: cfg.Audit.Retention,
		MaxBatch:       cfg.Store.MaxBatch,
	})
	clear(key)
	if err != nil {
		return err
	}
	defer st.Close()
	log.Info("store open", "path", st.Path(), "key", keyPath)

	svc := authn.NewService(st, authn.Config{Logger: log, Policy: cfg.Policy()})
	adminGID := int64(-1)
	if g, err := user.LookupGroup(cfg.AdminGroup); err == nil {
		adminGID, _ = strconv.ParseInt(g.Gid, 10, 64)
	} else {
		log.Info("admin group does not exist; only uid 0 is an admin", "group", cfg.AdminGroup)
	}
	started := time.Now().UTC()
	info := infoFunc(func() api.Info {
		return api.Info{
			Version: Version, API: api.Version, StartedAt: started,
			Store:   api.StoreInfo{Backend: "bbolt", Path: st.Path(), Schema: store.SchemaVersion},
			Drivers: []string{},
			Clock:   clockInfo(svc.ClockCheck()),
		}
	})
	l := cfg.Limits
	srv := server.New(server.Config{
		AdminGID:          adminGID,
		MaxBodyBytes:      l.MaxBodyBytes,
		Conns:             server.Limits{Max: l.Connections, Reserve: l.ConnectionsRootReserved, PerUID: l.ConnectionsPerUID},
		Streams:           server.Limits{Max: l.Streams, Reserve: l.StreamsRootReserved, PerUID: l.StreamsPerUID},
		ReadHeaderTimeout: l.ReadHeaderTimeout.Duration,
		ReadTimeout:       l.ReadTimeout.Duration,
		WriteTimeout:      l.WriteTimeout.Duration,
		IdleTimeout:       l.IdleTimeout.Duration,
		Logger:            log,
	}, server.Backends{Accounts: svc, Devices: svc, Tokens: svc, Backup: st, Info: info})

	ln, activated, err := listen(cfg.Socket, cfg.SocketName, log)
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	where := ln.Addr().String()
	log.Info("serving", "socket", where, "socket_activated", activated, "version", Version)
	notify(log, fmt.Sprintf("READY=1\nSTATUS=serving on %s", where))

	wdCtx, stopWatchdog := context.WithCancel(ctx)
	defer stopWatchdog()
	go watchdog(wdCtx, log, func() error {
		_, err := st.Meta("created_at")
		return err
	})

	select {
	case err := <-served:
		notify(log, "STOPPING=1\nSTATUS=server failed")
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	notify(log, "STOPPING=1\nSTATUS=finishing in-flight requests")
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

// Restore checks a backup and installs it into a stopped daemon's state dir.
func Restore(backup, stateDir string) error { return store.Restore(backup, stateDir) }

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
