//! Pure: the IPVS table the daemon wants = config × health, as
//! [`crate::ipvs::Service`]s for [`crate::ipvs::reconcile`].
//!
//! Rules (the same on every director, Master or Backup, so a takeover only
//! moves addresses):
//! - every configured service is present, whatever the health: all real
//!   servers down → the service stays, every destination at weight 0
//!   (clients get a refused connection from nobody rather than the VIP
//!   falling through to a local socket, and nothing is re-created later);
//! - a real server that is up has its configured weight; down → weight 0
//!   (draining: established connections continue, no new ones;
//!   `expire_nodest_conn`/`expire_quiescent_template` set by apply do the rest);
//! - `drain = true` → weight 0 whatever the health (no new connections,
//!   established ones finish);
//! - a real server a reload removed, still draining ([`keep_draining`]) →
//!   kept at weight 0 while the kernel has it (never re-added);
//! - health unknown (daemon just started, no probe answered yet) → the weight
//!   the kernel already has for it, or 0 if it is new: a daemon restart does
//!   not drain servers that were serving, and a server nobody checked yet
//!   gets no traffic;
//! - a service's `sorry_server` ([`sorry_in_use`]) is a destination at weight
//!   1 (the mode's forwarding method) while none of its real servers can take
//!   a new connection (each down, drained or at weight 0: keepalived's rule,
//!   "the live real servers' weights sum below its default quorum of 1"),
//!   and is deleted as soon as one can. Real servers whose health is still
//!   unknown keep the sorry server as the kernel has it, so a daemon restart
//!   neither adds nor removes it before the probes tell;
//! - a fwmark service is the IPVS service `-f MARK`, its real servers at port
//!   0 (the packet's own destination port); `persistence_netmask` is `-M`.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::config::{Forward as CfgForward, IpvsTimeouts, Protocol as CfgProtocol};
use crate::contract::director_config::{DirectorConfig, ServiceConfig};
use crate::health::damping::Health;
use crate::ipvs::{Destination, Forward, Protocol, Service, ServiceId, Timeouts};

pub fn protocol(p: CfgProtocol) -> Protocol {
    match p {
        CfgProtocol::Tcp => Protocol::Tcp,
        CfgProtocol::Udp => Protocol::Udp,
    }
}

pub fn forward(f: CfgForward) -> Forward {
    match f {
        CfgForward::Masq => Forward::Masq,
        CfgForward::Tunnel => Forward::Tunnel,
        CfgForward::Route => Forward::Route,
    }
}

pub fn service_id(cfg: &DirectorConfig, s: &ServiceConfig) -> ServiceId {
    match s.fwmark {
        Some(mark) => ServiceId::fwmark(mark),
        None => ServiceId::Addr {
            protocol: protocol(s.protocol),
            addr: SocketAddr::from((cfg.service_vip(s), s.port)),
        },
    }
}

/// Whether a service's sorry server belongs in IPVS. `servers`: each real
/// server's health and the weight the table gives it; `in_kernel`: whether
/// the kernel has the sorry destination now.
/// - one real server at a weight above 0 (up, or unknown and serving
///   before a restart) → out;
/// - else one whose health is unknown → as the kernel has it (a daemon
///   restart changes nothing before the probes tell);
/// - else (every one down, drained or at weight 0; or none at all) → in.
pub fn sorry_in_use(servers: impl IntoIterator<Item = (Health, u32)>, in_kernel: bool) -> bool {
    let mut unknown = false;
    for (h, w) in servers {
        if w > 0 {
            return false;
        }
        unknown |= h == Health::Unknown;
    }
    if unknown { in_kernel } else { true }
}

/// The weight a real server should have in the kernel.
pub fn effective_weight(health: Health, configured: u32, in_kernel: Option<u32>) -> u32 {
    match health {
        Health::Up => configured,
        Health::Down => 0,
        Health::Unknown => in_kernel.unwrap_or(0),
    }
}

/// The desired table. `health(i, j)` is the health of real server `j` of
/// service `i` (config order); `kernel` is the kernel's current table (only
/// read for the weights of servers whose health is unknown).
pub fn desired_services(
    cfg: &DirectorConfig,
    health: impl Fn(usize, usize) -> Health,
    kernel: &[Service],
) -> Vec<Service> {
    // indexed: with 1,000 services a scan per service was 500,000 comparisons
    let by_id: BTreeMap<ServiceId, &Service> = kernel.iter().map(|k| (k.id, k)).collect();
    (0..cfg.services.len())
        .map(|i| {
            let id = service_id(cfg, &cfg.services[i]);
            desired_service(cfg, i, &health, by_id.get(&id).copied())
        })
        .collect()
}

/// Service `i` of the config as [`desired_services`] wants it; `have`: the
/// kernel's service of the same id, if any.
pub fn desired_service(
    cfg: &DirectorConfig,
    i: usize,
    health: &impl Fn(usize, usize) -> Health,
    have: Option<&Service>,
) -> Service {
    let s = &cfg.services[i];
    let mut svc = Service::new(service_id(cfg, s), s.scheduler.clone());
    if let Some(p) = s.persistence {
        svc = svc.persistent(u32::try_from(p.as_secs()).unwrap_or(u32::MAX).max(1));
    }
    if let Some(m) = s.persistence_netmask {
        svc.netmask = m.min(32);
    }
    let mut weights = Vec::with_capacity(s.real_servers.len());
    for (j, r) in s.real_servers.iter().enumerate() {
        let addr = SocketAddr::from((r.address, r.port));
        let in_kernel = have.and_then(|k| {
            k.destinations
                .iter()
                .find(|d| d.socket_addr() == addr)
                .map(|d| d.weight)
        });
        let h = health(i, j);
        let w = if r.drain {
            0
        } else {
            effective_weight(h, r.weight, in_kernel)
        };
        weights.push((h, w));
        svc = svc.with_destination(Destination::new(addr, forward(r.forward), w));
    }
    if let Some(ss) = &s.sorry_server {
        let addr = SocketAddr::from((ss.address, ss.port));
        let in_kernel =
            have.is_some_and(|k| k.destinations.iter().any(|d| d.socket_addr() == addr));
        if sorry_in_use(weights, in_kernel) {
            svc = svc.with_destination(Destination::new(addr, forward(ss.forward), 1));
        }
    }
    svc
}

/// What the last successful reconcile left in the kernel (the managed
/// services, as it wrote them) and what it was computed from. A change of
/// health alone is carried out from it, without reading the kernel again:
/// reading means one netlink dump per service (1,000 at the scale the
/// daemon is built for), and every real server's fall or rise would pay it
/// (keepalived sends the one edit too). A change of config or drains, a
/// periodic run and any failed operation read the kernel; the periodic one
/// (every 30 s) repairs what someone else changed in between.
#[derive(Debug, Clone)]
pub struct Applied {
    pub cfg: std::sync::Arc<DirectorConfig>,
    pub health: Vec<Vec<Health>>,
    pub draining: Vec<Draining>,
    pub table: BTreeMap<ServiceId, Service>,
}

