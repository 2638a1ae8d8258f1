#!/usr/bin/env bash
# benches/failover_bench.sh — lvsup's director daemon against keepalived (Debian's
# package, VRRPv3) in the same DR lab and the same run: the client-visible gap for
# director failover, real-server death → removal time, daemon RSS and idle CPU.
#
#   sudo bash benches/failover_bench.sh [--quick]
#
# Builds target/release/lvsup, then runs here if this kernel has ip_vs, else
# re-executes itself inside the lab VM (tests/lab/in-vm, LVSUP_LAB_IMAGE=1;
# LVSUP_VM_TIMEOUT defaults to 2400 s here). Needs keepalived and python3 on this
# machine (the VM sees this machine's /usr): both daemons run from the lab's root
# namespace inside each director's network namespace (`ip netns exec`), so they
# see the same interfaces, VIP and IPVS table the director's container sees, and
# are started, killed and measured the same way.
#
# Lab: 2 directors (d1 priority 150, d2 100, preempt), 2 real servers with the
# lab's demo web server on :80, a client; VIP:80 rr, TCP check interval 1 s,
# timeout 500 ms, fall 3, rise BENCH_RISE (default 1: keepalived has no rise, one passed
# check brings a server back; runs before 2026-12-05 had lvsup at rise 2, which added an
# interval to its "back") (keepalived: delay_loop 1, connect_timeout 0.5, retry 2,
# delay_before_retry 1 — retry counts the checks after the first failure).
# Only one daemon set runs at a time; between sets the VIP is removed and the
# IPVS tables flushed.
#
# For each daemon × advert interval (1 s, 100 ms):
#   rs_removal  stop rs1's web server (systemctl stop in rs1) → rs1 gone or at
#               weight 0 in d1's /proc/net/ip_vs (polled every 50 ms); limit
#               interval × fall + interval = 4 s. Then started again → back.
#   kill9       kill -9 of d1's daemon (keepalived: all its processes, stopped first).
#               The VIP and the IPVS table stay in d1's kernel, as after a real
#               daemon crash.
#   crash       d1's eth0 down, then kill -9 of its daemon right after (the
#               director host dies): the gap is the VRRP takeover time.
#   stop        SIGTERM to d1's daemon's main process (keepalived's parent passes
#               it on to its children) — the planned switchover.
#   After each event d1's daemon is started again (link up first for crash) and
#   the failback gap is measured too.
#   Gap: tests/lab/probe.py from the client, one HTTP GET to VIP:80 every 10 ms
#   (200 ms timeout): failed probes and the longest run of failures.
#   resources   Pss and USS summed over every process of the daemon (smem-style),
#               VmRSS summed (overcounts shared pages) and CPU (utime +
#               stime over an idle window, % of one core) on master and backup.
#
# Output: progress on stderr; one JSON line per result and a summary table with
# ratios lvsup/keepalived on stdout. --quick: 1 repetition per case, 10 s idle
# window (default: BENCH_REPS=3, BENCH_IDLE=60: over shorter windows the two
# daemons' idle CPU differs by a few clock ticks; measured once per repetition).
# BENCH_CASES="resources rs_removal" runs only those cases. BENCH_DAEMONS="keepalived lvsup"
# changes the order (default "lvsup keepalived"). BENCH_SYNC=1: both run the
# IPVS connection-sync daemon. Daemon logs, configs and
# results.jsonl are copied to BENCH_LOGDIR (default: a new /tmp/lvsup-failover-bench.*).
# Under the lab VM (TCG software emulation, 2 vCPUs) absolute figures are
# inflated; both daemons run in the same VM boot, one after the other.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${BENCH_REPS:-3}
# BENCH_SYNC=1: both daemons run the kernel's connection-sync daemon (lvsup
# `sync_daemon = true`, keepalived `lvs_sync_daemon eth0 VI_<vrid>`).
SYNC=false
[ "${BENCH_SYNC:-0}" = 1 ] && SYNC=true
IDLE=${BENCH_IDLE:-60}
RISE=${BENCH_RISE:-1}
for a in "$@"; do
    case $a in
        --quick) REPS=1 IDLE=10 ;;
        *) echo "usage: $0 [--quick]" >&2; exit 64 ;;
    esac
