//! The director daemon end to end, in the lab: two directors running
//! `lvsup director run` under the real systemd unit, two real servers, a
//! client probing the VIP every 10 ms (`tests/lab/probe.py`).
//!
//! Needs root; `#[ignore]`d so plain `cargo test` stays hermetic:
//!
//!     cargo test --test director_e2e -- --ignored --nocapture --test-threads=1
//!     tests/lab/in-vm target/debug/deps/director_e2e-* --ignored --test-threads=1   # with ip_vs
//!
//! Two modes:
//! - **with ip_vs** (the VM lab, and the default): DR for real — the real servers get the VIP
//!   on `lo` and ARP suppression (what apply would do), the daemons program
//!   IPVS with the connection-sync daemon on (`[cluster] sync_daemon`), and
//!   the client is answered by
//!   node1/node2 through the VIP; the IPVS weights are checked in the kernel.
//!   When ip_vs cannot be loaded the test fails: it never drops its IPVS
//!   assertions on its own.
//! - **without ip_vs**, asked for with `LVSUP_E2E_NO_IPVS=1` (a build
//!   machine whose kernel has no ip_vs): the daemons run with
//!   `--no-ipvs` and each director serves its own name on port 80, so the
//!   client sees which director holds the VIP; VRRP, VIP movement, gratuitous
//!   ARP, health checks, reload and the control socket are all exercised.
//!
//! Sequence: master holds the VIP and the client is served; `kill -9` of the
//! master's daemon → the backup owns the VIP and serves (gap measured; the
//! unit restarts the killed daemon, which removes its stale VIP and preempts
//! back); SIGTERM of the master → the backup takes over, gap measured; a real
//! server's service stopped → down (weight 0) within interval × fall +
//! interval, restarted → up after rise; SIGHUP with a broken config → refused,
//! the old config keeps serving; the master's link down and up; the VIP
//! removed by hand and put back; the master's daemon frozen (SIGSTOP) past
//! `WatchdogSec` → systemd restarts it and the cluster recovers; (IPVS) a
//! real server removed from the file drains: its held connection still
//! carries data both ways, then it is deleted; `drain = true` with a held
//! connection: no new ones, the held one still works.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::lvsup;

use lvsup::contract::status::Status;
use serde_json::Value;

const CLUSTER_FILE: &str = r#"
[cluster]
name = "e2edir"
vip = "10.78.0.100"
mode = "dr"
vrid = 78
advert_interval = "1s"
preempt = true
sync_daemon = true
metrics = "127.0.0.1:9178"
# tcp 15 s: entries left ESTABLISHED by the kill -9 and link-down steps (their
# clients' FINs went to the other director) expire before the drain step, which
# must see node2 deleted once its own held connection closes (that connection
# sends a header line every 2 s, so its entry stays fresh).
ipvs_timeouts = { tcp = "15s", udp = "60s" }

[[services]]
port = 80
scheduler = "rr"

[services.health]
check = "tcp"
interval = "1s"
timeout = "500ms"
fall = 3
rise = 2

[[directors]]
name = "lvs1"
address = "10.78.0.11/24"
priority = 150

[[directors]]
name = "lvs2"
address = "10.78.0.12/24"
priority = 100

[[real_servers]]
name = "node1"
address = "10.78.0.21/24"

[[real_servers]]
name = "node2"
address = "10.78.0.22/24"
"#;

const VIP: &str = "10.78.0.100";
const UNIT: &str = "lvsup-director-e2edir";

struct Lab {
    file: PathBuf,
    ssh_config: String,
    client_netns: String,
    state_dir: String,
    ipvs: bool,
    /// Network namespace of each lab host.
    netns: std::collections::BTreeMap<String, String>,
    /// Next client port for `curl` (see there).
    curl_port: std::cell::Cell<u16>,
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Lab {
    fn ssh(&self, host: &str, cmd: &str) -> Output {
        Command::new("ssh")
            .args(["-F", &self.ssh_config, host, "--", cmd])
            .stdin(Stdio::null())
            .output()
            .expect("ssh")
    }

    fn sh(&self, host: &str, cmd: &str) -> String {
        ok(self.ssh(host, cmd), &format!("{host}: {cmd}"))
    }

    /// `lvsup director status --json`, read through the daemon's own type.
    fn status(&self, host: &str) -> Status {
        let s = self.sh(host, "lvsup director status --json");
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("{host} status: {e}\n{s}"))
    }

    fn state(&self, host: &str) -> String {
        match self.ssh(host, "lvsup director status --json") {
            o if o.status.success() => serde_json::from_slice::<Status>(&o.stdout)
                .map(|st| st.vrrp.state)
                .unwrap_or_default(),
            _ => "down".into(),
        }
    }

