//! The director daemon's status, as the control socket answers it.
//!
//! Protocol: connect to `/run/lvsup/<cluster>/director.sock` (root only,
//! mode 0600); the daemon writes one JSON document ([`Status`]) followed by a
//! newline and closes the connection. No request is read. `lvsup director
//! status [--json]` is the client; `lvsup status` runs it over SSH.
//!
//! One type for both sides: `director::daemon` builds it, and `lvsup status`
//! (`apply::status`), facts gathering (`observe`: health-driven
//! weights are not drift) and `lvsup verify` (the VRRP state) read it back
//! through it. A newer daemon's extra fields are ignored; fields added after
//! schema 1 shipped are `Option` or `#[serde(default)]`. The spelling is
//! pinned by `tests/fixtures/contract/director-status.json`.
//!
//! The schema is versioned by [`Status::schema`]: fields are only ever added
//! under the same number; a rename or removal bumps it. Times are RFC 3339
//! UTC with milliseconds (`2026-11-21T07:12:03.123Z`); durations are
//! milliseconds. Lists are in config order, maps sorted.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// Current [`Status::schema`].
pub const SCHEMA: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub schema: u32,
    /// lvsup version of the daemon.
    pub version: String,
    pub pid: u32,
    pub cluster: String,
    pub director: String,
    pub started_at: String,
    pub config: ConfigStatus,
    pub vrrp: VrrpStatus,
    pub ipvs: IpvsStatus,
    pub services: Vec<ServiceStatus>,
    /// The health checks since the daemon started. Absent in a status
    /// written before they were counted.
    #[serde(default)]
    pub checks: CheckCounters,
}