done
LVSUP=$PWD/target/release/lvsup

if [ "${LVSUP_FAILOVER_BENCH_INNER:-0}" != 1 ]; then
    [ "$(id -u)" = 0 ] || { echo "failover_bench: run as root" >&2; exit 1; }
    command -v keepalived >/dev/null || { echo "failover_bench: keepalived not installed (apt-get install keepalived)" >&2; exit 1; }
    if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then cargo build --release --bin lvsup >&2; fi
    # daemon logs and results.jsonl are copied here at the end (the VM's /tmp is its own)
    BENCH_LOGDIR=${BENCH_LOGDIR:-$(mktemp -d /tmp/lvsup-failover-bench.XXXXXX)}
    # the commit measured, read here: inside the VM the checkout is another user's (9p)
    # shellcheck source=benches/lib.sh
    . benches/lib.sh
    BENCH_COMMIT=$(bench_commit)
    export LVSUP_FAILOVER_BENCH_INNER=1 BENCH_REPS=$REPS BENCH_IDLE=$IDLE BENCH_LOGDIR BENCH_COMMIT BENCH_RISE=$RISE
    if [ -e /proc/net/ip_vs ] || modprobe -q ip_vs 2>/dev/null; then
        exec bash "$0"
    fi
    export LVSUP_LAB_IMAGE=1 LVSUP_VM_TIMEOUT=${LVSUP_VM_TIMEOUT:-2400}
    export LVSUP_VM_RWDIRS="${LVSUP_VM_RWDIRS:+$LVSUP_VM_RWDIRS:}$BENCH_LOGDIR"
    LVSUP_VM_ENV="${LVSUP_VM_ENV:-} BENCH_REPS BENCH_IDLE BENCH_LOGDIR BENCH_DAEMONS BENCH_SYNC BENCH_CASES BENCH_COMMIT BENCH_RISE" exec tests/lab/in-vm bash "$0"
fi

C=kabench
VIP=10.78.0.100
D1=10.78.0.2 D2=10.78.0.3 RS1=10.78.0.11 RS2=10.78.0.12
VRID=78
KA_SYNC=""
[ "$SYNC" = true ] && KA_SYNC="  lvs_sync_daemon eth0 VI_$VRID"
NS_D1=lvsup-$C-d1 NS_D2=lvsup-$C-d2 NS_CL=lvsup-$C-client
W=$(mktemp -d /tmp/lvsup-fobench.XXXXXX)
RESULTS=$W/results.jsonl
: >"$RESULTS"
declare -A PIDS # director -> space-separated pids of the running daemon

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
now() { date +%s.%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%d", (b - a) * 1000 }'; }
# every result also says the rise, commit, machine and load (the load average when it was
# written: other work on the machine shows there)
emit() {
    local line
    while IFS= read -r line; do
        echo "${line%\}}, \"rise\": $RISE, \"commit\": \"${BENCH_COMMIT:-unknown}\", \"machine\": \"$(nproc) CPUs, kernel $(uname -r)\", \"load\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
    done <<<"$1" | tee -a "$RESULTS"
}
ns_of() { case $1 in d1) echo "$NS_D1" ;; d2) echo "$NS_D2" ;; esac; }

cluster_toml() { # ADVERT
    cat <<EOF
[cluster]
name = "$C"
vip = "$VIP"
mode = "dr"
vrid = $VRID
advert_interval = "$1"
interface = "eth0"
sync_daemon = $SYNC

[[services]]
port = 80
scheduler = "rr"

[services.health]
check = "tcp"
interval = "1s"
timeout = "500ms"
fall = 3
rise = $RISE

[[directors]]
name = "d1"
address = "$D1/24"
priority = 150

[[directors]]
name = "d2"
address = "$D2/24"
priority = 100

[[real_servers]]
name = "rs1"
address = "$RS1/24"

[[real_servers]]
name = "rs2"
address = "$RS2/24"
EOF
}

# render_director_toml CLUSTER_TOML DIRECTOR OUT
. benches/lib.sh

