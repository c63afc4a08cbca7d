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
# and the independent implementations the tests hold mfad against.
DEB_PKGS := gcc pkg-config libfido2-dev libpam0g-dev libjson-c-dev \
            oathtool fido2-tools python3-fido2 pamtester curl

.PHONY: all deps build run test unit fuzz lint clean

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

build: deps
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/mfad ./daemon/cmd/mfad
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/mfactl ./contrib/mfactl

run: build
	@mkdir -p $(RUNDIR) && chmod 700 $(RUNDIR)
	@echo "mfad on $(RUNDIR)/mfad.sock; try: MFAD_SOCKET=$(RUNDIR)/mfad.sock bin/mfactl info"
	exec bin/mfad --socket $(RUNDIR)/mfad.sock --state-dir $(RUNDIR)

# test: what CI runs (.ci/run calls it).
test: deps lint unit fuzz

unit:
	MFAD_REQUIRE_TOOLS=1 MFAD_REQUIRE_ROOT=$$([ "$$(id -u)" = 0 ] && echo 1 || echo 0) \
	  $(GO) test -race -count=1 -timeout 15m ./...

# fuzz: every fuzz target for $(FUZZTIME), from its seed corpus on.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f"; \
	    $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg >/tmp/mfad-fuzz.log 2>&1 || { cat /tmp/mfad-fuzz.log; exit 1; }; \
	  done; \
	done

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt wants to change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

clean:
	rm -rf bin
