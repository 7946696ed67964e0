#!/usr/bin/env bash
# Build the release files of one commit: byok-offline (cgo), byok-online and kvemu (static) for
# linux/amd64 and linux/arm64, as bare binaries, tarballs (with README.md, LICENSE and the
# operator's guide where there is one), CycloneDX SBOMs (cyclonedx-gomod) and Debian packages
# (nfpm; the stations' packages carry the bash, zsh and fish completion scripts the binaries
# print), and a SHA256SUMS over all of them.
#
# The release is a function of the commit alone: the source is the commit's `git archive` (so
# uncommitted changes never reach a release), the version and SOURCE_DATE_EPOCH come from the
# commit, binaries are built with -trimpath, -buildvcs=false and fixed link flags, and tar,
# gzip and nfpm are given fixed owners, modes and times. Two builds of one commit on this
# kind of machine give byte-identical files; scripts/release-check.sh proves it.
#
# Installs what it lacks: Debian's aarch64 cross compiler (for the cgo binary) and the pinned
# nfpm and cyclonedx-gomod (go install into a private folder, or RELEASE_TOOLS if set).
set -euo pipefail
prog=release
. "$(dirname "$0")/lib.sh"

NFPM=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0
CYCLONEDX=github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@v1.10.0

usage() {
	cat >&2 <<'EOF'
usage: scripts/release.sh [-o DIR] [REV]
       scripts/release.sh --describe [REV]
       scripts/release.sh -o DIR --source TAR --version V --revision COMMIT --epoch SECONDS

Builds the release of commit REV (default HEAD) into DIR (default dist/; replaced if it holds
an earlier release). The version is the commit's vX.Y.Z tag, else a Go pseudo-version
(v0.0.0-<commit time>-<12 hex digits>); VERSION=... overrides it. The second form builds from
a `git archive` tarball with everything given (scripts/release-check.sh uses it to build as
another user, who cannot read this repository); --describe prints what the first form would
use: "VERSION REVISION SOURCE_DATE_EPOCH".
EOF
}

out="" rev="" src_tar="" version="${VERSION:-}" revision="" epoch="" describe=""
while [ $# -gt 0 ]; do
	case "$1" in
	-o) out="$2"; shift 2 ;;
	--source) src_tar="$2"; shift 2 ;;
	--version) version="$2"; shift 2 ;;
	--revision) revision="$2"; shift 2 ;;
	--epoch) epoch="$2"; shift 2 ;;
	--describe) describe=1; shift ;;
	-h | --help) usage; exit 0 ;;
	-*) usage; exit 2 ;;
	*) [ -z "$rev" ] || { usage; exit 2; }; rev="$1"; shift ;;
	esac
done

work="$(mktemp -d "${TMPDIR:-/tmp}/byok-release.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir "$work/src"

if [ -n "$src_tar" ]; then
	[ -n "$version" ] && [ -n "$revision" ] && [ -n "$epoch" ] && [ -z "$rev" ] || { usage; exit 2; }
	tar -xf "$src_tar" -C "$work/src"
else
	root="$(git rev-parse --show-toplevel)"
	revision="$(git -C "$root" rev-parse --verify "${rev:-HEAD}^{commit}")"
	epoch="$(git -C "$root" log -1 --format=%ct "$revision")"
	if [ -z "$version" ]; then
		version="$(git -C "$root" tag --points-at "$revision" --list 'v[0-9]*' | sort -V | tail -n1)"
	fi
	if [ -z "$version" ]; then
		version="v0.0.0-$(TZ=UTC git -C "$root" log -1 --date=format-local:%Y%m%d%H%M%S --format=%cd "$revision")-${revision:0:12}"
	fi
	if [ -n "$describe" ]; then
		echo "$version $revision $epoch"
		exit 0
	fi
	if [ -n "$(git -C "$root" status --porcelain --untracked-files=no)" ]; then
		echo "release: note: uncommitted changes are not part of the release of $revision" >&2
	fi
	git -C "$root" archive --format=tar "$revision" | tar -xf - -C "$work/src"
	out="${out:-$root/dist}"
fi
[ -n "$out" ] || { usage; exit 2; }
case "$version" in v[0-9]*) ;; *) echo "release: version $version does not start with v and a digit" >&2; exit 2 ;; esac
src="$work/src"

if [ -e "$out" ] && [ -n "$(ls -A "$out")" ] && [ ! -e "$out/SHA256SUMS" ]; then
	echo "release: $out is not empty and holds no earlier release: refusing to replace it" >&2
	exit 2
fi

need_go

# Debian's cross compiler for the arm64 cgo build.
if ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || [ ! -e /usr/aarch64-linux-gnu/include/stdio.h ]; then
	apt_install gcc-aarch64-linux-gnu libc6-dev-arm64-cross
fi