keepalived_conf() { # DIRECTOR PRIORITY ADVERT_SECONDS
    cat <<EOF
global_defs {
  vrrp_version 3
  router_id $1
  script_user root
$KA_SYNC
}
vrrp_instance VI_$VRID {
  state BACKUP
  interface eth0
  virtual_router_id $VRID
  priority $2
  advert_int $3
  virtual_ipaddress {
    $VIP/32 dev eth0
  }
}
virtual_server $VIP 80 {
  delay_loop 1
  lb_algo rr
  lb_kind DR
  protocol TCP
  real_server $RS1 80 {
    weight 1
    TCP_CHECK {
      connect_timeout 0.5
      retry 2
      delay_before_retry 1
    }
  }
  real_server $RS2 80 {
    weight 1
    TCP_CHECK {
      connect_timeout 0.5
      retry 2
      delay_before_retry 1
    }
  }
}
EOF
}

# ---------------------------------------------------------------- daemons ---
start_daemon() { # DAEMON DIRECTOR
    local ns pid
    ns=$(ns_of "$2")
    if [ "$1" = lvsup ]; then
        ip netns exec "$ns" "$LVSUP" director run --config "$W/$2.toml" --socket "$W/$2.sock" \
            >>"$W/$2-lvsup.log" 2>&1 &
        pid=$!
        PIDS[$2]=$pid
    else
        rm -f "$W/$2"-ka*.pid
        ip netns exec "$ns" keepalived -n -l -D -f "$W/$2-ka.conf" -p "$W/$2-ka.pid" \
            -r "$W/$2-ka-vrrp.pid" -c "$W/$2-ka-check.pid" >>"$W/$2-keepalived.log" 2>&1 &
        pid=$!
        # the parent forks the VRRP and checker children
        for _ in $(seq 100); do
            [ -s "$W/$2-ka-vrrp.pid" ] && [ -s "$W/$2-ka-check.pid" ] && break
            sleep 0.1
        done
        PIDS[$2]="$pid $(cat "$W/$2-ka-vrrp.pid" 2>/dev/null) $(cat "$W/$2-ka-check.pid" 2>/dev/null)"
    fi
}

signal_daemon() { # SIGNAL DIRECTOR
    if [ "$1" = TERM ]; then
        # the main process (keepalived's parent stops its children itself: SIGTERM to
        # the children as well races with the parent respawning them)
        kill -TERM "${PIDS[$2]%% *}" 2>/dev/null || true
    else
        # every process of the daemon at once: a crash. SIGSTOP first: kill(2) reaches
        # the processes one after the other, and keepalived's children shut down
        # gracefully when their parent dies — seen in a VM run: the checker child
        # removed both real servers from IPVS before its own SIGKILL arrived, a 3.4 s
        # gap that a real crash would not cause.
        # shellcheck disable=SC2086
        kill -STOP ${PIDS[$2]} 2>/dev/null || true
        # shellcheck disable=SC2086
        kill "-$1" ${PIDS[$2]} 2>/dev/null || true
    fi
}

