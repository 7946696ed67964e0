#!/usr/bin/env bash
# Run every benchmark of the project and write BENCHMARKS.md: each figure beside its floor or
# peer measured in the same run, the ratio, the target and whether it is met, the machine, the
# load average while each benchmark ran, and the exact command.
#
# Run it on a quiet machine: the replay and audit targets compare two cores against a
# single-threaded floor, so a neighbour's load lowers the ratio. Every benchmark's load is in
# the report; rerun when it was high. The run takes about half an hour on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
	cat >&2 <<'EOF'
usage: scripts/bench.sh [-o FILE] [-k]
  -o FILE  write the report to FILE (default BENCHMARKS.md)
  -k       keep the raw benchmark logs (their folder is printed)
EOF
}
out=BENCHMARKS.md
keep=0
while getopts "o:kh" opt; do
	case "$opt" in
	o) out=$OPTARG ;;
	k) keep=1 ;;
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

prog=bench
. scripts/lib.sh
need_go
command -v awk >/dev/null 2>&1 || { echo "bench: awk is required" >&2; exit 1; }
command -v softhsm2-util >/dev/null 2>&1 || { echo "bench: SoftHSM2 is required for the HSM and package benchmarks: run scripts/deps.sh" >&2; exit 1; }
[ -d /dev/shm ] || { echo "bench: /dev/shm (tmpfs) is required for the tmpfs variants" >&2; exit 1; }

logs=$(mktemp -d)
sampler=
cleanup() {
	[ -z "$sampler" ] || kill "$sampler" 2>/dev/null || true
	if [ "$keep" = 1 ]; then
		echo "bench: raw logs kept in $logs" >&2
	else
		rm -rf "$logs"
	fi
}
trap cleanup EXIT

# The 1-minute load average every 5 seconds, for the load during each benchmark.
(while :; do
	echo "$(date +%s) $(cut -d' ' -f1 /proc/loadavg)"
	sleep 5
done) >"$logs/load" &
sampler=$!

# run NAME DIR COMMAND: runs COMMAND (a shell line) in DIR, logs its output to NAME.log and
# its command, start and end to NAME.cmd, .start, .end. A failed benchmark is reported, not
# fatal: the report says so.
run() {
	local name=$1 dir=$2 cmd=$3
	echo "bench: $name: (cd $dir && $cmd)" >&2
	echo "cd $dir && $cmd" >"$logs/$name.cmd"
	date +%s >"$logs/$name.start"
	if (cd "$dir" && eval "$cmd") >"$logs/$name.log" 2>&1; then
		echo ok >"$logs/$name.status"
	else
		echo FAILED >"$logs/$name.status"
		echo "bench: $name failed; see the report" >&2
	fi
	date +%s >"$logs/$name.end"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%Y-%m-%dT%H:%MZ)

run replay transfer-format "go test -run '^\$' -bench 'Replay|Floor' -benchtime 1x -timeout 30m ./chain/"
run audit shared "go test -run '^\$' -bench 'Audit' -benchtime 1x -timeout 60m ./audit/"
run state shared "go test -run '^\$' -bench 'ReplayState' -benchtime 5x ./station/"
run codec transfer-format "go test -run '^\$' -bench . -benchmem ./byok/ ./payload/ ./media/ ./keywrap/"
run hsm offline "go test -run '^\$' -bench . ./internal/hsm/"
run package-disk offline "go test ./internal/cli -run '^\$' -bench BenchmarkPackageRSA3072Paired -benchtime 100x -count 3"
run package-tmpfs offline "TMPDIR=/dev/shm go test ./internal/cli -run '^\$' -bench BenchmarkPackageRSA3072Paired -benchtime 100x -count 3"
run kvemu integration "go test -run '^\$' -bench . ./kvemu/"
run upload integration "go test -run '^\$' -bench BenchmarkOnlineUpload100 -benchtime 3x -timeout 60m ."

# ---------------------------------------------------------------------------------------------
# The report.

# values LOG NAME UNIT: every value of UNIT on the lines of benchmark NAME (the name without
# its -GOMAXPROCS suffix), one per line.
values() {
	awk -v name="$2" -v unit="$3" '
		$1 ~ /^Benchmark/ {
			n = $1; sub(/-[0-9]+$/, "", n)
			if (n != name) next
			for (i = 3; i < NF; i += 2) if ($(i + 1) == unit) print $i
		}' "$logs/$1.log"
}

