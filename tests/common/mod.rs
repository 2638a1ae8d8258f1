//! `lvsup verify` helpers shared by the lab tests that run it: apply_e2e runs
//! verify on the DR, NAT and TUN examples in the lab it applied (a lab up and
//! an apply cost minutes under the VM's emulation, so verify does not build
//! its own), verify_e2e on the minimal example and on bare hosts.
#![allow(dead_code)] // each test crate uses its own subset

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use serde_json::Value;

/// `lvsup verify -f FILE --json --yes EXTRA…`: exit code and the JSON report.
pub fn verify(file: &str, extra: &[&str]) -> (i32, Value) {
    verify_with(file, &["--yes"], extra)
}

/// `lvsup verify -f FILE --json FLAGS… EXTRA…` with no terminal on stdin.
pub fn verify_with(file: &str, flags: &[&str], extra: &[&str]) -> (i32, Value) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lvsup"));
    cmd.args(["verify", "-f", file, "--json"])
        .args(flags)
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null());
    let out = output_within(cmd, "lvsup verify", command_limit());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify --json printed no JSON ({e}) ({})\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    eprintln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    (out.status.code().unwrap_or(-1), v)
}

/// The report's rows of one check.
pub fn rows<'a>(v: &'a Value, check: &str) -> Vec<&'a Value> {
    v["checks"]
        .as_array()
        .map(|a| a.iter().filter(|c| c["check"] == check).collect())
        .unwrap_or_default()
}