ours() { # PID: alive and one of the daemons (pid files can outlive their process)
    case $(cat "/proc/$1/comm" 2>/dev/null) in lvsup | keepalived) ;; *) return 1 ;; esac
    [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

wait_daemon_gone() { # DIRECTOR
    local p
    for _ in $(seq 200); do
        local alive=0
        # keepalived children respawned meanwhile wrote their pid files anew
        for p in ${PIDS[$1]} $(cat "$W/$1"-ka-*.pid 2>/dev/null); do ours "$p" && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for p in ${PIDS[$1]} $(cat "$W/$1"-ka-*.pid 2>/dev/null); do
        if ours "$p"; then
            log "warning: $1 pid $p still alive 20 s after the signal; killing"
            kill -9 "$p" 2>/dev/null || true
        fi
        wait "$p" 2>/dev/null || true
    done
    PIDS[$1]=""
}

stop_all() { # stop both daemons, remove the VIP, flush IPVS
    local d
    for d in d1 d2; do
        if [ -n "${PIDS[$d]:-}" ]; then signal_daemon TERM "$d"; wait_daemon_gone "$d"; fi
    done
    for d in d1 d2; do
        ip netns exec "$(ns_of $d)" ipvsadm -C 2>/dev/null || true
        ip -n "$(ns_of $d)" link set eth0 up 2>/dev/null || true
        while ip -n "$(ns_of $d)" -4 -o addr show dev eth0 | grep -q " $VIP/"; do
            ip -n "$(ns_of $d)" addr del "$VIP/32" dev eth0 2>/dev/null ||
                ip -n "$(ns_of $d)" -4 -o addr show dev eth0 | awk -v v="$VIP" '$4 ~ "^"v"/" {print $4}' |
                xargs -r -I{} ip -n "$(ns_of $d)" addr del {} dev eth0
        done
    done
}

has_vip() { ip -n "$(ns_of "$1")" -4 -o addr show dev eth0 | grep -q " $VIP/"; }

# ipvs.py: read a namespace's /proc/net/ip_vs (no process per poll)
cat >"$W/ipvs.py" <<'PY'
import sys, time, socket, struct
mode, timeout = sys.argv[1], float(sys.argv[2])
want = sys.argv[3:]  # ADDR:PORT of real servers
def hexaddr(s):
    a, p = s.split(":")
    return "%08X:%04X" % (struct.unpack("!I", socket.inet_aton(a))[0], int(p))
want = [hexaddr(w) for w in want]
def weights():
    w = {}
    with open("/proc/net/ip_vs") as f:
        for line in f:
            parts = line.split()
            if parts and parts[0] == "->" and len(parts) >= 4 and parts[1] != "RemoteAddress:Port":
                w[parts[1]] = int(parts[3])
    return w
end = time.time() + timeout
while time.time() < end:
    w = weights()
    up = [x for x in want if w.get(x, 0) > 0]
    if (mode == "up" and len(up) == len(want)) or (mode == "down" and not up):
        print("%.3f" % time.time())
        sys.exit(0)
    time.sleep(0.05)
sys.exit(1)
PY

wait_ready() { # everything back: d1 master alone, both tables complete, VIP answers
    local t0=$SECONDS
    while :; do
        if has_vip d1 && ! has_vip d2 &&
            ip netns exec "$NS_D1" python3 "$W/ipvs.py" up 0.1 "$RS1:80" "$RS2:80" >/dev/null &&
            ip netns exec "$NS_D2" python3 "$W/ipvs.py" up 0.1 "$RS1:80" "$RS2:80" >/dev/null &&
            ip netns exec "$NS_CL" curl -s -m 1 -o /dev/null "http://$VIP/"; then
            return 0
        fi
        if [ $((SECONDS - t0)) -gt 90 ]; then
            log "not ready after 90 s: d1 vip=$(has_vip d1 && echo y || echo n) d2 vip=$(has_vip d2 && echo y || echo n)"
            ip netns exec "$NS_D1" ipvsadm -Ln >&2 || true
            return 1
        fi
        sleep 0.3
    done
}

# ----------------------------------------------------------------- probes ---
probe_around() { # WINDOW_S OUT CMD... — probe (JSON into OUT), run CMD ~1 s after it started
    local win=$1 out=$2
    shift 2
    rm -f "$W/probing"
    # the marker is written once Python runs: under emulation its start-up takes a while
    ip netns exec "$NS_CL" python3 -c 'import sys, runpy
open(sys.argv[1], "w").close()
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")' "$W/probing" tests/lab/probe.py "http://$VIP/" "$win" 0.01 0.2 >"$out" &
    local pp=$!
    while [ ! -e "$W/probing" ]; do sleep 0.05; done
    sleep 1
    "$@" # in this shell, not a subshell: it may start a daemon (PIDS)
    wait "$pp"
}

jget() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

failover_case() { # DAEMON ADVERT_MS CASE REP
    local d=$1 adv=$2 case=$3 rep=$4 win fb
    if [ "$adv" -ge 1000 ]; then win=9 fb=9; else win=5 fb=7; fi
    case $case in
        kill9) ev() { signal_daemon KILL d1; } ;;
        crash) ev() { ip -n "$NS_D1" link set eth0 down; signal_daemon KILL d1; } ;;
        stop) ev() { signal_daemon TERM d1; } ;;
    esac
    local takeover
    probe_around "$win" "$W/event.json" ev
    wait_daemon_gone d1
    takeover=$(has_vip d2 && echo true || echo false)
    restore() { ip -n "$NS_D1" link set eth0 up; start_daemon "$d" d1; }
    probe_around "$fb" "$W/failback.json" restore
    emit "$(python3 -c '
