# benches/lib.sh — sourced by the bench scripts. Needs $LVSUP (the lvsup binary).
# shellcheck shell=bash

# director.toml as lvsup renders it for apply (the offline plan's file body), so a
# bench runs the daemon with exactly the configuration `lvsup apply` would install.
render_director_toml() { # CLUSTER_TOML DIRECTOR OUT
    "$LVSUP" plan -f "$1" --offline --json | python3 -c '
import json, sys
plan = json.load(sys.stdin)
h = next(h for h in plan["hosts"] if h["host"] == sys.argv[1])
c = next(c for c in h["changes"] if c.get("kind") == "file" and c["path"].endswith("/director.toml"))
sys.stdout.write("".join(l[1:] + "\n" for l in c["diff"].splitlines()[3:] if l.startswith("+")))
' "$2" >"$3"
    grep -q '^advert_interval' "$3" || { echo "rendering director.toml for $2 failed" >&2; exit 1; }
}

# The commit a bench measures, for its results: HEAD's short hash, with "+" when the product
# code (src/) differs from it. Docs, benches and tests edited beside a run do not change what
# is measured, so they do not mark it.
bench_commit() {
    echo "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src 2>/dev/null || echo '+')"
}
