package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/user"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/ipc/api"
)

// Config tunes the server.
type Config struct {
	// AdminGroup names the group whose members are admins (with uid 0);
	// "" for none. Membership is asked of InGroup at each connection.
	AdminGroup   string
	MaxBodyBytes int64 // default request body limit (64 KiB)
	Conns        Limits
	Streams      Limits

	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration

	// AnswerOnAccept answers a lone connection's quick first request on
	// the goroutine that accepted it (inline.go). Only for a store whose
	// answers never wait on a network: while the accept loop answers, it
	// accepts nothing else.
	AnswerOnAccept bool

	// LookupUser maps a uid to its user name (default: os/user).
	LookupUser func(uid uint32) string
	// InGroup reports whether a user is a member of a group now, as
	// primary or supplementary group (default: os/user).
	InGroup func(userName, group string) (bool, error)
	Logger  *slog.Logger
}

// DefaultConfig returns the limits mfad ships with.
func DefaultConfig() Config {
	return Config{
		MaxBodyBytes:      64 << 10,
		Conns:             Limits{Max: 256, Reserve: 64, PerUID: 32},
		Streams:           Limits{Max: 64, Reserve: 16, PerUID: 4},
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
}

// Backends are what the handlers call, one small interface per area.
type Backends struct {
	Accounts AccountBackend
	Devices  DeviceBackend
	Tokens   TokenBackend
	Backup   BackupBackend
	// MasterKey is nil when the store cannot rotate its key or write a
	// keyed backup.
	MasterKey MasterKeyBackend
	Info      InfoBackend
	Keys      KeyBackend
	Events    EventBackend
}

// KeyBackend reaches the connected security keys and the software keys.
type KeyBackend interface {
	ListKeys(ctx context.Context) []api.Key
	Wink(ctx context.Context, id string) error
	SetPIN(ctx context.Context, id, current, pin string) error
	Reset(ctx context.Context, id string) error
	// CheckKey runs the conformance battery on a key; progress, when not
	// nil, receives "check_started", "check_done", "touch_required",
	// "do_not_touch" and "replug_required" with "check" and "message".
	CheckKey(ctx context.Context, id string, req api.KeyCheckRequest, progress func(string, map[string]any)) (*api.KeyCheckReport, error)
	Emulators() ([]api.Emulator, error)
	AddEmulator(name, presence string) (*api.Emulator, error)
	RemoveEmulator(name string) error
	EmulatorAct(name, action string, fault *api.Fault) error
}

// EventBackend publishes key and security events. A subscriber receives
// only the events accept takes (and is told how many of those it missed).
type EventBackend interface {
	Subscribe(accept func(api.Event) bool) (<-chan api.Event, func())
}

// DeviceBackend enrolls, activates, resyncs and verifies devices (authn.Service).
type DeviceBackend interface {
	Devices(account string) ([]authn.Device, error)
	Device(account, id string) (*authn.Device, error)
	Enroll(ctx context.Context, actor authn.Actor, account string, req authn.EnrollRequest) (*authn.Enrollment, error)
	ImportOTP(ctx context.Context, actor authn.Actor, account string, req authn.OTPImport) (*authn.Device, error)
	ImportFIDO(ctx context.Context, actor authn.Actor, account string, req authn.FIDOImport) (*authn.Device, error)
	Activate(ctx context.Context, actor authn.Actor, account, id string, codes authn.CodePair) (*authn.Device, error)
	Resync(ctx context.Context, actor authn.Actor, account, id string, codes authn.CodePair) (*authn.Device, error)
	Authenticate(ctx context.Context, actor authn.Actor, req authn.AuthRequest, progress authn.Progress) (*authn.AuthResult, error)
	EnrollFIDO(ctx context.Context, actor authn.Actor, account string, req authn.FIDOEnrollRequest, progress authn.Progress) (*authn.Device, error)
	Deactivate(ctx context.Context, actor authn.Actor, account, id string) (*authn.Device, error)
	Delete(ctx context.Context, actor authn.Actor, account, id string, opts authn.DeleteOptions) error
	ReportLost(ctx context.Context, actor authn.Actor, account, id string) (*authn.Device, error)
	Replace(ctx context.Context, actor authn.Actor, account, id string, req authn.EnrollRequest) (*authn.Enrollment, error)
	IssueTemporaryCode(ctx context.Context, actor authn.Actor, account string, ttl time.Duration) (*authn.TemporaryCode, error)
	RequestContactChange(ctx context.Context, actor authn.Actor, account string, c authn.ContactChange) (string, error)
	VerifyContactChange(ctx context.Context, actor authn.Actor, account, code string) (*authn.Account, error)
	StartRecovery(ctx context.Context, actor authn.Actor, account string) (*authn.RecoveryStatus, error)
	VerifyRecoveryCode(ctx context.Context, actor authn.Actor, id, stage, code string) (*authn.RecoveryStatus, error)
	ResendRecoveryCode(ctx context.Context, actor authn.Actor, id string) (*authn.RecoveryStatus, error)
}

// TokenBackend keeps the hardware token inventory (authn.Service).
type TokenBackend interface {
	ImportTokens(ctx context.Context, actor authn.Actor, pskc []byte, opts authn.PSKCOptions) ([]authn.Token, error)
	Tokens() ([]authn.Token, error)
}

// AccountBackend manages accounts and reads the audit log (authn.Service).
type AccountBackend interface {
	CreateAccount(ctx context.Context, actor authn.Actor, n authn.NewAccount) (*authn.Account, error)
	Account(name string) (*authn.Account, error)
	Accounts() ([]authn.Account, error)
	PatchAccount(ctx context.Context, actor authn.Actor, name string, p authn.AccountPatch) (*authn.Account, error)
	DeleteAccount(ctx context.Context, actor authn.Actor, name string) error
	Audit(after uint64, limit int) ([]authn.AuditEvent, error)
	RecordAudit(ctx context.Context, actor authn.Actor, e authn.AuditEvent) error
	PasswordChanged(ctx context.Context, actor authn.Actor, name string) (*authn.Account, error)
}

// BackupBackend streams a consistent copy of the database.
type BackupBackend interface {
	WriteBackup(w io.Writer) (int64, error)
}

// BackupRefuser is a BackupBackend that may say, before anything is
// streamed, that its database is backed up otherwise (PostgreSQL).
type BackupRefuser interface {
	BackupRefusal() error
}

// MasterKeyBackend rotates the master key and writes backups that carry it.
type MasterKeyBackend interface {
	RotateKey() (api.KeyRotation, error)
	WriteKeyedBackup(w io.Writer, passphrase []byte) (int64, error)
}

// InfoBackend describes the daemon.
type InfoBackend interface {
	Info() api.Info
}

// Server serves the API.
type Server struct {
	cfg     Config
	b       Backends
	log     *slog.Logger
	http    *http.Server
	mux     *http.ServeMux
	routes  []Route
	conns   *slots
	streams *slots
	names   *userNames
	// stopping is closed by Shutdown, to end event streams that would
	// otherwise hold the graceful stop.
	stopping     chan struct{}
	stoppingOnce sync.Once

	byPattern map[string]*Route // "METHOD pattern" as the mux names it
	open      atomic.Int64      // connections held, inline or with net/http
	handoff   *handOff
	inflight  sync.WaitGroup // requests being served on the accept loop
	// inlineAnswers counts the answers given on the accept loop.
	inlineAnswers atomic.Int64
	inlineWait    time.Duration
}

// New builds a server over b.
func New(cfg Config, b Backends) *Server {
	def := DefaultConfig()
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = def.MaxBodyBytes
	}
	if cfg.Conns.Max == 0 {
		cfg.Conns = def.Conns
	}
	if cfg.Streams.Max == 0 {
		cfg.Streams = def.Streams
	}
	for _, d := range []struct {
		p *time.Duration
		v time.Duration
	}{
		{&cfg.ReadHeaderTimeout, def.ReadHeaderTimeout}, {&cfg.ReadTimeout, def.ReadTimeout},
		{&cfg.WriteTimeout, def.WriteTimeout}, {&cfg.IdleTimeout, def.IdleTimeout},
	} {
		if *d.p == 0 {
			*d.p = d.v
		}
	}
	if cfg.LookupUser == nil {
		cfg.LookupUser = lookupUser
	}
	if cfg.InGroup == nil {
		cfg.InGroup = inGroup
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg: cfg, b: b, log: cfg.Logger,
		conns: newSlots(cfg.Conns), streams: newSlots(cfg.Streams),
		names:    &userNames{lookup: cfg.LookupUser, cache: map[uint32]nameEntry{}},
		stopping: make(chan struct{}), inlineWait: inlineWait,
		handoff: &handOff{conns: make(chan net.Conn), done: make(chan struct{})},
	}
	s.routes = s.routeTable()
	s.mux = http.NewServeMux()
	s.byPattern = make(map[string]*Route, len(s.routes))
	for i := range s.routes {
		r := &s.routes[i]
		s.mux.Handle(r.Method+" "+r.Pattern, s.wrap(r))
		s.byPattern[r.Method+" "+r.Pattern] = r
	}
	s.mux.HandleFunc("/", s.notFound)
	s.http = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if pc, ok := c.(interface{ peer() *identity }); ok {
				return context.WithValue(ctx, principalKey{}, pc.peer())
			}
			return ctx
		},
	}
	return s
}

