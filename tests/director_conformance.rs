//! Conformance cases for the director core (`lvsup::director::core`), one
//! directory per case under `tests/director_conformance/`, like
//! `tests/vrrp_conformance/`:
//!
//! * `input`: comment lines (`#`: the rule, what goes in, what must come
//!   out), one `config` line, then timed events in milliseconds since start
//!   (see the README there), and a final `end`.
//! * `expected`: every event (`<`) and every action (`>`) with its time,
//!   then the director's state at `end`.
//!
//! The runner plays the daemon with a fake clock and a fake host: before
//! each event it feeds `Timeout` at every `poll_timeout()` due by then; it
//! answers `AddAddress` with `AddressAdded` at once, and keeps the set of
//! addresses on the host (what `check` reports, what `ip-del`/`ip-add`
//! change behind the director's back).
//!
//! `DIRECTOR_CONFORMANCE_BLESS=1 cargo test --test director_conformance`
//! rewrites the `expected` files; read every diff before committing one.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime};

use ipnet::Ipv4Net;
use lvsup::director::config::DirectorConfig;
use lvsup::director::core::found::HostAddress;
use lvsup::director::core::health::Check;
use lvsup::director::core::{Action, Director, Event, Interfaces, Loaded, Removal};
use lvsup::vrrp::packet::{Advert, VRRP_MULTICAST_V4};

#[macro_use]
#[path = "common/cases.rs"]
mod cases;

const BASE: &str = r#"
cluster = "web"
director = "a"
mode = "dr"
vip = "192.0.2.100"
[vrrp]
vrid = 51
priority = 150
advert_interval = "1s"
preempt = true
address = "192.0.2.1"
peers = ["192.0.2.2"]
[[services]]
protocol = "tcp"
port = 80
scheduler = "rr"
[services.health]
check = "http"
interval = "2s"
timeout = "1s"
fall = 3
rise = 2
path = "/health"
[[services.real_servers]]
name = "n1"
address = "192.0.2.11"
port = 80
weight = 1
forward = "route"
[[services.real_servers]]
name = "n2"
address = "192.0.2.12"
port = 80
weight = 1
forward = "route"
"#;

/// `key=value` changes to the base config (the `config` line and `reload`).
fn apply(cfg: &mut DirectorConfig, kvs: &[&str]) {
    for kv in kvs {
        let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("bad {kv}"));
        match k {
            "priority" => cfg.vrrp.priority = v.parse().expect("priority"),
            "preempt" => cfg.vrrp.preempt = v == "on",
            "nat" => {
                cfg.nat = (v == "on").then(|| lvsup::director::config::NatConfig {
                    gateway: "10.0.0.1/24".parse().expect("gateway"),
                    internal_interface: Some("eth1".into()),
                })
            }
            "servers" => {
                // servers=N: the first N real servers of the base config.
                let n: usize = v.parse().expect("servers");
                let base = DirectorConfig::parse(BASE).expect("base config");
                for s in &mut cfg.services {
                    s.real_servers.truncate(n);
                    let have = s.real_servers.len();
                    s.real_servers.extend(
                        base.services[0]
                            .real_servers
                            .iter()
                            .take(n)
                            .skip(have)
                            .cloned(),
                    );
                }
            }
            "check" => cfg.services[0].health.check = v.into(),
            "fall" => cfg.services[0].health.fall = v.parse().expect("fall"),
            "rise" => cfg.services[0].health.rise = v.parse().expect("rise"),
            "weight" => {
                for r in &mut cfg.services[0].real_servers {
                    r.weight = v.parse().expect("weight");
                }
            }
            "port" => cfg.services[0].port = v.parse().expect("port"),
            "drain_timeout" => {
                cfg.drain_timeout = humantime::parse_duration(v).expect("drain_timeout")
            }
            // drain=N: real server N of the first service has drain = true.
            "drain" => {
                cfg.services[0].real_servers[v.parse::<usize>().expect("drain")].drain = true
            }
            // vip2=ADDR: a second service, a copy of the first on its own VIP
            // (cluster.toml `[[services]] vip`), named "api".
            "vip2" => {
                let mut s = cfg.services[0].clone();
                s.name = "api".into();
                s.vip = Some(v.parse().expect("vip2"));
                cfg.services.push(s);
            }
            "accept-foreign" => cfg.vrrp.accept_foreign = v == "on",
            "sync" => cfg.vrrp.sync_daemon = v == "on",
            "unicast" => cfg.vrrp.unicast = v == "on",
            // notify=master,fault: a hook /bin/hook-<name> for each named state.
            "notify" => {
                for name in v.split(',') {
                    let argv = Some(vec![format!("/bin/hook-{name}")]);
                    match name {
                        "master" => cfg.notify.master = argv,
                        "backup" => cfg.notify.backup = argv,
                        "fault" => cfg.notify.fault = argv,
                        "stop" => cfg.notify.stop = argv,
                        _ => panic!("unknown notify hook {name}"),
                    }
                }
            }
            // preempt-delay=<ms>
            "preempt-delay" => {
                cfg.vrrp.preempt_delay = Duration::from_millis(v.parse().expect("preempt-delay"))
            }
            _ => panic!("unknown config key {k}"),
        }
    }
}

