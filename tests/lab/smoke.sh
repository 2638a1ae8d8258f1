#!/usr/bin/env bash
# tests/lab/smoke.sh — IPVS direct-routing smoke test with network namespaces.
#
# Runs INSIDE the lab VM (or on a machine whose kernel has ip_vs), as root:
#   tests/lab/in-vm bash tests/lab/smoke.sh
#
# Four namespace "hosts" on a bridge, private test subnet 10.200.0.0/24:
#   director 10.200.0.2 (+ VIP 10.200.0.50/32 on eth0, IPVS rr, DR forwarding)
#   rs1      10.200.0.11 (+ VIP on lo, arp_ignore=1 arp_announce=2, busybox httpd)
#   rs2      10.200.0.12 (same)
#   client   10.200.0.100 (curls the VIP 4 times; answers must alternate)
# Traffic stays between these namespaces. Everything is removed on exit.
set -euo pipefail

P=lvsup-smoke           # name prefix of the namespaces and links
BR=${P:0:6}br0          # bridge in the current namespace
NET=10.200.0
VIP=$NET.50
declare -A ADDR=([dir]=$NET.2 [rs1]=$NET.11 [rs2]=$NET.12 [cli]=$NET.100)
WORK=$(mktemp -d /tmp/lvsup-smoke.XXXXXX)
PIDS=()

say() { printf 'smoke: %s\n' "$*"; }
fail() { say "FAIL: $*" >&2; exit 1; }
in_ns() { local h=$1; shift; ip netns exec "$P-$h" "$@"; }

cleanup() {
    local h
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for h in "${!ADDR[@]}"; do
        ip netns del "$P-$h" 2>/dev/null || true
    done
    ip link del "$BR" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

modprobe -q ip_vs 2>/dev/null || true
modprobe -q ip_vs_rr 2>/dev/null || true
[ -e /proc/net/ip_vs ] || fail "this kernel has no ip_vs (run it via tests/lab/in-vm)"
command -v ipvsadm >/dev/null || fail "ipvsadm missing"
command -v busybox >/dev/null || fail "busybox missing"

say "creating bridge $BR and hosts ${!ADDR[*]}"
ip link add "$BR" type bridge
ip link set "$BR" up
i=0
for h in dir rs1 rs2 cli; do
    i=$((i + 1))
    ip netns add "$P-$h"
    ip link add "${P:0:6}v$i" type veth peer name eth0 netns "$P-$h"
    ip link set "${P:0:6}v$i" master "$BR" up
    in_ns "$h" ip link set lo up
    in_ns "$h" ip addr add "${ADDR[$h]}/24" dev eth0
    in_ns "$h" ip link set eth0 up
done

# Real servers: VIP on lo, never answer ARP for it; busybox httpd says who it is.
for h in rs1 rs2; do
    in_ns "$h" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
        net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.arp_announce=2
    in_ns "$h" ip addr add "$VIP/32" dev lo
    mkdir -p "$WORK/$h"
    echo "$h" >"$WORK/$h/index.html"
    in_ns "$h" busybox httpd -f -p 80 -h "$WORK/$h" &
    PIDS+=($!)
done

# Director: VIP on eth0, IPVS virtual service, round robin, direct routing (-g).
in_ns dir ip addr add "$VIP/32" dev eth0
in_ns dir ipvsadm -C
in_ns dir ipvsadm -A -t "$VIP:80" -s rr
in_ns dir ipvsadm -a -t "$VIP:80" -r "${ADDR[rs1]}:80" -g -w 1
in_ns dir ipvsadm -a -t "$VIP:80" -r "${ADDR[rs2]}:80" -g -w 1
in_ns dir ipvsadm -Ln

# Wait (bounded) until both real servers answer directly.
for h in rs1 rs2; do
    ok=0
    for _ in $(seq 50); do
        if [ "$(in_ns cli curl -s --max-time 2 "http://${ADDR[$h]}/")" = "$h" ]; then
            ok=1; break
        fi
        sleep 0.2
    done
    [ "$ok" = 1 ] || fail "$h does not answer on ${ADDR[$h]}:80"
done
say "real servers up"

got=()
for n in 1 2 3 4; do
    r=$(in_ns cli curl -s --max-time 5 "http://$VIP/") || fail "curl #$n to VIP $VIP failed"
    say "curl #$n http://$VIP/ -> $r"
    got+=("$r")
done
sleep 2.5 # the kernel folds per-CPU counters into --stats every 2 s
in_ns dir ipvsadm -Ln --stats

[ "${got[0]}" != "${got[1]}" ] || fail "no alternation: ${got[*]}"
if [ "${got[0]}" != "${got[2]}" ] || [ "${got[1]}" != "${got[3]}" ]; then
    fail "no alternation: ${got[*]}"
fi
for r in "${got[@]}"; do
    case $r in rs1 | rs2) ;; *) fail "unexpected answer '$r'" ;; esac
done
say "PASS: round robin through VIP $VIP alternated: ${got[*]}"
