//! `lvsup director status`: the daemon's [`Status`] from the core's state
//! and the driver's I/O counters.

use std::time::SystemTime;

use crate::contract::status::{
    self, ConfigStatus, DrainingStatus, IpvsStatus, RealServerStatus, ServiceStatus, SorryStatus,
    Status, TransitionRecord, VrrpStatus,
};
use crate::director::table;
use crate::health::damping::Health;
use crate::vrrp::packet::PacketError;

use super::Driver;

impl Driver {
    pub(super) fn status(&self) -> Status {
        let core = &self.core;
        let cfg = core.config();
        let loaded = core.loaded();
        let m = core.machine();
        let st = m.stats();
        let cc = core.counters();
        let mut counters = self.counters.clone();
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
            pid: std::process::id(),
            cluster: cfg.cluster.clone(),
            director: cfg.director.clone(),
            started_at: status::timestamp(self.started_at),
            config: ConfigStatus {
                path: self.path.display().to_string(),
                sha256: loaded.sha256.clone(),
                loaded_at: status::timestamp(loaded.loaded_at),
                last_reload: core.last_reload().cloned(),
            },
            vrrp: VrrpStatus {
                state: m.state().to_string(),
                vrid: cfg.vrrp.vrid,
                priority: cfg.vrrp.priority,
                interface: self.link.name.clone(),
                vip: cfg.vip,
                addresses_held: core.held().iter().map(|f| f.net.to_string()).collect(),
                master: m.master(),
                advert_interval_ms: cfg.vrrp.advert_interval.as_millis() as u64,
                master_advert_interval_ms: u64::from(m.master_adver_interval()) * 10,
                preempt: cfg.vrrp.preempt,
                unicast: cfg.vrrp.unicast,
                peers: cfg.vrrp.peers.clone(),
                health_gate_open: m.health_gate_open(),
                transitions: self.transitions.iter().cloned().collect(),
                counters,
                preempt_delay_ms: cfg.vrrp.preempt_delay.as_millis() as u64,
                preempt_delay_left_ms: m
                    .preempt_after()
                    .and_then(|t| t.checked_duration_since(std::time::Instant::now()))
                    .map(|d| d.as_millis() as u64),
                hooks: self
                    .hooks
                    .runs
                    .lock()
                    .map(|v| v.iter().cloned().collect())
                    .unwrap_or_default(),
            },
            ipvs: IpvsStatus {
                enabled: self.ipvs.is_some(),
                last_reconcile: self.recon_status.lock().ok().and_then(|s| s.clone()),
                sync_daemon: self.sync_state.lock().ok().and_then(|s| s.clone()),
                error: None,
                timeouts: None,
            },
            services: cfg
                .services
                .iter()
                .enumerate()
                .map(|(i, s)| ServiceStatus {
                    name: cfg.service_name(s),
                    fwmark: s.fwmark,
                    ports: s.ports.clone(),
                    // from the health here; `attach_kernel` reads the kernel's table
                    sorry_server: s.sorry_server.as_ref().map(|ss| SorryStatus {
                        address: ss.address,
                        port: ss.port,
                        in_use: table::sorry_in_use(
                            s.real_servers.iter().enumerate().map(|(j, r)| {
                                let h = core
                                    .real_server(i, j)
                                    .map_or(Health::Unknown, |x| x.damper.state);
                                let w = if r.drain {
                                    0
                                } else {
                                    table::effective_weight(h, r.weight, None)
                                };
                                (h, w)
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
                            let st = core.real_server(i, j);
                            let health = st.map_or(Health::Unknown, |x| x.damper.state);
                            RealServerStatus {
                                name: r.name.clone(),
                                address: r.address,
                                port: r.port,
                                health: health.to_string(),
                                weight: r.weight,
                                effective_weight: if r.drain {
                                    0
                                } else {
                                    table::effective_weight(health, r.weight, None)
                                },
                                last_check: st.and_then(|x| x.last.clone()),
                                flips: st.map_or(0, |x| x.flips),
                                kernel: None,
                                drain: r.drain,
                            }
                        })
                        .collect(),
                    draining: {
                        let id = table::service_id(cfg, s);
                        let now = std::time::Instant::now();
                        core.draining()
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
                            .collect()
                    },
                })
                .collect(),
        }
    }

    /// A state change or a note for status (the last [`status::MAX_TRANSITIONS`]).
    pub(super) fn record(&mut self, from: String, to: String, reason: String) {
        self.transitions.push_back(TransitionRecord {
            at: status::timestamp(SystemTime::now()),
            from,
            to,
            reason,
        });
        while self.transitions.len() > status::MAX_TRANSITIONS {
            self.transitions.pop_front();
        }
    }
}

pub(super) fn packet_error_key(e: &PacketError) -> &'static str {
    match e {
        PacketError::TooShort(_) => "too_short",
        PacketError::Vrrpv2 => "vrrpv2",
        PacketError::Version(_) => "version",
        PacketError::Type(_) => "type",
        PacketError::Length { .. } => "length",
        PacketError::Checksum { .. } => "checksum",
        PacketError::ZeroInterval => "zero_interval",
        PacketError::Ipv4TooShort(_)
        | PacketError::Ipv4Version(_)
        | PacketError::Ipv4HeaderLength(_)
        | PacketError::Ipv4TotalLength { .. }
        | PacketError::Ipv4Checksum => "ipv4_header",
        PacketError::Fragment => "fragment",
        PacketError::NotVrrp(_) => "not_vrrp",
        PacketError::Ttl(_) => "ttl",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_errors_have_short_keys() {
        assert_eq!(packet_error_key(&PacketError::Ttl(64)), "ttl");
        assert_eq!(packet_error_key(&PacketError::Vrrpv2), "vrrpv2");
        assert_eq!(
            packet_error_key(&PacketError::Checksum {
                found: 1,
                computed: 2
            }),
            "checksum"
        );
    }
}
