package daemon

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/mfad/mfad/authn"
	"github.com/mfad/mfad/daemon/notify"
)

// Duration is a time.Duration written as "5s", "10m" in the config file.
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration (like \"5s\" or \"10m\"): %q", b)
	}
	if v < 0 {
		return fmt.Errorf("duration must not be negative: %q", b)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration back.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Config is mfad's configuration. The file is TOML; contrib/mfad.toml is a
// documented example. Command-line flags override the file.
type Config struct {
	// Socket is the API socket path, used when systemd passes none.
	Socket string `toml:"socket"`
	// SocketName is the FileDescriptorName= of the socket systemd passes.
	SocketName string `toml:"socket_name"`
	// StateDir holds mfad.db and, without a systemd credential, mfad.key.
	StateDir string `toml:"state_dir"`
	// AdminGroup's members (and uid 0) are admins.
	AdminGroup string `toml:"admin_group"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `toml:"log_level"`

	Store    StoreConfig    `toml:"store"`
	Audit    AuditConfig    `toml:"audit"`
	Limits   LimitsConfig   `toml:"limits"`
	OTP      OTPConfig      `toml:"otp"`
	Lockout  LockoutConfig  `toml:"lockout"`
	FIDO     FIDOConfig     `toml:"fido"`
	Emulator EmulatorConfig `toml:"emulator"`
	Recovery RecoveryConfig `toml:"recovery"`
	Keys     KeysConfig     `toml:"keys"`
}

// KeysConfig chooses how hardware security keys are reached.
type KeysConfig struct {
	// Driver is native (hidraw + mfad's CTAP stack, the default on Linux),
	// libfido2 (the system library), usbhid (karalabe/hid over libusb,
	// which detaches the kernel driver while a key is open) or none.
	Driver string `toml:"driver"`
	// SysRoot is where sysfs is mounted (tests point it elsewhere).
	SysRoot string `toml:"sysfs"`
}

// RecoveryConfig is how lost devices are recovered: the admin's temporary
// access codes and the owners' e-mail and phone recovery, with the
// channels that deliver codes and notices.
type RecoveryConfig struct {
	TemporaryCodeTTL Duration `toml:"temporary_code_ttl"`
	CodeTTL          Duration `toml:"code_ttl"`
	Attempts         int      `toml:"attempts"`
	Resends          int      `toml:"resends"`
	Session          Duration `toml:"session"`
	// SendsPerHour bounds the codes (and, apart, the notices) sent for
	// one account in an hour; SendsPerHourPerUser those asked by one
	// non-admin user.
	SendsPerHour        int `toml:"sends_per_hour"`
	SendsPerHourPerUser int `toml:"sends_per_hour_per_user"`
	notify.Config
}

// FIDOConfig is how mfad acts as a relying party for security keys.
type FIDOConfig struct {
	// RPID defaults to pam://<hostname>; it is fixed in the store at first
	// start, so that renaming the host orphans no credential.
	RPID string `toml:"rp_id"`
	// Attestation is none, self or trusted.
	Attestation string `toml:"attestation"`
	// TrustedRoots is a directory of PEM roots for attestation = "trusted".
	TrustedRoots string `toml:"trusted_roots"`
	// AAGUIDs, when set, are the only authenticator models accepted.
	AAGUIDs []string `toml:"aaguids"`
	// MDS is an offline FIDO MDS3 blob, checked against MDSRoot (PEM).
	MDS       string `toml:"mds"`
	MDSRoot   string `toml:"mds_root"`
	RequireUV bool   `toml:"require_uv"`
	// TouchTimeout bounds the wait for a touch.
	TouchTimeout Duration `toml:"touch_timeout"`
}

// EmulatorConfig turns software keys on. They are off unless enabled
// here (or, outside systemd, with --emulators); credentials they made sign
// in only while they are on.
type EmulatorConfig struct {
	Enabled bool `toml:"enabled"`
	// Presence is auto (every touch approved) or manual (POST .../touch).
	Presence string `toml:"presence"`
	// Attach names software keys attached at start; each keeps its state
	// in the store under its name.
	Attach []string `toml:"attach"`
}

// OTPConfig tunes TOTP and HOTP devices. Windows are in steps (TOTP) or
// counters (HOTP).
type OTPConfig struct {
	Issuer           string   `toml:"issuer"`
	PendingTTL       Duration `toml:"pending_ttl"`
	ActivationWindow int      `toml:"activation_window"`
	VerifyWindow     int      `toml:"verify_window"`
	ResyncWindow     int      `toml:"resync_window"`
	HOTPLookAhead    int      `toml:"hotp_look_ahead"`
	HOTPResyncWindow int      `toml:"hotp_resync_window"`
	ResyncBudget     int      `toml:"resync_budget"`
	StepUpTTL        Duration `toml:"step_up_ttl"`
}

// LockoutConfig tunes the brute-force guard.
type LockoutConfig struct {
	MaxFailures  int      `toml:"max_failures"`
	LockoutAfter int      `toml:"lockout_after"`
	Duration     Duration `toml:"duration"`
}

// StoreConfig tunes the database.
type StoreConfig struct {
	// LockTimeout bounds the wait for another mfad to release the database.
	LockTimeout Duration `toml:"lock_timeout"`
	// MaxBatch bounds how many concurrent writes share one commit (group
	// commit); 1 commits every write on its own.
	MaxBatch int `toml:"max_batch"`

	// Backend is "bbolt" (the default: state_dir/mfad.db) or "postgres"
	// (a database the fleet's daemons share, see docs/fleet.md).
	Backend string `toml:"backend"`
	// DSN is the PostgreSQL connection string in libpq syntax (keywords or
	// a postgres:// URL), TLS settings (sslmode, sslrootcert, sslcert,
	// sslkey) included. A password belongs in DSNFile or a passfile.
	DSN string `toml:"dsn"`
	// DSNFile is a file holding the DSN, password included, readable only
	// by mfad (a systemd credential, say); it replaces DSN.
	DSNFile string `toml:"dsn_file"`
	// AutoMigrate applies pending schema migrations at start; without it
	// mfad refuses an older schema and names `mfad migrate`.
	AutoMigrate bool `toml:"auto_migrate"`
	// MaxConns bounds the connection pool (0: pgx's default).
	MaxConns int32 `toml:"max_conns"`
	// Host names this host in the fleet's audit log (postgres only;
	// default: the machine's host name).
	Host string `toml:"host"`
	// Offline is what this host verifies alone while the database is out
	// of reach (postgres only).
	Offline OfflineConfig `toml:"offline"`
}

// OfflineConfig is [store.offline].
type OfflineConfig struct {
	// FIDO lets the security keys of accounts seen on this host within
	// MaxAge sign in while the database is out of reach.
	FIDO bool `toml:"fido"`
	// OTP lets TOTP/HOTP devices that signed in on this host sign in while
	// the database is out of reach, from secrets cached on this host.
	OTP bool `toml:"otp"`
	// MaxAge is how long after it was last read from the database a
	// cached account may still sign in offline.
	MaxAge Duration `toml:"max_age"`
}

// Store backends.
const (
	BackendBolt     = "bbolt"
	BackendPostgres = "postgres"
)

// AuditConfig tunes the audit log.
type AuditConfig struct {
	// Retention is how many audit entries are kept (oldest dropped first;
	// with bbolt, 256 at a time once that many are past it).
	Retention uint64 `toml:"retention"`
}

// LimitsConfig bounds what clients may hold.
type LimitsConfig struct {
	MaxBodyBytes            int64    `toml:"max_body_bytes"`
	Connections             int      `toml:"connections"`
	ConnectionsPerUID       int      `toml:"connections_per_uid"`
	ConnectionsRootReserved int      `toml:"connections_root_reserved"`
	Streams                 int      `toml:"streams"`
	StreamsPerUID           int      `toml:"streams_per_uid"`
	StreamsRootReserved     int      `toml:"streams_root_reserved"`
	ReadHeaderTimeout       Duration `toml:"read_header_timeout"`
	ReadTimeout             Duration `toml:"read_timeout"`
	WriteTimeout            Duration `toml:"write_timeout"`
	IdleTimeout             Duration `toml:"idle_timeout"`
}

// DefaultConfig is what mfad runs with when the file says nothing.
func DefaultConfig() Config {
	return Config{
		Socket:     "/run/mfad/mfad.sock",
		SocketName: "mfad",
		StateDir:   "/var/lib/mfad",
		AdminGroup: "mfad-admin",
		LogLevel:   "info",
		Store: StoreConfig{LockTimeout: Duration{3 * time.Second}, MaxBatch: 256, Backend: BackendBolt,
			Offline: OfflineConfig{FIDO: true, MaxAge: Duration{30 * 24 * time.Hour}}},
		Audit: AuditConfig{Retention: 100000},
		OTP: OTPConfig{
			Issuer: "mfad", PendingTTL: Duration{10 * time.Minute},
			ActivationWindow: 10, VerifyWindow: 1, ResyncWindow: 1000,
			HOTPLookAhead: 10, HOTPResyncWindow: 1000, ResyncBudget: 5,
			StepUpTTL: Duration{5 * time.Minute},
		},
		Lockout:  LockoutConfig{MaxFailures: 5, LockoutAfter: 10, Duration: Duration{15 * time.Minute}},
		FIDO:     FIDOConfig{Attestation: "self", AAGUIDs: []string{}, TouchTimeout: Duration{30 * time.Second}},
		Emulator: EmulatorConfig{Presence: "auto", Attach: []string{}},
		Keys:     KeysConfig{Driver: "native", SysRoot: "/sys"},
		Recovery: RecoveryConfig{TemporaryCodeTTL: Duration{24 * time.Hour}, CodeTTL: Duration{15 * time.Minute},
			Attempts: 5, Resends: 3, Session: Duration{15 * time.Minute},
			SendsPerHour: 5, SendsPerHourPerUser: 5},
		Limits: LimitsConfig{
			MaxBodyBytes: 64 << 10,
			Connections:  256, ConnectionsPerUID: 32, ConnectionsRootReserved: 64,
			Streams: 64, StreamsPerUID: 4, StreamsRootReserved: 16,
			ReadHeaderTimeout: Duration{5 * time.Second},
			ReadTimeout:       Duration{30 * time.Second},
			WriteTimeout:      Duration{30 * time.Second},
			IdleTimeout:       Duration{2 * time.Minute},
		},
	}
}

// LoadConfig reads path over the defaults. Unknown keys are errors, so a
// typo does not silently leave a default in place.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	md, err := toml.Decode(string(b), &cfg)
	if err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return cfg, fmt.Errorf("config %s: unknown keys: %s", path, strings.Join(keys, ", "))
	}
	return cfg, cfg.Validate()
}

// Validate checks the configuration as a whole.
func (c *Config) Validate() error {
	var errs []error
	if c.Socket == "" {
		errs = append(errs, errors.New("socket must be set"))
	}
	if c.StateDir == "" {
		errs = append(errs, errors.New("state_dir must be set"))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log_level must be debug, info, warn or error, not %q", c.LogLevel))
	}
	l := c.Limits
	if l.Connections < 2 || l.ConnectionsRootReserved < 1 || l.ConnectionsRootReserved >= l.Connections || l.ConnectionsPerUID < 1 {
		errs = append(errs, errors.New("limits: need connections >= 2, 1 <= connections_root_reserved < connections, connections_per_uid >= 1"))
	}
	if l.Streams < 2 || l.StreamsRootReserved < 1 || l.StreamsRootReserved >= l.Streams || l.StreamsPerUID < 1 {
		errs = append(errs, errors.New("limits: need streams >= 2, 1 <= streams_root_reserved < streams, streams_per_uid >= 1"))
	}
	if l.MaxBodyBytes < 1024 {
		errs = append(errs, errors.New("limits: max_body_bytes must be at least 1024"))
	}
	o := c.OTP
	if o.ActivationWindow < 1 || o.VerifyWindow < 0 || o.ResyncWindow < o.VerifyWindow || o.ResyncWindow > 10000 ||
		o.HOTPLookAhead < 1 || o.HOTPResyncWindow < o.HOTPLookAhead || o.HOTPResyncWindow > 10000 || o.ResyncBudget < 1 {
		errs = append(errs, errors.New("otp: windows must be: activation_window >= 1, verify_window <= resync_window <= 10000, 1 <= hotp_look_ahead <= hotp_resync_window <= 10000, resync_budget >= 1"))
	}
	if o.PendingTTL.Duration < time.Minute || o.StepUpTTL.Duration < 10*time.Second || o.StepUpTTL.Duration > time.Hour {
		errs = append(errs, errors.New("otp: pending_ttl must be at least 1m, step_up_ttl between 10s and 1h"))
	}
	if c.Lockout.MaxFailures < 1 || c.Lockout.LockoutAfter <= c.Lockout.MaxFailures || c.Lockout.Duration.Duration < time.Second {
		errs = append(errs, errors.New("lockout: need 1 <= max_failures < lockout_after and a duration of at least 1s"))
	}
	switch c.FIDO.Attestation {
	case "none", "self":
	case "trusted":
		if c.FIDO.TrustedRoots == "" && c.FIDO.MDS == "" {
			errs = append(errs, errors.New("fido: attestation = \"trusted\" needs trusted_roots or mds"))
		}
	default:
		errs = append(errs, fmt.Errorf("fido: attestation must be none, self or trusted, not %q", c.FIDO.Attestation))
	}
	if (c.FIDO.MDS == "") != (c.FIDO.MDSRoot == "") {
		errs = append(errs, errors.New("fido: mds and mds_root go together"))
	}
	if c.FIDO.TouchTimeout.Duration < time.Second || c.FIDO.TouchTimeout.Duration > 5*time.Minute {
		errs = append(errs, errors.New("fido: touch_timeout must be between 1s and 5m"))
	}
	if c.Emulator.Presence != "auto" && c.Emulator.Presence != "manual" {
		errs = append(errs, fmt.Errorf("emulator: presence must be auto or manual, not %q", c.Emulator.Presence))
	}
	if len(c.Emulator.Attach) > 0 && !c.Emulator.Enabled {
		errs = append(errs, errors.New("emulator: attach needs enabled = true"))
	}
	r := c.Recovery
	if r.TemporaryCodeTTL.Duration < time.Minute || r.CodeTTL.Duration < time.Minute || r.Session.Duration < time.Minute || r.Attempts < 1 || r.Resends < 0 {
		errs = append(errs, errors.New("recovery: durations of at least 1m, attempts >= 1, resends >= 0"))
	}
	if r.SendsPerHour < 0 || r.SendsPerHourPerUser < 0 || r.SendsPerHour > 1000 || r.SendsPerHourPerUser > 1000 {
		errs = append(errs, errors.New("recovery: sends_per_hour and sends_per_hour_per_user must be 1..1000 (0: the default, 5)"))
	}
	for _, p := range r.Phone.AllowedPrefixes {
		if !phonePrefixRE.MatchString(p) {
			errs = append(errs, fmt.Errorf("recovery.phone: allowed_prefixes entry %q must be digits after an optional + (e.g. \"+1\", \"+4930\")", p))
		}
	}
	if err := r.Config.Validate(); err != nil {
		errs = append(errs, err)
	}
	switch c.Keys.Driver {
	case "native", "libfido2", "usbhid", "none":
	default:
		errs = append(errs, fmt.Errorf("keys: driver must be native, libfido2, usbhid or none, not %q", c.Keys.Driver))
	}
	switch st := c.Store; {
	case st.Backend != BackendBolt && st.Backend != BackendPostgres:
		errs = append(errs, fmt.Errorf("store: backend must be %q or %q, not %q", BackendBolt, BackendPostgres, st.Backend))
	case st.Backend == BackendPostgres && (st.DSN == "") == (st.DSNFile == ""):
		errs = append(errs, errors.New("store: backend \"postgres\" needs exactly one of dsn and dsn_file"))
	case st.Backend == BackendBolt && (st.DSN != "" || st.DSNFile != "" || st.Host != ""):
		errs = append(errs, errors.New("store: dsn, dsn_file and host are for backend = \"postgres\""))
	case st.MaxConns < 0:
		errs = append(errs, errors.New("store: max_conns must not be negative"))
	case st.Offline.MaxAge.Duration <= 0:
		errs = append(errs, errors.New("store.offline: max_age must be positive"))
	}
	if c.Store.MaxBatch < 1 || c.Store.MaxBatch > 4096 {
		errs = append(errs, errors.New("store: max_batch must be 1..4096"))
	}
	if c.Audit.Retention < 100 {
		errs = append(errs, errors.New("audit: retention must be at least 100 entries"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

var phonePrefixRE = regexp.MustCompile(`^\+?[0-9]{1,15}$`)

// Policy is the domain policy this configuration asks for.
func (c *Config) Policy() authn.Policy {
	return authn.Policy{
		PendingTTL:       c.OTP.PendingTTL.Duration,
		ActivationWindow: c.OTP.ActivationWindow,
		VerifyWindow:     c.OTP.VerifyWindow,
		ResyncWindow:     c.OTP.ResyncWindow,
		HOTPLookAhead:    c.OTP.HOTPLookAhead,
		HOTPResyncWindow: c.OTP.HOTPResyncWindow,
		MaxFailures:      c.Lockout.MaxFailures,
		LockoutAfter:     c.Lockout.LockoutAfter,
		LockoutDuration:  c.Lockout.Duration.Duration,
		ResyncBudget:     c.OTP.ResyncBudget,
		StepUpTTL:        c.OTP.StepUpTTL.Duration,
		Issuer:           c.OTP.Issuer,
		TempCodeTTL:      c.Recovery.TemporaryCodeTTL.Duration,
		RecoveryCodeTTL:  c.Recovery.CodeTTL.Duration,
		RecoveryAttempts: c.Recovery.Attempts,
		RecoveryResends:  c.Recovery.Resends,
		RecoverySession:  c.Recovery.Session.Duration,
		SendsPerAccount:  c.Recovery.SendsPerHour,
		SendsPerUser:     c.Recovery.SendsPerHourPerUser,
		PhonePrefixes:    c.Recovery.Phone.AllowedPrefixes,
	}
}