import json, sys
o, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
print(json.dumps({"bench": "failover", "daemon": sys.argv[3], "advert_ms": int(sys.argv[4]),
    "case": sys.argv[5], "rep": int(sys.argv[6]), "failed": o["failed"], "probes": o["probes"],
    "gap_ms": o["longest_gap_ms"], "d2_took_over": sys.argv[7] == "true",
    "failback_failed": b["failed"], "failback_gap_ms": b["longest_gap_ms"],
    "probe_every_ms": round(float(sys.argv[8]) * 1000 / max(o["probes"], 1)),
    "failback_probe_every_ms": round(float(sys.argv[9]) * 1000 / max(b["probes"], 1)),
    "gaps": [e for e in o["events"] if "gap_ms" in e],
    "failback_gaps": [e for e in b["events"] if "gap_ms" in e]}))
' "$W/event.json" "$W/failback.json" "$d" "$adv" "$case" "$rep" "$takeover" "$win" "$fb")"
    wait_ready || { log "cluster not ready after $case/$rep"; return 1; }
}

rs_removal() { # DAEMON ADVERT_MS REP
    local d=$1 adv=$2 rep=$3
    ip netns exec "$NS_D1" python3 "$W/ipvs.py" down 30 "$RS1:80" >"$W/down.t" &
    local pp=$!
    sleep 1 # the poller is reading
    local t0
    t0=$("$LVSUP" lab exec -f "$W/c-1s.toml" rs1 -- sh -c 'systemctl stop lvsup-lab-demo@80.service; date +%s.%N')
    local ok=true
    wait "$pp" || ok=false
    local t1 removal=null
    t1=$(cat "$W/down.t")
    [ "$ok" = true ] && removal=$(ms "$t0" "$t1")
    ip netns exec "$NS_D1" python3 "$W/ipvs.py" up 30 "$RS1:80" >"$W/up.t" &
    pp=$!
    sleep 1
    t0=$("$LVSUP" lab exec -f "$W/c-1s.toml" rs1 -- sh -c 'systemctl start lvsup-lab-demo@80.service; date +%s.%N')
    local back=null
    wait "$pp" && back=$(ms "$t0" "$(cat "$W/up.t")")
    emit "{\"bench\": \"failover\", \"daemon\": \"$d\", \"advert_ms\": $adv, \"case\": \"rs_removal\", \"rep\": $rep, \"removal_ms\": $removal, \"limit_ms\": 4000, \"back_ms\": $back}"
    wait_ready
}

