#!/usr/bin/env bash
# The whole airgap-byok ceremony on one machine: the README's first command.
#
# It installs what is missing (scripts/deps.sh), builds byok-offline, byok-online and the local
# Key Vault (kvemu) into OUT_DIR/bin, starts the local Key Vault (a premium vault with its own
# TLS CA and bearer token in OUT_DIR/kv, stopped on exit), makes SoftHSM2 tokens for the
# offline station and four custodians, and runs the ceremony as two stations with separate
# state folders and a folder standing in for the USB stick. A second ceremony then shows two
# regions: a vault each (kv/westeurope, kv/eastus), custodians of their own, one key fanned out
# to both vaults, one kept to westeurope, and the refused attempt to send it elsewhere. It prints a transcript (also in
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
	# A previous run that was killed may have left its local Key Vaults running.
	for ready in "$OUT/kv/ready" "$OUT/kv/westeurope/ready" "$OUT/kv/eastus/ready"; do
		[ -f "$ready" ] || continue
		old=$(sed -n 's/^KVEMU_PID=//p' "$ready")
		if [ -n "$old" ] && tr '\0' ' ' <"/proc/$old/cmdline" 2>/dev/null | grep -q "kvemu serve .*$OUT/kv/"; then
			kill "$old" 2>/dev/null || true
		fi
	done
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
KVEMU_PIDS=()
stop_vault() {
	local pid
	for pid in "${KVEMU_PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	KVEMU_PIDS=()
}
trap stop_vault EXIT
trap 'exit 130' INT TERM

# start_vault DIR: starts a local premium vault with its state, CA and ready file in DIR (and
# the shared token kv/token), and sets VAULT to its URL.
start_vault() {
	local dir=$1 pid log
	log="logs/kvemu$(printf '%s' "${dir#kv}" | tr / -).log"
	bin/kvemu serve --kind premium --token-file kv/token --ca-out "$dir/ca.pem" --state "$dir/vault.db" \
		--ready-file "$dir/ready" >"$dir/serve.out" 2>"$log" &
	pid=$!
	KVEMU_PIDS+=("$pid")
	for _ in $(seq 100); do
		[ -s "$dir/ready" ] && break
		kill -0 "$pid" 2>/dev/null || die "the local Key Vault did not start: see $OUT/$log"
		sleep 0.1
	done
	[ -s "$dir/ready" ] || die "the local Key Vault did not start within 10 s: see $OUT/$log"
	VAULT=$(sed -n 's/^KVEMU_VAULT_URL=//p' "$dir/ready")
	[ -n "$VAULT" ] || die "$dir/ready names no vault URL"
}

say "== setup: start the local Key Vault (premium, TLS with its own CA, a bearer token instead of Entra ID)"
bin/kvemu token --out kv/token >/dev/null
start_vault kv
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
	for label in station alice bob carol dave; do
		newpin >"pins/$label.pin"
		newpin >"pins/$label.so-pin"
		softhsm2-util --init-token --free --label "$label" --pin "$(cat "pins/$label.pin")" \
			--so-pin "$(cat "pins/$label.so-pin")" >>logs/tokens.log 2>&1
	done
) || die "softhsm2-util --init-token failed: see $OUT/logs/tokens.log"
say "   tokens station, alice, bob, carol, dave in softhsm/tokens (module $MODULE)"
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
# The first ceremony's medium, state folders (no suffix) and CA; the regions part changes them.
MEDIUM=usb
SUFFIX=""
CAFILE=kv/ca.pem
# medium_files lists every file of the medium but its lock file (a writer records itself
# there while it runs): path, size, modification time and SHA-256.
medium_files() {
	(cd "$OUT/$MEDIUM" && find . -type f ! -name .lock -printf '%p %s %T@ ' -exec sha256sum {} \; | LC_ALL=C sort)
}