    fn wait_state(&self, host: &str, want: &str, within: Duration) -> Duration {
        let t = Instant::now();
        loop {
            if self.state(host) == want {
                return t.elapsed();
            }
            assert!(
                t.elapsed() < within,
                "{host} not {want} within {within:?}: {}",
                self.sh(
                    host,
                    &format!("journalctl -u {UNIT} --no-pager -o cat | tail -30")
                )
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn holds_vip(&self, host: &str) -> bool {
        self.sh(host, "ip -o -4 addr show")
            .lines()
            .any(|l| l.contains(&format!("{VIP}/32")) && l.contains(":lvs78"))
    }

    /// One HTTP GET through the VIP, each from a client port of its own below
    /// the ephemeral range the probes use. A SYN from a port that still has an
    /// IPVS entry (the probes leave over a thousand, FIN_WAIT for 2 min) goes
    /// to that entry's real server whatever its weight — the kernel's
    /// conn_reuse_mode — so "new connections avoid a weight-0 server" is only
    /// testable with ports the director has not seen.
    fn curl(&self) -> String {
        let port = self.curl_port.get();
        self.curl_port.set(port + 1);
        let o = Command::new("ip")
            .args(["netns", "exec", &self.client_netns])
            .args(["curl", "-s", "-m", "2", "--local-port", &port.to_string()])
            .arg(format!("http://{VIP}/"))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// Start probing the VIP from the client for `secs`; join for the JSON.
    fn probe(&self, secs: f64) -> std::process::Child {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/probe.py");
        Command::new("ip")
            .args(["netns", "exec", &self.client_netns, "python3"])
            .arg(script)
            // Per-probe timeout: 0.2 s natively; 1 s in the VM lab, where
            // software emulation (and other VMs on the machine) stall a
            // healthy request for several hundred ms now and then.
            .args([
                format!("http://{VIP}/"),
                secs.to_string(),
                "0.01".into(),
                if self.ipvs { "1.0" } else { "0.2" }.into(),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("probe")
    }

    fn rs_health(&self, host: &str, rs: &str) -> (String, u64, Option<u64>) {
        let st = self.status(host);
        let r = st.services[0]
            .real_servers
            .iter()
            .find(|r| r.name == rs)
            .expect("rs");
        (
            r.health.clone(),
            u64::from(r.effective_weight),
            r.kernel.as_ref().map(|k| u64::from(k.weight)),
        )
    }
}

impl Lab {
    /// What apply would upload after `text` replaced the cluster file: each
    /// director's director.toml, then `systemctl reload` (SIGHUP).
    fn reload_with(&self, text: &str) {
        let spec = lvsup::config::parse_str("cluster.toml", text).expect("valid cluster file");
        let desired = lvsup::desired::desired_cluster(&spec).expect("desired");
        for h in ["lvs2", "lvs1"] {
            let host = desired
                .hosts
                .iter()
                .find(|x| x.name == h)
                .expect("director");
            let f = host
                .files
                .iter()
                .find(|f| f.path.ends_with("director.toml"))
                .expect("director.toml");
            let p = PathBuf::from(format!("{}/hosts/{h}/root", self.state_dir))
                .join(f.path.trim_start_matches('/'));
            std::fs::write(&p, &f.content).expect("write director.toml");
            self.sh(h, &format!("systemctl reload {UNIT}"));
        }
    }

    /// A long-lived TCP connection to the VIP from client port `port`: an
    /// HTTP/1.0 request whose header lines keep coming, one every 2 s (data
    /// from the client, so the IPVS entry and busybox httpd's 60 s header
    /// timeout stay fresh), until [`Held::answer`] ends the request and reads
    /// the reply, or [`release`] closes it.
    fn hold(&self, port: u16) -> Held {
        let script = format!(
            r#"import socket, sys, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", {port}))
s.connect(("{VIP}", 80))
s.sendall(b"GET / HTTP/1.0\r\n")
print("connected", flush=True)
lock, done = threading.Lock(), threading.Event()
def tick():
    n = 0
    while not done.wait(2):
        with lock:
            if not done.is_set():
                s.sendall(b"X-Held: %d\r\n" % n)
                n += 1
threading.Thread(target=tick, daemon=True).start()
for line in sys.stdin:
    if line.strip() == "answer":
        with lock:
            done.set()
            s.sendall(b"\r\n")
        s.settimeout(10)
        data = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            data += b
        body = data.split(b"\r\n\r\n", 1)[-1].decode(errors="replace").strip()
        print("answer", data.split(b"\r\n", 1)[0].decode(errors="replace"), "|", body, flush=True)
s.close()
"#
        );
        let mut c = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.client_netns,
                "python3",
                "-c",
                &script,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut out = std::io::BufReader::new(c.stdout.take().expect("stdout"));
        let mut line = String::new();
        std::io::BufRead::read_line(&mut out, &mut line).expect("read");
        assert_eq!(line.trim(), "connected", "client port {port}");
        Held {
            child: c,
            out,
            port,
        }
    }

    /// `(weight, active)` of destination `addr` in lvs1's kernel table
    /// (`ipvsadm -Ln`), `None` when it is not there.
    fn dest(&self, addr: &str) -> Option<(u64, u64)> {
        let t = self.sh("lvs1", "ipvsadm -Ln");
        t.lines().find_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() >= 6 && w[0] == "->" && w[1] == addr)
                .then(|| (w[3].parse().unwrap_or(999), w[4].parse().unwrap_or(999)))
        })
    }
}

/// Close a [`Lab::hold`] connection (FIN from the client).
/// 3,000 idle connections to the master's metrics port, held 5 s.
const FLOOD: &str = r#"ulimit -n 8192; python3 - <<'PY'
import socket, time
conns = []
for _ in range(3000):
    try:
        conns.append(socket.create_connection(("127.0.0.1", 9178), timeout=2))
    except OSError as e:
        print("connect failed:", e)
        break
time.sleep(5)
print(len(conns))
PY"#;

/// VRRPv3 adverts for VRID 78 claiming priority 254 and the longest
/// interval (4095 cs), sent 20 times from node1 (a real server, not a
/// director) to 224.0.0.18 with TTL 255 and a correct checksum.
const SPOOF: &str = r#"python3 - <<'PY'
import socket, struct, time
src = "10.78.0.21"
dst = "224.0.0.18"
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
msg = struct.pack("!BBBBHH", 0x31, 78, 254, 1, 4095, 0) + socket.inet_aton("10.78.0.100")
pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 112, len(msg))
msg = msg[:6] + struct.pack("!H", csum(pseudo + msg)) + msg[8:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(src))
for _ in range(20):
    s.sendto(msg, (dst, 0))
    time.sleep(0.1)
print("sent 20")
PY"#;

/// #14 attack: a host on the segment that is not a director advertises a
/// higher priority for the cluster's VRID. The directors drop its adverts
/// (counted as `unknown_peer`) and the VIP stays on the master.
fn spoofed_adverts_from_a_real_server_are_dropped(lab: &Lab) {
    let peers = |h: &str| lab.status(h).vrrp.counters.unknown_peer;
    let before = (peers("lvs1"), peers("lvs2"));
    let out = lab.sh("node1", SPOOF);
    assert!(out.contains("sent 20"), "{out}");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(lab.state("lvs1"), "Master");
    assert_eq!(lab.state("lvs2"), "Backup");
    assert!(
        lab.holds_vip("lvs1"),
        "the VIP left lvs1 after spoofed adverts"
    );
    assert!(!lab.holds_vip("lvs2"));
    let after = (peers("lvs1"), peers("lvs2"));
    assert!(
        after.0 >= before.0 + 20 && after.1 >= before.1 + 20,
        "spoofed adverts not counted as unknown_peer: {before:?} → {after:?}"
    );
    eprintln!("spoofed adverts: dropped and counted {before:?} → {after:?}; VIP stays on lvs1");
}

/// #14 attack: a flood of idle metrics clients (held longer than
/// fall × interval + interval = 4 s) changes no real server's health or
/// weight (the listener caps its connections; a probe without a socket would
/// be "unknown", never "down"), and metrics answers again afterwards.
fn metrics_flood_changes_no_weight(lab: &Lab) {
    let flips = |st: &Status| -> Vec<(String, u64, u32)> {
        st.services[0]
            .real_servers
            .iter()
            .map(|r| (r.health.clone(), r.flips, r.effective_weight))
            .collect()
    };
    let before = flips(&lab.status("lvs1"));
    assert!(before.iter().all(|(h, _, _)| h == "up"), "{before:?}");
    let out = lab.sh("lvs1", FLOOD);
    let made: usize = out
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("flood output: {out}"));
    assert!(
        made >= 1000,
        "the flood opened only {made} connections: {out}"
    );
    let after = flips(&lab.status("lvs1"));
    assert_eq!(
        before, after,
        "health/flips/weight changed under a metrics flood of {made}"
    );
    let m = lab.sh("lvs1", "busybox wget -qO- http://127.0.0.1:9178/metrics");
    assert!(
        m.contains("lvsup_director_vrrp_state"),
        "metrics after the flood: {m}"
    );
    eprintln!("metrics flood: {made} idle connections for 5 s, no health change");
}

/// A connection held by [`Lab::hold`].
struct Held {
    child: std::process::Child,
    out: std::io::BufReader<std::process::ChildStdout>,
    port: u16,
}

impl Held {
    /// Data both ways now: the request's last line goes out (after the
    /// header lines sent while it was held) and the reply comes back; the
    /// body is the real server's name. The server then closes its side; the
    /// client's FIN waits for [`release`].
    fn answer(&mut self) -> String {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().expect("stdin");
        writeln!(stdin, "answer").expect("ask the holder");
        stdin.flush().expect("flush");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut self.out, &mut line).expect("read the answer");
        let (status, body) = line
            .trim()
            .strip_prefix("answer ")
            .and_then(|l| l.split_once(" | "))
            .unwrap_or_else(|| panic!("held connection from port {}: {line:?}", self.port));
        assert!(
            status.ends_with(" 200 OK"),
            "held connection from port {}: {line:?}",
            self.port
        );
        body.to_string()
    }
}

