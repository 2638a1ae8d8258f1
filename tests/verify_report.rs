//! verify's report (table and JSON, insta snapshots of a canned result) and
//! the parsers of what hosts print (ip -j, sysctls, lvsup ipvs list --json,
//! ipvsadm -Ln [--stats] --exact).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use lvsup::ipvs::{Destination, Forward, Service, ServiceId, Stats};
use lvsup::observe::live::*;
use lvsup::verify::analysis::*;
use lvsup::verify::facts::*;
use lvsup::verify::report::{CheckRow, Report};

fn canned() -> Report {
    let ok = |p: &str, m: &str, e: &str| Verdict {
        passed: true,
        skipped: false,
        property: p.into(),
        measured: m.into(),
        expected: e.into(),
        reasons: vec![],
    };
    let mut r = Report::new(
        "web",
        vec![
            CheckRow::from_verdict(
                "vip-holder",
                "192.168.0.100",
                ok("the VIP is held by exactly one director", "held by lvs191", "exactly one"),
            ),
            CheckRow::from_verdict(
                "real-server",
                "node2",
                Verdict {
                    passed: false,
                    skipped: false,
                    property: "DR real server: VIP on lo, ARP suppressed".into(),
                    measured: "VIP on lo; eth0 arp_ignore=0 arp_announce=0".into(),
                    expected: "VIP on lo, arp_ignore≥1, arp_announce≥2".into(),
                    reasons: vec!["node2 has no ARP suppression on eth0 (arp_ignore 0, arp_announce 0; need ≥1 and ≥2): it answers ARP for the VIP and steals traffic from the director".into()],
                },
            ),
            CheckRow::from_verdict(
                "scheduling",
                "TCP 192.168.0.100:80",
                ok(
                    "rr: every server in the pool gets an equal share (± max(1, 10%))",
                    "100/100 accepted; node1 50, node2 50",
                    "node1 50±5, node2 50±5",
                ),
            )
            .figure("sent", 100)
            .figure("accepted", 100),
            CheckRow::from_verdict(
                "scheduling-spread",
                "TCP 192.168.0.100:81",
                Verdict::skip(
                    "sh: source addresses spread over the servers by weight",
                    "-".into(),
                    "needs connections from several client addresses; verify connects from one (the machine it runs on)",
                ),
            ),
            CheckRow::from_verdict(
                "director-failover",
                "lvs191 → lvs192",
                ok(
                    "stop lvs191's daemon: lvs192 takes the VIP; restart: preempt = true",
                    "gap 610 ms (61/912 probes failed); then lvs192, back on lvs191",
                    "lvs192 takes over, VIP answers again; then on lvs191",
                ),
            )
            .figure("gap_ms", 610)
            .figure("failed_probes", 61),
            CheckRow::skipped("real-server-failover", "-", "--skip-failover"),
        ],
    );
    r.counters_from = Some(FROM_LVSUP.into());
    r.settle();
    r
}

#[test]
fn report_table_snapshot() {
    let r = canned();
    assert!(!r.passed);
    insta::assert_snapshot!(r.render_text());
}

#[test]
fn report_json_snapshot() {
    insta::assert_json_snapshot!(canned());
}

#[test]
fn report_passes_only_without_failures_interruption_or_undo_failures() {
    let mut r = canned();
    r.checks.remove(1);
    r.settle();
    assert!(r.passed);
    r.interrupted = true;
    r.settle();
    assert!(!r.passed);
    r.interrupted = false;
    r.undo_failures
        .push("start lvsup-director-web.service on lvs191".into());
    r.settle();
    assert!(!r.passed);
    assert!(
        r.render_text()
            .contains("UNDO FAILED: start lvsup-director-web.service on lvs191")
    );
    assert!(!Report::new("empty", vec![]).passed);
}

#[test]
fn parses_ip_addr_json() {
    let j = r#"[{"ifindex":1,"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8},{"family":"inet","local":"192.168.0.100","prefixlen":32},{"family":"inet6","local":"::1"}]},
               {"ifindex":2,"ifname":"eth0","addr_info":[{"family":"inet","local":"192.168.0.171","prefixlen":24}]},
               {"ifindex":3,"ifname":"tunl0"}]"#;
    let a = parse_addresses(j).expect("parses");
    assert_eq!(
        a,
        vec![
            ("lo".to_string(), Ipv4Addr::new(127, 0, 0, 1)),
            ("lo".to_string(), Ipv4Addr::new(192, 168, 0, 100)),
            ("eth0".to_string(), Ipv4Addr::new(192, 168, 0, 171)),
        ]
    );
    assert!(parse_addresses("ssh: banner exchange").is_err());
}