/// The health checks since the daemon started, all real servers together.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckCounters {
    /// Checks run to their end (passed, failed or not able to run).
    pub completed: u64,
    /// Checks left out: each fell due while the same real server's last
    /// check was still running (a timeout longer than the interval, a wait
    /// for a place among the checks in flight, a result the main loop had
    /// not taken yet). The next one runs at its usual time.
    pub skipped: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigStatus {
    pub path: String,
    /// SHA-256 of the file's bytes as loaded (hex): compare with the file
    /// `apply` uploaded to know whether the daemon runs it.
    pub sha256: String,
    pub loaded_at: String,
    /// The last SIGHUP, successful or refused.
    pub last_reload: Option<ReloadStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadStatus {
    pub at: String,
    pub ok: bool,
    /// Why a reload was refused (the old config keeps running).
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpStatus {
    /// "Initialize" | "Backup" | "Master"
    pub state: String,
    pub vrid: u8,
    pub priority: u8,
    pub interface: String,
    pub vip: Ipv4Addr,
    /// The addresses this daemon holds right now (VIP, NAT gateway), as `a.b.c.d/len`.
    pub addresses_held: Vec<String>,
    /// The current master as far as this director knows.
    pub master: Option<Ipv4Addr>,
    pub advert_interval_ms: u64,
    /// Learned from the master's adverts (RFC 5798 Master_Adver_Interval).
    pub master_advert_interval_ms: u64,
    pub preempt: bool,
    pub unicast: bool,
    pub peers: Vec<Ipv4Addr>,
    /// Health of every real server known: mastership allowed.
    pub health_gate_open: bool,
    /// Most recent last, at most [`MAX_TRANSITIONS`].
    pub transitions: Vec<TransitionRecord>,
    pub counters: VrrpCounters,
    /// `[vrrp] preempt_delay` in milliseconds; left out when 0 (none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub preempt_delay_ms: u64,
    /// What is left of the preempt delay started by the last VRRP start;
    /// left out when none runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempt_delay_left_ms: Option<u64>,
    /// The last runs of `[notify]` hooks, most recent last, at most
    /// [`MAX_HOOKS`]; left out when none ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookRecord>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How many hook runs the status keeps.
pub const MAX_HOOKS: usize = 16;

/// One run of a `[notify]` hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookRecord {
    /// When it ended.
    pub at: String,
    /// "master" | "backup" | "fault" | "stop"
    pub hook: String,
    pub program: String,
    /// Exit 0.
    pub ok: bool,
    /// "exit 0", "exit 1", "timeout after 10s: process group killed", "not started: …"
    pub detail: String,
    pub duration_ms: u64,
}

/// How many VRRP transitions the status keeps.
pub const MAX_TRANSITIONS: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitionRecord {
    pub at: String,
    pub from: String,
    pub to: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpCounters {
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub priority_zero_received: u64,
    pub adverts_discarded: u64,
    /// Valid adverts for another VRID on the same link (ignored).
    pub other_vrid: u64,
    /// Adverts from an address that is not one of the cluster's other
    /// directors: dropped (unicast, and multicast unless
    /// `vrrp_accept_foreign`).
    pub unknown_peer: u64,
    /// Adverts whose interval differs from ours: counted for the election,
    /// ignored for timing. Absent from daemons before it was added: 0.
    #[serde(default)]
    pub interval_mismatch: u64,
    /// Malformed packets, by reason (`ttl`, `checksum`, `vrrpv2`, ...).
    pub bad_packets: BTreeMap<String, u64>,
    pub send_errors: u64,
    pub gratuitous_arps_sent: u64,
    /// VRRP state changes since the daemon started (the list above keeps
    /// only the last ones). Absent from daemons before it was added: 0.
    #[serde(default)]
    pub transitions: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpvsStatus {
    /// false: the daemon runs without IPVS (`--no-ipvs`, labs only).
    pub enabled: bool,
    pub last_reconcile: Option<ReconcileStatus>,
    /// "master" | "backup" | null: the connection-sync daemon this director runs.
    pub sync_daemon: Option<String>,
    /// Why the kernel counters below are missing, if they are.
    pub error: Option<String>,
    /// The kernel's connection timeouts (`ipvsadm -L --timeout`), read with
    /// the counters. Absent from daemons before it was added.
    #[serde(default)]
    pub timeouts: Option<TimeoutsStatus>,
}

/// IPVS connection timeouts in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutsStatus {
    pub tcp: u32,
    pub tcpfin: u32,
    pub udp: u32,
}

impl TimeoutsStatus {
    /// `tcp 900s, tcpfin 120s, udp 300s`
    pub fn render(&self) -> String {
        format!(
            "tcp {}s, tcpfin {}s, udp {}s",
            self.tcp, self.tcpfin, self.udp
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileStatus {
    pub at: String,
    /// "start" | "health" | "reload" | "periodic"
    pub trigger: String,
    pub ok: bool,
    /// Netlink operations applied (0 = kernel already matched).
    pub ops: usize,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// The service's name (`[[services]] name`, default "PORT/PROTO").
    /// Absent from daemons before it was added.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// "tcp" | "udp"
    pub protocol: String,
    pub vip: Ipv4Addr,
    pub port: u16,
    pub scheduler: String,
    /// "tcp" | "http" | "https" | "script" | "none"
    pub check: String,
    /// The kernel's counters for this virtual service, when IPVS is readable.
    pub kernel: Option<ServiceCounters>,
    pub real_servers: Vec<RealServerStatus>,
    /// Real servers removed from the config, still at weight 0 while their
    /// connections finish. Absent from daemons before it was added.
    #[serde(default)]
    pub draining: Vec<DrainingStatus>,
    /// A fwmark service's mark (`port` is then 0 and `ports` its ports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// The service's sorry server, and whether it is in IPVS now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<SorryStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SorryStatus {
    pub address: Ipv4Addr,
    /// 0: the packet's own destination port (fwmark service).
    pub port: u16,
    /// In IPVS now: no real server can take a new connection. From the
    /// kernel's table when the daemon could read it, else from the health.
    pub in_use: bool,
}

impl ServiceStatus {
    /// `TCP 192.168.0.100:80`, or `FWM 5 (TCP 192.168.0.100:80,443)`.
    pub fn label(&self) -> String {
        match self.fwmark {
            Some(m) => {
                let ports: Vec<String> = self.ports.iter().map(u16::to_string).collect();
                format!(
                    "FWM {m} ({} {}:{})",
                    self.protocol.to_uppercase(),
                    self.vip,
                    ports.join(",")
                )
            }
            None => format!(
                "{} {}:{}",
                self.protocol.to_uppercase(),
                self.vip,
                self.port
            ),
        }
    }

    /// The IPVS service it is.
    pub fn service_id(&self) -> crate::ipvs::ServiceId {
        match self.fwmark {
            Some(m) => crate::ipvs::ServiceId::fwmark(m),
            None => crate::ipvs::ServiceId::Addr {
                protocol: if self.protocol == "udp" {
                    crate::ipvs::Protocol::Udp
                } else {
                    crate::ipvs::Protocol::Tcp
                },
                addr: std::net::SocketAddr::from((self.vip, self.port)),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainingStatus {
    pub name: String,
    pub address: Ipv4Addr,
    pub port: u16,
    /// The kernel's counters at the last read (null: not read yet).
    pub active_conns: Option<u32>,
    pub inact_conns: Option<u32>,
    /// Time left until `drain_timeout` deletes it anyway.
    pub left_ms: u64,
}

impl DrainingStatus {
    /// `draining (3 active, 4m 12s left)`
    pub fn render(&self) -> String {
        let left = std::time::Duration::from_secs(self.left_ms.div_ceil(1000));
        format!(
            "draining ({} active, {} left)",
            self.active_conns
                .map_or_else(|| "?".to_string(), |n| n.to_string()),
            humantime::format_duration(left)
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceCounters {
    pub conns: u64,
    pub in_pkts: u64,
    pub out_pkts: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub cps: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealServerStatus {
    pub name: String,
    pub address: Ipv4Addr,
    pub port: u16,
    /// "unknown" | "up" | "down"
    pub health: String,
    /// Weight from the config.
    pub weight: u32,
    /// Weight the daemon wants in the kernel: `weight` when up, 0 when down.
    pub effective_weight: u32,
    pub last_check: Option<CheckRecord>,
    /// Health flips since the daemon started.
    pub flips: u64,
    /// Failed checks since the daemon started (not the inconclusive ones:
    /// the director could not run the probe). Absent in a status written
    /// before it was counted.
    #[serde(default)]
    pub failed_checks: u64,
    pub kernel: Option<DestCounters>,
    /// `drain = true` in the config: kept at weight 0.
    #[serde(default)]
    pub drain: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRecord {
    pub at: String,
    pub ok: bool,
    /// "connected", "HTTP 200", "connection refused", "timeout after 3s", ...
    pub detail: String,
    pub duration_ms: u64,
    /// The probe could not run on the director (no socket: EMFILE, ...):
    /// not counted for or against the real server. Left out when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inconclusive: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestCounters {
    /// The weight the kernel has.
    pub weight: u32,
    pub active_conns: u32,
    pub inact_conns: u32,
    pub persist_conns: u32,
    pub conns: u64,
    pub in_pkts: u64,
    pub out_pkts: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
}

impl Status {
    /// Fill the `kernel` fields from a read of the kernel's IPVS table.
    pub fn attach_kernel(&mut self, table: &[crate::ipvs::Service]) {
        use crate::ipvs::ServiceId;
        for s in &mut self.services {
            let want: ServiceId = s.service_id();
            let Some(k) = table.iter().find(|k| k.id == want) else {
                continue;
            };
            if let Some(ss) = &mut s.sorry_server {
                let addr = std::net::SocketAddr::from((ss.address, ss.port));
                ss.in_use = k.destinations.iter().any(|d| d.socket_addr() == addr);
            }
            let st = k.stats.as_deref().copied().unwrap_or_default();
            s.kernel = Some(ServiceCounters {
                conns: st.conns,
                in_pkts: st.in_pkts,
                out_pkts: st.out_pkts,
                in_bytes: st.in_bytes,
                out_bytes: st.out_bytes,
                cps: st.cps,
            });
            for r in &mut s.real_servers {
                let addr = std::net::SocketAddr::from((r.address, r.port));
                if let Some(d) = k.destinations.iter().find(|d| d.socket_addr() == addr) {
                    let ds = d.stats.as_deref().copied().unwrap_or_default();
                    r.kernel = Some(DestCounters {
                        weight: d.weight,
                        active_conns: d.active_conns,
                        inact_conns: d.inact_conns,
                        persist_conns: d.persist_conns,
                        conns: ds.conns,
                        in_pkts: ds.in_pkts,
                        out_pkts: ds.out_pkts,
                        in_bytes: ds.in_bytes,
                        out_bytes: ds.out_bytes,
                    });
                }
            }
        }
    }

    /// The human-readable form `lvsup director status` prints.
    pub fn render_text(&self) -> String {
        let mut o = String::new();
        let v = &self.vrrp;
        let _ = writeln!(
            o,
            "director {} of cluster {} (pid {}, lvsup {}, up since {})",
            self.director, self.cluster, self.pid, self.version, self.started_at
        );
        let _ = writeln!(
            o,
            "config   {} sha256 {} loaded {}",
            self.config.path,
            short(&self.config.sha256),
            self.config.loaded_at
        );
        if let Some(r) = &self.config.last_reload {
            match &r.error {
                None => {
                    let _ = writeln!(o, "         last reload {} ok", r.at);
                }
                Some(e) => {
                    let _ = writeln!(o, "         last reload {} REFUSED: {e}", r.at);
                }
            }
        }
        let _ = writeln!(
            o,
            "vrrp     {} vrid {} priority {} on {} ({}), vip {}{}",
            v.state,
            v.vrid,
            v.priority,
            v.interface,
            if v.unicast { "unicast" } else { "multicast" },
            v.vip,
            if v.addresses_held.is_empty() {
                String::new()
            } else {
                format!(", holding {}", v.addresses_held.join(" "))
            }
        );
        let _ = writeln!(
            o,
            "         master {}, advert {} ms, health gate {}",
            v.master.map_or("unknown".to_string(), |m| m.to_string()),
            v.master_advert_interval_ms,
            if v.health_gate_open { "open" } else { "closed" }
        );
        let c = &v.counters;
        let bad: u64 = c.bad_packets.values().sum();
        let _ = writeln!(
            o,
            "         adverts sent {} received {} (priority 0: {}), bad packets {}{}",
            c.adverts_sent,
            c.adverts_received,
            c.priority_zero_received,
            bad,
            if bad == 0 {
                String::new()
            } else {
                format!(
                    " ({})",
                    c.bad_packets
                        .iter()
                        .map(|(k, n)| format!("{k} {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
        if v.preempt_delay_ms > 0 {
            let _ = writeln!(
                o,
                "         preempt delay {} ms{}",
                v.preempt_delay_ms,
                v.preempt_delay_left_ms.map_or(String::new(), |l| format!(
                    " ({l} ms left: a lower-priority master is not preempted)"
                ))
            );
        }
        for t in v.transitions.iter().rev().take(5) {
            let _ = writeln!(o, "         {} {} -> {}: {}", t.at, t.from, t.to, t.reason);
        }
        for h in v.hooks.iter().rev().take(4) {
            let _ = writeln!(
                o,
                "         {} notify {} {}: {}{}",
                h.at,
                h.hook,
                h.program,
                if h.ok { "" } else { "FAILED " },
                h.detail
            );
        }
        match (&self.ipvs.enabled, &self.ipvs.last_reconcile) {
            (false, _) => {
                let _ = writeln!(o, "ipvs     disabled (--no-ipvs)");
            }
            (true, Some(r)) => {
                let _ = writeln!(
                    o,
                    "ipvs     last reconcile {} ({}): {}",
                    r.at,
                    r.trigger,
                    match &r.error {
                        None => format!("ok, {} ops", r.ops),
                        Some(e) => format!("FAILED: {e}"),
                    }
                );
            }
            (true, None) => {
                let _ = writeln!(o, "ipvs     not reconciled yet");
            }
        }
        if let Some(t) = &self.ipvs.timeouts {
            let _ = writeln!(o, "         timeouts {}", t.render());
        }
        if let Some(sd) = &self.ipvs.sync_daemon {
            let _ = writeln!(o, "         sync daemon: {sd}");
        }
        let _ = writeln!(
            o,
            "checks   {} run{}",
            self.checks.completed,
            if self.checks.skipped == 0 {
                String::new()
            } else {
                format!(
                    ", {} SKIPPED (due while the same real server's last check still ran)",
                    self.checks.skipped
                )
            }
        );
        for s in &self.services {
            // A name of its own is shown; the default "80/tcp" says nothing more.
            let default = match s.fwmark {
                Some(m) => format!("fwmark:{m}"),
                None => format!("{}/{}", s.port, s.protocol),
            };
            let named = if s.name.is_empty() || s.name == default {
                String::new()
            } else {
                format!(" \"{}\"", s.name)
            };
            let _ = writeln!(
                o,
                "{}{named} {} (check {}){}",
                s.label(),
                s.scheduler,
                s.check,
                s.kernel
                    .as_ref()
                    .map_or(String::new(), |k| format!(", {} conns", k.conns))
            );
            for r in &s.real_servers {
                let _ = writeln!(
                    o,
                    "  -> {:<12} {}:{:<5} {:<7} weight {}/{}{}{}{}{}",
                    r.name,
                    r.address,
                    r.port,
                    r.health,
                    r.effective_weight,
                    r.weight,
                    if r.drain { " (drain = true)" } else { "" },
                    r.kernel.as_ref().map_or(String::new(), |k| format!(
                        ", kernel weight {} active {} inactive {}",
                        k.weight, k.active_conns, k.inact_conns
                    )),
                    if r.failed_checks == 0 {
                        String::new()
                    } else {
                        format!(", {} failed checks", r.failed_checks)
                    },
                    r.last_check
                        .as_ref()
                        .map_or(String::new(), |c| format!(", last check: {}", c.detail))
                );
            }
            for d in &s.draining {
                let _ = writeln!(
                    o,
                    "  -> {:<12} {}:{:<5} removed from the config, {}",
                    d.name,
                    d.address,
                    d.port,
                    d.render()
                );
            }
            if let Some(ss) = &s.sorry_server {
                let _ = writeln!(
                    o,
                    "  -> {:<12} {}:{:<5} {}",
                    "sorry server",
                    ss.address,
                    ss.port,
                    if ss.in_use {
                        "sorry server in use: no real server can take a connection"
                    } else {
                        "standby (in IPVS only while no real server can take a connection)"
                    }
                );
            }
        }
        o
    }
}

fn short(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

/// RFC 3339 UTC with milliseconds.
pub fn timestamp(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> Status {
        Status {
            schema: SCHEMA,
            version: "0.1.0".into(),
            pid: 42,
            cluster: "web".into(),
            director: "lvs191".into(),
            started_at: "2026-11-21T07:00:00.000Z".into(),
            config: ConfigStatus {
                path: "/etc/lvsup/web/director.toml".into(),
                sha256: "ab".repeat(32),
                loaded_at: "2026-11-21T07:00:00.000Z".into(),
                last_reload: Some(ReloadStatus {
                    at: "2026-11-21T07:05:00.000Z".into(),
                    ok: false,
                    error: Some("TOML parse error at line 46".into()),
                }),
            },
            vrrp: VrrpStatus {
                state: "Master".into(),
                vrid: 51,
                priority: 150,
                interface: "eth0".into(),
                vip: Ipv4Addr::new(192, 168, 0, 100),
                addresses_held: vec!["192.168.0.100/32".into()],
                master: Some(Ipv4Addr::new(192, 168, 0, 191)),
                advert_interval_ms: 1000,
                master_advert_interval_ms: 1000,
                preempt: true,
                unicast: false,
                peers: vec![Ipv4Addr::new(192, 168, 0, 192)],
                health_gate_open: true,
                transitions: vec![TransitionRecord {
                    at: "2026-11-21T07:00:03.400Z".into(),
                    from: "Backup".into(),
                    to: "Master".into(),
                    reason: "master down timer expired".into(),
                }],
                counters: VrrpCounters {
                    bad_packets: [("ttl".to_string(), 2)].into_iter().collect(),
                    ..Default::default()
                },
                preempt_delay_ms: 0,
                preempt_delay_left_ms: None,
                hooks: Vec::new(),
            },
            ipvs: IpvsStatus {
                enabled: true,
                last_reconcile: None,
                sync_daemon: Some("master".into()),
                error: None,
                timeouts: None,
            },
            services: vec![ServiceStatus {
                name: String::new(),
                protocol: "tcp".into(),
                vip: Ipv4Addr::new(192, 168, 0, 100),
                port: 80,
                scheduler: "rr".into(),
                check: "tcp".into(),
                kernel: None,
                real_servers: vec![RealServerStatus {
                    name: "node1".into(),
                    address: Ipv4Addr::new(192, 168, 0, 171),
                    port: 80,
                    health: "down".into(),
                    weight: 100,
                    effective_weight: 0,
                    last_check: None,
                    flips: 1,
                    failed_checks: 4,
                    kernel: None,
                    drain: false,
                }],
                draining: vec![DrainingStatus {
                    name: "node3".into(),
                    address: Ipv4Addr::new(192, 168, 0, 173),
                    port: 80,
                    active_conns: Some(2),
                    inact_conns: Some(0),
                    left_ms: 252_400,
                }],
                fwmark: None,
                ports: vec![],
                sorry_server: None,
            }],
            checks: CheckCounters {
                completed: 9,
                skipped: 2,
            },
        }
    }

    #[test]
    fn sorry_server_and_fwmark_in_status() {
        let mut st = sample();
        st.services[0].fwmark = Some(5);
        st.services[0].port = 0;
        st.services[0].ports = vec![80, 443];
        st.services[0].sorry_server = Some(SorryStatus {
            address: Ipv4Addr::new(192, 168, 0, 50),
            port: 0,
            in_use: false,
        });
        let text = st.render_text();
        assert!(
            text.contains("FWM 5 (TCP 192.168.0.100:80,443) rr"),
            "{text}"
        );
        assert!(text.contains("standby"), "{text}");
        // the kernel has it: in use
        let k = crate::ipvs::Service::new(crate::ipvs::ServiceId::fwmark(5), "rr")
            .with_destination(crate::ipvs::Destination::new(
                "192.168.0.50:0".parse().expect("addr"),
                crate::ipvs::Forward::Route,
                1,
            ));
        st.attach_kernel(&[k]);
        assert!(st.services[0].sorry_server.as_ref().expect("sorry").in_use);
        let text = st.render_text();
        assert!(text.contains("sorry server in use"), "{text}");
        // JSON round trip, and absent for a daemon without the fields
        let json = serde_json::to_string(&st).expect("json");
        assert_eq!(serde_json::from_str::<Status>(&json).expect("read"), st);
        assert!(
            !serde_json::to_string(&sample())
                .expect("json")
                .contains("sorry")
        );
    }

    /// The keys `lvsup status` (over SSH) and scripts read: renaming one is a
    /// schema change (bump SCHEMA).
    #[test]
    fn json_shape_is_stable() {
        let v = serde_json::to_value(sample()).expect("json");
        let keys = |v: &serde_json::Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(
            keys(&v),
            [
                "checks",
                "cluster",
                "config",
                "director",
                "ipvs",
                "pid",
                "schema",
                "services",
                "started_at",
                "version",
                "vrrp"
            ]
        );
        assert_eq!(v["schema"], 1);
        assert_eq!(v["vrrp"]["state"], "Master");
        assert_eq!(v["vrrp"]["vip"], "192.168.0.100");
        assert_eq!(v["vrrp"]["master"], "192.168.0.191");
        assert_eq!(v["vrrp"]["transitions"][0]["to"], "Master");
        assert_eq!(v["vrrp"]["counters"]["bad_packets"]["ttl"], 2);
        assert_eq!(v["vrrp"]["counters"]["unknown_peer"], 0);
        assert_eq!(v["vrrp"]["counters"]["interval_mismatch"], 0);
        assert_eq!(v["config"]["last_reload"]["ok"], false);
        let rs = &v["services"][0]["real_servers"][0];
        assert_eq!(rs["health"], "down");
        assert_eq!(rs["effective_weight"], 0);
        assert!(rs["kernel"].is_null());
        assert_eq!(rs["failed_checks"], 4);
        assert_eq!(v["checks"]["completed"], 9);
        assert_eq!(v["checks"]["skipped"], 2);
        // And it reads back (the client side).
        let back: Status = serde_json::from_value(v.clone()).expect("read back");
        assert_eq!(back, sample());
        // A daemon from before interval_mismatch: read as 0.
        let mut old = v;
        old["vrrp"]["counters"]
            .as_object_mut()
            .expect("counters")
            .remove("interval_mismatch");
        let back: Status = serde_json::from_value(old).expect("older daemon");
        assert_eq!(back.vrrp.counters.interval_mismatch, 0);
    }

    #[test]
    fn kernel_counters_attach_by_service_and_destination() {
        use crate::ipvs::{Destination, Forward, Service, ServiceId};
        let mut st = sample();
        let mut d = Destination::new("192.168.0.171:80".parse().expect("addr"), Forward::Route, 0);
        d.active_conns = 3;
        d.inact_conns = 4;
        let svc = Service::new(
            ServiceId::tcp("192.168.0.100:80".parse().expect("addr")),
            "rr",
        )
        .with_destination(d);
        st.attach_kernel(&[svc]);
        st.ipvs.timeouts = Some(TimeoutsStatus {
            tcp: 900,
            tcpfin: 120,
            udp: 60,
        });
        let k = st.services[0].real_servers[0]
            .kernel
            .as_ref()
            .expect("kernel");
        assert_eq!((k.weight, k.active_conns, k.inact_conns), (0, 3, 4));
        assert!(st.services[0].kernel.is_some());
        let text = st.render_text();
        assert!(text.contains("REFUSED"), "{text}");
        assert!(text.contains("inactive 4, 4 failed checks"), "{text}");
        assert!(
            text.contains("checks   9 run, 2 SKIPPED (due while"),
            "{text}"
        );
        assert!(
            text.contains("kernel weight 0 active 3 inactive 4"),
            "{text}"
        );
        assert!(
            text.contains("timeouts tcp 900s, tcpfin 120s, udp 60s"),
            "{text}"
        );
        assert!(
            text.contains("node3        192.168.0.173:80    removed from the config, draining (2 active, 4m 13s left)"),
            "{text}"
        );
    }

    /// A service's own name is shown after its address; the default
    /// "PORT/PROTO" is not (it says nothing more), nor is an absent one
    /// (older daemons). The name is in the JSON when set.
    #[test]
    fn service_names_other_than_the_default_are_shown() {
        let mut st = sample();
        st.services[0].name = "80/tcp".into();
        assert!(
            st.render_text().contains("TCP 192.168.0.100:80 rr"),
            "{}",
            st.render_text()
        );
        st.services[0].name = "api".into();
        st.services[0].vip = "192.168.0.101".parse().expect("ip");
        let text = st.render_text();
        assert!(text.contains("TCP 192.168.0.101:80 \"api\" rr"), "{text}");
        let v = serde_json::to_value(&st).expect("json");
        assert_eq!(v["services"][0]["name"], "api");
        let back: Status = serde_json::from_value(v).expect("read back");
        assert_eq!(back.services[0].name, "api");
    }

    /// preempt_delay and notify hook runs: in the document only when set,
    /// read back, and shown by `lvsup director status`.
    #[test]
    fn preempt_delay_and_hook_runs_are_shown() {
        let mut st = sample();
        let plain = serde_json::to_string(&st).expect("json");
        assert!(
            !plain.contains("preempt_delay") && !plain.contains("hooks"),
            "{plain}"
        );
        st.vrrp.preempt_delay_ms = 30_000;
        st.vrrp.preempt_delay_left_ms = Some(12_000);
        st.vrrp.hooks = vec![
            HookRecord {
                at: "2026-11-21T07:00:03.500Z".into(),
                hook: "master".into(),
                program: "/usr/local/bin/vip-up".into(),
                ok: true,
                detail: "exit 0".into(),
                duration_ms: 12,
            },
            HookRecord {
                at: "2026-11-21T07:00:09.000Z".into(),
                hook: "fault".into(),
                program: "/usr/local/bin/page".into(),
                ok: false,
                detail: "timeout after 10s: process group killed".into(),
                duration_ms: 10_000,
            },
        ];
        let json = serde_json::to_string(&st).expect("json");
        assert_eq!(serde_json::from_str::<Status>(&json).expect("read"), st);
        let text = st.render_text();
        assert!(
            text.contains(
                "preempt delay 30000 ms (12000 ms left: a lower-priority master is not preempted)"
            ),
            "{text}"
        );
        assert!(
            text.contains("2026-11-21T07:00:09.000Z notify fault /usr/local/bin/page: FAILED timeout after 10s"),
            "{text}"
        );
        assert!(
            text.contains("notify master /usr/local/bin/vip-up: exit 0"),
            "{text}"
        );
    }

    /// `lvsup director status --json` as this version's daemon prints it
    /// (`format_version` first, then the schema-1 document).
    pub(crate) const FIXTURE: &str =
        include_str!("../../tests/fixtures/contract/director-status.json");

    fn fixture_status() -> Status {
        let mut s = sample();
        s.ipvs.timeouts = Some(TimeoutsStatus {
            tcp: 900,
            tcpfin: 120,
            udp: 300,
        });
        s
    }

    /// The spelling is pinned: the daemon's type, printed as the CLI prints
    /// it, is the captured document byte for byte (field names and order).
    #[test]
    fn the_daemon_prints_the_captured_document() {
        #[derive(Serialize)]
        struct Printed<'a> {
            format_version: u32,
            #[serde(flatten)]
            doc: &'a Status,
        }
        let text = serde_json::to_string_pretty(&Printed {
            format_version: 1,
            doc: &fixture_status(),
        })
        .expect("json")
            + "\n";
        assert_eq!(text, FIXTURE);
        assert!(FIXTURE.starts_with("{\n  \"format_version\": 1,\n  \"schema\": 1,"));
    }

    /// Produced by the daemon's type → JSON → read by the same type (what
    /// `lvsup status`, facts gathering and verify do), also with a newer
    /// daemon's extra fields and without the fields older daemons lack.
    #[test]
    fn readers_get_back_what_the_daemon_wrote() {
        let back: Status = serde_json::from_str(FIXTURE).expect("captured document");
        assert_eq!(back, fixture_status());
        let json = serde_json::to_string(&sample()).expect("json");
        assert_eq!(
            serde_json::from_str::<Status>(&json).expect("read"),
            sample()
        );

        let mut v: serde_json::Value = serde_json::from_str(FIXTURE).expect("json");
        // a newer daemon: fields this build does not know are ignored
        v["uptime_ms"] = 5.into();
        v["vrrp"]["counters"]["new_counter"] = 1.into();
        v["services"][0]["real_servers"][0]["zone"] = "b".into();
        // an older one: the fields added after schema 1 first shipped
        for (obj, key) in [
            ("/vrrp/counters", "interval_mismatch"),
            ("/vrrp/counters", "transitions"),
            ("/ipvs", "timeouts"),
            ("/services/0", "draining"),
            ("/services/0/real_servers/0", "drain"),
            ("/services/0/real_servers/0", "failed_checks"),
            ("", "checks"),
        ] {
            v.pointer_mut(obj)
                .and_then(serde_json::Value::as_object_mut)
                .expect(obj)
                .remove(key)
                .expect(key);
        }
        let back: Status = serde_json::from_value(v).expect("older and newer daemons");
        assert_eq!(back.vrrp.counters.interval_mismatch, 0);
        assert_eq!(back.ipvs.timeouts, None);
        assert!(back.services[0].draining.is_empty());
        assert!(!back.services[0].real_servers[0].drain);
        assert_eq!(back.services[0].real_servers[0].failed_checks, 0);
        assert_eq!(back.checks, CheckCounters::default());
        assert_eq!(back.vrrp.state, "Master");
        // a document that is not a status is an error, not a default
        assert!(serde_json::from_str::<Status>(r#"{"services":[]}"#).is_err());
    }
}
