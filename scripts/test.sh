#!/usr/bin/env bash
# The project's test command: installs missing Debian packages, then runs every test of every
# module in the workspace (unit, SoftHSM2, local Key Vault, end-to-end, resilience, vectors),
# every fuzz target briefly (FUZZTIME per target, default 2000x: a count of executions, which
# a loaded machine only slows down, where a duration can end in Go's fuzzing-deadline race;
# FUZZTIME=0 skips them), and checks that the committed test vectors are exactly what the
# generator produces.
#
# The tests' progress: a line for each package as it ends, a line every 30 seconds for each
# package still running, the whole output of every failure, and a closing count
# ("tests: N passed, N failed, N skipped"), which is also the last line when all is well.
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
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
start=$(date +%s)

# Formatting first: it is the cheapest check.
echo "test: gofmt -l (every Go file is gofmt-formatted)"
unformatted=$(gofmt -l transfer-format shared offline online integration)
if [ -n "$unformatted" ]; then
	echo "test: not gofmt-formatted (run gofmt -w on them):" >&2
	echo "$unformatted" >&2
	exit 1
fi
echo "test: go vet work"
go vet work
go build -C integration -o "$work/testprogress" ./cmd/testprogress
echo "test: go test work: every test of every module (a line per package as it ends, and every 30s for each still running)"
go test -json -count=1 -timeout 45m "$@" work 2>&1 |
	"$work/testprogress" -every 30s -trim github.com/airgap-byok/airgap-byok/ -summary "$work/summary"
fuzztime="${FUZZTIME:-2000x}"
if [ "$fuzztime" != 0 ]; then
	echo "test: scripts/fuzz.sh $fuzztime: every fuzz target for $fuzztime"
	scripts/fuzz.sh "$fuzztime"
fi
echo "test: scripts/check-vectors.sh: the committed test vectors are what the generator makes"
scripts/check-vectors.sh
echo "test: all passed in $(($(date +%s) - start))s"
cat "$work/summary"