#[test]
fn parses_default_route_and_sysctls() {
    let g = parse_default_gateway(
        r#"[{"dst":"default","gateway":"192.168.10.254","dev":"eth0","flags":[]}]"#,
    );
    assert_eq!(g, Ok(Some(Ipv4Addr::new(192, 168, 10, 254))));
    assert_eq!(parse_default_gateway("[]"), Ok(None));
    assert_eq!(parse_default_gateway(""), Ok(None));
    let s = parse_sysctls(
        "/proc/sys/net/ipv4/conf/all/arp_ignore:1\n/proc/sys/net/ipv4/conf/eth0/arp_announce:2\ngarbage\n\
         /proc/sys/net/ipv4/conf/tunl0/rp_filter:0\n",
    );
    assert_eq!(s.len(), 3);
    assert_eq!(s[&("all".to_string(), "arp_ignore".to_string())], 1);
    assert_eq!(s[&("tunl0".to_string(), "rp_filter".to_string())], 0);
}

#[test]
fn parses_what_lvsup_ipvs_list_json_prints() {
    // Serialize the real model the way `lvsup ipvs list --json` does.
    let vip: SocketAddr = "192.168.0.100:80".parse().expect("addr");
    let mut d1 = Destination::new("192.168.0.171:80".parse().expect("a"), Forward::Route, 100);
    d1.stats = Some(Box::new(Stats {
        conns: 42,
        ..Stats::default()
    }));
    let d2 = Destination::new("192.168.0.172:80".parse().expect("a"), Forward::Route, 0);
    let svc = Service::new(ServiceId::tcp(vip), "rr")
        .with_destination(d1)
        .with_destination(d2);
    let json = serde_json::to_string_pretty(
        &lvsup::contract::ipvs_list::IpvsList {
            version: 0x01_02_01,
            conn_tab_size: 4096,
            services: vec![svc],
        }
        .to_json()
        .expect("json"),
    )
    .expect("json");
    let (t, from) = parse_table_output(&json).expect("parses");
    assert_eq!(from, FROM_LVSUP);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].addr, Some(vip));
    assert_eq!(t[0].protocol, "tcp");
    assert_eq!(t[0].scheduler, "rr");
    assert_eq!(
        t[0].dests,
        vec![
            DestSnap {
                addr: IpAddr::V4(Ipv4Addr::new(192, 168, 0, 171)),
                port: 80,
                weight: 100,
                conns: 42,
                load: Some(Load {
                    active: 0,
                    inactive: 0
                }),
            },
            DestSnap {
                addr: IpAddr::V4(Ipv4Addr::new(192, 168, 0, 172)),
                port: 80,
                weight: 0,
                conns: 0,
                load: Some(Load {
                    active: 0,
                    inactive: 0
                }),
            },
        ]
    );
}

#[test]
fn parses_the_director_status_vrrp_state() {
    // as `lvsup director status --json` prints it (format_version first)
    let j = include_str!("fixtures/contract/director-status.json");
    assert_eq!(parse_vrrp_state(j).as_deref(), Some("Master"));
    // a newer daemon's extra fields are ignored
    let newer = j.replacen("\"schema\": 1,", "\"schema\": 1, \"uptime_ms\": 5,", 1);
    assert_ne!(newer, j);
    assert_eq!(parse_vrrp_state(&newer).as_deref(), Some("Master"));
    assert_eq!(parse_vrrp_state("error: no such command"), None);
    assert_eq!(parse_vrrp_state("{}"), None);
}

/// What the daemon really emits (its own `Status` type, serialized as
/// `lvsup director status --json` does) is what verify reads: a rename on
/// either side breaks this test rather than silently dropping the state.
#[test]
fn reads_the_state_the_director_daemon_emits() {
    use lvsup::contract::status::*;
    for state in ["Backup", "Master"] {
        let st = Status {
            schema: SCHEMA,
            version: "0.1.0".into(),
            pid: 7,
            cluster: "web".into(),
            director: "lvs192".into(),
            started_at: "2026-11-21T07:00:00.000Z".into(),
            config: ConfigStatus {
                path: "/etc/lvsup/web/director.toml".into(),
                sha256: "00".repeat(32),
                loaded_at: "2026-11-21T07:00:00.000Z".into(),
                last_reload: None,
            },
            vrrp: VrrpStatus {
                state: state.into(),
                vrid: 51,
                priority: 100,
                interface: "eth0".into(),
                vip: "192.168.0.100".parse().expect("ip"),
                addresses_held: vec![],
                master: None,
                advert_interval_ms: 1000,
                master_advert_interval_ms: 1000,
                preempt: true,
                unicast: false,
                peers: vec![],
                health_gate_open: true,
                transitions: vec![],
                counters: VrrpCounters::default(),
                preempt_delay_ms: 0,
                preempt_delay_left_ms: None,
                hooks: vec![],
            },
            ipvs: IpvsStatus {
                enabled: true,
                last_reconcile: None,
                sync_daemon: None,
                error: None,
                timeouts: None,
            },
            services: vec![],
            checks: CheckCounters::default(),
        };
        let json = serde_json::to_string_pretty(&st).expect("json");
        assert_eq!(parse_vrrp_state(&json).as_deref(), Some(state));
    }
}