# med LOG NAME UNIT: the median of those values, or "n/a".
med() {
	values "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# fmt NUMBER [DIGITS]: the number rounded, or n/a.
fmtn() {
	case "$1" in n/a) echo n/a ;; *) awk -v x="$1" -v d="${2:-0}" 'BEGIN { printf "%.*f\n", d, x }' ;; esac
}

# ratio A B: A/B to two decimals, or n/a.
ratio() {
	case "$1$2" in *n/a*) echo n/a ;; *) awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f\n", a / b }' ;; esac
}

# atleast X T / atmost X T: "yes" or "**no**" (n/a when X is n/a).
atleast() {
	case "$1" in n/a) echo n/a ;; *) awk -v x="$1" -v t="$2" 'BEGIN { print (x >= t) ? "yes" : "**no**" }' ;; esac
}
atmost() {
	case "$1" in n/a) echo n/a ;; *) awk -v x="$1" -v t="$2" 'BEGIN { print (x <= t) ? "yes" : "**no**" }' ;; esac
}

# load NAME: the 1-minute load average while NAME ran: "mean (max)".
load() {
	awk -v s="$(cat "$logs/$1.start")" -v e="$(cat "$logs/$1.end")" '
		$1 >= s && $1 <= e + 5 { n++; t += $2; if ($2 > m) m = $2 }
		END { if (n == 0) print "n/a"; else printf "%.2f (max %.2f)\n", t / n, m }' "$logs/load"
}

dur() { echo "$(($(cat "$logs/$1.end") - $(cat "$logs/$1.start"))) s"; }

# section NAME TITLE: the command, status, duration, load and raw benchmark lines of NAME.
section() {
	local name=$1
	echo
	echo "Command: \`$(cat "$logs/$name.cmd")\` — $(cat "$logs/$name.status"), $(dur "$name"), load average $(load "$name")."
	echo
	echo '```'
	grep -E '^(Benchmark|--- FAIL|FAIL|panic)|bench_test.go:[0-9]+: (built|more than)' "$logs/$name.log" | sed 's/\t/ /g; s/  */ /g' || true
	echo '```'
}

R=BenchmarkReplay
F=BenchmarkFloor
A=BenchmarkAudit
P=BenchmarkPackageRSA3072Paired
U=BenchmarkOnlineUpload100

rep_rate=$(med replay "$R/bundles=100000/workers=2" bundles/s)
rep1_rate=$(med replay "$R/bundles=100000/workers=1" bundles/s)
floor_rate=$(med replay "$F/bundles=100000" bundles/s)
floorA_rate=$(med replay "$F/bundles=100000/with-approvals" bundles/s)
heap10=$(med replay "$R/bundles=10000/workers=2" peak-heap-MiB)
heap100=$(med replay "$R/bundles=100000/workers=2" peak-heap-MiB)

aud_f=$(med audit "$A/bundles=100000/html=false" x-floor)
aud_t=$(med audit "$A/bundles=100000/html=true" x-floor)
aheap10=$(med audit "$A/bundles=10000/html=true" peak-heap-MiB)
aheap100=$(med audit "$A/bundles=100000/html=true" peak-heap-MiB)

up_disk_c=$(med upload "$U/storage=disk/concurrent" s/100keys)
up_disk_s=$(med upload "$U/storage=disk/sequential" s/100keys)
up_disk_p=$(med upload "$U/storage=disk/process-per-key" s/100keys)
up_tmp_c=$(med upload "$U/storage=tmpfs/concurrent" s/100keys)
up_tmp_s=$(med upload "$U/storage=tmpfs/sequential" s/100keys)
up_tmp_p=$(med upload "$U/storage=tmpfs/process-per-key" s/100keys)

