//! `lvsup status`: the live cluster in one view — which director is master
//! (and since when), and per virtual service each real server's health,
//! weight and active/inactive connections, laid out like `ipvsadm -Ln`.
//! Sources: the daemon's status (`lvsup director status --json` over SSH)
//! and the kernel's table (`/proc/net/ip_vs`); without the daemon the master
//! is the director holding the VIP, and health shows as unknown.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use anyhow::Result;
use serde::Serialize;

use super::{LiveOptions, gather};
use crate::config::ClusterSpec;
use crate::contract::status::{
    CheckCounters, HookRecord, RealServerStatus, ServiceStatus, Status, TimeoutsStatus,
};
use crate::desired::{HostState, Role};
use crate::observe::{Facts, LiveService};
use crate::plan::HostError;

#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    pub cluster: String,
    pub vip: String,
    /// The services' own VIPs besides `vip` (`[[services]] vip`), held with
    /// it by the master; absent when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other_vips: Vec<String>,
    /// The director that is master (by its daemon, else by holding the VIP).
    pub master: Option<String>,
    pub directors: Vec<DirectorStatus>,
    /// The master's table (else the first director's that answered).
    pub services: Vec<ServiceView>,
    /// From which director `services` comes.
    pub table_from: Option<String>,
    /// That director's IPVS connection timeouts (from its daemon), when known.
    pub ipvs_timeouts: Option<TimeoutsStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DirectorStatus {
    pub name: String,
    pub reachable: bool,
    /// "Master", "Backup", "Initialize", or null when the daemon did not say.
    pub state: Option<String>,
    /// When it entered that state (RFC 3339), when known.
    pub since: Option<String>,
    pub holds_vip: Option<String>,
    pub daemon: String,
    pub error: Option<String>,
    /// What is left of its preempt delay (it stays backup under a
    /// lower-priority master meanwhile), while one runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preempt_delay_left_ms: Option<u64>,
    /// Its last `[notify]` hook run, when one ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_hook: Option<HookRecord>,
    /// Its daemon's health checks since it started (run, left out), when
    /// its status was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<CheckCounters>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceView {
    pub service: String,
    pub scheduler: String,
    pub persistence: Option<u32>,
    pub destinations: Vec<DestView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DestView {
    pub name: Option<String>,
    pub destination: String,
    pub forward: String,
    pub weight: u32,
    pub active: u64,
    pub inactive: u64,
    /// "up" | "down" | "unknown"
    pub health: String,
    /// Its failed health checks since the daemon started, per the daemon
    /// the table came from: failures below `fall` change no health, so a
    /// server failing now and then shows here and nowhere else. Absent
    /// when that daemon did not say (not running, not a real server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_checks: Option<u64>,
}

/// The health column of a sorry server the kernel has: the daemon put it
/// in because no real server of the service can take a connection.
pub const SORRY_IN_USE: &str = "sorry server in use";

/// The daemon's VRRP state and since when (its last transition, else its start).
fn daemon_view(v: &Status) -> (Option<String>, Option<String>) {
    let since = v
        .vrrp
        .transitions
        .last()
        .map_or(&v.started_at, |t| &t.at)
        .clone();
    (Some(v.vrrp.state.clone()), Some(since))
}

/// The daemon's view of the kernel's service `svc`.
fn service_of<'a>(v: Option<&'a Status>, svc: &LiveService) -> Option<&'a ServiceStatus> {
    v?.services.iter().find(|s| match svc.fwmark {
        Some(m) => s.fwmark == Some(m),
        None => {
            s.fwmark.is_none()
                && s.port == svc.port
                && s.vip == svc.vip
                && s.protocol.eq_ignore_ascii_case(&svc.protocol)
        }
    })
}

/// The daemon's real server `addr:port` of the kernel's service `svc`.
fn real_server_of<'a>(
    v: Option<&'a Status>,
    svc: &LiveService,
    addr: Ipv4Addr,
    port: u16,
) -> Option<&'a RealServerStatus> {
    service_of(v, svc)?
        .real_servers
        .iter()
        .find(|r| r.address == addr && r.port == port)
}

