#!/usr/bin/env bash
# benches/apply_bench.sh — wall time of `lvsup plan` and `lvsup apply` (cold and no-op)
# for 2 directors + N real servers in a namespace lab, against the same real-server
# configuration done by an Ansible playbook on the same hosts in the same run.
#
#   sudo benches/apply_bench.sh 10 50        # N values (default: 10 50)
#
# Needs root, a built target/debug/lvsup, the lab base image, and ansible-core
# (ANSIBLE=/path/to/ansible-playbook, default: /tmp/ansible-venv/bin/ansible-playbook;
# `python3 -m venv /tmp/ansible-venv && /tmp/ansible-venv/bin/pip install ansible-core`).
# On a kernel without ip_vs (LVSUP_NO_KERNEL=1, the default when /proc/net/ip_vs is
# missing) the lab comes up with --no-kernel-check and both tools configure the real
# servers only (`--target` each real server): the directors need ip_vs.
# Traffic stays in the lab's own namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
LVSUP=${LVSUP:-target/debug/lvsup}
ANSIBLE=${ANSIBLE:-/tmp/ansible-venv/bin/ansible-playbook}
NO_KERNEL=${LVSUP_NO_KERNEL:-$([ -e /proc/net/ip_vs ] && echo 0 || echo 1)}
work=$(mktemp -d /tmp/lvsup-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

for n in "${@:-10 50}"; do
for N in $n; do
  name="bench$N"
  f="$work/$name.toml"
  {
    printf '[cluster]\nname = "%s"\nvip = "10.77.0.100"\nmode = "dr"\n\n' "$name"
    printf '[[services]]\nport = 80\nscheduler = "rr"\n\n'
    printf '[[directors]]\nname = "d1"\naddress = "10.77.0.2/24"\n\n'
    printf '[[directors]]\nname = "d2"\naddress = "10.77.0.3/24"\n\n'
    for i in $(seq 1 "$N"); do
      printf '[[real_servers]]\nname = "rs%d"\naddress = "10.77.0.%d/24"\n\n' "$i" $((10 + i))
    done
  } > "$f"
  up=(lab up -f "$f" --timeout 600)
  [ "$NO_KERNEL" = 1 ] && up+=(--no-kernel-check)
  "$LVSUP" "${up[@]}" > "$work/up.log"
  # Ansible needs Python's standard library on the hosts; the lab base has only
  # python3-minimal: copy this machine's (same Debian, same 3.11) into each host
  # before anything is timed.
  cfg=/run/lvsup-lab/$name/ssh_config
  py=$(python3 -c 'import sys; print("usr/lib/python%d.%d" % sys.version_info[:2])')
  tar -C / -czf "$work/py.tgz" --exclude=__pycache__ --exclude=test --exclude=idlelib "$py"
  seq 1 "$N" | xargs -P 8 -I{} sh -c "ssh -F $cfg rs{} 'tar -C / -xzf -' < $work/py.tgz"
  targets=()
  if [ "$NO_KERNEL" = 1 ]; then
    for i in $(seq 1 "$N"); do targets+=(--target "rs$i"); done
  fi
  par=(--parallel 16)
  t0=$(now); "$LVSUP" plan -f "$f" "${targets[@]}" "${par[@]}" > /dev/null 2>&1 || true; t1=$(now)
  "$LVSUP" apply -f "$f" --yes "${targets[@]}" "${par[@]}" > "$work/apply.log" 2>&1; t2=$(now)
  "$LVSUP" plan -f "$f" --detailed-exitcode "${targets[@]}" "${par[@]}" > /dev/null 2>&1; t3=$(now)
  "$LVSUP" apply -f "$f" --yes "${targets[@]}" "${par[@]}" > /dev/null 2>&1; t4=$(now)
  "$LVSUP" destroy -f "$f" --yes "${targets[@]}" "${par[@]}" > /dev/null 2>&1

  # The same real-server configuration with Ansible: the files lvsup renders, applied
  # with copy + command + systemd (forks = 16, like --parallel 16).
  mkdir -p "$work/files"
  python3 - "$f" "$work/files" "$name" <<'PY'
import sys, subprocess, json
# lvsup renders the files; take them from the offline plan's unified diffs (all '+' lines)
plan = json.loads(subprocess.check_output(["target/debug/lvsup", "plan", "-f", sys.argv[1], "--offline", "--json"]))
h = next(h for h in plan["hosts"] if h["role"]["kind"] == "real_server")
for c in h["changes"]:
    if c.get("kind") == "file":
        body = "".join(l[1:] + "\n" for l in c["diff"].splitlines()[3:] if l.startswith("+"))
        open(sys.argv[2] + "/" + c["path"].rsplit("/", 1)[1], "w").write(body)
PY
  {
    echo "[rs]"
    for i in $(seq 1 "$N"); do echo "rs$i"; done
  } > "$work/inventory"
  cat > "$work/play.yml" <<EOF
- hosts: rs
  gather_facts: false
  tasks:
    - copy: { src: "$work/files/90-lvsup-$name.conf", dest: "/etc/sysctl.d/90-lvsup-$name.conf", mode: "0644" }
      register: sysctl_file
    - command: /usr/lib/systemd/systemd-sysctl /etc/sysctl.d/90-lvsup-$name.conf
      when: sysctl_file.changed
    - copy: { src: "$work/files/lvsup-realserver-$name.service", dest: "/etc/systemd/system/lvsup-realserver-$name.service", mode: "0644" }
    - systemd: { name: "lvsup-realserver-$name.service", enabled: true, state: started, daemon_reload: true }
EOF
  export ANSIBLE_HOST_KEY_CHECKING=False ANSIBLE_SSH_ARGS="-F $cfg -o ControlMaster=auto -o ControlPersist=60s" \
         ANSIBLE_FORKS=16 ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3 ANSIBLE_PIPELINING=True
  a0=$(now); "$ANSIBLE" -i "$work/inventory" "$work/play.yml" > "$work/ansible.log" 2>&1 || { tail -20 "$work/ansible.log"; }
  a1=$(now); "$ANSIBLE" -i "$work/inventory" "$work/play.yml" > "$work/ansible2.log" 2>&1 || true; a2=$(now)
  "$LVSUP" destroy -f "$f" --yes "${targets[@]}" > /dev/null 2>&1 || true
  "$LVSUP" lab down -f "$f" > /dev/null

  lp=$(secs "$t0" "$t1"); la=$(secs "$t1" "$t2"); lpn=$(secs "$t2" "$t3"); lan=$(secs "$t3" "$t4")
  ac=$(secs "$a0" "$a1"); an=$(secs "$a1" "$a2")
  echo "N=$N real servers$([ "$NO_KERNEL" = 1 ] && echo ' (directors skipped: no ip_vs)'): lvsup plan cold ${lp}s, apply cold ${la}s, plan no-op ${lpn}s, apply no-op ${lan}s | ansible cold ${ac}s, no-op ${an}s | ratio ansible/lvsup apply: cold $(awk -v a="$ac" -v b="$la" 'BEGIN{printf "%.1f", a/b}')x, no-op $(awk -v a="$an" -v b="$lan" 'BEGIN{printf "%.1f", a/b}')x"
done
done