/// Close a [`Lab::hold`] connection (FIN from the client).
fn release(mut c: Held) {
    drop(c.child.stdin.take());
    let _ = c.child.wait();
}

fn finish(child: std::process::Child) -> Value {
    let out = child.wait_with_output().expect("probe output");
    let s = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("probe: {e}: {s}"))
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::env::var_os("LVSUP_E2E_KEEP").is_none() {
            let _ = lvsup(&["lab", "down", "-f", &self.file.to_string_lossy()]);
        }
    }
}

/// Whether the IPVS half runs: always, unless `LVSUP_E2E_NO_IPVS=1` asks
/// for the native mode; ip_vs that cannot be loaded is a failure, not a
/// quieter test.
fn kernel_has_ipvs() -> bool {
    if std::env::var("LVSUP_E2E_NO_IPVS").is_ok_and(|v| v == "1") {
        eprintln!("LVSUP_E2E_NO_IPVS=1: native mode, the IPVS assertions do not run");
        return false;
    }
    let st = Command::new("modprobe").arg("ip_vs").status();
    assert!(
        Path::new("/proc/net/ip_vs").exists(),
        "ip_vs cannot be loaded (modprobe ip_vs: {st:?}): the IPVS assertions would be \
         dropped; run this test in the VM lab (tests/lab/in-vm) or set LVSUP_E2E_NO_IPVS=1 \
         for the native mode without them"
    );
    true
}