#[test]
fn lists_the_client_ports_of_the_vips_connection_entries() {
    let cmd = conn_ports_command("tcp", "192.168.0.100:80".parse().expect("addr"));
    assert!(
        cmd.contains(r#"toupper($4) == "C0A80064" && toupper($5) == "0050""#),
        "{cmd}"
    );
    assert!(cmd.contains(r#"toupper($1) == "TCP""#), "{cmd}");
    let ports = parse_conn_ports("9C40\nA001\nnot-hex\n\n");
    assert_eq!(ports.len(), 2);
    assert!(ports.contains(&0x9C40) && ports.contains(&0xA001));
}

#[test]
fn parses_the_ipvsadm_fallback() {
    let out = "### ipvsadm\n\
IP Virtual Server version 1.2.1 (size=4096)\n\
Prot LocalAddress:Port Scheduler Flags\n\
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
TCP  10.0.0.100:80 sh\n\
  -> 192.168.10.11:8080           Masq    1      0          3\n\
  -> 192.168.10.12:8080           Masq    0      0          0\n\
UDP  10.0.0.100:53 rr\n\
  -> 192.168.10.11:53             Masq    1      0          0\n\
### stats\n\
IP Virtual Server version 1.2.1 (size=4096)\n\
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n\
  -> RemoteAddress:Port\n\
TCP  10.0.0.100:80                    1234567     9000     8000   400000   300000\n\
  -> 192.168.10.11:8080               1234560     8000     7000   300000   200000\n\
  -> 192.168.10.12:8080                     7     1000     1000   100000   100000\n\
UDP  10.0.0.100:53                          5        5        5      300      300\n\
  -> 192.168.10.11:53                       5        5        5      300      300\n";
    let (t, from) = parse_table_output(out).expect("parses");
    assert_eq!(from, FROM_IPVSADM);
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].scheduler, "sh");
    assert_eq!(t[0].dests[0].weight, 1);
    assert_eq!(t[0].dests[0].conns, 1_234_560);
    assert_eq!(t[0].dests[1].weight, 0);
    assert_eq!(t[0].dests[1].conns, 7);
    assert_eq!(
        t[0].dests[0].load,
        Some(Load {
            active: 0,
            inactive: 3
        })
    );
    assert_eq!(t[1].protocol, "udp");
    assert_eq!(t[1].dests[0].conns, 5);
    // Without --exact ipvsadm abbreviates (1234K): refused, not misread.
    let abbreviated = out.replace("1234560", "1234K");
    assert!(parse_table_output(&abbreviated).is_err());
    assert!(parse_table_output("not json").is_err());
}

/// `lvsup ipvs list --json` as this version prints it (the captured
/// document, `format_version` first, a fwmark service among them).
#[test]
fn parses_the_captured_ipvs_list_document() {
    let (t, from) =
        parse_table_output(include_str!("fixtures/contract/ipvs-list.json")).expect("parses");
    assert_eq!(from, FROM_LVSUP);
    assert_eq!(t.len(), 3);
    assert_eq!(
        (t[0].protocol.as_str(), t[0].scheduler.as_str()),
        ("tcp", "wlc")
    );
    assert_eq!(t[0].addr, Some("192.168.0.100:80".parse().expect("addr")));
    assert_eq!(t[0].dests[0].conns, 42);
    assert_eq!(
        t[0].dests[0].load,
        Some(Load {
            active: 3,
            inactive: 7
        })
    );
    assert_eq!(t[1].protocol, "udp");
    assert_eq!((t[2].protocol.as_str(), t[2].addr), ("", None));
}

/// Host text with newlines and control characters in a cell, a reason and
/// an undo failure: no raw control character reaches the terminal, a cell
/// stays on its row, a reason's further lines stay indented under it (a
/// host cannot print a line that looks like the report's own).
#[test]
fn host_text_is_escaped_and_cannot_forge_report_lines() {
    let mut r = Report::new(
        "web",
        vec![CheckRow::from_verdict(
            "real-server",
            "node2\nPASS",
            Verdict {
                passed: false,
                skipped: false,
                property: "p".into(),
                measured: "\u{1b}[2Jcleared\tscreen".into(),
                expected: "e".into(),
                reasons: vec!["stderr: bad\nPASS: 1 checks, 0 failed\u{0}".into()],
            },
        )],
    );
    r.undo_failures = vec!["node2: `ip route del` failed: \u{1b}]0;title\u{7}".into()];
    let text = r.render_text();
    let raw: Vec<char> = text
        .chars()
        .filter(|c| c.is_control() && *c != '\n')
        .collect();
    assert!(raw.is_empty(), "raw control characters {raw:?} in\n{text}");
    assert!(
        text.lines().all(|l| !l.starts_with("PASS")),
        "a host's text made a line of its own:\n{text}"
    );
    assert!(text.contains("node2\\nPASS"), "{text}");
    assert!(text.contains("\\u{1b}[2Jcleared\\tscreen"), "{text}");
    assert!(
        text.contains("    - stderr: bad\n      PASS: 1 checks"),
        "{text}"
    );
    assert!(
        text.contains("UNDO FAILED: node2: `ip route del` failed: \\u{1b}]0;title\\u{7}"),
        "{text}"
    );
}