/// Every reason the report gives, one per line.
pub fn reasons(v: &Value) -> String {
    v["checks"]
        .as_array()
        .map(|a| {
            a.iter()
                .flat_map(|c| c["reasons"].as_array().cloned().unwrap_or_default())
                .filter_map(|r| r.as_str().map(String::from))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// On an applied cluster: `verify` passes with measured figures (director
/// failover gap, real server out/back), every scheduling row counted what
/// was accepted; a second verify without failover still passes, so the
/// first left the cluster as it found it. With `crash`, verify also freezes
/// the master (`--crash`) and the second director-failover row must pass its
/// Master_Down_Interval bound. Every service has a reachability and a
/// scheduling row that pass: UDP services too (each datagram answered, the
/// lab's responders' replies naming the servers the counters say). Returns a
/// one-line summary.
pub fn verify_passes(file: &str, crash: bool) -> String {
    let (code, v) = verify(file, if crash { &["--crash"] } else { &[] });
    assert_eq!(code, 0, "verify failed:\n{}", reasons(&v));
    assert_eq!(v["passed"], true);
    let spec = lvsup::config::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
        .unwrap_or_else(|e| panic!("{e}"));
    let has = |p| spec.services.iter().any(|s| s.protocol == p);
    use lvsup::config::Protocol;
    // A TCP and a UDP service: each failover is timed on both (a row each).
    let per_failover = if has(Protocol::Tcp) && has(Protocol::Udp) {
        2
    } else {
        1
    };
    let d = rows(&v, "director-failover");
    assert_eq!(d.len(), per_failover * if crash { 2 } else { 1 }, "{v}");
    for row in &d {
        assert_eq!(row["result"], "pass", "{row}");
    }
    let crash_gap = if crash {
        let c = d
            .iter()
            .find(|r| r["figures"].get("gap_limit_ms").is_some())
            .expect("a crash row (with gap_limit_ms)");
        let gap = c["figures"]["gap_ms"].as_u64().expect("crash gap_ms");
        let limit = c["figures"]["gap_limit_ms"].as_u64().expect("gap_limit_ms");
        assert!(gap <= limit, "{c}");
        format!("; crash gap {gap} ms (limit {limit} ms)")
    } else {
        String::new()
    };
    let gap = d[0]["figures"]["gap_ms"].as_u64().expect("gap_ms");
    // The backup's daemon was asked for its state (`lvsup director status
    // --json`) and said Master: verify reads the field the daemon writes.
    let measured = d[0]["measured"].as_str().unwrap_or_default();
    assert!(measured.contains("(Master)"), "{measured}");
    let f = rows(&v, "real-server-failover");
    assert_eq!(f[0]["result"], "pass", "{}", f[0]);
    let out = f[0]["figures"]["out_ms"].as_u64().expect("out_ms");
    let back = f[0]["figures"]["back_ms"].as_u64().expect("back_ms");
    for s in rows(&v, "scheduling") {
        assert_eq!(s["result"], "pass", "{s}");
        assert_eq!(s["figures"]["counted"], s["figures"]["accepted"], "{s}");
    }
    let mut udp = String::new();
    for svc in &spec.services {
        let label = svc.label();
        let row = |check: &str| {
            rows(&v, check)
                .into_iter()
                .find(|r| r["subject"] == label.as_str())
                .cloned()
                .unwrap_or_else(|| panic!("no {check} row for {label}: {v}"))
        };
        let (a, s) = (row("reachability"), row("scheduling"));
        assert_eq!(a["result"], "pass", "{a}");
        assert_eq!(s["result"], "pass", "{s}");
        if svc.protocol == Protocol::Udp {
            // The lab's responder answers with the real server's name: the
            // replies were compared with the counters, and agreed.
            let m = s["measured"].as_str().unwrap_or_default();
            assert!(m.contains("(agree with the counters)"), "{s}");
            assert!(s["figures"]["accepted"].as_u64().unwrap_or(0) > 0, "{s}");
            udp.push_str(&format!("; {label}: {m}"));
            let f = d
                .iter()
                .find(|r| {
                    r["subject"]
                        .as_str()
                        .is_some_and(|x| x.ends_with(&format!("{label})")))
                })
                .unwrap_or_else(|| panic!("no director-failover row for {label}: {v}"));
            udp.push_str(&format!(
                "; its failover gap {} ms",
                f["figures"]["gap_ms"].as_u64().expect("UDP gap_ms")
            ));
        }
    }
    // Connections held across the planned-stop failover, one row per TCP
    // service: all kept with sync_daemon = true; without it SKIP, and the
    // claim its reason makes (the new director resets them) must hold: fewer
    // kept than opened (all 5 kept would mean the test showed nothing, or
    // connections were synced after all).
    let mut sync = String::new();
    for svc in spec.services.iter().filter(|s| s.protocol == Protocol::Tcp) {
        let label = svc.label();
        let r = rows(&v, "connection-sync")
            .into_iter()
            .find(|r| r["subject"].as_str().is_some_and(|x| x.starts_with(&label)))
            .cloned()
            .unwrap_or_else(|| panic!("no connection-sync row for {label}: {v}"));
        let (kept, opened) = (&r["figures"]["kept"], &r["figures"]["opened"]);
        if spec.sync_daemon {
            assert_eq!(r["result"], "pass", "{r}");
            assert_eq!(kept, opened, "{r}");
            assert_eq!(opened.as_u64(), Some(5), "{r}");
        } else {
            assert_eq!(r["result"], "skip", "{r}");
            assert_eq!(opened.as_u64(), Some(5), "{r}");
            assert!(
                kept.as_u64().is_some_and(|k| k < 5),
                "sync_daemon = false, yet every held connection survived the failover: {r}"
            );
        }
        sync.push_str(&format!("; connections kept {kept} of {opened}"));
    }
    // Without --yes and without a terminal to ask on, the disruptive checks are
    // refused and said so in their rows; the rest runs and passes.
    let (code, v) = verify_with(file, &[], &[]);
    assert_eq!(code, 0, "{}", reasons(&v));
    for check in ["director-failover", "real-server-failover"] {
        let r = rows(&v, check);
        assert_eq!(r.len(), 1, "{v}");
        assert_eq!(r[0]["result"], "skip", "{}", r[0]);
        assert!(r[0].to_string().contains("no terminal"), "{}", r[0]);
    }
    format!(
        "director failover gap {gap} ms{crash_gap}; real server out {out} ms, back {back} ms{udp}{sync}"
    )
}

/// A lab brought up from `file` (which lives in `_dir`); `lab down` when
/// dropped, also when a test fails.
pub struct Lab {
    pub file: PathBuf,
    pub _dir: tempfile::TempDir,
}

impl Lab {
    /// `sh -c CMD` on a lab host (`lab exec` keeps argv intact on the host,
    /// each argument quoted for the remote shell): its stdout. A command that
    /// failed fails the test: a silently failed one would make a drift, a
    /// snapshot or a check vacuous.
    pub fn on(&self, host: &str, cmd: &str) -> String {
        let o = lvsup(&[
            "lab",
            "exec",
            "-f",
            &self.file.to_string_lossy(),
            host,
            "--",
            "sh",
            "-c",
            cmd,
        ]);
        assert!(
            o.status.success(),
            "on {host}: `{cmd}` failed:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = lvsup(&["lab", "down", "-f", &self.file.to_string_lossy()]);
    }
}

/// Run this build's lvsup without a terminal or colors; logs the command,
/// its exit code and time on stderr.
/// `LVSUP_DIRECTOR_BINARY`, when set and not empty: the binary plan and
/// apply put on directors (tests/run sets a release build for the VM).
pub fn director_binary() -> Option<std::path::PathBuf> {
    std::env::var_os("LVSUP_DIRECTOR_BINARY")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
}

pub fn lvsup(args: &[&str]) -> Output {
    lvsup_in(std::path::Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

/// [`lvsup`] run in `dir` (relative paths in `args` are from there).
pub fn lvsup_in(dir: &std::path::Path, args: &[&str]) -> Output {
    let t = Instant::now();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lvsup"));
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .env("NO_COLOR", "1");
    let out = output_within(cmd, &format!("lvsup {}", args.join(" ")), command_limit());
    eprintln!(
        "lvsup {} → {} in {:.2}s",
        args.join(" "),
        out.status.code().unwrap_or(-1),
        t.elapsed().as_secs_f64()
    );
    out
}

/// The longest one lvsup command of the lab tests may run: 15 minutes
/// (an apply or a verify with failovers under the VM's emulation takes a
/// few), or `LVSUP_TEST_COMMAND_LIMIT` seconds.
pub fn command_limit() -> std::time::Duration {
    let secs = std::env::var("LVSUP_TEST_COMMAND_LIMIT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(900);
    std::time::Duration::from_secs(secs)
}

/// `cmd.output()`, bounded: past `limit` the command and every process it
/// started in its process group are killed and the test fails with what
/// they printed so far. A command that hangs (an SSH session, a unit that
/// never starts) otherwise holds the test, and CI, until CI's own limit,
/// with nothing printed to say where.
pub fn output_within(mut cmd: Command, what: &str, limit: std::time::Duration) -> Output {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let reader = |mut r: Box<dyn Read + Send>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
        rx
    };
    let out_rx = reader(Box::new(child.stdout.take().expect("piped stdout")));
    let err_rx = reader(Box::new(child.stderr.take().expect("piped stderr")));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() >= limit => break None,
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(50)),
            Err(e) => panic!("{what}: waiting for it: {e}"),
        }
    };
    let Some(status) = status else {
        let pgid = child.id() as libc::pid_t;
        // SAFETY: kill(2) on the process group this function created.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = child.wait();
        // A process that left the group may hold the pipes: read what came.
        let grace = std::time::Duration::from_secs(5);
        let so_far = |rx: std::sync::mpsc::Receiver<Vec<u8>>| {
            String::from_utf8_lossy(&rx.recv_timeout(grace).unwrap_or_default()).into_owned()
        };
        panic!(
            "`{what}` still running after {}s: killed (LVSUP_TEST_COMMAND_LIMIT)\nstdout so far:\n{}\nstderr so far:\n{}",
            limit.as_secs(),
            so_far(out_rx),
            so_far(err_rx)
        );
    };
    // Its output ends when every process holding the pipes is gone: one it
    // left running in the background with them would hold the test too.
    // It gets the rest of its limit (2 s at least), then those are killed.
    let rest = limit
        .saturating_sub(started.elapsed())
        .max(std::time::Duration::from_secs(2));
    let all = |rx: std::sync::mpsc::Receiver<Vec<u8>>, which: &str| {
        rx.recv_timeout(rest).unwrap_or_else(|_| {
            // SAFETY: kill(2) on the process group this function created.
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            panic!(
                "`{what}` exited ({status}) but its {which} stayed open: a process it left running held it (killed)"
            )
        })
    };
    Output {
        status,
        stdout: all(out_rx, "stdout"),
        stderr: all(err_rx, "stderr"),
    }
}
