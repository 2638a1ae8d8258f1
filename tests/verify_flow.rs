//! The whole `verify` flow against a simulated cluster: a fake [`HostExec`]
//! that answers the commands verify sends (addresses, IPVS table, systemctl,
//! prohibit routes) from a small state machine, and a VIP on 127.0.0.1 whose
//! listener plays the IPVS round robin into the fake's counters. Proves the
//! order of the steps, the measured figures, that the cluster is put back as
//! found, and that broken clusters fail with their reason. A UDP variant
//! answers datagrams on 127.0.0.1 with the scheduled server's name.
//! Loopback only.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::{Arc, Mutex};

use lvsup::config::{self, ClusterSpec};
use lvsup::contract::ipvs_list::IpvsList;
use lvsup::ipvs::{Destination, Forward, Service, ServiceId, Stats};
use lvsup::observe::{self, live};
use lvsup::verify::analysis::FailoverMode;
use lvsup::verify::exec::{ExecError, ExecOutput, HostExec};
use lvsup::verify::report::Outcome;
use lvsup::verify::{self, Options, UndoLog, commands, undo};

#[derive(Debug, Default)]
struct State {
    /// director → daemon running
    running: BTreeMap<String, bool>,
    holder: Option<String>,
    /// real server → prohibit routes it has
    prohibit: BTreeMap<String, Vec<String>>,
    /// connections per real server (index in the file)
    conns: Vec<u64>,
    next: usize,
    log: Vec<String>,
    /// ARP suppression off on this real server
    no_arp: Option<String>,
    preempt: bool,
    /// Counters as the kernel publishes them (its estimator copies the live
    /// per-CPU counts every 2 s); None: the table shows the live counts.
    published: Option<Vec<u64>>,
    /// Directors whose daemon is frozen (SIGSTOP): no adverts.
    frozen: Vec<String>,
    /// A frozen master keeps the VIP on its interface.
    stale_vip: Option<String>,
    /// The backup does not take over when the master freezes (adverts lost…).
    no_takeover: bool,
    /// The director has no lvsup: the table comes from ipvsadm, here one
    /// that lists no ActiveConn/InActConn columns (`lvsup ipvs list --json`
    /// always reports each destination's entries, all inactive here: the
    /// connections are closed).
    no_loads: bool,
    /// UDP responder: answer every datagram with the first server's name,
    /// whichever server the fake director scheduled it to.
    udp_reply_first: bool,
    /// Files under /var/lib/lvsup/…/verify-undo: (host, path) → content.
    records: BTreeMap<(String, String), String>,
    /// Writing an undo record fails (a full disk, a read-only /var).
    refuse_records: bool,
    /// This many `systemctl start` commands fail as a lost ssh connection does.
    lost_starts: usize,
    /// Schedule by the client's address (source hashing: its last octet
    /// modulo the live servers) instead of round robin.
    by_source: bool,
    /// The holder's daemon answers `lvsup director status --json`, its
    /// last Backup → Master transition this many ms after the fake's clock
    /// stamp of the freeze ([`STAMP_MS`]); None: no status command.
    master_since: Option<u64>,
    /// Schedule TCP connections by this rule over the servers' active and
    /// inactive connections, as the kernel does ("wlc", "fo", "ovf"),
    /// instead of round robin. A connection stays active while the client
    /// keeps it open with a request under way (verify's held connections);
    /// one the client closed is inactive.
    rule: Option<&'static str>,
    /// Connections kept open under `rule`: (real server index, stream).
    open: Vec<(usize, std::net::TcpStream)>,
    /// The weights `rule` schedules by (the file's, as the fake's table shows).
    weights: Vec<u64>,
    /// (host, start of a command, stderr): that command fails there with
    /// this stderr (a broken or hostile host).
    failing: Option<(String, String, String)>,
}

/// Still open from the client's side: data waiting (a request under way)
/// or nothing yet; closed: end of stream or an error.
fn still_open(s: &std::net::TcpStream) -> bool {
    let mut b = [0u8; 1];
    if s.set_nonblocking(true).is_err() {
        return false;
    }
    match s.peek(&mut b) {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
    }
}

/// The fake director's choice under `rule` among `cands` (index, weight,
/// active, inactive), written from the kernel's ip_vs_{wlc,fo,ovf}.c:
/// the first of equals wins.
fn fake_choice(rule: &str, cands: &[(usize, u64, u64, u64)]) -> Option<usize> {
    let mut best: Option<(usize, u64, u64, u64)> = None;
    for &(i, w, act, inact) in cands {
        if w == 0 || (rule == "ovf" && act > w) {
            continue;
        }
        let better = match best {
            None => true,
            Some((_, bw, bact, binact)) => match rule {
                // (active·256 + inactive) / weight, cross-multiplied
                "wlc" => (act * 256 + inact) * bw < (bact * 256 + binact) * w,
                _ => w > bw,
            },
        };
        if better {
            best = Some((i, w, act, inact));
        }
    }
    best.map(|b| b.0)
}

/// What the fake's `date +%s%3N` prints (ms since the epoch).
const STAMP_MS: u64 = 1_700_000_000_000;

/// The single-quoted shell word at the start of `s` (as `shell_quote`
/// writes it) and the rest.
fn sq_word(s: &str) -> Option<(String, &str)> {
    let mut rest = s.strip_prefix('\'')?;
    let mut w = String::new();
    loop {
        let end = rest.find('\'')?;
        w.push_str(&rest[..end]);
        rest = &rest[end + 1..];
        match rest.strip_prefix("\\''") {
            Some(r) => {
                w.push('\'');
                rest = r;
            }
            None => return Some((w, rest)),
        }
    }
}

struct Fake {
    spec: ClusterSpec,
    st: Arc<Mutex<State>>,
}

fn ok(s: impl Into<String>) -> Result<ExecOutput, ExecError> {
    Ok(ExecOutput {
        stdout: s.into(),
        stderr: String::new(),
        code: Some(0),
    })
}

fn fail(code: i32) -> Result<ExecOutput, ExecError> {
    Ok(ExecOutput {
        stdout: String::new(),
        stderr: "failed".into(),
        code: Some(code),
    })
}

impl Fake {
    fn elect(&self, st: &mut State) {
        // Highest priority running daemon; without preempt the holder stays.
        if let Some(h) = &st.holder
            && !st.preempt
            && st.running.get(h) == Some(&true)
        {
            return;
        }
        st.holder = self
            .spec
            .directors_by_priority()
            .into_iter()
            .find(|d| st.running.get(&d.name) == Some(&true) && !st.frozen.contains(&d.name))
            .map(|d| d.name.clone());
    }
}

