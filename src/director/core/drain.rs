//! Graceful drain of real servers removed from the config (pure).
//!
//! A reload that drops a real server from a service that stays does not
//! delete its destination at once (with `expire_nodest_conn = 1` that resets
//! its open connections): the destination stays in IPVS at weight 0, so it
//! takes no new connections and the established ones finish. The drain ends
//! when the kernel reports no connection left on it (TCP: no active one;
//! UDP, whose entries the kernel counts as inactive: none at all), when it
//! is gone from the kernel, or when `drain_timeout` passes; the next
//! reconcile then deletes it. The daemon only reads the counters
//! ([`DestConns`]); what drains and when it ends is decided here.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::config::{Forward, Protocol};
use crate::contract::director_config::DirectorConfig;
use crate::director::table;
use crate::ipvs::ServiceId;

/// How often the counters of draining destinations are read.
pub const DRAIN_CHECK: Duration = Duration::from_secs(2);

/// The kernel's connection counters of one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conns {
    pub active: u32,
    pub inactive: u32,
}

/// What the daemon read for a draining destination; `conns: None` = the
/// kernel no longer has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestConns {
    pub service: ServiceId,
    pub addr: SocketAddr,
    pub conns: Option<Conns>,
}

/// A real server removed from the config, still in IPVS at weight 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drain {
    pub service: ServiceId,
    pub protocol: Protocol,
    pub name: String,
    pub addr: SocketAddr,
    pub forward: Forward,
    pub since: Instant,
    pub deadline: Instant,
    /// The last counters read (`None`: not read yet).
    pub conns: Option<Conns>,
}

/// Why a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// No connection left.
    Idle,
    /// `drain_timeout` passed with connections left.
    Timeout,
}

impl Drain {
    /// Whether (and why) this drain is over at `now`.
    pub fn end(&self, now: Instant) -> Option<End> {
        match self.conns {
            Some(c) if c.active == 0 && (self.protocol == Protocol::Tcp || c.inactive == 0) => {
                Some(End::Idle)
            }
            _ if now >= self.deadline => Some(End::Timeout),
            _ => None,
        }
    }

    /// Time left until `drain_timeout` at `now`.
    pub fn left(&self, now: Instant) -> Duration {
        self.deadline.saturating_duration_since(now)
    }
}

/// The real servers of `old` that `new` no longer has in a service both
/// have (a service `new` drops is deleted whole, as before): they drain.
pub fn removed(
    old: &DirectorConfig,
    new: &DirectorConfig,
) -> Vec<(ServiceId, Protocol, String, SocketAddr, Forward)> {
    let mut out = Vec::new();
    for os in &old.services {
        let id = table::service_id(old, os);
        let Some(ns) = new
            .services
            .iter()
            .find(|s| table::service_id(new, s) == id)
        else {
            continue;
        };
        for r in &os.real_servers {
            let addr = SocketAddr::from((r.address, r.port));
            if !ns
                .real_servers
                .iter()
                .any(|n| SocketAddr::from((n.address, n.port)) == addr)
            {
                out.push((id, os.protocol, r.name.clone(), addr, r.forward));
            }
        }
    }
    out
}

/// Whether `cfg` has `addr` in service `id` (a drained server put back).
pub fn configured(cfg: &DirectorConfig, id: &ServiceId, addr: SocketAddr) -> bool {
    cfg.services
        .iter()
        .filter(|s| table::service_id(cfg, s) == *id)
        .flat_map(|s| &s.real_servers)
        .any(|r| SocketAddr::from((r.address, r.port)) == addr)
}

/// Whether `cfg` still has service `id`.
pub fn has_service(cfg: &DirectorConfig, id: &ServiceId) -> bool {
    cfg.services
        .iter()
        .any(|s| table::service_id(cfg, s) == *id)
}

/// The kernel's connection counters of the draining destinations (`None`:
/// the kernel no longer has it).
pub fn drain_counters(
    draining: &[table::Draining],
    kernel: &[crate::ipvs::Service],
) -> Vec<DestConns> {
    draining
        .iter()
        .map(|d| DestConns {
            service: d.service,
            addr: d.addr,
            conns: kernel
                .iter()
                .filter(|k| k.id == d.service)
                .flat_map(|k| &k.destinations)
                .find(|k| k.socket_addr() == d.addr)
                .map(|k| Conns {
                    active: k.active_conns,
                    inactive: k.inact_conns,
                }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(protocol: Protocol, conns: Option<Conns>, t0: Instant) -> Drain {
        Drain {
            service: ServiceId::tcp("192.0.2.100:80".parse().expect("addr")),
            protocol,
            name: "n2".into(),
            addr: "192.0.2.12:80".parse().expect("addr"),
            forward: Forward::Route,
            since: t0,
            deadline: t0 + Duration::from_secs(300),
            conns,
        }
    }

    #[test]
    fn ends_when_idle_or_at_the_deadline() {
        let t0 = Instant::now();
        let c = |active, inactive| Some(Conns { active, inactive });
        // Not read yet: goes on.
        assert_eq!(drain(Protocol::Tcp, None, t0).end(t0), None);
        assert_eq!(drain(Protocol::Tcp, c(2, 0), t0).end(t0), None);
        // TCP: inactive entries (FIN_WAIT, TIME_WAIT) do not hold it.
        assert_eq!(drain(Protocol::Tcp, c(0, 9), t0).end(t0), Some(End::Idle));
        // UDP: the kernel counts every UDP entry as inactive.
        assert_eq!(drain(Protocol::Udp, c(0, 3), t0).end(t0), None);
        assert_eq!(drain(Protocol::Udp, c(0, 0), t0).end(t0), Some(End::Idle));
        let late = t0 + Duration::from_secs(300);
        assert_eq!(
            drain(Protocol::Tcp, c(2, 0), t0).end(late),
            Some(End::Timeout)
        );
        assert_eq!(
            drain(Protocol::Tcp, None, t0).left(t0 + Duration::from_secs(60)),
            Duration::from_secs(240)
        );
    }
}
