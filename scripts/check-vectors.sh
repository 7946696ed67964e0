#!/usr/bin/env bash
# Regenerate the transfer-format test vectors and fail if they differ from the committed ones.
set -euo pipefail
cd "$(dirname "$0")/.."
prog=check-vectors
. scripts/lib.sh
need_go
need git "to compare the regenerated vectors with the committed ones"
git rev-parse --is-inside-work-tree >/dev/null 2>&1 || {
	echo "check-vectors: $PWD is not a git checkout: the committed vectors cannot be compared" >&2
	exit 1
}
echo "check-vectors: regenerating the test vectors (cd transfer-format && go generate ./...)" >&2
(cd transfer-format && go generate ./...)
if ! git diff --exit-code --stat -- transfer-format/testdata; then
	echo "check-vectors: regenerated vectors differ from the committed ones (run: cd transfer-format && go generate ./...)" >&2
	exit 1
fi
if [ -n "$(git status --porcelain -- transfer-format/testdata)" ]; then
	git status --porcelain -- transfer-format/testdata >&2
	echo "check-vectors: the generator made files that are not committed" >&2
	exit 1
fi
echo "check-vectors: the regenerated vectors are the committed ones" >&2