/// The check sources verify prohibits on a real server: the directors'
/// addresses (examples/dr.toml has no internal ones).
fn prohibit_sources(spec: &ClusterSpec) -> Vec<Ipv4Addr> {
    spec.directors.iter().map(|d| d.address.addr()).collect()
}

/// The fake matches verify's commands as lvsup renders them
/// (templates/scripts/verify-*.sh.j2), never by copies of their text.
impl HostExec for Fake {
    fn run(&self, host: &str, cmd: &str) -> Result<ExecOutput, ExecError> {
        let unit = verify::director_unit(&self.spec.name);
        let (freeze, resume) = commands::failover_commands(FailoverMode::Crash, &unit);
        // verify stamps the failure with the master's clock.
        if cmd == commands::fail_command_sent(FailoverMode::Crash, &unit) {
            let mut out = self.run(host, &freeze)?;
            out.stdout.push_str(&format!("{STAMP_MS}\n"));
            return Ok(out);
        }
        if cmd == live::table_command() {
            // IPVS counts a connection at its SYN; the fake's listener only
            // at accept(): give it time to catch up with the last probes.
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let mut st = self.st.lock().expect("state");
        st.log.push(format!("{host}: {cmd}"));
        if let Some((h, start, stderr)) = &st.failing
            && h == host
            && cmd.starts_with(start.as_str())
        {
            return Ok(ExecOutput {
                stdout: String::new(),
                stderr: stderr.clone(),
                code: Some(1),
            });
        }
        // verify's undo records (lvsup::verify::undo): the record and its
        // path read back from the command, which must be the one lvsup
        // renders for them.
        let body = cmd
            .split_once("printf '%s\\n' ")
            .and_then(|(_, r)| sq_word(r));
        let path = cmd.rsplit_once(' ').and_then(|(_, r)| sq_word(r));
        if let (Some((body, _)), Some((path, _))) = (&body, &path)
            && let Ok(rec) = undo::Record::parse(body, &self.spec.name)
            && cmd == undo::write_command(&rec, path)
        {
            if st.refuse_records {
                return fail(1);
            }
            st.records.insert((host.into(), path.clone()), body.clone());
            return ok("");
        }
        if let Some((path, _)) = cmd.strip_prefix("rm -f -- ").and_then(sq_word)
            && cmd == undo::remove_command(&path)
        {
            st.records.remove(&(host.to_string(), path));
            return ok("");
        }
        if cmd == observe::verify_undo_list_command(&self.spec.name) {
            let list: String = st
                .records
                .iter()
                .filter(|((h, _), _)| h == host)
                .map(|((_, p), b)| format!("{p}\t{b}\n"))
                .collect();
            return ok(list);
        }
        if cmd == commands::start(&unit) && st.lost_starts > 0 {
            st.lost_starts -= 1;
            return Err(ExecError::Remote("ssh: connection lost".into()));
        }
        let spec = &self.spec;
        let is_dir = spec.directors.iter().any(|d| d.name == host);
        let ri = spec.real_servers.iter().position(|r| r.name == host);
        if cmd == live::addresses_command() && is_dir {
            let mut a = vec![format!(
                r#"{{"family":"inet","local":"{}","prefixlen":24}}"#,
                spec.directors
                    .iter()
                    .find(|d| d.name == host)
                    .map(|d| d.address.addr())
                    .unwrap_or(Ipv4Addr::UNSPECIFIED)
            )];
            if st.holder.as_deref() == Some(host) || st.stale_vip.as_deref() == Some(host) {
                a.push(format!(
                    r#"{{"family":"inet","local":"{}","prefixlen":32}}"#,
                    spec.vip
                ));
            }
            return ok(format!(
                r#"[{{"ifname":"eth0","addr_info":[{}]}}]"#,
                a.join(",")
            ));
        }
        if let Some(i) = ri {
            let r = &spec.real_servers[i];
            if cmd == live::rs_facts_command() {
                let arp = if st.no_arp.as_deref() == Some(host) {
                    0
                } else {
                    1
                };
                return ok(format!(
                    "### addr\n\
                     [{{\"ifname\":\"lo\",\"addr_info\":[{{\"family\":\"inet\",\"local\":\"{}\",\"prefixlen\":32}}]}},\
                     {{\"ifname\":\"eth0\",\"addr_info\":[{{\"family\":\"inet\",\"local\":\"{}\",\"prefixlen\":24}}]}}]\n\
                     ### route\n[]\n### sysctl\n\
                     /proc/sys/net/ipv4/conf/all/arp_ignore:{arp}\n\
                     /proc/sys/net/ipv4/conf/all/arp_announce:{}\n### end\n",
                    spec.vip,
                    r.address.addr(),
                    arp * 2
                ));
            }
            let srcs = prohibit_sources(spec);
            if cmd == commands::prohibit_list() {
                return ok("");
            }
            if cmd == commands::prohibit_add(&srcs) {
                let routes: Vec<String> = cmd.split(" && ").map(String::from).collect();
                st.prohibit.insert(host.into(), routes);
                return ok("");
            }
            // all of them, or the first (a record left by an earlier run)
            if cmd == commands::prohibit_del(&srcs) || cmd == commands::prohibit_del(&srcs[..1]) {
                st.prohibit.remove(host);
                return ok("");
            }
        }
        if is_dir {
            if cmd == commands::is_active(&unit) {
                return if st.running.get(host) == Some(&true) {
                    ok("")
                } else {
                    fail(3)
                };
            }
            if cmd == commands::stop(&unit) {
                st.running.insert(host.into(), false);
                if st.holder.as_deref() == Some(host) {
                    st.holder = None;
                }
                self.elect(&mut st);
                return ok("");
            }
            if cmd == freeze {
                st.frozen.push(host.into());
                if st.holder.as_deref() == Some(host) {
                    st.stale_vip = Some(host.into());
                    st.holder = None;
                    if !st.no_takeover {
                        self.elect(&mut st);
                    }
                }
                return ok("");
            }
            if cmd == resume {
                st.frozen.retain(|f| f != host);
                if st.stale_vip.as_deref() == Some(host) {
                    // It never left Master and has the higher priority.
                    st.stale_vip = None;
                    st.holder = Some(host.into());
                }
                return ok("");
            }
            if cmd == commands::start(&unit) {
                st.running.insert(host.into(), true);
                self.elect(&mut st);
                return ok("");
            }
            if cmd == live::table_command() {
                let svc = &spec.services[0];
                let vip = SocketAddr::from((spec.vip, svc.port));
                // (destination, weight, connections counted, entries now)
                let rows: Vec<(SocketAddr, u32, u64, u64)> = spec
                    .real_servers
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| !st.prohibit.contains_key(&r.name))
                    .map(|(i, r)| {
                        (
                            SocketAddr::from((r.address.addr(), r.port_for(svc))),
                            r.weight,
                            st.published.as_ref().unwrap_or(&st.conns)[i],
                            st.conns[i],
                        )
                    })
                    .collect();
                let proto = svc.protocol.as_str().to_ascii_uppercase();
                if st.no_loads {
                    let mut list = format!(
                        "### ipvsadm\nIP Virtual Server version 1.2.1 (size=4096)\n\
                         Prot LocalAddress:Port Scheduler Flags\n  \
                         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
                         {proto}  {vip} {}\n",
                        svc.scheduler
                    );
                    let mut stats = format!(
                        "### stats\n\
                         Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n  \
                         -> RemoteAddress:Port\n{proto}  {vip} {} 0 0 0 0\n",
                        rows.iter().map(|r| r.2).sum::<u64>()
                    );
                    for (a, w, counted, _) in &rows {
                        list += &format!("  -> {a} Route {w}\n");
                        stats += &format!("  -> {a} {counted} 0 0 0 0\n");
                    }
                    return ok(list + &stats);
                }
                let id = if proto == "UDP" {
                    ServiceId::udp(vip)
                } else {
                    ServiceId::tcp(vip)
                };
                let mut s = Service::new(id, svc.scheduler.clone());
                for (i, (a, w, counted, entries)) in rows.into_iter().enumerate() {
                    let mut d = Destination::new(a, Forward::Route, w);
                    let active = st
                        .open
                        .iter()
                        .filter(|(j, s)| *j == i && still_open(s))
                        .count();
                    let active = u64::try_from(active).expect("count");
                    d.active_conns = u32::try_from(active).expect("active");
                    d.inact_conns = u32::try_from(entries - active).expect("entries");
                    d.stats = Some(Box::new(Stats {
                        conns: counted,
                        ..Stats::default()
                    }));
                    s = s.with_destination(d);
                }
                // as `lvsup ipvs list --json` prints it
                let list = IpvsList {
                    version: 0x01_02_01,
                    conn_tab_size: 4096,
                    services: vec![s],
                };
                return ok(list.to_json().expect("json").to_string());
            }
            if cmd == commands::director_status()
                && let Some(after) = st.master_since
            {
                let fixture = include_str!("fixtures/contract/director-status.json");
                let mut v: serde_json::Value = serde_json::from_str(fixture).expect("fixture");
                let master = st.holder.as_deref() == Some(host);
                v["vrrp"]["state"] = (if master { "Master" } else { "Backup" }).into();
                let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(STAMP_MS + after);
                v["vrrp"]["transitions"] = serde_json::json!([{
                    "at": humantime::format_rfc3339_millis(at).to_string(),
                    "from": "Backup", "to": "Master", "reason": "master down timer expired"
                }]);
                return ok(v.to_string());
            }
        }
        fail(127)
    }
}

