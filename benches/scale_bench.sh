#!/usr/bin/env bash
# benches/scale_bench.sh — one director at scale: 1,000 virtual services × 10 real servers
# (10,000 destinations, each TCP-checked every second), lvsup's director daemon against
# keepalived (Debian's 2.2.7, VRRPv3) on the same configuration, one after the other in the
# same run.
#
#   sudo bash benches/scale_bench.sh
#   SCALE_SERVICES=100 SCALE_RS=10 BENCH_IDLE=30 sudo -E bash benches/scale_bench.sh   # smaller
#   BENCH_REPS=3                     # repetitions (default 1): lvsup, keepalived, lvsup, …
#   SCALE_INTERVAL=10                # the check interval in seconds (default 1). Under the lab
#                                    # VM's emulation (TCG, 2 cores) neither daemon carries
#                                    # 10,000 checks a second; 1,000 × 10 at 10 s keeps the
#                                    # table's size (10,000 destinations, 1,000 services) at the
#                                    # check rate of 100 × 10 at 1 s
#   BENCH_PERF=SECS                  # `perf record -g` of each daemon for its first SECS seconds
#                                    # (perf-DAEMON-repN.data beside BENCH_OUT; for a profile, with
#                                    # LVSUP=an unstripped build), reported with this kernel's
#                                    # symbols in perf-DAEMON-repN.txt and -callers.txt
#   BENCH_PERF_AT=steady             # with BENCH_PERF: the profile over the steady window's
#                                    # first SECS seconds instead of the start's (perf's own
#                                    # sampling then weighs on that window's CPU figures: a
#                                    # profiling run, not one to compare)
#   BENCH_SAMPLE=SECS                # the daemon's state every 100 ms for its first SECS seconds
#                                    # (sample-DAEMON-repN.tsv beside BENCH_OUT: time, state,
#                                    # utime and stime in ticks, wchan of each of its threads, the
#                                    # machine's busy ticks, the process's anonymous resident
#                                    # memory): where a start stalls, when memory grows
#   BENCH_THP=never|madvise|always  # the machine's transparent huge pages mode for the run (put
#                                    # back at the end); every result records the mode in force
#                                    # ("thp"). Debian's kernel has "always": khugepaged refills
#                                    # with huge pages the memory a daemon's heap gave back
#                                    # (lvsup's daemon opts out of THP for itself; keepalived
#                                    # does not): "never" is the reference without that effect
#   BENCH_STRACE=1                   # after the steady window, a second one of BENCH_IDLE s under
#                                    # `strace -c -f`: system calls per check (strace slows the
#                                    # daemon, so that window gives no CPU figure)
#
# Builds target/release/lvsup and the tcp_sink example, then runs here if this kernel has
# ip_vs, else re-executes itself inside the lab VM (tests/lab/in-vm). Two network
# namespaces joined by a veth pair: the director's (address 10.79.0.1/16, VIP 10.79.0.100,
# services VIP:10001..) and the real servers' (10.79.1.1..10 on one interface; tcp_sink
# accepts on every service port and records when each destination was checked). No lab
# containers: only the daemon, the kernel and the sink.
#
# Both daemons: VRRP alone on the segment (they become master and hold the VIP), every
# service rr, DR, TCP check every SCALE_INTERVAL s (1) with a 500 ms timeout, fall 3, rise 1
# (keepalived: delay_loop and delay_before_retry SCALE_INTERVAL, connect_timeout 0.5,
# retry 2). rise 1 because
# keepalived has no rise: one passed check brings a real server back; lvsup's default
# (rise 2) would add one interval to "back". lvsup runs with the director.toml
# `lvsup apply` renders for that cluster file.
#
# Measured, per daemon:
#   ready_s      start → every destination in IPVS with weight > 0 (keepalived adds its real
#                servers unchecked at start; lvsup gives them weight only once checked)
#   ready_alpha  keepalived only, before its other figures (BENCH_KA_ALPHA=0: not run): the
#                same start with `alpha` in every virtual_server, each real server down until
#                its first passed check, as lvsup's: the start comparable with lvsup's
#   cpu_pct      utime + stime of all the daemon's processes over BENCH_IDLE s (default 60),
#                % of one core (user_pct and sys_pct apart; machine_busy_pct: the whole
#                machine's, sink and softirq included, machine_softirq_pct of it); pss_kb
#                (summed over the processes; pss_heap_kb the [heap] mappings' part (glibc's
#                main arena; the rest of the anonymous part: other threads' arenas, stacks,
#                large allocations); pss_anon_kb and pss_file_kb its anonymous and
#                file-backed parts: heap and stacks, program text and libraries), rss_kb;
#                all read at the window's end, with threads (of all its processes);
#                pss_median_kb, pss_min_kb, pss_max_kb of
#                pss_samples_kb, Pss read every 5 s of the window
#   interval_*   the real check interval per destination, from the sink's side: p50, p99
#                and max of the time between two checks of the same destination
#                (SCALE_INTERVAL is on time; jitter is the distance from it); beside them
#                what a check missing at the sink can be: failed_checks (lvsup's own count,
#                from its start to the window's end, read after the window's figures;
#                failed_where: which destinations, "service port/address:port=N";
#                checks_skipped: checks left out, the same destination's last one still
#                running; checks_completed),
#                listen_drops (SYNs the sink's listeners dropped), syn_retrans (the
#                director's SYNs sent again), softnet_dropped, over the window
#   removal      one real server refuses connections (nft reject with tcp reset, in the real
#                servers' namespace; timed from the moment the rule is in force) → the first
#                and the last of its SERVICES destinations gone or at weight 0 (the director's
#                /proc/net/ip_vs, read every 50 ms: watch_ipvs); then back
#   reload       one service more in the configuration, SIGHUP → the service in IPVS, and
#                all its destinations at weight > 0
# Output: progress on stderr, one JSON line per figure on stdout and in BENCH_OUT (default
# a new /tmp/lvsup-scale-bench.*/results.jsonl); tables: tools/bench-report.
set -euo pipefail
cd "$(dirname "$0")/.."
SERVICES=${SCALE_SERVICES:-1000}
RS=${SCALE_RS:-10}
INTERVAL=${SCALE_INTERVAL:-1}
IDLE=${BENCH_IDLE:-60}
REPS=${BENCH_REPS:-1}
FIRST_PORT=10001
LVSUP=${LVSUP:-$PWD/target/release/lvsup}
SINK=$PWD/target/release/examples/tcp_sink