cpu_ticks() { # PIDS... — utime + stime
    local p s=0
    for p in "$@"; do
        s=$((s + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
    done
    echo "$s"
}
# sum_kb AWK_PATTERN FILE PIDS...: the kB of the lines of /proc/PID/FILE that
# match AWK_PATTERN, summed over PIDS.
sum_kb() {
    local pat=$1 file=$2 p s=0
    shift 2
    for p in "$@"; do
        s=$((s + $(awk "$pat { n += \$2 } END { print n + 0 }" "/proc/$p/$file")))
    done
    echo "$s"
}
# VmRSS summed counts every shared page once per process (keepalived's three
# processes share most of theirs). Pss (a page shared by N processes counts
# 1/N in each) summed over a daemon's processes counts its pages once, the
# way smem does; USS is its private pages only.
rss_kb() { sum_kb '/^VmRSS:/' status "$@"; }
pss_kb() { sum_kb '/^Pss:/' smaps_rollup "$@"; }
uss_kb() { sum_kb '/^Private_(Clean|Dirty):/' smaps_rollup "$@"; }

# BENCH_CASES="resources rs_removal ...": the cases to run (default: all).
wanted() { case " ${BENCH_CASES:-resources rs_removal kill9 crash stop} " in *" $1 "*) return 0 ;; esac; return 1; }

resources() { # DAEMON ADVERT_MS REP
    local d=$1 adv=$2 rep=$3 hz c1 c2 t1 t2 r1 r2
    hz=$(getconf CLK_TCK)
    # shellcheck disable=SC2086
    {
        t1=$(now); c1=$(cpu_ticks ${PIDS[d1]}); r1=$(cpu_ticks ${PIDS[d2]})
        sleep "$IDLE"
        t2=$(now); c2=$(cpu_ticks ${PIDS[d1]}); r2=$(cpu_ticks ${PIDS[d2]})
        emit "$(python3 -c '
import json, sys
d, adv, hz, dt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[5]) - float(sys.argv[4])
rep = int(sys.argv[18])
for role, c1, c2, rss, n, pss, uss in (
        ("master", sys.argv[6], sys.argv[7], sys.argv[10], sys.argv[12], sys.argv[14], sys.argv[16]),
        ("backup", sys.argv[8], sys.argv[9], sys.argv[11], sys.argv[13], sys.argv[15], sys.argv[17])):
    print(json.dumps({"bench": "failover", "daemon": d, "advert_ms": adv, "case": "resources",
        "rep": rep, "role": role, "processes": int(n), "rss_kb": int(rss), "pss_kb": int(pss),
        "uss_kb": int(uss), "idle_s": round(dt, 1),
        "cpu_pct": round((int(c2) - int(c1)) / hz / dt * 100, 2)}))
' "$d" "$adv" "$hz" "$t1" "$t2" "$c1" "$c2" "$r1" "$r2" "$(rss_kb ${PIDS[d1]})" "$(rss_kb ${PIDS[d2]})" \
            "$(echo ${PIDS[d1]} | wc -w)" "$(echo ${PIDS[d2]} | wc -w)" \
            "$(pss_kb ${PIDS[d1]})" "$(pss_kb ${PIDS[d2]})" "$(uss_kb ${PIDS[d1]})" "$(uss_kb ${PIDS[d2]})" \
            "$rep")"
    }
}