/// A change to carry out from [`Applied`] without reading the kernel (a
/// change of health, or a reload's): the changed services as wanted, and
/// as the kernel has them after the last reconcile. A service in `known`
/// and not in `desired` is one the reload deleted.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Step {
    pub desired: Vec<Service>,
    pub known: Vec<Service>,
}

impl Applied {
    /// After a reconcile that read the kernel and applied `desired`.
    pub fn new(
        cfg: std::sync::Arc<DirectorConfig>,
        health: Vec<Vec<Health>>,
        draining: Vec<Draining>,
        desired: &[Service],
    ) -> Applied {
        Applied {
            cfg,
            health,
            draining,
            table: desired.iter().map(|s| (s.id, s.clone())).collect(),
        }
    }

    /// The step from here to `health` under `cfg` with `draining`; `None`
    /// when the config is another one (a reload) or the drains changed:
    /// then the kernel must be read.
    pub fn health_step(
        &self,
        cfg: &std::sync::Arc<DirectorConfig>,
        health: &[Vec<Health>],
        draining: &[Draining],
    ) -> Option<Step> {
        if !std::sync::Arc::ptr_eq(&self.cfg, cfg) || self.draining != draining {
            return None;
        }
        step_between(cfg, &self.table, &self.health, health, draining)
    }

    /// `step` applied: the new health and the services as now written.
    pub fn applied(&mut self, health: Vec<Vec<Health>>, step: Step) {
        self.health = health;
        for s in step.desired {
            self.table.insert(s.id, s);
        }
    }

    /// The step from here to a reloaded config `cfg` with `health`, no
    /// drains, deleting `dropped`: the services whose wanted form differs
    /// from the record (added, or changed by the reload or by health) and
    /// the services deleted, as recorded. A reload used to read the
    /// kernel's whole table: one netlink dump per service, which took
    /// 2-5 s at 1,000 services in the lab VM and 36-48 s when the VM was
    /// starved of CPU (docs/benchmarks.md, run (o)), for a change of one
    /// service; keepalived's reload compares the two configurations too.
    /// What someone changed by hand meanwhile is repaired by the sweep of
    /// the whole table the caller runs right after the step (the reload's
    /// own change waits for no read). `None` when the kernel must be read:
    /// a drain in the record (the kernel may hold servers a reload removed),
    /// a health list of another shape than `cfg`'s, a recorded service the
    /// new config neither has nor deletes, or one it deletes that the
    /// record lacks.
    pub fn reload_step(
        &self,
        cfg: &DirectorConfig,
        health: &[Vec<Health>],
        dropped: &[ServiceId],
    ) -> Option<Step> {
        if !self.draining.is_empty() || health.len() != cfg.services.len() {
            return None;
        }
        let mut step = Step::default();
        let mut kept = std::collections::HashSet::with_capacity(cfg.services.len());
        for (i, s) in cfg.services.iter().enumerate() {
            if health[i].len() != s.real_servers.len() {
                return None;
            }
            let id = service_id(cfg, s);
            kept.insert(id);
            let have = self.table.get(&id);
            let want = desired_service(cfg, i, &|i, j| health[i][j], have);
            if have != Some(&want) {
                step.desired.push(want);
                step.known.extend(have.cloned());
            }
        }
        for (id, s) in &self.table {
            if !kept.contains(id) {
                if !dropped.contains(id) {
                    return None;
                }
                step.known.push(s.clone());
            }
        }
        if dropped
            .iter()
            .any(|id| !kept.contains(id) && !self.table.contains_key(id))
        {
            return None;
        }
        Some(step)
    }

    /// A [`Applied::reload_step`] carried out: the record is of `cfg` and
    /// `health` now, without the services it deleted.
    pub fn reloaded(
        &mut self,
        cfg: std::sync::Arc<DirectorConfig>,
        health: Vec<Vec<Health>>,
        step: Step,
    ) {
        let kept: std::collections::HashSet<ServiceId> =
            cfg.services.iter().map(|s| service_id(&cfg, s)).collect();
        self.table.retain(|id, _| kept.contains(id));
        self.cfg = cfg;
        self.draining = Vec::new();
        self.applied(health, step);
    }
}

/// The weights written once `step` is carried out: those of its services
/// as they were replaced by those as wanted (a destination or a service it
/// deletes leaves none).
pub fn written_after(written: &mut BTreeMap<(ServiceId, SocketAddr), u32>, step: &Step) {
    for s in &step.known {
        for d in &s.destinations {
            written.remove(&(s.id, d.socket_addr()));
        }
    }
    written.extend(weights(&step.desired));
}

/// The step from `old` to `new` health under `cfg`, from `table` (the
/// services as written): the services whose health changed, as wanted and
/// as written. `None` when the two do not have the same services, or
/// `table` lacks a changed one (then the kernel must be read).
fn step_between(
    cfg: &DirectorConfig,
    table: &BTreeMap<ServiceId, Service>,
    old: &[Vec<Health>],
    new: &[Vec<Health>],
    draining: &[Draining],
) -> Option<Step> {
    if old.len() != new.len() {
        return None;
    }
    let mut step = Step::default();
    for (i, (o, n)) in old.iter().zip(new).enumerate() {
        if o == n {
            continue;
        }
        let id = service_id(cfg, &cfg.services[i]);
        // a service the last reconcile wrote is always there
        let have = table.get(&id)?;
        step.desired
            .push(desired_service(cfg, i, &|i, j| new[i][j], Some(have)));
        step.known.push(have.clone());
    }
    keep_draining(&mut step.desired, draining, &step.known);
    Some(step)
}

/// A whole-table reconcile carried out one kernel service at a time: feed
/// it each service the kernel has ([`Sweep::kernel_service`], in any order),
/// then [`Sweep::finish`]. It computes what [`desired_services`],
/// [`keep_draining`], [`foreign_weights`] and [`crate::ipvs::reconcile`]
/// compute over whole tables, but holds one kernel service at a time: at
/// 1,000 services × 10 the whole kernel table (10,000 destinations with
/// their counters, ~140 bytes each), the whole desired one and the
/// comparison's indexes were megabytes of scratch for as long as the
/// reconcile ran (seconds under the lab VM), every 30 s. The record it
/// keeps (`table`: the managed services as written) is the last one's,
/// changed only where a service changed.
#[derive(Debug)]
pub struct Sweep<'a> {
    cfg: &'a DirectorConfig,
    /// The health compared against: the input's, then the newest one a
    /// [`Sweep::health_change`] brought.
    health: std::borrow::Cow<'a, [Vec<Health>]>,
    draining: &'a [Draining],
    dropped: &'a [ServiceId],
    written: &'a BTreeMap<(ServiceId, SocketAddr), u32>,
    /// config service index by id
    index: std::collections::HashMap<ServiceId, usize>,
    /// whether the kernel had config service `i`
    seen: Vec<bool>,
    table: BTreeMap<ServiceId, Service>,
    /// services whose record changes, put in `table` by `finish` (an
    /// abandoned sweep leaves the record as it was)
    changed: Vec<Service>,
    out: SweepOutcome,
}

