//! The keepalived features of issue 15 that change traffic, in a real lab
//! (NAT: two segments, the directors route for the real servers): a fwmark
//! service (two ports on one mark, persistence across both, the nftables
//! table lvsup puts on the directors) and a sorry server taking over when
//! every real server is down, leaving when one is back. Needs root, ip_vs and
//! systemd-nspawn, so `#[ignore]`d; tests/run runs it in the lab VM:
//!
//!     tests/lab/in-vm target/debug/deps/features_e2e-* --ignored --test-threads=1

use std::time::{Duration, Instant};

mod common;

use common::{Lab, lvsup};

const CLUSTER: &str = r#"
[cluster]
name = "feat"
vip = "10.0.0.100"
mode = "nat"

[[services]]
port = 80
scheduler = "rr"
sorry_server = "192.168.10.11:8081"   # app1's second demo server, started by the test
[services.health]
check = "http"
interval = "1s"
timeout = "800ms"
fall = 2
rise = 1

[[services]]
fwmark = 1
ports = [8443, 9443]
scheduler = "rr"
persistence = "60s"
[services.health]
check = "tcp"
port = 8443
interval = "1s"
timeout = "800ms"

[nat]
gateway = "192.168.10.254/24"

[[directors]]
name = "nat1"
address = "10.0.0.11/24"
internal_address = "192.168.10.251/24"

[[directors]]
name = "nat2"
address = "10.0.0.12/24"
internal_address = "192.168.10.252/24"

[[real_servers]]
name = "app1"
address = "192.168.10.11/24"

[[real_servers]]
name = "app2"
address = "192.168.10.12/24"
"#;

const VIP: &str = "10.0.0.100";

fn text(o: &std::process::Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn on(lab: &Lab, host: &str, cmd: &str) -> String {
    lab.on(host, cmd)
}

/// An HTTP GET from the lab's client to the VIP: the answering host's name,
/// or None when nothing answered within 3 s.
fn get(lab: &Lab, port: u16) -> Option<String> {
    let o = lvsup(&[
        "lab",
        "exec",
        "-f",
        &lab.file.to_string_lossy(),
        "client",
        "--",
        "curl",
        "-s",
        "-m",
        "3",
        &format!("http://{VIP}:{port}/"),
    ]);
    let body = String::from_utf8_lossy(&o.stdout).trim().to_string();
    (o.status.success() && !body.is_empty()).then_some(body)
}

/// Poll `f` every 500 ms for up to `secs`: its last value and whether it held.
fn until<T>(secs: u64, mut f: impl FnMut() -> (bool, T)) -> (bool, T) {
    let t = Instant::now();
    loop {
        let (ok, v) = f();
        if ok || t.elapsed() > Duration::from_secs(secs) {
            return (ok, v);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn master(file: &str) -> String {
    let (ok, seen) = until(90, || {
        let o = lvsup(&["status", "-f", file, "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        (v["master"].is_string(), v)
    });
    assert!(ok, "no master: {seen}");
    seen["master"].as_str().unwrap_or_default().to_string()
}

#[test]
#[ignore = "needs root, ip_vs and the lab VM; runs in tests/run"]
fn fwmark_service_and_sorry_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("feat.toml");
    std::fs::write(&file, CLUSTER).expect("write");
    let f = file.to_string_lossy().into_owned();
    let o = lvsup(&["lab", "up", "-f", &f]);
    assert!(o.status.success(), "lab up\n{}", text(&o));
    let lab = Lab {
        file: file.clone(),
        _dir: dir,
    };
    let o = lvsup(&["apply", "--yes", "-f", &f]);
    assert_eq!(o.status.code(), Some(0), "apply\n{}", text(&o));
    let m = master(&f);
    eprintln!("master: {m}");
    fwmark(&lab, &m);
    sorry_server(&lab, &m);
}

/// Both ports reach the real servers through the one mark; persistence
/// holds a client on one server across both ports; without lvsup's nftables
/// table the second port reaches nothing, and a reload puts the table back.
fn fwmark(lab: &Lab, m: &str) {
    let table = on(lab, m, "nft list table ip lvsup_feat");
    assert!(
        table.contains("8443")
            && table.contains("9443")
            && table.contains("meta mark set 0x00000001"),
        "{table}"
    );
    let ipvs = on(lab, m, "cat /proc/net/ip_vs");
    // /proc shows the persistence timeout in jiffies: 60 s at any CONFIG_HZ
    assert!(
        [100, 250, 300, 1000]
            .iter()
            .any(|hz| ipvs.contains(&format!("FWM  00000001 rr persistent {} ", 60 * hz))),
        "{ipvs}"
    );
    // rr alone would alternate between app1 and app2; persistence on the
    // fwmark service keeps this client on one, whichever port it asks.
    let (ok, first) = until(30, || {
        let a = get(lab, 8443);
        (a.is_some(), a)
    });
    assert!(ok, "nothing answered on {VIP}:8443");
    let first = first.unwrap_or_default();
    for i in 0..6 {
        let port = if i % 2 == 0 { 9443 } else { 8443 };
        assert_eq!(
            get(lab, port).as_deref(),
            Some(first.as_str()),
            "connection {i} to port {port}: persistence across the mark's ports"
        );
    }
    eprintln!("fwmark 1: ports 8443 and 9443 both on {first}");
    // The mark is what sends 9443 to IPVS: without the table nothing
    // listens there on the director.
    on(lab, m, "nft delete table ip lvsup_feat");
    assert_eq!(get(lab, 9443), None, "9443 answered without the mark");
    on(lab, m, "systemctl reload lvsup-director-feat.service");
    let (ok, _) = until(30, || (get(lab, 9443).is_some(), ()));
    assert!(ok, "the reload did not put the nftables table back");
}

/// Every real server of port 80 down: the sorry server (app1:8081) answers;
/// one real server back: the sorry server leaves the table.
fn sorry_server(lab: &Lab, m: &str) {
    on(lab, "app1", "systemctl start lvsup-lab-demo@8081.service");
    assert!(get(lab, 80).is_some(), "port 80 before");
    let ipvs = on(lab, m, "cat /proc/net/ip_vs");
    assert!(
        !ipvs.contains(":1F91"),
        "sorry server in the table too early:\n{ipvs}"
    );
    for h in ["app1", "app2"] {
        on(lab, h, "systemctl stop lvsup-lab-demo@80.service");
    }
    // app1's port 80 is stopped: "app1" can only come from its port 8081.
    let (ok, seen) = until(40, || {
        let a = get(lab, 80);
        (a.as_deref() == Some("app1"), a)
    });
    let status = on(lab, m, "lvsup director status");
    assert!(ok, "the sorry server did not answer: {seen:?}\n{status}");
    assert!(status.contains("sorry server in use"), "{status}");
    let ipvs = on(lab, m, "cat /proc/net/ip_vs");
    assert!(
        ipvs.contains("C0A80A0B:1F91"),
        "sorry server not in the table:\n{ipvs}"
    );
    eprintln!("sorry server in use while app1 and app2 are down");

    on(lab, "app2", "systemctl start lvsup-lab-demo@80.service");
    let (ok, seen) = until(40, || {
        let ipvs = on(lab, m, "cat /proc/net/ip_vs");
        (!ipvs.contains(":1F91"), ipvs)
    });
    assert!(ok, "the sorry server stayed after app2 came back:\n{seen}");
    for _ in 0..4 {
        assert_eq!(get(lab, 80).as_deref(), Some("app2"), "app2 alone serves");
    }
    eprintln!("sorry server gone once app2 was back");
}
