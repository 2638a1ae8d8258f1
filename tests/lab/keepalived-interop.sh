#!/usr/bin/env bash
# tests/lab/keepalived-interop.sh LVSUP_BINARY — lvsup's director daemon and
# keepalived (vrrp_version 3) on the same VRID, in two network namespaces on
# one veth link (root; needs keepalived installed; no ip_vs needed: lvsup runs
# with --no-ipvs). Each must see the other as a VRRP peer:
#   1. lvsup (priority 150) and keepalived (100) start: lvsup Master,
#      keepalived BACKUP, and lvsup's status names itself master;
#   2. lvsup stops (SIGTERM, priority 0): keepalived takes over (MASTER) and
#      holds the VIP; lvsup restarted preempts it (preempt = true, higher
#      priority): lvsup Master again, keepalived back to BACKUP;
#   3. lvsup with priority 50 (below keepalived): keepalived MASTER, lvsup
#      Backup with master = keepalived's address.
# UNICAST=1: both sides send unicast to each other instead of multicast
# (lvsup `unicast = true`, keepalived `unicast_peer`).
# Prints PASS/FAIL per step; exit status 0 when all pass. KEEP=1 keeps the
# namespaces and logs (in /tmp/lvsup-ka.*) for a look afterwards.
set -uo pipefail
BIN=${1:?usage: keepalived-interop.sh LVSUP_BINARY}
BIN=$(readlink -f "$BIN")
D=$(mktemp -d /tmp/lvsup-ka.XXXXXX)
A=lvsup-ka-lv; B=lvsup-ka-ka
fail=0
cleanup() {
  [ -f "$D/lv.pid" ] && kill "$(cat "$D/lv.pid")" 2>/dev/null
  [ -f "$D/ka.pid" ] && kill "$(cat "$D/ka.pid")" 2>/dev/null
  sleep 1
  ip netns del $A 2>/dev/null; ip netns del $B 2>/dev/null
  rm -rf "$D"
}
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
ip netns add $A; ip netns add $B
ip link add kaveth0 netns $A type veth peer name kaveth1 netns $B
ip -n $A link set kaveth0 name eth0; ip -n $B link set kaveth1 name eth0
ip -n $A addr add 10.79.0.1/24 dev eth0; ip -n $B addr add 10.79.0.2/24 dev eth0
for n in $A $B; do ip -n $n link set lo up; ip -n $n link set eth0 up; done

if [ -n "${UNICAST:-}" ]; then
  UNI=true
  KAUNI="  unicast_src_ip 10.79.0.2
  unicast_peer {
    10.79.0.1
  }"
else
  UNI=false; KAUNI=""
fi
lvconf() { # priority
cat > "$D/director.toml" <<T
cluster = "kaint"
director = "lv"
mode = "dr"
vip = "10.79.0.100"
interface = "eth0"
[vrrp]
vrid = 79
priority = $1
advert_interval = "1s"
preempt = true
address = "10.79.0.1"
peers = ["10.79.0.2"]
unicast = ${UNI}
[[services]]
protocol = "tcp"
port = 80
scheduler = "rr"
[services.health]
check = "none"
interval = "2s"
timeout = "1s"
fall = 3
rise = 2
[[services.real_servers]]
name = "rs"
address = "10.79.0.50"
port = 80
weight = 1
forward = "route"
T
}
cat > "$D/ka.conf" <<T
global_defs {
  vrrp_version 3
  script_user root
}
vrrp_instance VI_79 {
  state BACKUP
  interface eth0
  virtual_router_id 79
  priority 100
  advert_int 1
${KAUNI}
  virtual_ipaddress {
    10.79.0.100/32
  }
}
T
start_lv() {
  ip netns exec $A "$BIN" director run --config "$D/director.toml" --no-ipvs --socket "$D/lv.sock" >>"$D/lv.log" 2>&1 &
  echo $! > "$D/lv.pid"
}
lvstate() { ip netns exec $A "$BIN" director status --socket "$D/lv.sock" --json 2>/dev/null | python3 -c 'import json,sys; v=json.load(sys.stdin)["vrrp"]; print(v["state"], v["master"])' 2>/dev/null || echo "down -"; }
kastate() { grep -oE "Entering (MASTER|BACKUP) STATE" "$D/ka.log" | tail -1 | awk '{print $2}'; }
check() { # name condition...
  if eval "$2"; then echo "PASS $1"; else echo "FAIL $1 (lvsup: $(lvstate); keepalived: $(kastate))"; fail=1; fi
}
has_vip() { ip -n "$1" -4 -o addr show dev eth0 | grep -q "10.79.0.100/32"; }

lvconf 150
ip netns exec $B keepalived -n -l -D -f "$D/ka.conf" -p "$D/keepalived.pid" -r "$D/keepalived-vrrp.pid" --vrrp >"$D/ka.log" 2>&1 &
echo $! > "$D/ka.pid"
start_lv
sleep 6
check "1 lvsup(150) Master, keepalived(100) BACKUP" '[ "$(lvstate)" = "Master 10.79.0.1" ] && [ "$(kastate)" = BACKUP ] && has_vip $A && ! has_vip $B'

kill -TERM "$(cat "$D/lv.pid")"; sleep 4
check "2a lvsup stopped (priority 0): keepalived MASTER with the VIP" '[ "$(kastate)" = MASTER ] && has_vip $B && ! has_vip $A'
start_lv; sleep 6
check "2b lvsup restarted preempts: lvsup Master, keepalived BACKUP" '[ "$(lvstate)" = "Master 10.79.0.1" ] && [ "$(kastate)" = BACKUP ] && has_vip $A && ! has_vip $B'

kill -TERM "$(cat "$D/lv.pid")"; sleep 3
lvconf 50; : > "$D/lv.log"; start_lv; sleep 6
check "3 lvsup(50) Backup, master = keepalived 10.79.0.2" '[ "$(lvstate)" = "Backup 10.79.0.2" ] && [ "$(kastate)" = MASTER ] && has_vip $B && ! has_vip $A'

echo "--- keepalived log (state lines)"; grep -E "STATE|received lower|higher prio" "$D/ka.log" | cut -c1-160 | tail -12
echo "--- lvsup log (last run)"; grep -E "vrrp state|address|bad" "$D/lv.log" | cut -c1-200 | tail -6
exit $fail
