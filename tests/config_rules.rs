//! Every validation rule of cluster.toml has a file under `fixtures/invalid/`
//! that breaks it. Each file ends with `# expect: KEY @ LINE ~ TEXT` lines;
//! the problems reported for the file must be exactly those (key and line),
//! and each message must contain its TEXT.

use std::path::{Path, PathBuf};

use lvsup::config;

struct Expect {
    key: String,
    line: usize,
    text: String,
}

fn expectations(text: &str) -> Vec<Expect> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|l| {
            let (key, rest) = l.split_once(" @ ").expect("`KEY @ LINE ~ TEXT`");
            let (line, text) = rest.split_once(" ~ ").expect("`LINE ~ TEXT`");
            Expect {
                key: key.trim().to_string(),
                line: line.trim().parse().expect("line number"),
                text: text.trim().to_string(),
            }
        })
        .collect()
}

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_invalid_fixture_reports_exactly_its_expected_problems() {
    let files = fixtures("tests/fixtures/invalid");
    assert!(files.len() >= 70, "fixtures missing: {}", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("read");
        let expected = expectations(&text);
        assert!(
            !expected.is_empty(),
            "{}: no `# expect:` line",
            path.display()
        );
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let err = match config::parse_str(name, &text) {
            Ok(_) => {
                failures.push(format!("{name}: validated, but should fail"));
                continue;
            }
            Err(e) => e,
        };
        let got: Vec<(String, usize)> = err
            .problems
            .iter()
            .map(|p| (p.key.clone(), p.line))
            .collect();
        let want: Vec<(String, usize)> = expected.iter().map(|e| (e.key.clone(), e.line)).collect();
        let mut g = got.clone();
        let mut w = want.clone();
        g.sort();
        w.sort();
        if g != w {
            failures.push(format!("{name}: expected {want:?}, got:\n{err}"));
            continue;
        }
        for e in &expected {
            let p = err
                .problems
                .iter()
                .find(|p| p.key == e.key && p.line == e.line)
                .expect("matched above");
            let full = format!("{} {}", p.message, p.hint.as_deref().unwrap_or(""));
            if !full.contains(&e.text) {
                failures.push(format!(
                    "{name}: `{}` message {full:?} lacks {:?}",
                    e.key, e.text
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn every_example_validates() {
    let files = fixtures("examples");
    assert!(files.len() >= 3);
    for path in files {
        if let Err(e) = config::load(&path) {
            panic!("{}:\n{e}", path.display());
        }
    }
}

#[test]
fn defaults_of_the_contract_are_applied() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/minimal.toml");
    let spec = config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec.vrid, config::validate::derived_vrid("web"));
    assert_eq!(spec.advert_interval, std::time::Duration::from_secs(1));
    assert!(spec.preempt);
    assert!(!spec.vrrp_unicast, "multicast unless asked");
    assert!(!spec.sync_daemon, "no connection sync unless asked");
    assert_eq!(spec.metrics, None, "no metrics listener unless asked");
    assert_eq!(
        spec.ipvs_timeouts, None,
        "the kernel's timeouts unless asked"
    );
    assert!(spec.expire_nodest_conn && spec.expire_quiescent_template);
    assert_eq!(spec.drain_timeout, std::time::Duration::from_secs(300));
    assert_eq!(
        spec.ssh.control_persist, None,
        "SSH connections closed at the end of each run unless asked"
    );
    assert!(spec.real_servers.iter().all(|r| !r.drain));
    assert_eq!(spec.interface, None, "found on the host at apply time");
    let prios: Vec<u8> = spec.directors.iter().map(|d| d.priority).collect();
    assert_eq!(prios, [150, 140]);
    let s = &spec.services[0];
    assert_eq!(s.protocol, config::Protocol::Tcp);
    assert_eq!(s.persistence, None);
    let h = &s.health;
    assert_eq!(h.check, config::Check::Tcp);
    assert_eq!(
        (
            h.interval.as_secs(),
            h.timeout.as_secs(),
            h.fall,
            h.rise,
            h.port
        ),
        (2, 1, 3, 2, None)
    );
    assert_eq!(spec.real_servers[0].weight, 1);
    assert_eq!(
        spec.directors[0].address.prefix_len(),
        24,
        "default prefix /24"
    );
    assert_eq!(
        spec.summary(),
        "web: DR, 1 service, 2 directors, 2 real servers"
    );
}

#[test]
fn ssh_control_persist_is_read_and_zero_is_off() {
    let base = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/minimal.toml"),
    )
    .expect("minimal.toml");
    for (value, want) in [
        ("\"60s\"", Some(std::time::Duration::from_secs(60))),
        ("\"1h\"", Some(std::time::Duration::from_secs(3600))),
        ("\"500ms\"", Some(std::time::Duration::from_millis(500))),
        ("\"0s\"", None),
    ] {
        let text = format!("[ssh]\ncontrol_persist = {value}\n\n{base}");
        let spec = config::parse_str("c.toml", &text).unwrap_or_else(|e| panic!("{value}: {e}"));
        assert_eq!(spec.ssh.control_persist, want, "{value}");
    }
}

#[test]
fn ipvs_timeouts_and_expire_keys_are_read() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/minimal.toml");
    let text = std::fs::read_to_string(&path).expect("example");
    let text = text
        .replacen(
            "mode = \"dr\"",
            "mode = \"dr\"\nipvs_timeouts = { tcp = \"1h\", udp = \"60s\" }\n\
         expire_nodest_conn = false\nexpire_quiescent_template = false\ndrain_timeout = \"90s\"",
            1,
        )
        .replacen(
            "address = \"172.18.250.79\"",
            "address = \"172.18.250.79\"\ndrain = true",
            1,
        );
    let spec = config::parse_str("t.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    let t = spec.ipvs_timeouts.expect("timeouts");
    assert_eq!(t.tcp, Some(std::time::Duration::from_secs(3600)));
    assert_eq!(t.tcpfin, None, "unset: the kernel's value stays");
    assert_eq!(t.secs(), (3600, 0, 60));
    assert!(!spec.expire_nodest_conn && !spec.expire_quiescent_template);
    assert_eq!(spec.drain_timeout, std::time::Duration::from_secs(90));
    assert!(spec.real_servers[1].drain && !spec.real_servers[0].drain);
    // The directors' config carries the timeouts; the sysctls follow the keys.
    let d = lvsup::desired::desired_cluster(&spec).expect("render");
    let dir = d
        .hosts
        .iter()
        .find(|h| h.name == spec.directors[0].name)
        .expect("director");
    let cfg = dir
        .files
        .iter()
        .find(|f| f.path.ends_with("director.toml"))
        .expect("director.toml");
    assert!(
        cfg.content
            .contains("ipvs_timeouts = { tcp = \"60m\", udp = \"1m\" }"),
        "{}",
        cfg.content
    );
    let back = lvsup::director::config::DirectorConfig::parse(&cfg.content).expect("reads back");
    assert_eq!(back.ipvs_timeouts, Some(t));
    assert_eq!(back.drain_timeout, std::time::Duration::from_secs(90));
    assert!(back.services[0].real_servers[1].drain);
    // The desired IPVS table (what plan compares) has the drained server at 0.
    assert_eq!(dir.ipvs[0].destinations[1].weight, 0);
    let sysctl = |k: &str| {
        dir.sysctls
            .iter()
            .find(|s| s.key == k)
            .map(|s| s.value.clone())
    };
    assert_eq!(
        sysctl("net.ipv4.vs.expire_nodest_conn").as_deref(),
        Some("0")
    );
    assert_eq!(
        sysctl("net.ipv4.vs.expire_quiescent_template").as_deref(),
        Some("0")
    );
}

#[test]
fn scheduler_default_is_wlc_and_udp_defaults_to_no_check() {
    let text = r#"
[cluster]
name = "dns"
vip = "10.0.0.53"
mode = "tun"

[[services]]
port = 53
protocol = "udp"

[[directors]]
name = "d1"
address = "10.0.0.2"

[[real_servers]]
name = "r1"
address = "10.9.0.2"
"#;
    let spec = config::parse_str("dns.toml", text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec.services[0].scheduler, "wlc");
    assert_eq!(spec.services[0].health.check, config::Check::None);
}

#[test]
fn derived_vrid_is_stable_and_in_range() {
    // Changing the derivation would split running clusters: pin some values.
    use config::validate::derived_vrid;
    let v: Vec<u8> = ["web", "natweb", "tunnel", "a"]
        .iter()
        .map(|n| derived_vrid(n))
        .collect();
    // 1 + FNV-1a-32(name) % 255, computed independently
    assert_eq!(v, [56, 228, 191, 71]);
    for name in ["web", "x", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"] {
        assert!((1..=255).contains(&derived_vrid(name)));
    }
}

#[test]
fn garbage_input_never_panics() {
    // Arbitrary bytes, truncations of a valid file, and odd TOML must produce
    // errors (or a spec), never a panic.
    let valid =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/dr.toml"))
            .expect("read");
    for cut in (0..valid.len()).step_by(7) {
        if valid.is_char_boundary(cut) {
            let _ = config::parse_str("cut.toml", &valid[..cut]);
        }
    }
    let odd = [
        "",
        "=",
        "[[cluster]]\nname=1",
        "[cluster]\nname = \"web\"\n[cluster]\n",
        "services = 3",
        "[[services]]\nhealth = 1",
        "[[services]]\n[services.health]\ncheck = [1]",
        "[cluster]\nvrid = 99999999999999999999",
        "[cluster]\nadvert_interval = \"9999999999999999999999s\"",
        "\u{feff}[cluster]",
        "[cluster]\nname = \"\u{1F600}\"",
    ];
    for t in odd {
        let _ = config::parse_str("odd.toml", t);
    }
}

#[test]
fn random_mutations_of_a_valid_file_never_panic() {
    // A deterministic mutation fuzzer (xorshift): replace, delete or insert
    // bytes of examples/*.toml and parse the result. Any outcome but a panic is fine.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet = b"[]=\"'.,#\n 0123456789abcdefz/-_{}";
    for name in ["dr.toml", "nat.toml", "tun.toml"] {
        let base = std::fs::read(dir.join(name)).expect("read");
        for _ in 0..400 {
            let mut b = base.clone();
            for _ in 0..(1 + next() % 4) {
                let at = (next() as usize) % b.len().max(1);
                let c = alphabet[(next() as usize) % alphabet.len()];
                match next() % 3 {
                    0 if at < b.len() => b[at] = c,
                    1 if at < b.len() => {
                        b.remove(at);
                    }
                    _ => b.insert(at.min(b.len()), c),
                }
            }
            let text = String::from_utf8_lossy(&b);
            if let Err(e) = config::parse_str(name, &text) {
                // Rendering must not panic either.
                let _ = e.render(false);
                let _ = e.to_string();
            }
        }
    }
}

/// `[[services]] name` and `vip`, `[[real_servers]] services` and `weights`
/// (examples/two-vips.toml): names default to "PORT/PROTO" (or
/// "VIP:PORT/PROTO" with a vip of its own), VIPs to the cluster's.
#[test]
fn service_names_vips_and_per_service_real_servers() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/two-vips.toml");
    let spec = config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<(&str, String)> = spec
        .services
        .iter()
        .map(|s| (s.name.as_str(), s.vip.to_string()))
        .collect();
    assert_eq!(
        names,
        [
            ("80/tcp", "192.168.0.100".to_string()),
            ("https", "192.168.0.100".to_string()),
            ("api", "192.168.0.101".to_string()),
        ]
    );
    let vips: Vec<String> = spec.vips().iter().map(|v| v.to_string()).collect();
    assert_eq!(vips, ["192.168.0.100", "192.168.0.101"]);
    let (node1, node2) = (&spec.real_servers[0], &spec.real_servers[1]);
    let api = &spec.services[2];
    assert!(node1.serves(api) && !node2.serves(api));
    assert_eq!(node1.weight_for(api), 50);
    assert_eq!(node1.weight_for(&spec.services[0]), 100);
    let of_api: Vec<&str> = spec.real_servers_of(api).map(|r| r.name.as_str()).collect();
    assert_eq!(of_api, ["node1"]);
    assert_eq!(api.label(), "TCP 192.168.0.101:80");
    assert_eq!(
        spec.summary(),
        "site: DR, 2 VIPs, 3 services, 2 directors, 2 real servers"
    );

    // Without a name, a service with its own VIP is called "VIP:PORT/PROTO".
    let text = std::fs::read_to_string(&path)
        .expect("example")
        .replace("name = \"api\"\n", "")
        .replace(
            "weights = { api = 50 }",
            "weights = { \"192.168.0.101:80/tcp\" = 50 }",
        );
    let spec = config::parse_str("two-vips.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec.services[2].name, "192.168.0.101:80/tcp");
    assert_eq!(spec.real_servers[0].weight_for(&spec.services[2]), 50);
}

/// https/script checks, body checks, notify hooks and preempt_delay: read
/// into the model, carried into every director.toml, read back the same.
#[test]
fn checks_hooks_and_preempt_delay_are_read_and_reach_director_toml() {
    use lvsup::config::{Check, HttpCheck};
    use std::time::Duration;
    let text = r#"
[cluster]
name = "web"
vip = "172.18.250.99"
mode = "dr"
preempt_delay = "90s"
notify = { master = ["/usr/local/bin/vip-up", "web"], stop = ["/bin/logger", "lvsup stop"] }

[[services]]
port = 443
[services.health]
check = "https"
path = "/status"
expect_body = "\"ok\": true"
expect_digest = "9A0364B9E99BB480DD25E1F0284C8555"
tls_verify = false
sni = "www.example.com"

[[services]]
port = 8080
[services.health]
check = "script"
script = ["/usr/local/bin/check-app", "--host={address}", "{port}"]
timeout = "3s"
interval = "10s"

[[services]]
port = 80
[services.health]
check = "https"

[[directors]]
name = "dr1"
address = "172.18.250.10"

[[directors]]
name = "dr2"
address = "172.18.250.11"

[[real_servers]]
name = "rs1"
address = "172.18.250.77"
"#;
    let spec = config::parse_str("t.toml", text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec.preempt_delay, Duration::from_secs(90));
    assert_eq!(
        spec.notify.master.as_deref(),
        Some(&["/usr/local/bin/vip-up".to_string(), "web".into()][..])
    );
    assert_eq!(spec.notify.backup, None);
    assert_eq!(
        spec.services[0].health.check,
        Check::Https {
            http: HttpCheck {
                path: "/status".into(),
                expect_status: 200,
                expect_body: Some("\"ok\": true".into()),
                // stored in lower case, as md5sum prints it
                expect_digest: Some("9a0364b9e99bb480dd25e1f0284c8555".into()),
            },
            tls_verify: false,
            sni: Some("www.example.com".into()),
        }
    );
    assert_eq!(
        spec.services[1].health.check,
        Check::Script {
            argv: vec![
                "/usr/local/bin/check-app".into(),
                "--host={address}".into(),
                "{port}".into()
            ]
        }
    );
    // https defaults: verification on, the real server's address as name.
    assert!(matches!(
        &spec.services[2].health.check,
        Check::Https { tls_verify: true, sni: None, http } if http.path == "/" && http.expect_body.is_none()
    ));
    // Defaults when left out.
    let minimal = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/minimal.toml"),
    )
    .expect("example");
    let m = config::parse_str("m.toml", &minimal).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.preempt_delay, Duration::ZERO);
    assert!(m.notify.is_empty());

    let d = lvsup::desired::desired_cluster(&spec).expect("render");
    for dir in &spec.directors {
        let host = d.hosts.iter().find(|h| h.name == dir.name).expect("host");
        let file = host
            .files
            .iter()
            .find(|f| f.path.ends_with("director.toml"))
            .expect("director.toml");
        let back = lvsup::director::config::DirectorConfig::parse(&file.content)
            .unwrap_or_else(|e| panic!("{e}\n{}", file.content));
        assert_eq!(
            back,
            lvsup::director::config::DirectorConfig::from_spec(&spec, dir),
            "{}",
            file.content
        );
        assert_eq!(lvsup::director::config::check(&back), Ok(()));
        assert_eq!(back.vrrp.preempt_delay, Duration::from_secs(90));
        assert_eq!(back.notify, spec.notify);
        let h = &back.services[0].health;
        assert_eq!(
            (h.check.as_str(), h.tls_verify, h.sni.as_deref()),
            ("https", Some(false), Some("www.example.com"))
        );
        assert_eq!(
            back.services[1].health.script.as_ref().map(Vec::len),
            Some(3)
        );
        assert!(
            file.content.contains("preempt_delay = \"90s\""),
            "{}",
            file.content
        );
    }
}

#[test]
fn fwmark_sorry_server_and_persistence_netmask_are_read() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/minimal.toml");
    let text = std::fs::read_to_string(&path).expect("example");
    let text = text.replacen(
        "[[services]]\nport = 80\nscheduler = \"rr\"",
        "[[services]]\nport = 8000\npersistence = \"300s\"\npersistence_netmask = \"255.255.255.0\"\n\
         sorry_server = \"172.18.250.90\"\n\n\
         [[services]]\nfwmark = 7\nports = [443, 80]\npersistence = \"1h\"\npersistence_netmask = \"/16\"\n\
         sorry_server = \"172.18.250.91\"\n[services.health]\nport = 80\n",
        1,
    );
    let spec = config::parse_str("t.toml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let (a, f) = (&spec.services[0], &spec.services[1]);
    assert_eq!(a.persistence_netmask, Some(24));
    assert_eq!(
        a.sorry_server,
        Some(config::SorryServer {
            address: "172.18.250.90".parse().expect("ip"),
            port: None
        })
    );
    assert_eq!(a.fwmark, None);
    assert_eq!(
        f.fwmark,
        Some(config::Fwmark {
            mark: 7,
            ports: vec![80, 443]
        }),
        "ports sorted"
    );
    assert_eq!(
        (f.port, f.persistence_netmask, f.health.port),
        (0, Some(16), Some(80))
    );
    assert_eq!(f.label(), format!("FWM 7 (TCP {}:80,443)", spec.vip));
    // The directors' config carries them and reads back the same.
    let d = lvsup::desired::desired_cluster(&spec).expect("render");
    let dir = d
        .hosts
        .iter()
        .find(|h| h.name == spec.directors[0].name)
        .expect("director");
    let cfg = dir
        .files
        .iter()
        .find(|f| f.path.ends_with("director.toml"))
        .expect("director.toml");
    let back = lvsup::director::config::DirectorConfig::parse(&cfg.content)
        .unwrap_or_else(|e| panic!("{e}\n{}", cfg.content));
    assert_eq!(back, *dir.director_config.as_ref().expect("typed"));
    assert_eq!(back.services[1].fwmark, Some(7));
    assert_eq!(back.services[1].ports, [80, 443]);
    assert_eq!(back.services[0].persistence_netmask, Some(24));
    let s = back.services[1].sorry_server.as_ref().expect("sorry");
    assert_eq!(
        s.port, 0,
        "a fwmark service's sorry server takes the packet's port"
    );
    assert_eq!(
        back.services[0].sorry_server.as_ref().expect("sorry").port,
        8000
    );
    assert!(back.services[1].real_servers.iter().all(|r| r.port == 0));
    assert_eq!(lvsup::director::config::check(&back), Ok(()));
}

/// A fwmark service on a VIP of its own: named "VIP:fwmark:N" by default,
/// and lvsup's nftables rule marks the packets to that VIP.
#[test]
fn a_fwmark_service_on_its_own_vip() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/two-vips.toml");
    let text = std::fs::read_to_string(&path).expect("example").replacen(
        "[[directors]]",
        "[[services]]\nvip = \"192.168.0.102\"\nfwmark = 7\nports = [8080, 8443]\n\
         [services.health]\nport = 8080\n\n[[directors]]",
        1,
    );
    let spec = config::parse_str("t.toml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let f = &spec.services[3];
    assert_eq!(f.name, "192.168.0.102:fwmark:7");
    assert_eq!(f.label(), "FWM 7 (TCP 192.168.0.102:8080,8443)");
    assert_eq!(spec.vips().len(), 3);
    let rules = lvsup::desired::fwmark_rules(&spec).expect("a fwmark service");
    assert!(
        rules
            .content
            .contains("ip daddr 192.168.0.102 tcp dport { 8080, 8443 } meta mark set 0x00000007"),
        "{}",
        rules.content
    );
    // Its ports are its VIP's: the same ports on another VIP are free.
    let again = text.replacen(
        "[[directors]]",
        "[[services]]\nport = 8080\n\n[[directors]]",
        1,
    );
    config::parse_str("t.toml", &again).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn in_nat_a_sorry_server_may_be_another_port_of_a_real_server() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/nat.toml");
    let text = std::fs::read_to_string(&path).expect("example");
    let with = |sorry: &str| {
        text.replacen(
            "[[services]]\nport = 80\n",
            &format!("[[services]]\nport = 80\nsorry_server = \"{sorry}\"\n"),
            1,
        )
    };
    // app1 serves 8080 (remapped): its 8081 can be the maintenance page
    let ok = with("192.168.10.11:8081");
    assert_ne!(ok, text, "service block not found");
    let spec = config::parse_str("t.toml", &ok).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        spec.services[0].sorry_server.as_ref().map(|s| s.port),
        Some(Some(8081))
    );
    // its own port, or the address alone, is the real server itself
    for bad in ["192.168.10.11:8080", "192.168.10.11"] {
        let e = config::parse_str("t.toml", &with(bad)).expect_err(bad);
        assert!(
            e.to_string()
                .contains("is real server app1: it is in the pool already"),
            "{bad}: {e}"
        );
    }
}

