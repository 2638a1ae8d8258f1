//! The daemon's status document ([`Status`]) from the core's state (pure):
//! the driver adds only what its I/O knows ([`DriverStatus`]).

use std::time::{Instant, SystemTime};

use crate::contract::status::{
    self, ConfigStatus, DrainingStatus, HookRecord, IpvsStatus, RealServerStatus, ServiceStatus,
    SorryStatus, Status, TransitionRecord, VrrpCounters, VrrpStatus,
};
use crate::director::table;
use crate::health::damping::Health;

use super::Director;

/// What the driver knows and the core does not: the process, the file
/// path, wall-clock records, the counters of packets the codec dropped, the
/// hooks run and the IPVS side.
#[derive(Debug, Clone)]
pub struct DriverStatus {
    pub pid: u32,
    /// When the daemon started ([`status::timestamp`]).
    pub started_at: String,
    /// The config file's path.
    pub path: String,
    /// The driver's counters (bad packets); the core fills in the rest.
    pub counters: VrrpCounters,
    /// State changes and notes, with their wall-clock time.
    pub transitions: Vec<TransitionRecord>,
    pub hooks: Vec<HookRecord>,
    pub ipvs: IpvsStatus,
    /// The health checks' counters (the probe tasks and the main loop count
    /// them).
    pub checks: status::CheckCounters,
    /// The wall clock, read with the status's `now`: checks' monotonic
    /// times are shown as wall-clock times from it.
    pub wall: SystemTime,
}

impl Director {
    /// The status document at `now`.
    pub fn status(&self, now: Instant, io: DriverStatus) -> Status {
        let cfg = self.config();
        let loaded = self.loaded();
        let m = self.machine();
        let st = m.stats();
        let cc = self.counters();
        let wall = io.wall;
        let mut counters = io.counters;
        counters.adverts_received = st.adverts_received;
        counters.priority_zero_received = st.priority_zero_received;
        counters.adverts_discarded = st.adverts_discarded;
        counters.transitions = st.transitions;
        counters.other_vrid = cc.other_vrid;
        counters.unknown_peer = cc.unknown_peer;
        counters.interval_mismatch = cc.interval_mismatch;
        Status {
            schema: status::SCHEMA,
            version: env!("CARGO_PKG_VERSION").into(),
            pid: io.pid,
            cluster: cfg.cluster.clone(),
            director: cfg.director.clone(),
            started_at: io.started_at,
            config: ConfigStatus {
                path: io.path,
                sha256: loaded.sha256.clone(),
                loaded_at: status::timestamp(loaded.loaded_at),
                last_reload: self.last_reload().cloned(),
            },
            vrrp: VrrpStatus {
                state: m.state().to_string(),
                vrid: cfg.vrrp.vrid,
                priority: cfg.vrrp.priority,
                interface: self.ifaces.vrrp.clone(),
                vip: cfg.vip,
                addresses_held: self.held().iter().map(|f| f.net.to_string()).collect(),
                master: m.master(),
                advert_interval_ms: cfg.vrrp.advert_interval.as_millis() as u64,
                master_advert_interval_ms: u64::from(m.master_adver_interval()) * 10,
                preempt: cfg.vrrp.preempt,
                unicast: cfg.vrrp.unicast,
                peers: cfg.vrrp.peers.clone(),
                health_gate_open: m.health_gate_open(),
                transitions: io.transitions,
                counters,
                preempt_delay_ms: cfg.vrrp.preempt_delay.as_millis() as u64,
                preempt_delay_left_ms: m
                    .preempt_after()
                    .and_then(|t| t.checked_duration_since(now))
                    .map(|d| d.as_millis() as u64),
                hooks: io.hooks,
            },
            ipvs: io.ipvs,
            services: (0..cfg.services.len())
                .map(|i| self.service_status(i, now, wall))
                .collect(),
            checks: io.checks,
        }
    }

