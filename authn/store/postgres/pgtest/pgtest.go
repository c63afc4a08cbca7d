// Package pgtest starts throwaway PostgreSQL clusters for tests: initdb and
// pg_ctl from Debian's postgresql package (/usr/lib/postgresql/*/bin), as
// an unprivileged user when the tests run as root, listening only on a
// Unix socket in a temporary directory, removed at the end.
//
// It may import only the standard library.
package pgtest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Server is one running cluster.
type Server struct {
	bin      string
	dir      string // owned by the server's user
	data     string
	sock     string
	user     string // Unix user running postgres ("" = this process's)
	Password string // the superuser's (user "mfad")
	mu       sync.Mutex
	dbs      int
}

// Bin returns the directory holding initdb and pg_ctl, or "".
func Bin() string {
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(m, func(i, j int) bool { return version(m[i]) < version(m[j]) })
	if len(m) == 0 {
		return ""
	}
	return filepath.Dir(m[len(m)-1])
}

func version(p string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
	return n
}

// Need skips t when the server binaries are absent, or fails it under
// MFAD_REQUIRE_TOOLS=1 (make test), and returns their directory.
func Need(t testing.TB) string {
	t.Helper()
	bin := Bin()
	if bin == "" {
		if os.Getenv("MFAD_REQUIRE_TOOLS") == "1" {
			t.Fatal("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: install Debian's postgresql package (make deps)")
		}
		t.Skip("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (apt-get install postgresql, or make deps); set MFAD_REQUIRE_TOOLS=1 to make this fatal")
	}
	return bin
}

// ownerFile names, in a cluster's directory, the process that started it.
const ownerFile = "owner.pid"

// reapOrphans stops and removes the clusters of test processes that died
// without closing them (a panicking test skips its cleanup).
func reapOrphans(bin string) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "mfad-pg-*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // its owner still runs
		}
		s := &Server{bin: bin, dir: dir, data: filepath.Join(dir, "data")}
		if st, err := os.Stat(s.data); err == nil && os.Geteuid() == 0 {
			if u, err := user.LookupId(fmt.Sprint(st.Sys().(*syscall.Stat_t).Uid)); err == nil && u.Uid != "0" {
				s.user = u.Username
			}
		}
		s.Close()
	}
}

// Start creates and starts a cluster. The caller stops it with Close.
func Start(bin string) (*Server, error) {
	reapOrphans(bin)
	dir, err := os.MkdirTemp("", "mfad-pg-")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	pw := make([]byte, 12)
	rand.Read(pw)
	s := &Server{bin: bin, dir: dir, data: filepath.Join(dir, "data"), sock: filepath.Join(dir, "sock"), Password: hex.EncodeToString(pw)}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		s.user = "nobody"
		u, err := user.Lookup(s.user)
		if err != nil {
			return nil, fmt.Errorf("pgtest: running as root needs user nobody to run postgres: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, p := range []string{s.sock} {
			if err := os.Mkdir(p, 0o755); err != nil {
				return nil, err
			}
			if err := os.Chown(p, uid, gid); err != nil {
				return nil, err
			}
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	} else if err := os.Mkdir(s.sock, 0o755); err != nil {
		return nil, err
	}
	pwfile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwfile, []byte(s.Password+"\n"), 0o644); err != nil {
		return nil, err
	}
	defer os.Remove(pwfile)
	if out, err := s.cmd("initdb", "-D", s.data, "-U", "mfad", "--pwfile", pwfile, "-A", "scram-sha-256",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions").CombinedOutput(); err != nil {
		s.Close()
		return nil, fmt.Errorf("pgtest: initdb: %v\n%s", err, out)
	}
	if err := s.Restart(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Server) cmd(name string, args ...string) *exec.Cmd {
	path := filepath.Join(s.bin, name)
	if s.user != "" {
		return exec.Command("runuser", append([]string{"-u", s.user, "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

// Restart starts the server (again, after Stop).
func (s *Server) Restart() error {
	opts := "-c listen_addresses= -k " + s.sock + " -c fsync=off -c full_page_writes=off -c max_connections=200"
	out, err := s.cmd("pg_ctl", "-D", s.data, "-l", filepath.Join(s.dir, "log"), "-w", "-t", "60", "-o", opts, "start").CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "log"))
		return fmt.Errorf("pgtest: pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	return nil
}

// Running reports whether the server is up (started and not stopped).
func (s *Server) Running() bool {
	_, err := os.Stat(filepath.Join(s.data, "postmaster.pid"))
	return err == nil
}

// Stop stops the server at once (in-flight transactions are lost, as in a crash).
func (s *Server) Stop() error {
	out, err := s.cmd("pg_ctl", "-D", s.data, "-w", "-m", "immediate", "stop").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtest: pg_ctl stop: %v\n%s", err, out)
	}
	return nil
}

// Close stops the server and removes its directory.
func (s *Server) Close() {
	if s.Running() {
		s.Stop()
	}
	os.RemoveAll(s.dir)
}

// DSN is the libpq DSN of database db as the superuser.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("host=%s dbname=%s user=mfad password=%s", s.sock, db, s.Password)
}

// CreateDB creates a fresh database and returns its DSN.
func (s *Server) CreateDB() (string, error) {
	s.mu.Lock()
	s.dbs++
	name := fmt.Sprintf("t%d", s.dbs)
	s.mu.Unlock()
	c := exec.Command(filepath.Join(s.bin, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", s.sock, "-U", "mfad", "-d", "postgres", "-c", "CREATE DATABASE "+name+" STRATEGY FILE_COPY")
	c.Env = append(os.Environ(), "PGPASSWORD="+s.Password)
	if out, err := c.CombinedOutput(); err != nil {
		return "", fmt.Errorf("pgtest: create database: %v\n%s", err, strings.TrimSpace(string(out)))
	}
	return s.DSN(name), nil
}

var (
	sharedMu  sync.Mutex
	shared    *Server
	sharedErr error
)

// Shared returns the package's cluster, starting it on first use (skipping
// or failing t as Need does without binaries). The test binary's TestMain
// calls CloseShared after m.Run.
func Shared(t testing.TB) *Server {
	t.Helper()
	bin := Need(t)
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil && sharedErr == nil {
		shared, sharedErr = Start(bin)
	}
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

// DB creates a fresh database on the shared cluster and returns its DSN.
func DB(t testing.TB) string {
	t.Helper()
	dsn, err := Shared(t).CreateDB()
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

// CloseShared stops the shared cluster, if one started.
func CloseShared() {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared != nil {
		shared.Close()
		shared = nil
	}
}
