#!/bin/sh
# lvsup's cluster lock on one host (src/apply/lock.rs sends this script; it
# is not run from the repository). Arguments: DIR (/var/lib/lvsup/NAME),
# SECS (how long to wait for the lock; 0 = fail at once), OWNER (the lines
# to write to DIR/lock.owner). The lock is flock(2) on DIR/lock, held by
# this shell's fd 9 for as long as it runs: until lvsup writes a word on
# stdin (`release`: remove lock.owner; `remove`: also remove the lock file
# and DIR, after destroy) or its SSH session ends. A session that ends
# without a word (a killed lvsup, a lost connection) leaves lock.owner
# behind: the next lvsup reports it. The kernel releases the flock either way.
#
# Output, one word a line, then indented lines of an owner file:
#   busy          the lock is held after SECS; the holder's lock.owner follows
#   stale         taken, but the previous session did not release it; its owner follows
#   waited        taken after waiting for another session
#   locked        taken (always the last line on success)
set -u
dir=$1 secs=$2 owner=$3
lock=$dir/lock
command -v flock >/dev/null 2>&1 || { echo "flock is not installed (util-linux)" >&2; exit 2; }
mkdir -p "$dir" || exit 2
show() { [ -f "$dir/lock.owner" ] && sed 's/^/  /' "$dir/lock.owner"; }
tries=0
while :; do
  exec 9>>"$lock" || exit 2
  if ! flock -n 9; then
    [ "$secs" -gt 0 ] && echo waited
    if ! flock -w "$secs" 9; then
      echo busy
      show
      exit 3
    fi
  fi
  # A destroy may have removed the file while we waited on its old inode:
  # hold the lock on the file that is there now.
  if [ "$(stat -L -c %d:%i "$lock" 2>/dev/null)" = "$(stat -L -c %d:%i /proc/$$/fd/9)" ]; then
    break
  fi
  tries=$((tries + 1))
  [ "$tries" -lt 5 ] || { echo "the lock file keeps being replaced" >&2; exit 2; }
done
if [ -s "$dir/lock.owner" ]; then
  echo stale
  show
fi
printf '%s\n' "$owner" > "$dir/lock.owner.new" && mv -f "$dir/lock.owner.new" "$dir/lock.owner" || exit 2
echo locked
word=
IFS= read -r word || true
case $word in
  release) rm -f "$dir/lock.owner" ;;
  remove) rm -f "$dir/lock.owner" "$lock"; rmdir "$dir/verify-undo" "$dir" /var/lib/lvsup 2>/dev/null ;;
  *) echo "ended: without release" >> "$dir/lock.owner" ;;
esac
exit 0
