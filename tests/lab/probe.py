#!/usr/bin/env python3
"""Client-side failover probe: one HTTP GET to URL every INTERVAL seconds for
DURATION seconds (each with a TIMEOUT), as the client sees the VIP.

    probe.py URL DURATION [INTERVAL=0.01] [TIMEOUT=0.2]

Prints one JSON line: probes, failed, the longest run of failures in ms
(first failed probe start -> next successful probe start), and the answers
in order of first appearance with their counts."""
import json, socket, sys, time
from urllib.parse import urlparse

url, duration = sys.argv[1], float(sys.argv[2])
interval = float(sys.argv[3]) if len(sys.argv) > 3 else 0.01
timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 0.2
u = urlparse(url)
host, port, path = u.hostname, u.port or 80, u.path or "/"

def get():
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.settimeout(timeout)
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        data = b""
        while True:
            c = s.recv(4096)
            if not c:
                break
            data += c
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.") or b" 200 " not in head.split(b"\r\n")[0] + b" ":
            raise OSError("bad answer")
        return body.decode(errors="replace").strip()
    finally:
        s.close()

start = time.monotonic()
probes = failed = 0
gap_start = None
longest = 0.0
answers = {}
order = []
events = []
while True:
    t = time.monotonic()
    if t - start > duration:
        break
    probes += 1
    try:
        a = get()
        if gap_start is not None:
            longest = max(longest, t - gap_start)
            events.append({"gap_ms": round((t - gap_start) * 1000), "at_s": round(gap_start - start, 3)})
            gap_start = None
        if a not in answers:
            order.append(a)
            events.append({"first": a, "at_s": round(t - start, 3)})
        answers[a] = answers.get(a, 0) + 1
    except OSError:
        failed += 1
        if gap_start is None:
            gap_start = t
    rest = interval - (time.monotonic() - t)
    if rest > 0:
        time.sleep(rest)
if gap_start is not None:
    longest = max(longest, time.monotonic() - gap_start)
    events.append({"gap_ms": round((time.monotonic() - gap_start) * 1000), "open": True})
print(json.dumps({"probes": probes, "failed": failed, "longest_gap_ms": round(longest * 1000),
                  "answers": {a: answers[a] for a in order}, "events": events}))