/// What a [`Sweep`] found.
#[derive(Debug, Default)]
pub struct SweepOutcome {
    /// The operations that bring the kernel to config × health.
    pub ops: Vec<crate::ipvs::Op>,
    /// Weights someone changed behind the daemon's back (restored by `ops`).
    pub foreign: Vec<ForeignWeight>,
    /// The changes to the weights written, once `ops` are applied: `None`
    /// deletes the entry.
    pub written: Vec<((ServiceId, SocketAddr), Option<u32>)>,
    /// The managed services as written once `ops` are applied (for
    /// [`Applied::table`]).
    pub table: BTreeMap<ServiceId, Service>,
}

impl<'a> Sweep<'a> {
    /// `written`: the weights the last successful reconcile left; `table`:
    /// the last record's table to update (empty without one).
    pub fn new(
        cfg: &'a DirectorConfig,
        health: &'a [Vec<Health>],
        draining: &'a [Draining],
        dropped: &'a [ServiceId],
        written: &'a BTreeMap<(ServiceId, SocketAddr), u32>,
        table: BTreeMap<ServiceId, Service>,
    ) -> Sweep<'a> {
        let index = (cfg.services.iter().enumerate())
            .map(|(i, s)| (service_id(cfg, s), i))
            .collect();
        Sweep {
            cfg,
            health: std::borrow::Cow::Borrowed(health),
            draining,
            dropped,
            written,
            index,
            seen: vec![false; cfg.services.len()],
            table,
            changed: Vec::new(),
            out: SweepOutcome::default(),
        }
    }

    /// One service of the kernel's table, with its destinations.
    pub fn kernel_service(&mut self, k: &Service) {
        match self.index.get(&k.id) {
            Some(&i) => {
                if let Some(seen) = self.seen.get_mut(i) {
                    *seen = true;
                }
                self.configured(i, Some(k));
            }
            // a service a reload removed: ours to delete
            None if self.dropped.contains(&k.id) => {
                self.out
                    .ops
                    .push(crate::ipvs::Op::DeleteService { id: k.id });
            }
            // someone else's: left alone
            None => {}
        }
    }

    /// Config service `i` against the kernel's `have`.
    fn configured(&mut self, i: usize, have: Option<&Service>) {
        let health = &self.health;
        let mut want = desired_service(self.cfg, i, &|i, j| health[i][j], have);
        let kernel = have.map(std::slice::from_ref).unwrap_or_default();
        keep_draining(std::slice::from_mut(&mut want), self.draining, kernel);
        let want = std::slice::from_ref(&want);
        self.out
            .foreign
            .extend(foreign_weights(kernel, self.written, want));
        let plan = crate::ipvs::reconcile(
            want,
            kernel,
            &crate::ipvs::ReconcileOptions {
                prune: false,
                drain: false,
            },
        );
        self.out.ops.extend(plan.ops);
        let [want] = want else { return };
        // the weights written for this service, against what it will have
        let id = want.id;
        let lo = SocketAddr::from(([0, 0, 0, 0], 0));
        let before = self
            .written
            .range((id, lo)..)
            .take_while(|((s, _), _)| *s == id);
        for (&key, _) in before {
            if !want.destinations.iter().any(|d| d.socket_addr() == key.1) {
                self.out.written.push((key, None));
            }
        }
        for d in &want.destinations {
            let key = (id, d.socket_addr());
            if self.written.get(&key) != Some(&d.weight) {
                self.out.written.push((key, Some(d.weight)));
            }
        }
        if self.table.get(&id) != Some(want) {
            self.changed.push(want.clone());
        }
    }

    /// A change of health while the sweep runs (same config, drains and
    /// services to delete): the step to carry out at once, from the record,
    /// for the services whose health changed, so that it waits for no
    /// sweep (under load a sweep of 1,000 services took 25-42 s in the lab
    /// VM, and a real server's removal waited as long). The record takes
    /// the step's services as wanted (the caller carries the step out, or
    /// drops the record if it fails); what the sweep found for them so far
    /// is forgotten (it was against the old health: applied at the end it
    /// would undo the step; a difference of theirs from someone else waits
    /// for the next sweep); the services still to come are compared against
    /// `health` (an empty step when nothing changed). `None` when the record
    /// lacks a changed service: then nothing changed here, and the caller
    /// ends the sweep (the change reads the kernel).
    pub fn health_change(&mut self, health: Vec<Vec<Health>>) -> Option<Step> {
        let step = step_between(self.cfg, &self.table, &self.health, &health, self.draining)?;
        // one pass over each list, not one per changed service
        let ids: std::collections::HashSet<ServiceId> = step.desired.iter().map(|s| s.id).collect();
        self.out.ops.retain(|op| !ids.contains(&op.service()));
        self.out.foreign.retain(|f| !ids.contains(&f.service));
        self.out.written.retain(|(key, _)| !ids.contains(&key.0));
        self.changed.retain(|c| !ids.contains(&c.id));
        for s in &step.desired {
            self.table.insert(s.id, s.clone());
        }
        self.health = std::borrow::Cow::Owned(health);
        Some(step)
    }

    /// The health the sweep compares against now.
    pub fn health(&self) -> &[Vec<Health>] {
        &self.health
    }

    /// The sweep given up before its end (nothing it found applied): the
    /// record it was given, with the services of the health changes carried
    /// out meanwhile as they were written.
    pub fn abandon(self) -> BTreeMap<ServiceId, Service> {
        self.table
    }

    /// After the kernel's last service: the config's services it lacks, and
    /// what no longer belongs to the record.
    pub fn finish(mut self) -> SweepOutcome {
        for i in 0..self.seen.len() {
            if !self.seen[i] {
                self.configured(i, None);
            }
        }
        for s in std::mem::take(&mut self.changed) {
            self.table.insert(s.id, s);
        }
        let index = &self.index;
        self.table.retain(|id, _| index.contains_key(id));
        for &key in self.written.keys() {
            if !index.contains_key(&key.0) {
                self.out.written.push((key, None));
            }
        }
        self.out.table = self.table;
        self.out
    }
}

/// A draining destination as the driver passes it to the reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Draining {
    pub service: ServiceId,
    pub addr: SocketAddr,
    pub forward: CfgForward,
}

/// Keep the draining destinations the kernel still has in `desired`, at
/// weight 0 (one the kernel no longer has is not added back).
pub fn keep_draining(desired: &mut [Service], draining: &[Draining], kernel: &[Service]) {
    for d in draining {
        let in_kernel = kernel
            .iter()
            .filter(|k| k.id == d.service)
            .flat_map(|k| &k.destinations)
            .any(|k| k.socket_addr() == d.addr);
        if !in_kernel {
            continue;
        }
        if let Some(s) = desired.iter_mut().find(|s| s.id == d.service)
            && !s.destinations.iter().any(|x| x.socket_addr() == d.addr)
        {
            s.destinations
                .push(Destination::new(d.addr, forward(d.forward), 0));
        }
    }
}