if [ "${LVSUP_SCALE_BENCH_INNER:-0}" != 1 ]; then
    [ "$(id -u)" = 0 ] || { echo "scale_bench: run as root" >&2; exit 1; }
    command -v keepalived >/dev/null || { echo "scale_bench: keepalived not installed (apt-get install keepalived)" >&2; exit 1; }
    if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
        cargo build --release --locked --bin lvsup >&2
        cargo build --release --locked --example tcp_sink >&2
    fi
    BENCH_OUT=${BENCH_OUT:-$(mktemp -d /tmp/lvsup-scale-bench.XXXXXX)/results.jsonl}
    mkdir -p "$(dirname "$BENCH_OUT")"
    # the commit measured, read here: inside the VM the checkout is another user's (9p)
    # shellcheck source=benches/lib.sh
    . benches/lib.sh
    BENCH_COMMIT=$(bench_commit)
    export LVSUP_SCALE_BENCH_INNER=1 BENCH_OUT SCALE_SERVICES=$SERVICES SCALE_RS=$RS SCALE_INTERVAL=$INTERVAL BENCH_IDLE=$IDLE BENCH_REPS=$REPS BENCH_COMMIT
    if [ -e /proc/net/ip_vs ] || modprobe -q ip_vs 2>/dev/null; then
        exec bash "$0"
    fi
    export LVSUP_VM_TIMEOUT=${LVSUP_VM_TIMEOUT:-2400}
    out_dir=$(dirname "$BENCH_OUT")
    export LVSUP_VM_RWDIRS="${LVSUP_VM_RWDIRS:+$LVSUP_VM_RWDIRS:}$out_dir"
    LVSUP_VM_ENV="${LVSUP_VM_ENV:-} BENCH_OUT SCALE_SERVICES SCALE_RS SCALE_INTERVAL BENCH_IDLE BENCH_DAEMONS BENCH_REPS BENCH_COMMIT BENCH_STRACE BENCH_PERF BENCH_PERF_AT BENCH_SAMPLE BENCH_THP BENCH_KA_ALPHA LVSUP" exec tests/lab/in-vm bash "$0"
fi

NS_D=lvsup-scale-d NS_R=lvsup-scale-r
# the sink listens on every service port, and the daemons open a socket per check: more
# than the usual 1,024 descriptors at 1,000 services
ulimit -n "$(ulimit -Hn)"
VIP=10.79.0.100
VRID=79
W=$(mktemp -d /tmp/lvsup-scale.XXXXXX)
LAST_PORT=$((FIRST_PORT + SERVICES - 1))
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
# every result also says which repetition, commit, machine and load (the load average when
# it was written: other work on the machine shows there)
THP=/sys/kernel/mm/transparent_hugepage/enabled
thp_mode() { sed -n 's/.*\[\(.*\)\].*/\1/p' "$THP" 2>/dev/null | grep . || echo unknown; }
# whether each of the daemon's processes may have huge pages (THP_enabled in its status: 0
# once it opted out), comma-separated
thp_enabled() { local p out=(); for p in "$@"; do out+=("$(awk '/^THP_enabled:/ { print $2 }' "/proc/$p/status" 2>/dev/null)"); done; (IFS=,; echo "${out[*]}"); }
emit() {
    echo "${1%\}}, \"interval_s\": $INTERVAL, \"thp\": \"$(thp_mode)\", \"rep\": $rep, \"commit\": \"${BENCH_COMMIT:-unknown}\", \"machine\": \"$(nproc) CPUs, kernel $(uname -r)\", \"load\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}" | tee -a "$BENCH_OUT"
}

