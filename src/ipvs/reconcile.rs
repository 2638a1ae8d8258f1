//! Desired table vs. kernel table → the minimal ordered list of IPVS operations.
//!
//! Pure: [`reconcile`] does no I/O; [`apply`] executes a plan through an [`IpvsClient`].
//!
//! Order of the plan, chosen so that traffic keeps a target throughout:
//! for each desired service (sorted by id): add or edit the service, then add
//! destinations, edit destinations, and finally remove (or drain) destinations;
//! services that are not desired come last (deleted only with `prune`).
//! Observed values (counters, stats, the kernel's `IP_VS_SVC_F_HASHED`) never cause a diff.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use serde::Serialize;

use super::batch::Request;
use super::client::{IpvsClient, IpvsError};
use super::constants::{IP_VS_SVC_F_HASHED, IP_VS_SVC_F_PERSISTENT};
use super::dest::{Destination, Forward};
use super::service::{Service, ServiceId};

/// Knobs of [`reconcile`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileOptions {
    /// Delete kernel services that are not in the desired table. Off: they are only
    /// reported in [`Plan::unowned`] and left alone.
    pub prune: bool,
    /// Drain a destination that is no longer desired (set its weight to 0 so that it
    /// takes no new connections and keeps the established ones) instead of deleting it.
    pub drain: bool,
}

/// One IPVS change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Add a service (without destinations: they follow as `AddDestination`).
    AddService {
        service: Service,
    },
    /// Change scheduler / persistence / netmask / flags / PE of a service in place.
    EditService {
        service: Service,
    },
    DeleteService {
        id: ServiceId,
    },
    AddDestination {
        service: ServiceId,
        dest: Destination,
    },
    /// Change weight / forwarding / thresholds / tunnel options in place.
    EditDestination {
        service: ServiceId,
        dest: Destination,
    },
    DeleteDestination {
        service: ServiceId,
        addr: SocketAddr,
    },
}

impl Op {
    /// The service it changes.
    pub fn service(&self) -> ServiceId {
        match self {
            Op::AddService { service } | Op::EditService { service } => service.id,
            Op::DeleteService { id } => *id,
            Op::AddDestination { service, .. }
            | Op::EditDestination { service, .. }
            | Op::DeleteDestination { service, .. } => *service,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::AddService { service } => {
                write!(f, "add service {} ({})", service.id, svc_summary(service))
            }
            Op::EditService { service } => {
                write!(f, "edit service {} ({})", service.id, svc_summary(service))
            }
            Op::DeleteService { id } => write!(f, "delete service {id}"),
            Op::AddDestination { service, dest } => {
                write!(
                    f,
                    "{service}: add destination {} ({})",
                    dest,
                    dest_summary(dest)
                )
            }
            Op::EditDestination { service, dest } => {
                write!(
                    f,
                    "{service}: edit destination {} ({})",
                    dest,
                    dest_summary(dest)
                )
            }
            Op::DeleteDestination { service, addr } => {
                write!(f, "{service}: delete destination {addr}")
            }
        }
    }
}

fn svc_summary(s: &Service) -> String {
    match s.persistence {
        Some(t) => format!("{}, persistent {t}s", s.scheduler),
        None => s.scheduler.clone(),
    }
}

fn dest_summary(d: &Destination) -> String {
    format!(
        "{}, weight {}",
        d.fwd.ipvsadm_name().to_lowercase(),
        d.weight
    )
}

/// Result of [`reconcile`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Operations in the order they must be applied.
    pub ops: Vec<Op>,
    /// Kernel services not in the desired table (left alone unless `prune`).
    pub unowned: Vec<ServiceId>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Service settings that can be changed in place and that we own.
fn service_differs(want: &Service, have: &Service) -> bool {
    let mask = !(IP_VS_SVC_F_HASHED | IP_VS_SVC_F_PERSISTENT);
    want.scheduler != have.scheduler
        || want.persistence != have.persistence
        // The netmask only matters for persistence; some tools leave it 0 otherwise.
        || (want.persistence.is_some() && want.netmask != have.netmask)
        || (want.flags & mask) != (have.flags & mask)
        || want.pe_name != have.pe_name
}

/// Destination settings that can be changed in place.
fn dest_differs(want: &Destination, have: &Destination) -> bool {
    want.fwd != have.fwd
        || want.weight != have.weight
        || want.u_thresh != have.u_thresh
        || want.l_thresh != have.l_thresh
        || (want.fwd == Forward::Tunnel && want.tunnel != have.tunnel)
}

