#!/bin/bash
# benches/idle_native.sh — idle CPU and RSS of the director daemon on THIS kernel, no VM.
#
#   sudo BIN=target/release/lvsup SECS=120 bash benches/idle_native.sh
#
# Two network namespaces joined by a veth: the daemon (`--no-ipvs`: this machine's kernel may
# lack ip_vs) as VRRP master of 10.79.0.100, checking one HTTP real server (python's
# http.server in the other namespace) every 2 s, advert 1 s, with the director.toml that
# `lvsup apply` would render for the cluster below (benches/lib.sh). After 10 s of settling it reads
# utime+stime from /proc/PID/stat over SECS seconds and prints clock ticks (1/100 s) and RSS.
# The side-by-side comparison with keepalived (which needs ip_vs for its checker) is
# benches/failover_bench.sh, in the VM. Used to measure the switch from a 500 ms link poll to
# rtnetlink link/address events (docs/benchmarks-history.md, run C).
set -u
cd "$(dirname "$0")/.." || exit 1
BIN=${BIN:-target/release/lvsup}
SECS=${SECS:-60}
D=$(mktemp -d /tmp/lvsup-idle.XXXXXX)
A=idleA; B=idleB
ip netns del $A 2>/dev/null; ip netns del $B 2>/dev/null
ip netns add $A; ip netns add $B
ip link add idveth0 netns $A type veth peer name idveth1 netns $B
ip -n $A link set idveth0 name eth0; ip -n $B link set idveth1 name eth0
ip -n $A addr add 10.79.0.1/24 dev eth0; ip -n $B addr add 10.79.0.2/24 dev eth0
ip -n $B addr add 10.79.0.50/24 dev eth0
for n in $A $B; do ip -n $n link set lo up; ip -n $n link set eth0 up; done
ip netns exec $B python3 -m http.server 80 --bind 10.79.0.50 >/dev/null 2>&1 &
web=$!
LVSUP=$BIN
. benches/lib.sh
cat > $D/cluster.toml <<T
[cluster]
name = "idle"
vip = "10.79.0.100"
mode = "dr"
vrid = 79
advert_interval = "1s"
interface = "eth0"

[[services]]
port = 80
scheduler = "rr"

[services.health]
check = "http"
path = "/"
interval = "2s"
timeout = "1s"
fall = 3
rise = 2

[[directors]]
name = "lv"
address = "10.79.0.1/24"
priority = 150

[[directors]]
name = "peer"
address = "10.79.0.2/24"

[[real_servers]]
name = "rs"
address = "10.79.0.50/24"
T
render_director_toml $D/cluster.toml lv $D/director.toml
ip netns exec $A $BIN director run --config $D/director.toml --no-ipvs --socket $D/sock >$D/log 2>&1 &
pid=$!
sleep 10
t0=$(awk '{print $14+$15}' /proc/$pid/stat)
sleep $SECS
t1=$(awk '{print $14+$15}' /proc/$pid/stat)
echo "daemon: $((t1-t0)) ticks (1/100 s) of CPU in $SECS s; RSS $(awk '/VmRSS/{print $2}' /proc/$pid/status) kB"
kill $pid; sleep 1; kill $web
ip netns del $A; ip netns del $B
tail -3 $D/log; rm -rf "$D"