# -------------------------------------------------------------------- run ---
cluster_toml 1s >"$W/c-1s.toml"
cluster_toml 100ms >"$W/c-100ms.toml"
cleanup() {
    local rc=$? d f
    if [ "$rc" != 0 ]; then
        for f in "$W"/*.log; do
            [ -f "$f" ] && { echo "--- $f (last 30 lines)"; tail -n 30 "$f"; } >&2
        done
    fi
    for d in d1 d2; do
        # shellcheck disable=SC2086
        [ -n "${PIDS[$d]:-}" ] && kill -9 ${PIDS[$d]} 2>/dev/null
    done
    "$LVSUP" lab down -f "$W/c-1s.toml" >/dev/null 2>&1 || true
    if [ -n "${BENCH_LOGDIR:-}" ] && [ -d "$BENCH_LOGDIR" ]; then
        cp "$W"/*.log "$W"/*.conf "$W"/d?.toml "$RESULTS" "$BENCH_LOGDIR"/ 2>/dev/null || true
        log "daemon logs and results.jsonl in $BENCH_LOGDIR"
    fi
    if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
log "lab up (2 directors, 2 real servers, client); reps=$REPS idle=${IDLE}s"
"$LVSUP" lab up -f "$W/c-1s.toml" >&2
# real servers: VIP on lo, ARP suppression (what apply's lvsup-realserver unit does)
for r in rs1 rs2; do
    ip netns exec "lvsup-$C-$r" sh -c "ip addr add $VIP/32 dev lo &&
        sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
                   net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.arp_announce=2"
done
echo "keepalived: $(keepalived --version 2>&1 | head -n1); lvsup: $("$LVSUP" --version); kernel $(uname -r); $(nproc) CPUs" >&2

for daemon in ${BENCH_DAEMONS:-lvsup keepalived}; do
    for adv in 1000 100; do
        if [ "$adv" = 1000 ]; then ct="$W/c-1s.toml" ka_adv=1; else ct="$W/c-100ms.toml" ka_adv=0.1; fi
        render_director_toml "$ct" d1 "$W/d1.toml"
        render_director_toml "$ct" d2 "$W/d2.toml"
        keepalived_conf d1 150 "$ka_adv" >"$W/d1-ka.conf"
        keepalived_conf d2 100 "$ka_adv" >"$W/d2-ka.conf"
        log "$daemon, advert ${adv} ms: starting on d2 and d1"
        stop_all
        start_daemon "$daemon" d2
        start_daemon "$daemon" d1
        wait_ready || { log "$daemon/$adv never became ready; logs in $W"; BENCH_KEEP=1; exit 1; }
        sleep 3
        if wanted resources; then
            for rep in $(seq "$REPS"); do
                log "$daemon, advert ${adv} ms: idle CPU and memory over ${IDLE} s, $rep/$REPS"
                resources "$daemon" "$adv" "$rep"
            done
        fi
        if wanted rs_removal; then
            for rep in $(seq "$REPS"); do
                log "$daemon, advert ${adv} ms: real-server removal $rep/$REPS"
                rs_removal "$daemon" "$adv" "$rep"
            done
        fi
        for case in kill9 crash stop; do
            wanted "$case" || continue
            for rep in $(seq "$REPS"); do
                log "$daemon, advert ${adv} ms: $case $rep/$REPS"
                failover_case "$daemon" "$adv" "$case" "$rep"
            done
        done
        stop_all
    done
done

echo
python3 - "$RESULTS" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def sel(d, adv, case, key):
    return [r[key] for r in rows if r["daemon"] == d and r["advert_ms"] == adv and r["case"] == case and r.get(key) is not None]
def fmt(v):
    if not v:
        return "-"
    if len(v) == 1:
        return f"{v[0]:g}"
    return f"{statistics.median(v):g} ({min(v):g}-{max(v):g})"
def ratio(a, b):
    if not a or not b:
        return "-"
    ma, mb = statistics.median(a), statistics.median(b)
    if mb == 0:
        return "both 0" if ma == 0 else "inf"
    return f"{ma / mb:.2f}"
print("median (min-max) over repetitions; ratio = lvsup / keepalived (medians)")
print(f"{'advert':>7} {'measure':<34} {'lvsup':>22} {'keepalived':>22} {'ratio':>7}")
lines = [
    ("kill9", "gap_ms", "kill -9 daemon: longest gap ms"),
    ("kill9", "failed", "kill -9 daemon: failed probes"),
    ("crash", "gap_ms", "host crash: longest gap ms"),
    ("crash", "failed", "host crash: failed probes"),
    ("stop", "gap_ms", "planned stop: longest gap ms"),
    ("stop", "failed", "planned stop: failed probes"),
    ("kill9", "failback_failed", "restart after kill -9: failed"),
    ("crash", "failback_failed", "restart after crash: failed"),
    ("stop", "failback_failed", "restart after stop: failed"),
    ("rs_removal", "removal_ms", "RS death -> removal ms (limit 4000)"),
    ("rs_removal", "back_ms", "RS restart -> back ms"),
]
for adv in (1000, 100):
    for case, key, label in lines:
        a, b = sel("lvsup", adv, case, key), sel("keepalived", adv, case, key)
        print(f"{adv:>5}ms {label:<34} {fmt(a):>22} {fmt(b):>22} {ratio(a, b):>7}")
    for role in ("master", "backup"):
        for key, label in (("pss_kb", f"Pss kB, all processes ({role})"), ("uss_kb", f"USS kB ({role})"),
                           ("rss_kb", f"RSS kB summed, overcounts ({role})"),
                           ("cpu_pct", f"idle CPU % of a core ({role})")):
            a = [r[key] for r in rows if r["daemon"] == "lvsup" and r["advert_ms"] == adv and r["case"] == "resources" and r["role"] == role]
            b = [r[key] for r in rows if r["daemon"] == "keepalived" and r["advert_ms"] == adv and r["case"] == "resources" and r["role"] == role]
            print(f"{adv:>5}ms {label:<34} {fmt(a):>22} {fmt(b):>22} {ratio(a, b):>7}")
PY
