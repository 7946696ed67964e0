#!/usr/bin/env bash
# The whole airgap-byok ceremony on one machine: the README's first command.
#
# It installs what is missing (scripts/deps.sh), builds byok-offline, byok-online and the local
# Key Vault (kvemu) into OUT_DIR/bin, starts the local Key Vault (a premium vault with its own
# TLS CA and bearer token in OUT_DIR/kv, stopped on exit), makes SoftHSM2 tokens for the
# offline station and three custodians, and runs the ceremony as two stations with separate
# state folders and a folder standing in for the USB stick. It prints a transcript (also in
# OUT_DIR/transcript.txt) and leaves everything it made in OUT_DIR.
#
# Re-running: an OUT_DIR that a previous demo made (it holds the marker file .airgap-byok-demo)
# is cleared first, and the transcript says so; any other non-empty OUT_DIR is refused.
set -euo pipefail

usage() {
	cat >&2 <<'EOF'
usage: scripts/demo.sh [OUT_DIR]

Runs the whole BYOK ceremony on this machine against a local Key Vault, with SoftHSM2 tokens
standing in for the HSM and the custodians' cards, and leaves everything it made in OUT_DIR
(default: ./demo-out): the medium (usb/), both stations' state folders, the tokens, the audit
report, the logs and transcript.txt.

An OUT_DIR made by an earlier run (it holds .airgap-byok-demo) is removed and made anew; any
other non-empty folder is refused. Needs Go 1.26 (on PATH or in /usr/local/go), and root or
sudo to install what scripts/deps.sh lists (SoftHSM2, OpenSC, OpenSSL, ...) if it is missing.
EOF
}

case "${1:-}" in
-h | --help)
	usage
	exit 0
	;;
-*)
	usage
	exit 2
	;;
esac
[ $# -le 1 ] || {
	usage
	exit 2
}

