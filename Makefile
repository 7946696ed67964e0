# airgap-byok: thin wrapper over go and scripts/. `make help` lists the targets.
Q = $(if $V,,@)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS = -X main.Version=$(VERSION)
BIN = bin
# Go on PATH, else in /usr/local/go/bin, as scripts/lib.sh finds it.
export PATH := $(if $(shell command -v go),$(PATH),/usr/local/go/bin:$(PATH))

.PHONY: help build test test-race test-short lint fuzz generate check bench demo clean deps release release-check fresh-check

help: ## list the targets
	$(Q)grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

deps: ## install missing Debian packages (C compiler, git, make, SoftHSM2, OpenSC, OpenSSL, Chromium, ...)
	$(Q)scripts/deps.sh

build: ## build bin/byok-offline (cgo), bin/byok-online (static) and bin/kvemu
	$(Q)mkdir -p $(BIN)
	$(Q)CGO_ENABLED=1 go build -C offline -trimpath -ldflags '$(LDFLAGS)' -o ../$(BIN)/byok-offline ./cmd/byok-offline
	$(Q)CGO_ENABLED=0 go build -C online -trimpath -ldflags '$(LDFLAGS)' -o ../$(BIN)/byok-online ./cmd/byok-online
	$(Q)CGO_ENABLED=0 go build -C integration -trimpath -o ../$(BIN)/kvemu ./cmd/kvemu

release: ## dist/: both stations and kvemu for linux/amd64 and arm64 as binaries, tarballs, SBOMs, .deb and SHA256SUMS
	$(Q)scripts/release.sh

release-check: ## build the release twice (other folder, user, time zone, umask, caches) and compare SHA256SUMS
	$(Q)scripts/release-check.sh

test: ## the README's test command: deps, vet, every test, vectors check
	$(Q)scripts/test.sh

test-short: ## unit tests only (skips the end-to-end suites)
	$(Q)go test -short work

test-race: ## every test with the race detector
	$(Q)go test -race -count=1 work

lint: ## go vet, and staticcheck if installed
	$(Q)go vet work
	$(Q)if command -v staticcheck >/dev/null; then staticcheck work; fi

fuzz: ## run every fuzz target briefly (FUZZTIME, default 10s each)
	$(Q)scripts/fuzz.sh $(or $(FUZZTIME),10s)

generate: ## regenerate the transfer-format test vectors
	$(Q)cd transfer-format && go generate ./...

check: ## vectors and go.mod files are what the generators and go mod tidy produce
	$(Q)scripts/check-vectors.sh
	$(Q)for m in transfer-format shared offline online integration; do (cd $$m && go mod tidy); done
	$(Q)git diff --exit-code -- '*/go.mod' '*/go.sum'

bench: ## run every benchmark and rewrite BENCHMARKS.md
	$(Q)scripts/bench.sh

demo: ## the whole ceremony end to end on this machine (installs SoftHSM2 if missing)
	$(Q)scripts/demo.sh

fresh-check: ## the README's two commands on a new minimal Debian root (root, network, ~4 GB)
	$(Q)scripts/fresh-check.sh

clean: ## remove build output
	$(Q)rm -rf $(BIN) demo-out dist