fn up() -> Lab {
    let dir = std::env::temp_dir().join("lvsup-director-e2e");
    std::fs::create_dir_all(&dir).expect("tmp");
    let file = dir.join("cluster.toml");
    std::fs::write(&file, CLUSTER_FILE).expect("write cluster file");
    let f = file.to_string_lossy().to_string();
    let ipvs = kernel_has_ipvs();
    let _ = lvsup(&["lab", "down", "-f", &f]);
    let mut args = vec!["lab", "up", "-f", &f];
    if !ipvs {
        args.push("--no-kernel-check");
    }
    ok(lvsup(&args), "lab up");
    let spec = lvsup::config::load(&file).expect("spec");
    let t = lvsup::lab::topology(&spec).expect("topology");
    let lab = Lab {
        file: file.clone(),
        ssh_config: format!("{}/ssh_config", t.state_dir()),
        client_netns: t.client.netns.clone(),
        state_dir: t.state_dir(),
        ipvs,
        netns: t
            .hosts
            .iter()
            .map(|h| (h.name.clone(), h.node.netns.clone()))
            .collect(),
        curl_port: std::cell::Cell::new(20000),
    };
    eprintln!(
        "director e2e: {} mode",
        if ipvs { "IPVS" } else { "no-ipvs (native)" }
    );

    // What apply would install on each director: the binary, director.toml
    // (the connection-sync daemon on from cluster.toml's `sync_daemon`; the
    // daemon ignores it under --no-ipvs), the systemd unit.
    let desired = lvsup::desired::desired_cluster(&spec).expect("desired");
    // the binary apply would install: LVSUP_DIRECTOR_BINARY (tests/run: a
    // release build), else this test's lvsup
    let bin = std::fs::read(
        common::director_binary().unwrap_or_else(|| env!("CARGO_BIN_EXE_lvsup").into()),
    )
    .expect("binary");
    for h in &desired.hosts {
        let root = PathBuf::from(format!("{}/hosts/{}/root", lab.state_dir, h.name));
        let director = matches!(h.role, lvsup::desired::Role::Director { .. });
        if !director {
            if ipvs {
                // apply's real-server part, by hand: VIP on lo, ARP
                // suppression. From the host's namespace: the lab's containers
                // see /proc/sys/net read-only.
                let ns = &t.host(&h.name).expect("lab host").node.netns;
                let o = Command::new("sh")
                    .arg("-c")
                    .arg(format!(
                        "ip netns exec {ns} sh -c 'sysctl -qw net.ipv4.conf.all.arp_ignore=1 \
                         net.ipv4.conf.all.arp_announce=2 net.ipv4.conf.lo.arp_ignore=1 \
                         net.ipv4.conf.lo.arp_announce=2 && ip addr add {VIP}/32 dev lo'"
                    ))
                    .output()
                    .expect("sh");
                ok(o, &format!("{}: VIP on lo", h.name));
            }
            continue;
        }
        for f in &h.files {
            let mut content = f.content.clone();
            if f.path.ends_with("director.toml") {
                assert!(content.contains("\nsync_daemon = true\n"), "{content}");
            }
            if f.path.ends_with(".service") && !ipvs {
                content = content.replace("director.toml\n", "director.toml --no-ipvs\n");
            }
            let p = root.join(f.path.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, content).expect("write");
        }
        let b = root.join("usr/local/bin/lvsup");
        std::fs::create_dir_all(b.parent().expect("parent")).expect("mkdir");
        std::fs::write(&b, &bin).expect("copy binary");
        std::fs::set_permissions(&b, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        if !ipvs {
            lab.sh(
                &h.name,
                "mkdir -p /srv/d && hostname > /srv/d/index.html && \
                 systemd-run -q --unit demo80 busybox httpd -f -p 80 -h /srv/d",
            );
        }
    }
    // Backup first, then the master, as apply orders them.
    for h in ["lvs2", "lvs1"] {
        lab.sh(
            h,
            &format!("systemctl daemon-reload && systemctl start {UNIT}"),
        );
    }
    lab
}

#[test]
#[ignore = "needs root and the lab (run in the VM lab via tests/run)"]
fn director_failover_health_reload() {
    let lab = up();

    // 1. The master (priority 150) holds the VIP once health is known; the
    //    client is served through it.
    let t = lab.wait_state("lvs1", "Master", Duration::from_secs(15));
    eprintln!("lvs1 Master {:.1}s after start", t.as_secs_f64());
    lab.wait_state("lvs2", "Backup", Duration::from_secs(5));
    assert!(lab.holds_vip("lvs1"));
    assert!(!lab.holds_vip("lvs2"));
    let answer = lab.curl();
    if lab.ipvs {
        assert!(answer == "node1" || answer == "node2", "answer {answer:?}");
        // The table is on both directors (kept identical, Backup too).
        for h in ["lvs1", "lvs2"] {
            let st = lab.status(h);
            assert_eq!(
                st.ipvs.last_reconcile.as_ref().map(|r| r.ok),
                Some(true),
                "{h}: {st:?}"
            );
            assert_eq!(lab.rs_health(h, "node1").2, Some(1), "{h} kernel weight");
        }
        assert_eq!(
            lab.status("lvs1").ipvs.sync_daemon.as_deref(),
            Some("master")
        );
        // [cluster] ipvs_timeouts, set by each daemon at start (tcpfin not
        // configured: the kernel's 120 s stays).
        for h in ["lvs1", "lvs2"] {
            let t = lab.sh(h, "ipvsadm -L --timeout");
            assert!(
                t.contains("Timeout (tcp tcpfin udp): 15 120 60"),
                "{h}: {t}"
            );
            let st = lab.status(h);
            assert_eq!(st.ipvs.timeouts.map(|t| t.tcp), Some(15), "{h}: {st:?}");
        }
    } else {
        assert_eq!(answer, "lvs1");
    }
    // The metrics listener ([cluster] metrics), scraped on each director.
    for (h, state) in [("lvs1", "Master"), ("lvs2", "Backup")] {
        let m = lab.sh(h, "busybox wget -qO- http://127.0.0.1:9178/metrics");
        assert!(
            m.lines()
                .any(|l| l == format!("lvsup_director_vrrp_state{{state=\"{state}\"}} 1")),
            "{h}: {m}"
        );
        assert!(
            m.contains("lvsup_director_real_server_health{service=\"tcp/10.78.0.100:80\",real_server=\"node1\",address=\"10.78.0.21:80\",state=\"up\"} 1"),
            "{h}: {m}"
        );
        if lab.ipvs {
            assert!(
                m.contains("lvsup_director_ipvs_real_server_weight{"),
                "{h}: {m}"
            );
        }
    }

    metrics_flood_changes_no_weight(&lab);
    spoofed_adverts_from_a_real_server_are_dropped(&lab);

    // 2. kill -9 the master's daemon: the backup takes over. The unit
    //    restarts the killed daemon (Restart=on-failure, 1 s): it removes its
    //    stale VIP at start and preempts back once health is known, so the
    //    backup's mastership is short; read it from its transition history
    //    rather than by polling over SSH (slow under emulation).
    let probe = lab.probe(12.0);
    std::thread::sleep(Duration::from_millis(1000));
    let before = lab.status("lvs2").vrrp.transitions.len();
    lab.sh("lvs1", &format!("systemctl kill -s KILL {UNIT} || true"));
    std::thread::sleep(Duration::from_secs(8));
    let t = lab.wait_state("lvs1", "Master", Duration::from_secs(10));
    eprintln!(
        "lvs1 Master again {:.2}s after the 8 s wait",
        t.as_secs_f64()
    );
    let st = lab.status("lvs2");
    let tr = &st.vrrp.transitions;
    let since: Vec<(String, String)> = tr[before.min(tr.len())..]
        .iter()
        .map(|t| (t.to.clone(), t.reason.clone()))
        .collect();
    eprintln!("lvs2 transitions since the kill: {since:?}");
    assert_eq!(
        since.first().map(|t| t.0.as_str()),
        Some("Master"),
        "{st:?}"
    );
    assert_eq!(since.last().map(|t| t.0.as_str()), Some("Backup"), "{st:?}");
    let log = lab.sh("lvs1", &format!("journalctl -u {UNIT} --no-pager -o cat"));
    assert!(log.contains("removed a stale lvsup address"), "{log}");
    let r = finish(probe);
    eprintln!("kill -9 probe: {r}");
    if !lab.ipvs {
        assert!(
            r["answers"]["lvs2"].as_u64().unwrap_or(0) > 0,
            "lvs2 served: {r}"
        );
    }
    let gap = r["longest_gap_ms"].as_u64().expect("gap");
    // advert 1 s, priority 100: Master_Down_Interval 3.6 s after the last advert.
    assert!(gap <= 4200, "kill -9 gap {gap} ms");
    assert!(!lab.holds_vip("lvs2"), "lvs2 released after preemption");

    // 3. SIGTERM the master: graceful handover, the backup takes over at once.
    let probe = lab.probe(5.0);
    std::thread::sleep(Duration::from_millis(1000));
    let t0 = Instant::now();
    lab.sh("lvs1", &format!("systemctl stop {UNIT}"));
    eprintln!("systemctl stop took {:.2}s", t0.elapsed().as_secs_f64());
    lab.wait_state("lvs2", "Master", Duration::from_secs(2));
    assert!(!lab.holds_vip("lvs1"));
    let r = finish(probe);
    eprintln!("SIGTERM probe: {r}");
    let failed = r["failed"].as_u64().expect("failed");
    // At most the one request in flight at the switch (its next packets go to
    // the new MAC); the goal of 0 needs the sync daemon (IPVS mode).
    assert!(failed <= 1, "SIGTERM: {failed} failed probes");
    lab.sh("lvs1", &format!("systemctl start {UNIT}"));
    lab.wait_state("lvs1", "Master", Duration::from_secs(12));

    // 4. A real server's service stops: down, weight 0, within
    //    interval × fall + interval (4 s); back after rise (2 s). With IPVS
    //    the service is first deleted by hand (`ipvsadm -D`): a health
    //    change is carried out from what the daemon last wrote, without
    //    reading the kernel, so its edit fails, and the daemon then reads
    //    the kernel and puts the whole service back at once, not at the
    //    next 30 s reconcile.
    if lab.ipvs {
        lab.sh("lvs1", &format!("ipvsadm -D -t {VIP}:80"));
    }
    lab.sh("node1", "systemctl stop lvsup-lab-demo@80");
    let t = Instant::now();
    loop {
        let (h, w, k) = lab.rs_health("lvs1", "node1");
        if h == "down" && w == 0 && (!lab.ipvs || k == Some(0)) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "node1 still {h} weight {w} kernel {k:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("node1 removed after {:.2}s", t.elapsed().as_secs_f64());
    // the checks that took it down are counted (fall = 3), in the status and
    // the metrics
    let failed = |st: &Status, rs: &str| {
        st.services[0]
            .real_servers
            .iter()
            .find(|r| r.name == rs)
            .map(|r| r.failed_checks)
    };
    let st = lab.status("lvs1");
    let down_by = failed(&st, "node1").expect("node1");
    assert!(down_by >= 3, "node1 down after {down_by} failed checks");
    let m = lab.sh("lvs1", "busybox wget -qO- http://127.0.0.1:9178/metrics");
    let line = m
        .lines()
        .find(|l| {
            l.starts_with("lvsup_director_real_server_failed_checks_total{")
                && l.contains("real_server=\"node1\"")
        })
        .unwrap_or_default();
    let scraped: u64 = line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(
        scraped >= down_by,
        "metrics: {line:?} against status {down_by}"
    );
    if lab.ipvs {
        // put back by the failed edit's fallback, or (one run in ten: the
        // deletion fell just before it) by the periodic reconcile
        let log = lab.sh("lvs1", &format!("journalctl -u {UNIT} --no-pager -o cat"));
        assert!(
            log.contains("reading the kernel's table and reconciling all of it")
                || log.contains("trigger=\"periodic\" ops="),
            "{log}"
        );
        assert!(lab.sh("lvs1", "ipvsadm -Ln").contains("10.78.0.22:80"));
        for _ in 0..6 {
            assert_eq!(lab.curl(), "node2", "only node2 serves");
        }
    }
    lab.sh("node1", "systemctl start lvsup-lab-demo@80");
    let t = Instant::now();
    loop {
        let (h, w, k) = lab.rs_health("lvs1", "node1");
        if h == "up" && w == 1 && (!lab.ipvs || k == Some(1)) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(4),
            "node1 still {h} weight {w}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("node1 back after {:.2}s", t.elapsed().as_secs_f64());

    // 5. SIGHUP with a broken config: refused, the old one keeps serving.
    let before = lab.status("lvs1").config.sha256;
    lab.sh(
        "lvs1",
        &format!(
            "cp /etc/lvsup/e2edir/director.toml /tmp/good && echo 'bogus = [' >> /etc/lvsup/e2edir/director.toml \
             && systemctl reload {UNIT} && sleep 1"
        ),
    );
    let st = lab.status("lvs1");
    assert_eq!(
        st.config.last_reload.as_ref().map(|r| r.ok),
        Some(false),
        "{st:?}"
    );
    assert_eq!(st.config.sha256, before);
    assert_eq!(st.vrrp.state, "Master");
    assert!(
        !lab.curl().is_empty(),
        "still served after a refused reload"
    );
    lab.sh(
        "lvs1",
        &format!(
            "cp /tmp/good /etc/lvsup/e2edir/director.toml && systemctl reload {UNIT} && sleep 1"
        ),
    );
    assert_eq!(
        lab.status("lvs1").config.last_reload.as_ref().map(|r| r.ok),
        Some(true)
    );
    assert_eq!(
        lab.state("lvs1"),
        "Master",
        "a reload does not move the VIP"
    );

    // 6. The master's link goes down for 6 s (the box is cut off): the
    //    backup takes over within Master_Down_Interval; the master releases
    //    the VIP (fault) and, when its link is back, does not take the VIP
    //    back before fresh health checks (no failed probes at failback).
    let ns = lab.netns["lvs1"].clone();
    let link = |state: &str| {
        let o = Command::new("ip")
            .args(["-n", &ns, "link", "set", "eth0", state])
            .output()
            .expect("ip link");
        ok(o, &format!("link {state}"));
    };
    let vip_on = |host: &str| {
        let o = Command::new("ip")
            .args(["-n", &lab.netns[host], "-o", "-4", "addr", "show"])
            .output()
            .expect("ip addr");
        String::from_utf8_lossy(&o.stdout).contains(&format!("{VIP}/32"))
    };
    let probe = lab.probe(16.0);
    std::thread::sleep(Duration::from_millis(1000));
    link("down");
    // The daemon hears the kernel's link announcement: the VIP goes at once
    // (the 30 s poll is only a backstop).
    let took = vip_within_2s(false, "released after link down", &vip_on);
    std::thread::sleep(Duration::from_secs(6).saturating_sub(took));
    link("up");
    std::thread::sleep(Duration::from_secs(3));
    lab.wait_state("lvs1", "Master", Duration::from_secs(10));
    let r = finish(probe);
    eprintln!("link down/up probe: {r}");
    for h in ["lvs1", "lvs2"] {
        eprintln!("{h} transitions: {:?}", lab.status(h).vrrp.transitions);
    }
    let gaps: Vec<u64> = r["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["gap_ms"].as_u64())
        .collect();
    if !lab.ipvs {
        // Natively the answers come from the director itself: cut off, nobody
        // answers until the backup takes over. (In the VM lab run of Nov 21
        // no probe failed at all while the master was cut off: not explained
        // yet, so not asserted there.)
        assert!(
            !gaps.is_empty(),
            "the cut-off master's VIP was unreachable for a while: {r}"
        );
    }
    // Takeover: Master_Down_Interval (3.6 s) after the last advert heard,
    // plus the probe's own timeout: a probe whose SYN went to the cut-off
    // director fails only when its timeout (1 s in the VM, 0.2 s natively)
    // runs out, even if the backup took over meanwhile (VM runs: 3012,
    // 3018, 4074 ms).
    let takeover_bound = 3600 + if lab.ipvs { 1000 } else { 200 } + 400;
    if let Some(g) = gaps.first() {
        assert!(
            *g <= takeover_bound,
            "takeover gap {g} ms > {takeover_bound}"
        );
    }
    // Failback: natively not one failed probe. Through IPVS in the VM, one
    // request in flight at the switch may fail (seen once in four runs: a 38 ms
    // refusal, the returning director's sync-daemon backup had just restarted),
    // never a run of failures onto weight-0 destinations.
    let after: Vec<&u64> = gaps.iter().skip(1).collect();
    if lab.ipvs {
        assert!(
            after.len() <= 1 && after.iter().all(|g| **g < 500),
            "failback cost probes: {r}"
        );
    } else {
        assert!(after.is_empty(), "failback cost probes: {r}");
    }
    let log = lab.sh("lvs1", &format!("journalctl -u {UNIT} --no-pager -o cat"));
    assert!(log.contains("VRRP fault"), "{log}");

    // 7. The VIP removed by hand on the master: put back at once, on the
    //    kernel's address announcement (the 30 s check is only a backstop).
    let o = Command::new("ip")
        .args([
            "-n",
            &ns,
            "addr",
            "del",
            &format!("{VIP}/32"),
            "dev",
            "eth0",
        ])
        .output()
        .expect("ip addr del");
    ok(o, "ip addr del VIP");
    vip_within_2s(true, "put back after `ip addr del`", &vip_on);

    // 8. The master's daemon hangs (frozen: SIGSTOP of its MainPID) for longer
    //    than the unit's WatchdogSec (30 s): systemd kills it and starts it
    //    again; the cluster recovers.
    watchdog_restarts_a_hung_daemon(&lab);

    if lab.ipvs {
        drain(&lab);
    }
}

/// Step 8 (#12, `Type=notify` with `WatchdogSec=30s`): lvs1's daemon frozen
/// with SIGSTOP sends neither adverts nor watchdog pings. lvs2 takes over
/// within Master_Down_Interval; within WatchdogSec of the last ping systemd
/// kills the hung daemon (result `watchdog`) and `Restart=` starts a new one
/// (NRestarts goes up, a new MainPID), which removes the VIP the frozen one
/// left and preempts back: the VIP on lvs1 alone, its IPVS table reconciled
/// with both real servers at weight 1, the VIP served. lvs1's own status is
/// not asked while it is frozen (its control socket would not answer).
fn watchdog_restarts_a_hung_daemon(lab: &Lab) {
    let show = |p: &str| {
        lab.sh("lvs1", &format!("systemctl show -p {p} --value {UNIT}"))
            .trim()
            .to_string()
    };
    let restarts: u64 = show("NRestarts").parse().expect("NRestarts");
    let pid = show("MainPID");
    assert!(
        pid.parse::<u32>().is_ok_and(|p| p > 0),
        "lvs1 MainPID {pid:?}"
    );
    // The daemon under its unit has opted out of transparent huge pages
    // (daemon::load::no_huge_pages: trims stay given back).
    let thp = lab.sh(
        "lvs1",
        &format!("awk '/^THP_enabled:/ {{ print $2 }}' /proc/{pid}/status"),
    );
    assert_eq!(thp.trim(), "0", "lvs1's daemon THP_enabled: {thp:?}");
    let t = Instant::now();
    lab.sh("lvs1", &format!("kill -STOP {pid}"));
    lab.wait_state("lvs2", "Master", Duration::from_secs(10));
    eprintln!(
        "lvs1 frozen: lvs2 Master after {:.1}s",
        t.elapsed().as_secs_f64()
    );
    // The watchdog fires 15-30 s after the freeze (pings every WatchdogSec/2);
    // then the kill (SIGABRT with SIGCONT, or SIGKILL after TimeoutStopSec=15s)
    // and RestartSec=1s.
    loop {
        if show("NRestarts").parse::<u64>().is_ok_and(|n| n > restarts) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "lvs1's frozen daemon not restarted {:.0}s after SIGSTOP (WatchdogSec=30s): {}",
            t.elapsed().as_secs_f64(),
            lab.sh(
                "lvs1",
                &format!("systemctl status --no-pager {UNIT} || true")
            )
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let restarted = t.elapsed();
    let new_pid = show("MainPID");
    assert_ne!(
        new_pid, pid,
        "the hung daemon is still the unit's main process"
    );
    let log = lab.sh("lvs1", &format!("journalctl -u {UNIT} --no-pager -o cat"));
    assert!(log.contains("Failed with result 'watchdog'"), "{log}");
    lab.wait_state("lvs1", "Master", Duration::from_secs(20));
    lab.wait_state("lvs2", "Backup", Duration::from_secs(5));
    let t1 = Instant::now();
    while !lab.holds_vip("lvs1") || lab.holds_vip("lvs2") {
        assert!(
            t1.elapsed() < Duration::from_secs(5),
            "VIP after the watchdog restart: lvs1 {}, lvs2 {}",
            lab.holds_vip("lvs1"),
            lab.holds_vip("lvs2")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    if lab.ipvs {
        let st = lab.status("lvs1");
        assert_eq!(
            st.ipvs.last_reconcile.as_ref().map(|r| r.ok),
            Some(true),
            "{st:?}"
        );
        let t1 = Instant::now();
        while lab.dest("10.78.0.21:80").map(|d| d.0) != Some(1)
            || lab.dest("10.78.0.22:80").map(|d| d.0) != Some(1)
        {
            assert!(
                t1.elapsed() < Duration::from_secs(10),
                "lvs1's IPVS table after the watchdog restart:\n{}",
                lab.sh("lvs1", "ipvsadm -Ln")
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        let answer = lab.curl();
        assert!(answer == "node1" || answer == "node2", "answer {answer:?}");
    } else {
        assert_eq!(lab.curl(), "lvs1");
    }
    eprintln!(
        "watchdog: lvs1's frozen daemon (pid {pid}) restarted {:.1}s after SIGSTOP (new pid {new_pid}); cluster back {:.1}s after the freeze",
        restarted.as_secs_f64(),
        t.elapsed().as_secs_f64()
    );
}

/// Step 9, graceful drain (IPVS only): a real server removed from the file
/// with an open connection stays at weight 0, the connection still carries
/// data both ways, and once it closes the server is deleted; `drain = true`
/// puts a server holding a connection at weight 0: new connections avoid it,
/// the held one still carries data both ways; a weight changed by hand is
/// restored with a log line saying so.
fn drain(lab: &Lab) {
    const NODE1: &str = "10.78.0.21:80";
    const NODE2: &str = "10.78.0.22:80";
    const NODE2_BLOCK: &str = "[[real_servers]]\nname = \"node2\"\naddress = \"10.78.0.22/24\"\n";
    assert!(CLUSTER_FILE.contains(NODE2_BLOCK));
    // Both servers in the pool (an earlier step may have left node1 at weight
    // 0 until its health came back) and no active connection left: entries
    // left ESTABLISHED by the kill -9 and link-down steps expire after the
    // cluster's 15 s tcp timeout, and the watchdog step before this one took
    // longer than that. Node2 must then go as soon as the connection held
    // below closes: no earlier connection can keep it draining.
    let t = Instant::now();
    while lab.dest(NODE1) != Some((1, 0)) || lab.dest(NODE2) != Some((1, 0)) {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "node1/node2 not both at weight 1 without active connections: {:?} {:?}\n{}",
            lab.dest(NODE1),
            lab.dest(NODE2),
            lab.sh("lvs1", "ipvsadm -Lnc")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut held = hold_on_node2(lab, 31001);
    let before = lab.dest(NODE2).expect("node2 in the table");
    assert_eq!(before, (1, 1), "node2 before: {before:?}");

    // node2 removed from the file: weight 0, kept while the connection lives.
    lab.reload_with(&CLUSTER_FILE.replace(NODE2_BLOCK, ""));
    let t = Instant::now();
    while lab.dest(NODE2).map(|d| d.0) != Some(0) {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "node2 not at weight 0: {:?}",
            lab.dest(NODE2)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    let d = lab.dest(NODE2);
    assert_eq!(d, Some((0, 1)), "node2 while the connection lives");
    let st = lab.status("lvs1");
    let dr = st.services[0].draining.first().expect("draining");
    assert_eq!(dr.name, "node2", "{st:?}");
    assert!(dr.left_ms > 200_000, "{st:?}");
    let text = lab.sh("lvs1", "lvsup director status");
    assert!(
        text.contains("removed from the config, draining (1 active,"),
        "{text}"
    );
    for _ in 0..4 {
        assert_eq!(
            lab.curl(),
            "node1",
            "new connections avoid the draining node2"
        );
    }
    // The held connection still works: the rest of its request goes out
    // through the director, node2's reply comes back.
    assert_eq!(
        held.answer(),
        "node2",
        "the held connection after node2 left the file"
    );
    assert_eq!(lab.dest(NODE2), Some((0, 1)), "node2 after the reply");
    // The connection closes: node2 goes (drain check every 2 s).
    release(held);
    let t = Instant::now();
    while lab.dest(NODE2).is_some() {
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "node2 still there after its last connection closed: {:?}\n{}",
            lab.dest(NODE2),
            lab.sh("lvs1", "ipvsadm -Lnc")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "node2 deleted {:.1}s after its last connection closed",
        t.elapsed().as_secs_f64()
    );
    let log = lab.sh("lvs1", &format!("journalctl -u {UNIT} --no-pager -o cat"));
    assert!(
        log.contains("drained: no connection left, deleting"),
        "{log}"
    );

    // drain = true on a server that holds a connection: weight 0, new
    // connections avoid it, the held one still carries data both ways. node2
    // back in the file first, up (rise 2) at weight 1.
    lab.reload_with(CLUSTER_FILE);
    let t = Instant::now();
    while lab.dest(NODE2).map(|d| d.0) != Some(1) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "node2 back in the file: {:?}",
            lab.dest(NODE2)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut held = hold_on_node2(lab, 31011);
    lab.reload_with(&CLUSTER_FILE.replace(
        "address = \"10.78.0.22/24\"\n",
        "address = \"10.78.0.22/24\"\ndrain = true\n",
    ));
    let t = Instant::now();
    while lab.dest(NODE2).map(|d| d.0) != Some(0) {
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "node2 with drain = true: {:?}",
            lab.dest(NODE2)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let st = lab.status("lvs1");
    let rs = &st.services[0].real_servers[1];
    assert!(rs.drain, "{st:?}");
    assert_eq!(rs.effective_weight, 0, "{st:?}");
    for _ in 0..4 {
        assert_eq!(
            lab.curl(),
            "node1",
            "drain = true: no new connections to node2"
        );
    }
    assert_eq!(
        lab.dest(NODE2),
        Some((0, 1)),
        "drain = true: the held connection to node2"
    );
    assert_eq!(
        held.answer(),
        "node2",
        "the held connection after drain = true"
    );
    release(held);
    // drain = true keeps it in the table (at weight 0), connection or not.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        lab.dest(NODE2).map(|d| d.0),
        Some(0),
        "drain = true keeps node2"
    );

    // A weight changed by hand: restored at the next reconcile, and logged.
    lab.sh(
        "lvs1",
        &format!("ipvsadm -e -t {VIP}:80 -r {NODE1} -g -w 7"),
    );
    lab.sh("lvs1", &format!("systemctl reload {UNIT}"));
    let t = Instant::now();
    while lab.dest(NODE1).map(|d| d.0) != Some(1) {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "node1 weight not restored"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = lab.sh("lvs1", &format!("journalctl -u {UNIT} --no-pager -o cat"));
    assert!(log.contains("weight changed outside lvsup"), "{log}");
    // A reload without a drain is carried out from the daemon's record,
    // without reading the kernel (node2 back, drain = true); the table is
    // read right after it, by the sweep that repaired the weight above.
    let reconciled = |read: bool| {
        log.lines().any(|l| {
            l.contains("ipvs: reconciled")
                && l.contains("trigger=\"reload\"")
                && l.contains(&format!("read={read}"))
        })
    };
    assert!(reconciled(false), "no reload from the record:\n{log}");
    assert!(reconciled(true), "no sweep after a reload:\n{log}");
}

/// Two connections in a row from client ports `port` and `port + 1`: rr puts
/// one on each server; node2's is kept, the other closed.
fn hold_on_node2(lab: &Lab, port: u16) -> Held {
    let (a, b) = (lab.hold(port), lab.hold(port + 1));
    let conns = lab.sh("lvs1", "ipvsadm -Lnc");
    let on_node2 = |port: u16| {
        conns
            .lines()
            .any(|l| l.contains(&format!(":{port} ")) && l.contains("10.78.0.22:80"))
    };
    match (on_node2(a.port), on_node2(b.port)) {
        (true, _) => {
            release(b);
            a
        }
        (false, true) => {
            release(a);
            b
        }
        _ => panic!("no connection went to node2:\n{conns}"),
    }
}

/// Wait (at most 2 s, polling every 20 ms) until lvs1 holds the VIP
/// (`held`) or not; prints and returns how long it took.
fn vip_within_2s(held: bool, what: &str, vip_on: &dyn Fn(&str) -> bool) -> Duration {
    let t = Instant::now();
    while vip_on("lvs1") != held {
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "VIP not {what} within 2 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("VIP {what}: {:.0} ms", t.elapsed().as_secs_f64() * 1000.0);
    t.elapsed()
}