/// Health of `addr:port` in `service` per the daemon's status, if it said:
/// "up", "down", "unknown", or for a drained server "draining (N active)",
/// for one removed from the file "draining (N active, T left)".
fn health_of(
    v: Option<&Status>,
    svc: &LiveService,
    addr: Ipv4Addr,
    port: u16,
    active: u64,
) -> Option<String> {
    let s = service_of(v, svc)?;
    if let Some(ss) = &s.sorry_server
        && ss.address == addr
        && ss.port == port
    {
        return Some(SORRY_IN_USE.into());
    }
    if let Some(d) = s
        .draining
        .iter()
        .find(|d| d.address == addr && d.port == port)
    {
        let mut d = d.clone();
        // The kernel's count, read now, is fresher than the daemon's.
        d.active_conns = Some(u32::try_from(active).unwrap_or(u32::MAX));
        return Some(d.render());
    }
    let r = real_server_of(v, svc, addr, port)?;
    if r.drain {
        return Some(format!("draining ({active} active)"));
    }
    Some(r.health.clone())
}

/// Gather the directors' facts (every director unless `opts.targets` names
/// some) and build the status.
pub async fn collect(
    spec: &ClusterSpec,
    file: &std::path::Path,
    opts: &LiveOptions,
) -> Result<ClusterStatus> {
    let mut opts = opts.clone();
    if opts.targets.is_empty() {
        opts.targets = spec.directors.iter().map(|d| d.name.clone()).collect();
    }
    let live = gather(spec, file, &opts, None, false).await?;
    let hosts: Vec<(&HostState, &Result<Facts, HostError>)> =
        live.hosts.iter().map(|h| (&h.want, &h.facts)).collect();
    let s = build(spec, &hosts);
    live.close().await;
    Ok(s)
}

/// The cluster's status from its directors' facts (pure), master first.
pub fn build(
    spec: &ClusterSpec,
    hosts: &[(&HostState, &Result<Facts, HostError>)],
) -> ClusterStatus {
    let names: std::collections::BTreeMap<String, String> = spec
        .real_servers
        .iter()
        .map(|r| (r.address.addr().to_string(), r.name.clone()))
        .collect();
    let mut directors = Vec::new();
    let mut master = None;
    let mut table: Option<(String, Vec<LiveService>, Option<Status>)> = None;
    // master first: the order of `desired` is backups, then master
    for (want, facts) in hosts.iter().rev() {
        if !matches!(want.role, Role::Director { .. }) {
            continue;
        }
        let name = want.name.clone();
        match facts {
            Err(e) => directors.push(DirectorStatus {
                name,
                reachable: false,
                state: None,
                since: None,
                holds_vip: None,
                daemon: "unreachable".into(),
                error: Some(format!("{}: {}", e.step, e.message)),
                preempt_delay_left_ms: None,
                last_hook: None,
                checks: None,
            }),
            Ok(f) => {
                let holds = f.holds(spec.vip).map(|i| i.name.clone());
                let (state, since, daemon, dv) = match &f.daemon {
                    Some(Ok(v)) => {
                        let (s, t) = daemon_view(v);
                        (s, t, "running".to_string(), Some(v.clone()))
                    }
                    Some(Err(e)) => (None, None, format!("daemon status unavailable: {e}"), None),
                    None => (
                        None,
                        None,
                        "daemon status unavailable: lvsup or its config is not installed".into(),
                        None,
                    ),
                };
                let is_master = state
                    .as_deref()
                    .map_or(holds.is_some(), |s| s.eq_ignore_ascii_case("master"));
                if is_master && master.is_none() {
                    master = Some(name.clone());
                }
                if let Some(t) = &f.ipvs
                    && (table.is_none() || (is_master && master.as_deref() == Some(&name)))
                    && table.as_ref().is_none_or(|(n, _, _)| n != &name)
                {
                    table = Some((name.clone(), t.clone(), dv.clone()));
                }
                directors.push(DirectorStatus {
                    name,
                    reachable: true,
                    state,
                    since,
                    holds_vip: holds,
                    daemon,
                    error: None,
                    preempt_delay_left_ms: dv.as_ref().and_then(|v| v.vrrp.preempt_delay_left_ms),
                    last_hook: dv.as_ref().and_then(|v| v.vrrp.hooks.last().cloned()),
                    checks: dv.as_ref().map(|v| v.checks.clone()),
                });
            }
        }
    }
    let ipvs_timeouts = table
        .as_ref()
        .and_then(|(_, _, dv)| dv.as_ref()?.ipvs.timeouts);
    let (table_from, services) = match table {
        Some((from, t, dv)) => (
            Some(from),
            t.iter()
                .map(|s| ServiceView {
                    service: s.label(),
                    scheduler: s.scheduler.clone(),
                    persistence: s.persistence,
                    destinations: s
                        .destinations
                        .iter()
                        .map(|d| {
                            let a = d.address.to_string();
                            DestView {
                                name: names.get(&a).cloned().or_else(|| {
                                    let h = health_of(dv.as_ref(), s, d.address, d.port, 0);
                                    (h.as_deref() == Some(SORRY_IN_USE))
                                        .then(|| "sorry server".to_string())
                                }),
                                destination: format!("{a}:{}", d.port),
                                forward: d.forward.clone(),
                                weight: d.weight,
                                active: d.active,
                                inactive: d.inactive,
                                health: health_of(dv.as_ref(), s, d.address, d.port, d.active)
                                    .unwrap_or_else(|| "unknown".into()),
                                failed_checks: real_server_of(dv.as_ref(), s, d.address, d.port)
                                    .map(|r| r.failed_checks),
                            }
                        })
                        .collect(),
                })
                .collect(),
        ),
        None => (None, vec![]),
    };
    ClusterStatus {
        cluster: spec.name.clone(),
        vip: spec.vip.to_string(),
        other_vips: spec.vips()[1..].iter().map(|v| v.to_string()).collect(),
        master,
        directors,
        services,
        table_from,
        ipvs_timeouts,
    }
}

