#!/usr/bin/env bash
# Install the Debian packages that building, testing and the demo use and a fresh, minimal
# Debian machine lacks:
#   gcc, libc6-dev  the C compiler and C library headers for byok-offline (cgo, PKCS#11)
#   git             VCS stamping, the version of the demo's binaries, the test vectors check
#   make            the Makefile's targets
#   ca-certificates TLS to the Go module proxy when modules are not in the module cache
#   softhsm2        the HSM in tests and the demo
#   opensc          pkcs11-tool
#   openssl         OpenSSL's command line, the independent unwrapper
#   util-linux      flock (the medium lock tests)
#   bsdutils        script (a terminal for the progress bar test)
#   e2fsprogs       chattr (read-only folders in tests, as root)
#   mount           mount and umount (read-only and full media in tests, as root)
#   procps          ps and kill
#   chromium        renders the audit report in a test
#   poppler-utils   pdftotext reads the printed report
#   openssh-client  ssh-keygen checks a release's SSH signature (verify-release and its test)
# Go itself is not a Debian package here: install Go 1.26 or newer (see README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
prog=deps
. scripts/lib.sh

usage() {
	echo "usage: scripts/deps.sh" >&2
	echo "Installs missing Debian packages with apt-get (as root, or through sudo)." >&2
}
case "${1:-}" in -h | --help) usage; exit 0 ;; esac
[ $# -eq 0 ] || { usage; exit 2; }

need=()
# want PACKAGE [COMMAND]: PACKAGE is needed unless COMMAND is on PATH (or, with no COMMAND,
# unless dpkg says PACKAGE is installed).
want() {
	if [ $# -gt 1 ]; then
		command -v "$2" >/dev/null 2>&1 && return 0
	elif dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed$'; then
		return 0
	fi
	need+=("$1")
}
want gcc gcc
want libc6-dev
want git git
want make make
want ca-certificates
want softhsm2 softhsm2-util
want opensc pkcs11-tool
want openssl openssl
want util-linux flock
want bsdutils script
want e2fsprogs chattr
want mount mount
want procps ps
want chromium chromium
want poppler-utils pdftotext
want openssh-client ssh-keygen

if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi
apt_install "${need[@]}"
