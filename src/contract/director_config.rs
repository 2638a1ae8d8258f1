//! `/etc/lvsup/<cluster>/director.toml`: everything one director's daemon
//! needs, resolved from the cluster file (defaults applied, this director's
//! priority and peers filled in). `apply` renders it from
//! `templates/director.toml.j2`; the daemon reads it back with
//! [`DirectorConfig::parse`]. A test keeps the two in step.

use std::net::Ipv4Addr;
use std::time::Duration;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::config::{Check, ClusterSpec, Director, Forward, IpvsTimeouts, Mode, Notify, Protocol};
use crate::health::damping::Damper;
use crate::vrrp::machine::MachineConfig;

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
    /// IPVS connection timeouts the daemon sets at start and reload (absent:
    /// the kernel's are left alone). cluster.toml: `[cluster] ipvs_timeouts`.
    #[serde(default)]
    pub ipvs_timeouts: Option<IpvsTimeouts>,
    /// How long a real server removed by a reload stays at weight 0 while
    /// its connections finish. cluster.toml: `[cluster] drain_timeout`.
    #[serde(default = "default_drain_timeout", with = "dur")]
    pub drain_timeout: Duration,
    /// Programs run on VRRP state changes (`director::hooks`).
    /// cluster.toml: `[cluster] notify`.
    #[serde(default, skip_serializing_if = "Notify::is_empty")]
    pub notify: Notify,
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
    /// How long after its start a Backup waits before preempting a
    /// lower-priority master. cluster.toml: `[cluster] preempt_delay`.
    #[serde(default, with = "dur")]
    pub preempt_delay: Duration,
    /// This director's own address: the VRRP source.
    pub address: Ipv4Addr,
    /// The other directors' addresses (unicast peers, status).
    pub peers: Vec<Ipv4Addr>,
    /// Send adverts to each of `peers` instead of the multicast group
    /// 224.0.0.18 (clouds that drop multicast), and accept adverts only from
    /// `peers`. cluster.toml: `[cluster] vrrp_unicast`.
    #[serde(default)]
    pub unicast: bool,
    /// Multicast mode: also accept adverts from addresses outside `peers`
    /// (keepalived's accept-anything, for mixed clusters). Off: an advert
    /// from a non-director is dropped and counted (`unknown_peer`).
    /// cluster.toml: `[cluster] vrrp_accept_foreign`.
    #[serde(default)]
    pub accept_foreign: bool,
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
    /// The service's name in cluster.toml (`[[services]] name`); written
    /// only when it is not the default "PORT/PROTO" (so files of earlier
    /// versions read the same). See [`DirectorConfig::service_name`].
    #[serde(default)]
    pub name: String,
    /// The service's own VIP (`[[services]] vip`); absent = the top-level
    /// `vip`. Every distinct one is held with `vip` by the VRRP master.
    #[serde(default)]
    pub vip: Option<Ipv4Addr>,
    pub protocol: Protocol,
    /// 0 for a fwmark service.
    pub port: u16,
    /// A fwmark service (`ipvsadm -f`): the IPVS service is this mark, the
    /// VIP and `ports` only say what lvsup's nftables table marks.
    #[serde(default)]
    pub fwmark: Option<u32>,
    /// The ports a fwmark service takes (status only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    pub scheduler: String,
    #[serde(default, with = "opt_dur")]
    pub persistence: Option<Duration>,
    /// Persistence granularity as a prefix length (`ipvsadm -M`); absent: /32.
    #[serde(default)]
    pub persistence_netmask: Option<u8>,
    /// In IPVS at weight 1 while no real server can take a new connection.
    #[serde(default)]
    pub sorry_server: Option<SorryConfig>,
    pub health: HealthConfig,
    pub real_servers: Vec<RealServerConfig>,
}

/// The sorry server of a service, resolved: its port and forwarding method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SorryConfig {
    pub address: Ipv4Addr,
    /// 0 for a fwmark service without a port: the packet's own port.
    pub port: u16,
    pub forward: Forward,
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
    /// http/https: text the body must contain.
    #[serde(default)]
    pub expect_body: Option<String>,
    /// http/https: MD5 of the body, lower-case hex.
    #[serde(default)]
    pub expect_digest: Option<String>,
    /// https: verify the certificate (absent: true).
    #[serde(default)]
    pub tls_verify: Option<bool>,
    /// https: the server name sent and verified (absent: the address).
    #[serde(default)]
    pub sni: Option<String>,
    /// script: the program and its arguments.
    #[serde(default)]
    pub script: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealServerConfig {
    pub name: String,
    pub address: Ipv4Addr,
    pub port: u16,
    pub weight: u32,
    pub forward: Forward,
    /// Weight 0 whatever the health (cluster.toml: `drain = true`).
    #[serde(default)]
    pub drain: bool,
}

