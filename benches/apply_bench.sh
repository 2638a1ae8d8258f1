#!/usr/bin/env bash
# benches/apply_bench.sh — fleet scale: wall time of `lvsup plan` and `lvsup apply`
# (cold, then no-op) for 2 directors + N real servers in a namespace lab, against an
# Ansible playbook doing the same configuration on the same hosts in the same run. Both
# tools' results are checked on every host by one independent check (real servers: unit
# active, VIP on lo, ARP sysctls; directors: the daemon's unit active and the service with
# its N destinations in the director's IPVS table), and Ansible's recap must say failed=0,
# unreachable=0 (and changed=0 for its no-op run): a run that did not converge is
# recorded with "ok": false and makes the script exit 1.
#
#   benches/apply_bench.sh 10 50 200         # N values (default: 10 50)
#   BENCH_REPS=3                             # repetitions per N (default 3)
#   BENCH_TOOLS="lvsup ansible"              # which tools run (default both; "lvsup" alone
#                                            # gives no ratio, only lvsup's own figures)
#   BENCH_OUT=FILE                           # raw results, one JSON line each (default:
#                                            # a new /tmp/lvsup-apply-bench.*/results.jsonl)
#   LVSUP=PATH                               # the lvsup to time (default: target/release/lvsup,
#                                            # built first unless BENCH_NO_BUILD=1)
#   BENCH_CONTROL_PERSIST=DURATION           # lvsup's [ssh] control_persist (default "60s", the
#                                            # ControlPersist Ansible gets here; "0s": lvsup's
#                                            # default, a fresh connection per host per run).
#                                            # Each repetition starts with none kept (its cold plan
#                                            # connects) and closes what it kept at its end.
#   ANSIBLE=PATH                             # ansible-playbook (default /tmp/ansible-venv/bin/…:
#                                            # python3 -m venv /tmp/ansible-venv &&
#                                            # /tmp/ansible-venv/bin/pip install ansible-core)
#
# Needs root and the lab base image (tests/lab/base-image). On a kernel without ip_vs
# (the default when /proc/net/ip_vs is missing; LVSUP_NO_KERNEL=0/1 forces it) the lab
# comes up with --no-kernel-check and both tools configure the real servers only
# (`--target` each): the directors need ip_vs. BENCH_DIRECTORS=1 on such a kernel runs
# the whole bench inside the lab VM instead (tests/lab/in-vm, under emulation: both
# tools slower alike), directors included (the guest sees this machine's files, so the
# same ansible-playbook and lvsup run there). Directors:
# Ansible copies the lvsup binary, the daemon's configuration, unit, sysctl and
# modules-load files lvsup renders, loads the modules, applies the sysctls and enables
# and starts the unit: what `lvsup apply` does there. Both tools use the lab's ssh_config
# (the same key exchange, see docs/guide/live.md "Many hosts") and 16 hosts at a time
# (lvsup --parallel 16, Ansible forks 16, pipelining, ControlPersist). Traffic stays in
# the lab's own namespaces. Tables: tools/bench-report.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${BENCH_REPS:-3}
TOOLS=" ${BENCH_TOOLS:-lvsup ansible} "
ANSIBLE=${ANSIBLE:-/tmp/ansible-venv/bin/ansible-playbook}
NO_KERNEL=${LVSUP_NO_KERNEL:-$([ -e /proc/net/ip_vs ] && echo 0 || echo 1)}
PAR=16
PERSIST=${BENCH_CONTROL_PERSIST:-60s}
if [ -z "${LVSUP:-}" ]; then
  [ "${BENCH_NO_BUILD:-0}" = 1 ] || cargo build --release --locked >&2
  LVSUP=target/release/lvsup