/// A weight someone changed in the kernel behind the daemon's back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignWeight {
    pub service: ServiceId,
    pub addr: SocketAddr,
    /// What the daemon had set.
    pub ours: u32,
    /// What the kernel has now.
    pub found: u32,
    /// What the reconcile restores.
    pub restore: u32,
}

/// The weights the daemon last set (`written`: from its last successful
/// reconcile) that the kernel no longer has, where `desired` puts them back:
/// an operator's `ipvsadm -e -w`, undone and to be logged as such.
pub fn foreign_weights(
    kernel: &[Service],
    written: &BTreeMap<(ServiceId, SocketAddr), u32>,
    desired: &[Service],
) -> Vec<ForeignWeight> {
    // indexed: a scan of `desired` per kernel destination was 10 million
    // comparisons at 1,000 services × 10
    let want = weights(desired);
    let mut out = Vec::new();
    for k in kernel {
        for d in &k.destinations {
            let addr = d.socket_addr();
            let Some(&ours) = written.get(&(k.id, addr)) else {
                continue;
            };
            if d.weight != ours
                && let Some(&restore) = want.get(&(k.id, addr))
                && restore != d.weight
            {
                out.push(ForeignWeight {
                    service: k.id,
                    addr,
                    ours,
                    found: d.weight,
                    restore,
                });
            }
        }
    }
    out
}

/// The weights of `desired`, as the daemon writes them.
pub fn weights(desired: &[Service]) -> BTreeMap<(ServiceId, SocketAddr), u32> {
    desired
        .iter()
        .flat_map(|s| {
            s.destinations
                .iter()
                .map(move |d| ((s.id, d.socket_addr()), d.weight))
        })
        .collect()
}

/// The `IPVS_CMD_SET_CONFIG` that brings the kernel's timeouts to the
/// configured ones: only the keys that are configured and differ (0 = leave
/// unchanged); `None` when the kernel already has them.
pub fn timeouts_to_set(want: &IpvsTimeouts, kernel: Timeouts) -> Option<Timeouts> {
    let (tcp, fin, udp) = want.secs();
    let pick = |w: u32, k: u32| if w != 0 && w != k { w } else { 0 };
    let t = Timeouts {
        tcp: pick(tcp, kernel.tcp),
        tcp_fin: pick(fin, kernel.tcp_fin),
        udp: pick(udp, kernel.udp),
    };
    (t != Timeouts::default()).then_some(t)
}

/// The services still to delete, `pending`, with a reconcile's `dropped`
/// added; those `cfg` has again are kept (no longer deleted).
pub fn keep_dropped(pending: &mut Vec<ServiceId>, dropped: Vec<ServiceId>, cfg: &DirectorConfig) {
    for id in dropped {
        if !pending.contains(&id) {
            pending.push(id);
        }
    }
    pending.retain(|id| !cfg.services.iter().any(|s| service_id(cfg, s) == *id));
}

