# tests/lab/lib.sh — shell helpers shared by the lab scripts (in-vm, base-image,
# demo, tests/run). Sourced, never run. Set LOG_TAG before sourcing.
#
#   note MSG...             one line on stderr: "TAG: MSG"
#   apt_install PKG...      install the missing Debian packages (one note naming them;
#                           `apt-get update` once, only when an install fails or a
#                           package is unknown)
#   qemu_system_install     install Debian 12's qemu-system-x86, with the qemu-utils
#                           it needs (see below)
#   with_progress LABEL MEASURE CMD...
#                           run CMD with its output sent to stderr (or a log the
#                           caller redirects), and while it runs print LABEL with
#                           the elapsed time and `eval MEASURE`'s output (e.g. a
#                           size or a package count): a line every 15 s when stderr
#                           is not a terminal, one line rewritten in place every
#                           second when it is. CMD's exit status is returned.
# shellcheck shell=bash

LOG_TAG=${LOG_TAG:-lab}

note() { printf '%s: %s\n' "$LOG_TAG" "$*" >&2; }

_apt_updated=0
apt_update() {
    [ "$_apt_updated" = 1 ] && return 0
    note "apt-get update"
    apt-get update -q -o DPkg::Lock::Timeout=300 >/dev/null
    _apt_updated=1
}

apt_install() { # PKG...: install the missing ones
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    note "installing ${missing[*]} (apt-get)"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends \
        "${missing[@]}" >/dev/null 2>"/tmp/lvsup-apt.$$.err"; then
        apt_update
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends \
            "${missing[@]}" >/dev/null || {
            cat "/tmp/lvsup-apt.$$.err" >&2
            rm -f "/tmp/lvsup-apt.$$.err"
            return 1
        }
    fi
    rm -f "/tmp/lvsup-apt.$$.err"
}

with_progress() { # LABEL MEASURE CMD...
    local label=$1 measure=$2 start=$SECONDS pid rc tty=0 last=$SECONDS m
    shift 2
    [ -t 2 ] && tty=1
    "$@" &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        sleep 1
        kill -0 "$pid" 2>/dev/null || break
        m=$(eval "$measure" 2>/dev/null || true)
        if [ "$tty" = 1 ]; then
            printf '\r%s: %s... %ds %s   ' "$LOG_TAG" "$label" $((SECONDS - start)) "$m" >&2
        elif [ $((SECONDS - last)) -ge 15 ]; then
            last=$SECONDS
            note "$label... $((SECONDS - start)) s $m"
        fi
    done
    rc=0
    wait "$pid" || rc=$?
    [ "$tty" = 1 ] && printf '\r\033[K' >&2
    if [ "$rc" = 0 ]; then
        note "$label: done in $((SECONDS - start)) s"
    fi
    return "$rc"
}

# Debian 12's qemu-system-x86 (7.2) needs a qemu-utils of the same release: the
# qemu-utils of bookworm-backports (10.x, which machines of the project's kind come
# with) Breaks qemu-system-common << 8.0, and apt does not downgrade on its own: a
# plain `apt-get install -y qemu-system-x86` silently REMOVES qemu-utils (qemu-img,
# qemu-nbd; the Vagrant box build needs qemu-img). This installs Debian 12's qemu-utils
# with it instead (--allow-downgrades; the tools stay, one release older), and says so.
# LVSUP_NO_QEMU_DOWNGRADE=1 refuses and fails instead. Tried in a fresh Debian 12
# chroot with backports' qemu-utils (2026-12-02).
qemu_system_install() {
    dpkg-query -W -f='${Status}' qemu-system-x86 2>/dev/null | grep -q 'install ok installed' && return 0
    local have want
    have=$(dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null || true)
    if [ -n "$have" ]; then
        apt_update
        want=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ { print $2 }')
        if [ -n "$want" ] && [ "$want" != "(none)" ] && dpkg --compare-versions "$have" gt "$want" &&
            apt-cache madison qemu-utils | awk -F' [|] ' '{ print $2 }' | grep -qxF "$want"; then
            [ "${LVSUP_NO_QEMU_DOWNGRADE:-0}" = 1 ] && {
                note "qemu-utils $have is newer than Debian 12's qemu-system-x86 $want accepts, and LVSUP_NO_QEMU_DOWNGRADE=1 forbids installing qemu-utils $want"
                return 1
            }
            note "qemu-utils $have (backports) blocks Debian 12's qemu-system-x86 $want: installing qemu-utils $want with it"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends \
                --allow-downgrades qemu-system-x86 "qemu-utils=$want" >/dev/null
            return
        fi
    fi
    apt_install qemu-system-x86
}
