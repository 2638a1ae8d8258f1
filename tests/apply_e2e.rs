//! `lvsup plan/apply/destroy` end to end against lab hosts (real systemd,
//! real sshd, own network namespaces). Needs root, so `#[ignore]`d:
//!
//!     # natively, on a kernel without ip_vs: the hosts that do not need it
//!     LVSUP_E2E_NO_KERNEL=1 cargo test --test apply_e2e -- --ignored --nocapture
//!     # in the VM lab (ip_vs, ipip): every host of every example
//!     tests/lab/in-vm target/debug/deps/apply_e2e-* --ignored --test-threads=1
//!
//! `LVSUP_E2E_EXAMPLES=dr,nat,tun` picks the examples (default: dr, plus nat
//! and tun in the VM). With `LVSUP_E2E_NO_KERNEL=1` the lab comes up with
//! `--no-kernel-check` and the run `--target`s only the hosts that need no
//! kernel module (DR/NAT real servers); directors then need the VM (and the
//! director daemon).
//!
//! For each example, on a copy with its own cluster name (so it never meets
//! another lab of the same file): `lab up` → snapshot every host → `plan`
//! exit 2 → `apply --yes` → (in the VM: `status` names a master; `verify`
//! passes with measured failover figures; on DR it also fails, saying why,
//! on a real server without ARP suppression and on both daemons stopped,
//! and `apply` repairs both) → `plan` exit 0 → second `apply` touches
//! nothing → drift by hand → `plan` shows it (exit 2) → (DR: `plan -o`, a host
//! changed by hand, `apply PLANFILE` refused naming it; `plan -o` again, `apply
//! PLANFILE` applies it; drifted again, an `apply` on a terminal holds the cluster
//! lock at its prompt: a second `apply --lock-timeout 0` exits 1 naming it, a third
//! with `--lock-timeout 300` waits until the first is answered "no", then repairs
//! the drift) → `apply` repairs → `plan` 0
//! → one real server unreachable (its link down) during an `apply` that has work:
//! reported with the step that failed, the other real servers converge, the
//! directors (drifted too, in the VM) are left out untouched, exit 1 → link up,
//! `apply` converges it → (DR: a second cluster on the same hosts, below) →
//! `destroy --yes` → second `destroy` finds nothing → every host's snapshot
//! equals the one before apply → `lab down`.
//!
//! In the DR run: a second cluster file on the same lab hosts (another VIP,
//! `SecondCluster`); the same VRID refused at plan time, destroy of one keeps
//! the other's ARP sysctls, the other verifies (before the upload cut, which
//! leaves another director binary installed); at the end both destroyed in
//! the other order. The TUN run logs in as
//! a non-root user and becomes root through sudo (`[ssh] become = "sudo"`):
//! without `become` the plan refuses naming every host; the files written
//! belong to root. Both share a lab with an example run because every lab up
//! and apply costs minutes of CI under the VM's emulation.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

mod common;

use common::{Lab, lvsup};

fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn expect(o: &Output, code: i32, what: &str) -> String {
    assert_eq!(o.status.code(), Some(code), "{what}\n{}", text(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn sh(netns: &str, cmd: &str) -> Output {
    Command::new("ip")
        .args(["netns", "exec", netns, "sh", "-c", cmd])
        .output()
        .expect("ip netns exec")
}

fn on(lab: &Lab, host: &str, cmd: &str) -> String {
    lab.on(host, cmd)
}

/// Everything lvsup could touch on a host, in a comparable form.
const SNAPSHOT: &str = "\
ls -A /etc/systemd/system /etc/systemd/system/multi-user.target.wants /etc/sysctl.d \
  /etc/modules-load.d /usr/local/bin /etc/lvsup /var/lib/lvsup 2>&1; \
ip -4 -o addr | awk '{print $2, $4}'; ip -4 route; \
for k in net/ipv4/conf/all/arp_ignore net/ipv4/conf/all/arp_announce net/ipv4/conf/lo/arp_ignore \
  net/ipv4/conf/lo/arp_announce net/ipv4/conf/all/rp_filter net/ipv4/ip_forward \
  net/ipv4/vs/expire_nodest_conn net/ipv4/vs/expire_quiescent_template; do \
  [ -r /proc/sys/$k ] && echo \"$k=$(cat /proc/sys/$k)\"; done; \
systemctl list-unit-files 'lvsup*' --no-legend 2>&1; cat /proc/net/ip_vs 2>/dev/null; true";

fn no_kernel() -> bool {
    std::env::var_os("LVSUP_E2E_NO_KERNEL").is_some_and(|v| v == "1")
}

fn examples() -> Vec<String> {
    match std::env::var("LVSUP_E2E_EXAMPLES") {
        Ok(v) => v.split(',').map(|s| s.trim().to_string()).collect(),
        Err(_) if no_kernel() => vec!["dr".into()],
        Err(_) => vec!["dr".into(), "nat".into(), "tun".into()],
    }
}

#[test]
#[ignore = "needs root and the lab (see the module docs)"]
fn plan_apply_drift_repair_unreachable_destroy() {
    for ex in examples() {
        run_example(&ex);
    }
}

/// examples/EX.toml parsed, and its text with the cluster renamed to `name`
/// (an own cluster name never collides with a lab of the example itself).
fn renamed_example(ex: &str, name: &str) -> (lvsup::config::ClusterSpec, String) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{ex}.toml"));
    let spec = lvsup::config::load(&src).unwrap_or_else(|e| panic!("{e}"));
    let original = std::fs::read_to_string(&src).expect("read example");
    let renamed = original.replacen(
        &format!("name = \"{}\"", spec.name),
        &format!("name = \"{name}\""),
        1,
    );
    assert_ne!(renamed, original, "cluster name not found in {ex}.toml");
    (spec, renamed)
}

/// `lab up -f file` (the file lives in `dir`); the lab goes when the result drops.
fn lab_up(file: &Path, dir: tempfile::TempDir) -> Lab {
    let f = file.to_string_lossy().into_owned();
    let mut up = vec!["lab", "up", "-f", &f];
    if no_kernel() {
        up.push("--no-kernel-check");
    }
    let lab = Lab {
        file: file.to_path_buf(),
        _dir: dir,
    };
    expect(&lvsup(&up), 0, "lab up");
    lab
}

fn run_example(ex: &str) {
    let start = Instant::now();
    let name = format!("e2e{ex}");
    let (spec, mut renamed) = renamed_example(ex, &name);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(format!("{ex}.toml"));
    // TUN logs in as a non-root user that becomes root through sudo (the
    // lab image has a user `lvs` with passwordless sudo): every step of the
    // run goes through `sudo`. Without `become` the plan refuses, naming
    // every host.
    let become_sudo = ex == "tun";
    let plain = dir.path().join(format!("{ex}-plain.toml"));
    if become_sudo {
        std::fs::write(&plain, format!("{renamed}\n[ssh]\nuser = \"lvs\"\n")).expect("write");
        renamed.push_str("\n[ssh]\nuser = \"lvs\"\nbecome = \"sudo\"\n");
    }
    std::fs::write(&file, renamed).expect("write copy");
    let f = file.to_string_lossy().into_owned();
    let plain = plain.to_string_lossy().into_owned();
    let lab = lab_up(&file, dir);
    // With the lab's ssh_config given explicitly the file's `[ssh] user` is
    // kept (picked up implicitly, the lab's config logs in as root).
    let ssh_config: Vec<String> = if become_sudo {
        vec![
            "--ssh-config".into(),
            format!("/run/lvsup-lab/{name}/ssh_config"),
        ]
    } else {
        vec![]
    };

    // Hosts under test and their targets.
    let rs: Vec<String> = spec.real_servers.iter().map(|r| r.name.clone()).collect();
    let all: Vec<String> = rs
        .iter()
        .cloned()
        .chain(spec.directors.iter().map(|d| d.name.clone()))
        .collect();
    let hosts: Vec<String> = if no_kernel() { rs.clone() } else { all };
    let mut targets: Vec<String> = Vec::new();
    for h in &hosts {
        targets.push("--target".into());
        targets.push(h.clone());
    }
    let with_file = |base: &[&str], file: &str| -> Vec<String> {
        base.iter()
            .map(|s| s.to_string())
            .chain(["-f".to_string(), file.to_string()])
            .chain(ssh_config.iter().cloned())
            .chain(targets.iter().cloned())
            .collect()
    };
    let with = |base: &[&str]| with_file(base, &f);
    let run = |base: &[&str]| {
        let args = with(base);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        lvsup(&refs)
    };

    // NAT: real servers usually have a default route of their own before
    // lvsup points it at the gateway; destroy must put it back (the snapshot
    // comparison at the end checks it).
    if spec.mode == lvsup::config::Mode::Nat {
        let router = spec.directors[0]
            .internal_address
            .expect("NAT example gives directors an internal address")
            .addr();
        for h in &rs {
            on(&lab, h, &format!("ip route replace default via {router}"));
        }
    }
    let before: Vec<String> = hosts.iter().map(|h| on(&lab, h, SNAPSHOT)).collect();

    if become_sudo {
        let args = with_file(&["plan"], &plain);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = lvsup(&refs);
        let out = expect(&o, 1, "plan as lvs without become");
        let all = format!("{out}{}", String::from_utf8_lossy(&o.stderr));
        for h in &hosts {
            assert!(
                all.contains(h.as_str()) && all.contains("not root"),
                "{h} not named: {all}"
            );
        }
    }

    let t = Instant::now();
    let out = expect(
        &run(&["plan", "--detailed-exitcode"]),
        2,
        "plan on fresh hosts",
    );
    assert!(out.contains("enable and start unit"), "{out}");
    let plan_cold = t.elapsed();

    // No terminal to ask on and no --yes: refuse, touch nothing (on one
    // example: the refusal does not depend on the mode). Without
    // LVSUP_DIRECTOR_BINARY: the binary planned for the directors is this
    // lvsup, a debug build, which is warned about (before the refusal).
    if ex == "dr" {
        let args = with(&["apply"]);
        let o = Command::new(env!("CARGO_BIN_EXE_lvsup"))
            .args(&args)
            .env("NO_COLOR", "1")
            .env_remove("LVSUP_DIRECTOR_BINARY")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run lvsup");
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("pass --yes"), "{}", text(&o));
        if !no_kernel() {
            assert!(
                err.contains("is a debug build") && err.contains("tools/build-release"),
                "{err}"
            );
        }
    }

    let t = Instant::now();
    let o = run(&["apply", "--yes"]);
    let out = expect(&o, 0, "apply");
    assert!(out.contains("apply summary"), "{out}");
    let apply_cold = t.elapsed();
    if become_sudo {
        let owner = on(
            &lab,
            &rs[0],
            &format!("stat -c %U /etc/sysctl.d/90-lvsup-{name}.conf; id -un"),
        );
        assert_eq!(
            owner, "root\nroot\n",
            "lab exec runs as root; files written through sudo are root's"
        );
    }
    // the tests' lvsup is a debug build: uploading it to directors is warned
    // about, unless LVSUP_DIRECTOR_BINARY names another (tests/run: a release build)
    if !no_kernel() {
        let err = String::from_utf8_lossy(&o.stderr);
        let debug_warned = err.contains("is a debug build") && err.contains("tools/build-release");
        assert_eq!(
            debug_warned,
            common::director_binary().is_none(),
            "LVSUP_DIRECTOR_BINARY={:?}: {err}",
            common::director_binary()
        );
    }

    // With directors (the VM): `status` names a master once VRRP settled,
    // and shows lvsup's virtual service with every real server. Then
    // `verify` proves it works (in this lab: one more lab up and apply per
    // example cost minutes under the VM's emulation), and on DR catches two
    // broken clusters, which `apply` repairs.
    let mut verified = String::from("not run (no directors)");
    if !no_kernel() {
        wait_for_master(&f, spec.real_servers.len());
        live_unit_is_hardened(&lab, &name, &spec);
        let t = Instant::now();
        // The crash mode (the master's daemon frozen) runs on DR: once in CI.
        let figures = common::verify_passes(&f, ex == "dr");
        verified = format!("{figures}; both verifies {:.0}s", t.elapsed().as_secs_f64());
        if ex == "dr" {
            broken_dr_is_caught_and_repaired(&lab, &f, &name, &spec);
        }
    }

    let t = Instant::now();
    expect(
        &run(&["plan", "--detailed-exitcode"]),
        0,
        "plan after apply",
    );
    let plan_noop = t.elapsed();
    let t = Instant::now();
    let out = expect(&run(&["apply", "--yes"]), 0, "second apply");
    assert!(
        out.contains("Nothing to apply: no host was touched."),
        "{out}"
    );
    let apply_noop = t.elapsed();

    // Drift by hand on the first real server.
    let first = &rs[0];
    let vip = spec.vip;
    let (drift, shows) = match spec.mode {
        lvsup::config::Mode::Nat => (
            "ip route del default".to_string(),
            "route default via".to_string(),
        ),
        lvsup::config::Mode::Dr => (
            format!(
                "ip addr del {vip}/32 dev lo; sed -i 's/arp_announce = 2/arp_announce = 1/' /etc/sysctl.d/90-lvsup-{name}.conf"
            ),
            format!("add address {vip}/32 on lo"),
        ),
        lvsup::config::Mode::Tun => (
            format!(
                "ip addr del {vip}/32 dev tunl0; echo 1 > /proc/sys/net/ipv4/conf/all/rp_filter"
            ),
            format!("add address {vip}/32 on tunl0"),
        ),
    };
    on(&lab, first, &drift);
    let out = expect(
        &run(&["plan", "--detailed-exitcode"]),
        2,
        "plan shows drift",
    );
    assert!(out.contains(&shows), "{out}");
    if ex == "dr" {
        // the drift waits: a stale saved plan is refused (a fresh one applies
        // it); drifted again, a second apply races one that holds the lock
        saved_plan_stale_then_applied(&lab, &f, &name, &rs, &shows, &with);
        on(&lab, first, &drift);
        two_applies_race_for_the_lock(&lab, &name, first, &run, &with);
    }
    expect(&run(&["apply", "--yes"]), 0, "apply repairs drift");
    expect(
        &run(&["plan", "--detailed-exitcode"]),
        0,
        "plan after repair",
    );

    // A host that is down during apply (on DR: what it shows does not depend
    // on the mode, and each apply costs minutes of CI under emulation).
    let mut apply_down = std::time::Duration::ZERO;
    if ex == "dr" {
        // A host that is down during apply: its link goes down (from outside,
        // like a dead box), while another host has drifted.
        let down = rs.last().expect("a real server").clone();
        on(&lab, first, &drift);
        // With directors (the VM): they drifted too (their modules-load.d file is
        // gone), but apply must not touch them while a real server is down.
        let modules_file = format!("/etc/modules-load.d/lvsup-{name}.conf");
        let directors: Vec<String> = if no_kernel() {
            vec![]
        } else {
            spec.directors.iter().map(|d| d.name.clone()).collect()
        };
        for d in &directors {
            on(&lab, d, &format!("rm {modules_file}"));
        }
        let netns = format!("lvsup-{name}-{down}");
        let o = sh(&netns, "ip link set eth0 down");
        assert!(o.status.success(), "link down: {}", text(&o));
        // Natively a connection takes milliseconds; under TCG in the VM ~3 s.
        let timeout = if no_kernel() { "5" } else { "20" };
        let args = with(&["apply", "--yes", "--connect-timeout", timeout]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let t = Instant::now();
        let o = lvsup(&refs);
        let out = expect(&o, 1, "apply with a host down");
        assert!(
            out.contains(&format!("{down}: NOT CHANGED — failed at \"connect\"")),
            "{out}"
        );
        assert!(out.contains(&format!("  {first}: done")), "{out}");
        for d in &directors {
            assert!(
                out.contains(&format!(
                    "  {d}: LEFT OUT, not touched — real server {down} could not be reached"
                )),
                "{out}"
            );
            let left = on(
                &lab,
                d,
                &format!("ls {modules_file} 2>/dev/null || echo absent"),
            );
            assert_eq!(left, "absent\n", "{d} was touched although {down} was down");
        }
        apply_down = t.elapsed();
        let o = sh(&netns, "ip link set eth0 up");
        assert!(o.status.success(), "link up: {}", text(&o));
        // Wait until it answers SSH again (immediate natively; under TCG in the VM
        // the first connections after link up were seen to time out).
        for _ in 0..30 {
            let o = lvsup(&["lab", "exec", "-f", &f, &down, "--", "true"]);
            if o.status.success() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_secs(2));
        }
        // Re-running converges: the host that was down gets its changes (for
        // NAT, the link going down also took its default route via the gateway).
        expect(
            &run(&["apply", "--yes"]),
            0,
            "apply after the host came back",
        );
        expect(
            &run(&["plan", "--detailed-exitcode"]),
            0,
            "plan after the host came back",
        );
    }

    // A second cluster on the same hosts (DR): next to this one, then
    // destroyed first.
    let second = (ex == "dr").then(|| SecondCluster::next_to(&lab, &spec, &name, &f, &hosts, &run));

    // #14: the SSH connection to a director cut in the middle of the upload
    // of a new director binary (on DR: once in CI; last before destroy, which
    // removes whichever binary is there).
    if ex == "dr" && !no_kernel() {
        upload_cut_keeps_the_old_binary(&lab, &name, &spec, &with);
    }

    if let Some(second) = second {
        // ... and the other order: this cluster destroyed first.
        second.outlives(&lab, &spec, &run);
    } else {
        let out = expect(&run(&["destroy", "--yes"]), 0, "destroy");
        assert!(out.contains("destroy summary"), "{out}");
    }
    let out = expect(&run(&["destroy", "--yes"]), 0, "second destroy");
    assert!(out.contains("Nothing to destroy"), "{out}");
    let after: Vec<String> = hosts.iter().map(|h| on(&lab, h, SNAPSHOT)).collect();
    for ((h, b), a) in hosts.iter().zip(&before).zip(&after) {
        assert_eq!(b, a, "{h}: not as before apply");
    }
    eprintln!(
        "e2e {ex} ({} hosts): plan cold {:.2}s, apply cold {:.2}s, plan no-op {:.2}s, apply no-op {:.2}s, apply with a host down {:.2}s; verify: {verified}; whole run {:.1}s",
        hosts.len(),
        plan_cold.as_secs_f64(),
        apply_cold.as_secs_f64(),
        plan_noop.as_secs_f64(),
        apply_noop.as_secs_f64(),
        apply_down.as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
    drop(lab);
}

/// #14 "upload cut midway": apply sends a new director binary (the test's
/// lvsup with bytes appended) and, once the upload's temp file exists on
/// the backup director, every sshd process there is killed: the connection
/// is lost mid-stream. apply fails naming the host and the upload step, the
/// master (applied after the backups) is left out, the backup keeps its old
/// binary (same SHA-256) and its running daemon, no temp file is left; the
/// next apply installs the new binary.
fn upload_cut_keeps_the_old_binary(
    lab: &Lab,
    name: &str,
    spec: &lvsup::config::ClusterSpec,
    with: &dyn Fn(&[&str]) -> Vec<String>,
) {
    let backup = spec.directors.last().expect("a director").name.clone();
    let master = spec.directors[0].name.clone();
    assert_ne!(backup, master, "the example has two directors");
    let sha = |h: &str| {
        on(lab, h, "sha256sum /usr/local/bin/lvsup")
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let old = sha(&backup);
    let dir = tempfile::tempdir().expect("tempdir");
    let new_bin = dir.path().join("lvsup");
    let mut bytes = std::fs::read(
        common::director_binary().unwrap_or_else(|| env!("CARGO_BIN_EXE_lvsup").into()),
    )
    .expect("read lvsup");
    bytes.extend_from_slice(b"\0lvsup e2e: a binary that differs\0");
    std::fs::write(&new_bin, &bytes).expect("write the new binary");
    let new_sha = lvsup::contract::sha256_hex(&bytes);
    let new_path = new_bin.to_string_lossy().into_owned();

    // The watcher runs on the backup itself: a shell loop that kills every
    // SSH connection's sshd as soon as the upload's temp file exists, and
    // notes how many bytes had arrived (polling from here, one `lab exec`
    // per look, took seconds under TCG: a 13 MB release build's upload was
    // over and installed before the cut came).
    let _ = on(
        lab,
        &backup,
        "rm -f /run/lvsup-e2e-cut /run/lvsup-e2e-watching",
    );
    let cutter = {
        let file = lab.file.to_string_lossy().into_owned();
        let backup = backup.clone();
        std::thread::spawn(move || {
            // `lab exec` without Lab::on's assertion: the kill ends its own
            // session too (exit 255).
            lvsup(&[
                "lab",
                "exec",
                "-f",
                &file,
                &backup,
                "--",
                "sh",
                "-c",
                "touch /run/lvsup-e2e-watching; i=0; while [ $i -lt 3000 ]; do \
                 for f in /usr/local/bin/.lvsup.*; do if [ -e \"$f\" ]; then \
                 wc -c < \"$f\" > /run/lvsup-e2e-cut; pkill -KILL -f '^sshd: [^/]'; exit 0; fi; done; \
                 sleep 0.05; i=$((i + 1)); done",
            ])
        })
    };
    // the watcher is in place before apply starts
    for _ in 0..60 {
        if on(
            lab,
            &backup,
            "ls /run/lvsup-e2e-watching 2>/dev/null || true",
        )
        .trim()
            != ""
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let args = with(&["apply", "--yes", "--director-binary", &new_path]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = lvsup(&refs);
    let _ = cutter.join().expect("cutter thread");
    let arrived: usize = on(
        lab,
        &backup,
        "cat /run/lvsup-e2e-cut 2>/dev/null || echo none",
    )
    .trim()
    .parse()
    .unwrap_or_else(|_| panic!("the upload's temp file never showed up\n{}", text(&o)));
    assert!(
        arrived < bytes.len(),
        "the upload was complete ({arrived} of {} bytes) before the cut: not a cut upload",
        bytes.len()
    );
    let cut = format!("cut at {arrived} of {} bytes", bytes.len());
    let out = expect(&o, 1, "apply with the upload cut");
    assert!(
        out.contains(&format!(
            "  {backup}: FAILED at \"upload the director binary to /usr/local/bin/lvsup\""
        )) && out.contains("    done: nothing\n"),
        "{cut}\n{out}"
    );
    assert!(
        out.contains(&format!(
            "  {master}: LEFT OUT, not touched — backup director {backup} failed at \"upload the director binary"
        )),
        "{out}"
    );
    // Only the connections' processes died ("sshd: USER…"), not the
    // listener ("sshd: /usr/sbin/sshd -D [listener]…"): `lab exec` and the
    // next apply connect again.
    assert_eq!(sha(&backup), old, "the backup's binary changed");
    let left = on(
        lab,
        &backup,
        "for i in 1 2 3 4 5 6 7 8 9 10; do ls /usr/local/bin/.lvsup.* >/dev/null 2>&1 || break; sleep 1; done; \
         ls -A /usr/local/bin | grep '^\\.lvsup' || echo none",
    );
    assert_eq!(left, "none\n", "temp files left by the cut upload");
    let active = on(
        lab,
        &backup,
        &format!("systemctl is-active lvsup-director-{name}.service || true"),
    );
    assert_eq!(active, "active\n", "the daemon on {backup} stopped");

    // The next apply converges: the new binary on both directors.
    let o = lvsup(&refs);
    expect(&o, 0, "apply after the cut upload");
    assert_eq!(sha(&backup), new_sha);
    assert_eq!(sha(&master), new_sha);
    eprintln!("upload cut on {backup}: {cut}; old binary kept, next apply installed the new one");
}

/// Runs `ARGV...` on a pseudo-terminal (its stdin, stdout and stderr):
/// prints `pid=N` (the child's), then copies the terminal's output to stdout
/// and stdin to the terminal; exits with the child's status.
const ON_A_PTY: &str = r#"import os, pty, select, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
print("pid=%d" % pid, flush=True)
ins = [fd, 0]
while True:
    r, _, _ = select.select(ins, [], [])
    if fd in r:
        try:
            b = os.read(fd, 4096)
        except OSError:
            b = b""
        if not b:
            break
        os.write(1, b)
    if 0 in r:
        b = os.read(0, 4096)
        if b:
            os.write(fd, b)
        else:
            ins.remove(0)
_, st = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(st))
"#;

/// #12, two real `lvsup apply` sessions and the cluster lock. The first runs
/// on a terminal (a pty) and stops at its prompt, holding the lock on every
/// host. A second with `--lock-timeout 0` fails at once naming the first
/// (user, machine, its pid, start time: lock.owner on `host`) and touches
/// nothing; a third with `--lock-timeout 300` waits (its `flock -w 300` seen
/// on `host`); the first is answered "no" (cancelled, the lock released),
/// and the third takes the lock, says it waited, and repairs the drift.
fn two_applies_race_for_the_lock(
    lab: &Lab,
    name: &str,
    host: &str,
    run: &dyn Fn(&[&str]) -> Output,
    with: &dyn Fn(&[&str]) -> Vec<String>,
) {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    let args = with(&["apply"]);
    let mut first = Command::new("python3")
        .args(["-c", ON_A_PTY, env!("CARGO_BIN_EXE_lvsup")])
        .args(&args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (pty)");
    let seen = Arc::new(Mutex::new(String::new()));
    let reader = {
        let seen = Arc::clone(&seen);
        let mut out = first.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                seen.lock().expect("output").push_str(&text);
            }
        })
    };
    let screen = || seen.lock().expect("output").clone();
    let t = Instant::now();
    while !screen().contains("Only 'yes' is accepted") {
        assert!(
            t.elapsed().as_secs() < 300,
            "the first apply never asked:\n{}",
            screen()
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let pid: u32 = screen()
        .lines()
        .find_map(|l| l.trim().strip_prefix("pid=")?.parse().ok())
        .unwrap_or_else(|| panic!("no pid=: {}", screen()));
    let owner = on(lab, host, &format!("cat /var/lib/lvsup/{name}/lock.owner"));
    let field = |k: &str| -> String {
        owner
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| if v.is_empty() { "?" } else { v }.to_string())
            .unwrap_or_else(|| panic!("no {k}= in lock.owner: {owner}"))
    };
    assert_eq!(field("pid"), pid.to_string(), "{owner}");
    assert_eq!(field("command"), "apply", "{owner}");
    let holder = format!(
        "lvsup apply by {}@{} (pid {pid}) since {}",
        field("user"),
        field("host"),
        field("started")
    );

    // A second apply, no wait: fails naming the first, touches nothing.
    let o = run(&["apply", "--yes", "--lock-timeout", "0"]);
    expect(&o, 1, "apply while another apply holds the lock");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "{host}: cluster \"{name}\" is locked by {holder}; waited 0s"
        )) && err.contains("apply stopped before any change: no host was touched"),
        "{}",
        text(&o)
    );
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("apply summary"),
        "{}",
        text(&o)
    );

    // A third, willing to wait: it waits until the first lets go, then applies.
    let third = {
        let args = with(&["apply", "--yes", "--lock-timeout", "300"]);
        std::thread::spawn(move || {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            lvsup(&refs)
        })
    };
    let t = Instant::now();
    while on(lab, host, "pgrep -f '^flock -w 300 9$' || true")
        .trim()
        .is_empty()
    {
        assert!(
            t.elapsed().as_secs() < 300 && !third.is_finished(),
            "the third apply never waited for the lock on {host}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert!(!third.is_finished(), "the third apply did not wait");
    {
        let stdin = first.stdin.as_mut().expect("stdin");
        stdin.write_all(b"no\n").expect("answer the first apply");
        stdin.flush().expect("flush");
    }
    let status = first.wait().expect("first apply");
    let _ = reader.join();
    assert_eq!(status.code(), Some(1), "first apply:\n{}", screen());
    assert!(
        screen().contains("Apply cancelled: no host was touched."),
        "{}",
        screen()
    );
    let o = third.join().expect("third apply");
    let out = expect(&o, 0, "apply after waiting for the lock");
    assert!(out.contains("apply summary"), "{out}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!(
            "{host}: waited for the cluster lock another session held"
        )),
        "{}",
        text(&o)
    );
    eprintln!("lock race: {holder} held it; --lock-timeout 0 refused, 300 waited and applied");
}