# The packager and the SBOM generator, at pinned versions.
tools="${RELEASE_TOOLS:-$work/tools}"
if [ ! -x "$tools/nfpm" ] || [ ! -x "$tools/cyclonedx-gomod" ]; then
	mkdir -p "$tools"
	# -trimpath: the SBOMs record the generator's own hash, which must not depend on where
	# the module cache is.
	(cd "$work" && export GOWORK=off GOFLAGS=-trimpath GOBIN="$tools" && go install "$NFPM" && go install "$CYCLONEDX")
	chmod -R a+rX "$tools"
fi

# Everything that could differ between two builders is fixed here.
export SOURCE_DATE_EPOCH="$epoch" TZ=UTC LC_ALL=C GOTOOLCHAIN=local GOFLAGS= GOOS=linux
unset GOARCH GOAMD64 GOARM64 CGO_CFLAGS CGO_LDFLAGS CGO_CPPFLAGS
umask 022
ldflags="-s -w -X main.Version=$version -X github.com/airgap-byok/airgap-byok/shared/buildinfo.revision=$revision"
debversion="${version#v}"

# The build machine's architecture first: its binaries print the shell completion scripts
# that go into the Debian packages (the scripts are the same for every architecture).
hostarch="$(go env GOHOSTARCH)"
ARCHES=("$hostarch")
for a in amd64 arm64; do [ "$a" = "$hostarch" ] || ARCHES+=("$a"); done
case "$hostarch" in amd64 | arm64) ;; *) echo "release: build on amd64 or arm64, not $hostarch" >&2; exit 1 ;; esac

stage="$work/out"
comp="$work/completions"
mkdir "$stage" "$comp"
guides=()
for g in docs/ceremony.md docs/guide.md GUIDE.md; do
	[ -f "$src/$g" ] && guides+=("$g")
done

for arch in "${ARCHES[@]}"; do
	cc=gcc
	[ "$arch" = arm64 ] && cc=aarch64-linux-gnu-gcc
	for bin in byok-offline byok-online kvemu; do
		case "$bin" in
		byok-offline) mod=offline pkg=./cmd/byok-offline cgo=1 ;;
		byok-online) mod=online pkg=./cmd/byok-online cgo=0 ;;
		kvemu) mod=integration pkg=./cmd/kvemu cgo=0 ;;
		esac
		base="${bin}_${version}_linux_${arch}"
		echo "release: $base" >&2
		GOARCH="$arch" CGO_ENABLED="$cgo" CC="$cc" \
			go build -C "$src/$mod" -trimpath -buildvcs=false -ldflags "$ldflags" -o "$stage/$base" "$pkg"
		chmod 0755 "$stage/$base"

		# Tarball: one folder, sorted entries, root-owned, fixed modes and times, gzip -n.
		tdir="$work/tar/$base"
		mkdir -p "$tdir"
		cp "$stage/$base" "$tdir/$bin"
		cp "$src/README.md" "$src/LICENSE" "$tdir/"
		for g in "${guides[@]}"; do cp "$src/$g" "$tdir/"; done
		chmod 0755 "$tdir" "$tdir/$bin"
		find "$tdir" -type f ! -name "$bin" -exec chmod 0644 {} +
		tar -C "$work/tar" --sort=name --format=gnu --owner=0 --group=0 --numeric-owner \
			--mtime="@$epoch" -cf - "$base" | gzip -9 -n >"$stage/$base.tar.gz"
		rm -rf "$tdir"

		# SBOM of what the binary was built from (its embedded build info), without a
		# random serial number or the time of the build.
		GOARCH="$arch" "$tools/cyclonedx-gomod" bin -json -std -noserial -notimestamp \
			-version "$version" -output "$stage/$base.cdx.json" "$stage/$base" 2>/dev/null

		# Shell completion scripts, where the binary makes them (kvemu does not).
		if [ "$arch" = "$hostarch" ] && [ "$bin" != kvemu ]; then
			for sh in bash zsh fish; do
				env -i PATH=/usr/bin:/bin "$stage/$base" completion "$sh" >"$comp/$bin.$sh"
			done
		fi

		# Debian package, installing to /usr/bin.
		VERSION="$debversion" ARCH="$arch" BINARY="$stage/$base" SRC="$src" COMPLETIONS="$comp" \
			"$tools/nfpm" package --config "$src/packaging/nfpm-$bin.yaml" --packager deb \
			--target "$stage/${bin}_${debversion}_${arch}.deb" >/dev/null
	done
done

(cd "$stage" && find . -maxdepth 1 -type f -printf '%f\n' | sort | xargs -d '\n' sha256sum -- >"$work/SHA256SUMS")
mv "$work/SHA256SUMS" "$stage/SHA256SUMS"
chmod 0644 "$stage"/*.tar.gz "$stage"/*.cdx.json "$stage"/*.deb "$stage/SHA256SUMS"

rm -rf "$out"
mkdir -p "$(dirname "$out")"
mv "$stage" "$out"
echo "release: $version ($revision) in $out" >&2