cleanup() {
    [ -n "${SINK_PID:-}" ] && kill "$SINK_PID" 2>/dev/null
    stop_daemon 2>/dev/null || true
    ip netns del "$NS_D" 2>/dev/null || true
    ip netns del "$NS_R" 2>/dev/null || true
    if [ -n "${THP_WAS:-}" ]; then echo "$THP_WAS" >"$THP" || true; fi
}
trap cleanup EXIT
if [ -n "${BENCH_THP:-}" ]; then
    THP_WAS=$(thp_mode)
    echo "$BENCH_THP" >"$THP"
fi

{
    echo "# benches/scale_bench.sh, $(date -u +%F): $SERVICES services x $RS real servers, checked every $INTERVAL s, idle window $IDLE s"
    echo "# commit: ${BENCH_COMMIT:-unknown}; repetitions: $REPS"
    echo "# keepalived: $(keepalived --version 2>&1 | head -1); machine: $(nproc) CPUs, kernel $(uname -r), transparent huge pages: $(thp_mode)"
} >&2

# ------------------------------------------------------------------ network ---
ip netns add "$NS_D"
ip netns add "$NS_R"
ip link add eth0 netns "$NS_D" type veth peer name eth0 netns "$NS_R"
ip -n "$NS_D" link set lo up
ip -n "$NS_R" link set lo up
ip -n "$NS_D" addr add 10.79.0.1/16 dev eth0
for j in $(seq 1 "$RS"); do ip -n "$NS_R" addr add "10.79.1.$j/16" dev eth0; done
ip -n "$NS_D" link set eth0 up
ip -n "$NS_R" link set eth0 up
# many connections a second from one address: reuse TIME_WAIT ports on the checker's side
ip netns exec "$NS_D" sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65000"
ip netns exec "$NS_R" sysctl -qw net.core.somaxconn=4096

# one port more than the services: the reload adds a service there
ip netns exec "$NS_R" "$SINK" "$FIRST_PORT" $((LAST_PORT + 1)) "$W/sink.json" 2>>"$W/sink.log" &
SINK_PID=$!
sleep 2

# ------------------------------------------------------------------ configs ---
cluster_toml() { # SERVICES
    printf '[cluster]\nname = "scale"\nvip = "%s"\nmode = "dr"\nvrid = %s\ninterface = "eth0"\n\n' "$VIP" "$VRID"
    for i in $(seq 0 $(($1 - 1))); do
        printf '[[services]]\nport = %d\nscheduler = "rr"\n[services.health]\ncheck = "tcp"\ninterval = "%ss"\ntimeout = "500ms"\nfall = 3\nrise = 1\n\n' $((FIRST_PORT + i)) "$INTERVAL"
    done
    printf '[[directors]]\nname = "d1"\naddress = "10.79.0.1/16"\npriority = 150\n\n'
    for j in $(seq 1 "$RS"); do
        printf '[[real_servers]]\nname = "rs%d"\naddress = "10.79.1.%d/16"\n\n' "$j" "$j"
    done
}
keepalived_conf() { # SERVICES [alpha]
    printf 'global_defs {\n  vrrp_version 3\n  router_id d1\n}\n'
    printf 'vrrp_instance VI_%s {\n  state BACKUP\n  interface eth0\n  virtual_router_id %s\n  priority 150\n  advert_int 1\n  virtual_ipaddress {\n    %s/32 dev eth0\n  }\n}\n' "$VRID" "$VRID" "$VIP"
    for i in $(seq 0 $(($1 - 1))); do
        printf 'virtual_server %s %d {\n  delay_loop %s\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n' "$VIP" $((FIRST_PORT + i)) "$INTERVAL"
        [ "${2:-}" = alpha ] && printf '  alpha\n'
        for j in $(seq 1 "$RS"); do
            printf '  real_server 10.79.1.%d %d {\n    weight 1\n    TCP_CHECK {\n      connect_timeout 0.5\n      retry 2\n      delay_before_retry %s\n    }\n  }\n' "$j" $((FIRST_PORT + i)) "$INTERVAL"
        done
        printf '}\n'
    done
}
. benches/lib.sh
cluster_toml "$SERVICES" >"$W/scale.toml"
cluster_toml $((SERVICES + 1)) >"$W/scale-plus.toml"
render_director_toml "$W/scale.toml" d1 "$W/d1.toml"
render_director_toml "$W/scale-plus.toml" d1 "$W/d1-plus.toml"
keepalived_conf "$SERVICES" >"$W/ka.conf"
keepalived_conf $((SERVICES + 1)) >"$W/ka-plus.conf"
keepalived_conf "$SERVICES" alpha >"$W/ka-alpha.conf"

