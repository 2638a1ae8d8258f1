//! `lvsup lab` end to end. These tests need root and a kernel with ip_vs and
//! ipip, so they are `#[ignore]`d here and run by `tests/run` inside the VM
//! lab (`tests/lab/in-vm`), one at a time:
//!
//!     tests/lab/in-vm target/debug/deps/lab-* --ignored --test-threads=1
//!
//! For each example: `lab up`; every host answers SSH at its address with its
//! own pinned host key and its own filesystem; systemd runs on each; the demo
//! server answers on every real server (and the demo UDP responder on the UDP
//! service ports); the client reaches what the topology
//! says; `lab down` leaves no namespace, link, mount or process behind.

use std::path::Path;
use std::process::{Command, Output, Stdio};

mod common;
use common::lvsup;

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

fn sh(cmd: &str) -> Output {
    Command::new("sh").args(["-c", cmd]).output().expect("sh")
}

fn ssh(cfg: &str, host: &str, cmd: &str) -> Output {
    Command::new("ssh")
        .args(["-F", cfg, host, "--", cmd])
        .stdin(Stdio::null())
        .output()
        .expect("ssh")
}

struct Host {
    name: String,
    address: String,
    director: bool,
}

fn hosts(file: &str) -> (String, Vec<Host>, Vec<(String, u16)>, String) {
    let spec = lvsup::config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
        .unwrap_or_else(|e| panic!("{e}"));
    let t = lvsup::lab::topology(&spec).expect("topology");
    let hosts = t
        .hosts
        .iter()
        .map(|h| Host {
            name: h.name.clone(),
            address: h.address.to_string(),
            director: h.role == lvsup::lab::HostRole::Director,
        })
        .collect();
    let demo = t
        .hosts
        .iter()
        .flat_map(|h| {
            h.demo_ports
                .iter()
                .map(move |p| (h.address.to_string(), *p))
        })
        .collect();
    (spec.name.clone(), hosts, demo, t.id.clone())
}

/// The demo UDP responders: (address, port) of every real server's UDP service port.
fn udp_demo(file: &str) -> Vec<(String, u16)> {
    let spec = lvsup::config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
        .unwrap_or_else(|e| panic!("{e}"));
    let t = lvsup::lab::topology(&spec).expect("topology");
    t.hosts
        .iter()
        .flat_map(|h| {
            h.demo_udp_ports
                .iter()
                .map(move |p| (h.address.to_string(), *p))
        })
        .collect()
}