/// Compute the operations that turn `kernel` into `desired`.
pub fn reconcile(desired: &[Service], kernel: &[Service], opts: &ReconcileOptions) -> Plan {
    let want: BTreeMap<ServiceId, &Service> = desired.iter().map(|s| (s.id, s)).collect();
    let have: BTreeMap<ServiceId, &Service> = kernel.iter().map(|s| (s.id, s)).collect();
    let mut plan = Plan::default();

    for (id, w) in &want {
        let wd: BTreeMap<SocketAddr, &Destination> = w
            .destinations
            .iter()
            .map(|d| (d.socket_addr(), d))
            .collect();
        let Some(h) = have.get(id) else {
            let mut svc = (*w).clone();
            svc.destinations.clear();
            svc.stats = None;
            plan.ops.push(Op::AddService { service: svc });
            for d in wd.values() {
                plan.ops.push(Op::AddDestination {
                    service: *id,
                    dest: clean_dest(d),
                });
            }
            continue;
        };
        if service_differs(w, h) {
            let mut svc = (*w).clone();
            svc.destinations.clear();
            svc.stats = None;
            plan.ops.push(Op::EditService { service: svc });
        }
        let hd: BTreeMap<SocketAddr, &Destination> = h
            .destinations
            .iter()
            .map(|d| (d.socket_addr(), d))
            .collect();
        let mut edits = Vec::new();
        for (addr, d) in &wd {
            match hd.get(addr) {
                None => plan.ops.push(Op::AddDestination {
                    service: *id,
                    dest: clean_dest(d),
                }),
                Some(k) if dest_differs(d, k) => edits.push(Op::EditDestination {
                    service: *id,
                    dest: clean_dest(d),
                }),
                Some(_) => {}
            }
        }
        plan.ops.extend(edits);
        for (addr, k) in &hd {
            if wd.contains_key(addr) {
                continue;
            }
            if opts.drain {
                if k.weight != 0 {
                    let mut d = clean_dest(k);
                    d.weight = 0;
                    plan.ops.push(Op::EditDestination {
                        service: *id,
                        dest: d,
                    });
                }
            } else {
                plan.ops.push(Op::DeleteDestination {
                    service: *id,
                    addr: *addr,
                });
            }
        }
    }

    for id in have.keys().filter(|id| !want.contains_key(id)) {
        plan.unowned.push(*id);
        if opts.prune {
            plan.ops.push(Op::DeleteService { id: *id });
        }
    }
    if opts.prune {
        plan.unowned.clear();
    }
    plan
}

/// A destination as it should be sent: observed counters cleared.
fn clean_dest(d: &Destination) -> Destination {
    let mut d = d.clone();
    d.active_conns = 0;
    d.inact_conns = 0;
    d.persist_conns = 0;
    d.stats = None;
    d
}

/// What [`apply_report`] did.
#[derive(Debug, Default)]
pub struct ApplyReport {
    /// Operations the kernel applied.
    pub applied: usize,
    /// Operations refused (or not attempted after a transport error or a failed phase).
    pub failed: usize,
    /// The first failure (it names the operation).
    pub error: Option<IpvsError>,
}

fn phase(op: &Op) -> u8 {
    match op {
        Op::AddService { .. } | Op::EditService { .. } => 0,
        Op::AddDestination { .. } | Op::EditDestination { .. } | Op::DeleteDestination { .. } => 1,
        Op::DeleteService { .. } => 2,
    }
}

/// The batch request for `op`.
pub fn request(op: &Op) -> Request<'_> {
    match op {
        Op::AddService { service } => Request::AddService(service),
        Op::EditService { service } => Request::EditService(service),
        Op::DeleteService { id } => Request::DeleteService(id),
        Op::AddDestination { service, dest } => Request::AddDestination(service, dest),
        Op::EditDestination { service, dest } => Request::EditDestination(service, dest),
        Op::DeleteDestination { service, addr } => Request::DeleteDestination(service, *addr),
    }
}

/// Execute `ops`; returns how many were applied, or the first failure (which names
/// the operation). See [`apply_report`] for the count when something fails.
pub async fn apply(client: &mut IpvsClient, ops: &[Op]) -> Result<usize, IpvsError> {
    let r = apply_report(client, ops).await;
    match r.error {
        Some(e) => Err(e),
        None => Ok(r.applied),
    }
}