# run STATION WHO COMMAND ARGS...: one step of the ceremony. The command's result (stdout) is
# shown in the transcript and kept in logs/NN-*.out; its log lines (stderr) go to logs/NN-*.log.
# With REFUSED=CODE the command must fail with that exit code, and its error is shown.
run() {
	local station="$1" who="$2"
	shift 2
	step=$((step + 1))
	local name
	name=$(printf '%02d-%s-%s' "$step" "$station" "$(printf '%s' "$2" | tr -c 'a-z' '-')")
	name="${name%-}"
	say "== step $step: $station station: $who"
	say "   \$ $*"
	local env=(SOFTHSM2_CONF="$OUT/softhsm/softhsm2.conf" BYOK_MEDIA="$OUT/$MEDIUM" BYOK_CRASHPOINT=)
	if [ "$station" = offline ]; then
		env+=(BYOK_OFFLINE_STATE_DIR="$OUT/offline-state$SUFFIX")
	else
		env+=(BYOK_ONLINE_STATE_DIR="$OUT/online-state$SUFFIX" BYOK_ONLINE_CA_FILE="$OUT/$CAFILE" BYOK_ONLINE_TOKEN_FILE="$OUT/kv/token")
	fi
	local bin="$1"
	shift
	local rc=0 before=""
	[ -z "${REFUSED:-}" ] || before=$(medium_files)
	env "${env[@]}" "bin/$bin" "$@" >"logs/$name.out" 2>"logs/$name.log" </dev/null || rc=$?
	if [ -n "${REFUSED:-}" ]; then
		sed 's/^/   ! /' "logs/$name.log" | tee -a "$TRANSCRIPT"
		[ "$rc" -eq "$REFUSED" ] || die "step $step ($bin $1) exited with $rc, want $REFUSED: see $OUT/logs/$name.log"
		[ "$(medium_files)" = "$before" ] || die "step $step ($bin $1) was refused but changed the medium $OUT/$MEDIUM"
		say "   -> refused (exit $rc), and nothing was written to the medium"
		say ""
		return 0
	fi
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

# ---- part 2: two regions -------------------------------------------------------------------------

say "== part 2: two regions, each with a vault of its own (its own KEK) and custodians of its own"
mkdir -p kv/westeurope kv/eastus
start_vault kv/westeurope
VAULT_EU=$VAULT
start_vault kv/eastus
VAULT_US=$VAULT
cat kv/westeurope/ca.pem kv/eastus/ca.pem >kv/regions-ca.pem
say "   westeurope vault $VAULT_EU, eastus vault $VAULT_US (CAs in kv/regions-ca.pem, the same token)"
say "   a second ceremony: medium usb-regions/, state folders offline-state-regions/ and online-state-regions/;"
say "   alice and bob approve the keys of westeurope (both of them), carol and dave those of eastus (one of them)"
say ""
mkdir usb-regions
MEDIUM=usb-regions
SUFFIX=-regions
CAFILE=kv/regions-ca.pem

run online "the online operator enrols the station of the regional ceremony" \
	byok-online init
ONLINE_FP=$(pick "^station key fingerprint: $FP$" "station key fingerprint")

run offline "custodians of both regions write policy v1: westeurope 2 of alice, bob; eastus 1 of carol, dave" \
	byok-offline init --hsm-module "$MODULE" --token-label station --pin-file pins/station.pin \
	--station-key-label byok-station-regions --custodian-key-label byok-regional \
	--custodian alice=alice --custodian bob=bob --custodian carol=carol --custodian dave=dave \
	--custodian-pin-file alice=pins/alice.pin --custodian-pin-file bob=pins/bob.pin \
	--custodian-pin-file carol=pins/carol.pin --custodian-pin-file dave=pins/dave.pin --threshold 2 \
	--vault "$VAULT_EU=premium:westeurope" --vault "$VAULT_US=premium:eastus" \
	--region westeurope=2:alice,bob --region eastus=1:carol,dave --online-fingerprint "$ONLINE_FP"
REGIONS_POLICY_FP=$(pick "^policy v1 +$FP .*" "policy fingerprint")

run online "the online operator pins the regional policy" \
	byok-online trust --fingerprint "$REGIONS_POLICY_FP"
run online "the online operator creates a KEK in the westeurope vault" \
	byok-online kek create --vault "$VAULT_EU" --name kek-eu --size 4096
run online "the online operator creates a KEK in the eastus vault" \
	byok-online kek create --vault "$VAULT_US" --name kek-us --size 4096
run offline "the offline operator verifies and accepts both KEK offers" \
	byok-offline kek accept

SHOW=3 run offline "the offline operator generates contoso-global, a key for both regions" \
	byok-offline keygen --pin-file pins/station.pin --type RSA-3072 --ident contoso-global
SHOW=3 run offline "the offline operator generates contoso-eu, a key that may live only in westeurope" \
	byok-offline keygen --pin-file pins/station.pin --type EC-P256 --ident contoso-eu --regions westeurope

run offline "the offline operator fans contoso-global out: one key package per vault, each for its own KEK" \
	byok-offline package --pin-file pins/station.pin --key contoso-global --vault "$VAULT_EU" --vault "$VAULT_US"
pick "^key package $FP written$" "key package fingerprint" >/dev/null
PKG_GLOBAL_US=$(sed -nE "s/^key package $FP written$/\1/p" "$LAST" | sed -n 2p)
[ -n "$PKG_GLOBAL_US" ] || die "step $step printed no second key package"
run offline "the offline operator packages contoso-eu for every vault of westeurope" \
	byok-offline package --pin-file pins/station.pin --key contoso-eu --region westeurope
pick "^key package $FP written$" "key package fingerprint" >/dev/null
REFUSED=7 run offline "the offline operator tries to send contoso-eu to the eastus vault" \
	byok-offline package --pin-file pins/station.pin --key contoso-eu --vault "$VAULT_US"

run offline "westeurope's custodians alice and bob approve both packages for westeurope, one PIN entry each" \
	byok-offline approve --pin-file pins/station.pin --region westeurope \
	--custodian alice --custodian bob \
	--custodian-pin-file alice=pins/alice.pin --custodian-pin-file bob=pins/bob.pin
REFUSED=7 run offline "alice, no custodian of eastus, tries to approve the eastus package $PKG_GLOBAL_US" \
	byok-offline approve --pin-file pins/station.pin --package "$PKG_GLOBAL_US" \
	--custodian alice --custodian-pin-file alice=pins/alice.pin
run offline "eastus's custodian carol approves key package $PKG_GLOBAL_US" \
	byok-offline approve --pin-file pins/station.pin --package "$PKG_GLOBAL_US" \
	--custodian carol --custodian-pin-file carol=pins/carol.pin

run online "the online operator imports each package into its own vault, exactly once" \
	byok-online upload
run offline "the offline operator reads the upload receipts" \
	byok-offline sync
run offline "an auditor replays the regional medium and writes the report with its per-region view" \
	byok-offline audit --media usb-regions --policy "$REGIONS_POLICY_FP" --html report-regions.html

stop_vault
elapsed=$(($(date +%s) - started))
say "Done in ${elapsed}s: contoso-rsa and contoso-ec are in the local vault; contoso-global is in both"
say "regional vaults and contoso-eu in westeurope's alone; all three audits pass."
say "Where to look, in $OUT:"
say "   transcript.txt   this transcript"
say "   report.html      the auditor's report (open it in a browser); report-regions.html, the regional one"
say "   usb/             the medium: both chains of signed bundles, and plain .byok copies in usb/byok/"
say "   usb-regions/     the regional ceremony's medium (its stations' folders end in -regions)"
say "   offline-state/   the offline station's ledger;  online-state/  the online station's key and ledger"
say "   softhsm/tokens/  the SoftHSM2 tokens (pins/ holds their PINs, mode 0600)"
say "   kv/              the local Key Vault's CA, token and state"
say "   logs/            each step's output (.out) and log lines (.log)"
say "Replay it yourself: cd $OUT && bin/byok-online audit --media usb --policy $POLICY_FP"
