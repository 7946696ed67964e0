#!/usr/bin/env bash
# Check that the README's two commands pass on a fresh, minimal Debian machine.
#
# It builds a minimal Debian bookworm root (debootstrap --variant=minbase) from the Debian
# mirror this machine's apt uses, copies in Go (to /usr/local/go, not on PATH) and the Go module
# cache (so that no module is downloaded: GOPROXY=off inside), makes a git clone of the
# current commit (only committed files), mounts /proc, /dev and a fresh /dev/shm, and runs
# scripts/demo.sh and then scripts/test.sh inside it as root with chroot, with nothing else
# installed: they must install what they need themselves (scripts/deps.sh). Everything it
# mounted is unmounted when it ends, also on failure or Ctrl-C, and the root is removed unless
# -k is given.
#
# Needs root, network access to the Debian mirror, and about 4 GB of disk. It installs
# debootstrap when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
prog=fresh-check
. scripts/lib.sh

usage() {
	cat >&2 <<'EOF'
usage: scripts/fresh-check.sh [-k] [-d DIR] [-m MIRROR] [-b BASE]
  -k         keep the root when done (its folder is printed)
  -d DIR     build the root in DIR, a new or empty folder (default: a new folder in /var/tmp)
  -m MIRROR  the Debian mirror (default: the one apt uses here, from /etc/apt/sources.list*)
  -b BASE    start from a copy of BASE, a root made earlier by
             debootstrap --variant=minbase bookworm, instead of running debootstrap
Runs the README's two commands, scripts/demo.sh and scripts/test.sh, as root on a fresh
minimal Debian bookworm root and exits 0 only when both pass.
EOF
}
keep=0
dir=""
mirror=""
base=""
while getopts "kd:m:b:h" opt; do
	case "$opt" in
	k) keep=1 ;;
	d) dir=$OPTARG ;;
	m) mirror=$OPTARG ;;
	b) base=$OPTARG ;;
	h)
		usage
		exit 0
		;;
	*)
		usage
		exit 2
		;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || {
	usage
	exit 2
}

t0=$(date +%s)
say() { printf 'fresh-check: [%4ss] %s\n' "$(($(date +%s) - t0))" "$*"; }
die() {
	printf 'fresh-check: %s\n' "$*" >&2
	exit 1
}
# mins SECONDS: "4m05s".
mins() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, mount and chroot need it)"
need_go
need git "to clone the current commit into the root"
need mount "to mount /proc, /dev and /dev/shm in the root"
need chroot "to run the commands in the root"
if ! command -v debootstrap >/dev/null 2>&1; then
	need apt-get "to install debootstrap"
	say "installing debootstrap (apt-get update, then apt-get install debootstrap)"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

# ---- the Debian mirror apt uses here -----------------------------------------------------------

# sources prints "URI SUITE COMPONENTS..." for every deb entry of apt's configuration, from the
# one-line format (sources.list, *.list) and the deb822 format (*.sources).
sources() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
			out = $i " " $(i + 1); for (j = i + 2; j <= NF && $j !~ /^#/; j++) out = out " " $j; print out }' "$f"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk 'function flush() { if (types ~ /(^| )deb( |$)/ && enabled != "no")
				for (u in uris) for (s in suites) print uris[u] " " suites[s] " " comps
			delete uris; delete suites; types = ""; comps = ""; enabled = "" }
			/^[ \t]*#/ { next }
			/^[ \t]*$/ { flush(); next }
			{ key = tolower($1); sub(/:$/, "", key); $1 = "" ; sub(/^ /, "") }
			key == "types" { types = $0 }
			key == "uris" { split($0, uris, " ") }
			key == "suites" { split($0, suites, " ") }
			key == "components" { comps = $0 }
			key == "enabled" { enabled = tolower($0) }
			END { flush() }' "$f"
	done
}
if [ -z "$mirror" ]; then
	mirror=$(sources | awk '$2 == "bookworm" { print $1; exit }')
	[ -n "$mirror" ] || die "no Debian bookworm mirror in /etc/apt/sources.list or /etc/apt/sources.list.d/: give one with -m"
fi
# The root's apt gets the same bookworm suites (updates, security) as this machine, for the
# mirror given or found.
root_sources=$(sources | awk -v m="$mirror" '$2 ~ /^bookworm(-updates|-security)?$/ && ($1 == m || $2 == "bookworm-security") {
	c = ""; for (i = 3; i <= NF; i++) c = c " " $i; if (c == "") c = " main"; print "deb " $1 " " $2 c }' | sort -u)
[ -n "$root_sources" ] || root_sources="deb $mirror bookworm main"

# ---- the root, and cleaning up -----------------------------------------------------------------

if [ -z "$dir" ]; then
	dir=$(mktemp -d /var/tmp/airgap-byok-fresh.XXXXXX)
else
	mkdir -p "$dir"
	[ -z "$(ls -A "$dir")" ] || die "$dir is not empty"
fi
root=$(cd "$dir" && pwd -P)
# It is the root folder inside: users other than root (apt's _apt) must be able to enter it.
chmod 755 "$root"