/// A DR cluster (examples/dr.toml) whose VIP is 127.0.0.1:<free port>, with a
/// listener that assigns each accepted connection round robin over the
/// real servers that are in the pool.
/// verify left the cluster as it found it: the VIP on lvs191, every daemon running.
fn assert_put_back(st: &Arc<Mutex<State>>) {
    let st = st.lock().expect("state");
    assert_eq!(st.holder.as_deref(), Some("lvs191"));
    assert!(st.running.values().all(|r| *r));
    assert!(st.records.is_empty(), "undo records left: {:?}", st.records);
}

fn cluster(preempt: bool) -> (ClusterSpec, Arc<Mutex<State>>) {
    let path = format!("{}/examples/dr.toml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("example");
    let mut spec = config::parse_str(&path, &text).expect("valid");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    spec.vip = Ipv4Addr::LOCALHOST;
    // the services' VIP (each service has its own, the cluster's by default)
    for s in &mut spec.services {
        s.vip = spec.vip;
    }
    spec.services[0].port = listener.local_addr().expect("addr").port();
    spec.preempt = preempt;
    // Short timers keep the waits (preempt-off observation window) short.
    spec.advert_interval = std::time::Duration::from_millis(100);
    spec.services[0].health.interval = std::time::Duration::from_millis(100);
    spec.services[0].health.timeout = std::time::Duration::from_millis(50);
    let st = Arc::new(Mutex::new(State {
        running: spec
            .directors
            .iter()
            .map(|d| (d.name.clone(), true))
            .collect(),
        holder: Some(spec.directors_by_priority()[0].name.clone()),
        conns: vec![0; spec.real_servers.len()],
        preempt,
        ..State::default()
    }));
    let names: Vec<String> = spec.real_servers.iter().map(|r| r.name.clone()).collect();
    let st2 = st.clone();
    std::thread::spawn(move || {
        for c in listener.incoming() {
            let Ok(c) = c else { continue };
            let octet = match c.peer_addr() {
                Ok(SocketAddr::V4(a)) => usize::from(a.ip().octets()[3]),
                _ => 0,
            };
            let mut st = st2.lock().expect("state");
            let live: Vec<usize> = (0..names.len())
                .filter(|i| !st.prohibit.contains_key(&names[*i]))
                .collect();
            if let Some(rule) = st.rule {
                let open = std::mem::take(&mut st.open);
                st.open = open.into_iter().filter(|(_, s)| still_open(s)).collect();
                let cands: Vec<(usize, u64, u64, u64)> = live
                    .iter()
                    .map(|&i| {
                        let act = st.open.iter().filter(|(j, _)| *j == i).count() as u64;
                        (i, st.weights[i], act, st.conns[i] - act)
                    })
                    .collect();
                if let Some(i) = fake_choice(rule, &cands) {
                    st.conns[i] += 1;
                    st.open.push((i, c));
                }
                continue;
            }
            if !live.is_empty() {
                let i = if st.by_source {
                    live[octet % live.len()]
                } else {
                    live[st.next % live.len()]
                };
                st.next += 1;
                st.conns[i] += 1;
            }
            drop(c);
        }
    });
    (spec, st)
}

/// A loopback UDP port nobody answers on, and that no other socket of this
/// process can take: a socket bound to it and connected to another peer (the
/// discard port) is kept open for the rest of the run. Datagrams from any
/// other peer match no socket, so loopback answers them with ICMP port
/// unreachable, as for a closed port. A port closed by dropping its socket
/// was free for the next `bind`: once (CI, 2026-12-05) a socket of a test
/// running beside took it and one of 101 probes of a service with nobody
/// behind it was answered.
fn refused_udp_port() -> u16 {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    sock.connect("127.0.0.1:9").expect("connect udp");
    let port = sock.local_addr().expect("addr").port();
    std::mem::forget(sock);
    port
}

/// The DR example turned into one UDP service (`check = "none"`, rr) on
/// 127.0.0.1:<free port>. With `responder`, a thread answers each datagram
/// with the name of the real server the fake director scheduled it to (round
/// robin, counted in the fake's counters); without, the port is closed
/// (loopback answers with ICMP port unreachable).
fn udp_cluster(responder: bool) -> (ClusterSpec, Arc<Mutex<State>>) {
    let (mut spec, st) = cluster(true);
    let svc = &mut spec.services[0];
    svc.protocol = config::Protocol::Udp;
    svc.scheduler = "rr".into();
    svc.persistence = None;
    svc.health.check = config::Check::None;
    if !responder {
        svc.port = refused_udp_port();
        return (spec, st);
    }
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    svc.port = sock.local_addr().expect("addr").port();
    let names: Vec<String> = spec.real_servers.iter().map(|r| r.name.clone()).collect();
    let st2 = st.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((_, peer)) = sock.recv_from(&mut buf) {
            let reply = {
                let mut st = st2.lock().expect("state");
                let i = st.next % names.len();
                st.next += 1;
                st.conns[i] += 1;
                if st.udp_reply_first {
                    names[0].clone()
                } else {
                    names[i].clone()
                }
            };
            let _ = sock.send_to(format!("{reply}\n").as_bytes(), peer);
        }
    });
    (spec, st)
}

