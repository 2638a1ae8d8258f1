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
//! - health unknown (daemon just started, no probe answered yet) → the weight
//!   the kernel already has for it, or 0 if it is new: a daemon restart does
//!   not drain servers that were serving, and a server nobody checked yet
//!   gets no traffic.

use std::net::SocketAddr;

use crate::config::{Forward as CfgForward, IpvsTimeouts, Protocol as CfgProtocol};
use crate::director::config::{DirectorConfig, ServiceConfig};
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
    ServiceId::Addr {
        protocol: protocol(s.protocol),
        addr: SocketAddr::from((cfg.vip, s.port)),
    }
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
    cfg.services
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let id = service_id(cfg, s);
            let have = kernel.iter().find(|k| k.id == id);
            let mut svc = Service::new(id, s.scheduler.clone());
            if let Some(p) = s.persistence {
                svc = svc.persistent(u32::try_from(p.as_secs()).unwrap_or(u32::MAX).max(1));
            }
            for (j, r) in s.real_servers.iter().enumerate() {
                let addr = SocketAddr::from((r.address, r.port));
                let in_kernel = have.and_then(|k| {
                    k.destinations
                        .iter()
                        .find(|d| d.socket_addr() == addr)
                        .map(|d| d.weight)
                });
                let w = effective_weight(health(i, j), r.weight, in_kernel);
                svc = svc.with_destination(Destination::new(addr, forward(r.forward), w));
            }
            svc
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
    use crate::director::config::DirectorConfig;

    fn cfg() -> DirectorConfig {
        DirectorConfig::parse(
            r#"
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
        .expect("config")
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

    #[test]
    fn reload_drops_only_services_we_had() {
        let old = cfg();
        let mut new = cfg();
        new.services[0].port = 8080;
        let d = dropped_services(&old, &new);
        assert_eq!(d, vec![service_id(&old, &old.services[0])]);
        assert!(dropped_services(&old, &old).is_empty());
    }
}