# ------------------------------------------------------------------ daemons ---
DAEMON_PID=""
start_daemon() { # DAEMON CONFIG
    if [ "$1" = lvsup ]; then
        cp "$2" "$W/active.toml"
        ip netns exec "$NS_D" "$LVSUP" director run --config "$W/active.toml" --socket "$W/d1.sock" >>"$W/lvsup.log" 2>&1 &
        DAEMON_PID=$!
    else
        cp "$2" "$W/active.conf"
        ip netns exec "$NS_D" keepalived -n -l -D -f "$W/active.conf" -p "$W/ka.pid" >>"$W/keepalived.log" 2>&1 &
        DAEMON_PID=$!
    fi
}
pids_of_daemon() { # the daemon's process and its children (keepalived: checker, vrrp)
    echo "$DAEMON_PID"
    pgrep -P "$DAEMON_PID" 2>/dev/null || true
}
stop_daemon() {
    [ -n "$DAEMON_PID" ] || return 0
    kill -TERM "$DAEMON_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
    DAEMON_PID=""
    ip netns exec "$NS_D" ipvsadm -C
    ip -n "$NS_D" addr del "$VIP/32" dev eth0 2>/dev/null || true
}
ticks() { # "UTIME STIME" of the given pids, in clock ticks
    local u=0 s=0 p a b
    for p in "$@"; do
        [ -r "/proc/$p/stat" ] || continue
        read -r a b < <(awk '{ sub(/^.*\) /, ""); print $12, $13 }' "/proc/$p/stat")
        u=$((u + a)) s=$((s + b))
    done
    echo "$u $s"
}
machine_ticks() { # "BUSY SOFTIRQ" of the whole machine (/proc/stat, every CPU), in clock ticks
    awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $8 }' /proc/stat
}
tcpext() { # NS FIELD: a TcpExt counter of the network namespace NS (/proc/net/netstat)
    ip netns exec "$1" awk -v f="$2" '/^TcpExt:/ { if (!h) { for (i = 1; i <= NF; i++) k[i] = $i; h = 1 } else for (i = 1; i <= NF; i++) if (k[i] == f) print $i }' /proc/net/netstat
}
lost_packets() { # "DROPPED SYN_RETRANS LISTEN_DROPS": packets the machine's per-CPU backlogs
    # dropped (/proc/net/softnet_stat, every CPU: the veth pair's packets queue there), the
    # director namespace's SYNs sent again (a check's connect whose SYN or SYN-ACK was lost),
    # and the SYNs or handshakes the sink's listeners dropped (ListenDrops in the real servers'
    # namespace: an accept queue full, the sink too slow; the checker's connect then waits for
    # its SYN's retransmission, 1 s, past a timeout of 500 ms: a failed check that is the
    # sink's, not the checker's)
    local d=0 r l x
    while read -r _ x _; do d=$((d + 16#$x)); done </proc/net/softnet_stat
    r=$(tcpext "$NS_D" TCPSynRetrans)
    l=$(tcpext "$NS_R" ListenDrops)
    echo "$d ${r:-0} ${l:-0}"
}
lost_since() { # DROPPED0 SYN_RETRANS0 LISTEN_DROPS0: the JSON fields of what was lost since then
    local d r l
    read -r d r l < <(lost_packets)
    echo "\"softnet_dropped\": $((d - $1)), \"syn_retrans\": $((r - $2)), \"listen_drops\": $((l - $3))"
}
daemon_checks() { # lvsup only: "FAILED ADDR:PORT=N,... COMPLETED SKIPPED": its checks so far, the failed per real server
    # (the status's failed_checks), none for keepalived (its checker counts none we can read)
    [ "$daemon" = lvsup ] || { echo "null -"; return; }
    "$LVSUP" director status --socket "$W/d1.sock" --json >"$W/status.json" 2>/dev/null || { echo "null -"; return; }
    python3 - "$W/status.json" <<'PY'
import json, sys
try:
    st = json.load(open(sys.argv[1]))
except ValueError:
    print("null -")
    sys.exit()
per = {}
for s in st["services"]:
    for r in s["real_servers"]:
        per["%s/%s:%s" % (s["port"], r["address"], r["port"])] = r.get("failed_checks", 0)
c = st.get("checks", {})
print(sum(per.values()), ",".join("%s=%d" % (k, v) for k, v in per.items() if v) or "-",
      c.get("completed", "null"), c.get("skipped", "null"))
PY
}
checks_since_start() { # the JSON fields of lvsup's checks since it started: failed, and skipped
    local t l completed skipped
    read -r t l completed skipped < <(daemon_checks)
    if [ "$t" = null ]; then echo "\"failed_checks\": null"; return; fi
    # the destinations that failed (service port/address:port=N), at most 20; the checks
    # completed and those skipped (due while the same destination's last one still ran)
    echo "\"failed_checks\": $t, \"failed_where\": \"$(tr ',' '\n' <<<"${l#-}" | head -20 | paste -sd, -)\", \"checks_completed\": ${completed:-null}, \"checks_skipped\": ${skipped:-null}"
}
sample_daemon() { # SECS: every 100 ms, a line per thread of the daemon (BENCH_SAMPLE)
    # one Python process, not a shell loop: a process per sample would cost a good part of a
    # vCPU under TCG
    local pids; mapfile -t pids < <(pids_of_daemon)
    python3 - "$1" "${pids[@]}" <<'PY'
import os, sys, time
secs, pids = float(sys.argv[1]), sys.argv[2:]
print("t_s\ttid\tcomm\tstate\tutime\tstime\twchan\tmachine_busy\tproc_rss_anon_kb")
t0 = time.monotonic()
while time.monotonic() - t0 < secs:
    t = round(time.monotonic() - t0, 2)
    with open("/proc/stat") as f:
        c = f.readline().split()
    busy = int(c[1]) + int(c[2]) + int(c[3]) + int(c[6]) + int(c[7])
    # the daemon's children too (keepalived's checker and VRRP processes start after it)
    procs = list(pids)
    for p in pids:
        try:
            # not `t`: that is the sample's time, printed below (d89dabb printed a tid there)
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    procs += [c for c in f.read().split() if c not in procs]
        except OSError:
            pass
    for p in procs:
        try:
            tids = os.listdir(f"/proc/{p}/task")
            with open(f"/proc/{p}/status") as f:
                anon = next((l.split()[1] for l in f if l.startswith("RssAnon:")), "-")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{p}/task/{tid}/stat") as f:
                    st = f.read()
                with open(f"/proc/{p}/task/{tid}/wchan") as f:
                    wchan = f.read().strip() or "-"
            except OSError:
                continue
            comm = st[st.index("(") + 1:st.rindex(")")]
            w = st[st.rindex(")") + 2:].split()
            print(f"{t}\t{tid}\t{comm}\t{w[0]}\t{w[11]}\t{w[12]}\t{wchan}\t{busy}\t{anon}")
    sys.stdout.flush()
    time.sleep(0.1)
PY
}
heap_kb() { # PID...: the Pss of the [heap] mappings (glibc's main arena), summed
    local p
    for p in "$@"; do cat "/proc/$p/smaps" 2>/dev/null; done |
        awk '/^[0-9a-f]+-[0-9a-f]+ / { h = ($NF == "[heap]") } h && /^Pss:/ { s += $2 } END { print s + 0 }'
}
sum_kb() { # AWK-PATTERN FILE PID...
    local pat=$1 f=$2; shift 2
    local p; for p in "$@"; do cat "/proc/$p/$f" 2>/dev/null; done | awk "$pat"' { s += $2 } END { print s + 0 }'
}

# /proc/net/ip_vs of the director: "SERVICES DESTS UP" (UP: weight > 0)
hex_ip() { local a b c d; IFS=. read -r a b c d <<<"$1"; printf '%02X%02X%02X%02X' "$a" "$b" "$c" "$d"; }
ipvs_count() {
    ip netns exec "$NS_D" cat /proc/net/ip_vs | awk '
        /^TCP/ { n++; next }
        /->/ && n { m++; if ($4 > 0) up++ }
        END { printf "%d %d %d\n", n, m, up }'
}
# how often wait_until polls: 200 ms, 1 s above 2,000 destinations (see watch_ipvs)
WAIT_POLL=$([ $((SERVICES * RS)) -le 2000 ] && echo 0.2 || echo 1)
wait_until() { # LIMIT_S CMD... (polls every WAIT_POLL s; returns 1 on timeout)
    local limit=$1; shift
    local t0; t0=$(now)
    while ! "$@"; do
        [ "$(awk -v a="$t0" -v b="$(now)" -v l="$limit" 'BEGIN { print (b - a > l) }')" = 1 ] && return 1
        sleep "$WAIT_POLL"
    done
}
all_up() { read -r n m u <<<"$(ipvs_count)"; [ "$n" = "$SERVICES" ] && [ "$m" = $((SERVICES * RS)) ] && [ "$u" = "$m" ]; }
# watch_ipvs MODE [ARG] -- CMD...: run CMD (what changes the world), then read the director's
# table (/proc/DAEMON_PID/net/ip_vs, the daemon's namespace) every 50 ms from one Python
# process (every 250 ms above 2,000 destinations), timing from the moment CMD returned (the
# change in force), to the first answer:
#   removal ADDR_HEX  "FIRST LAST": the first of ADDR's SERVICES destinations out (gone or at
#                     weight 0), and the last
#   all               "S": every service with all its destinations at weight > 0
#   service PORT_HEX  "IN UP": the service on that port in the table; its RS destinations up
# "null" for what did not happen within 120 s. (A shell loop polling with `ip netns exec`,
# `cat` and `awk` took 0.4–0.8 s a turn under TCG: as much as the differences measured.)
watch_ipvs() {
    local mode=$1 arg=""
    shift
    [ "$1" != -- ] && { arg=$1; shift; }
    shift
    python3 - "$DAEMON_PID" "$SERVICES" "$RS" "$mode" "$arg" "$@" <<'PY'
import subprocess, sys, time
pid, services, rs, mode, arg = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
# every 50 ms; every 250 ms above 2,000 destinations, where each read of the table (the
# kernel walks it from the start for every page) would take a good part of a vCPU
# from the daemons under TCG
poll = 0.05 if services * rs <= 2000 else 0.25
subprocess.run(sys.argv[6:], check=True)
t0 = time.monotonic()
def table():
    svcs = {}
    cur = None
    with open(f"/proc/{pid}/net/ip_vs") as f:
        for line in f:
            w = line.split()
            if w and w[0] in ("TCP", "UDP"):
                cur = svcs.setdefault(w[1], [])
            elif w and w[0] == "->" and cur is not None:
                cur.append((w[1], int(w[3])))
    return svcs
found = {}
while time.monotonic() - t0 < 120:
    t = table()
    now = round(time.monotonic() - t0, 2)
    if mode == "removal":
        up = sum(1 for d in t.values() for a, wt in d if a.startswith(arg + ":") and wt > 0)
        if up < services:
            found.setdefault("first", now)
        if up == 0:
            found["last"] = now
            break
    elif mode == "all":
        if len(t) >= services and all(len(d) == rs and all(wt > 0 for _, wt in d) for d in t.values()):
            found["s"] = now
            break
    else:
        d = [v for k, v in t.items() if k.endswith(":" + arg)]
        if d:
            found.setdefault("in", now)
            if len(d[0]) == rs and all(wt > 0 for _, wt in d[0]):
                found["up"] = now
                break
    time.sleep(poll)
keys = {"removal": ("first", "last"), "all": ("s",), "service": ("in", "up")}[mode]
print(" ".join(str(found.get(k, "null")) for k in keys))
PY
}

# `perf record -g` of the given processes (default: the daemon's first) for BENCH_PERF seconds
# from now (reported after its stop)
start_perf() {
    local p; p=$(IFS=,; echo "${*:-$DAEMON_PID}")
    perf record -q -F 250 -g -p "$p" -o "$(dirname "$BENCH_OUT")/perf-$daemon-rep$rep.data" -- sleep "$BENCH_PERF" >/dev/null 2>&1 &
    PERF_PID=$!
}

for rep in $(seq 1 "$REPS"); do
for daemon in ${BENCH_DAEMONS:-lvsup keepalived}; do
    conf=$W/d1.toml plus=$W/d1-plus.toml
    [ "$daemon" = keepalived ] && conf=$W/ka.conf plus=$W/ka-plus.conf
    if [ "$daemon" = keepalived ] && [ "${BENCH_KA_ALPHA:-1}" = 1 ]; then
        # keepalived adds every real server unchecked at start (its ready_s is the time to
        # program IPVS); with `alpha` they start down and enter on their first passed check,
        # as lvsup's do: the start to compare lvsup's with
        log "keepalived: starting with alpha (every real server down until checked)"
        read -r drops0 synre0 ldrops0 < <(lost_packets)
        t0=$(now)
        start_daemon keepalived "$W/ka-alpha.conf"
        ok=true
        wait_until 600 all_up || ok=false
        emit "{\"bench\": \"scale\", \"daemon\": \"keepalived\", \"services\": $SERVICES, \"real_servers\": $RS, \"case\": \"ready_alpha\", \"s\": $(secs "$t0" "$(now)"), \"ok\": $ok, \"ipvs\": \"$(ipvs_count)\", $(lost_since "$drops0" "$synre0" "$ldrops0")}"
        stop_daemon
    fi
    log "$daemon: starting with $SERVICES services x $RS real servers"
    read -r drops0 synre0 ldrops0 < <(lost_packets)
    t0=$(now)
    start_daemon "$daemon" "$conf"
    if [ -n "${BENCH_PERF:-}" ] && [ "${BENCH_PERF_AT:-start}" = start ]; then
        start_perf
    fi
    if [ -n "${BENCH_SAMPLE:-}" ]; then
        sample_daemon "$BENCH_SAMPLE" >"$(dirname "$BENCH_OUT")/sample-$daemon-rep$rep.tsv" &
    fi
    ok=true
    wait_until 600 all_up || ok=false
    emit "{\"bench\": \"scale\", \"daemon\": \"$daemon\", \"services\": $SERVICES, \"real_servers\": $RS, \"case\": \"ready\", \"s\": $(secs "$t0" "$(now)"), \"ok\": $ok, \"ipvs\": \"$(ipvs_count)\", $(lost_since "$drops0" "$synre0" "$ldrops0")}"
    [ "$ok" = true ] || { log "$daemon: not every destination up after 600 s: $(ipvs_count)"; stop_daemon; continue; }
    sleep $((INTERVAL > 10 ? INTERVAL : 10))

    log "$daemon: CPU, memory and check intervals over $IDLE s"
    mapfile -t pids < <(pids_of_daemon)
    # lost packets over the window, and lvsup's failed checks from its start to the window's
    # end: what a check missing at the sink (an interval of twice the check's) was
    read -r drops0 synre0 ldrops0 < <(lost_packets)
    kill -USR1 "$SINK_PID"
    if [ -n "${BENCH_PERF:-}" ] && [ "${BENCH_PERF_AT:-start}" = steady ]; then
        start_perf "${pids[@]}"  # every process: keepalived's checker is a child
    fi
    read -r au sa < <(ticks "${pids[@]}"); read -r ma msi < <(machine_ticks); t0=$(now)
    # Pss every 5 s of the window, not once: lvsup's heap rises between its periodic
    # reconciles and falls at each one's trim (17.6-22.6 MB anonymous in one run), so a
    # single reading depended on where in that cycle it fell (22.8 and 27.0 MB in the two
    # repetitions of (h)); the median of the samples, with the lowest and highest
    pss_samples=()
    for _ in $(seq 1 $((IDLE / 5))); do
        sleep 5
        pss_samples+=("$(sum_kb '/^Pss:/' smaps_rollup "${pids[@]}")")
    done
    sleep $((IDLE % 5))
    read -r bu bs < <(ticks "${pids[@]}"); read -r mb msj < <(machine_ticks); t1=$(now)
    pss_stats=$(printf '%s\n' "${pss_samples[@]}" | sort -n | awk '{ v[NR] = $1 } END {
        printf "\"pss_median_kb\": %d, \"pss_min_kb\": %d, \"pss_max_kb\": %d",
            (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), v[1], v[NR] }')
    pss_list=$(IFS=,; echo "${pss_samples[*]}")
    kill -USR2 "$SINK_PID"
    lost=$(lost_since "$drops0" "$synre0" "$ldrops0")
    # memory as the window left it, before lvsup's status is asked for (the status reads the
    # kernel's whole table and writes megabytes of JSON: its heap grows by a few MB)
    mem="\"threads\": $(sum_kb '/^Threads:/' status "${pids[@]}"), \"thp_enabled\": \"$(thp_enabled "${pids[@]}")\", \"pss_kb\": $(sum_kb '/^Pss:/' smaps_rollup "${pids[@]}"), \"pss_anon_kb\": $(sum_kb '/^Pss_Anon:/' smaps_rollup "${pids[@]}"), \"pss_file_kb\": $(sum_kb '/^Pss_File:/' smaps_rollup "${pids[@]}"), \"pss_heap_kb\": $(heap_kb "${pids[@]}"), $pss_stats, \"pss_samples_kb\": [$pss_list], \"rss_kb\": $(sum_kb '/^VmRSS:/' status "${pids[@]}")"
    failed=$(checks_since_start)
    sleep 1
    hz=$(getconf CLK_TCK)
    pct() { awk -v d="$1" -v hz="$hz" -v s="$(secs "$t0" "$t1")" 'BEGIN { printf "%.2f", d / hz / s * 100 }'; }
    cpu=$(pct $((bu + bs - au - sa)))
    # user and system apart, and the machine's busy time (the sink and the network's
    # softirq work included, which the daemon's own figures may leave out)
    split="\"user_pct\": $(pct $((bu - au))), \"sys_pct\": $(pct $((bs - sa))), \"machine_busy_pct\": $(pct $((mb - ma))), \"machine_softirq_pct\": $(pct $((msj - msi)))"
    emit "{\"bench\": \"scale\", \"daemon\": \"$daemon\", \"services\": $SERVICES, \"real_servers\": $RS, \"case\": \"steady\", \"processes\": ${#pids[@]}, \"cpu_pct\": $cpu, $split, $mem, \"window_s\": $(secs "$t0" "$t1"), \"sink\": $(cat "$W/sink.json"), $lost, $failed, \"ok\": true}"

    if [ "${BENCH_STRACE:-0}" = 1 ]; then
        log "$daemon: system calls over $IDLE s (strace -c -f)"
        sargs=(); for p in "${pids[@]}"; do for t in /proc/"$p"/task/*; do sargs+=(-p "${t##*/}"); done; done  # every thread
        kill -USR1 "$SINK_PID"
        timeout -s INT "$IDLE" strace -c -f -o "$W/strace-$daemon.txt" "${sargs[@]}" 2>/dev/null || true
        kill -USR2 "$SINK_PID"; sleep 1
        checks=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["checks"])' "$W/sink.json")
        # strace -c's last line: "100.00 SECONDS USECS/CALL CALLS [ERRORS] total"
        calls=$(awk '$NF == "total" { print $4 }' "$W/strace-$daemon.txt")
        top=$(awk '/^ *[0-9.]+ +[0-9.]+ +[0-9]+ +[0-9]+/ && $NF != "total" { print $4, $NF }' "$W/strace-$daemon.txt" | sort -rn | head -8 | awk '{ printf "%s\"%s\": %s", (NR > 1 ? ", " : ""), $2, $1 }')
        emit "{\"bench\": \"scale\", \"daemon\": \"$daemon\", \"services\": $SERVICES, \"real_servers\": $RS, \"case\": \"syscalls\", \"calls\": ${calls:-0}, \"checks\": ${checks:-0}, \"per_check\": $(awk -v c="${calls:-0}" -v n="${checks:-0}" 'BEGIN { printf "%.1f", (n > 0 ? c / n : 0) }'), \"top\": {$top}, \"window_s\": $IDLE, \"ok\": $([ "${checks:-0}" -gt 0 ] && [ "${calls:-0}" -gt 0 ] && echo true || echo false)}"
        cp "$W/strace-$daemon.txt" "$(dirname "$BENCH_OUT")/" 2>/dev/null || true
    fi

    log "$daemon: real server 10.79.1.1 refuses connections"
    rs_hex=$(hex_ip 10.79.1.1)
    ip netns exec "$NS_R" nft add table inet scalebench
    ip netns exec "$NS_R" nft add chain inet scalebench in '{ type filter hook input priority 0; }'
    read -r first last < <(watch_ipvs removal "$rs_hex" -- ip netns exec "$NS_R" nft add rule inet scalebench in ip daddr 10.79.1.1 tcp dport "$FIRST_PORT-$LAST_PORT" reject with tcp reset)
    emit "{\"bench\": \"scale\", \"daemon\": \"$daemon\", \"services\": $SERVICES, \"real_servers\": $RS, \"case\": \"removal\", \"first_s\": $first, \"last_s\": $last, \"ok\": $([ "$last" != null ] && echo true || echo false)}"
    read -r back < <(watch_ipvs all -- ip netns exec "$NS_R" nft delete table inet scalebench)
    emit "{\"bench\": \"scale\", \"daemon\": \"$daemon\", \"services\": $SERVICES, \"real_servers\": $RS, \"case\": \"back\", \"s\": $back, \"ok\": $([ "$back" != null ] && echo true || echo false)}"

    cp "$W/$daemon.log" "$(dirname "$BENCH_OUT")/$daemon-rep$rep.log" 2>/dev/null || true
    log "$daemon: reload with one service more"
    if [ "$daemon" = lvsup ]; then cp "$plus" "$W/active.toml"; else cp "$plus" "$W/active.conf"; fi
    read -r svc_s up_s < <(watch_ipvs service "$(printf '%04X' $((LAST_PORT + 1)))" -- kill -HUP "$DAEMON_PID")
    emit "{\"bench\": \"scale\", \"daemon\": \"$daemon\", \"services\": $SERVICES, \"real_servers\": $RS, \"case\": \"reload\", \"service_s\": $svc_s, \"all_up_s\": $up_s, \"ok\": $([ "$up_s" != null ] && echo true || echo false)}"
    cp "$W"/*.log "$(dirname "$BENCH_OUT")/" 2>/dev/null || true
    stop_daemon
    if [ -n "${PERF_PID:-}" ]; then
        # the report here, where the kernel's symbols are this kernel's (in the VM: not the host's)
        wait "$PERF_PID" 2>/dev/null || true
        pd=$(dirname "$BENCH_OUT")/perf-$daemon-rep$rep
        perf report -i "$pd.data" --stdio --no-children --sort sym --percent-limit 0.5 -g none >"$pd.txt" 2>/dev/null || true
        perf report -i "$pd.data" --stdio --children --sort sym --percent-limit 2 -g caller,0.5,callee --max-stack 30 >"$pd-callers.txt" 2>/dev/null || true
        PERF_PID=""
    fi
done
done
log "raw results: $BENCH_OUT"