/// [`run`] with `--skip-failover`.
fn run_without_failover(spec: &ClusterSpec, st: &Arc<Mutex<State>>) -> verify::report::Report {
    run(
        spec,
        st,
        &Options {
            skip_failover: true,
            ..Options::default()
        },
    )
}

fn run(spec: &ClusterSpec, st: &Arc<Mutex<State>>, opts: &Options) -> verify::report::Report {
    let fake = Fake {
        spec: spec.clone(),
        st: st.clone(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    verify::run(spec, Arc::new(fake), opts, rt).expect("verify runs")
}

fn row<'a>(r: &'a verify::report::Report, check: &str) -> &'a verify::report::CheckRow {
    r.checks
        .iter()
        .find(|c| c.check == check)
        .unwrap_or_else(|| panic!("no {check} row in\n{}", r.render_text()))
}

#[test]
fn healthy_cluster_passes_every_check_and_is_left_as_found() {
    let (spec, st) = cluster(true);
    let r = run(&spec, &st, &Options::default());
    let text = r.render_text();
    eprintln!("{text}");
    assert!(r.passed, "{text}");
    assert_eq!(r.counters_from.as_deref(), Some("lvsup ipvs list --json"));
    let s = row(&r, "scheduling");
    assert_eq!(s.figures["accepted"], 100, "{text}");
    // The fake's listener may account the reachability probes late (accept
    // lags the handshake), so the shares are equal but not necessarily 50.
    assert_eq!(s.result, Outcome::Pass, "{text}");
    assert!(
        s.measured.contains("node1 ") && s.measured.contains("node2 "),
        "{text}"
    );
    let d = row(&r, "director-failover");
    assert_eq!(d.result, Outcome::Pass, "{text}");
    assert_eq!(d.figures["gap_ms"], 0, "{text}");
    assert!(d.figures["probes"] > 50, "{text}");
    let f = row(&r, "real-server-failover");
    assert_eq!(f.result, Outcome::Pass, "{text}");
    assert!(f.figures.contains_key("out_ms") && f.figures.contains_key("back_ms"));
    let st = st.lock().expect("state");
    assert_eq!(st.holder.as_deref(), Some("lvs191"));
    assert!(st.running.values().all(|r| *r));
    assert!(st.prohibit.is_empty());
    // The failed real server got prohibit routes to both directors.
    assert!(
        st.log.iter().any(|l| l
            == "node1: ip route add prohibit 192.168.0.191/32 && ip route add prohibit 192.168.0.192/32"),
        "{:#?}",
        st.log
    );
}

/// The kernel's per-destination `conns` lag the traffic by up to one
/// estimator pass (2 s): verify must wait for them and then count exactly the
/// batch — neither a part of it (the VM lab's "23 of 100") nor the
/// reachability probes sent just before it.
#[test]
fn counters_published_every_2s_are_waited_for() {
    let (spec, st) = cluster(true);
    st.lock().expect("state").published = Some(vec![0; spec.real_servers.len()]);
    let weak = Arc::downgrade(&st);
    std::thread::spawn(move || {
        while let Some(st) = weak.upgrade() {
            {
                let mut g = st.lock().expect("state");
                g.published = Some(g.conns.clone());
            }
            drop(st);
            std::thread::sleep(std::time::Duration::from_secs(2));
        }
    });
    let r = run_without_failover(&spec, &st);
    let text = r.render_text();
    let s = row(&r, "scheduling");
    assert_eq!(s.result, Outcome::Pass, "{text}");
    assert_eq!(s.figures["accepted"], 100, "{text}");
    assert_eq!(s.figures["counted"], 100, "{text}");
    assert!(s.measured.contains("node1 50, node2 50"), "{text}");
}

#[test]
fn preempt_off_hands_the_vip_back_to_the_master() {
    let (spec, st) = cluster(false);
    let r = run(&spec, &st, &Options::default());
    let text = r.render_text();
    assert!(r.passed, "{text}");
    assert!(
        row(&r, "director-failover")
            .measured
            .contains("VIP handed back to lvs191"),
        "{text}"
    );
    assert_put_back(&st);
}

#[test]
fn broken_both_daemons_stopped_fails_with_reason() {
    let (spec, st) = cluster(true);
    {
        let mut s = st.lock().expect("state");
        s.running.values_mut().for_each(|r| *r = false);
        s.holder = None;
    }
    let r = run(&spec, &st, &Options::default());
    assert!(!r.passed);
    let v = row(&r, "vip-holder");
    assert_eq!(v.result, Outcome::Fail);
    assert!(v.reasons[0].starts_with("no director holds the VIP 127.0.0.1"));
    assert_eq!(row(&r, "scheduling").result, Outcome::Skip);
    assert!(r.render_text().contains("FAIL: "));
    // verify changed nothing
    assert!(
        st.lock()
            .expect("state")
            .log
            .iter()
            .all(|l| !l.contains("systemctl st"))
    );
}

#[test]
fn broken_real_server_without_arp_suppression_fails_with_reason() {
    let (spec, st) = cluster(true);
    st.lock().expect("state").no_arp = Some("node2".into());
    let r = run_without_failover(&spec, &st);
    assert!(!r.passed);
    let bad: Vec<_> = r
        .checks
        .iter()
        .filter(|c| c.result == Outcome::Fail)
        .collect();
    assert_eq!(bad.len(), 1, "{}", r.render_text());
    assert_eq!(bad[0].subject, "node2");
    assert!(bad[0].reasons[0].contains("node2 has no ARP suppression on eth0"));
    assert_eq!(row(&r, "director-failover").result, Outcome::Skip);
}

