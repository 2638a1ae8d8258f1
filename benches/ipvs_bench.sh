#!/usr/bin/env bash
# benches/ipvs_bench.sh — program 1,000 and 10,000 IPVS destinations with lvsup and with
# `ipvsadm -R` (same rules), report both times and the ratio.
#
#   bash benches/ipvs_bench.sh            # builds, then runs here if this kernel has ip_vs,
#                                         # else inside the lab VM (tests/lab/in-vm)
#   IPVS_BENCH_SIZES="100x10 100x100 10x1000" bash benches/ipvs_bench.sh
#
# Under the lab VM (TCG software emulation) absolute times are inflated; the ratio is
# the interesting number. Both runs happen in a private network namespace. The fair
# figures: both tools as fresh processes (IPVS_BENCH_REPS runs each, alternating),
# JSON lines in BENCH_OUT (default: a new /tmp/lvsup-ipvs-bench.*/results.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${IPVS_BENCH_SIZES:-"100x10 100x100"}
REPS=${IPVS_BENCH_REPS:-5}
[ "${BENCH_NO_BUILD:-0}" = 1 ] || cargo build --release --example ipvs_bench
BIN=target/release/examples/ipvs_bench
# Raw results (one JSON line per run) go to OUT; its directory must be writable from the VM.
OUT=${BENCH_OUT:-$(mktemp -d /tmp/lvsup-ipvs-bench.XXXXXX)/results.jsonl}
script="export IPVS_BENCH_REPS=$REPS; "
for s in $SIZES; do
    script+="$BIN ${s%x*} ${s#*x} | tee -a $OUT.all && "
done
script+="true"
if [ -e /proc/net/ip_vs ] || modprobe -q ip_vs 2>/dev/null; then
    sh -c "$script"
else
    LAB=${LVSUP_IN_VM:-tests/lab/in-vm}
    [ -x "$LAB" ] || { echo "ipvs_bench: no ip_vs here and no $LAB" >&2; exit 1; }
    LVSUP_VM_RWDIRS="${LVSUP_VM_RWDIRS:+$LVSUP_VM_RWDIRS:}$(dirname "$OUT")" "$LAB" sh -c "$script"
fi
grep '^{' "$OUT.all" > "$OUT"
echo "ipvs_bench: raw results in $OUT (tables: tools/bench-report)" >&2