fn addr(word: &str, cfg: &DirectorConfig) -> Ipv4Net {
    match word {
        "vip" => Ipv4Net::from(cfg.vip),
        "gw" => cfg.nat.as_ref().expect("nat=on").gateway,
        other => other.parse().expect("address/prefix"),
    }
}

/// `net` with lvsup's label on the interface it floats on (eth0 if none).
fn ours(d: &Director, net: Ipv4Net) -> HostAddress {
    let interface = d
        .wanted()
        .into_iter()
        .find(|f| f.net == net)
        .map_or("eth0".to_string(), |f| f.interface);
    let label = lvsup::director::core::found::label(&interface, d.config().vrrp.vrid);
    HostAddress {
        interface: Some(interface),
        net,
        label: Some(label),
    }
}

fn render(d: &Director, a: &Action) -> String {
    match a {
        Action::SendAdvert { priority } => format!("> SendAdvert prio={priority}"),
        Action::AddAddress(f) => format!("> AddAddress {} on {}", f.net, f.interface),
        Action::RemoveAddress { addr, why } => {
            let why = match why {
                Removal::Release => "release".to_string(),
                Removal::Drift => "drift".to_string(),
                Removal::Stale(w) => format!("stale: {w}"),
            };
            format!("> RemoveAddress {} on {} ({why})", addr.net, addr.interface)
        }
        Action::SendGarp { count } => {
            let held: Vec<String> = d.held().iter().map(|f| f.net.to_string()).collect();
            format!("> SendGarp x{count} for [{}]", held.join(", "))
        }
        Action::StateChanged { from, to, reason } => {
            format!("> StateChanged {from} -> {to} ({reason})")
        }
        Action::Note { state, what } => format!("> Note {state}: {what}"),
        Action::StartProbes => "> StartProbes".into(),
        Action::Reconcile { trigger, dropped } => {
            let dropped: Vec<String> = dropped.iter().map(|s| s.to_string()).collect();
            let mut s = format!("> Reconcile ({trigger})");
            if !dropped.is_empty() {
                s += &format!(" delete [{}]", dropped.join(", "));
            }
            // The destinations the reconcile keeps at weight 0 (removed, draining).
            if !d.draining().is_empty() {
                s += &format!(" draining [{}]", draining(d, None));
            }
            s
        }
        Action::RunHook { hook, argv, env } => {
            let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!(
                "> RunHook {} {} ({})",
                hook.as_str(),
                argv.join(" "),
                env.join(" ")
            )
        }
        Action::SyncDaemon { stop, start } => {
            let stop: Vec<String> = stop.iter().map(|s| format!("{s:?}")).collect();
            let mut s = format!("> SyncDaemon stop [{}]", stop.join(", "));
            if let Some(d) = start {
                s += &format!(
                    " start {:?} on {} sync_id {}",
                    d.state, d.mcast_ifn, d.sync_id
                );
            }
            s
        }
        Action::Exit => "> Exit".into(),
    }
}