/// A host's stderr quoted in a reason is printed escaped: ESC, BEL, NUL and
/// CR from a hostile real server never reach the operator's terminal raw
/// (the table's rows could be forged, the terminal driven); the JSON
/// report keeps the text as it was, JSON-escaped.
#[test]
fn host_stderr_in_the_report_is_escaped() {
    let (spec, st) = cluster(true);
    let hostile =
        "\u{1b}]0;owned\u{7}\u{1b}[2J\0gone\rPASS: 9 checks, 0 failed\nsecond \u{1b}[31mline";
    st.lock().expect("state").failing =
        Some(("node2".into(), live::rs_facts_command(), hostile.into()));
    let r = run_without_failover(&spec, &st);
    assert!(!r.passed);
    assert!(
        r.checks
            .iter()
            .any(|c| c.result == Outcome::Fail && c.reasons.iter().any(|x| x.contains("gone"))),
        "the stderr is not in a reason:\n{}",
        r.render_text()
    );
    let text = r.render_text();
    let raw: Vec<char> = text
        .chars()
        .filter(|c| c.is_control() && *c != '\n')
        .collect();
    assert!(raw.is_empty(), "raw control characters {raw:?} in\n{text}");
    assert!(text.contains("\\u{1b}]0;owned\\u{7}"), "{text}");
    let json = serde_json::to_string(&r).expect("json");
    assert!(!json.chars().any(|c| c.is_control()), "{json}");
    let back: serde_json::Value = serde_json::from_str(&json).expect("parses");
    let reasons = back["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .flat_map(|c| c["reasons"].as_array().cloned().unwrap_or_default())
        .filter_map(|x| x.as_str().map(String::from))
        .collect::<Vec<_>>();
    assert!(
        reasons
            .iter()
            .any(|x| x.contains("\u{1b}]0;owned\u{7}\u{1b}[2J\0gone")),
        "{reasons:?}"
    );
}

#[test]
fn broken_wrong_weight_fails_with_reason() {
    let (mut spec, st) = cluster(true);
    // The file says 3:1 with wrr; the fake director schedules round robin
    // and reports the file's weights: the shares give it away.
    spec.services[0].scheduler = "wrr".into();
    spec.real_servers[0].weight = 300;
    spec.real_servers[1].weight = 100;
    let r = run_without_failover(&spec, &st);
    assert!(!r.passed);
    let s = row(&r, "scheduling");
    assert_eq!(s.result, Outcome::Fail);
    assert!(
        s.reasons
            .iter()
            .any(|x| x.contains("shares do not follow the configured weights")),
        "{}",
        r.render_text()
    );
}

#[test]
fn undo_log_replays_newest_first_and_reports_failures() {
    let (spec, st) = cluster(true);
    let fake = Fake {
        spec: spec.clone(),
        st: st.clone(),
    };
    let u = UndoLog::default();
    let a = u.push(
        "lvs191",
        &commands::start(&verify::director_unit(&spec.name)),
        "start on lvs191",
    );
    let del = commands::prohibit_del(&prohibit_sources(&spec)[..1]);
    u.push("node1", &del, "remove route");
    u.push("node1", "no-such-command", "broken step");
    u.done(a);
    let failed = u.run_all(&fake);
    assert_eq!(failed.len(), 1);
    assert!(failed[0].starts_with("broken step (no-such-command on node1: exit Some(127)"));
    let log = st.lock().expect("state").log.clone();
    assert_eq!(
        log,
        vec![
            "node1: no-such-command".to_string(),
            format!("node1: {del}")
        ]
    );
    assert!(u.pending().is_empty());
}

/// verify with `--crash` against the fake cluster.
fn run_crash(spec: &ClusterSpec, st: &Arc<Mutex<State>>) -> verify::report::Report {
    run(
        spec,
        st,
        &Options {
            crash_failover: true,
            ..Options::default()
        },
    )
}

#[test]
fn crash_failover_freezes_the_master_resumes_it_and_is_bounded() {
    let (spec, st) = cluster(true);
    let r = run_crash(&spec, &st);
    let text = r.render_text();
    eprintln!("{text}");
    assert!(r.passed, "{text}");
    let rows: Vec<_> = r
        .checks
        .iter()
        .filter(|c| c.check == "director-failover")
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert_eq!(rows[0].subject, "lvs191 → lvs192 (planned stop)");
    let c = rows[1];
    assert_eq!(c.subject, "lvs191 → lvs192 (crash)");
    assert_eq!(c.result, Outcome::Pass, "{text}");
    assert!(c.property.starts_with("crash (freeze) lvs191's daemon"));
    // advert 100 ms, lvs192's priority 100: 300 + 156·100/256 = 360, + 1000.
    let backup = spec
        .directors
        .iter()
        .find(|d| d.name == "lvs192")
        .expect("lvs192");
    let limit = lvsup::verify::analysis::crash_gap_limit_ms(100, backup.priority);
    assert_eq!(c.figures["gap_limit_ms"], limit);
    assert!(c.expected.contains(&format!("gap ≤ {limit} ms")), "{text}");
    assert!(c.figures.contains_key("takeover_ms"), "{text}");
    // Left as found: nothing frozen, the VIP on the master.
    let st = st.lock().expect("state");
    assert!(st.frozen.is_empty());
    assert_eq!(st.holder.as_deref(), Some("lvs191"));
    assert_eq!(st.stale_vip, None);
    let stop = st
        .log
        .iter()
        .position(|l| l.contains("kill -STOP"))
        .expect("froze");
    let cont = st
        .log
        .iter()
        .position(|l| l.ends_with("systemctl kill --signal=SIGCONT lvsup-director-web.service"))
        .expect("resumed");
    assert!(stop < cont);
    assert!(st.log[stop].starts_with("lvs191: "));
}

/// With the backup's status readable, the crash takeover is its daemon's own
/// transition time less the master's clock at the freeze: bounded like the
/// gap (no poll slack), and a figure the poll contradicts is not used.
#[test]
fn crash_takeover_is_timed_by_the_backups_own_transition() {
    let crash_row = |after: u64| {
        let (spec, st) = cluster(true);
        st.lock().expect("state").master_since = Some(after);
        let r = run_crash(&spec, &st);
        let c = r
            .checks
            .iter()
            .find(|c| c.subject == "lvs191 → lvs192 (crash)")
            .cloned()
            .unwrap_or_else(|| panic!("no crash row: {}", r.render_text()));
        (c, r.render_text())
    };
    // advert 100 ms, lvs192's priority 100: limit 360 + 1000 ms.
    let (c, text) = crash_row(250);
    assert_eq!(c.result, Outcome::Pass, "{text}");
    assert_eq!(c.figures["takeover_ms"], 250, "{text}");
    assert!(c.measured.contains("Master after 250 ms"), "{text}");
    assert!(c.expected.contains("gap and takeover ≤ 1360 ms"), "{text}");
    // Over the limit by the daemon's own clock: fails, whatever the poll saw.
    let (c, text) = crash_row(1900);
    assert_eq!(c.result, Outcome::Fail, "{text}");
    assert!(
        c.reasons
            .iter()
            .any(|r| r.contains("lvs192 became Master 1900 ms after the crash")),
        "{text}"
    );
    // Later than the poll saw the VIP (+ one poll's slack): the clocks
    // disagree; the poll's figure is used, with its slack.
    let (c, text) = crash_row(60_000);
    assert_eq!(c.result, Outcome::Pass, "{text}");
    assert!(c.measured.contains("takeover seen after"), "{text}");
}

#[test]
fn crash_without_takeover_fails_and_resumes_the_master() {
    let (spec, st) = cluster(true);
    st.lock().expect("state").no_takeover = true;
    let r = run_crash(&spec, &st);
    let text = r.render_text();
    assert!(!r.passed, "{text}");
    let c = r
        .checks
        .iter()
        .find(|c| c.subject.ends_with("(crash)"))
        .expect("crash row");
    assert_eq!(c.result, Outcome::Fail, "{text}");
    assert!(
        c.reasons.iter().any(|x| x
            == "after lvs191's daemon froze, no director took the VIP: the backup lvs192 did not become master"),
        "{text}"
    );
    assert!(r.undo_failures.is_empty(), "{text}");
    let st = st.lock().expect("state");
    assert!(st.frozen.is_empty(), "{:#?}", st.log);
    assert_eq!(st.holder.as_deref(), Some("lvs191"));
}

/// lc replayed from the loads the table reports: the fake director
/// alternates over two equal servers, which is what lc does from equal
/// loads; sed would put every connection on the first: the same traffic
/// fails it, with the numbers.
#[test]
fn least_load_schedulers_are_checked_against_their_rule() {
    for (sched, pass) in [("lc", true), ("wlc", true), ("sed", false), ("nq", false)] {
        let (mut spec, st) = cluster(true);
        spec.services[0].scheduler = sched.into();
        let r = run_without_failover(&spec, &st);
        let text = r.render_text();
        let s = row(&r, "scheduling");
        if pass {
            assert_eq!(s.result, Outcome::Pass, "{sched}: {text}");
        } else {
            assert_eq!(s.result, Outcome::Fail, "{sched}: {text}");
            assert!(
                s.reasons
                    .iter()
                    .any(|x| x.contains(&format!("{sched} predicts 100 ± "))),
                "{sched}: {text}"
            );
        }
    }
    // Without the loads in the table: SKIP with the reason, never PASS.
    let (mut spec, st) = cluster(true);
    spec.services[0].scheduler = "lc".into();
    st.lock().expect("state").no_loads = true;
    let r = run_without_failover(&spec, &st);
    let s = row(&r, "scheduling");
    assert_eq!(s.result, Outcome::Skip, "{}", r.render_text());
    assert!(s.reasons[0].contains("no active/inactive connection counts"));
    assert_eq!(
        r.counters_from.as_deref(),
        Some(lvsup::observe::live::FROM_IPVSADM)
    );
}

/// ovf overflows the highest-weight server once its active connections
/// exceed its weight. Verify holds weight + 2 connections open across the
/// batch (the fake director schedules them as the kernel does and counts
/// them active), so the top server is full and the whole batch must go to
/// the next one: a director that ignores active connections (fo's rule,
/// everything on the top server) fails, with the numbers. wlc with the
/// held connections replayed from the counters passes.
#[test]
fn held_connections_make_ovf_overflow_and_are_replayed_for_wlc() {
    let held_row = |rule: &'static str, sched: &str| {
        let (mut spec, st) = cluster(true);
        spec.services[0].scheduler = sched.into();
        for r in &mut spec.real_servers {
            r.weight = 1;
        }
        let mut g = st.lock().expect("state");
        g.rule = Some(rule);
        g.weights = vec![1; spec.real_servers.len()];
        drop(g);
        let r = run_without_failover(&spec, &st);
        let text = r.render_text();
        (row(&r, "scheduling").clone(), text)
    };
    let (s, text) = held_row("ovf", "ovf");
    assert_eq!(s.result, Outcome::Pass, "{text}");
    assert_eq!(s.figures.get("held_open"), Some(&3), "{text}");
    assert!(
        s.measured.contains(
            "3 of 3 connections held open across the batch (active before it: node1 2, node2 1)"
        ),
        "{text}"
    );
    assert!(
        s.expected.starts_with("all ") && s.expected.ends_with(" on node2"),
        "{text}"
    );
    // The same held connections, a director that never overflows.
    let (s, text) = held_row("fo", "ovf");
    assert_eq!(s.result, Outcome::Fail, "{text}");
    assert!(
        s.reasons.iter().any(|x| x.starts_with("node1 got ")
            && x.ends_with(
                "ovf sends every connection to the highest-weight server in the pool (node2)"
            )),
        "{text}"
    );
    let (s, text) = held_row("wlc", "wlc");
    assert_eq!(s.result, Outcome::Pass, "{text}");
    assert_eq!(s.figures.get("held_open"), Some(&4), "{text}");
    assert!(
        s.measured.contains("4 of 4 connections held open"),
        "{text}"
    );
}