/// One datagram to `addr:port` from the operator; the reply's text (three
/// tries, 3 s each: UDP has no retransmission of its own).
fn udp_ask(addr: &str, port: u16) -> Result<String, String> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    s.connect((addr, port)).map_err(|e| e.to_string())?;
    let mut last = String::new();
    for _ in 0..3 {
        s.send(b"lab").map_err(|e| e.to_string())?;
        let mut buf = [0u8; 256];
        match s.recv(&mut buf) {
            Ok(n) => return Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

/// Nothing of the lab is left: namespaces, links, mounts, processes.
fn assert_clean(cluster: &str, id: &str) {
    let netns = ok(sh("ip netns list"), "ip netns list");
    assert!(
        !netns.contains(&format!("lvsup-{cluster}-")),
        "namespaces left:\n{netns}"
    );
    let links = ok(sh("ip -o link"), "ip link");
    assert!(
        !links.contains(&format!("lvb{id}")) && !links.contains(&format!("ve{id}")),
        "links left:\n{links}"
    );
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
    assert!(
        !mounts.contains(&format!("/run/lvsup-lab/{cluster}")),
        "mounts left:\n{mounts}"
    );
    let procs = ok(sh("ps -eo args"), "ps");
    assert!(
        !procs.contains(&format!("lvsup-{id}-")),
        "processes left:\n{procs}"
    );
}

fn lab_example(file: &str) {
    let (cluster, hosts, demo, id) = hosts(file);
    // A previous failed run must not get in the way.
    let _ = lvsup(&["lab", "down", "-f", file]);

    let up = std::time::Instant::now();
    ok(
        lvsup(&["lab", "up", "-f", file, "--timeout", "400"]),
        "lab up",
    );
    eprintln!("{file}: lab up in {:.1}s", up.elapsed().as_secs_f64());
    let cfg = format!("/run/lvsup-lab/{cluster}/ssh_config");
    let known = std::fs::read_to_string(format!("/run/lvsup-lab/{cluster}/known_hosts"))
        .expect("known_hosts");

    // Status lists every host as running and answering.
    let status = ok(lvsup(&["lab", "status", "-f", file]), "lab status");
    for h in &hosts {
        let line = status
            .lines()
            .find(|l| l.trim_start().starts_with(&h.name))
            .expect("status line");
        assert!(
            line.contains("running") && line.contains("ssh ok"),
            "{status}"
        );
    }

    let mut keys = Vec::new();
    for h in &hosts {
        // SSH at its address (not only by name), checked against the pinned key.
        let out = ok(
            ssh(
                &cfg,
                &h.address,
                "hostname; cat /etc/ssh/ssh_host_ed25519_key.pub; systemctl is-system-running --wait; \
             for t in ip ipvsadm curl arping ss; do command -v $t >/dev/null || echo missing $t; done",
            ),
            &format!("ssh {}", h.address),
        );
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some(h.name.as_str()), "{out}");
        let key = lines.next().expect("host key");
        let key_body: Vec<&str> = key.split_whitespace().take(2).collect();
        assert!(
            known.contains(&key_body.join(" ")),
            "{}'s key is not the pinned one",
            h.name
        );
        keys.push(key_body.join(" "));
        assert_eq!(
            lines.next(),
            Some("running"),
            "systemd on {}: {out}",
            h.name
        );
    }
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), hosts.len(), "every host has its own host key");

    // Own filesystems: a file written on one director is absent on the other.
    let directors: Vec<&Host> = hosts.iter().filter(|h| h.director).collect();
    if directors.len() >= 2 {
        ok(
            ssh(
                &cfg,
                &directors[0].name,
                "mkdir -p /etc/lvsup && echo mine > /etc/lvsup/probe",
            ),
            "write",
        );
        let other = ssh(&cfg, &directors[1].name, "test -e /etc/lvsup/probe");
        assert!(
            !other.status.success(),
            "{} sees {}'s file",
            directors[1].name,
            directors[0].name
        );
    }

    // The demo server answers with the host's name, from the operator (root namespace).
    for (addr, port) in &demo {
        let body = ok(
            sh(&format!("curl -s -m 5 http://{addr}:{port}/")),
            "curl from operator",
        );
        let h = hosts.iter().find(|h| &h.address == addr).expect("host");
        assert_eq!(body.trim(), h.name);
    }

    // The demo UDP responder answers each datagram with the host's name.
    let udp = udp_demo(file);
    if file.contains("tun") {
        assert!(!udp.is_empty(), "the TUN example has a UDP service");
    }
    for (addr, port) in &udp {
        let h = hosts.iter().find(|h| &h.address == addr).expect("host");
        assert_eq!(
            udp_ask(addr, *port).as_deref(),
            Ok(h.name.as_str()),
            "UDP {addr}:{port}"
        );
    }

    // The client: reaches the real servers in DR/TUN; in NAT only the directors' external side.
    let client = |cmd: &str| lvsup(&["lab", "exec", "-f", file, "client", "--", "sh", "-c", cmd]);
    let nat = file.contains("nat");
    for (addr, port) in &demo {
        let r = client(&format!("curl -s -m 3 http://{addr}:{port}/"));
        assert_eq!(
            r.status.success(),
            !nat,
            "client -> {addr}:{port} (nat = {nat})"
        );
    }
    for d in &directors {
        let r = client(&format!(
            "curl -s -m 3 -o /dev/null telnet://{}:22 </dev/null; test $? -ne 7",
            d.address
        ));
        assert!(
            r.status.success(),
            "client cannot reach director {}",
            d.name
        );
    }

    let down = ok(lvsup(&["lab", "down", "-f", file]), "lab down");
    assert!(down.contains("removed"), "{down}");
    assert_clean(&cluster, &id);
    // A second down finds nothing and still succeeds.
    let again = ok(lvsup(&["lab", "down", "-f", file]), "lab down again");
    assert!(again.contains("nothing to remove"), "{again}");
}

#[test]
#[ignore = "needs root and a kernel with ip_vs: run in the VM lab (tests/run)"]
fn lab_dr() {
    lab_example("examples/dr.toml");
}

#[test]
#[ignore = "needs root and a kernel with ip_vs and ipip: run in the VM lab (tests/run)"]
fn lab_tun() {
    lab_example("examples/tun.toml");
}

#[test]
#[ignore = "needs root and a kernel with ip_vs: run in the VM lab (tests/run)"]
fn lab_nat() {
    lab_example("examples/nat.toml");
}

#[test]
#[ignore = "needs root and a kernel with ip_vs: run in the VM lab (tests/run)"]
fn lab_down_cleans_up_after_a_crash_halfway() {
    // Simulate a crash after the network and one container were created:
    // build a lab, kill -9 its state (as a crashed `up` leaves it), then down.
    let file = "examples/minimal.toml";
    let (cluster, _, _, id) = hosts(file);
    let _ = lvsup(&["lab", "down", "-f", file]);
    ok(
        lvsup(&["lab", "up", "-f", file, "--timeout", "400"]),
        "lab up",
    );
    // The state file is what a crash before its end would not have written.
    std::fs::remove_file(format!("/run/lvsup-lab/{cluster}/lab.json")).expect("rm state");
    ok(lvsup(&["lab", "down", "-f", file]), "lab down");
    assert_clean(&cluster, &id);
}
