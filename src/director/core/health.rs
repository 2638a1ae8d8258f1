//! The real servers' health as the director core keeps it: one rise/fall
//! [`Damper`] per (service, real server), the last check for status, and the
//! rule that carries health over a reload.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::contract::director_config::DirectorConfig;
use crate::contract::status::{self, CheckRecord};
use crate::health::damping::{Damper, Health};

/// Key under which a real server's health survives a reload: same service,
/// same address and port, same check.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RsKey {
    pub proto: crate::config::Protocol,
    /// The service's VIP: two services on one port of two VIPs are two.
    pub svc_vip: std::net::Ipv4Addr,
    pub svc_port: u16,
    /// A fwmark service's mark (`svc_port` is then 0).
    pub fwmark: Option<u32>,
    pub addr: SocketAddr,
    /// Shared by the service's real servers, as `path` (10,000 keys at
    /// 1,000 × 10: a string each was 10,000 allocations).
    pub check: Arc<str>,
    pub check_port: Option<u16>,
    pub path: Option<Arc<str>>,
}

/// A check's result as the core keeps it. The time is the monotonic clock's
/// reading at the check's end, the one that measured it: it becomes
/// wall-clock text only when a status is asked for ([`Check::record`]).
/// Formatting it as RFC 3339 text for every check was ~6 % of the daemon's
/// user-space instructions per check (callgrind, 2026-12-02), for a status
/// nobody read; reading the wall clock for every check was one system call
/// more per check where the clock source has no vDSO path (the lab VM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub at: Instant,
    pub ok: bool,
    /// "connected", "HTTP 200", "connection refused", "timeout after 3s", ...
    pub detail: std::borrow::Cow<'static, str>,
    /// u32 (49 days): a check's timeout is far shorter; 8 bytes less in
    /// each real server's state.
    pub duration_ms: u32,
    /// The probe could not run on the director (no socket): not counted
    /// for or against the real server.
    pub inconclusive: bool,
}

impl Check {
    /// The status document's form, its time as wall-clock time: `wall` is
    /// the wall clock read with `now`, the monotonic clock (the check ran
    /// `now - at` ago). A wall clock set since then moves old checks' times
    /// with it, as it would a log read now.
    pub fn record(&self, now: Instant, wall: SystemTime) -> CheckRecord {
        let ago = now.saturating_duration_since(self.at);
        CheckRecord {
            at: status::timestamp(wall.checked_sub(ago).unwrap_or(wall)),
            ok: self.ok,
            detail: self.detail.to_string(),
            duration_ms: u64::from(self.duration_ms),
            inconclusive: self.inconclusive,
        }
    }
}

/// One real server of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsState {
    pub key: RsKey,
    pub damper: Damper,
    pub last: Option<Check>,
    /// Health flips since the daemon started (u32 beside `failed`: no
    /// bigger than one u64 was).
    pub flips: u32,
    /// Failed checks since the daemon started, inconclusive ones left out:
    /// a server that fails now and then, below `fall`, shows here before it
    /// flips (the log says nothing of single failures).
    pub failed: u32,
}

/// Health state for `cfg`, carrying over dampers of `old` servers whose key
/// is unchanged (a reload does not forget health). Servers with `check =
/// "none"` are up from the start.
pub fn fresh(cfg: &DirectorConfig, old: &[Vec<RsState>]) -> Vec<Vec<RsState>> {
    // The old states by key, each key's in config order (a key twice takes
    // them in turn). Searched in a list, this was quadratic: 10,000 real
    // servers made 10^8 key comparisons per reload.
    let mut carried: std::collections::BTreeMap<&RsKey, std::collections::VecDeque<&RsState>> =
        std::collections::BTreeMap::new();
    for o in old.iter().flatten() {
        carried.entry(&o.key).or_default().push_back(o);
    }
    cfg.services
        .iter()
        .map(|s| {
            let check: Arc<str> = Arc::from(s.health.check.as_str());
            let path: Option<Arc<str>> = s.health.path.as_deref().map(Arc::from);
            s.real_servers
                .iter()
                .map(|r| {
                    let key = RsKey {
                        proto: s.protocol,
                        svc_vip: cfg.service_vip(s),
                        svc_port: s.port,
                        fwmark: s.fwmark,
                        addr: SocketAddr::from((r.address, r.port)),
                        check: check.clone(),
                        check_port: s.health.port,
                        path: path.clone(),
                    };
                    if let Some(o) = carried.get_mut(&key).and_then(VecDeque::pop_front) {
                        // Same server and check: keep its health, new thresholds.
                        let mut damper = o.damper.clone();
                        damper.rise = s.health.rise.max(1);
                        damper.fall = s.health.fall.max(1);
                        return RsState {
                            key,
                            damper,
                            last: o.last.clone(),
                            flips: o.flips,
                            failed: o.failed,
                        };
                    }
                    let mut damper = s.health.damper();
                    if s.health.check == "none" {
                        damper.observe(true);
                    }
                    RsState {
                        key,
                        damper,
                        last: None,
                        flips: 0,
                        failed: 0,
                    }
                })
                .collect()
        })
        .collect()
}

/// How many real servers have no known health yet (the VRRP health gate
/// opens at 0).
pub fn unknown(rs: &[Vec<RsState>]) -> usize {
    rs.iter().flatten().filter(|r| !r.damper.is_known()).count()
}

/// Every real server of every checked service is down (none = false): what
/// a director cut off from its network sees.
pub fn all_down(rs: &[Vec<RsState>]) -> bool {
    let mut any = false;
    for st in rs.iter().flatten() {
        if &*st.key.check == "none" {
            continue;
        }
        any = true;
        if st.damper.state != Health::Down {
            return false;
        }
    }
    any
}

/// Health per (service, real server), as the IPVS table is built from.
pub fn matrix(rs: &[Vec<RsState>]) -> Vec<Vec<Health>> {
    rs.iter()
        .map(|v| v.iter().map(|r| r.damper.state).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real server's health state (10,000 of them at 1,000 × 10) holds
    /// no string of its own: the check's kind and path are shared per
    /// service. 160 bytes; 184 with them as strings and a u64 duration.
    #[test]
    fn a_real_servers_state_is_small() {
        let size = std::mem::size_of::<RsState>();
        assert!(size <= 160, "a real server's state is {size} bytes");
        let cfg = crate::contract::director_config::test_config(
            crate::contract::director_config::TWO_SERVERS,
        );
        let rs = fresh(&cfg, &[]);
        let shared = rs.iter().all(|v| {
            v.windows(2).all(|w| {
                let (a, b) = (&w[0].key, &w[1].key);
                Arc::ptr_eq(&a.check, &b.check)
                    && a.path
                        .as_ref()
                        .zip(b.path.as_ref())
                        .is_some_and(|(p, q)| Arc::ptr_eq(p, q))
            })
        });
        assert!(shared && rs.iter().any(|v| v.len() > 1));
    }
}