/// A UDP service: reachability (every datagram answered, the replies named),
/// scheduling (rr from the counters, every reply naming the server the
/// counters say), the director failover timeline on the UDP service (the
/// cluster has no TCP one); the real-server failover cannot be made with
/// `check = "none"`: SKIP with the reason, never PASS.
#[test]
fn udp_service_is_probed_scheduled_and_failed_over() {
    let (spec, st) = udp_cluster(true);
    let r = run(&spec, &st, &Options::default());
    let text = r.render_text();
    eprintln!("{text}");
    assert!(r.passed, "{text}");
    let a = row(&r, "reachability");
    assert_eq!(a.result, Outcome::Pass, "{text}");
    assert!(a.subject.starts_with("UDP 127.0.0.1:"), "{text}");
    assert_eq!(a.figures["answered"], 10, "{text}");
    assert!(a.measured.contains("replies: node1 ×5, node2 ×5"), "{text}");
    let s = row(&r, "scheduling");
    assert_eq!(s.result, Outcome::Pass, "{text}");
    assert_eq!(s.figures["accepted"], 100, "{text}");
    assert_eq!(s.figures["counted"], 100, "{text}");
    assert!(
        s.measured
            .contains("replies: node1 ×50, node2 ×50 (agree with the counters)"),
        "{text}"
    );
    let d = row(&r, "director-failover");
    assert_eq!(d.result, Outcome::Pass, "{text}");
    assert!(d.figures["probes"] > 50, "{text}");
    assert_eq!(d.figures["failed_probes"], 0, "{text}");
    let f = row(&r, "real-server-failover");
    assert_eq!(f.result, Outcome::Skip, "{text}");
    assert!(
        f.reasons[0].contains("no service with a health check"),
        "{text}"
    );
    assert_put_back(&st);
}