pub fn render(s: &ClusterStatus) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Cluster \"{}\", {} {}{}: master {}",
        s.cluster,
        if s.other_vips.is_empty() {
            "VIP"
        } else {
            "VIPs"
        },
        s.vip,
        s.other_vips
            .iter()
            .map(|v| format!(", {v}"))
            .collect::<String>(),
        s.master
            .as_deref()
            .unwrap_or("none (no director holds the VIP)")
    );
    for d in &s.directors {
        let state = match (&d.state, &d.since) {
            (Some(st), Some(t)) => format!("{} since {t}", st.to_uppercase()),
            (Some(st), None) => st.to_uppercase(),
            (None, _) if !d.reachable => "UNREACHABLE".into(),
            (None, _) => "state unknown".into(),
        };
        let vip = match (&d.holds_vip, d.reachable) {
            (Some(i), _) => format!("holds the VIP on {i}"),
            (None, true) => "does not hold the VIP".to_string(),
            (None, false) => String::new(),
        };
        let _ = writeln!(o, "  {:<14} {:<40} {vip}", d.name, state);
        if let Some(e) = &d.error {
            let _ = writeln!(o, "  {:<14} {e}", "");
        } else if d.daemon != "running" {
            let _ = writeln!(o, "  {:<14} {}", "", d.daemon);
        }
        if let Some(ms) = d.preempt_delay_left_ms {
            let _ = writeln!(
                o,
                "  {:<14} preempt delay: {}s left (a lower-priority master keeps the VIP)",
                "",
                ms.div_ceil(1000)
            );
        }
        if let Some(c) = &d.checks {
            let _ = writeln!(
                o,
                "  {:<14} health checks: {} run{}",
                "",
                c.completed,
                if c.skipped == 0 {
                    String::new()
                } else {
                    format!(
                        ", {} SKIPPED (each fell due while the same real server's last check still ran)",
                        c.skipped
                    )
                }
            );
        }
        if let Some(h) = &d.last_hook {
            let _ = writeln!(
                o,
                "  {:<14} last notify hook: {} {}: {}{} at {}",
                "",
                h.hook,
                h.program,
                if h.ok { "" } else { "FAILED " },
                h.detail,
                h.at
            );
        }
    }
    match &s.table_from {
        None => {
            let _ = writeln!(o, "\nNo IPVS table could be read on any director.");
        }
        Some(from) => {
            let _ = writeln!(o, "\nIPVS table on {from}:");
            if let Some(t) = &s.ipvs_timeouts {
                let _ = writeln!(o, "Timeouts: {}", t.render());
            }
            let _ = writeln!(o, "Prot LocalAddress:Port Scheduler Flags");
            let _ = writeln!(
                o,
                "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn Health  Failed Name"
            );
            for v in &s.services {
                let flags = v
                    .persistence
                    .map(|p| format!(" persistent {p}"))
                    .unwrap_or_default();
                let _ = writeln!(
                    o,
                    "{}  {}{}",
                    v.service.replacen(' ', "  ", 1),
                    v.scheduler,
                    flags
                );
                for d in &v.destinations {
                    let _ = writeln!(
                        o,
                        "  -> {:<28} {:<7} {:<6} {:<10} {:<9} {:<7} {:<6} {}",
                        d.destination,
                        d.forward,
                        d.weight,
                        d.active,
                        d.inactive,
                        d.health,
                        d.failed_checks.map_or("-".to_string(), |n| n.to_string()),
                        d.name.as_deref().unwrap_or("")
                    );
                }
            }
        }
    }
    let _ = writeln!(o, "\n{}", summary(s));
    // the daemons' answers are host output: untrusted
    crate::config::diag::terminal_safe(&o)
}