fi
LVSUP_ABS=$(realpath -- "${LVSUP}")  # for the VM (another working directory) and Ansible's copy
if [ "${BENCH_DIRECTORS:-0}" = 1 ] && [ "$NO_KERNEL" = 1 ] && [ "${LVSUP_INSIDE_LAB:-0}" != 1 ]; then
  # the directors need ip_vs: the whole bench in the lab VM, its results written here
  BENCH_OUT=${BENCH_OUT:-$(mktemp -d /tmp/lvsup-apply-bench.XXXXXX)/results.jsonl}
  mkdir -p "$(dirname "$BENCH_OUT")"
  # shellcheck source=benches/lib.sh
  . benches/lib.sh
  BENCH_COMMIT=$(bench_commit)  # read here: inside the VM the checkout is another user's (9p)
  LVSUP=$LVSUP_ABS
  tools=${TOOLS# }
  export BENCH_OUT BENCH_REPS=$REPS BENCH_TOOLS="${tools% }" BENCH_COMMIT ANSIBLE LVSUP LVSUP_NO_KERNEL=0 LVSUP_LAB_IMAGE=1
  export LVSUP_VM_TIMEOUT=${LVSUP_VM_TIMEOUT:-3600}
  out_dir=$(dirname "$BENCH_OUT")
  export LVSUP_VM_RWDIRS="${LVSUP_VM_RWDIRS:+$LVSUP_VM_RWDIRS:}$out_dir"
  LVSUP_VM_ENV="${LVSUP_VM_ENV:-} BENCH_OUT BENCH_REPS BENCH_TOOLS BENCH_NO_BUILD BENCH_COMMIT BENCH_CONTROL_PERSIST ANSIBLE LVSUP" \
    exec tests/lab/in-vm bash "$0" "$@"
fi
[ -x /usr/bin/time ] || { echo "apply_bench: needs GNU time (/usr/bin/time, Debian's time)" >&2; exit 1; }
[[ $TOOLS != *" ansible "* ]] || [ -x "$ANSIBLE" ] || { echo "apply_bench: no ansible-playbook at $ANSIBLE (see the header)" >&2; exit 1; }
work=$(mktemp -d /tmp/lvsup-apply-bench.XXXXXX)  # kept: every tool's log per N and repetition
OUT=${BENCH_OUT:-$work/results.jsonl}
# Ansible's home and temporary files under the bench's directory (in the lab VM, root's
# home is read-only: even `ansible-playbook --version` failed there)
export ANSIBLE_HOME=$work/ansible-home ANSIBLE_LOCAL_TEMP=$work/ansible-tmp
status=0
# shellcheck source=benches/lib.sh
. benches/lib.sh
COMMIT=${BENCH_COMMIT:-$(bench_commit)}

now() { date +%s.%N; }
# Run CMD with its output in OUT. RC: its exit status; WALL: its wall time (s);
# CPU: user + system CPU of it and its children (ssh, Ansible's forks) on this
# machine, i.e. what the run costs the operator's machine, apart from the hosts;
# MCPU: the whole machine's busy CPU over the run (/proc/stat), the lab's hosts (their
# sshd, shells, systemd) included: with the hosts on this machine, MCPU - CPU is what
# the run cost them.
busy_s() { awk -v hz="$(getconf CLK_TCK)" '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8) / hz }' /proc/stat; }
timed() { # OUT CMD...
  local out=$1 b0; shift
  RC=0
  b0=$(busy_s)
  /usr/bin/time -f '%e %U %S' -o "$work/time" "$@" > "$out" 2>&1 || RC=$?
  MCPU=$(awk -v a="$b0" -v b="$(busy_s)" 'BEGIN { printf "%.2f", b - a }')
  # GNU time writes "Command exited with non-zero status N" first on a failure
  read -r WALL u s < <(tail -n 1 "$work/time")
  CPU=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
}
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
log() { echo "[$(date +%T)] $*" >&2; }
record() { # TOOL N REP PHASE SECONDS OK [EXTRA-JSON]
  local line
  # with the commit and the load average when the result was written (other work shows there)
  line=$(printf '{"bench": "apply", "tool": "%s", "n": %s, "directors": %s, "rep": %s, "phase": "%s", "s": %s, "ok": %s%s, "commit": "%s", "load": "%s"}' \
    "$1" "$2" "$([ "$DIRS" = 1 ] && echo true || echo false)" "$3" "$4" "$5" "$6" "${7:+, $7}" "$COMMIT" "$(cut -d' ' -f1-3 /proc/loadavg)")
  echo "$line" | tee -a "$OUT"
  [ "$6" = true ] || status=1
}

{
  echo "# benches/apply_bench.sh, $(date -u +%F)"
  echo "# command: BENCH_REPS=$REPS BENCH_TOOLS=\"${TOOLS# }\" BENCH_CONTROL_PERSIST=$PERSIST benches/apply_bench.sh ${*}"
  echo "# commit: $COMMIT ('+': src/ differs from it)"
  echo "# lvsup: $LVSUP ($("$LVSUP" --version 2>/dev/null)), ansible: $("$ANSIBLE" --version 2>/dev/null | head -1)"
  echo "# machine: $(nproc)-core $(uname -m), kernel $(uname -r), ip_vs: $([ "$NO_KERNEL" = 1 ] && echo 'no (real servers only)' || echo yes)"
  echo "# load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$work/header.txt" >&2

# One check for both tools, on every real server: the unit active, the VIP on lo and
# the ARP sysctls set; with directors (DIRS=1), on each: the daemon's unit active and the
# service's N destinations in its IPVS table (/proc/net/ip_vs of the director's own
# namespace; both directors program IPVS, master or backup), given 10 s to get there.
# Prints the hosts that fail it; exit 0 when none does.
check_hosts() { # CFG NAME VIP N
  seq 1 "$4" | xargs -P "$PAR" -I{} sh -c \
    "ssh -F '$1' rs{} 'systemctl is-active --quiet lvsup-realserver-$2.service && ip -o addr show dev lo | grep -q \" $3/32 \" && [ \$(cat /proc/sys/net/ipv4/conf/all/arp_ignore) = 1 ] && [ \$(cat /proc/sys/net/ipv4/conf/all/arp_announce) = 2 ]' >/dev/null 2>&1 || echo rs{}"
  [ "$DIRS" = 1 ] || return 0
  local d
  for d in d1 d2; do
    ssh -F "$1" "$d" "systemctl is-active --quiet lvsup-director-$2.service && for i in \$(seq 50); do [ \$(grep -cE -- '-> [0-9A-F]{8}:' /proc/net/ip_vs) -ge $4 ] && exit 0; sleep 0.2; done; exit 1" >/dev/null 2>&1 || echo "$d"
  done
}
# Every host back to fresh (no unit, no files, VIP gone; directors: IPVS table empty),
# checked.
clean_hosts() { # CFG NAME VIP N
  seq 1 "$4" | xargs -P "$PAR" -I{} ssh -F "$1" rs{} "systemctl disable --now lvsup-realserver-$2.service >/dev/null 2>&1; rm -f /etc/systemd/system/lvsup-realserver-$2.service /etc/sysctl.d/90-lvsup-$2.conf; rm -rf /var/lib/lvsup; ip addr del $3/32 dev lo 2>/dev/null; sysctl -q -w net.ipv4.conf.all.arp_ignore=0 net.ipv4.conf.all.arp_announce=0 net.ipv4.conf.lo.arp_ignore=0 net.ipv4.conf.lo.arp_announce=0; systemctl daemon-reload"
  [ "$DIRS" = 1 ] || return 0
  local d
  for d in d1 d2; do
    ssh -F "$1" "$d" "systemctl disable --now lvsup-director-$2.service >/dev/null 2>&1; rm -f /etc/systemd/system/lvsup-director-$2.service /etc/sysctl.d/90-lvsup-$2.conf /etc/modules-load.d/lvsup-$2.conf /usr/local/bin/lvsup; rm -rf /etc/lvsup /var/lib/lvsup; ipvsadm -C; for dev in \$(ip -o addr show to $3/32 | awk '{ print \$2 }'); do ip addr del $3/32 dev \$dev; done; systemctl daemon-reload"
  done
}

# Ansible needs Python's standard library on the hosts; the lab base image has only
# python3-minimal. A copy of the base with this machine's (same Debian, same 3.11)
# added serves as every host's read-only lower layer (`lab up --base`): copied into
# each host instead, 50 hosts filled the lab's 2 GB tmpfs of host changes.
base=$work/base
img=${LVSUP_LAB_BASE_IMAGE:-/var/cache/lvsup/lab-base.img}
mkdir -p "$base" "$work/img"
if [ -d "${LVSUP_LAB_BASE:-}" ]; then
  cp -a "$LVSUP_LAB_BASE/." "$base/"  # in the lab VM: the image, mounted by tests/lab/in-vm
else
  mount -o loop,ro,noload "$img" "$work/img"
  cp -a "$work/img/." "$base/"
  umount "$work/img"
fi
py=$(python3 -c 'import sys; print("usr/lib/python%d.%d" % sys.version_info[:2])')
tar -C / -cf - --exclude=__pycache__ --exclude=test --exclude=idlelib "$py" | tar -C "$base" -xf -
trap 'rm -rf "$base"' EXIT

ns=("$@"); [ "${#ns[@]}" -gt 0 ] || ns=(10 50)
for N in "${ns[@]}"; do
  name="bench$N"
  vip=10.77.0.100
  f="$work/$name.toml"
  {
    printf '[ssh]\ncontrol_persist = "%s"\n\n' "$PERSIST"
    printf '[cluster]\nname = "%s"\nvip = "%s"\nmode = "dr"\n\n' "$name" "$vip"
    printf '[[services]]\nport = 80\nscheduler = "rr"\n\n'
    printf '[[directors]]\nname = "d1"\naddress = "10.77.0.2/22"\n\n'
    printf '[[directors]]\nname = "d2"\naddress = "10.77.0.3/22"\n\n'
    for i in $(seq 1 "$N"); do
      # rs1..rs250 at 10.77.1.x, rs251.. at 10.77.2.x (one /22 with the directors and the VIP)
      printf '[[real_servers]]\nname = "rs%d"\naddress = "10.77.%d.%d/22"\n\n' "$i" $((1 + (i - 1) / 250)) $((1 + (i - 1) % 250))
    done
  } > "$f"
  up=(lab up -f "$f" --timeout 900 --base "$base")
  [ "$NO_KERNEL" = 1 ] && up+=(--no-kernel-check)
  t=$(now); "$LVSUP" "${up[@]}" > "$work/up.log"
  log "N=$N: lab up in $(secs "$t" "$(now)") s"
  cfg=/run/lvsup-lab/$name/ssh_config
  targets=()
  DIRS=$((1 - NO_KERNEL))
  if [ "$NO_KERNEL" = 1 ]; then
    for i in $(seq 1 "$N"); do targets+=(--target "rs$i"); done
  fi

  # The same configuration with Ansible: the files lvsup renders, applied with copy +
  # command + systemd. files/rs/ for every real server (they are all alike), files/d1/ and
  # files/d2/ for the directors (each its own director.toml).
  rm -rf "$work/files"
  python3 - "$LVSUP" "$f" "$work/files" <<'PY'
import os, sys, subprocess, json
# lvsup renders the files; take them from the offline plan's unified diffs (all '+' lines)
plan = json.loads(subprocess.check_output([sys.argv[1], "plan", "-f", sys.argv[2], "--offline", "--json"]))
rs = next(h for h in plan["hosts"] if h["role"]["kind"] == "real_server")
for h in [rs] + [h for h in plan["hosts"] if h["role"]["kind"] == "director"]:
    d = os.path.join(sys.argv[3], "rs" if h is rs else h["host"])
    os.makedirs(d, exist_ok=True)
    for c in h["changes"]:
        if c.get("kind") == "file":
            body = "".join(l[1:] + "\n" for l in c["diff"].splitlines()[3:] if l.startswith("+"))
            open(os.path.join(d, c["path"].rsplit("/", 1)[1]), "w").write(body)
PY
  {
    echo "[rs]"; for i in $(seq 1 "$N"); do echo "rs$i"; done
    [ "$DIRS" = 0 ] || printf '[directors]\nd1\nd2\n'
  } > "$work/inventory"
  # the sysctl file and, when it changed, systemd-sysctl on it: both plays
  sysctl_tasks() { # FILES_DIR
    printf '    - copy: { src: "%s/90-lvsup-%s.conf", dest: "/etc/sysctl.d/90-lvsup-%s.conf", mode: "0644" }\n' "$1" "$name" "$name"
    printf '      register: sysctl_file\n'
    printf '    - command: /usr/lib/systemd/systemd-sysctl /etc/sysctl.d/90-lvsup-%s.conf\n' "$name"
    printf '      when: sysctl_file.changed\n'
  }
  cat > "$work/play.yml" <<EOF
- hosts: rs
  gather_facts: false
  tasks:
$(sysctl_tasks "$work/files/rs")
    - copy: { src: "$work/files/rs/lvsup-realserver-$name.service", dest: "/etc/systemd/system/lvsup-realserver-$name.service", mode: "0644" }
    - systemd: { name: "lvsup-realserver-$name.service", enabled: true, state: started, daemon_reload: true }
EOF
  if [ "$DIRS" = 1 ]; then
    cat >> "$work/play.yml" <<EOF
- hosts: directors
  gather_facts: false
  tasks:
    - copy: { src: "$LVSUP_ABS", dest: /usr/local/bin/lvsup, mode: "0755" }
    - file: { path: "/etc/lvsup/$name", state: directory, mode: "0755" }
    - copy: { src: "$work/files/{{ inventory_hostname }}/director.toml", dest: "/etc/lvsup/$name/director.toml", mode: "0644" }
    - copy: { src: "$work/files/{{ inventory_hostname }}/lvsup-$name.conf", dest: "/etc/modules-load.d/lvsup-$name.conf", mode: "0644" }
      register: modules_file
    - command: modprobe -a ip_vs ip_vs_rr
      when: modules_file.changed
$(sysctl_tasks "$work/files/{{ inventory_hostname }}")
    - copy: { src: "$work/files/{{ inventory_hostname }}/lvsup-director-$name.service", dest: "/etc/systemd/system/lvsup-director-$name.service", mode: "0644" }
    - systemd: { name: "lvsup-director-$name.service", enabled: true, state: started, daemon_reload: true }
EOF
  fi
  recap() { # LOG: "failed unreachable changed" summed over the hosts
    awk '/ : ok=/ { for (i = 1; i <= NF; i++) { split($i, kv, "="); t[kv[1]] += kv[2] } }
         END { printf "%d %d %d", t["failed"], t["unreachable"], t["changed"] }' "$1"
  }
  export ANSIBLE_HOST_KEY_CHECKING=False ANSIBLE_SSH_ARGS="-F $cfg -o ControlMaster=auto -o ControlPersist=60s" \
         ANSIBLE_FORKS=$PAR ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3 ANSIBLE_PIPELINING=True \
         ANSIBLE_SSH_CONTROL_PATH_DIR=$work/ansible-cp

  for rep in $(seq 1 "$REPS"); do
    if [[ $TOOLS == *" lvsup "* ]]; then
    log "N=$N rep $rep/$REPS: lvsup"
    # lvsup: plan (exit 2: changes), apply, plan (exit 0: converged), apply (no-op).
    # the subcommand first, then its options (lvsup's command line since its redesign)
    lv=(-f "$f" "${targets[@]}" --parallel "$PAR")
    # kept connections ([ssh] control_persist) in a directory of this repetition's own:
    # its cold plan finds none
    rt=$work/runtime-$N-$rep
    mkdir -m 700 "$rt"
    kept="\"control_persist\": \"$PERSIST\""
    timed "$work/plan.log" env XDG_RUNTIME_DIR="$rt" "$LVSUP" plan "${lv[@]}" --detailed-exitcode
    record lvsup "$N" "$rep" plan_cold "$WALL" "$([ "$RC" = 2 ] && echo true || echo false)" "\"exit\": $RC, \"cpu_s\": $CPU, \"machine_cpu_s\": $MCPU, $kept"
    timed "$work/apply-$N-$rep.log" env XDG_RUNTIME_DIR="$rt" "$LVSUP" apply "${lv[@]}" --yes
    bad=$(check_hosts "$cfg" "$name" "$vip" "$N" | wc -l)
    record lvsup "$N" "$rep" apply_cold "$WALL" "$([ "$RC" = 0 ] && [ "$bad" = 0 ] && echo true || echo false)" "\"exit\": $RC, \"cpu_s\": $CPU, \"machine_cpu_s\": $MCPU, \"hosts_failing_check\": $bad, $kept"
    timed /dev/null env XDG_RUNTIME_DIR="$rt" "$LVSUP" plan "${lv[@]}" --detailed-exitcode
    record lvsup "$N" "$rep" plan_noop "$WALL" "$([ "$RC" = 0 ] && echo true || echo false)" "\"exit\": $RC, \"cpu_s\": $CPU, \"machine_cpu_s\": $MCPU, $kept"
    timed "$work/apply2.log" env XDG_RUNTIME_DIR="$rt" "$LVSUP" apply "${lv[@]}" --yes
    grep -q "Nothing to apply" "$work/apply2.log" || RC=99
    record lvsup "$N" "$rep" apply_noop "$WALL" "$([ "$RC" = 0 ] && echo true || echo false)" "\"exit\": $RC, \"cpu_s\": $CPU, \"machine_cpu_s\": $MCPU, $kept"
    env XDG_RUNTIME_DIR="$rt" "$LVSUP" destroy "${lv[@]}" --yes > /dev/null 2>&1 || { log "lvsup destroy failed"; status=1; }
    # the masters this repetition kept: closed (ssh -O exit), not left to Ansible's turn
    for s in "$rt"/lvsup-ssh/.ssh-connection*/master; do
      if [ -S "$s" ]; then ssh -S "$s" -O exit lvsup-kept >/dev/null 2>&1 || true; fi
    done
    clean_hosts "$cfg" "$name" "$vip" "$N"
    fi

    [[ $TOOLS == *" ansible "* ]] || continue
    log "N=$N rep $rep/$REPS: ansible"
    alog=$work/ansible-$N-$rep.log
    timed "$alog" "$ANSIBLE" -i "$work/inventory" "$work/play.yml"
    read -r failed unreach changed <<<"$(recap "$alog")"
    [ "$RC" = 0 ] || grep -E "fatal|FAILED" "$alog" | head -3 >&2
    bad=$(check_hosts "$cfg" "$name" "$vip" "$N" | wc -l)
    record ansible "$N" "$rep" apply_cold "$WALL" \
      "$([ "$RC" = 0 ] && [ "$failed$unreach" = 00 ] && [ "$bad" = 0 ] && echo true || echo false)" \
      "\"exit\": $RC, \"cpu_s\": $CPU, \"machine_cpu_s\": $MCPU, \"failed\": $failed, \"unreachable\": $unreach, \"changed\": $changed, \"hosts_failing_check\": $bad"
    timed "$alog.noop" "$ANSIBLE" -i "$work/inventory" "$work/play.yml"
    read -r failed unreach changed <<<"$(recap "$alog.noop")"
    record ansible "$N" "$rep" apply_noop "$WALL" \
      "$([ "$RC" = 0 ] && [ "$failed$unreach$changed" = 000 ] && echo true || echo false)" \
      "\"exit\": $RC, \"cpu_s\": $CPU, \"machine_cpu_s\": $MCPU, \"failed\": $failed, \"unreachable\": $unreach, \"changed\": $changed"
    clean_hosts "$cfg" "$name" "$vip" "$N"
  done
  "$LVSUP" lab down -f "$f" > /dev/null
done
echo "# load at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$work/header.txt"
log "raw results: $OUT; header: $work/header.txt"
exit "$status"
