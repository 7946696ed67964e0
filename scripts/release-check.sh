#!/usr/bin/env bash
# Prove that the release of one commit is reproducible: build it twice with scripts/release.sh
# and compare the two SHA256SUMS (which cover every binary, tarball, SBOM and Debian package).
#
# The two builds differ in everything a builder could differ in: the folder (and its depth), the
# time zone, the umask, the wall-clock time, the Go build cache (the second starts empty), the
# module cache (the second reads a copy through a file proxy) and, when this runs as root, the
# user (the second runs as nobody). The packager and SBOM tool are built once (with -trimpath)
# and shared: they are inputs of the release, like the Go toolchain and the cross compiler.
#
# Then the amd64 byok-offline Debian package is unpacked: its binary checks the release folder
# with verify-release, reports the SHA-256 SHA256SUMS lists, and passes hsm check on a
# throwaway SoftHSM2 token.
set -euo pipefail

usage() {
	echo "usage: scripts/release-check.sh [REV]" >&2
	echo "Builds the release of REV (default HEAD) twice and compares SHA256SUMS; exit 0 if identical." >&2
}
[ $# -le 1 ] || { usage; exit 2; }
case "${1:-}" in -h | --help) usage; exit 0 ;; -*) usage; exit 2 ;; esac

root="$(git rev-parse --show-toplevel)"
read -r version revision epoch < <("$root/scripts/release.sh" --describe "${1:-HEAD}")
start=$SECONDS

work="$(mktemp -d "${TMPDIR:-/tmp}/byok-release-check.XXXXXX")"
cleanup() { chmod -R u+w "$work" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
chmod 0755 "$work"
git -C "$root" archive --format=tar -o "$work/src.tar" "$revision"
mkdir "$work/script"
tar -xf "$work/src.tar" -C "$work/script" scripts/release.sh scripts/lib.sh
chmod -R a+rX "$work/src.tar" "$work/script"
release=("$work/script/scripts/release.sh" --source "$work/src.tar" --version "$version" --revision "$revision" --epoch "$epoch")

echo "release-check: $version ($revision)" >&2

# First build: this user, this build cache, UTC, umask 022.
mkdir -p "$work/a/tmp"
a0=$SECONDS
(umask 022 && TZ=UTC TMPDIR="$work/a/tmp" RELEASE_TOOLS="$work/tools" "${release[@]}" -o "$work/a/dist")
a1=$SECONDS

# Second build: another folder, time zone, umask, empty build cache, copied module cache and,
# as root, another user.
b="$work/b/deeper/folder"
mkdir -p "$b/tmp" "$b/home" "$work/proxy"
gomodcache="$(go env GOMODCACHE)"
cp -al "$gomodcache/cache/download/." "$work/proxy/" 2>/dev/null || cp -r "$gomodcache/cache/download/." "$work/proxy/"
chmod -R a+rX "$work/proxy"
as=()
if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1; then
	chown -R nobody "$work/b"
	as=(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups)
else
	echo "release-check: not root: the second build runs as this user too" >&2
fi
b0=$SECONDS
"${as[@]}" env -i PATH="$PATH" HOME="$b/home" TMPDIR="$b/tmp" TZ=Pacific/Chatham \
	GOCACHE="$b/gocache" GOMODCACHE="$b/modcache" GOPROXY="file://$work/proxy" GOSUMDB=off \
	GOFLAGS=-modcacherw RELEASE_TOOLS="$work/tools" \
	bash -c 'umask 077 && exec "$@"' _ "${release[@]}" -o "$b/dist"
b1=$SECONDS

if ! cmp -s "$work/a/dist/SHA256SUMS" "$b/dist/SHA256SUMS"; then
	echo "release-check: FAIL: the two builds differ:" >&2
	diff "$work/a/dist/SHA256SUMS" "$b/dist/SHA256SUMS" >&2 || true
	exit 1
fi
(cd "$b/dist" && sha256sum --quiet -c SHA256SUMS)

# The Debian package installs the binary SHA256SUMS lists, and that binary verifies the release.
deb="$(find "$work/a/dist" -name 'byok-offline_*_amd64.deb')"
dpkg-deb -x "$deb" "$work/root"
"$work/root/usr/bin/byok-offline" verify-release "$work/a/dist" >/dev/null
[ -s "$work/root/usr/share/bash-completion/completions/byok-offline" ] || {
	echo "release-check: FAIL: the byok-offline package has no bash completion script" >&2
	exit 1
}
sum="$("$work/root/usr/bin/byok-offline" version --json | sed -n 's/^  "sha256": "\([0-9a-f]*\)",\{0,1\}$/\1/p')"
grep -q "^$sum  byok-offline_${version}_linux_amd64\$" "$work/a/dist/SHA256SUMS" || {
	echo "release-check: FAIL: the packaged byok-offline (sha256 $sum) is not the listed binary" >&2
	exit 1
}

# ...and works against a PKCS#11 token: hsm check on a throwaway SoftHSM2 token.
module=/usr/lib/softhsm/libsofthsm2.so
if command -v softhsm2-util >/dev/null 2>&1 && [ -e "$module" ]; then
	mkdir -p "$work/softhsm/tokens"
	printf 'directories.tokendir = %s\nobjectstore.backend = file\n' "$work/softhsm/tokens" >"$work/softhsm/softhsm2.conf"
	printf 'release-check-pin\n' >"$work/softhsm/pin"
	SOFTHSM2_CONF="$work/softhsm/softhsm2.conf" softhsm2-util --init-token --free --label station \
		--pin release-check-pin --so-pin release-check-so >/dev/null
	SOFTHSM2_CONF="$work/softhsm/softhsm2.conf" "$work/root/usr/bin/byok-offline" hsm check \
		--hsm-module "$module" --token-label station --pin-file "$work/softhsm/pin" >"$work/hsm.log" 2>&1 || {
		cat "$work/hsm.log" >&2
		echo "release-check: FAIL: the packaged byok-offline fails hsm check" >&2
		exit 1
	}
	hsm="the packaged byok-offline passes hsm check on SoftHSM2"
else
	hsm="SoftHSM2 not installed: hsm check of the packaged binary not run"
fi

n="$(wc -l <"$work/a/dist/SHA256SUMS")"
echo "release-check: $hsm" >&2
echo "release-check: OK: $n files identical across both builds (first build $((a1 - a0)) s, second build from empty caches $((b1 - b0)) s, total $((SECONDS - start)) s)" >&2
