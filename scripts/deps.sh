#!/usr/bin/env bash
# Install what a fresh Debian machine lacks to build, test and demo airgap-byok:
# SoftHSM2 (the HSM in tests and the demo), OpenSC (pkcs11-tool), OpenSSL's command line (the
# independent unwrapper), Chromium (renders the audit report in a test), and util-linux's
# flock, and poppler-utils (pdftotext reads the printed report). Go must already be installed (see README).
set -euo pipefail

usage() {
	echo "usage: scripts/deps.sh" >&2
	echo "Installs missing Debian packages with apt-get (as root, or through sudo)." >&2
}
[ $# -eq 0 ] || { usage; exit 2; }

need=()
command -v softhsm2-util >/dev/null 2>&1 || need+=(softhsm2)
command -v pkcs11-tool >/dev/null 2>&1 || need+=(opensc)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v flock >/dev/null 2>&1 || need+=(util-linux)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v pdftotext >/dev/null 2>&1 || need+=(poppler-utils)

if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || { echo "deps: need root or sudo to install: ${need[*]}" >&2; exit 1; }
	SUDO=sudo
fi
echo "deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