# mounts prints every mount point at or below the root, deepest first.
mounts() {
	awk -v r="$root" '{ p = $5; gsub(/\\040/, " ", p); if (p == r || index(p, r "/") == 1) print p }' /proc/self/mountinfo | sort -r
}
cleanup() {
	local rc=$? p pids=() m left
	trap - EXIT INT TERM
	# Processes still running in the root (a local Key Vault, a test's child) hold its mounts.
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && pids+=("${p#/proc/}")
	done
	if [ ${#pids[@]} -gt 0 ]; then
		say "stopping processes still running in the root: ${pids[*]}"
		kill -TERM "${pids[@]}" 2>/dev/null || true
		sleep 2
		kill -KILL "${pids[@]}" 2>/dev/null || true
	fi
	while read -r m; do
		[ -n "$m" ] || continue
		umount "$m" 2>/dev/null || umount -l "$m" || true
	done < <(mounts)
	left=$(mounts)
	if [ -n "$left" ]; then
		echo "fresh-check: still mounted, so $root is left in place: $left" >&2
		[ "$rc" -ne 0 ] || rc=1
	elif [ "$keep" = 1 ]; then
		say "the root is kept in $root"
	else
		say "removing the root $root"
		rm -rf --one-file-system "$root"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- build it ----------------------------------------------------------------------------------

step=$(date +%s)
if [ -n "$base" ]; then
	[ -x "$base/bin/bash" ] || die "$base is not a Debian root"
	say "copying the minimal Debian root $base to $root"
	cp -a "$base/." "$root/"
else
	say "debootstrap --variant=minbase bookworm $root $mirror (log: $root.debootstrap.log)"
	debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.debootstrap.log" 2>&1 ||
		die "debootstrap failed: see $root.debootstrap.log"
	rm -f "$root.debootstrap.log"
fi
t_root=$(($(date +%s) - step))
printf '%s\n' "$root_sources" >"$root/etc/apt/sources.list"
say "the root's apt sources: $(printf '%s' "$root_sources" | tr '\n' ';')"
cp /etc/resolv.conf "$root/etc/resolv.conf"

step=$(date +%s)
goroot=$(go env GOROOT)
modcache=$(go env GOMODCACHE)
say "copying Go $(go env GOVERSION) from $goroot to /usr/local/go (not on PATH inside)"
mkdir -p "$root/usr/local"
cp -a "$goroot" "$root/usr/local/go"
say "copying the Go module cache $modcache to /root/go/pkg/mod (GOPROXY=off inside: nothing is downloaded)"
mkdir -p "$root/root/go/pkg"
cp -a "$modcache" "$root/root/go/pkg/mod"
commit=$(git rev-parse HEAD)
say "cloning commit $commit into /root/airgap-byok (committed files only)"
git init -q "$root/root/airgap-byok"
git -C "$root/root/airgap-byok" fetch -q "$PWD" "$commit"
git -C "$root/root/airgap-byok" checkout -q --detach "$commit"
t_copy=$(($(date +%s) - step))

say "mounting /proc, /dev, a new /dev/pts and a new /dev/shm (tmpfs) in the root"
# The root is made a private mount first, and so is the bind of /dev: on a machine whose
# mounts are shared (systemd's default), a mount below them would otherwise appear on this
# machine's own /dev as well.
mount --bind "$root" "$root"
mount --make-private "$root"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
mount --make-private "$root/dev"
# A pseudo-terminal for apt and for the tests that need one (script(1)).
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
mount -t tmpfs -o mode=1777 shm "$root/dev/shm"

# inside COMMAND: runs COMMAND (a shell line) in the clone inside the root, as root, with the
# environment of a fresh login: no Go on PATH, no GOFLAGS. It runs in the background and is
# waited for, so that Ctrl-C or a TERM reaches this script's trap at once (cleanup then stops
# whatever still runs in the root).
inside() {
	chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		CI="${CI:-1}" GOPROXY=off GOTOOLCHAIN=local \
		/bin/bash -c "cd /root/airgap-byok && $1" </dev/null &
	wait $!
}

step=$(date +%s)
say "running the README's first command inside: scripts/demo.sh"
inside scripts/demo.sh || die "scripts/demo.sh failed on the fresh root (after $(mins $(($(date +%s) - step))))"
t_demo=$(($(date +%s) - step))
say "scripts/demo.sh passed in $(mins "$t_demo")"

step=$(date +%s)
say "running the README's second command inside: scripts/test.sh"
inside scripts/test.sh || die "scripts/test.sh failed on the fresh root (after $(mins $(($(date +%s) - step))))"
t_test=$(($(date +%s) - step))
say "scripts/test.sh passed in $(mins "$t_test")"

say "passed: root $(mins "$t_root"), copies $(mins "$t_copy"), demo $(mins "$t_demo") (with scripts/deps.sh and the first build), tests $(mins "$t_test"), total $(mins $(($(date +%s) - t0)))"