/// No UDP responder: reachability and scheduling fail with the numbers and
/// the reason (the datagrams were refused), and the director failover,
/// whose timeline never sees an answer, does not pass either.
#[test]
fn udp_without_a_responder_fails_with_the_numbers() {
    let (spec, st) = udp_cluster(false);
    let r = run(&spec, &st, &Options::default());
    let text = r.render_text();
    eprintln!("{text}");
    assert!(!r.passed, "{text}");
    let a = row(&r, "reachability");
    assert_eq!(a.result, Outcome::Fail, "{text}");
    assert_eq!(a.figures["answered"], 0, "{text}");
    assert!(
        a.reasons[0].contains("10 of 10 UDP datagrams failed (recv: "),
        "{text}"
    );
    let s = row(&r, "scheduling");
    assert_eq!(s.result, Outcome::Fail, "{text}");
    assert_eq!(s.figures["accepted"], 0, "{text}");
    assert_ne!(row(&r, "director-failover").result, Outcome::Pass, "{text}");
}

/// Replies that name another server than the one the director scheduled the
/// datagram to: the counters alone would pass rr; the replies fail it.
#[test]
fn udp_replies_that_disagree_with_the_counters_fail() {
    let (spec, st) = udp_cluster(true);
    st.lock().expect("state").udp_reply_first = true;
    let r = run_without_failover(&spec, &st);
    let text = r.render_text();
    let s = row(&r, "scheduling");
    assert_eq!(s.result, Outcome::Fail, "{text}");
    assert!(
        s.reasons
            .iter()
            .any(|x| x == "node1 answered 100 datagrams but the director scheduled 50 to it"),
        "{text}"
    );
    assert!(
        s.reasons
            .iter()
            .any(|x| x == "node2 answered 0 datagrams but the director scheduled 50 to it"),
        "{text}"
    );
}

/// A cluster with a TCP and a UDP service: the director failover is timed on
/// both (one stop, two timelines), each with its own row; the UDP one fails
/// when its datagrams go unanswered while the TCP one passes.
#[test]
fn director_failover_times_the_udp_service_too() {
    for answering in [true, false] {
        let (mut spec, st) = cluster(true);
        let mut udp = spec.services[0].clone();
        udp.port = if answering {
            let sock = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
            let port = sock.local_addr().expect("addr").port();
            std::thread::spawn(move || {
                let mut buf = [0u8; 512];
                while let Ok((_, peer)) = sock.recv_from(&mut buf) {
                    let _ = sock.send_to(b"node1\n", peer);
                }
            });
            port
        } else {
            refused_udp_port()
        };
        udp.protocol = config::Protocol::Udp;
        udp.scheduler = "rr".into();
        udp.persistence = None;
        udp.health.check = config::Check::None;
        let label = udp.label();
        spec.services.push(udp);
        let r = run(&spec, &st, &Options::default());
        let text = r.render_text();
        eprintln!("{text}");
        let d: Vec<_> = r
            .checks
            .iter()
            .filter(|c| c.check == "director-failover")
            .collect();
        assert_eq!(d.len(), 2, "{text}");
        assert_eq!(d[0].subject, "lvs191 → lvs192 (planned stop)");
        assert_eq!(d[0].result, Outcome::Pass, "{text}");
        assert_eq!(
            d[1].subject,
            format!("lvs191 → lvs192 (planned stop, {label})")
        );
        assert!(d[1].figures["probes"] > 50, "{text}");
        if answering {
            assert_eq!(d[1].result, Outcome::Pass, "{text}");
            assert_eq!(d[1].figures["failed_probes"], 0, "{text}");
        } else {
            assert_eq!(d[1].result, Outcome::Fail, "{text}");
            assert_eq!(d[1].figures["failed_probes"], d[1].figures["probes"]);
        }
        let st = st.lock().expect("state");
        assert_eq!(st.holder.as_deref(), Some("lvs191"));
        assert!(st.running.values().all(|r| *r));
    }
}

/// Every disruption is written to its host as an undo record first and the
/// record goes once it is undone (issue 14: SIGKILL must not leave the
/// cluster degraded with nobody knowing).
#[test]
fn undo_records_are_written_before_each_disruption_and_removed_after() {
    let (spec, st) = cluster(true);
    let r = run(&spec, &st, &Options::default());
    assert!(r.passed, "{}", r.render_text());
    assert_put_back(&st);
    let log = st.lock().expect("state").log.clone();
    let at = |host: &str, pred: &dyn Fn(&str) -> bool| {
        log.iter()
            .position(|l| l.strip_prefix(&format!("{host}: ")).is_some_and(pred))
            .unwrap_or_else(|| panic!("no such command on {host}: {log:#?}"))
    };
    let write = at("lvs191", &|c| {
        c.starts_with("umask 077 && mkdir -p '/var/lib/lvsup/web/verify-undo'")
            && c.contains("systemctl start lvsup-director-web.service")
    });
    let stop = at("lvs191", &|c| {
        c == "systemctl stop lvsup-director-web.service"
    });
    assert!(write < stop, "{log:#?}");
    let rs = at("node1", &|c| c.starts_with("umask 077 && mkdir -p"));
    let prohibit = at("node1", &|c| c.starts_with("ip route add prohibit"));
    assert!(rs < prohibit, "{log:#?}");
}

#[test]
fn a_disruption_whose_undo_record_cannot_be_written_is_not_made() {
    let (spec, st) = cluster(true);
    st.lock().expect("state").refuse_records = true;
    let r = run(&spec, &st, &Options::default());
    let text = r.render_text();
    assert!(!r.passed, "{text}");
    for check in ["director-failover", "real-server-failover"] {
        let c = row(&r, check);
        assert_eq!(c.result, Outcome::Fail, "{text}");
        assert!(
            c.reasons
                .iter()
                .any(|x| x.contains("cannot write the undo record on")),
            "{text}"
        );
    }
    let st = st.lock().expect("state");
    assert!(
        !st.log
            .iter()
            .filter_map(|l| l.split_once(": ").map(|x| x.1))
            .any(|c| c.starts_with("systemctl stop") || c.starts_with("ip route add prohibit")),
        "{:#?}",
        st.log
    );
    assert_eq!(st.holder.as_deref(), Some("lvs191"));
}