/// Services of `old` that `new` no longer has: the daemon created them, so a
/// reload deletes them. (Services that were never in any of our configs are
/// left alone.)
pub fn dropped_services(old: &DirectorConfig, new: &DirectorConfig) -> Vec<ServiceId> {
    let keep: Vec<ServiceId> = new.services.iter().map(|s| service_id(new, s)).collect();
    old.services
        .iter()
        .map(|s| service_id(old, s))
        .filter(|id| !keep.contains(id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::director_config::DirectorConfig;

    fn cfg() -> DirectorConfig {
        crate::contract::director_config::test_config(
            r#"
[[services]]
protocol = "tcp"
port = 80
scheduler = "rr"
persistence = "50s"
[services.health]
check = "tcp"
interval = "2s"
timeout = "1s"
fall = 3
rise = 2
[[services.real_servers]]
name = "n1"
address = "192.0.2.11"
port = 80
weight = 100
forward = "route"
[[services.real_servers]]
name = "n2"
address = "192.0.2.12"
port = 80
weight = 5
forward = "route"
"#,
        )
    }

    #[test]
    fn health_to_weight() {
        assert_eq!(effective_weight(Health::Up, 100, None), 100);
        assert_eq!(effective_weight(Health::Up, 100, Some(0)), 100);
        assert_eq!(effective_weight(Health::Down, 100, Some(100)), 0);
        // Unknown: keep what the kernel has (daemon restart), new → 0.
        assert_eq!(effective_weight(Health::Unknown, 100, Some(100)), 100);
        assert_eq!(effective_weight(Health::Unknown, 100, None), 0);
        // Configured 0 (quiesced) stays 0 when up.
        assert_eq!(effective_weight(Health::Up, 0, None), 0);
    }

    #[test]
    fn all_down_keeps_the_service_with_zero_weights() {
        let c = cfg();
        let t = desired_services(&c, |_, _| Health::Down, &[]);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].scheduler, "rr");
        assert_eq!(t[0].persistence, Some(50));
        assert_eq!(t[0].destinations.len(), 2);
        assert!(t[0].destinations.iter().all(|d| d.weight == 0));
        assert!(t[0].destinations.iter().all(|d| d.fwd == Forward::Route));
    }

    #[test]
    fn mixed_health_and_unknown_uses_kernel_weight() {
        let c = cfg();
        let kernel =
            vec![
                Service::new(service_id(&c, &c.services[0]), "rr").with_destination(
                    Destination::new("192.0.2.12:80".parse().expect("addr"), Forward::Route, 5),
                ),
            ];
        let t = desired_services(
            &c,
            |_, j| if j == 0 { Health::Up } else { Health::Unknown },
            &kernel,
        );
        let w: Vec<u32> = t[0].destinations.iter().map(|d| d.weight).collect();
        assert_eq!(w, vec![100, 5]);
        // Reconciling that against the kernel only adds n1.
        let plan = crate::ipvs::reconcile(&t, &kernel, &Default::default());
        assert_eq!(plan.ops.len(), 2, "{:?}", plan.ops); // edit service (persistence) + add n1
    }

    #[test]
    fn a_down_server_is_drained_not_deleted() {
        let c = cfg();
        let up = desired_services(&c, |_, _| Health::Up, &[]);
        let down = desired_services(
            &c,
            |_, j| if j == 1 { Health::Down } else { Health::Up },
            &[],
        );
        let plan = crate::ipvs::reconcile(&down, &up, &Default::default());
        assert_eq!(plan.ops.len(), 1);
        match &plan.ops[0] {
            crate::ipvs::Op::EditDestination { dest, .. } => {
                assert_eq!(dest.weight, 0);
                assert_eq!(dest.port, 80);
            }
            op => panic!("unexpected {op}"),
        }
    }

    #[test]
    fn drain_true_is_weight_zero_whatever_the_health() {
        let mut c = cfg();
        c.services[0].real_servers[0].drain = true;
        let t = desired_services(&c, |_, _| Health::Up, &[]);
        let w: Vec<u32> = t[0].destinations.iter().map(|d| d.weight).collect();
        assert_eq!(w, vec![0, 5]);
    }

    fn removed_n3() -> (Vec<Service>, Draining) {
        let c = cfg();
        let id = service_id(&c, &c.services[0]);
        let mut n3 = Destination::new("192.0.2.13:80".parse().expect("addr"), Forward::Route, 100);
        n3.active_conns = 2;
        n3.inact_conns = 7;
        let kernel = vec![
            desired_services(&c, |_, _| Health::Up, &[])[0]
                .clone()
                .with_destination(n3),
        ];
        let d = Draining {
            service: id,
            addr: "192.0.2.13:80".parse().expect("addr"),
            forward: CfgForward::Route,
        };
        (kernel, d)
    }

    #[test]
    fn a_draining_server_stays_at_weight_zero_then_goes() {
        let c = cfg();
        let (kernel, d) = removed_n3();
        let mut want = desired_services(&c, |_, _| Health::Up, &kernel);
        keep_draining(&mut want, &[d], &kernel);
        let plan = crate::ipvs::reconcile(&want, &kernel, &Default::default());
        assert!(
            matches!(&plan.ops[..], [crate::ipvs::Op::EditDestination { dest, .. }] if dest.weight == 0 && dest.port == 80),
            "{:?}",
            plan.ops
        );
        // The drain over (not passed any more): deleted.
        let want = desired_services(&c, |_, _| Health::Up, &kernel);
        let plan = crate::ipvs::reconcile(&want, &kernel, &Default::default());
        assert!(matches!(
            &plan.ops[..],
            [crate::ipvs::Op::DeleteDestination { .. }]
        ));
        // Counters read for the core; gone from the kernel: None, never re-added.
        let conns = crate::director::core::drain::drain_counters(&[d], &kernel);
        assert_eq!(
            conns[0].conns,
            Some(crate::director::core::drain::Conns {
                active: 2,
                inactive: 7
            })
        );
        let empty = desired_services(&c, |_, _| Health::Up, &[]);
        assert_eq!(
            crate::director::core::drain::drain_counters(&[d], &empty)[0].conns,
            None
        );
        let mut want = empty.clone();
        keep_draining(&mut want, &[d], &empty);
        assert_eq!(want, empty);
    }

    #[test]
    fn a_weight_changed_by_hand_is_reported_when_restored() {
        let c = cfg();
        let want = desired_services(&c, |_, _| Health::Up, &[]);
        let written = weights(&want);
        let mut kernel = want.clone();
        // ipvsadm -e -t VIP:80 -r 192.0.2.12:80 -w 0
        kernel[0].destinations[1].weight = 0;
        let f = foreign_weights(&kernel, &written, &want);
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].ours, f[0].found, f[0].restore), (5, 0, 5));
        // Our own change (health went down since) is not foreign.
        let down = desired_services(
            &c,
            |_, j| if j == 1 { Health::Down } else { Health::Up },
            &[],
        );
        assert!(foreign_weights(&want, &written, &down).is_empty());
        // Nothing written yet (daemon just started): nothing to say.
        assert!(foreign_weights(&kernel, &BTreeMap::new(), &want).is_empty());
    }

    #[test]
    fn timeouts_set_only_what_is_configured_and_differs() {
        use std::time::Duration;
        let kernel = Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300,
        };
        let want = IpvsTimeouts {
            tcp: Some(Duration::from_secs(3600)),
            tcpfin: Some(Duration::from_secs(120)),
            udp: None,
        };
        assert_eq!(
            timeouts_to_set(&want, kernel),
            Some(Timeouts {
                tcp: 3600,
                tcp_fin: 0,
                udp: 0
            })
        );
        let same = IpvsTimeouts {
            tcp: Some(Duration::from_secs(900)),
            ..Default::default()
        };
        assert_eq!(timeouts_to_set(&same, kernel), None);
        assert_eq!(timeouts_to_set(&IpvsTimeouts::default(), kernel), None);
    }

    fn with_sorry() -> DirectorConfig {
        let mut c = cfg();
        c.services[0].sorry_server = Some(crate::contract::director_config::SorryConfig {
            address: "192.0.2.50".parse().expect("addr"),
            port: 80,
            forward: CfgForward::Route,
        });
        c
    }

    fn sorry_of(t: &[Service]) -> Option<&Destination> {
        t[0].destinations
            .iter()
            .find(|d| d.socket_addr() == "192.0.2.50:80".parse().expect("addr"))
    }

    #[test]
    fn sorry_policy() {
        use Health::*;
        // one server serving: out, whatever the kernel has
        assert!(!sorry_in_use([(Up, 100), (Down, 0)], true));
        assert!(!sorry_in_use([(Unknown, 5), (Down, 0)], true));
        // nobody can take a connection: in
        assert!(sorry_in_use([(Down, 0), (Down, 0)], false));
        // up but drained or weight 0: nobody takes new connections
        assert!(sorry_in_use([(Up, 0), (Down, 0)], false));
        // unknown health and nobody serving: as the kernel has it
        assert!(sorry_in_use([(Unknown, 0), (Down, 0)], true));
        assert!(!sorry_in_use([(Unknown, 0), (Down, 0)], false));
        // no real server at all
        assert!(sorry_in_use([], false));
    }

    #[test]
    fn sorry_server_goes_in_when_all_are_down_and_out_when_one_is_back() {
        let c = with_sorry();
        let up = desired_services(&c, |_, _| Health::Up, &[]);
        assert_eq!(sorry_of(&up), None);
        // both down: the sorry server at weight 1, the mode's method
        let down = desired_services(&c, |_, _| Health::Down, &up);
        let s = sorry_of(&down).expect("sorry server in use");
        assert_eq!((s.weight, s.fwd), (1, Forward::Route));
        assert!(down[0].destinations.iter().filter(|d| d.weight > 0).count() == 1);
        let plan = crate::ipvs::reconcile(&down, &up, &Default::default());
        assert!(
            plan.ops
                .iter()
                .any(|op| matches!(op, crate::ipvs::Op::AddDestination { dest, .. } if dest.port == 80 && dest.weight == 1)),
            "{:?}",
            plan.ops
        );
        // one back: the sorry server is deleted
        let one = desired_services(
            &c,
            |_, j| if j == 0 { Health::Up } else { Health::Down },
            &down,
        );
        assert_eq!(sorry_of(&one), None);
        let plan = crate::ipvs::reconcile(&one, &down, &Default::default());
        assert!(
            plan.ops
                .iter()
                .any(|op| matches!(op, crate::ipvs::Op::DeleteDestination { .. })),
            "{:?}",
            plan.ops
        );
        // both drained: no server takes new connections
        let mut drained = with_sorry();
        for r in &mut drained.services[0].real_servers {
            r.drain = true;
        }
        assert!(sorry_of(&desired_services(&drained, |_, _| Health::Up, &[])).is_some());
        // daemon restart (health unknown): kept as the kernel has it
        let restart = desired_services(&c, |_, _| Health::Unknown, &down);
        assert!(sorry_of(&restart).is_some());
        let restart = desired_services(&c, |_, _| Health::Unknown, &up);
        assert_eq!(sorry_of(&restart), None);
    }

    #[test]
    fn fwmark_service_with_persistence_netmask() {
        let mut c = cfg();
        c.services[0].fwmark = Some(5);
        c.services[0].port = 0;
        c.services[0].ports = vec![80, 443];
        c.services[0].persistence_netmask = Some(24);
        for r in &mut c.services[0].real_servers {
            r.port = 0;
        }
        let t = desired_services(&c, |_, _| Health::Up, &[]);
        assert_eq!(t[0].id, ServiceId::fwmark(5));
        assert_eq!((t[0].persistence, t[0].netmask), (Some(50), 24));
        assert!(t[0].destinations.iter().all(|d| d.port == 0));
        // what goes on the wire: FWMARK and NETMASK 255.255.255.0
        let attrs = t[0].to_attrs();
        assert!(attrs.contains(&crate::ipvs::ServiceAttr::Fwmark(5)));
        assert!(
            attrs.contains(&crate::ipvs::ServiceAttr::Netmask(u32::from_ne_bytes([
                255, 255, 255, 0
            ])))
        );
        // the old address service goes when a reload makes it a fwmark one
        assert_eq!(
            dropped_services(&cfg(), &c),
            vec![service_id(&cfg(), &cfg().services[0])]
        );
    }

    #[test]
    fn reload_drops_only_services_we_had() {
        let old = cfg();
        let mut new = cfg();
        new.services[0].port = 8080;
        let d = dropped_services(&old, &new);
        assert_eq!(d, vec![service_id(&old, &old.services[0])]);
        assert!(dropped_services(&old, &old).is_empty());
    }

    /// Two services (ports 80 and 443), each with n1 (weight 100) and n2 (5).
    fn two_services() -> std::sync::Arc<DirectorConfig> {
        let mut c = cfg();
        let mut s = c.services[0].clone();
        s.port = 443;
        c.services.push(s);
        std::sync::Arc::new(c)
    }

    fn all(h: Health) -> Vec<Vec<Health>> {
        vec![vec![h; 2]; 2]
    }

    #[test]
    fn a_health_change_touches_its_service_only_without_the_kernel() {
        let (c, up, table, mut a) = recorded();
        // n2 of the 443 service falls
        let mut h = up.clone();
        h[1][1] = Health::Down;
        let step = a.health_step(&c, &h, &[]).expect("same config");
        assert_eq!(step.known, vec![table[1].clone()]);
        assert_eq!(step.desired.len(), 1);
        let plan = crate::ipvs::reconcile(&step.desired, &step.known, &Default::default());
        assert!(
            matches!(&plan.ops[..], [crate::ipvs::Op::EditDestination { service, dest }]
                if *service == table[1].id && dest.weight == 0 && dest.port == 80),
            "{:?}",
            plan.ops
        );
        // the same step as a full reconcile would take from the kernel
        let full = crate::ipvs::reconcile(
            &desired_services(&c, |i, j| h[i][j], &table),
            &table,
            &Default::default(),
        );
        assert_eq!(full.ops, plan.ops);
        // applied: the next step starts from there; nothing changed → empty
        a.applied(h.clone(), step);
        assert_eq!(a.table[&table[1].id].destinations[1].weight, 0);
        let again = a.health_step(&c, &h, &[]).expect("same config");
        assert!(again.desired.is_empty() && again.known.is_empty());
        // back up: weight 5 again
        let step = a.health_step(&c, &up, &[]).expect("same config");
        assert_eq!(step.desired, vec![table[1].clone()]);
    }

    /// Two services, every real server up, as a whole-table reconcile
    /// writes and records them.
    fn recorded() -> (
        std::sync::Arc<DirectorConfig>,
        Vec<Vec<Health>>,
        Vec<Service>,
        Applied,
    ) {
        let c = two_services();
        let up = all(Health::Up);
        let table = desired_services(&c, |i, j| up[i][j], &[]);
        let a = Applied::new(c.clone(), up.clone(), Vec::new(), &table);
        (c, up, table, a)
    }

    #[test]
    fn a_reload_or_a_drain_change_reads_the_kernel() {
        let (c, up, table, a) = recorded();
        // the same content, but another config (a reload): the kernel is read
        let reloaded = std::sync::Arc::new((*c).clone());
        assert_eq!(a.health_step(&reloaded, &up, &[]), None);
        // a drain began or ended
        let d = Draining {
            service: table[0].id,
            addr: "192.0.2.13:80".parse().expect("addr"),
            forward: CfgForward::Route,
        };
        assert_eq!(a.health_step(&c, &up, &[d]), None);
    }

    #[test]
    fn a_draining_server_survives_a_health_step() {
        let c = two_services();
        let up = all(Health::Up);
        let d = Draining {
            service: service_id(&c, &c.services[0]),
            addr: "192.0.2.13:80".parse().expect("addr"),
            forward: CfgForward::Route,
        };
        let mut table = desired_services(&c, |i, j| up[i][j], &[]);
        table[0] = table[0]
            .clone()
            .with_destination(Destination::new(d.addr, Forward::Route, 0));
        let a = Applied::new(c.clone(), up.clone(), vec![d], &table);
        let mut h = up.clone();
        h[0][0] = Health::Down;
        let step = a.health_step(&c, &h, &[d]).expect("same drains");
        let plan = crate::ipvs::reconcile(&step.desired, &step.known, &Default::default());
        // n1 to weight 0; the draining n3 neither deleted nor touched
        assert!(
            matches!(&plan.ops[..], [crate::ipvs::Op::EditDestination { dest, .. }] if dest.weight == 0 && dest.addr == "192.0.2.11".parse::<std::net::IpAddr>().expect("ip")),
            "{:?}",
            plan.ops
        );
    }

    /// A reload carried out from the record decides what a reconcile of the
    /// whole kernel table decides (the kernel as the record has it): a
    /// service added (its real servers not checked yet: weight 0), one
    /// changed (scheduler, a real server added and one removed), one
    /// deleted, one untouched; then the record is the new config's, and the
    /// weights written follow.
    #[test]
    fn a_reload_from_the_record_is_what_reading_the_kernel_gives() {
        let mut c = (*two_services()).clone();
        let mut third = c.services[0].clone();
        third.port = 8080;
        c.services.push(third);
        let c = std::sync::Arc::new(c);
        let up = vec![vec![Health::Up; 2]; 3];
        let table = desired_services(&c, |i, j| up[i][j], &[]);
        let mut a = Applied::new(c.clone(), up.clone(), Vec::new(), &table);
        let mut written = weights(&table);
        // the reload: 443 on wlc, n2 out and n3 in; 8080 gone; 8443 new
        let mut n = (*c).clone();
        n.services[1].scheduler = "wlc".into();
        let mut n3 = n.services[1].real_servers[0].clone();
        n3.name = "n3".into();
        n3.address = "192.0.2.13".parse().expect("ip");
        n.services[1].real_servers[1] = n3;
        n.services[2].port = 8443;
        let n = std::sync::Arc::new(n);
        let dropped = dropped_services(&c, &n);
        let h = vec![
            vec![Health::Up; 2],
            vec![Health::Up, Health::Unknown],
            vec![Health::Unknown; 2],
        ];
        let step = a.reload_step(&n, &h, &dropped).expect("no drains");
        // the untouched service (80) is not in the step
        assert!(!step.desired.iter().any(|s| s.id == table[0].id));
        assert!(!step.known.iter().any(|s| s.id == table[0].id));
        let plan = crate::ipvs::reconcile(
            &step.desired,
            &step.known,
            &crate::ipvs::ReconcileOptions {
                prune: true,
                drain: false,
            },
        );
        let full = crate::ipvs::reconcile(
            &desired_services(&n, |i, j| h[i][j], &table),
            &table,
            &crate::ipvs::ReconcileOptions {
                prune: true,
                drain: false,
            },
        );
        assert_eq!(plan.ops, full.ops);
        let names: Vec<String> = plan.ops.iter().map(|o| o.to_string()).collect();
        assert!(
            names
                .iter()
                .any(|o| o.starts_with("edit service") && o.contains("wlc"))
                && names
                    .iter()
                    .any(|o| o.contains("delete destination 192.0.2.12:80"))
                && names
                    .iter()
                    .any(|o| o.contains("add destination 192.0.2.13:80") && o.contains("weight 0"))
                && names
                    .iter()
                    .any(|o| o.starts_with("add service") && o.contains(":8443"))
                && names
                    .last()
                    .is_some_and(|o| o.starts_with("delete service") && o.contains(":8080")),
            "{names:#?}"
        );
        // carried out: the record and the weights written are the new ones
        written_after(&mut written, &step);
        a.reloaded(n.clone(), h.clone(), step);
        let now = desired_services(&n, |i, j| h[i][j], &table);
        assert_eq!(
            a.table,
            Applied::new(n.clone(), h.clone(), Vec::new(), &now).table
        );
        assert_eq!(written, weights(&now));
        assert!(std::sync::Arc::ptr_eq(&a.cfg, &n) && a.health == h);
        // the same reload again: nothing to do
        let again = a.reload_step(&n, &h, &[]).expect("no drains");
        assert_eq!(again, Step::default());
    }

    /// Where the record cannot say what the kernel has, a reload reads it.
    #[test]
    fn a_reload_the_record_cannot_carry_reads_the_kernel() {
        let (c, up, table, a) = recorded();
        let mut n = (*c).clone();
        n.services.pop();
        let n = std::sync::Arc::new(n);
        let one = vec![up[0].clone()];
        let gone = vec![table[1].id];
        assert!(a.reload_step(&n, &one, &gone).is_some());
        // a service of ours the new config lacks and does not delete
        assert_eq!(a.reload_step(&n, &one, &[]), None);
        // a service to delete the record never wrote
        let stranger = ServiceId::tcp("192.0.2.100:9999".parse().expect("addr"));
        assert_eq!(a.reload_step(&n, &one, &[table[1].id, stranger]), None);
        // health of another shape than the config
        assert_eq!(a.reload_step(&n, &up, &gone), None);
        assert_eq!(a.reload_step(&n, &[vec![Health::Up]], &gone), None);
        // a drain in the record
        let mut draining = a.clone();
        draining.draining = vec![Draining {
            service: table[0].id,
            addr: "192.0.2.13:80".parse().expect("addr"),
            forward: CfgForward::Route,
        }];
        assert_eq!(draining.reload_step(&n, &one, &gone), None);
    }

    /// A reload's deleted service stays to delete through later inputs that
    /// drop nothing, and goes from the list when the config has it again.
    #[test]
    fn dropped_services_stay_until_the_config_has_them_again() {
        let c = two_services();
        let gone = ServiceId::tcp("192.0.2.100:8080".parse().expect("addr"));
        let mut pending = Vec::new();
        keep_dropped(&mut pending, vec![gone], &c);
        keep_dropped(&mut pending, Vec::new(), &c);
        keep_dropped(&mut pending, vec![gone], &c);
        assert_eq!(pending, vec![gone]);
        let back = service_id(&c, &c.services[1]);
        keep_dropped(&mut pending, vec![back], &c);
        assert_eq!(pending, vec![gone]);
    }
    /// A kernel table with something of everything a sweep meets: service 0
    /// with n1's weight changed by hand and the removed n3 still draining,
    /// service 1 missing, someone else's service, and one a reload dropped;
    /// health mixed, with one real server not checked yet.
    struct Messy {
        c: std::sync::Arc<DirectorConfig>,
        health: Vec<Vec<Health>>,
        draining: Vec<Draining>,
        dropped: Vec<ServiceId>,
        written: BTreeMap<(ServiceId, SocketAddr), u32>,
        kernel: Vec<Service>,
    }

    fn messy() -> Messy {
        let c = two_services();
        let health = vec![
            vec![Health::Up, Health::Unknown],
            vec![Health::Down, Health::Up],
        ];
        let mut zero = desired_services(&c, |_, _| Health::Up, &[]);
        let written = weights(&zero);
        let mut n3 = Destination::new("192.0.2.13:80".parse().expect("addr"), Forward::Route, 0);
        n3.active_conns = 3;
        zero[0].destinations[0].weight = 7;
        let n3_addr = n3.socket_addr();
        let s0 = zero[0].clone().with_destination(n3);
        let draining = vec![Draining {
            service: s0.id,
            addr: n3_addr,
            forward: CfgForward::Route,
        }];
        let theirs = Service::new(
            ServiceId::tcp("198.51.100.1:25".parse().expect("addr")),
            "rr",
        )
        .with_destination(Destination::new(
            "198.51.100.2:25".parse().expect("addr"),
            Forward::Route,
            1,
        ));
        let gone_id = ServiceId::tcp("192.0.2.100:9090".parse().expect("addr"));
        let gone = Service::new(gone_id, "rr").with_destination(Destination::new(
            "192.0.2.11:9090".parse().expect("addr"),
            Forward::Route,
            1,
        ));
        let mut written = written;
        written.insert((gone_id, "192.0.2.11:9090".parse().expect("addr")), 1);
        Messy {
            c,
            health,
            draining,
            dropped: vec![gone_id],
            written,
            kernel: vec![gone, s0, theirs],
        }
    }

    /// The sweep, fed the kernel's services one at a time and in any order,
    /// decides what the whole-table computation decides: the same
    /// operations, foreign weights, weights written and record.
    #[test]
    fn a_sweep_service_by_service_decides_what_the_whole_table_does() {
        let Messy {
            c,
            health,
            draining,
            dropped,
            written,
            kernel,
        } = messy();
        // the whole-table computation, as the reconcile did it before
        let mut desired = desired_services(&c, |i, j| health[i][j], &kernel);
        keep_draining(&mut desired, &draining, &kernel);
        let foreign = foreign_weights(&kernel, &written, &desired);
        let mut plan = crate::ipvs::reconcile(&desired, &kernel, &Default::default());
        for id in &dropped {
            if kernel.iter().any(|k| k.id == *id) {
                plan.ops.push(crate::ipvs::Op::DeleteService { id: *id });
            }
        }
        let sorted = |ops: &[crate::ipvs::Op]| {
            let mut v: Vec<String> = ops.iter().map(|o| format!("{o:?}")).collect();
            v.sort();
            v
        };
        for order in [[0, 1, 2], [2, 1, 0]] {
            let mut sweep = Sweep::new(&c, &health, &draining, &dropped, &written, BTreeMap::new());
            for k in order {
                sweep.kernel_service(&kernel[k]);
            }
            let out = sweep.finish();
            assert_eq!(sorted(&out.ops), sorted(&plan.ops), "{order:?}");
            assert_eq!(out.foreign, foreign);
            assert_eq!(out.foreign.len(), 1, "n1's weight 7 is someone else's");
            let mut w = written.clone();
            for (key, v) in out.written {
                match v {
                    Some(v) => w.insert(key, v),
                    None => w.remove(&key),
                };
            }
            assert_eq!(w, weights(&desired));
            let want: BTreeMap<ServiceId, Service> =
                desired.iter().map(|s| (s.id, s.clone())).collect();
            assert_eq!(out.table, want);
        }
        // the dropped service is deleted, someone else's left alone, the
        // missing one added, the draining n3 kept
        let ops = sorted(&plan.ops);
        assert!(
            ops.iter()
                .any(|o| o.starts_with("DeleteService") && o.contains("9090")),
            "{ops:?}"
        );
        assert!(!ops.iter().any(|o| o.contains("198.51.100")), "{ops:?}");
        assert!(
            ops.iter()
                .any(|o| o.starts_with("AddService") && o.contains("443")),
            "{ops:?}"
        );
        assert!(
            !ops.iter().any(|o| o.contains("DeleteDestination")),
            "{ops:?}"
        );
    }

    /// A sweep given up midway hands back the record it was given as it
    /// was, though the services it had seen would change it.
    #[test]
    fn an_abandoned_sweep_leaves_the_record_as_it_was() {
        let m = messy();
        let record: BTreeMap<ServiceId, Service> = desired_services(&m.c, |_, _| Health::Up, &[])
            .into_iter()
            .map(|s| (s.id, s))
            .collect();
        let s0 = &m.kernel[1];
        let sweep_of_s0 = || {
            let mut sweep = Sweep::new(
                &m.c,
                &m.health,
                &m.draining,
                &m.dropped,
                &m.written,
                record.clone(),
            );
            sweep.kernel_service(s0);
            sweep
        };
        let finished = sweep_of_s0().finish().table;
        assert_ne!(finished[&s0.id], record[&s0.id]);
        assert_eq!(sweep_of_s0().abandon(), record);
    }

    /// A kernel as the last sweep left it: nothing to do, no weight to
    /// write, and the record it had kept as it was.
    #[test]
    fn a_sweep_of_an_unchanged_table_changes_nothing() {
        let (c, up, table, a) = recorded();
        let written = weights(&table);
        let record = a.table;
        let mut sweep = Sweep::new(&c, &up, &[], &[], &written, record.clone());
        for k in &table {
            sweep.kernel_service(k);
        }
        let out = sweep.finish();
        assert!(out.ops.is_empty(), "{:?}", out.ops);
        assert!(out.written.is_empty(), "{:?}", out.written);
        assert!(out.foreign.is_empty());
        assert_eq!(out.table, record);
        // and a table emptied behind its back (ipvsadm -C) is rebuilt whole
        let out = Sweep::new(&c, &up, &[], &[], &written, record.clone()).finish();
        assert_eq!(out.ops.len(), 2 + 4, "{:?}", out.ops);
        assert!(out.written.is_empty());
        assert_eq!(out.table, record);
    }

    /// A health change while a sweep runs is carried out from the record
    /// at once; what the sweep found for its services before is forgotten
    /// (applied at the end it would undo the change), the services after
    /// it are compared against the new health, and at the end nothing the
    /// sweep applies goes back to the old health.
    #[test]
    fn a_health_change_during_a_sweep_is_stepped_and_never_undone() {
        let (c, up, table, a) = recorded();
        let written = weights(&table);
        let record = a.table;
        // someone set n2 of port 80 to 3: the sweep would restore its 5,
        // but n2 falls after the sweep saw port 80 (its restore, applied
        // at the end, would put the fallen n2 back at 5)
        let mut drifted = table[0].clone();
        drifted.destinations[1].weight = 3;
        let mut down = up.clone();
        down[0][1] = Health::Down; // n2 of port 80
        down[1][0] = Health::Down; // n1 of port 443
        let wanted = desired_services(&c, |i, j| down[i][j], &table);

        // port 80 seen, then the change, then port 443 read after the
        // step (as the kernel has it now) or before it (read ahead)
        for after_step in [true, false] {
            let mut sweep = Sweep::new(&c, &up, &[], &[], &written, record.clone());
            sweep.kernel_service(&drifted);
            let step = sweep.health_change(down.clone()).expect("a step");
            assert_eq!(step.known, table, "stepped from the record");
            assert_eq!(step.desired, wanted);
            assert_eq!(sweep.health(), &down[..]);
            let k443 = if after_step { &wanted[1] } else { &table[1] };
            sweep.kernel_service(k443);
            let out = sweep.finish();
            // no operation sets a weight other than the new health's
            for op in &out.ops {
                if let crate::ipvs::Op::EditDestination { service, dest } = op {
                    let want = weights(&wanted)[&(*service, dest.socket_addr())];
                    assert_eq!(dest.weight, want, "{op:?} ({after_step})");
                }
            }
            let edits_80 = out
                .ops
                .iter()
                .filter(|o| o.service() == table[0].id)
                .count();
            assert_eq!(edits_80, 0, "port 80's restore forgotten: {:?}", out.ops);
            assert!(out.foreign.iter().all(|f| f.service != table[0].id));
            assert_eq!(out.ops.is_empty(), after_step, "{:?}", out.ops);
            let want: BTreeMap<ServiceId, Service> =
                wanted.iter().map(|s| (s.id, s.clone())).collect();
            assert_eq!(out.table, want, "the record as written");
        }

        // nothing changed: an empty step; a record without the service: none
        // (the caller ends the sweep), and the sweep's health unchanged
        let mut sweep = Sweep::new(&c, &up, &[], &[], &written, record.clone());
        let step = sweep.health_change(up.clone()).expect("a step");
        assert!(step.desired.is_empty() && step.known.is_empty());
        let mut sweep = Sweep::new(&c, &up, &[], &[], &written, BTreeMap::new());
        assert!(sweep.health_change(down.clone()).is_none());
        assert_eq!(sweep.health(), &up[..]);
        // and an abandoned sweep hands back the record with the step in it
        let mut sweep = Sweep::new(&c, &up, &[], &[], &written, record.clone());
        sweep.kernel_service(&drifted);
        let step = sweep.health_change(down.clone()).expect("a step");
        let kept = sweep.abandon();
        for s in &step.desired {
            assert_eq!(kept[&s.id], *s);
        }
    }
}
