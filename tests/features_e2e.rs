//! The keepalived features of issue 15 that change traffic, in a real lab
//! (NAT: two segments, the directors route for the real servers): a second
//! VIP whose service is health-checked over HTTPS (a TLS server on each real
//! server, its certificate made by the test), a fwmark service (two ports on
//! one mark, persistence across both, the nftables table lvsup puts on the
//! directors) and a sorry server taking over when every real server is down,
//! leaving when one is back; `lvsup verify` passes on that cluster, every
//! service probed on its own VIP. Needs root, ip_vs and systemd-nspawn, so
//! `#[ignore]`d; tests/run runs it in the lab VM:
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
vip = "10.0.0.101"
port = 443
scheduler = "rr"
[services.health]
check = "https"
tls_verify = false   # the test's self-signed certificate (the handshake is still checked)
interval = "1s"
timeout = "800ms"
fall = 2
rise = 1

# Scheduled by active connections: verify holds connections open across
# its scheduling batch and replays wlc from the counters that include them.
[[services]]
port = 8080
scheduler = "wlc"
[services.health]
check = "tcp"
interval = "1s"
timeout = "800ms"

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
const VIP2: &str = "10.0.0.101";

/// A TLS server on port 443 (python3's ssl, in the lab image; busybox httpd
/// has no TLS) answering every request with the host's name, like the
/// lab's demo servers; one connection at a time, 3 s per connection.
const TLS_SERVER: &str = r#"import socket, ssl
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("/srv/lvsup-lab/tls.pem")
body = open("/srv/lvsup-lab/index.html", "rb").read()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", 443))
s.listen(64)
while True:
    c, _ = s.accept()
    c.settimeout(3)
    try:
        t = ctx.wrap_socket(c, server_side=True)
        t.recv(4096)
        t.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        t.unwrap()  # close_notify: a clean end of the TLS stream
    except Exception:
        pass
    c.close()
"#;

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
    fetch(lab, &format!("http://{VIP}:{port}/"))
}

/// `curl URL` from the lab's client (certificates not checked: the test's
/// own): the body, or None when nothing answered within 3 s.
fn fetch(lab: &Lab, url: &str) -> Option<String> {
    let o = lvsup(&[
        "lab",
        "exec",
        "-f",
        &lab.file.to_string_lossy(),
        "client",
        "--",
        "curl",
        "-sk",
        "-m",
        "3",
        url,
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
    tls_servers(&lab);
    let o = lvsup(&["apply", "--yes", "-f", &f]);
    assert_eq!(o.status.code(), Some(0), "apply\n{}", text(&o));
    let m = master(&f);
    eprintln!("master: {m}");
    https_on_the_second_vip(&lab, &m, &f);
    fwmark(&lab, &m);
    sorry_server(&lab, &m);
}

/// Port 443 of both real servers: the lab's plain demo server there (lab up
/// starts one on every service port) replaced by [`TLS_SERVER`] with a
/// self-signed certificate naming both real servers.
fn tls_servers(lab: &Lab) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["192.168.10.11".into(), "192.168.10.12".into()])
            .expect("certificate");
    let pem = format!("{}{}", ck.cert.pem(), ck.signing_key.serialize_pem());
    for h in ["app1", "app2"] {
        on(
            lab,
            h,
            &format!(
                "systemctl stop lvsup-lab-demo@443.service 2>/dev/null; \
                 cat > /srv/lvsup-lab/tls.pem <<'LVSUP_EOF'\n{pem}LVSUP_EOF\n\
                 cat > /srv/lvsup-lab/tls.py <<'LVSUP_EOF'\n{TLS_SERVER}LVSUP_EOF\n\
                 systemd-run --unit=feat-tls /usr/bin/python3 /srv/lvsup-lab/tls.py"
            ),
        );
    }
}

/// The second VIP answers HTTPS from both real servers, their https checks
/// pass (a failed one would have put them at weight 0: `status` says so),
/// and `lvsup verify` passes with every service probed on its own VIP.
fn https_on_the_second_vip(lab: &Lab, m: &str, f: &str) {
    let url = format!("https://{VIP2}/");
    let (ok, seen) = until(40, || {
        let mut names: Vec<String> = (0..4).filter_map(|_| fetch(lab, &url)).collect();
        names.sort();
        names.dedup();
        (names == ["app1", "app2"], names)
    });
    let status = on(lab, m, "lvsup director status");
    assert!(
        ok,
        "{url} not answered by both real servers: {seen:?}\n{status}"
    );
    let ipvs = on(lab, m, "ipvsadm -Ln");
    let lines: Vec<Vec<&str>> = ipvs
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l[..] == ["TCP", "10.0.0.101:443", "rr"]),
        "{ipvs}"
    );
    for rs in ["192.168.10.11:443", "192.168.10.12:443"] {
        assert!(
            lines
                .iter()
                .any(|l| l.len() >= 4 && l[..4] == ["->", rs, "Masq", "1"]),
            "{rs} at weight 1 (its https check passes):\n{ipvs}"
        );
    }
    let held = on(lab, m, "ip -4 -o addr show");
    assert!(
        held.contains(&format!("{VIP}/")) && held.contains(&format!("{VIP2}/")),
        "the master holds both VIPs:\n{held}"
    );
    let (code, v) = common::verify(f, &["--skip-failover"]);
    assert_eq!(code, 0, "verify failed:\n{}", common::reasons(&v));
    let mut probed: Vec<String> = common::rows(&v, "reachability")
        .iter()
        .map(|r| r["subject"].as_str().unwrap_or_default().to_string())
        .collect();
    probed.sort();
    let spec = lvsup::config::parse_str("feat.toml", CLUSTER).expect("valid cluster");
    let mut want: Vec<String> = spec.services.iter().map(|s| s.label()).collect();
    want.sort();
    assert_eq!(want.len(), 4);
    assert_eq!(probed, want, "{v}");
    // wlc: replayed with the held connections active in the counters.
    let wlc = common::rows(&v, "scheduling")
        .into_iter()
        .find(|r| r["subject"].as_str().is_some_and(|s| s.ends_with(":8080")))
        .unwrap_or_else(|| panic!("no scheduling row for port 8080: {v}"));
    assert_eq!(wlc["result"], "pass", "{wlc}");
    assert_eq!(
        wlc["figures"]["held_open"], 4,
        "two per server held open: {wlc}"
    );
    let measured = wlc["measured"].as_str().unwrap_or_default();
    assert!(
        measured.contains(
            "4 of 4 connections held open across the batch (active before it: app1 2, app2 2)"
        ),
        "{wlc}"
    );
    eprintln!(
        "https on {VIP2}: both real servers; verify passed on four services (wlc with 4 held)"
    );
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