/// Execute `ops` batched ([`IpvsClient::batch`]: hundreds of requests per datagram,
/// acks matched by sequence number), which is what makes a large table program
/// several times faster than `ipvsadm -R`, which pays a send and a receive per rule.
/// Order is kept where it matters, in three phases, each its own batch: services are
/// added and edited first, then destinations are changed, then services are deleted
/// (within a phase the kernel runs the requests in order). A failure stops the run
/// after its phase: the rest of that phase is still applied, later phases are not.
pub async fn apply_report(client: &mut IpvsClient, ops: &[Op]) -> ApplyReport {
    let mut report = ApplyReport::default();
    for p in 0..3 {
        let reqs: Vec<Request> = ops.iter().filter(|o| phase(o) == p).map(request).collect();
        if reqs.is_empty() {
            continue;
        }
        let out = client.batch(&reqs).await;
        report.applied += out.applied;
        report.failed += out.failed;
        if let Some((_, e)) = out.first_error {
            report.failed += ops.iter().filter(|o| phase(o) > p).count();
            report.error = Some(e);
            break;
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::dest::Forward;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }
    fn web() -> Service {
        Service::new(ServiceId::tcp(sa("10.0.0.1:80")), "rr")
            .with_destination(Destination::new(sa("10.0.0.2:80"), Forward::Route, 1))
            .with_destination(Destination::new(sa("10.0.0.3:80"), Forward::Route, 1))
    }
    /// What the kernel reports for `web()`: HASHED set, counters and stats filled in.
    fn kernel_view(s: &Service) -> Service {
        let mut k = s.clone();
        k.flags |= IP_VS_SVC_F_HASHED;
        k.stats = Some(Box::default());
        for d in &mut k.destinations {
            d.active_conns = 7;
            d.inact_conns = 3;
            d.stats = Some(Box::default());
        }
        k
    }
    fn plan(desired: &[Service], kernel: &[Service]) -> Plan {
        reconcile(desired, kernel, &ReconcileOptions::default())
    }

    #[test]
    fn equal_tables_need_nothing_even_with_hashed_flag() {
        // Symptom guarded: the kernel's IP_VS_SVC_F_HASHED made every run edit every service.
        let p = plan(&[web()], &[kernel_view(&web())]);
        assert!(p.is_empty(), "{:?}", p.ops);
        assert!(p.unowned.is_empty());
    }

    #[test]
    fn weight_change_is_one_destination_edit() {
        let mut want = web();
        want.destinations[1].weight = 5;
        let p = plan(&[want.clone()], &[kernel_view(&web())]);
        assert_eq!(
            p.ops,
            vec![Op::EditDestination {
                service: want.id,
                dest: want.destinations[1].clone()
            }]
        );
    }

    #[test]
    fn scheduler_change_is_one_service_edit() {
        let mut want = web();
        want.scheduler = "wlc".into();
        let p = plan(&[want.clone()], &[kernel_view(&web())]);
        assert_eq!(p.ops.len(), 1);
        match &p.ops[0] {
            Op::EditService { service } => {
                assert_eq!(service.scheduler, "wlc");
                assert!(service.destinations.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn persistence_toggle_is_one_service_edit_each_way() {
        let on = web().persistent(50);
        let p = plan(std::slice::from_ref(&on), &[kernel_view(&web())]);
        assert!(
            matches!(&p.ops[..], [Op::EditService { service }] if service.persistence == Some(50))
        );
        let p = plan(&[web()], &[kernel_view(&on)]);
        assert!(
            matches!(&p.ops[..], [Op::EditService { service }] if service.persistence.is_none())
        );
        let p = plan(&[web().persistent(300)], &[kernel_view(&on)]);
        assert_eq!(p.ops.len(), 1);
    }

    #[test]
    fn netmask_only_compared_when_persistent() {
        // Symptom guarded: a service created by another tool with netmask 0 and no
        // persistence was edited on every run.
        let mut k = kernel_view(&web());
        k.netmask = 0;
        assert!(plan(&[web()], &[k.clone()]).is_empty());
        k.persistence = Some(50);
        let p = plan(&[web().persistent(50)], &[k]);
        assert!(matches!(&p.ops[..], [Op::EditService { service }] if service.netmask == 32));
    }

    #[test]
    fn plan_serializes_to_json() {
        let p = plan(&[web()], &[]);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["ops"][0]["op"], "add_service");
        assert_eq!(v["ops"][0]["service"]["id"]["kind"], "addr");
        assert_eq!(v["ops"][0]["service"]["id"]["protocol"], "tcp");
        assert_eq!(v["ops"][0]["service"]["id"]["addr"], "10.0.0.1:80");
        assert_eq!(v["ops"][0]["service"]["scheduler"], "rr");
        assert_eq!(v["ops"][1]["dest"]["fwd"], "route");
        assert_eq!(v["ops"][1]["dest"]["addr"], "10.0.0.2");
        assert_eq!(v["ops"][1]["dest"]["port"], 80);
    }

    #[test]
    fn destination_add_and_remove() {
        let mut want = web();
        want.destinations.remove(0);
        want.destinations
            .push(Destination::new(sa("10.0.0.4:80"), Forward::Route, 1));
        let p = plan(&[want.clone()], &[kernel_view(&web())]);
        assert_eq!(
            p.ops,
            vec![
                Op::AddDestination {
                    service: want.id,
                    dest: want.destinations[1].clone()
                },
                Op::DeleteDestination {
                    service: want.id,
                    addr: sa("10.0.0.2:80")
                },
            ]
        );
    }

    #[test]
    fn drain_sets_weight_zero_instead_of_deleting_and_then_settles() {
        let mut want = web();
        want.destinations.remove(0);
        let opts = ReconcileOptions {
            drain: true,
            ..Default::default()
        };
        let p = reconcile(&[want.clone()], &[kernel_view(&web())], &opts);
        assert_eq!(p.ops.len(), 1);
        match &p.ops[0] {
            Op::EditDestination { dest, .. } => {
                assert_eq!(dest.socket_addr(), sa("10.0.0.2:80"));
                assert_eq!(dest.weight, 0);
                assert_eq!(dest.active_conns, 0);
            }
            other => panic!("unexpected {other:?}"),
        }
        // Once drained, nothing more to do.
        let mut k = kernel_view(&web());
        k.destinations[0].weight = 0;
        assert!(reconcile(&[want], &[k], &opts).is_empty());
    }

    #[test]
    fn unowned_services_are_reported_and_left_alone() {
        let other = Service::new(ServiceId::udp(sa("10.0.0.9:53")), "wrr");
        let p = plan(&[web()], &[kernel_view(&web()), other.clone()]);
        assert!(p.ops.is_empty());
        assert_eq!(p.unowned, vec![other.id]);
        let pruned = reconcile(
            &[web()],
            &[kernel_view(&web()), other.clone()],
            &ReconcileOptions {
                prune: true,
                ..Default::default()
            },
        );
        assert_eq!(pruned.ops, vec![Op::DeleteService { id: other.id }]);
        assert!(pruned.unowned.is_empty());
    }

    #[test]
    fn new_service_comes_with_its_destinations_in_order() {
        let p = plan(&[web()], &[]);
        assert_eq!(p.ops.len(), 3);
        assert!(matches!(&p.ops[0], Op::AddService { service } if service.destinations.is_empty()));
        assert!(
            matches!(&p.ops[1], Op::AddDestination { dest, .. } if dest.socket_addr() == sa("10.0.0.2:80"))
        );
        assert!(
            matches!(&p.ops[2], Op::AddDestination { dest, .. } if dest.socket_addr() == sa("10.0.0.3:80"))
        );
    }

    #[test]
    fn forwarding_and_threshold_changes_are_edits() {
        let mut want = web();
        want.destinations[0].fwd = Forward::Masq;
        want.destinations[1].u_thresh = 100;
        let p = plan(&[want], &[kernel_view(&web())]);
        assert_eq!(p.ops.len(), 2);
        assert!(
            p.ops
                .iter()
                .all(|o| matches!(o, Op::EditDestination { .. }))
        );
    }

    #[test]
    fn ops_describe_themselves() {
        let p = plan(&[web().persistent(50)], &[]);
        assert_eq!(
            p.ops[0].to_string(),
            "add service TCP 10.0.0.1:80 (rr, persistent 50s)"
        );
        assert_eq!(
            p.ops[1].to_string(),
            "TCP 10.0.0.1:80: add destination 10.0.0.2:80 (route, weight 1)"
        );
    }
}