/// The ports a real server serves are those of its own `services`: the port
/// of a service it is not in may be a sorry server (NAT), and another VIP of
/// the cluster may not.
#[test]
fn a_sorry_server_on_a_port_of_a_service_the_real_server_is_not_in() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/nat.toml");
    let text = std::fs::read_to_string(&path)
        .expect("example")
        .replacen("[nat]", "[[services]]\nport = 81\n\n[nat]", 1)
        .replacen(
            "address = \"192.168.10.11/24\"\nport = 8080",
            "address = \"192.168.10.11/24\"\nservices = [\"80/tcp\"]",
            1,
        )
        // app2: no port remapping with two service ports
        .replacen(
            "address = \"192.168.10.12/24\"\nport = 8080",
            "address = \"192.168.10.12/24\"",
            1,
        );
    let with = |sorry: &str| {
        text.replacen(
            "[[services]]\nport = 80\n",
            &format!("[[services]]\nport = 80\nsorry_server = \"{sorry}\"\n"),
            1,
        )
    };
    // app1 serves 80 only: its 81 is free
    let ok = with("192.168.10.11:81");
    assert!(ok.contains("services = [\"80/tcp\"]") && ok.contains("port = 81\n"));
    let spec = config::parse_str("t.toml", &ok).unwrap_or_else(|e| panic!("{e}\n{ok}"));
    assert_eq!(spec.services[1].name, "81/tcp");
    let e = config::parse_str("t.toml", &with("192.168.10.11:80")).expect_err("its own port");
    assert!(
        e.to_string()
            .contains("is real server app1: it is in the pool already"),
        "{e}"
    );
    // another VIP of the cluster is no sorry server
    let other = with("10.0.0.101").replacen(
        "[[services]]\nport = 81\n",
        "[[services]]\nport = 81\nvip = \"10.0.0.101\"\n",
        1,
    );
    let e = config::parse_str("t.toml", &other).expect_err("a VIP");
    assert!(
        e.to_string()
            .contains("sorry_server \"10.0.0.101\" is the VIP of service \"10.0.0.101:81/tcp\""),
        "{e}"
    );
}
