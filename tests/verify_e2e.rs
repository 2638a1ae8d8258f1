//! `lvsup verify` end to end in the lab. These need root, a kernel with ip_vs
//! and ipip, `lvsup apply` and the director daemon, so they are `#[ignore]`d
//! in plain `cargo test` and run by `tests/run` in the VM lab:
//!
//!     tests/lab/in-vm target/debug/deps/verify_e2e-* --ignored --test-threads=1
//!
//! Contract: `lvsup lab up -f FILE` → `lvsup apply -f FILE --yes` →
//! `lvsup verify -f FILE --json` exits 0 with measured figures (director
//! failover gap, real-server out/back times) for every example; deliberately
//! broken clusters exit 1 and say why.
//!
//! A lab up and an apply cost minutes under emulation, so verify runs where
//! a lab is up anyway: `tests/apply_e2e.rs` verifies the DR, NAT and TUN
//! examples in its labs (and, on DR, catches a real server without ARP
//! suppression and both daemons stopped). Here, in one lab of the minimal
//! example: first its hosts bare (before apply: verify must fail, clearly),
//! then with a stand-in VRRP daemon (verify's director failover for real
//! without the product daemon), then applied (verify passes), then against a
//! file claiming a weight the kernel does not have, the negative cases, and
//! last verify killed mid-failover (undone by the next apply or verify), all
//! in the same lab. Every part runs whenever
//! the test runs: no environment variable turns one off.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

mod common;
use common::{lvsup, reasons, rows, verify, verify_passes};