/// The master's `systemctl start` is lost twice (ssh dropped): the check
/// fails, the undo retries the step until it goes through, and the cluster
/// is put back with no record left.
#[test]
fn an_undo_whose_connection_is_lost_is_retried() {
    let (spec, st) = cluster(true);
    st.lock().expect("state").lost_starts = 2;
    let r = run(&spec, &st, &Options::default());
    let text = r.render_text();
    assert!(r.undo_failures.is_empty(), "{text}");
    assert!(
        row(&r, "director-failover")
            .reasons
            .iter()
            .any(|x| x.contains("connection lost")),
        "{text}"
    );
    assert_put_back(&st);
}

/// Lost for good: the undo gives up after its retries, says so, and the
/// record stays on the host for the next run.
#[test]
fn an_undo_that_cannot_reach_its_host_leaves_the_record_and_says_so() {
    let (spec, st) = cluster(true);
    st.lock().expect("state").lost_starts = 1000;
    let r = run(&spec, &st, &Options::default());
    let text = r.render_text();
    assert!(!r.passed, "{text}");
    assert_eq!(r.undo_failures.len(), 1, "{text}");
    let u = &r.undo_failures[0];
    assert!(u.contains("tried 4 times"), "{u}");
    assert!(
        u.contains("stays on the host: the next lvsup verify, apply or destroy undoes it"),
        "{u}"
    );
    let st = st.lock().expect("state");
    let left: Vec<_> = st.records.keys().collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].0, "lvs191");
    assert!(u.contains(&left[0].1), "{u}");
}

fn leftover(what: &str, undo: &str) -> String {
    lvsup::verify::undo::Record {
        version: 1,
        cluster: "web".into(),
        host: "node1".into(),
        what: what.into(),
        undo: undo.into(),
        at: 1_796_152_192,
        user: "ci".into(),
        machine: "elsewhere".into(),
        pid: 1,
    }
    .render()
}

/// A verify killed mid-check left a prohibit route and its record on node1:
/// the next verify undoes it before anything else on that host, says so in
/// text and JSON, and removes the record.
#[test]
fn the_next_verify_undoes_what_an_interrupted_one_left_and_says_so() {
    let (spec, st) = cluster(true);
    {
        let mut g = st.lock().expect("state");
        g.prohibit.insert(
            "node1".into(),
            vec!["ip route add prohibit 192.168.0.191/32".into()],
        );
        g.records.insert(
            (
                "node1".into(),
                "/var/lib/lvsup/web/verify-undo/1796152192-1-2".into(),
            ),
            leftover(
                "node1 failing its health checks (ip route add prohibit 192.168.0.191/32)",
                &commands::prohibit_del(&prohibit_sources(&spec)[..1]),
            ),
        );
    }
    let r = run_without_failover(&spec, &st);
    let text = r.render_text();
    assert!(r.passed, "{text}");
    let line = "node1: undid an interrupted verify from 2026-12-01T19:09:52Z by ci@elsewhere \
                (pid 1): node1 failing its health checks (ip route add prohibit 192.168.0.191/32)";
    assert_eq!(r.undone, [line], "{text}");
    assert!(text.contains(line), "{text}");
    let json = serde_json::to_value(&r).expect("json");
    assert_eq!(json["undone"][0], line);
    let st = st.lock().expect("state");
    assert!(st.prohibit.is_empty());
    assert!(st.records.is_empty());
    let first = |p: &str| st.log.iter().position(|l| l.starts_with(p)).expect(p);
    assert!(
        first("node1: ip route del prohibit")
            < first(&format!("node1: {}", live::rs_facts_command())),
        "{:#?}",
        st.log
    );
}

/// A record that cannot be read or undone: nothing is disrupted, the
/// report fails with the host and the reason, the record stays.
#[test]
fn a_leftover_that_cannot_be_undone_fails_verify_and_skips_the_failovers() {
    for (body, want) in [
        ("{garbage".to_string(), "unreadable verify undo record"),
        (
            leftover("start it", "no-such-command"),
            "node1: undoing an interrupted verify's change (start it) failed",
        ),
    ] {
        let (spec, st) = cluster(true);
        let key = (
            "node1".to_string(),
            "/var/lib/lvsup/web/verify-undo/9-9-9".to_string(),
        );
        st.lock().expect("state").records.insert(key.clone(), body);
        let r = run(&spec, &st, &Options::default());
        let text = r.render_text();
        assert!(!r.passed, "{text}");
        assert!(r.undo_failures.iter().any(|u| u.contains(want)), "{text}");
        assert_eq!(row(&r, "director-failover").result, Outcome::Skip, "{text}");
        let st = st.lock().expect("state");
        assert!(st.records.contains_key(&key));
        assert!(
            !st.log.iter().any(|l| l.contains("systemctl stop")),
            "{:#?}",
            st.log
        );
    }
}

/// sh with `--source`: 14 client addresses (127.0.0.10–23, all local on
/// loopback) each land on one server and spread 7/7: PASS; the same claim
/// against a round-robin director splits every address: FAIL, each named.
#[test]
fn source_hashing_checked_from_several_client_addresses() {
    let sources: Vec<std::net::IpAddr> = (10u8..24)
        .map(|o| std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, o)))
        .collect();
    for hashing in [true, false] {
        let (mut spec, st) = cluster(true);
        spec.services[0].scheduler = "sh".into();
        spec.services[0].persistence = None;
        st.lock().expect("state").by_source = hashing;
        let r = run(
            &spec,
            &st,
            &Options {
                skip_failover: true,
                sources: if hashing {
                    sources.clone()
                } else {
                    sources[..3].to_vec()
                },
                ..Options::default()
            },
        );
        let text = r.render_text();
        let s = row(&r, "scheduling-spread");
        if hashing {
            assert_eq!(s.result, Outcome::Pass, "{text}");
            assert_eq!(s.figures["sources"], 14, "{text}");
            assert!(s.measured.contains("node1 7, node2 7"), "{text}");
        } else {
            assert_eq!(s.result, Outcome::Fail, "{text}");
            assert!(
                s.reasons.iter().filter(|r| r.contains("not one")).count() == 3,
                "{text}"
            );
        }
    }
    // Without --source the spread stays SKIP, saying how to check it.
    let (mut spec, st) = cluster(true);
    spec.services[0].scheduler = "sh".into();
    spec.services[0].persistence = None;
    st.lock().expect("state").by_source = true;
    let r = run_without_failover(&spec, &st);
    let s = row(&r, "scheduling-spread");
    assert_eq!(s.result, Outcome::Skip, "{}", r.render_text());
    assert!(
        s.reasons.iter().any(|r| r.contains("--source")),
        "{}",
        r.render_text()
    );
}