{
	echo "# Benchmarks"
	echo
	echo "Written by \`scripts/bench.sh\` (\`make bench\`), started $started at commit" \
		"\`$(git rev-parse --short HEAD)\`$(git diff --quiet HEAD -- transfer-format shared offline online integration 2>/dev/null || echo ' (with uncommitted changes)')."
	echo "Each figure stands beside its floor or peer measured in the same run; ratios are of medians"
	echo "where a benchmark ran more than once. Raw lines and the exact command of every benchmark are"
	echo "under [Details](#details)."
	echo
	echo "## Machine"
	echo
	echo "| | |"
	echo "| --- | --- |"
	echo "| cores (\`nproc\`) | $(nproc) |"
	echo "| CPU | $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo) |"
	echo "| kernel | $(uname -sr) |"
	echo "| Go | $(go env GOVERSION) |"
	echo "| load average before the run (1, 5, 15 min) | $load_before |"
	echo "| load average after the run | $(cut -d' ' -f1-3 /proc/loadavg) |"
	echo
	echo "## Targets"
	echo
	echo "| target | figure | floor or peer | ratio | target | met | load while it ran |"
	echo "| --- | --- | --- | --- | --- | --- | --- |"
	r=$(ratio "$rep_rate" "$floor_rate")
	echo "| 1. Replay of 100,000 bundles, 2 workers, against the single-threaded floor (SHA-256, station signature, zstd) | $(fmtn "$rep_rate") bundles/s | $(fmtn "$floor_rate") bundles/s | $r | ≥ 0.80 | $(atleast "$r" 0.8) | $(load replay) |"
	echo "| 1. Replay memory: peak live heap, 100,000 against 10,000 bundles | $(fmtn "$heap100" 1) MiB | $(fmtn "$heap10" 1) MiB | $(ratio "$heap100" "$heap10") | constant (≤ 1.5) | $(atmost "$(ratio "$heap100" "$heap10")" 1.5) | $(load replay) |"
	for p in "disk:package-disk" "tmpfs:package-tmpfs"; do
		st=${p%%:*}
		lg=${p#*:}
		for k in 1 8; do
			for u in cpu wall; do
				o=$(med "$lg" "$P/keys=$k" "overhead-%-$u-ns")
				echo "| 2. Offline package, $st, keys=$k per run, $u time per key: the tool against the same HSM calls through miekg/pkcs11 | $(fmtn "$(med "$lg" "$P/keys=$k" "tool-$u-ns")") ns | $(fmtn "$(med "$lg" "$P/keys=$k" "direct-$u-ns")") ns | +$(fmtn "$o" 1) % | < +5 % | $(atmost "$o" 5) | $(load "$lg") |"
			done
		done
	done
	r=$(ratio "$up_disk_s" "$up_disk_c")
	echo "| 3. Online upload of 100 packages (50 ms latency), disk: concurrent against sequential | $(fmtn "$up_disk_c" 3) s | $(fmtn "$up_disk_s" 3) s | $r× | ≥ 10× | $(atleast "$r" 10) | $(load upload) |"
	r=$(ratio "$up_tmp_s" "$up_tmp_c")
	echo "| 3. Online upload, tmpfs: concurrent against sequential | $(fmtn "$up_tmp_c" 3) s | $(fmtn "$up_tmp_s" 3) s | $r× | ≥ 10× | $(atleast "$r" 10) | $(load upload) |"
	peak=$( (values upload "$U/storage=disk/concurrent" peak-req/window; values upload "$U/storage=tmpfs/concurrent" peak-req/window) | sort -g | tail -1)
	echo "| 3. Online upload: highest peak of requests per throttling window, concurrent (every op fails above the emulator's limit) | $(fmtn "${peak:-n/a}") | the limit | | never above | $(grep -q '^ok' "$logs/upload.log" && echo yes || echo '**no**') | $(load upload) |"
	echo "| 4. Audit of 100,000 bundles against the verification floor, no HTML | $(fmtn "$(med audit "$A/bundles=100000/html=false" bundles/s)") bundles/s | $(fmtn "$(med audit "$A/bundles=100000/html=false" floor-bundles/s)") bundles/s | $(fmtn "$aud_f" 2) | ≥ 0.80 | $(atleast "$aud_f" 0.8) | $(load audit) |"
	echo "| 4. Audit of 100,000 bundles with the HTML report | $(fmtn "$(med audit "$A/bundles=100000/html=true" bundles/s)") bundles/s | $(fmtn "$(med audit "$A/bundles=100000/html=true" floor-bundles/s)") bundles/s | $(fmtn "$aud_t" 2) | ≥ 0.80 | $(atleast "$aud_t" 0.8) | $(load audit) |"
	echo "| 4. Audit memory: peak live heap with HTML, 100,000 against 10,000 bundles | $(fmtn "$aheap100" 1) MiB | $(fmtn "$aheap10" 1) MiB | $(ratio "$aheap100" "$aheap10") | constant (≤ 1.5) | $(atmost "$(ratio "$aheap100" "$aheap10")" 1.5) | $(load audit) |"
	echo
	echo "## Other figures"
	echo
	echo "| benchmark | figure | peer | ratio | note |"
	echo "| --- | --- | --- | --- | --- |"
	echo "| Replay of 100,000 bundles, 1 worker on 1 core | $(fmtn "$rep1_rate") bundles/s | floor $(fmtn "$floor_rate") bundles/s | $(ratio "$rep1_rate" "$floor_rate") | single-threaded against single-threaded |"
	echo "| Replay of 100,000 bundles, 2 workers | $(fmtn "$rep_rate") bundles/s | floor with the approvals' custodian signatures $(fmtn "$floorA_rate") bundles/s | $(ratio "$rep_rate" "$floorA_rate") | the signatures any verifier must check |"
	echo "| Replay CPU per bundle, 2 workers | $(fmtn "$(med replay "$R/bundles=100000/workers=2" cpu-µs/bundle)") µs | floor $(fmtn "$(med replay "$F/bundles=100000" cpu-µs/bundle)") µs, with approvals $(fmtn "$(med replay "$F/bundles=100000/with-approvals" cpu-µs/bundle)") µs | $(ratio "$(med replay "$R/bundles=100000/workers=2" cpu-µs/bundle)" "$(med replay "$F/bundles=100000/with-approvals" cpu-µs/bundle)") | against the floor with approvals |"
	echo "| Audit: chain.Replay alone on the audit's medium, 100,000 bundles | $(fmtn "$(med audit BenchmarkAuditReplay/bundles=100000 bundles/s)") bundles/s | floor $(fmtn "$(med audit BenchmarkAuditReplay/bundles=100000 floor-bundles/s)") bundles/s | $(fmtn "$(med audit BenchmarkAuditReplay/bundles=100000 x-floor)" 2) | what the audit adds is the difference to target 4 |"
	echo "| Station state for a command, 3,000 bundles, one package written since: ReplayState | $(fmtn "$(med state BenchmarkReplayState/ReplayState ns/op)") ns | Replay (everything) $(fmtn "$(med state BenchmarkReplayState/Replay ns/op)") ns | $(ratio "$(med state BenchmarkReplayState/ReplayState ns/op)" "$(med state BenchmarkReplayState/Replay ns/op)") | package resumes from the ledger's checkpoint |"
	echo "| Station state for a command that opens the medium: Identity (the stick is this ceremony's newest), then ReplayState | $(fmtn "$(med state BenchmarkReplayState/Open ns/op)") ns | Replay (everything) $(fmtn "$(med state BenchmarkReplayState/Replay ns/op)") ns | $(ratio "$(med state BenchmarkReplayState/Open ns/op)" "$(med state BenchmarkReplayState/Replay ns/op)") | what every command that opens a stick pays |"
	echo "| Online upload, disk: one process per key | $(fmtn "$up_disk_p" 3) s | concurrent $(fmtn "$up_disk_c" 3) s | $(ratio "$up_disk_p" "$up_disk_c")× | as people script az keyvault key import |"
	echo "| Online upload, tmpfs: one process per key | $(fmtn "$up_tmp_p" 3) s | concurrent $(fmtn "$up_tmp_c" 3) s | $(ratio "$up_tmp_p" "$up_tmp_c")× | |"
	echo "| HSM wrap of an RSA-3072 target for an RSA-3072 KEK, CPU | $(fmtn "$(med hsm BenchmarkWrapRSA3072Paired pkg-cpu-ns)") ns | direct $(fmtn "$(med hsm BenchmarkWrapRSA3072Paired direct-cpu-ns)") ns | +$(fmtn "$(med hsm BenchmarkWrapRSA3072Paired overhead-%-cpu-ns)" 1) % | hsm.Wrap against the same PKCS#11 calls |"
	echo "| HSM wrap, wall | $(fmtn "$(med hsm BenchmarkWrapRSA3072Paired pkg-wall-ns)") ns | direct $(fmtn "$(med hsm BenchmarkWrapRSA3072Paired direct-wall-ns)") ns | +$(fmtn "$(med hsm BenchmarkWrapRSA3072Paired overhead-%-wall-ns)" 1) % | |"
	echo "| HSM FindTarget of an RSA-3072 key | $(fmtn "$(med hsm BenchmarkFindTarget ns/op)") ns | | | one search, then the key's attributes |"
	echo "| .byok Parse, canonical fast path | $(fmtn "$(med codec BenchmarkParse/canonical ns/op)") ns | ParseLenient $(fmtn "$(med codec BenchmarkParse/lenient ns/op)") ns | $(ratio "$(med codec BenchmarkParse/canonical ns/op)" "$(med codec BenchmarkParse/lenient ns/op)") | |"
	echo "| Key package decode and validate (RSA-3072), canonical reader | $(fmtn "$(med codec BenchmarkDecode/key_package ns/op)") ns | encoding/json $(fmtn "$(med codec BenchmarkDecode/key_package/general ns/op)") ns | $(ratio "$(med codec BenchmarkDecode/key_package ns/op)" "$(med codec BenchmarkDecode/key_package/general ns/op)") | |"
	echo "| Medium: list and read a 1,000-bundle chain | $(fmtn "$(med codec BenchmarkRead ns/bundle)") ns per bundle | | | |"
	echo "| RSA-AES key wrap (RSA-3072 KEK), software | $(fmtn "$(med codec BenchmarkWrapRSAAES3072 ns/op)") ns | unwrap $(fmtn "$(med codec BenchmarkUnwrapRSAAES3072 ns/op)") ns | | keywrap, the emulator's and OpenSSL's side |"
	echo "| RFC 5649 unwrap | $(fmtn "$(med codec BenchmarkUnwrapPad ns/op)") ns | | | |"
	echo "| Key Vault emulator: BYOK import with the bbolt state file | $(fmtn "$(med kvemu BenchmarkImportKey/state=true ns/op)") ns | in memory $(fmtn "$(med kvemu BenchmarkImportKey/state=false ns/op)") ns | $(ratio "$(med kvemu BenchmarkImportKey/state=true ns/op)" "$(med kvemu BenchmarkImportKey/state=false ns/op)") | azkeys over TLS, parallel |"
	echo "| Key Vault emulator: GetKey | $(fmtn "$(med kvemu BenchmarkGetKey ns/op)") ns | | | |"
	echo
	echo "## How to read it"
	echo
	echo "- Targets 1 and 4 set a replay on all cores (2 here) against the floor run single-threaded on"
	echo "  the same bundles held in memory. Both run in the same process, one after the other; load from"
	echo "  other processes lowers the replay's share of two cores more than the floor's one, so the load"
	echo "  column matters. Every custodian approval is a second ECDSA verification the floor does not do"
	echo "  (the floor with approvals shows that part)."
	echo "- Target 2: \`keys=1\` packages one key per run of the command; \`keys=8\` packages eight keys in"
	echo "  one run (\`package --key k1,...,k8\`), whose bundles share one journal cycle. b.N counts keys; a"
	echo "  batch's time is divided by eight and set against eight rounds of the direct calls divided by"
	echo "  eight. The direct side makes only the HSM calls (find, attributes, KEK import, ephemeral AES"
	echo "  key, two wraps, two destroys, one signature); the tool also builds and validates the .byok and"
	echo "  manifest, verifies the HSM's signature before anything is written, compresses and seals the"
	echo "  bundle, records it in the ledger, writes it and its plain .byok copy to the medium (each file"
	echo "  synced, then its folder) and reads them back. 5 % of SoftHSM's ~5 ms per key is ~250 µs: less"
	echo "  than the signature check, the compression and the two synced medium writes alone (on disk each"
	echo "  fsync costs about a millisecond of wall time and some CPU in the kernel, on tmpfs almost"
	echo "  nothing), so the target cannot be met by a tool that keeps those; the figures say by how much"
	echo "  it is missed."
	echo "- Target 3 runs each mode three times, each time on a fresh state folder and medium, with 50 ms"
	echo "  added to every request by the emulator; the sequential mode is the same binary with"
	echo "  \`--concurrency 1\`."
	echo
	echo "## Details"
	echo
	echo "### Replay and floor (transfer-format/chain)"
	section replay
	echo
	echo "### Audit and floor (shared/audit)"
	section audit
	echo
	echo "### Station state: ReplayState against Replay (shared/station)"
	section state
	echo
	echo "### Codecs, medium and key wrap (transfer-format)"
	section codec
	echo
	echo "### HSM (offline/internal/hsm)"
	section hsm
	echo
	echo "### Offline package, disk (offline/internal/cli)"
	section package-disk
	echo
	echo "### Offline package, tmpfs"
	section package-tmpfs
	echo
	echo "### Key Vault emulator (integration/kvemu)"
	section kvemu
	echo
	echo "### Online upload (integration)"
	section upload
	echo
	# Every benchmark of the project must be in a log above.
	missing=()
	while IFS= read -r b; do
		if ! cat "$logs"/*.log | grep -q "^$b[/ -]"; then
			missing+=("$b")
		fi
	done < <(grep -rhoE '^func Benchmark[A-Za-z0-9_]*' --include='*_test.go' transfer-format shared offline online integration | sed 's/^func //' | sort -u)
	if [ ${#missing[@]} -eq 0 ]; then
		echo "Every \`func Benchmark\` of the project ran."
	else
		echo "Not run: ${missing[*]}."
	fi
} >"$out"

echo "bench: wrote $out" >&2