fn show(out: &Output) -> String {
    format!(
        "({})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(out: Output, what: &str) -> String {
    assert!(out.status.success(), "{what} failed {}", show(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `apply` and the director daemon are in this build (after their merge).
fn have_apply() -> bool {
    let a = lvsup(&["apply", "--help"]).status.success();
    let d = lvsup(&["director", "--help"]).status.success();
    assert!(a && d, "this build has no `lvsup apply` / `lvsup director`");
    a && d
}

fn cluster_name(file: &Path) -> String {
    lvsup::config::load(file)
        .unwrap_or_else(|e| panic!("{e}"))
        .name
}

/// A lab for `file`, torn down when dropped (also when a test fails).
struct Lab {
    file: String,
}

impl Lab {
    fn up(file: &str, extra: &[&str]) -> Lab {
        let _ = lvsup(&["lab", "down", "-f", file]);
        let mut args = vec!["lab", "up", "-f", file, "--timeout", "400"];
        args.extend_from_slice(extra);
        ok(lvsup(&args), "lab up");
        Lab { file: file.into() }
    }

    fn ssh(&self, host: &str, cmd: &str) -> Output {
        let cfg = format!(
            "/run/lvsup-lab/{}/ssh_config",
            cluster_name(Path::new(&self.file))
        );
        Command::new("ssh")
            .args(["-F", &cfg, host, "--", cmd])
            .stdin(Stdio::null())
            .output()
            .expect("ssh")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = lvsup(&["lab", "down", "-f", &self.file]);
    }
}

/// Bare hosts (lab up, nothing applied): verify must fail, clearly, on
/// every check it can make.
fn bare_hosts_fail_clearly(lab: &Lab, file: &str) {
    let (code, v) = verify(file, &[]);
    assert_eq!(code, 1);
    assert_eq!(v["passed"], false);
    let r = reasons(&v);
    assert!(r.contains("no director holds the VIP 172.18.250.99"), "{r}");
    assert!(r.contains("rs1 does not have the VIP 172.18.250.99"), "{r}");
    assert!(r.contains("rs1 has no ARP suppression on eth0"), "{r}");
    // Reachability fails; one run in the VM saw 9 of 10 connects fail
    // instead of 10 (cause not found), so the count is not pinned.
    assert!(r.contains("TCP 172.18.250.99:80: "), "{r}");
    assert!(r.contains(" of 10 TCP connects failed"), "{r}");
    assert_eq!(rows(&v, "scheduling")[0]["result"], "skip");
    assert_eq!(rows(&v, "director-failover")[0]["result"], "skip");
    // The hosts themselves answer: the demo server on the real servers.
    let o = lab.ssh("rs1", "curl -s -m 5 http://127.0.0.1/");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "rs1");
}

/// verify's director-failover path for real (ssh, systemctl, VIP polling,
/// the 10 ms prober, undo) without the product daemon: a stand-in unit
/// (`tests/fixtures/verify/fake-vrrp`: dr1 holds the VIP and a beacon, dr2
/// takes the VIP when the beacon is gone and gives it back) and a web
/// server on each director answering on the VIP. Removed again afterwards,
/// so that apply finds the hosts bare.
fn stand_in_daemon_fails_over(lab: &Lab, file: &str) {
    let unit = "lvsup-director-web.service";
    let (vip, master) = ("172.18.250.99", "172.18.250.10");
    let probe = lab.ssh(
        "dr1",
        "ip addr add 192.0.2.123/32 dev lo && ip addr del 192.0.2.123/32 dev lo",
    );
    assert!(
        probe.status.success(),
        "lab hosts lack CAP_NET_ADMIN: {}",
        show(&probe)
    );
    let script = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/verify/fake-vrrp"),
    )
    .expect("fake-vrrp");
    for (host, role) in [("dr1", "master"), ("dr2", "backup")] {
        let setup = format!(
            "cat > /usr/local/sbin/fake-vrrp <<'LVSUP_EOF'\n{script}LVSUP_EOF\n\
             chmod +x /usr/local/sbin/fake-vrrp; \
             printf '[Service]\\nExecStart=/usr/local/sbin/fake-vrrp {role} {vip} {master}\\n\
             ExecStop=/bin/sh -c \"echo leaving > /srv/beacon/index.html; sleep 2\"\\n\
             ExecStopPost=-/sbin/ip addr del {vip}/32 dev eth0\\n' \
             > /etc/systemd/system/{unit}; \
             mkdir -p /srv/www; hostname > /srv/www/index.html; systemctl daemon-reload; \
             systemctl start {unit}; \
             systemd-run -q --unit=fakeweb busybox httpd -f -p 80 -h /srv/www"
        );
        let o = lab.ssh(host, &setup);
        assert!(o.status.success(), "{}", show(&o));
    }
    // The bare run left this machine's neighbour entry for the VIP FAILED
    // (nobody answered ARP), and a gratuitous ARP does not revive it: drop
    // it, then wait until the stand-in serves the VIP (the VM lab showed 3
    // of the next 10 connects lost to it otherwise).
    let _ = Command::new("ip")
        .args(["neigh", "flush", "to", vip])
        .status();
    let addr: std::net::SocketAddr = format!("{vip}:80").parse().expect("addr");
    let t = Instant::now();
    while std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(1)).is_err() {
        assert!(
            t.elapsed().as_secs() < 30,
            "the stand-in daemon's VIP {vip} does not answer after 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (code, v) = verify(file, &[]);
    assert_eq!(code, 1, "real servers are bare: verify must fail overall");
    let d = rows(&v, "director-failover");
    // verify's path ran for real: dr2 took over, the VIP came back to dr1,
    // with figures. The stand-in is no VRRP daemon: its handover is not held
    // to the product's planned-stop bound (≤ 1 failed probe; the VM lab saw
    // it meet that once and lose 16 probes in 51 ms another time, when this
    // machine's ARP entry kept pointing at dr1), so that bound may be the
    // only reason it fails.
    let measured = d[0]["measured"].as_str().unwrap_or_default();
    assert!(measured.contains("then dr2, back on dr1"), "{}", d[0]);
    let why: Vec<&str> = d[0]["reasons"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r.as_str()).collect())
        .unwrap_or_default();
    assert!(
        d[0]["result"] == "pass"
            || (why.len() == 1 && why[0].contains("probes failed during the planned stop")),
        "{}",
        d[0]
    );
    let gap = d[0]["figures"]["gap_ms"].as_u64().expect("gap_ms");
    eprintln!(
        "stand-in director failover: gap {gap} ms ({})",
        d[0]["result"]
    );
    assert_eq!(rows(&v, "vip-holder")[0]["result"], "pass");
    assert_eq!(rows(&v, "reachability")[0]["result"], "pass");
    // Left as found: dr1's unit runs and holds the VIP again.
    let o = lab.ssh(
        "dr1",
        &format!("systemctl is-active {unit} && ip -o addr show dev eth0 | grep -q ' {vip}/'"),
    );
    assert!(o.status.success(), "{}", show(&o));
    for host in ["dr1", "dr2"] {
        let o = lab.ssh(
            host,
            &format!(
                "systemctl stop {unit} fakeweb; rm -f /etc/systemd/system/{unit} \
                 /usr/local/sbin/fake-vrrp; systemctl daemon-reload; \
                 ip addr del {vip}/32 dev eth0 2>/dev/null; true"
            ),
        );
        assert!(o.status.success(), "{}", show(&o));
    }
}

/// The minimal example in one lab: bare hosts fail clearly; a stand-in
/// daemon fails over; applied, verify passes with figures; then verify it
/// against a file that claims wrr 3:1 where the kernel shares equally (a
/// weight that never reached the director).
#[test]
#[ignore = "needs root, ip_vs and the lab VM; runs in tests/run"]
fn verify_minimal_bare_fails_stand_in_fails_over_applied_passes_wrong_weight_caught() {
    let file = "examples/minimal.toml";
    assert!(have_apply());
    let t = Instant::now();
    let lab = Lab::up(file, &[]);
    let t_up = t.elapsed().as_secs();
    bare_hosts_fail_clearly(&lab, file);
    stand_in_daemon_fails_over(&lab, file);
    let t_bare = t.elapsed().as_secs() - t_up;
    ok(lvsup(&["apply", "-f", file, "--yes"]), "apply");
    let t_apply = t.elapsed().as_secs() - t_up - t_bare;
    let figures = verify_passes(file, false);
    eprintln!(
        "{file}: {figures} (lab up {t_up} s, bare + stand-in {t_bare} s, apply {t_apply} s, \
         both verifies {} s)",
        t.elapsed().as_secs() - t_up - t_bare - t_apply
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let base = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
        .expect("minimal.toml");
    let claimed = base
        .replace("scheduler = \"rr\"", "scheduler = \"wrr\"")
        .replacen(
            "address = \"172.18.250.77\"",
            "address = \"172.18.250.77\"\nweight = 3",
            1,
        );
    assert_ne!(claimed, base);
    let c: PathBuf = dir.path().join("claimed.toml");
    std::fs::write(&c, claimed).expect("write");
    let (code, v) = verify(&c.display().to_string(), &["--skip-failover"]);
    assert_eq!(code, 1);
    assert_eq!(rows(&v, "scheduling")[0]["result"], "fail");
    assert!(
        reasons(&v).contains("shares do not follow the configured weights"),
        "{}",
        reasons(&v)
    );
    negative_cases(&lab, &base, dir.path());
    // The same applied lab (each lab up and apply costs minutes of CI under
    // the VM's emulation): verify killed mid-failover.
    killed_mid_failover_is_undone(&lab, file);
    drop(lab);
}

/// #13: one cluster per check that must fail it, each with its reason, in
/// the applied lab. The file claims what the cluster does not deliver:
/// - a wrong scheduler (file sh, kernel rr) → scheduling;
/// - a failover faster than the cluster's (advert 100 ms claimed, 1 s
///   running) → the crash row's gap exceeds its Master_Down_Interval bound;
/// - sync on while the directors run none → connection-sync;
/// - a real server that never comes back (its web server stopped and not
///   started again) → real-server-failover.
fn negative_cases(lab: &Lab, base: &str, dir: &Path) {
    let claim = |name: &str, text: String| -> String {
        assert_ne!(text, base, "{name}: the claim changes nothing");
        let p = dir.join(format!("{name}.toml"));
        std::fs::write(&p, text).expect("write claim");
        p.display().to_string()
    };
    let sh = claim(
        "sh",
        base.replace("scheduler = \"rr\"", "scheduler = \"sh\""),
    );
    let (code, v) = verify(&sh, &["--skip-failover"]);
    assert_eq!(code, 1, "{}", reasons(&v));
    let s = rows(&v, "scheduling");
    assert!(s.iter().any(|r| r["result"] == "fail"), "{v}");
    assert!(
        reasons(&v).contains("no client affinity"),
        "{}",
        reasons(&v)
    );

    let demo = "systemctl stop lvsup-lab-demo@80.service";
    let fast_sync = claim(
        "fast-sync",
        base.replace(
            "mode = \"dr\"",
            "mode = \"dr\"\nadvert_interval = \"100ms\"\nsync_daemon = true",
        ),
    );
    let (code, v) = verify(
        &fast_sync,
        &["--crash", "--rs-fail-cmd", demo, "--rs-recover-cmd", "true"],
    );
    // Put the stopped web servers back before anything can fail below.
    for rs in ["rs1", "rs2"] {
        let o = lab.ssh(rs, "systemctl start lvsup-lab-demo@80.service");
        assert!(o.status.success(), "{rs}: {}", show(&o));
    }
    assert_eq!(code, 1, "{}", reasons(&v));
    let d = rows(&v, "director-failover");
    let crash = d
        .iter()
        .find(|r| r["figures"].get("gap_limit_ms").is_some())
        .unwrap_or_else(|| panic!("no crash row: {v}"));
    assert_eq!(crash["result"], "fail", "{crash}");
    let (gap, limit) = (
        crash["figures"]["gap_ms"].as_u64().unwrap_or(0),
        crash["figures"]["gap_limit_ms"]
            .as_u64()
            .unwrap_or(u64::MAX),
    );
    // The frozen master keeps the VIP and IPVS keeps forwarding, so probes
    // may see no gap; the takeover itself is what comes too late. It is
    // timed by the backup daemon's own transition (one clock in the lab):
    // at 1 s adverts no earlier than 2.6 s after the freeze, against a
    // limit of 1.3 s for the 100 ms claimed. (Polled, with its 2 s of
    // slack, the two overlapped: CI saw this row pass once.)
    assert!(
        crash["measured"]
            .as_str()
            .unwrap_or("")
            .contains("Master after"),
        "{crash}"
    );
    assert!(
        crash.to_string().contains("became Master")
            && crash.to_string().contains("more than Master_Down_Interval"),
        "{crash}"
    );
    let c = rows(&v, "connection-sync");
    assert_eq!(c.len(), 1, "{v}");
    assert_eq!(c[0]["result"], "fail", "{}", c[0]);
    assert!(
        c[0].to_string().contains("broke across the failover"),
        "{}",
        c[0]
    );
    let f = rows(&v, "real-server-failover");
    assert_eq!(f[0]["result"], "fail", "{}", f[0]);
    eprintln!(
        "negative cases: crash gap {gap} ms > limit {limit} ms; connection-sync {}; real server: {}",
        c[0]["measured"], f[0]["measured"]
    );
}

/// Poll `cond` every 300 ms until it holds or `secs` pass; false on timeout.
fn wait_for(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + std::time::Duration::from_secs(secs);
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    false
}

/// `lvsup verify -f FILE --yes --json` in the background.
fn spawn_verify(file: &str, extra: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_lvsup"))
        .args(["verify", "-f", file, "--yes", "--json"])
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lvsup verify")
}

const UNDO_DIR: &str = "/var/lib/lvsup/web/verify-undo";
const UNIT: &str = "lvsup-director-web.service";

impl Lab {
    /// The undo records on `host` (file names).
    fn records(&self, host: &str) -> Vec<String> {
        let o = self.ssh(host, &format!("ls {UNDO_DIR} 2>/dev/null; true"));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(String::from)
            .collect()
    }

    fn active(&self, host: &str) -> bool {
        self.ssh(host, &format!("systemctl is-active --quiet {UNIT}"))
            .status
            .success()
    }

    fn prohibit_routes(&self, host: &str) -> String {
        String::from_utf8_lossy(&self.ssh(host, "ip route show type prohibit").stdout)
            .trim()
            .to_string()
    }

    /// Whole again: both daemons run, dr1 (the higher priority) holds the
    /// VIP, no prohibit route and no undo record anywhere, and verify's
    /// reachability and scheduling pass.
    fn assert_whole(&self, file: &str) {
        for d in ["dr1", "dr2"] {
            assert!(self.active(d), "{UNIT} not active on {d}");
        }
        assert!(
            wait_for(120, || {
                String::from_utf8_lossy(&self.ssh("dr1", "ip -4 -o addr show").stdout)
                    .contains("172.18.250.99/")
            }),
            "dr1 did not take the VIP back"
        );
        for h in ["dr1", "dr2", "rs1", "rs2"] {
            assert_eq!(self.records(h), Vec::<String>::new(), "records left on {h}");
            assert_eq!(self.prohibit_routes(h), "", "prohibit routes left on {h}");
        }
        // A real server just put back needs `rise` good checks (2 × 2 s
        // here) before it is in the pool again: up to three tries, 10 s apart.
        let mut last = String::new();
        for _ in 0..3 {
            let (code, v) = verify(file, &["--skip-failover"]);
            if code == 0 {
                return;
            }
            last = reasons(&v);
            std::thread::sleep(std::time::Duration::from_secs(10));
        }
        panic!("verify after the undo failed three times:\n{last}");
    }
}

/// Issue 14: a verify killed with SIGKILL mid-failover leaves the master's
/// daemon stopped (or a real server behind prohibit routes) with an undo
/// record on that host; `plan` shows it as drift, the next `apply` (director)
/// or `verify` (real server) undoes it first, says so, and the cluster is
/// whole again. SIGTERM is handled like Ctrl-C: verify puts the cluster back
/// itself before it exits.
///
/// Runs in the applied lab of
/// `verify_minimal_bare_fails_stand_in_fails_over_applied_passes_wrong_weight_caught`.
fn killed_mid_failover_is_undone(lab: &Lab, file: &str) {
    // The negative cases before left the cluster applied and whole.
    lab.assert_whole(file);

    // 1. SIGKILL while the master's daemon is stopped.
    let mut v = spawn_verify(file, &[]);
    let stopped = wait_for(600, || {
        !lab.records("dr1").is_empty() && !lab.active("dr1")
            || v.try_wait().ok().flatten().is_some()
    });
    assert!(stopped, "verify never stopped dr1's daemon");
    assert!(
        v.try_wait().expect("wait").is_none(),
        "verify ended before the kill"
    );
    v.kill().expect("SIGKILL");
    let _ = v.wait();
    assert!(
        !lab.active("dr1"),
        "the kill left dr1's daemon running: nothing to undo"
    );
    assert_eq!(lab.records("dr1").len(), 1, "the record of the stop");
    let plan = lvsup(&["plan", "-f", file]);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        text.contains(&format!(
            "~ interrupted verify left {UNIT} stopped on dr1 (from "
        )),
        "{}",
        show(&plan)
    );
    assert!(!lab.active("dr1"), "plan changed something");
    let out = lvsup(&["apply", "-f", file, "--yes"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "apply {}", show(&out));
    assert!(
        err.contains("dr1: undid an interrupted verify from ")
            && err.contains(&format!(": {UNIT} stopped on dr1")),
        "{}",
        show(&out)
    );
    lab.assert_whole(file);

    // 2. SIGKILL while a real server is behind prohibit routes; the next
    // verify undoes it before its checks and says so in its JSON. verify's
    // own prohibit routes last only until the director sees the server out
    // (a few seconds: a first VM run found them gone by the time of the
    // kill), so the routes here are added by a fail command that then
    // blocks: verify is certainly killed with them in place.
    let fail = "ip route add prohibit 172.18.250.10/32 && \
                ip route add prohibit 172.18.250.11/32 && sleep 600";
    let recover = "ip route del prohibit 172.18.250.10/32; ip route del prohibit 172.18.250.11/32";
    let mut v = spawn_verify(file, &["--rs-fail-cmd", fail, "--rs-recover-cmd", recover]);
    let mut failed = String::new();
    let out_of_pool = wait_for(900, || {
        for rs in ["rs1", "rs2"] {
            if !lab.records(rs).is_empty() && !lab.prohibit_routes(rs).is_empty() {
                failed = rs.to_string();
                return true;
            }
        }
        v.try_wait().ok().flatten().is_some()
    });
    assert!(
        out_of_pool && !failed.is_empty(),
        "verify never failed a real server"
    );
    v.kill().expect("SIGKILL");
    let _ = v.wait();
    assert_ne!(
        lab.prohibit_routes(&failed),
        "",
        "the kill left no route to undo"
    );
    // (its checks may find the server not yet back in the pool: rise)
    let (_, r) = verify(file, &["--skip-failover"]);
    assert_eq!(r["undo_failures"], serde_json::json!([]), "{r}");
    let undone = r["undone"].to_string();
    assert!(
        undone.contains(&format!("{failed}: undid an interrupted verify from "))
            && undone.contains(&format!(
                "{failed} failing its health checks (ip route add prohibit"
            )),
        "{undone}"
    );
    lab.assert_whole(file);

    // 3. SIGTERM (a CI cancel) while dr1's daemon is stopped: verify puts it
    // back itself, leaves no record and says it was interrupted.
    let v = spawn_verify(file, &[]);
    let pid = v.id().to_string();
    assert!(
        wait_for(600, || !lab.records("dr1").is_empty() && !lab.active("dr1")),
        "verify never stopped dr1's daemon"
    );
    let term = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(term.success());
    let out = v.wait_with_output().expect("verify ends");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(r["interrupted"], true, "{}", show(&out));
    assert_eq!(r["undo_failures"], serde_json::json!([]), "{}", show(&out));
    lab.assert_whole(file);
}
