#!/usr/bin/env bash
# tests/lab/nspawn-check.sh — boot one systemd-nspawn container from the lab base
# image with a per-host overlay, inside the lab VM; check systemd comes up.
#
#   LVSUP_LAB_IMAGE=1 tests/lab/in-vm bash tests/lab/nspawn-check.sh
#
# A feasibility check for `lvsup lab up` (the recipe in docs/design/lab.md), not the lab itself.
set -euo pipefail

: "${LVSUP_LAB_BASE:?no lab base image mounted (run via LVSUP_LAB_IMAGE=1 tests/lab/in-vm)}"
H=lvsup-h1
D=/run/lvsup-lab/$H
BR=lvsup-br0
say() { printf 'nspawn-check: %s\n' "$*"; }

cleanup() {
    [ -n "${npid:-}" ] && kill "$npid" 2>/dev/null && wait "$npid" 2>/dev/null
    umount "$D/root" 2>/dev/null || true
    ip link del "$BR" 2>/dev/null || true
    rmdir /sys/fs/cgroup/lab/$H /sys/fs/cgroup/lab 2>/dev/null || true
}
trap cleanup EXIT

mkdir -p "$D/upper" "$D/work" "$D/root"
mount -t overlay overlay -o "lowerdir=$LVSUP_LAB_BASE,upperdir=$D/upper,workdir=$D/work" "$D/root"

# Per-host files go into the overlay: networkd config for host0, fewer units.
mkdir -p "$D/root/etc/systemd/network" "$D/root/etc/systemd/system"
# Must sort before the image's /usr/lib/systemd/network/80-container-host0.network
# (DHCP): networkd takes the first matching file by name, whatever its directory.
printf '[Match]\nName=host0\n[Network]\nAddress=10.200.0.21/24\n' \
    >"$D/root/etc/systemd/network/10-lvsup-host0.network"
ln -sf /lib/systemd/system/systemd-networkd.service \
    "$D/root/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
for u in getty@tty1.service console-getty.service systemd-timesyncd.service \
    apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer dpkg-db-backup.timer \
    systemd-tmpfiles-clean.timer systemd-update-utmp.service ssh.service; do
    ln -sf /dev/null "$D/root/etc/systemd/system/$u"
done
echo "$H" >"$D/root/etc/hostname"

ip link add "$BR" type bridge
ip addr add 10.200.0.1/24 dev "$BR"
ip link set "$BR" up

# Own cgroup per host, else the containers' systemd instances fight over one.
echo "+memory +pids" >/sys/fs/cgroup/cgroup.subtree_control
mkdir -p /sys/fs/cgroup/lab/$H
echo "+memory +pids" >/sys/fs/cgroup/lab/cgroup.subtree_control

kver=$(uname -r)
moddir=$(readlink -f "/lib/modules/$kver")
start=$SECONDS
(
    echo "$BASHPID" >/sys/fs/cgroup/lab/$H/cgroup.procs
    exec systemd-nspawn -q --register=no --keep-unit -D "$D/root" -M "$H" -b \
        --network-bridge="$BR" --bind-ro="$moddir:/lib/modules/$kver" \
        --bind-ro=/sys/module --console=passive
) >"$D/nspawn.log" 2>&1 &
npid=$!

# The container's PID 1: nspawn's child running systemd (the subshell exec'd nspawn,
# so $npid is nspawn). nspawn's first child is a transient "outer child": skip it.
leader=""
state=""
for _ in $(seq 240); do
    if [ -z "$leader" ]; then
        leader=$(ps -o pid=,comm= --ppid "$npid" | awk '$2 == "systemd" { print $1; exit }')
    fi
    if [ -n "$leader" ]; then
        state=$(nsenter -t "$leader" -a systemctl is-system-running 2>/dev/null || true)
        case $state in running | degraded) break ;; esac
    fi
    kill -0 "$npid" 2>/dev/null || { cat "$D/nspawn.log"; say "FAIL: nspawn exited"; exit 1; }
    sleep 0.5
done
say "container $H leader pid ${leader:-?} state '${state:-?}' after $((SECONDS - start)) s"
[ -n "$leader" ] || { cat "$D/nspawn.log"; exit 1; }
nsenter -t "$leader" -a systemctl --failed --no-legend || true
nsenter -t "$leader" -a ip -br addr
nsenter -t "$leader" -a sh -c 'modprobe ip_vs && ipvsadm -Ln | head -1'
for _ in $(seq 40); do
    nsenter -t "$leader" -a ip -br addr show host0 | grep -q 10.200.0.21 && break
    sleep 0.5
done
nsenter -t "$leader" -a ip -br addr show host0
if busybox ping -c 2 -W 5 10.200.0.21 >/dev/null; then
    say "ping 10.200.0.21 (host0, configured by networkd) ok"
else
    say "FAIL: no ping to 10.200.0.21"; nsenter -t "$leader" -a networkctl --no-pager || true; exit 1
fi
case $state in
    running) say "PASS: systemd running in the container" ;;
    degraded) say "PASS (degraded): systemd up, some unit failed (listed above)" ;;
    *) say "FAIL: state '$state'"; cat "$D/nspawn.log"; exit 1 ;;
esac