/// The closing line of `status`: master, reachable directors, real servers up.
pub fn summary(s: &ClusterStatus) -> String {
    let reachable = s.directors.iter().filter(|d| d.reachable).count();
    let dests: Vec<&DestView> = s
        .services
        .iter()
        .flat_map(|v| &v.destinations)
        .filter(|d| d.health != SORRY_IN_USE)
        .collect();
    let up = dests.iter().filter(|d| d.health == "up").count();
    let sorry = s
        .services
        .iter()
        .filter(|v| v.destinations.iter().any(|d| d.health == SORRY_IN_USE))
        .count();
    let table = if s.table_from.is_some() && sorry > 0 {
        format!(
            "{up} of {} real servers up, sorry server in use for {sorry} service{}",
            dests.len(),
            if sorry == 1 { "" } else { "s" }
        )
    } else if s.table_from.is_some() {
        format!("{up} of {} real servers up", dests.len())
    } else {
        "no IPVS table".to_string()
    };
    format!(
        "Status: master {}, {reachable} of {} directors reachable, {table}.",
        s.master.as_deref().unwrap_or("none"),
        s.directors.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::status::SorryStatus;
    use crate::observe::LiveDest;

    /// A director within its preempt delay, and its last notify hook, are
    /// shown under its line.
    #[test]
    fn preempt_delay_and_last_hook_are_shown_per_director() {
        let d = |name: &str, left: Option<u64>, hook: Option<HookRecord>| DirectorStatus {
            name: name.into(),
            reachable: true,
            state: Some("Backup".into()),
            since: Some("2026-11-21T07:00:00.000Z".into()),
            holds_vip: None,
            daemon: "running".into(),
            error: None,
            preempt_delay_left_ms: left,
            last_hook: hook,
            checks: None,
        };
        let s = ClusterStatus {
            cluster: "web".into(),
            vip: "192.0.2.100".into(),
            other_vips: vec![],
            master: Some("lvs2".into()),
            directors: vec![
                d(
                    "lvs1",
                    Some(12_400),
                    Some(HookRecord {
                        at: "2026-11-21T07:00:00.100Z".into(),
                        hook: "backup".into(),
                        program: "/usr/local/bin/became-backup".into(),
                        ok: false,
                        detail: "exit 3".into(),
                        duration_ms: 5,
                    }),
                ),
                d("lvs2", None, None),
            ],
            services: vec![],
            table_from: None,
            ipvs_timeouts: None,
        };
        let text = render(&s);
        assert!(
            text.contains("preempt delay: 13s left (a lower-priority master keeps the VIP)"),
            "{text}"
        );
        assert!(
            text.contains(
                "last notify hook: backup /usr/local/bin/became-backup: FAILED exit 3 at 2026-11-21T07:00:00.100Z"
            ),
            "{text}"
        );
        assert_eq!(text.matches("preempt delay").count(), 1, "{text}");
        let json = serde_json::to_string(&s).expect("json");
        assert_eq!(json.matches("preempt_delay_left_ms").count(), 1, "{json}");
    }

    /// A sorry server in use, a fwmark service, and the daemon's check
    /// counters: failed checks per real server, checks run and left out.
    #[test]
    fn a_sorry_server_in_use_and_a_fwmark_service() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fwmark.toml"))
                .expect("example");
        let spec = crate::config::parse_str("fwmark.toml", &text).expect("valid");
        let d = crate::desired::desired_cluster(&spec).expect("render");
        let want = d
            .hosts
            .iter()
            .find(|h| h.name == "lvs191")
            .expect("director");
        let dest = |a: [u8; 4], weight: u32| LiveDest {
            address: Ipv4Addr::from(a),
            port: 0,
            forward: "Route".into(),
            weight,
            active: 0,
            inactive: 0,
        };
        let mut st = crate::contract::status::tests::sample();
        let s = &mut st.services[0];
        s.fwmark = Some(1);
        s.port = 0;
        s.ports = vec![80, 443];
        s.real_servers[0].address = Ipv4Addr::new(192, 168, 0, 171);
        s.real_servers[0].port = 0;
        s.sorry_server = Some(SorryStatus {
            address: Ipv4Addr::new(192, 168, 0, 180),
            port: 0,
            in_use: true,
        });
        let facts = Facts {
            ipvs: Some(vec![LiveService {
                protocol: "FWM".into(),
                vip: Ipv4Addr::UNSPECIFIED,
                port: 0,
                fwmark: Some(1),
                scheduler: "wlc".into(),
                persistence: Some(1800),
                netmask: Some(0xFFFF_FF00),
                destinations: vec![
                    dest([192, 168, 0, 171], 0),
                    dest([192, 168, 0, 172], 0),
                    dest([192, 168, 0, 180], 1),
                ],
            }]),
            daemon: Some(Ok(st)),
            ..Facts::default()
        };
        let facts: Result<Facts, HostError> = Ok(facts);
        let s = build(&spec, &[(want, &facts)]);
        let v = &s.services[0];
        assert_eq!(v.service, "FWM 1");
        assert_eq!(v.destinations[0].health, "down");
        assert_eq!(v.destinations[2].health, SORRY_IN_USE);
        assert_eq!(v.destinations[2].name.as_deref(), Some("sorry server"));
        let text = render(&s);
        assert!(text.contains("sorry server in use"), "{text}");
        assert!(
            text.contains("0 of 2 real servers up, sorry server in use for 1 service."),
            "{text}"
        );
        // The daemon's failed checks per real server (none known for one it
        // does not list, nor for the sorry server) and its checks run and
        // left out.
        let failed: Vec<_> = v.destinations.iter().map(|d| d.failed_checks).collect();
        assert_eq!(failed, [Some(4), None, None]);
        assert!(
            text.contains(
                "health checks: 9 run, 2 SKIPPED (each fell due while the same real server's last check still ran)"
            ),
            "{text}"
        );
        assert!(text.contains(" down    4      node1\n"), "{text}");
        let json = serde_json::to_value(&s).expect("json");
        assert_eq!(json["directors"][0]["checks"]["skipped"], 2, "{json}");
        assert_eq!(json["services"][0]["destinations"][0]["failed_checks"], 4);
        assert!(
            json["services"][0]["destinations"][1]
                .get("failed_checks")
                .is_none()
        );
    }

    fn status(other_vips: &[&str]) -> ClusterStatus {
        ClusterStatus {
            cluster: "site".into(),
            vip: "192.168.0.100".into(),
            other_vips: other_vips.iter().map(|v| v.to_string()).collect(),
            master: Some("lvs191".into()),
            directors: vec![],
            services: vec![],
            table_from: None,
            ipvs_timeouts: None,
        }
    }

    /// Services with VIPs of their own: the first line names every VIP,
    /// and the JSON lists them in `other_vips` (absent with one VIP).
    #[test]
    fn every_vip_is_named() {
        let one = status(&[]);
        assert!(
            render(&one).starts_with("Cluster \"site\", VIP 192.168.0.100: master lvs191"),
            "{}",
            render(&one)
        );
        let json = serde_json::to_value(&one).expect("json");
        assert!(json.get("other_vips").is_none(), "{json}");
        let two = status(&["192.168.0.101"]);
        assert!(
            render(&two)
                .starts_with("Cluster \"site\", VIPs 192.168.0.100, 192.168.0.101: master lvs191"),
            "{}",
            render(&two)
        );
        let json = serde_json::to_value(&two).expect("json");
        assert_eq!(json["other_vips"][0], "192.168.0.101");
    }
}