out_arg="${1:-demo-out}"
case "$out_arg" in
/*) OUT="$out_arg" ;;
*) OUT="$PWD/$out_arg" ;;
esac
OUT="${OUT%/}"
MARKER=.airgap-byok-demo

cd "$(dirname "$0")/.."
ROOT="$PWD"

# ---- output helpers --------------------------------------------------------------------------

TRANSCRIPT=/dev/null
say() { printf '%s\n' "$*" | tee -a "$TRANSCRIPT"; }
die() {
	printf 'demo: error: %s\n' "$*" >&2
	[ "$TRANSCRIPT" = /dev/null ] || printf 'demo: error: %s\n' "$*" >>"$TRANSCRIPT"
	exit 1
}

# ---- tools -------------------------------------------------------------------------------------

prog=demo
. scripts/lib.sh
need_go
echo "demo: checking for the Debian packages it needs (scripts/deps.sh installs what is missing)" >&2
scripts/deps.sh
need gcc "the C compiler for byok-offline's PKCS#11 binding (cgo)"
need softhsm2-util "SoftHSM2 stands in for the HSM and the custodians' cards"
MODULE=""
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
	/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so /usr/local/lib/softhsm/libsofthsm2.so; do
	if [ -f "$m" ]; then
		MODULE="$m"
		break
	fi
done
[ -n "$MODULE" ] || die "the SoftHSM2 PKCS#11 module is missing (apt-get install softhsm2)"

# ---- the output folder -------------------------------------------------------------------------

cleared=""
if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT" 2>/dev/null)" ]; then
	[ -f "$OUT/$MARKER" ] || die "$OUT exists and was not made by this demo: give another OUT_DIR or remove it"
	# A previous run that was killed may have left its local Key Vault running.
	if [ -f "$OUT/kv/ready" ]; then
		old=$(sed -n 's/^KVEMU_PID=//p' "$OUT/kv/ready")
		if [ -n "$old" ] && tr '\0' ' ' <"/proc/$old/cmdline" 2>/dev/null | grep -q "kvemu serve .*$OUT/kv/"; then
			kill "$old" 2>/dev/null || true
		fi
	fi
	rm -rf "$OUT"
	cleared=yes
fi
mkdir -p "$OUT"
: >"$OUT/$MARKER"
mkdir -p "$OUT/bin" "$OUT/kv" "$OUT/logs" "$OUT/pins" "$OUT/softhsm/tokens"
chmod 700 "$OUT/pins" "$OUT/softhsm/tokens"
TRANSCRIPT="$OUT/transcript.txt"
: >"$TRANSCRIPT"

started=$(date +%s)
say "airgap-byok demo: the whole Bring Your Own Key ceremony on this machine"
say "output folder: $OUT"
[ -z "$cleared" ] || say "(removed the previous demo that was in this folder)"
say ""

# ---- build -------------------------------------------------------------------------------------

say "== setup: build byok-offline (cgo, PKCS#11), byok-online (static) and kvemu (the local Key Vault)"
version="$(git describe --tags --always --dirty 2>/dev/null || echo devel)"
ldflags="-X main.Version=$version"
# build NAME MODULE CGO WHAT: builds NAME from MODULE/cmd/NAME into bin/, saying so as it starts
# and every 30 s while it runs (a first build compiles every dependency: minutes on 2 cores).
build() {
	local name=$1 module=$2 cgo=$3 what=$4 t0 pid rc=0
	say "   building $name ($what)"
	t0=$(date +%s)
	CGO_ENABLED=$cgo go build -C "$module" -trimpath -ldflags "$ldflags" -o "$OUT/bin/$name" "./cmd/$name" \
		>>"$OUT/logs/build.log" 2>&1 &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		for _ in $(seq 30); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 1
		done
		! kill -0 "$pid" 2>/dev/null || say "   ... still building $name ($(($(date +%s) - t0))s)"
	done
	wait "$pid" || rc=$?
	[ "$rc" -eq 0 ] || die "building $name failed: see $OUT/logs/build.log"
	say "   built $name in $(($(date +%s) - t0))s"
}
: >"$OUT/logs/build.log"
build byok-offline offline 1 "cgo: gcc compiles the PKCS#11 binding"
build byok-online online 0 "static"
build kvemu integration 0 "the local Key Vault, static"
say "   built $version into bin/"

# ---- the local Key Vault -----------------------------------------------------------------------

cd "$OUT"
KVEMU_PID=""
stop_vault() {
	if [ -n "$KVEMU_PID" ]; then
		kill "$KVEMU_PID" 2>/dev/null || true
		wait "$KVEMU_PID" 2>/dev/null || true
		KVEMU_PID=""
	fi
}
trap stop_vault EXIT
trap 'exit 130' INT TERM

say "== setup: start the local Key Vault (premium, TLS with its own CA, a bearer token instead of Entra ID)"
bin/kvemu token --out kv/token >/dev/null
bin/kvemu serve --kind premium --token-file kv/token --ca-out kv/ca.pem --state kv/vault.db \
	--ready-file kv/ready >kv/serve.out 2>logs/kvemu.log &
KVEMU_PID=$!
for _ in $(seq 100); do
	[ -s kv/ready ] && break
	kill -0 "$KVEMU_PID" 2>/dev/null || die "the local Key Vault did not start: see $OUT/logs/kvemu.log"
	sleep 0.1
done
[ -s kv/ready ] || die "the local Key Vault did not start within 10 s: see $OUT/logs/kvemu.log"
VAULT=$(sed -n 's/^KVEMU_VAULT_URL=//p' kv/ready)
[ -n "$VAULT" ] || die "kv/ready names no vault URL"
say "   vault $VAULT (CA kv/ca.pem, token kv/token, state kv/vault.db)"

# ---- tokens ------------------------------------------------------------------------------------

say "== setup: SoftHSM2 tokens: the offline station's HSM and one card per custodian"
cat >softhsm/softhsm2.conf <<EOF
directories.tokendir = $OUT/softhsm/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
EOF
export SOFTHSM2_CONF="$OUT/softhsm/softhsm2.conf"
newpin() { od -An -N8 -tx1 /dev/urandom | tr -d ' \n'; }
(
	umask 077
	for label in station alice bob carol; do
		newpin >"pins/$label.pin"
		newpin >"pins/$label.so-pin"
		softhsm2-util --init-token --free --label "$label" --pin "$(cat "pins/$label.pin")" \
			--so-pin "$(cat "pins/$label.so-pin")" >>logs/tokens.log 2>&1
	done
) || die "softhsm2-util --init-token failed: see $OUT/logs/tokens.log"
say "   tokens station, alice, bob, carol in softhsm/tokens (module $MODULE)"
say "   PINs are random, in pins/*.pin (mode 0600) so that the demo runs unattended; in a real"
say "   ceremony each person types their PIN at the no-echo prompt and no PIN file exists"
say ""

# ---- the stations ------------------------------------------------------------------------------

# A ceremony starts on an existing, empty folder: the tools never create the medium's folder
# (a missing one is an unmounted stick).
mkdir usb
say "The two stations share nothing but the folder usb/, which stands in for the USB stick."
say "Commands run in $OUT with, on each station:"
say "   offline: SOFTHSM2_CONF=softhsm/softhsm2.conf BYOK_OFFLINE_STATE_DIR=offline-state BYOK_MEDIA=usb"
say "   online:  BYOK_ONLINE_STATE_DIR=online-state BYOK_MEDIA=usb"
say "            BYOK_ONLINE_CA_FILE=kv/ca.pem BYOK_ONLINE_TOKEN_FILE=kv/token (the local Key Vault)"
say ""

step=0
# run STATION WHO COMMAND ARGS...: one step of the ceremony. The command's result (stdout) is
# shown in the transcript and kept in logs/NN-*.out; its log lines (stderr) go to logs/NN-*.log.
run() {
	local station="$1" who="$2"
	shift 2
	step=$((step + 1))
	local name
	name=$(printf '%02d-%s-%s' "$step" "$station" "$(printf '%s' "$2" | tr -c 'a-z' '-')")
	name="${name%-}"
	say "== step $step: $station station: $who"
	say "   \$ $*"
	local env=(SOFTHSM2_CONF="$OUT/softhsm/softhsm2.conf" BYOK_MEDIA="$OUT/usb" BYOK_CRASHPOINT=)
	if [ "$station" = offline ]; then
		env+=(BYOK_OFFLINE_STATE_DIR="$OUT/offline-state")
	else
		env+=(BYOK_ONLINE_STATE_DIR="$OUT/online-state" BYOK_ONLINE_CA_FILE="$OUT/kv/ca.pem" BYOK_ONLINE_TOKEN_FILE="$OUT/kv/token")
	fi
	local bin="$1"
	shift
	local rc=0
	env "${env[@]}" "bin/$bin" "$@" >"logs/$name.out" 2>"logs/$name.log" </dev/null || rc=$?
	if [ -n "${SHOW:-}" ] && [ "$(wc -l <"logs/$name.out")" -gt "$SHOW" ]; then
		head -n "$SHOW" "logs/$name.out" | sed 's/^/   | /' | tee -a "$TRANSCRIPT"
		say "   | ... (the token's attributes of the key: logs/$name.out)"
	else
		sed 's/^/   | /' "logs/$name.out" | tee -a "$TRANSCRIPT"
	fi
	if [ "$rc" -ne 0 ]; then
		sed 's/^/   ! /' "logs/$name.log" | tail -n 20 | tee -a "$TRANSCRIPT" >&2
		die "step $step ($bin $1) exited with $rc: see $OUT/logs/$name.log"
	fi
	LAST="logs/$name.out"
	say ""
}

# pick REGEX: the first capture of REGEX (sed -E) in the last step's output.
pick() {
	local v
	v=$(sed -nE "s/$1/\\1/p" "$LAST" | head -n 1)
	[ -n "$v" ] || die "step $step printed no $2"
	printf '%s' "$v"
}
FP='([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})'

run online "the online operator creates the station key and enrols the station" \
	byok-online init
ONLINE_FP=$(pick "^station key fingerprint: $FP$" "station key fingerprint")
say "   -> the online operator reads $ONLINE_FP aloud to the offline operator"
say ""

run offline "the security officer and custodians alice, bob and carol write policy v1 (2 of 3)" \
	byok-offline init --hsm-module "$MODULE" --token-label station --pin-file pins/station.pin \
	--custodian alice=alice --custodian bob=bob --custodian carol=carol \
	--custodian-pin-file alice=pins/alice.pin --custodian-pin-file bob=pins/bob.pin \
	--custodian-pin-file carol=pins/carol.pin --threshold 2 --vault "$VAULT=premium:local" \
	--online-fingerprint "$ONLINE_FP"
POLICY_FP=$(pick "^policy v1 +$FP .*" "policy fingerprint")
say "   -> the offline operator reads the policy fingerprint $POLICY_FP aloud; the stick goes online"
say ""

run online "the online operator pins the policy after comparing its fingerprint" \
	byok-online trust --fingerprint "$POLICY_FP"

run online "the online operator creates an import-only RSA-HSM KEK in the vault and offers it" \
	byok-online kek create --vault "$VAULT" --name kek-1 --size 4096
say "   -> the stick goes offline"
say ""

run offline "the offline operator verifies and accepts the KEK offer" \
	byok-offline kek accept

SHOW=2 run offline "the offline operator generates an RSA-3072 key in the HSM" \
	byok-offline keygen --pin-file pins/station.pin --type RSA-3072 --ident contoso-rsa
SHOW=2 run offline "the offline operator generates an EC P-256 key in the HSM" \
	byok-offline keygen --pin-file pins/station.pin --type EC-P256 --ident contoso-ec

run offline "the offline operator wraps contoso-rsa for the vault's KEK" \
	byok-offline package --pin-file pins/station.pin --key contoso-rsa --vault "$VAULT"
PKG_RSA=$(pick "^key package $FP written$" "key package fingerprint")
run offline "the offline operator wraps contoso-ec for the vault's KEK" \
	byok-offline package --pin-file pins/station.pin --key contoso-ec --vault "$VAULT"
PKG_EC=$(pick "^key package $FP written$" "key package fingerprint")

for pkg in "$PKG_RSA" "$PKG_EC"; do
	run offline "custodians alice and bob approve key package $pkg with their cards" \
		byok-offline approve --pin-file pins/station.pin --package "$pkg" \
		--custodian alice --custodian bob \
		--custodian-pin-file alice=pins/alice.pin --custodian-pin-file bob=pins/bob.pin
done
say "   -> the stick goes online"
say ""

run online "the online operator verifies everything the offline station wrote" \
	byok-online verify
run online "the online operator imports each approved key package exactly once" \
	byok-online upload
say "   -> the stick goes offline"
say ""

run offline "the offline operator reads the upload receipts" \
	byok-offline sync

run offline "an auditor replays the medium, pinned to policy $POLICY_FP, and writes the HTML report" \
	byok-offline audit --media usb --policy "$POLICY_FP" --html report.html
run online "the same audit from the online station's binary" \
	byok-online audit --media usb --policy "$POLICY_FP"

stop_vault
elapsed=$(($(date +%s) - started))
say "Done in ${elapsed}s: contoso-rsa and contoso-ec are in the local vault, and both audits pass."
say "Where to look, in $OUT:"
say "   transcript.txt   this transcript"
say "   report.html      the auditor's report (open it in a browser)"
say "   usb/             the medium: both chains of signed bundles, and plain .byok copies in usb/byok/"
say "   offline-state/   the offline station's ledger;  online-state/  the online station's key and ledger"
say "   softhsm/tokens/  the SoftHSM2 tokens (pins/ holds their PINs, mode 0600)"
say "   kv/              the local Key Vault's CA, token and state"
say "   logs/            each step's output (.out) and log lines (.log)"
say "Replay it yourself: cd $OUT && bin/byok-online audit --media usb --policy $POLICY_FP"