    fn service_status(&self, i: usize, now: Instant, wall: SystemTime) -> ServiceStatus {
        let cfg = self.config();
        let s = &cfg.services[i];
        let health = |j: usize| {
            self.real_server(i, j)
                .map_or(Health::Unknown, |x| x.damper.state)
        };
        let weight = |r: &crate::contract::director_config::RealServerConfig, h: Health| {
            if r.drain {
                0
            } else {
                table::effective_weight(h, r.weight, None)
            }
        };
        let id = table::service_id(cfg, s);
        ServiceStatus {
            name: cfg.service_name(s),
            fwmark: s.fwmark,
            ports: s.ports.clone(),
            // from the health here; `attach_kernel` reads the kernel's table
            sorry_server: s.sorry_server.as_ref().map(|ss| SorryStatus {
                address: ss.address,
                port: ss.port,
                in_use: table::sorry_in_use(
                    s.real_servers.iter().enumerate().map(|(j, r)| {
                        let h = health(j);
                        (h, weight(r, h))
                    }),
                    false,
                ),
            }),
            protocol: match s.protocol {
                crate::config::Protocol::Tcp => "tcp".into(),
                crate::config::Protocol::Udp => "udp".into(),
            },
            vip: cfg.service_vip(s),
            port: s.port,
            scheduler: s.scheduler.clone(),
            check: s.health.check.clone(),
            kernel: None,
            real_servers: s
                .real_servers
                .iter()
                .enumerate()
                .map(|(j, r)| {
                    let st = self.real_server(i, j);
                    let h = health(j);
                    RealServerStatus {
                        name: r.name.clone(),
                        address: r.address,
                        port: r.port,
                        health: h.to_string(),
                        weight: r.weight,
                        effective_weight: weight(r, h),
                        last_check: st.and_then(|x| x.last.as_ref().map(|c| c.record(now, wall))),
                        flips: st.map_or(0, |x| u64::from(x.flips)),
                        failed_checks: st.map_or(0, |x| u64::from(x.failed)),
                        kernel: None,
                        drain: r.drain,
                    }
                })
                .collect(),
            draining: self
                .draining()
                .iter()
                .filter(|d| d.service == id)
                .filter_map(|d| {
                    let std::net::SocketAddr::V4(a) = d.addr else {
                        return None;
                    };
                    Some(DrainingStatus {
                        name: d.name.clone(),
                        address: *a.ip(),
                        port: a.port(),
                        active_conns: d.conns.map(|c| c.active),
                        inact_conns: d.conns.map(|c| c.inactive),
                        left_ms: d.left(now).as_millis() as u64,
                    })
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::contract::director_config::{DirectorConfig, TWO_SERVERS};
    use crate::contract::status::ReconcileStatus;
    use crate::director::core::{Action, Event, Interfaces, Loaded};
    use crate::vrrp::packet::{Advert, VRRP_MULTICAST_V4};

    fn loaded(cfg: DirectorConfig, sha: &str) -> Loaded {
        Loaded {
            cfg: std::sync::Arc::new(cfg),
            sha256: sha.into(),
            loaded_at: SystemTime::UNIX_EPOCH,
        }
    }

    fn probe(d: &mut Director, now: Instant, rs: usize, ok: bool) {
        let record = super::super::health::Check {
            at: now,
            ok,
            detail: "d".into(),
            duration_ms: 1,
            inconclusive: false,
        };
        d.handle(now, Event::Probe { svc: 0, rs, record });
    }

    /// A director of `cfg` (config "sha-0") started now, no address found.
    fn started(cfg: &crate::contract::director_config::DirectorConfig) -> (Director, Instant) {
        let ifaces = Interfaces {
            vrrp: "eth0".into(),
            nat: None,
        };
        let mut d = Director::new(loaded(cfg.clone(), "sha-0"), ifaces);
        let t0 = Instant::now();
        d.handle(t0, Event::Start { found: Vec::new() });
        (d, t0)
    }

    /// Failed checks are counted per real server (status and metrics):
    /// a passed check and one the director could not run are not, and a
    /// reload that keeps the server keeps its count.
    #[test]
    fn failed_checks_are_counted_and_survive_a_reload() {
        let cfg = crate::contract::director_config::test_config(TWO_SERVERS);
        let (mut d, t0) = started(&cfg);
        for ok in [false, false, true] {
            probe(&mut d, t0, 1, ok);
        }
        probe(&mut d, t0, 0, true);
        let record = super::super::health::Check {
            at: t0,
            ok: false,
            detail: "no socket".into(),
            duration_ms: 0,
            inconclusive: true,
        };
        d.handle(
            t0,
            Event::Probe {
                svc: 0,
                rs: 1,
                record,
            },
        );
        let failed = |d: &Director| {
            d.status(t0, io()).services[0]
                .real_servers
                .iter()
                .map(|r| r.failed_checks)
                .collect::<Vec<_>>()
        };
        assert_eq!(failed(&d), [0, 2]);
        d.handle(
            t0,
            Event::Reload {
                at: "t".into(),
                result: Ok(Box::new(loaded(cfg, "sha-1"))),
            },
        );
        assert_eq!(failed(&d), [0, 2]);
    }

    /// Timeouts until Master, answering each address add.
    fn until_master(d: &mut Director) -> Instant {
        loop {
            let at = d.poll_timeout().expect("a timer");
            for a in d.handle(at, Event::Timeout) {
                if let Action::AddAddress(f) = a {
                    d.handle(
                        at,
                        Event::AddressAdded {
                            net: f.net,
                            ours: true,
                        },
                    );
                }
            }
            if d.machine().state() == crate::vrrp::machine::State::Master {
                return at;
            }
        }
    }

    fn io() -> DriverStatus {
        DriverStatus {
            pid: 42,
            started_at: "2026-12-02T11:00:00Z".into(),
            path: "/etc/lvsup/director.toml".into(),
            counters: VrrpCounters {
                bad_packets: BTreeMap::from([("ttl".to_string(), 3)]),
                ..VrrpCounters::default()
            },
            transitions: vec![TransitionRecord {
                at: "t".into(),
                from: "Initialize".into(),
                to: "Backup".into(),
                reason: "startup".into(),
            }],
            hooks: Vec::new(),
            checks: status::CheckCounters {
                completed: 5,
                skipped: 1,
            },
            ipvs: IpvsStatus {
                enabled: true,
                last_reconcile: Some(ReconcileStatus {
                    at: "t".into(),
                    trigger: "start".into(),
                    ok: true,
                    ops: 2,
                    error: None,
                }),
                sync_daemon: Some("master".into()),
                error: None,
                timeouts: None,
            },
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000),
        }
    }

    #[test]
    fn status_from_the_core_state_with_the_drivers_parts() {
        let cfg = crate::contract::director_config::test_config(TWO_SERVERS);
        let (mut d, t0) = started(&cfg);
        probe(&mut d, t0, 0, true);
        probe(&mut d, t0, 1, false);
        let other = Advert {
            vrid: 52,
            priority: 100,
            max_adver_int: 100,
            addresses: vec![cfg.vip],
        };
        let (src, dst) = ("192.0.2.2".parse().expect("ip"), VRRP_MULTICAST_V4);
        d.handle(
            t0,
            Event::Advert {
                src,
                dst,
                advert: other,
            },
        );
        let at = until_master(&mut d);
        // A reload removes n2: it drains for 60 s.
        let mut new = cfg.clone();
        new.drain_timeout = Duration::from_secs(60);
        new.services[0].real_servers.truncate(1);
        let reload = Event::Reload {
            at: "t".into(),
            result: Ok(Box::new(loaded(new, "sha-1"))),
        };
        d.handle(at, reload);

        let s = d.status(at + Duration::from_secs(10), io());
        // The driver's parts, as given.
        assert_eq!(
            (s.pid, s.config.path.as_str()),
            (42, "/etc/lvsup/director.toml")
        );
        assert_eq!(s.started_at, "2026-12-02T11:00:00Z");
        assert_eq!(s.vrrp.transitions.len(), 1);
        assert_eq!(s.ipvs.sync_daemon.as_deref(), Some("master"));
        assert_eq!(s.vrrp.counters.bad_packets.get("ttl"), Some(&3));
        // The core's.
        assert_eq!(s.config.sha256, "sha-1");
        assert!(s.config.last_reload.as_ref().is_some_and(|r| r.ok));
        assert_eq!(s.vrrp.state, "Master");
        assert_eq!(s.vrrp.interface, "eth0");
        assert_eq!(s.vrrp.addresses_held, ["192.0.2.100/32"]);
        assert!(s.vrrp.health_gate_open);
        assert_eq!(s.vrrp.counters.other_vrid, 1);
        let rs = &s.services[0].real_servers;
        assert_eq!(rs.len(), 1);
        assert_eq!((rs[0].health.as_str(), rs[0].effective_weight), ("up", 3));
        let draining = &s.services[0].draining;
        assert_eq!(draining.len(), 1);
        assert_eq!(
            (draining[0].name.as_str(), draining[0].left_ms),
            ("n2", 50_000)
        );
    }

    #[test]
    fn a_down_server_has_weight_zero() {
        let cfg = crate::contract::director_config::test_config(TWO_SERVERS);
        let (mut d, t0) = started(&cfg);
        probe(&mut d, t0, 1, false);
        let s = d.status(t0 + Duration::from_secs(7), io());
        assert_eq!(s.vrrp.state, "Backup");
        assert!(s.vrrp.addresses_held.is_empty());
        let rs = &s.services[0].real_servers;
        assert_eq!(
            (rs[0].health.as_str(), rs[0].effective_weight),
            ("unknown", 0)
        );
        assert_eq!((rs[1].health.as_str(), rs[1].effective_weight), ("down", 0));
        assert_eq!(rs[1].flips, 1);
        assert!(rs[1].last_check.as_ref().is_some_and(|c| !c.ok));
        // the check's monotonic time, 7 s before the status, as wall-clock
        // time 7 s before the status's wall clock
        let seven_before = status::timestamp(io().wall - Duration::from_secs(7));
        assert_eq!(
            rs[1].last_check.as_ref().map(|c| c.at.as_str()),
            Some(seven_before.as_str())
        );
    }
}