func lookupUser(uid uint32) string {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return ""
	}
	return u.Username
}

func (s *Server) userName(uid uint32) string { return s.names.get(uid) }

type principalKey struct{}

// Serve serves on l until Shutdown. l must be a Unix socket listener.
func (s *Server) Serve(l net.Listener) error {
	ul, ok := l.(*net.UnixListener)
	if !ok {
		return errors.New("server: the API is served on Unix sockets only (peer credentials)")
	}
	pl := &peerListener{UnixListener: ul, srv: s, slots: s.conns, refusing: make(chan struct{}, 64)}
	s.handoff.addr, s.handoff.close = ul.Addr(), ul.Close
	served := make(chan error, 1)
	go func() { served <- s.http.Serve(s.handoff) }()
	var err error
	var backoff time.Duration
	for {
		c, aerr := pl.Accept()
		if ne, ok := aerr.(net.Error); ok && ne.Timeout() || errors.Is(aerr, syscall.EMFILE) || errors.Is(aerr, syscall.ENFILE) ||
			errors.Is(aerr, syscall.ENOBUFS) || errors.Is(aerr, syscall.ENOMEM) {
			// Out of descriptors or memory for now: wait, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", "err", aerr, "in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if aerr != nil {
			err = aerr
			break
		}
		pc := c.(*peerConn)
		if s.cfg.AnswerOnAccept && s.open.Load() == 1 {
			s.tryInline(pc)
		} else {
			s.handoff.give(pc)
		}
	}
	s.handoff.Close()
	if herr := <-served; !errors.Is(herr, http.ErrServerClosed) && herr != nil && !errors.Is(herr, net.ErrClosed) {
		return herr
	}
	select {
	case <-s.stopping:
		return nil
	default:
		return err
	}
}

// Shutdown stops accepting and waits for in-flight requests until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stoppingOnce.Do(func() { close(s.stopping) })
	err := s.http.Shutdown(ctx)
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	return err
}

// Routes returns the route table (method, pattern, permission).
func (s *Server) Routes() []Route { return s.routes }