/// `plan -o PLANFILE`, then a host changes by hand: `apply PLANFILE` is
/// refused naming it and touches nothing (`shows`, the drift, is still
/// planned); a new `plan -o`, and `apply PLANFILE` applies it without asking.
fn saved_plan_stale_then_applied(
    lab: &Lab,
    f: &str,
    name: &str,
    rs: &[String],
    shows: &str,
    with: &dyn Fn(&[&str]) -> Vec<String>,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let planfile = dir.path().join("e2e.plan");
    let pf = planfile.to_string_lossy().into_owned();
    let plan_o = || {
        let args = with(&["plan", "-o", &pf]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        expect(&lvsup(&refs), 0, "plan -o");
    };
    plan_o();
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&planfile).expect("plan file"))
            .expect("plan JSON");
    assert_eq!(saved["format_version"], 1);
    let changed = rs.last().expect("a real server");
    assert!(saved["hosts"][changed.as_str()].is_string(), "{saved}");
    on(
        lab,
        changed,
        &format!("echo '# by hand' >> /etc/sysctl.d/90-lvsup-{name}.conf"),
    );
    let o = lvsup(&["apply", "-f", f, &pf]);
    expect(&o, 1, "apply of a stale saved plan");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "the saved plan {pf} is stale: host {changed} changed since the plan was made"
        )) && err.contains("no host was touched"),
        "{}",
        text(&o)
    );
    let args = with(&["plan", "--detailed-exitcode"]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = expect(&lvsup(&refs), 2, "plan after the refused saved plan");
    assert!(
        out.contains(shows),
        "the refused saved plan touched a host:\n{out}"
    );
    plan_o();
    let out = expect(
        &lvsup(&["apply", "-f", f, &pf]),
        0,
        "apply of a fresh saved plan",
    );
    assert!(out.contains("Apply complete"), "{out}");
    let out = expect(&lvsup(&refs), 0, "plan after the saved plan was applied");
    assert!(out.contains("No changes"), "{out}");
}

