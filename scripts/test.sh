#!/usr/bin/env bash
# The project's test command: installs missing Debian packages, then runs every test of every
# module in the workspace (unit, SoftHSM2, local Key Vault, end-to-end, resilience, vectors),
# every fuzz target briefly (FUZZTIME per target, default 2000x: a count of executions, which
# a loaded machine only slows down, where a duration can end in Go's fuzzing-deadline race;
# FUZZTIME=0 skips them), and checks
# that the committed test vectors are exactly what the generator produces.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: scripts/test.sh [go test flags...]" >&2; }
case "${1:-}" in -h|--help) usage; exit 0 ;; esac

prog=test
. scripts/lib.sh
need_go
scripts/deps.sh

# Tests that need SoftHSM2, OpenSSL or Chromium fail instead of skipping under CI=1.
export CI="${CI:-1}"
# Formatting first: it is the cheapest check.
unformatted=$(gofmt -l transfer-format shared offline online integration)
if [ -n "$unformatted" ]; then
	echo "test: not gofmt-formatted (run gofmt -w on them):" >&2
	echo "$unformatted" >&2
	exit 1
fi
go vet work
go test -count=1 -timeout 45m "$@" work
fuzztime="${FUZZTIME:-2000x}"
if [ "$fuzztime" != 0 ]; then
	scripts/fuzz.sh "$fuzztime"
fi
scripts/check-vectors.sh
