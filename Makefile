# mfad: `make run` builds and starts the daemon on ./.mfad; `make test` runs
# everything CI runs. Both first install what the build and tests need.

SHELL   := /bin/bash
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)
GO      ?= go
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/mfad/mfad/daemon.Version=$(VERSION)
RUNDIR  := $(CURDIR)/.mfad
FUZZTIME ?= 3s
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

# Debian packages: cgo headers for the libfido2 driver and the PAM module,
# the independent implementations the tests hold mfad against, and the
# PostgreSQL server the fleet backend's tests start throwaway clusters of.
DEB_PKGS := gcc pkg-config libfido2-dev libpam0g-dev libjson-c-dev \
            oathtool fido2-tools python3-fido2 pamtester curl \
            libpam-google-authenticator libpam-oath systemd postgresql

.PHONY: all deps build pam pam-fuzz install run test unit fuzz lint vmtest soak clean

all: build

deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "make deps: installing $$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -qq --no-install-recommends $$missing >/dev/null || \
	      { apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; } || exit 1; \
	  else \
	    echo "make deps: missing Debian packages; install them with:"; \
	    echo "  sudo apt-get install --no-install-recommends $$missing"; exit 1; \
	  fi; \
	fi
	@command -v $(GO) >/dev/null || { echo "make deps: Go 1.26 is needed at /usr/local/go/bin (https://go.dev/dl/)"; exit 1; }

build: deps pam
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/mfad ./daemon/cmd/mfad
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/mfactl ./contrib/mfactl

# pam: the sign-in helper, bin/pam_mfad.so (contrib/pam/Makefile).
pam: deps
	$(MAKE) -C contrib/pam O=$(CURDIR)/bin

# pam-fuzz: its response parser's fuzz driver over the seed corpus and
# mutations (libFuzzer under clang, else a standalone driver with ASan+UBSan).
pam-fuzz: deps
	$(MAKE) -C contrib/pam O=$(CURDIR)/bin fuzz

# install: DESTDIR for staging, PREFIX for the binaries, man pages and
# completions. PAM modules, units and udev rules go where Debian's libpam,
# systemd and udev look for them. BIN= installs binaries built elsewhere
# (with INSTALL_NOBUILD=1, nothing is built first).
PREFIX   ?= /usr
DESTDIR  ?=
BIN      ?= bin
PAMDIR   ?= $(shell d=$$(pkg-config --variable=libdir pam 2>/dev/null); \
              [ -n "$$d" ] || d=/lib/$$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch); \
              echo $$d/security)
UNITDIR  ?= $(shell pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || echo /lib/systemd/system)
UDEVDIR  ?= $(shell pkg-config --variable=udevdir udev 2>/dev/null || echo /lib/udev)
SYSUSERSDIR ?= /usr/lib/sysusers.d
TMPFILESDIR ?= /usr/lib/tmpfiles.d
SYSCONFDIR  ?= /etc

install: $(if $(INSTALL_NOBUILD),,build)
	install -d -m 0755 $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PAMDIR) \
	  $(DESTDIR)$(UNITDIR) $(DESTDIR)$(UDEVDIR)/rules.d $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) \
	  $(DESTDIR)$(SYSCONFDIR)/mfad $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5 \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions \
	  $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d $(DESTDIR)$(PREFIX)/share/doc/mfad \
	  $(DESTDIR)$(PREFIX)/share/pam-configs
	install -m 0755 $(BIN)/mfad $(DESTDIR)$(PREFIX)/sbin/mfad
	install -m 0755 $(BIN)/mfactl $(DESTDIR)$(PREFIX)/bin/mfactl
	install -m 0644 $(BIN)/pam_mfad.so $(DESTDIR)$(PAMDIR)/pam_mfad.so
	install -m 0644 systemd/mfad.service systemd/mfad.socket $(DESTDIR)$(UNITDIR)/
	install -m 0644 systemd/mfad.sysusers.conf $(DESTDIR)$(SYSUSERSDIR)/mfad.conf
	install -m 0644 systemd/mfad.tmpfiles.conf $(DESTDIR)$(TMPFILESDIR)/mfad.conf
	install -m 0644 contrib/udev/70-mfad.rules $(DESTDIR)$(UDEVDIR)/rules.d/70-mfad.rules
	@# The example configuration never replaces one that is there.
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/mfad/mfad.toml ]; then \
	  echo "install: keeping $(DESTDIR)$(SYSCONFDIR)/mfad/mfad.toml; the example is in $(PREFIX)/share/doc/mfad"; \
	else install -m 0644 contrib/mfad.toml $(DESTDIR)$(SYSCONFDIR)/mfad/mfad.toml; fi
	install -m 0644 contrib/mfad.toml docs/pam.md docs/systemd.md docs/masterkey.md docs/hardware.md docs/architecture.md $(DESTDIR)$(PREFIX)/share/doc/mfad/
	@# pam-auth-update's profile (Default: no: an admin turns it on with pam-auth-update).
	install -m 0644 contrib/pam-configs/mfad $(DESTDIR)$(PREFIX)/share/pam-configs/mfad
	install -m 0644 contrib/man/mfad.8 $(DESTDIR)$(PREFIX)/share/man/man8/mfad.8
	install -m 0644 contrib/man/mfad.toml.5 $(DESTDIR)$(PREFIX)/share/man/man5/mfad.toml.5
	install -m 0644 contrib/man/mfactl.1 $(DESTDIR)$(PREFIX)/share/man/man1/mfactl.1
	$(BIN)/mfactl completion bash >$(DESTDIR)$(PREFIX)/share/bash-completion/completions/mfactl
	$(BIN)/mfactl completion zsh >$(DESTDIR)$(PREFIX)/share/zsh/vendor-completions/_mfactl
	$(BIN)/mfactl completion fish >$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/mfactl.fish