/// `status` names a master once VRRP settled, and shows lvsup's virtual
/// service with every real server (`want` destinations).
/// #14: on every director the running unit scores at most 2.0 in
/// `systemd-analyze security` (read from systemd itself, not the file), and
/// the daemon runs as its transient user, not root.
fn live_unit_is_hardened(lab: &Lab, cluster: &str, spec: &lvsup::config::ClusterSpec) {
    let unit = format!("lvsup-director-{cluster}.service");
    for d in &spec.directors {
        let out = on(
            lab,
            &d.name,
            &format!("systemd-analyze security --no-pager {unit} 2>&1 | tail -n 3"),
        );
        let score: f64 = out
            .lines()
            .find_map(|l| l.split_once("Overall exposure level"))
            // "… for UNIT: 1.8 OK :-)" (the smiley has a colon too)
            .and_then(|(_, r)| r.split_once(": ").map(|(_, s)| s))
            .and_then(|t| t.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{}: no exposure score in: {out}", d.name));
        assert!(score <= 2.0, "{}: {unit} exposure {score} > 2.0", d.name);
        let user = on(
            lab,
            &d.name,
            &format!("ps -o user= -p \"$(systemctl show -p MainPID --value {unit})\""),
        );
        assert!(
            !user.trim().is_empty() && user.trim() != "root",
            "{}: the daemon runs as {user:?}",
            d.name
        );
    }
}

fn wait_for_master(f: &str, want: usize) {
    let mut seen = String::new();
    for _ in 0..30 {
        let o = lvsup(&["status", "-f", f, "--json"]);
        seen = String::from_utf8_lossy(&o.stdout).into_owned();
        let v: serde_json::Value = serde_json::from_str(&seen).unwrap_or_default();
        if v["master"].is_string() && v["services"].as_array().is_some_and(|s| !s.is_empty()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    let v: serde_json::Value = serde_json::from_str(&seen).expect("status JSON");
    assert!(v["master"].is_string(), "no master: {seen}");
    let dests = v["services"][0]["destinations"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(dests, want, "{seen}");
    eprintln!(
        "{}",
        String::from_utf8_lossy(&lvsup(&["status", "-f", f]).stdout)
    );
}

/// DR, applied and verified: a real server without ARP suppression, then
/// both director daemons stopped — `verify` fails and says why each time
/// (and does not start what it found stopped); `apply` repairs both.
fn broken_dr_is_caught_and_repaired(
    lab: &Lab,
    f: &str,
    name: &str,
    spec: &lvsup::config::ClusterSpec,
) {
    use common::{reasons, rows, verify};
    let rs = &spec.real_servers[1].name;
    on(
        lab,
        rs,
        "sysctl -qw net.ipv4.conf.all.arp_ignore=0 net.ipv4.conf.all.arp_announce=0 \
         net.ipv4.conf.lo.arp_ignore=0 net.ipv4.conf.lo.arp_announce=0 \
         net.ipv4.conf.eth0.arp_ignore=0 net.ipv4.conf.eth0.arp_announce=0",
    );
    let (code, v) = verify(f, &["--skip-failover"]);
    assert_eq!(code, 1);
    let row = rows(&v, "real-server")
        .into_iter()
        .find(|c| c["subject"] == rs.as_str())
        .expect("a real-server row");
    assert_eq!(row["result"], "fail");
    let why = reasons(&v);
    assert!(
        why.contains(&format!("{rs} has no ARP suppression on eth0")),
        "{why}"
    );

    let unit = format!("lvsup-director-{name}.service");
    for d in &spec.directors {
        on(lab, &d.name, &format!("systemctl stop {unit}"));
    }
    let (code, v) = verify(f, &[]);
    assert_eq!(code, 1);
    assert_eq!(rows(&v, "vip-holder")[0]["result"], "fail");
    let why = reasons(&v);
    assert!(
        why.contains(&format!("no director holds the VIP {}", spec.vip)),
        "{why}"
    );
    let o = on(
        lab,
        &spec.directors[0].name,
        &format!("systemctl is-active {unit} || true"),
    );
    assert_eq!(o.trim(), "inactive", "verify started what it found stopped");

    // Both are drift to apply: the sysctls and the stopped units.
    let out = expect(
        &lvsup(&["apply", "--yes", "-f", f]),
        0,
        "apply repairs the broken cluster",
    );
    assert!(out.contains(&format!("start unit {unit}")), "{out}");
    assert!(
        out.contains("set net.ipv4.conf.all.arp_ignore = 1 (now 0)"),
        "{out}"
    );
    wait_for_master(f, spec.real_servers.len());
}

/// Two lvsup clusters on the same hosts (#12 item 7), in the DR run's lab
/// (a lab of its own cost minutes of CI under the VM's emulation): the run's
/// own cluster A (applied) and a second file B with the same directors and
/// real servers (reached through A's lab ssh_config by `ssh_host`), its own
/// VIP. [`SecondCluster::next_to`]: B with A's VRID is refused at plan time
/// naming both clusters, and `apply` touches nothing; with its own VRID it
/// applies next to A. `destroy` of B keeps the ARP sysctls A still sets (and
/// says so), A still verifies. [`SecondCluster::outlives`], the other order,
/// which needs B's record of the host's original values to come from A's:
/// B applied again, A destroyed (B keeps its sysctls), B destroyed. The
/// caller compares every host with its snapshot from before A was applied.
struct SecondCluster {
    _dir: tempfile::TempDir,
    file: String,
    ssh_config: String,
}

const SECOND: &str = "e2eb";
const ARP: &str = "for k in all/arp_ignore all/arp_announce lo/arp_ignore lo/arp_announce; do \
                   echo \"$k=$(cat /proc/sys/net/ipv4/conf/$k)\"; done";
const SUPPRESSED: &str =
    "all/arp_ignore=1\nall/arp_announce=2\nlo/arp_ignore=1\nlo/arp_announce=2\n";

impl SecondCluster {
    /// `lvsup ARGS -f B --ssh-config A's` on `targets`.
    fn run(&self, base: &[&str], targets: &[&str]) -> Output {
        let mut args: Vec<&str> = base.to_vec();
        args.extend(["-f", &self.file, "--ssh-config", &self.ssh_config]);
        for t in targets {
            args.extend(["--target", t]);
        }
        lvsup(&args)
    }

    /// B's apply and destroy touch the real servers only: the shared real
    /// server is where the sysctls of both clusters meet, and each director
    /// apply costs minutes of CI under TCG. The directors still take part in
    /// B's plan (the VRID conflict).
    fn run_rs(&self, spec: &lvsup::config::ClusterSpec, base: &[&str]) -> Output {
        let rs: Vec<&str> = spec.real_servers.iter().map(|r| r.name.as_str()).collect();
        self.run(base, &rs)
    }

    fn next_to(
        lab: &Lab,
        spec: &lvsup::config::ClusterSpec,
        a_name: &str,
        fa: &str,
        hosts: &[String],
        run_a: &dyn Fn(&[&str]) -> Output,
    ) -> SecondCluster {
        let b_name = SECOND;
        let a_text = std::fs::read_to_string(fa).expect("read a");
        let vip_a = spec.vip.to_string();
        let vip_b = "192.168.0.101";
        assert!(a_text.contains(&format!("vip = \"{vip_a}\"")), "{a_text}");
        let mut b_text = a_text
            .replacen(
                &format!("name = \"{a_name}\""),
                &format!("name = \"{b_name}\""),
                1,
            )
            .replacen(
                &format!("vip = \"{vip_a}\""),
                &format!("vip = \"{vip_b}\""),
                1,
            );
        for h in spec
            .real_servers
            .iter()
            .map(|r| &r.name)
            .chain(spec.directors.iter().map(|d| &d.name))
        {
            b_text = b_text.replacen(
                &format!("name = \"{h}\"\n"),
                &format!("name = \"{h}\"\nssh_host = \"{h}\"\n"),
                1,
            );
        }
        assert_eq!(b_text.matches("ssh_host = ").count(), 4, "{b_text}");
        let dir = tempfile::tempdir().expect("tempdir");
        let fb = dir.path().join("b.toml");
        std::fs::write(&fb, &b_text).expect("write b");
        let b = SecondCluster {
            file: fb.to_string_lossy().into_owned(),
            _dir: dir,
            ssh_config: format!("/run/lvsup-lab/{a_name}/ssh_config"),
        };
        let rs = &spec.real_servers;

        // B with A's VRID: on the directors, a plan-time error naming both
        // clusters; apply refuses and touches no host, real servers included.
        if !no_kernel() {
            let all: Vec<&str> = hosts.iter().map(String::as_str).collect();
            assert!(b_text.contains("vrid = 51"), "{b_text}");
            let out = expect(&b.run(&["plan"], &all), 1, "plan B with A's VRID");
            for d in &spec.directors {
                assert!(
                    out.contains(&format!(
                        "director {}: cluster \"{b_name}\" and cluster \"{a_name}\" both use VRID 51 on ",
                        d.name
                    )),
                    "{out}"
                );
            }
            let o = b.run(&["apply", "--yes"], &all);
            assert_eq!(o.status.code(), Some(1), "{}", text(&o));
            assert!(
                String::from_utf8_lossy(&o.stderr).contains("apply refused, no host was touched"),
                "{}",
                text(&o)
            );
            for r in rs {
                let left = on(
                    lab,
                    &r.name,
                    &format!(
                        "ls /etc/sysctl.d/90-lvsup-{b_name}.conf /etc/lvsup/{b_name} 2>/dev/null || echo absent"
                    ),
                );
                assert_eq!(left, "absent\n", "{}: B's apply touched it", r.name);
            }
            std::fs::write(&b.file, b_text.replacen("vrid = 51", "vrid = 52", 1)).expect("b");
        }

        expect(&b.run_rs(spec, &["apply", "--yes"]), 0, "apply B next to A");
        for r in rs {
            let lo = on(lab, &r.name, "ip -4 -o addr show dev lo");
            assert!(
                lo.contains(&format!("{vip_a}/32")) && lo.contains(&format!("{vip_b}/32")),
                "{}: {lo}",
                r.name
            );
        }

        // destroy B: A's ARP suppression stays, and the output says why
        let out = expect(&b.run_rs(spec, &["destroy", "--yes"]), 0, "destroy B");
        assert!(
            out.contains(&format!(
                "kept net.ipv4.conf.all.arp_ignore=1: cluster {a_name} still sets it"
            )),
            "{out}"
        );
        for r in rs {
            assert_eq!(
                on(lab, &r.name, ARP),
                SUPPRESSED,
                "{}: after destroy B",
                r.name
            );
            let lo = on(lab, &r.name, "ip -4 -o addr show dev lo");
            assert!(
                lo.contains(&format!("{vip_a}/32")) && !lo.contains(&format!("{vip_b}/32")),
                "{}: {lo}",
                r.name
            );
        }
        expect(
            &run_a(&["plan", "--detailed-exitcode"]),
            0,
            "A untouched by B's destroy",
        );
        if !no_kernel() {
            wait_for_master(fa, rs.len());
            let (code, v) = common::verify(fa, &["--skip-failover"]);
            assert_eq!(
                code,
                0,
                "A does not verify after B's destroy:\n{}",
                common::reasons(&v)
            );
        }
        b
    }

    /// The other order: B again, then A destroyed first, B last. B recorded
    /// A's originals for the keys A set, so the last destroy restores them.
    fn outlives(
        self,
        lab: &Lab,
        spec: &lvsup::config::ClusterSpec,
        run_a: &dyn Fn(&[&str]) -> Output,
    ) {
        expect(&self.run_rs(spec, &["apply", "--yes"]), 0, "apply B again");
        let out = expect(&run_a(&["destroy", "--yes"]), 0, "destroy A");
        assert!(out.contains("destroy summary"), "{out}");
        assert!(
            out.contains(&format!(
                "kept net.ipv4.conf.all.arp_ignore=1: cluster {SECOND} still sets it"
            )),
            "{out}"
        );
        for r in &spec.real_servers {
            assert_eq!(
                on(lab, &r.name, ARP),
                SUPPRESSED,
                "{}: after destroy A",
                r.name
            );
        }
        expect(&self.run_rs(spec, &["destroy", "--yes"]), 0, "destroy B");
    }
}
