#!/usr/bin/env bash
# benches/check_cost.sh — the director daemon's user-space instructions (callgrind's Ir),
# natively, no VM: per TCP health check at scale, and per second idle as VRRP master.
# Deterministic enough to compare two builds of lvsup (unlike CPU % under TCG, which the
# VM benches report), and it names where the instructions go.
#
#   sudo bash benches/check_cost.sh                    # target/release/lvsup, built with symbols
#   BIN=/path/to/lvsup BENCH_LABEL=before sudo -E bash benches/check_cost.sh
#   BENCH_REPS=3                                       # repetitions (default 1)
#
# Needs valgrind. The binary is built with line tables and without stripping
# (CARGO_PROFILE_RELEASE_DEBUG/STRIP) in target/check-cost unless BIN is given. Two
# network namespaces and a veth; the daemon runs `--no-ipvs` (this kernel may lack ip_vs:
# IPVS programming is not counted), as VRRP master alone on the segment.
#   checks: SERVICES (default 20) x RS (default 10) TCP checks every 1 s against
#           examples/tcp_sink; after 15 s of settling, WINDOW s (default 20) measured:
#           Ir / checks the sink saw = instructions per check.
#           Clock reads per check: calls of glibc's clock_gettime in the same window ÷
#           the checks (tools/callgrind-calls; CLOCK_FN, a regex, names the function).
#           Wakes of the runtime per check: calls of epoll_wait ÷ the checks.
#   idle:   one service, check = "none", advert 1 s; Ir over WINDOW s / WINDOW.
# keepalived is not measured here: its checker needs ip_vs (benches/scale_bench.sh
# compares the two in the VM).
# Output: one JSON line per figure on stdout and in BENCH_OUT (default a new
# /tmp/lvsup-check-cost.*/results.jsonl); callgrind's files stay beside it for
# callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "check_cost: run as root" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "check_cost: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
SERVICES=${SERVICES:-20} RS=${RS:-10} WINDOW=${WINDOW:-20} REPS=${BENCH_REPS:-1}
CLOCK_FN=${CLOCK_FN:-'^(__)?clock_gettime'}
T=$PWD/target/check-cost
if [ -z "${BIN:-}" ]; then
    CARGO_TARGET_DIR=$T CARGO_PROFILE_RELEASE_DEBUG=line-tables-only CARGO_PROFILE_RELEASE_STRIP=false \
        cargo build --release --locked --bin lvsup --example tcp_sink >&2
    BIN=$T/release/lvsup