# run: the state directory is 0711, so that every local user reaches the
# socket in it (and lists nothing); the database, the key and the outbox
# inside stay the daemon user's alone.
run: build
	@mkdir -p $(RUNDIR) && chmod 711 $(RUNDIR)
	@echo "mfad on $(RUNDIR)/mfad.sock, with a software key attached (contrib/dev.toml)"
	@echo "recovery codes go to $(RUNDIR)/outbox/ (mail/*.eml, sms.txt)"
	@echo "try: MFAD_SOCKET=$(RUNDIR)/mfad.sock bin/mfactl info"
	exec bin/mfad --config contrib/dev.toml --socket $(RUNDIR)/mfad.sock --state-dir $(RUNDIR)

# test: what CI runs (.ci/run calls it).
test: deps lint unit fuzz vmtest

# vmtest: the kernel path in a QEMU VM (TCG): the software key as a USB
# gadget and over uhid, libfido2's tools, and mfad with each driver
# (contrib/vmtest/run.sh; downloads cached under .cache/vmtest).
vmtest: deps
	contrib/vmtest/run.sh

# unit: every test, and every benchmark three times, under the race
# detector: a benchmark that docs/PERFORMANCE.md cites keeps working.
unit:
	MFAD_REQUIRE_TOOLS=1 MFAD_REQUIRE_ROOT=$$([ "$$(id -u)" = 0 ] && echo 1 || echo 0) \
	  $(GO) test -race -count=1 -timeout 15m -bench . -benchtime 3x ./...

# fuzz: every fuzz target for $(FUZZTIME), from its seed corpus on, and
# pam_mfad's response parser. Go's fuzzing coordinator sometimes reports
# "context deadline exceeded" when -fuzztime ends mid-run, with no failing
# input: such a target is run once more; a real failure (an input written
# to testdata/fuzz) fails at once.
fuzz: pam-fuzz
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f"; \
	    $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg >/tmp/mfad-fuzz.log 2>&1 || \
	    { grep -q 'context deadline exceeded' /tmp/mfad-fuzz.log && ! grep -q 'Failing input written' /tmp/mfad-fuzz.log && \
	      echo "fuzz $$pkg $$f: the coordinator's deadline flake, once more" && \
	      $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg >/tmp/mfad-fuzz.log 2>&1; } || \
	    { cat /tmp/mfad-fuzz.log; exit 1; }; \
	  done; \
	done

# soak: SOAK (default 30m) of mixed load on one mfad (codes, a software key,
# enrollments, recoveries, event streams), its goroutines, fds and RSS
# sampled each minute; fails when a kind of work never succeeded or they
# grew (contrib/mfad-load --soak; not part of `make test`).
SOAK ?= 30m
soak: build
	$(GO) build -o bin/mfad-load ./contrib/mfad-load
	bin/mfad-load --mfad bin/mfad --soak $(SOAK)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt wants to change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

clean:
	rm -rf bin
