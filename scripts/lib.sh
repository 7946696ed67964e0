# Sourced by the scripts in scripts/: one way to find Go, one way to name a missing tool.
#
# The sourcing script sets prog (its name in messages) first.

# need_go: Go 1.26 or newer, the go on PATH or else /usr/local/go/bin/go (then added to PATH).
# Stops with a message that says which it was when neither is there or the Go is too old.
need_go() {
	if ! command -v go >/dev/null 2>&1; then
		if [ -x /usr/local/go/bin/go ]; then
			export PATH="/usr/local/go/bin:$PATH"
		else
			echo "$prog: Go 1.26 or newer is required: no go on PATH and no /usr/local/go/bin/go (https://go.dev/dl/)" >&2
			exit 1
		fi
	fi
	local v
	v=$(go env GOVERSION 2>/dev/null) || v=""
	case "$v" in
	go1.2[6-9]* | go1.[3-9][0-9]* | go[2-9]* | devel*) ;;
	*)
		echo "$prog: Go 1.26 or newer is required: $(command -v go) is ${v:-not a working Go} (https://go.dev/dl/)" >&2
		exit 1
		;;
	esac
}

# need TOOL WHY: stops with "TOOL is required (WHY): run scripts/deps.sh" when TOOL is not on
# PATH.
need() {
	command -v "$1" >/dev/null 2>&1 && return 0
	echo "$prog: $1 is required ($2): run scripts/deps.sh" >&2
	exit 1
}

# apt_install PKG...: installs Debian packages with apt-get, as root or through sudo, saying
# what it installs. Stops with a message naming the packages when there is no apt-get, or no
# root and no sudo.
apt_install() {
	command -v apt-get >/dev/null 2>&1 || {
		echo "$prog: apt-get is required to install $*: install them by hand" >&2
		exit 1
	}
	local sudo=""
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null 2>&1 || {
			echo "$prog: need root or sudo to install $*" >&2
			exit 1
		}
		sudo=sudo
	fi
	echo "$prog: installing $* (apt-get update, then apt-get install)" >&2
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
	echo "$prog: installed $*" >&2
}