fn default_drain_timeout() -> Duration {
    crate::config::DEFAULT_DRAIN_TIMEOUT
}

impl DirectorConfig {
    /// The configuration of director `me` of `spec`.
    pub fn from_spec(spec: &ClusterSpec, me: &Director) -> DirectorConfig {
        let services = spec
            .services
            .iter()
            .map(|s| ServiceConfig {
                name: if s.name
                    == crate::config::Service::default_name(
                        (s.vip != spec.vip).then_some(s.vip),
                        s.port,
                        s.protocol,
                        s.fwmark.as_ref().map(|f| f.mark),
                    ) {
                    String::new()
                } else {
                    s.name.clone()
                },
                vip: (s.vip != spec.vip).then_some(s.vip),
                protocol: s.protocol,
                port: s.port,
                fwmark: s.fwmark.as_ref().map(|f| f.mark),
                ports: s.fwmark.as_ref().map_or_else(Vec::new, |f| f.ports.clone()),
                scheduler: s.scheduler.clone(),
                persistence: s.persistence,
                persistence_netmask: s.persistence_netmask,
                sorry_server: s.sorry_server.map(|ss| SorryConfig {
                    address: ss.address,
                    port: ss.port_for(s),
                    forward: spec.mode.forward(),
                }),
                health: HealthConfig {
                    check: s.health.check.name().to_string(),
                    interval: s.health.interval,
                    timeout: s.health.timeout,
                    fall: s.health.fall,
                    rise: s.health.rise,
                    port: s.health.port,
                    path: s.health.check.http().map(|h| h.path.clone()),
                    expect_status: s.health.check.http().map(|h| h.expect_status),
                    expect_body: s.health.check.http().and_then(|h| h.expect_body.clone()),
                    expect_digest: s.health.check.http().and_then(|h| h.expect_digest.clone()),
                    tls_verify: match &s.health.check {
                        Check::Https { tls_verify, .. } => Some(*tls_verify),
                        _ => None,
                    },
                    sni: match &s.health.check {
                        Check::Https { sni, .. } => sni.clone(),
                        _ => None,
                    },
                    script: match &s.health.check {
                        Check::Script { argv } => Some(argv.clone()),
                        _ => None,
                    },
                },
                real_servers: spec
                    .real_servers_of(s)
                    .map(|r| RealServerConfig {
                        name: r.name.clone(),
                        address: r.address.addr(),
                        port: r.port_for(s),
                        weight: r.weight_for(s),
                        forward: spec.mode.forward(),
                        drain: r.drain,
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
                preempt_delay: spec.preempt_delay,
                address: me.address.addr(),
                peers: spec
                    .directors
                    .iter()
                    .filter(|d| d.name != me.name)
                    .map(|d| d.address.addr())
                    .collect(),
                unicast: spec.vrrp_unicast,
                accept_foreign: spec.vrrp_accept_foreign,
                sync_daemon: spec.sync_daemon,
            },
            metrics: spec.metrics_for(me),
            ipvs_timeouts: spec.ipvs_timeouts,
            drain_timeout: spec.drain_timeout,
            notify: spec.notify.clone(),
            nat: spec.nat.as_ref().map(|n| NatConfig {
                gateway: n.gateway,
                internal_interface: n.internal_interface.clone(),
            }),
            services,
        }
    }

    /// The VIP of service `s`: its own, else the top-level `vip`.
    pub fn service_vip(&self, s: &ServiceConfig) -> Ipv4Addr {
        s.vip.unwrap_or(self.vip)
    }

    /// Every VIP the VRRP master holds, each once: `vip` first, then the
    /// services' own in file order.
    pub fn vips(&self) -> Vec<Ipv4Addr> {
        let mut v = vec![self.vip];
        for s in &self.services {
            let a = self.service_vip(s);
            if !v.contains(&a) {
                v.push(a);
            }
        }
        v
    }

    /// The addresses a VRRP advert carries (RFC 5798 §5.2.9, Count IPvX
    /// Addr): every VIP, then the NAT gateway.
    pub fn advert_addresses(&self) -> Vec<Ipv4Addr> {
        let mut a = self.vips();
        if let Some(n) = &self.nat {
            a.push(n.gateway.addr());
        }
        a
    }

    /// The name of service `s` as cluster.toml has it: `name`, else the
    /// default "PORT/PROTO" ("80/tcp"), or "VIP:PORT/PROTO" with its own VIP.
    pub fn service_name(&self, s: &ServiceConfig) -> String {
        if s.name.is_empty() {
            crate::config::Service::default_name(s.vip, s.port, s.protocol, s.fwmark)
        } else {
            s.name.clone()
        }
    }

    /// Service `s` for logs: its name, else TCP/80 as before names existed.
    pub fn service_label(&self, s: &ServiceConfig) -> String {
        if s.name.is_empty() && s.vip.is_none() {
            format!("{}/{}", s.protocol, s.port)
        } else {
            self.service_name(s)
        }
    }

    /// Read a director.toml (as the daemon does at start and on SIGHUP).
    pub fn parse(text: &str) -> Result<DirectorConfig, toml::de::Error> {
        toml::from_str(text)
    }
}

// The pure cores (`vrrp::machine`, `health::damping`) know nothing of this
// file: it converts into their types.
impl VrrpConfig {
    /// The VRRP machine's settings from the `[vrrp]` section (graceful
    /// handover, wait for health and keepalived's GARP timings by default).
    pub fn machine_config(&self) -> MachineConfig {
        let mut m = MachineConfig::new(
            self.vrid,
            self.priority,
            self.advert_interval,
            self.preempt,
            self.address,
        );
        m.preempt_delay = self.preempt_delay;
        m
    }
}

impl HealthConfig {
    /// A fresh rise/fall damper for this check.
    pub fn damper(&self) -> Damper {
        Damper::new(self.rise, self.fall)
    }
}

/// What serde cannot check: values the daemon would misbehave on.
pub fn check(c: &DirectorConfig) -> Result<(), String> {
    if c.vrrp.vrid == 0 {
        return Err("vrrp.vrid must be 1..=255".into());
    }
    if c.vrrp.advert_interval < Duration::from_millis(10) {
        return Err("vrrp.advert_interval must be at least 10ms".into());
    }
    if c.vrrp.preempt_delay > crate::config::MAX_PREEMPT_DELAY {
        return Err("vrrp.preempt_delay must be 0s..=1000s".into());
    }
    for (name, argv) in [
        ("master", &c.notify.master),
        ("backup", &c.notify.backup),
        ("fault", &c.notify.fault),
        ("stop", &c.notify.stop),
    ] {
        if let Some(a) = argv
            && !a.first().is_some_and(|p| p.starts_with('/'))
        {
            return Err(format!(
                "notify.{name} must start with an absolute path to a program"
            ));
        }
    }
    if c.vrrp.unicast && c.vrrp.peers.is_empty() {
        return Err("vrrp.unicast = true needs at least one address in vrrp.peers".into());
    }
    for s in &c.services {
        let h = &s.health;
        if !matches!(
            h.check.as_str(),
            "tcp" | "http" | "https" | "script" | "none"
        ) {
            return Err(format!(
                "service {}/{}: unknown check {:?} (tcp, http, https, script, none)",
                s.protocol, s.port, h.check
            ));
        }
        if h.check == "script"
            && !h
                .script
                .as_ref()
                .and_then(|a| a.first())
                .is_some_and(|p| p.starts_with('/'))
        {
            return Err(format!(
                "service {}/{}: check \"script\" needs `script`, starting with an absolute path",
                s.protocol, s.port
            ));
        }
        if let Some(n) = &h.sni
            && rustls::pki_types::ServerName::try_from(n.as_str()).is_err()
        {
            return Err(format!(
                "service {}/{}: sni {n:?} is not a DNS name or IP address",
                s.protocol, s.port
            ));
        }
        if let Some(d) = &h.expect_digest
            && !(d.len() == 32 && d.bytes().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(format!(
                "service {}/{}: expect_digest {d:?} is not 32 hex digits",
                s.protocol, s.port
            ));
        }
        if h.check != "none" && (h.interval.is_zero() || h.timeout.is_zero()) {
            return Err(format!(
                "service {}/{}: health interval and timeout must be > 0",
                s.protocol, s.port
            ));
        }
        if s.fwmark == Some(0) {
            return Err(format!(
                "service {}/{}: fwmark 0 is no mark",
                s.protocol, s.port
            ));
        }
        if s.fwmark.is_some() && h.check != "none" && h.port.is_none() {
            return Err(format!(
                "service fwmark {}: a {} check needs health.port",
                s.fwmark.unwrap_or_default(),
                h.check
            ));
        }
        if s.persistence_netmask.is_some_and(|m| m > 32) {
            return Err(format!(
                "service {}/{}: persistence_netmask is a prefix length 0..=32",
                s.protocol, s.port
            ));
        }
        if s.scheduler.is_empty() {
            return Err(format!(
                "service {}/{}: empty scheduler",
                s.protocol, s.port
            ));
        }
    }
    Ok(())
}

/// Settings a reload cannot change without restarting the VRRP instance.
pub fn restart_needed(old: &DirectorConfig, new: &DirectorConfig) -> Option<&'static str> {
    if old.vrrp != new.vrrp {
        Some("[vrrp]")
    } else if old.vips() != new.vips() {
        // One VRRP instance carries every VIP in its adverts: adding or
        // removing one is a new advert, as for a changed `vip`.
        Some("vip")
    } else if old.interface != new.interface {
        Some("interface")
    } else if old.nat != new.nat {
        Some("[nat]")
    } else if old.cluster != new.cluster || old.director != new.director {
        Some("cluster/director")
    } else if old.metrics != new.metrics {
        Some("metrics")
    } else {
        None
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

/// The cluster, director and VRRP part every unit test's config shares
/// (cluster "web", director "a", DR, VIP 192.0.2.100, VRID 51 at priority
/// 150 with peer 192.0.2.2), followed by the test's own `services`.
#[cfg(test)]
pub(crate) fn test_config(services: &str) -> DirectorConfig {
    let text = format!(
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
{services}"#
    );
    DirectorConfig::parse(&text).expect("test config")
}

/// One HTTP-checked service (path "/health", fall and rise 1) with two
/// real servers, n1 (weight 3) and n2 (weight 2): the `services` of
/// [`test_config`] that several unit tests share.
#[cfg(test)]
pub(crate) const TWO_SERVERS: &str = r#"
[[services]]
protocol = "tcp"
port = 80
scheduler = "rr"
[services.health]
check = "http"
interval = "2s"
timeout = "1s"
fall = 1
rise = 1
path = "/health"
[[services.real_servers]]
name = "n1"
address = "192.0.2.11"
port = 80
weight = 3
forward = "route"
[[services.real_servers]]
name = "n2"
address = "192.0.2.12"
port = 80
weight = 2
forward = "route"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> DirectorConfig {
        test_config(TWO_SERVERS)
    }

    #[test]
    fn check_refuses_what_serde_cannot() {
        assert_eq!(check(&cfg()), Ok(()));
        let mut c = cfg();
        c.services[0].health.check = "icmp".into();
        assert!(check(&c).is_err_and(|e| e.contains("unknown check")));
        let mut c = cfg();
        c.vrrp.unicast = true;
        c.vrrp.peers.clear();
        assert!(check(&c).is_err_and(|e| e.contains("peers")));
        let mut c = cfg();
        c.vrrp.advert_interval = Duration::from_millis(1);
        assert!(check(&c).is_err());
    }

    #[test]
    fn reload_needs_restart_only_for_vrrp_identity() {
        let old = cfg();
        let mut new = cfg();
        new.services[0].health.fall = 5;
        new.services[0].real_servers[0].weight = 7;
        assert_eq!(restart_needed(&old, &new), None);
        let mut new = cfg();
        new.vrrp.priority = 100;
        assert_eq!(restart_needed(&old, &new), Some("[vrrp]"));
        let mut new = cfg();
        new.vip = Ipv4Addr::new(192, 0, 2, 101);
        assert_eq!(restart_needed(&old, &new), Some("vip"));
        // a service's own VIP is one more address of the instance
        let mut new = cfg();
        new.services[0].vip = Some(Ipv4Addr::new(192, 0, 2, 102));
        assert_eq!(restart_needed(&old, &new), Some("vip"));
        assert_eq!(
            new.vips(),
            [Ipv4Addr::new(192, 0, 2, 100), Ipv4Addr::new(192, 0, 2, 102)]
        );
        assert_eq!(
            new.advert_addresses(),
            [Ipv4Addr::new(192, 0, 2, 100), Ipv4Addr::new(192, 0, 2, 102)]
        );
        assert_eq!(new.service_name(&new.services[0]), "192.0.2.102:80/tcp");
        assert_eq!(cfg().service_name(&cfg().services[0]), "80/tcp");
        // its VIP named as the top-level one changes nothing
        let mut new = cfg();
        new.services[0].vip = Some(Ipv4Addr::new(192, 0, 2, 100));
        assert_eq!(restart_needed(&old, &new), None);
        let mut new = cfg();
        new.metrics = Some("127.0.0.1:9100".parse().expect("addr"));
        assert_eq!(restart_needed(&old, &new), Some("metrics"));
    }
}