fi
SINK=${SINK:-$T/release/examples/tcp_sink}
[ -x "$SINK" ] || CARGO_TARGET_DIR=$T cargo build --release --locked --example tcp_sink >&2
W=$(mktemp -d /tmp/lvsup-check-cost.XXXXXX)
OUT=${BENCH_OUT:-$W/results.jsonl}
ND=lvsup-cc-d NR=lvsup-cc-r
cleanup() { pkill -f "callgrind.*--socket $W/" 2>/dev/null || true; [ -n "${SINK_PID:-}" ] && kill "$SINK_PID" 2>/dev/null; ip netns del $ND 2>/dev/null || true; ip netns del $NR 2>/dev/null || true; }
trap cleanup EXIT
ip netns del $ND 2>/dev/null || true; ip netns del $NR 2>/dev/null || true
ip netns add $ND; ip netns add $NR
ip link add eth0 netns $ND type veth peer name eth0 netns $NR
ip -n $ND link set lo up; ip -n $NR link set lo up
ip -n $ND addr add 10.79.0.1/16 dev eth0
for j in $(seq 1 "$RS"); do ip -n $NR addr add "10.79.1.$j/16" dev eth0; done
ip -n $ND link set eth0 up; ip -n $NR link set eth0 up
ip netns exec $ND sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65000"
ip netns exec $NR "$SINK" 10001 $((10000 + SERVICES)) "$W/sink.json" 2>>"$W/sink.log" &
SINK_PID=$!
LVSUP=$BIN
# shellcheck source=benches/lib.sh
. benches/lib.sh
cluster() { # SERVICES CHECK
    printf '[cluster]\nname = "cost"\nvip = "10.79.0.100"\nmode = "dr"\nvrid = 79\ninterface = "eth0"\n\n'
    for i in $(seq 1 "$1"); do
        printf '[[services]]\nport = %d\nscheduler = "rr"\n[services.health]\ncheck = "%s"\n' $((10000 + i)) "$2"
        [ "$2" = tcp ] && printf 'interval = "1s"\ntimeout = "500ms"\nfall = 3\nrise = 2\n'
        printf '\n'
    done
    printf '[[directors]]\nname = "d1"\naddress = "10.79.0.1/16"\npriority = 150\n\n'
    for j in $(seq 1 "$RS"); do printf '[[real_servers]]\nname = "rs%d"\naddress = "10.79.1.%d/16"\n\n' "$j" "$j"; done
}
measure() { # NAME CONFIG: prints the window's Ir
    local dir=$W/$1
    mkdir -p "$dir"
    (cd "$dir" && ip netns exec $ND valgrind --tool=callgrind "$BIN" director run --config "$2" --no-ipvs --socket "$W/$1.sock" >"$dir/log" 2>&1 &)
    sleep 15
    local pid
    pid=$(pgrep -f "callgrind.*--socket $W/$1.sock" | head -1)
    callgrind_control -z "$pid" >/dev/null
    kill -USR1 "$SINK_PID"
    sleep "$WINDOW"
    callgrind_control -d "$pid" >/dev/null
    kill -USR2 "$SINK_PID"
    sleep 1
    kill "$pid" 2>/dev/null || true
    sleep 2
    awk '/^summary:/ { print $2 }' "$dir/callgrind.out.$pid.1"
}
commit=$(bench_commit)
# commit: this checkout's; binary: what was measured (BIN may be another commit's build:
# BENCH_LABEL then says which).
meta="\"label\": \"${BENCH_LABEL:-$commit}\", \"commit\": \"$commit\", \"binary\": \"$BIN\", \"machine\": \"$(nproc) CPUs, kernel $(uname -r)\", \"load\": \"$(cut -d' ' -f1-3 /proc/loadavg)\""
cluster "$SERVICES" tcp >"$W/checks.toml"
render_director_toml "$W/checks.toml" d1 "$W/checks-d1.toml"
cluster 1 none >"$W/idle.toml"
render_director_toml "$W/idle.toml" d1 "$W/idle-d1.toml"
for rep in $(seq 1 "$REPS"); do
    ir=$(measure "checks$rep" "$W/checks-d1.toml")
    checks=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["checks"])' "$W/sink.json")
    echo "{\"bench\": \"check_cost\", \"figure\": \"instructions_per_check\", \"rep\": $rep, \"value\": $((ir / checks)), \"ir\": $ir, \"checks\": $checks, \"window_s\": $WINDOW, \"services\": $SERVICES, \"rs\": $RS, $meta}" | tee -a "$OUT"
    # clock reads: calls of glibc's clock_gettime in the same window (under valgrind there
    # is no vDSO: each is a system call, as on a machine whose clock source has no vDSO path)
    clocks=$(tools/callgrind-calls "$(ls "$W/checks$rep"/callgrind.out.*.1)" "$CLOCK_FN" | awk 'NR == 1')
    echo "{\"bench\": \"check_cost\", \"figure\": \"clock_reads_per_check\", \"rep\": $rep, \"value\": $(awk -v a="$clocks" -v b="$checks" 'BEGIN { printf "%.2f", a / b }'), \"calls\": $clocks, \"checks\": $checks, \"window_s\": $WINDOW, \"services\": $SERVICES, \"rs\": $RS, $meta}" | tee -a "$OUT"
    # wakes of the runtime: calls of epoll_wait in the same window (each a park of tokio's
    # driver: four clock reads and a turn of the timer wheel with it)
    parks=$(tools/callgrind-calls "$(ls "$W/checks$rep"/callgrind.out.*.1)" '^epoll_wait' | awk 'NR == 1')
    echo "{\"bench\": \"check_cost\", \"figure\": \"parks_per_check\", \"rep\": $rep, \"value\": $(awk -v a="$parks" -v b="$checks" 'BEGIN { printf "%.2f", a / b }'), \"calls\": $parks, \"checks\": $checks, \"window_s\": $WINDOW, \"services\": $SERVICES, \"rs\": $RS, $meta}" | tee -a "$OUT"
    ir=$(measure "idle$rep" "$W/idle-d1.toml")
    echo "{\"bench\": \"check_cost\", \"figure\": \"idle_instructions_per_s\", \"rep\": $rep, \"value\": $((ir / WINDOW)), \"ir\": $ir, \"window_s\": $WINDOW, $meta}" | tee -a "$OUT"
done
echo "check_cost: raw results $OUT; callgrind files under $W" >&2
