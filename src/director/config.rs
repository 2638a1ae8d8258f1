//! `/etc/lvsup/<cluster>/director.toml`: everything one director's daemon
//! needs, resolved from the cluster file (defaults applied, this director's
//! priority and peers filled in). `apply` renders it from
//! `templates/director.toml.j2`; the daemon reads it back with
//! [`DirectorConfig::parse`]. A test keeps the two in step.

use std::net::Ipv4Addr;
use std::time::Duration;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::config::{Check, ClusterSpec, Director, Forward, Mode, Protocol};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorConfig {
    pub cluster: String,
    /// This director's name in the cluster file.
    pub director: String,
    pub mode: Mode,
    pub vip: Ipv4Addr,
    /// `None`: the interface whose subnet holds the VIP, found at start.
    #[serde(default)]
    pub interface: Option<String>,
    pub vrrp: VrrpConfig,
    #[serde(default)]
    pub nat: Option<NatConfig>,
    /// Prometheus metrics listener (`GET /metrics`), off when `None`.
    /// cluster.toml: `[cluster] metrics`.
    #[serde(default)]
    pub metrics: Option<std::net::SocketAddr>,
    pub services: Vec<ServiceConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VrrpConfig {
    pub vrid: u8,
    pub priority: u8,
    #[serde(with = "dur")]
    pub advert_interval: Duration,
    pub preempt: bool,
    /// This director's own address: the VRRP source.
    pub address: Ipv4Addr,
    /// The other directors' addresses (unicast peers, status).
    pub peers: Vec<Ipv4Addr>,
    /// Send adverts to each of `peers` instead of the multicast group
    /// 224.0.0.18 (clouds that drop multicast), and accept adverts only from
    /// `peers`. cluster.toml: `[cluster] vrrp_unicast`.
    #[serde(default)]
    pub unicast: bool,
    /// Run the kernel's IPVS connection-sync daemon (master on the active
    /// director, backup on the others, switched on every VRRP state change),
    /// so established connections survive a takeover. Sync id = the VRID.
    /// cluster.toml: `[cluster] sync_daemon`.
    #[serde(default)]
    pub sync_daemon: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatConfig {
    /// Floating gateway address, with its prefix, held next to the VIP.
    pub gateway: Ipv4Net,
    #[serde(default)]
    pub internal_interface: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub protocol: Protocol,
    pub port: u16,
    pub scheduler: String,
    #[serde(default, with = "opt_dur")]
    pub persistence: Option<Duration>,
    pub health: HealthConfig,
    pub real_servers: Vec<RealServerConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// "tcp" | "http" | "none"
    pub check: String,
    #[serde(with = "dur")]
    pub interval: Duration,
    #[serde(with = "dur")]
    pub timeout: Duration,
    pub fall: u32,
    pub rise: u32,
    /// Checked port, resolved: the real server's port unless set otherwise.
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub expect_status: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealServerConfig {
    pub name: String,
    pub address: Ipv4Addr,
    pub port: u16,
    pub weight: u32,
    pub forward: Forward,
}

impl DirectorConfig {
    /// The configuration of director `me` of `spec`.
    pub fn from_spec(spec: &ClusterSpec, me: &Director) -> DirectorConfig {
        let services = spec
            .services
            .iter()
            .map(|s| ServiceConfig {
                protocol: s.protocol,
                port: s.port,
                scheduler: s.scheduler.clone(),
                persistence: s.persistence,
                health: HealthConfig {
                    check: s.health.check.name().to_string(),
                    interval: s.health.interval,
                    timeout: s.health.timeout,
                    fall: s.health.fall,
                    rise: s.health.rise,
                    port: s.health.port,
                    path: match &s.health.check {
                        Check::Http { path, .. } => Some(path.clone()),
                        _ => None,
                    },
                    expect_status: match &s.health.check {
                        Check::Http { expect_status, .. } => Some(*expect_status),
                        _ => None,
                    },
                },
                real_servers: spec
                    .real_servers
                    .iter()
                    .map(|r| RealServerConfig {
                        name: r.name.clone(),
                        address: r.address.addr(),
                        port: r.port_for(s),
                        weight: r.weight,
                        forward: spec.mode.forward(),
                    })
                    .collect(),
            })
            .collect();
        DirectorConfig {
            cluster: spec.name.clone(),
            director: me.name.clone(),
            mode: spec.mode,
            vip: spec.vip,
            interface: spec.interface.clone(),
            vrrp: VrrpConfig {
                vrid: spec.vrid,
                priority: me.priority,
                advert_interval: spec.advert_interval,
                preempt: spec.preempt,
                address: me.address.addr(),
                peers: spec
                    .directors
                    .iter()
                    .filter(|d| d.name != me.name)
                    .map(|d| d.address.addr())
                    .collect(),
                unicast: spec.vrrp_unicast,
                sync_daemon: spec.sync_daemon,
            },
            metrics: spec.metrics,
            nat: spec.nat.as_ref().map(|n| NatConfig {
                gateway: n.gateway,
                internal_interface: n.internal_interface.clone(),
            }),
            services,
        }
    }

    /// Read a director.toml (as the daemon does at start and on SIGHUP).
    pub fn parse(text: &str) -> Result<DirectorConfig, toml::de::Error> {
        toml::from_str(text)
    }
}

/// Durations as `"2s"` / `"100ms"` strings.
mod dur {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::config::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

mod opt_dur {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&crate::config::format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}