/// `n2 192.0.2.12:80 (1 active, 298s left)` for each draining destination.
fn draining(d: &Director, now: Option<Instant>) -> String {
    d.draining()
        .iter()
        .map(|x| {
            let conns = x
                .conns
                .map_or("not read".to_string(), |c| format!("{} active", c.active));
            match now {
                Some(now) => format!(
                    "{} {} ({conns}, {}s left)",
                    x.name,
                    x.addr,
                    x.left(now).as_secs()
                ),
                None => format!("{} {} ({conns})", x.name, x.addr),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

struct Run {
    base: Instant,
    d: Director,
    /// Addresses on the host with lvsup's label.
    host: BTreeSet<Ipv4Net>,
    /// Addresses the next AddAddress finds already there without our label.
    foreign: BTreeSet<Ipv4Net>,
    exited: bool,
    log: String,
}

impl Run {
    fn line(&mut self, now: Instant, text: &str) {
        let t = (now - self.base).as_millis();
        writeln!(self.log, "{t:<6} {text}").expect("log");
    }

    fn step(&mut self, now: Instant, label: &str, ev: Event) {
        self.line(now, &format!("< {label}"));
        let mut todo: std::collections::VecDeque<Action> = self.d.handle(now, ev).into();
        while let Some(a) = todo.pop_front() {
            let text = render(&self.d, &a);
            self.line(now, &text);
            assert!(!self.exited, "an action after Exit");
            let back = match &a {
                Action::AddAddress(f) => {
                    let ours = !self.foreign.contains(&f.net);
                    if ours {
                        self.host.insert(f.net);
                    }
                    Some(Event::AddressAdded { net: f.net, ours })
                }
                Action::RemoveAddress { addr, .. } => {
                    self.host.remove(&addr.net);
                    None
                }
                Action::Exit => {
                    self.exited = true;
                    None
                }
                _ => None,
            };
            if let Some(ev) = back {
                let Event::AddressAdded { net, ours } = &ev else {
                    unreachable!()
                };
                self.line(now, &format!("< added {net} ours={ours}"));
                for (i, a) in self.d.handle(now, ev).into_iter().enumerate() {
                    todo.insert(i, a);
                }
            }
        }
    }

    fn run_timers(&mut self, until: Instant) {
        while let Some(at) = self.d.poll_timeout().filter(|at| *at <= until) {
            self.step(at, "timeout", Event::Timeout);
        }
    }

    fn summary(&self, now: Instant) -> String {
        let d = &self.d;
        let m = d.machine();
        let health: Vec<String> = d
            .health_matrix()
            .iter()
            .map(|v| {
                v.iter()
                    .map(|h| h.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        let held: Vec<String> = d.held().iter().map(|f| f.net.to_string()).collect();
        let stale: Vec<String> = d.stale().iter().map(|f| f.net.to_string()).collect();
        let host: Vec<String> = self.host.iter().map(|n| n.to_string()).collect();
        let reload = d
            .last_reload()
            .map_or("none".to_string(), |r| match &r.error {
                None => "ok".into(),
                Some(e) => format!("refused: {e}"),
            });
        format!(
            "end: phase {:?} | vrrp {} master {:?} gate {} | held [{}] stale [{}] host [{}] | health [{}] | priority {} | last reload {} | other vrid {}",
            d.phase(),
            m.state(),
            m.master(),
            if m.health_gate_open() {
                "open"
            } else {
                "closed"
            },
            held.join(", "),
            stale.join(", "),
            host.join(", "),
            health.join(" | "),
            d.config().vrrp.priority,
            reload,
            d.counters().other_vrid,
        ) + &if d.draining().is_empty() {
            String::new()
        } else {
            format!(" | draining [{}]", draining(d, Some(now)))
        } + &{
            // Only when non-zero: the cases before these counters stay as blessed.
            let c = d.counters();
            let mut s = String::new();
            if c.unknown_peer > 0 {
                s += &format!(" | unknown peer {}", c.unknown_peer);
            }
            if c.interval_mismatch > 0 {
                s += &format!(" | interval mismatch {}", c.interval_mismatch);
            }
            s
        }
    }
}

fn run_case(input: &str) -> String {
    let base = Instant::now();
    let mut run: Option<Run> = None;
    let mut header = String::new();
    for line in input.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('#') {
            writeln!(header, "{line}").expect("header");
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if words[0] == "config" {
            let mut cfg = DirectorConfig::parse(BASE).expect("base config");
            apply(&mut cfg, &words[1..]);
            let ifaces = Interfaces {
                vrrp: "eth0".into(),
                nat: cfg.nat.as_ref().map(|_| "eth1".to_string()),
            };
            let loaded = Loaded {
                cfg: std::sync::Arc::new(cfg),
                sha256: "sha-0".into(),
                loaded_at: SystemTime::UNIX_EPOCH,
            };
            run = Some(Run {
                base,
                d: Director::new(loaded, ifaces),
                host: BTreeSet::new(),
                foreign: BTreeSet::new(),
                exited: false,
                log: String::new(),
            });
            continue;
        }
        let run = run.as_mut().expect("config line first");
        let t: u64 = words[0].parse().expect("time in ms");
        let now = base + Duration::from_millis(t);
        run.run_timers(now);
        let cfg = run.d.config().clone();
        let args = &words[2..];
        let label = words[1..].join(" ");
        let ev = match words[1] {
            "start" => {
                // start [leftover=vip,gw] [found=<addr>,<interface|->,<label|->...]:
                // the host's addresses. `leftover`: ours a crashed run left
                // (lvsup's label, on their interfaces); `found`: any address
                // (`-` interface: one the director does not use).
                let mut found = Vec::new();
                for a in args {
                    if let Some(list) = a.strip_prefix("leftover=") {
                        for w in list.split(',') {
                            let net = addr(w, &cfg);
                            run.host.insert(net);
                            found.push(ours(&run.d, net));
                        }
                        continue;
                    }
                    let spec = a.strip_prefix("found=").expect("leftover= or found=");
                    let [net, interface, label] = spec.split(',').collect::<Vec<_>>()[..] else {
                        panic!("found=<addr>,<interface|->,<label|->: {spec}")
                    };
                    let a = HostAddress {
                        interface: (interface != "-").then(|| interface.to_string()),
                        net: addr(net, &cfg),
                        label: (label != "-").then(|| label.to_string()),
                    };
                    // The fake host keeps lvsup's addresses on our interfaces.
                    if a.interface.is_some()
                        && lvsup::director::core::found::is_ours(a.label.as_deref(), cfg.vrrp.vrid)
                    {
                        run.host.insert(a.net);
                    }
                    found.push(a);
                }
                Event::Start { found }
            }
            "advert" => {
                // advert <from> prio=<p> [int=<cs>] [vrid=<n>] [dst=<ip>]
                let src: Ipv4Addr = args[0].parse().expect("advert source");
                let mut advert = Advert {
                    vrid: cfg.vrrp.vrid,
                    priority: 100,
                    max_adver_int: 100,
                    addresses: vec![cfg.vip],
                };
                let mut dst = VRRP_MULTICAST_V4;
                for kv in &args[1..] {
                    let (k, v) = kv.split_once('=').expect("key=value");
                    match k {
                        "prio" => advert.priority = v.parse().expect("prio"),
                        "int" => advert.max_adver_int = v.parse().expect("int"),
                        "vrid" => advert.vrid = v.parse().expect("vrid"),
                        "dst" => dst = v.parse().expect("dst"),
                        _ => panic!("unknown advert key {k}"),
                    }
                }
                Event::Advert { src, dst, advert }
            }
            "probe" => {
                // probe <svc> <rs> ok|fail|unknown
                let ok = args[2] == "ok";
                let inconclusive = args[2] == "unknown";
                Event::Probe {
                    svc: args[0].parse().expect("svc"),
                    rs: args[1].parse().expect("rs"),
                    record: Check {
                        at: now,
                        ok,
                        detail: match args[2] {
                            "ok" => "HTTP 200",
                            "unknown" => "no probe socket on the director: Too many open files",
                            _ => "connection refused",
                        }
                        .into(),
                        duration_ms: 1,
                        inconclusive,
                    },
                }
            }
            "link" => Event::Link {
                up: args[0] == "up",
            },
            // The periodic (or announced) address check: what is on the host.
            "check" => {
                let found = run.host.iter().map(|n| ours(&run.d, *n)).collect();
                Event::AddressesPresent(found)
            }
            "ip-del" => {
                run.host.remove(&addr(args[0], &cfg));
                run.line(now, &format!("= {label}"));
                continue;
            }
            "ip-add" => {
                run.host.insert(addr(args[0], &cfg));
                run.line(now, &format!("= {label}"));
                continue;
            }
            "foreign" => {
                run.foreign.insert(addr(args[0], &cfg));
                run.line(now, &format!("= {label}"));
                continue;
            }
            "reload" => {
                let result = if args == ["error"] {
                    Err("director.toml: unknown field `bogus` at line 3, column 1".to_string())
                } else {
                    let mut new = cfg.clone();
                    apply(&mut new, args);
                    Ok(Box::new(Loaded {
                        cfg: std::sync::Arc::new(new),
                        sha256: format!("sha-{t}"),
                        loaded_at: SystemTime::UNIX_EPOCH,
                    }))
                };
                Event::Reload {
                    at: format!("t+{t}ms"),
                    result,
                }
            }
            "sigterm" => Event::Shutdown { why: "SIGTERM" },
            // conns <address:port> <active> [<inactive>] | conns <address:port> gone:
            // the counters a reconcile read for a draining destination (service 0).
            "conns" => {
                let a: std::net::SocketAddr = args[0].parse().expect("address:port");
                let conns = match args[1] {
                    "gone" => None,
                    n => Some(lvsup::director::core::drain::Conns {
                        active: n.parse().expect("active"),
                        inactive: args.get(2).map_or(0, |v| v.parse().expect("inactive")),
                    }),
                };
                let service = lvsup::director::table::service_id(&cfg, &cfg.services[0]);
                Event::Connections(vec![lvsup::director::core::drain::DestConns {
                    service,
                    addr: a,
                    conns,
                }])
            }
            "end" => {
                let s = run.summary(now);
                run.line(now, &s);
                break;
            }
            other => panic!("unknown event {other}"),
        };
        run.step(now, &label, ev);
    }
    let run = run.expect("case has a config line");
    format!("{header}{}", run.log)
}

const SUITE: &str = "tests/director_conformance";
const BLESS: &str = "DIRECTOR_CONFORMANCE_BLESS";

cases! {
    c01_start_waits_for_health_then_master: "01-start-waits-for-health-then-master",
    c02_crash_adoption_master_again_keeps_the_address: "02-crash-adoption-master-again-keeps-the-address",
    c03_crash_adoption_other_master_heard_drops_it: "03-crash-adoption-other-master-heard-drops-it",
    c04_crash_adoption_nobody_heard_drops_after_master_down: "04-crash-adoption-nobody-heard-drops-after-master-down",
    c05_split_brain_reannounces_at_most_once_a_second: "05-split-brain-reannounces-at-most-once-a-second",
    c06_split_brain_all_down_steps_down_back_as_backup: "06-split-brain-all-down-steps-down-back-as-backup",
    c07_fault_link_down_releases_up_starts_over: "07-fault-link-down-releases-up-starts-over",
    c08_fault_while_stepping_down_releases_at_once: "08-fault-while-stepping-down-releases-at-once",
    c09_link_flap_as_backup: "09-link-flap-as-backup",
    c10_reload_keeps_health_and_vrrp: "10-reload-keeps-health-and-vrrp",
    c11_reload_refused_vrrp_change_or_broken_file: "11-reload-refused-vrrp-change-or-broken-file",
    c12_address_drift_master_readds_backup_removes: "12-address-drift-master-readds-backup-removes",
    c13_shutdown_graceful_handover_then_exit: "13-shutdown-graceful-handover-then-exit",
    c14_shutdown_twice_exits_once: "14-shutdown-twice-exits-once",
    c15_nat_gateway_floats_with_the_vip: "15-nat-gateway-floats-with-the-vip",
    c16_adverts_filtered_vrid_own_unicast: "16-adverts-filtered-vrid-own-dst",
    c17_foreign_vip_not_taken_over: "17-foreign-vip-not-taken-over",
    c18_drain_removed_server_until_idle: "18-drain-removed-server-until-idle",
    c19_drain_timeout_deletes_anyway: "19-drain-timeout-deletes-anyway",
    c20_drain_put_back_gone_or_zero_timeout: "20-drain-put-back-gone-or-zero-timeout",
    c21_spoofed_advert_from_non_director_dropped: "21-spoofed-advert-from-non-director-dropped",
    c22_advert_interval_mismatch_timing_unchanged: "22-advert-interval-mismatch-timing-unchanged",
    c23_accept_foreign_takes_any_source: "23-accept-foreign-takes-any-source",
    c24_probe_without_socket_keeps_health: "24-probe-without-socket-keeps-health",
    c25_notify_hooks_on_state_changes: "25-notify-hooks-on-state-changes",
    c26_preempt_delay_keeps_lower_priority_master: "26-preempt-delay-keeps-lower-priority-master",
    c27_every_vip_floats_with_the_instance: "27-every-vip-floats-with-the-instance",
    c28_sync_daemon_follows_vrrp_state: "28-sync-daemon-follows-vrrp-state",
    c29_sync_daemon_off_emits_nothing: "29-sync-daemon-off-emits-nothing",
    c30_start_classifies_the_hosts_addresses: "30-start-classifies-the-hosts-addresses",
}
