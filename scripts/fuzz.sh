#!/usr/bin/env bash
# Run every fuzz target of the workspace for a bounded time each.
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { echo "usage: scripts/fuzz.sh [duration, default 10s]" >&2; }
case "${1:-}" in -h|--help) usage; exit 0 ;; esac
t="${1:-10s}"
for mod in transfer-format shared offline online integration; do
	for pkg in $(cd "$mod" && go list ./...); do
		dir=$(cd "$mod" && go list -f '{{.Dir}}' "$pkg")
		for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
			echo "fuzz: $pkg $f ($t)" >&2
			(cd "$mod" && go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" "$pkg")
		done
	done
done
