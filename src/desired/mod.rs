//! Desired state (pure): for every host of a cluster, what lvsup will put
//! there — files rendered from `templates/`, addresses, routes, sysctls,
//! kernel modules, systemd units, and on directors the IPVS table their
//! daemon keeps. `plan` diffs this against what a host has (nothing, offline).
//!
//! Decisions an LVS operator will look for, each with its reason:
//! - DR real servers: VIP/32 on `lo`; `arp_ignore=1` and `arp_announce=2` on
//!   `all` and `lo` (the kernel uses the max of `all` and the receiving
//!   interface, so `all` covers the interface that faces the directors).
//! - TUN real servers: module `ipip`, VIP/32 on `tunl0`, the same ARP settings
//!   on `all` and `tunl0`, and `rp_filter` 0 on `tunl0` with at most loose (2)
//!   on `all`: strict reverse-path filtering drops decapsulated requests
//!   because the reply route to the client is not via `tunl0`.
//! - NAT real servers: default route via `nat.gateway` (replies must pass the
//!   director to be rewritten). NAT directors: `ip_forward=1`.
//! - Every director: `net.ipv4.vs.expire_nodest_conn=1` (drop connection
//!   entries of a removed real server at once instead of black-holing clients
//!   that reuse a source port) and `expire_quiescent_template=1` (persistence
//!   templates of a weight-0 server expire, so draining works with persistence).
//!   These keys exist once `ip_vs` is loaded: the modules-load.d file loads it
//!   before systemd-sysctl runs at boot.
//! - Units and files carry the cluster name (`lvsup-director-web.service`,
//!   `/etc/sysctl.d/90-lvsup-web.conf`), so one real server can serve several
//!   clusters.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use minijinja::value::Serde;
use minijinja::{Environment, Value, context};
use serde::Serialize;

use crate::config::{ClusterSpec, Director, Forward, Mode, Protocol, RealServer};
use crate::contract::director_config::DirectorConfig;

// Unit names and host paths live in one place, `crate::layout`, which the
// director core, facts gathering, verify and destroy use too.
pub use crate::layout::{
    BINARY_PATH, director_config_path, director_unit, fwmark_rules_path, modules_path,
    previous_route_path, realserver_unit, sysctl_path, unit_path,
};

/// The director unit's `LimitNOFILE`: the daemon holds a few sockets of its
/// own (VRRP, netlink, control), one per health probe in flight and one per
/// metrics client. The default soft limit of 1,024 was exhausted by ~1,100
/// idle metrics connections, after which probes failed and every real server
/// went to weight 0; 8,192 at least, more with many checks.
pub fn director_nofile(spec: &ClusterSpec) -> usize {
    let checks = spec.services.len() * spec.real_servers.len();
    8192usize.max(1024 + 4 * checks)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredCluster {
    pub cluster: String,
    pub mode: Mode,
    pub vip: Ipv4Addr,
    /// In apply order: real servers, then backup directors (lowest priority
    /// first), then the intended master.
    pub hosts: Vec<HostState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostState {
    pub name: String,
    pub address: Ipv4Addr,
    pub ssh_host: Option<String>,
    pub role: Role,
    pub files: Vec<FileSpec>,
    pub addresses: Vec<AddressSpec>,
    pub routes: Vec<RouteSpec>,
    pub sysctls: Vec<SysctlSpec>,
    pub modules: Vec<String>,
    pub units: Vec<UnitSpec>,
    /// Directors: the IPVS table the daemon keeps (identical on every director).
    pub ipvs: Vec<VirtualService>,
    /// Directors: the daemon's configuration, typed; `files` holds it
    /// rendered as director.toml (the text reads back as this value).
    /// `plan` compares it with the file on the host to choose between a
    /// reload and a restart. Not part of the plan's JSON (the file is).
    #[serde(skip)]
    pub director_config: Option<DirectorConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Role {
    Director {
        priority: u8,
        /// The highest priority: VRRP master when all directors are healthy.
        master: bool,
    },
    RealServer,
}

impl Role {
    pub fn describe(&self) -> String {
        match self {
            Role::Director {
                priority,
                master: true,
            } => {
                format!("director, master, priority {priority}")
            }
            Role::Director { priority, .. } => format!("director, backup, priority {priority}"),
            Role::RealServer => "real server".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileSpec {
    pub path: String,
    /// Octal permission bits, e.g. 0o644.
    pub mode: u32,
    pub content: String,
    /// What the file is for, in a few words.
    pub purpose: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddressSpec {
    pub address: Ipv4Net,
    pub interface: Interface,
    pub holder: Holder,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Interface {
    Named(String),
    /// Not set in the file: the interface whose subnet holds this address,
    /// found on the host at apply time.
    HoldingSubnetOf(Ipv4Addr),
}

impl std::fmt::Display for Interface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Interface::Named(n) => f.write_str(n),
            Interface::HoldingSubnetOf(a) => write!(f, "the interface on {a}'s subnet"),
        }
    }
}

/// Who puts an address in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Holder {
    /// Added by the host's lvsup unit at boot, always present.
    Unit(String),
    /// Floating: held by the VRRP master's daemon only.
    Vrrp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteSpec {
    /// "default" or a prefix.
    pub destination: String,
    pub via: Ipv4Addr,
    pub unit: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SysctlSpec {
    pub key: String,
    pub value: String,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitSpec {
    pub name: String,
    pub enabled: bool,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VirtualService {
    pub protocol: Protocol,
    pub vip: Ipv4Addr,
    /// 0 for a fwmark service.
    pub port: u16,
    /// A fwmark service (`ipvsadm -f`): identified by the mark alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    pub scheduler: String,
    /// Persistence timeout in seconds (`ipvsadm -p`); `None` = off.
    pub persistence_secs: Option<u32>,
    /// Persistence granularity as a prefix length (`ipvsadm -M`), when
    /// persistent and not /32.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persistence_netmask: Option<u8>,
    pub destinations: Vec<Destination>,
    /// The sorry server the daemon adds while no real server can take a
    /// connection (not in `destinations`: with every real server up, as the
    /// plan assumes, it is out of the table).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<Destination>,
}

impl VirtualService {
    /// `TCP 192.168.0.100:80`, or `FWM 5`
    pub fn label(&self) -> String {
        match self.fwmark {
            Some(m) => format!("FWM {m}"),
            None => format!("{} {}:{}", self.protocol, self.vip, self.port),
        }
    }

    /// What identifies the service in the kernel: (fwmark, protocol, VIP, port).
    pub fn key(&self) -> (Option<u32>, Protocol, Ipv4Addr, u16) {
        match self.fwmark {
            Some(m) => (Some(m), Protocol::Tcp, Ipv4Addr::UNSPECIFIED, 0),
            None => (None, self.protocol, self.vip, self.port),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Destination {
    pub name: String,
    pub address: Ipv4Addr,
    pub port: u16,
    pub forward: Forward,
    pub weight: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("rendering template {template}: {source}")]
pub struct RenderError {
    template: &'static str,
    #[source]
    source: minijinja::Error,
}

/// The templates, compiled into the binary so a director needs nothing else.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "director.toml.j2",
        include_str!("../../templates/director.toml.j2"),
    ),
    (
        "lvsup-director.service.j2",
        include_str!("../../templates/lvsup-director.service.j2"),
    ),
    (
        "lvsup-realserver.service.j2",
        include_str!("../../templates/lvsup-realserver.service.j2"),
    ),
    (
        "sysctl.conf.j2",
        include_str!("../../templates/sysctl.conf.j2"),
    ),
    (
        "modules-load.conf.j2",
        include_str!("../../templates/modules-load.conf.j2"),
    ),
];

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    for (name, source) in TEMPLATES {
        // The templates are part of the binary and covered by tests: a syntax
        // error is a build defect, reported at render time like any other.
        let _ = env.add_template(name, source);
    }
    // `q`: a TOML basic string literal, escaped as TOML requires.
    env.add_filter("q", |v: Value| -> String {
        toml::Value::String(v.as_str().map_or_else(|| v.to_string(), str::to_string)).to_string()
    });
    env
}

/// A script of templates/scripts as one `/bin/sh -c '…'` unit line: `$`
/// doubled (systemd's escape for a literal `$`). The script is one line
/// without a single quote; one with either is a defect in the template,
/// reported as a render error.
fn unit_sh(template: &'static str, ctx: Value) -> Result<String, RenderError> {
    let body = crate::script::try_render(template, ctx)
        .map_err(|source| RenderError { template, source })?;
    let body = body.trim_end_matches('\n');
    if body.contains(['\'', '\n']) {
        return Err(RenderError {
            template,
            source: minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                "a unit's /bin/sh -c line must be one line without single quotes",
            ),
        });
    }
    Ok(format!("/bin/sh -c '{}'", body.replace('$', "$$")))
}

fn render(
    env: &Environment<'_>,
    template: &'static str,
    ctx: Value,
) -> Result<String, RenderError> {
    env.get_template(template)
        .and_then(|t| t.render(ctx))
        .map_err(|source| RenderError { template, source })
}

/// The desired state of every host of `spec`.
pub fn desired_cluster(spec: &ClusterSpec) -> Result<DesiredCluster, RenderError> {
    let env = environment();
    let ipvs = ipvs_table(spec);
    let mut hosts = Vec::new();
    for rs in &spec.real_servers {
        hosts.push(real_server(&env, spec, rs)?);
    }
    let mut by_priority = spec.directors_by_priority();
    by_priority.reverse();
    let max = spec.directors.iter().map(|d| d.priority).max().unwrap_or(0);
    for d in by_priority {
        hosts.push(director(&env, spec, d, max, &ipvs)?);
    }
    Ok(DesiredCluster {
        cluster: spec.name.clone(),
        mode: spec.mode,
        vip: spec.vip,
        hosts,
    })
}

/// The IPVS table every director keeps: one virtual service per `[[services]]`
/// on its VIP, each real server that serves it a destination (its weight
/// for that service) with the mode's forwarding method.
pub fn ipvs_table(spec: &ClusterSpec) -> Vec<VirtualService> {
    spec.services
        .iter()
        .map(|s| VirtualService {
            protocol: s.protocol,
            vip: s.vip,
            port: s.port,
            fwmark: s.fwmark.as_ref().map(|f| f.mark),
            scheduler: s.scheduler.clone(),
            persistence_secs: s.persistence.map(|d| d.as_secs() as u32),
            persistence_netmask: s
                .persistence_netmask
                .filter(|m| *m != 32 && s.persistence.is_some()),
            sorry_server: s.sorry_server.map(|ss| Destination {
                name: "sorry server".into(),
                address: ss.address,
                port: ss.port_for(s),
                forward: spec.mode.forward(),
                weight: 1,
            }),
            destinations: spec
                .real_servers_of(s)
                .map(|r| Destination {
                    name: r.name.clone(),
                    address: r.address.addr(),
                    port: r.port_for(s),
                    forward: spec.mode.forward(),
                    // drain = true: the daemon keeps it at weight 0.
                    weight: if r.drain { 0 } else { r.weight_for(s) },
                })
                .collect(),
        })
        .collect()
}

/// The nftables ruleset of a cluster's fwmark services, `None` without one:
/// lvsup's own table (`lvsup_NAME`, family ip), replaced whole in one
/// transaction (the create-delete-define idiom: `nft -f` applies a file
/// atomically), one rule per service in the prerouting hook at mangle
/// priority, before IPVS (LOCAL_IN) sees the packet. Only packets to the
/// VIP on the service's ports and protocol are marked; nothing is dropped.
pub fn fwmark_rules(spec: &ClusterSpec) -> Option<FileSpec> {
    let marks: Vec<(&crate::config::Fwmark, &crate::config::Service)> = spec
        .services
        .iter()
        .filter_map(|s| s.fwmark.as_ref().map(|f| (f, s)))
        .collect();
    if marks.is_empty() {
        return None;
    }
    let table = crate::layout::fwmark_table(&spec.name);
    let mut t = format!(
        "#!{nft} -f\n# Managed by lvsup: `lvsup apply` rewrites this file. Edit cluster.toml instead.\n\
         # The firewall marks of cluster \"{c}\"'s fwmark services (IPVS `-f MARK`), loaded by\n\
         # {unit} at start and reload; `lvsup destroy` removes the table.\n\
         table ip {table}\ndelete table ip {table}\ntable ip {table} {{\n\
         \tchain prerouting {{\n\
         \t\ttype filter hook prerouting priority mangle; policy accept;\n",
        nft = crate::layout::NFT_PATH,
        c = spec.name,
        unit = director_unit(&spec.name),
    );
    for (f, s) in marks {
        let ports = f.ports_text().replace(',', ", ");
        t.push_str(&format!(
            "\t\tip daddr {vip} {proto} dport {{ {ports} }} meta mark set {mark:#010x} comment \"FWM {mark_dec}\"\n",
            vip = s.vip,
            proto = s.protocol.as_str(),
            mark = f.mark,
            mark_dec = f.mark,
        ));
    }
    t.push_str("\t}\n}\n");
    Some(FileSpec {
        path: crate::layout::fwmark_rules_path(&spec.name),
        mode: 0o644,
        content: t,
        purpose: "nftables marks of the fwmark services, loaded by the director unit".into(),
    })
}

fn sysctl(key: &str, value: &str, why: &str) -> SysctlSpec {
    SysctlSpec {
        key: key.into(),
        value: value.into(),
        why: why.into(),
    }
}

fn director(
    env: &Environment<'_>,
    spec: &ClusterSpec,
    d: &Director,
    max_priority: u8,
    ipvs: &[VirtualService],
) -> Result<HostState, RenderError> {
    let cluster = &spec.name;
    let cfg = DirectorConfig::from_spec(spec, d);
    let config_path = director_config_path(cluster);
    let unit = director_unit(cluster);
    let modules = spec.director_modules();

    // [cluster] expire_nodest_conn / expire_quiescent_template (default true);
    // written either way so the live value follows the file.
    let on = |b: bool| if b { "1" } else { "0" };
    let mut sysctls = vec![
        sysctl(
            "net.ipv4.vs.expire_nodest_conn",
            on(spec.expire_nodest_conn),
            if spec.expire_nodest_conn {
                "drop connection entries of a removed real server at once (no black-holed clients)"
            } else {
                "expire_nodest_conn = false: entries of a removed real server time out"
            },
        ),
        sysctl(
            "net.ipv4.vs.expire_quiescent_template",
            on(spec.expire_quiescent_template),
            if spec.expire_quiescent_template {
                "persistence templates of a weight-0 real server expire, so draining works"
            } else {
                "expire_quiescent_template = false: persistent clients stay on a weight-0 server"
            },
        ),
    ];
    if spec.mode == Mode::Nat {
        sysctls.insert(
            0,
            sysctl(
                "net.ipv4.ip_forward",
                "1",
                "NAT: the director routes the real servers' replies",
            ),
        );
    }

    let fwmark = fwmark_rules(spec);
    let mut files = vec![
        FileSpec {
            path: config_path.clone(),
            mode: 0o644,
            content: render(
                env,
                "director.toml.j2",
                context! { max_priority => max_priority, ..Value::from(Serde(&cfg)) },
            )?,
            purpose: "director daemon configuration".into(),
        },
        FileSpec {
            path: unit_path(&unit),
            mode: 0o644,
            content: render(
                env,
                "lvsup-director.service.j2",
                context! {
                    cluster,
                    runtime_directory => crate::layout::director_runtime_directory(cluster),
                    binary => BINARY_PATH,
                    config => config_path,
                    nofile => director_nofile(spec),
                    fwmark_rules => fwmark.as_ref().map(|f| f.path.clone()),
                    nft => crate::layout::NFT_PATH,
                },
            )?,
            purpose: "systemd unit of the director daemon".into(),
        },
        sysctl_file(env, spec, "director", &sysctls)?,
        modules_file(env, spec, "director", &modules)?,
    ];
    files.extend(fwmark);

    let vip_iface = match &spec.interface {
        Some(i) => Interface::Named(i.clone()),
        None => Interface::HoldingSubnetOf(spec.vip),
    };
    // Every VIP floats with the one VRRP instance, on the VRRP interface.
    let mut addresses: Vec<AddressSpec> = spec
        .vips()
        .into_iter()
        .map(|vip| AddressSpec {
            address: Ipv4Net::from(vip),
            interface: vip_iface.clone(),
            holder: Holder::Vrrp,
        })
        .collect();
    if let Some(nat) = &spec.nat {
        addresses.push(AddressSpec {
            address: nat.gateway,
            interface: match &nat.internal_interface {
                Some(i) => Interface::Named(i.clone()),
                None => Interface::HoldingSubnetOf(nat.gateway.addr()),
            },
            holder: Holder::Vrrp,
        });
    }

    Ok(HostState {
        name: d.name.clone(),
        address: d.address.addr(),
        ssh_host: d.ssh_host.clone(),
        role: Role::Director {
            priority: d.priority,
            master: d.priority == max_priority,
        },
        files,
        addresses,
        routes: vec![],
        sysctls,
        modules,
        units: vec![UnitSpec {
            name: unit,
            enabled: true,
            active: true,
        }],
        ipvs: ipvs.to_vec(),
        director_config: Some(cfg),
    })
}

fn real_server(
    env: &Environment<'_>,
    spec: &ClusterSpec,
    rs: &RealServer,
) -> Result<HostState, RenderError> {
    let cluster = &spec.name;
    let unit = realserver_unit(cluster);
    let vip = spec.vip;
    // DR/TUN: every VIP of the cluster, so a real server answers for each
    // service's VIP whichever services it serves (ARP settings unchanged).
    let vips = spec.vips();
    let mut sysctls = Vec::new();
    let mut modules = Vec::new();
    let mut addresses = Vec::new();
    let mut routes = Vec::new();
    let (start, stop, what): (Vec<String>, Vec<String>, &str) = match spec.mode {
        Mode::Dr => {
            for i in ["all", "lo"] {
                sysctls.push(sysctl(
                    &format!("net.ipv4.conf.{i}.arp_ignore"),
                    "1",
                    "answer ARP only for addresses of the receiving interface: never for the VIP on lo",
                ));
                sysctls.push(sysctl(
                    &format!("net.ipv4.conf.{i}.arp_announce"),
                    "2",
                    "never use the VIP as the source of ARP requests",
                ));
            }
            for v in &vips {
                addresses.push(AddressSpec {
                    address: Ipv4Net::from(*v),
                    interface: Interface::Named("lo".into()),
                    holder: Holder::Unit(unit.clone()),
                });
            }
            (
                vips.iter()
                    .map(|v| format!("ip addr replace {v}/32 dev lo"))
                    .collect(),
                vips.iter()
                    .map(|v| format!("ip addr del {v}/32 dev lo"))
                    .collect(),
                if vips.len() > 1 {
                    "VIPs on lo, ARP suppression"
                } else {
                    "VIP on lo, ARP suppression"
                },
            )
        }
        Mode::Tun => {
            modules.push("ipip".to_string());
            for i in ["all", "tunl0"] {
                sysctls.push(sysctl(
                    &format!("net.ipv4.conf.{i}.arp_ignore"),
                    "1",
                    "answer ARP only for addresses of the receiving interface: never for the VIP on tunl0",
                ));
                sysctls.push(sysctl(
                    &format!("net.ipv4.conf.{i}.arp_announce"),
                    "2",
                    "never use the VIP as the source of ARP requests",
                ));
            }
            sysctls.push(sysctl(
                "net.ipv4.conf.tunl0.rp_filter",
                "0",
                "accept decapsulated requests: the route back to the client is not via tunl0",
            ));
            sysctls.push(sysctl(
                "net.ipv4.conf.all.rp_filter",
                "2",
                "the kernel uses the max of all and tunl0: strict (1) would drop tunnelled requests, loose (2) keeps spoofing protection",
            ));
            for v in &vips {
                addresses.push(AddressSpec {
                    address: Ipv4Net::from(*v),
                    interface: Interface::Named("tunl0".into()),
                    holder: Holder::Unit(unit.clone()),
                });
            }
            let mut start = vec!["ip link set tunl0 up".to_string()];
            start.extend(
                vips.iter()
                    .map(|v| format!("ip addr replace {v}/32 dev tunl0")),
            );
            (
                start,
                vips.iter()
                    .map(|v| format!("ip addr del {v}/32 dev tunl0"))
                    .collect(),
                if vips.len() > 1 {
                    "VIPs on tunl0, ARP suppression"
                } else {
                    "VIP on tunl0, ARP suppression"
                },
            )
        }
        Mode::Nat => {
            let gw = spec.nat.as_ref().map_or(vip, |n| n.gateway.addr());
            routes.push(RouteSpec {
                destination: "default".into(),
                via: gw,
                unit: unit.clone(),
            });
            // The host's own default route (e.g. via its usual router) is
            // recorded before it is first replaced, and put back when the unit
            // stops (destroy, shutdown), so destroying a NAT cluster does not
            // leave a real server without a default route
            // (templates/scripts/nat-route-up.sh.j2, nat-route-down.sh.j2).
            let rec = previous_route_path(cluster);
            let ctx = context! { rec, state_dir => crate::layout::state_dir(cluster), gw => gw.to_string() };
            (
                vec![unit_sh("nat-route-up.sh.j2", ctx.clone())?],
                vec![unit_sh("nat-route-down.sh.j2", ctx)?],
                "default route via the directors",
            )
        }
    };

    let mut files = Vec::new();
    if !sysctls.is_empty() {
        files.push(sysctl_file(env, spec, "real server", &sysctls)?);
    }
    if !modules.is_empty() {
        files.push(modules_file(env, spec, "real server", &modules)?);
    }
    let sysctl_file_path = (!sysctls.is_empty()).then(|| sysctl_path(cluster));
    files.push(FileSpec {
        path: unit_path(&unit),
        mode: 0o644,
        content: render(
            env,
            "lvsup-realserver.service.j2",
            context! { cluster, what, start, stop, sysctl_file => sysctl_file_path },
        )?,
        purpose: format!("systemd unit: {what}, at every boot"),
    });
    files.sort_by(|a, b| a.path.cmp(&b.path));

    Ok(HostState {
        name: rs.name.clone(),
        address: rs.address.addr(),
        ssh_host: rs.ssh_host.clone(),
        role: Role::RealServer,
        files,
        addresses,
        routes,
        sysctls,
        modules,
        units: vec![UnitSpec {
            name: unit,
            enabled: true,
            active: true,
        }],
        ipvs: vec![],
        director_config: None,
    })
}

/// A root-owned 0644 file rendered from `template`.
fn rendered_file(
    env: &Environment<'_>,
    template: &'static str,
    path: String,
    purpose: &str,
    ctx: Value,
) -> Result<FileSpec, RenderError> {
    Ok(FileSpec {
        path,
        mode: 0o644,
        content: render(env, template, ctx)?,
        purpose: purpose.into(),
    })
}

fn sysctl_file(
    env: &Environment<'_>,
    spec: &ClusterSpec,
    role: &str,
    sysctls: &[SysctlSpec],
) -> Result<FileSpec, RenderError> {
    rendered_file(
        env,
        "sysctl.conf.j2",
        sysctl_path(&spec.name),
        "kernel settings, kept across reboots",
        context! { cluster => &spec.name, role, sysctls => Value::from(Serde(sysctls)) },
    )
}

fn modules_file(
    env: &Environment<'_>,
    spec: &ClusterSpec,
    role: &str,
    modules: &[String],
) -> Result<FileSpec, RenderError> {
    rendered_file(
        env,
        "modules-load.conf.j2",
        modules_path(&spec.name),
        "kernel modules loaded at boot",
        context! { cluster => &spec.name, role, modules => Value::from(Serde(modules)) },
    )
}

/// Sysctls of a host as a map, for diffing.
pub fn sysctl_map(h: &HostState) -> BTreeMap<&str, &str> {
    h.sysctls
        .iter()
        .map(|s| (s.key.as_str(), s.value.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn example(name: &str) -> ClusterSpec {
        let path = format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"));
        match config::load(std::path::Path::new(&path)) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn rendered_director_config_reads_back_as_the_same_config() {
        for ex in [
            "dr.toml",
            "tun.toml",
            "nat.toml",
            "minimal.toml",
            "two-vips.toml",
        ] {
            let spec = example(ex);
            let desired = desired_cluster(&spec).expect("render");
            for d in &spec.directors {
                let host = desired
                    .hosts
                    .iter()
                    .find(|h| h.name == d.name)
                    .expect("host");
                let file = host
                    .files
                    .iter()
                    .find(|f| f.path == director_config_path(&spec.name))
                    .expect("director.toml");
                let parsed = DirectorConfig::parse(&file.content)
                    .unwrap_or_else(|e| panic!("{ex}/{}: {e}\n{}", d.name, file.content));
                assert_eq!(
                    parsed,
                    DirectorConfig::from_spec(&spec, d),
                    "{ex}/{}",
                    d.name
                );
                // the typed value plan decides from is the file's content
                assert_eq!(
                    host.director_config.as_ref(),
                    Some(&parsed),
                    "{ex}/{}",
                    d.name
                );
            }
        }
    }

    /// The exposure score `systemd-analyze security` gives the rendered director
    /// unit, read from its closing line ("Overall exposure level for X: 1.8 OK").
    fn exposure(unit_text: &str) -> f64 {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lvsup-director-web.service");
        std::fs::write(&path, unit_text).expect("write unit");
        // Required, not optional: tests/run installs systemd where it is missing.
        let out = std::process::Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("systemd-analyze (package systemd) is required: {e}"));
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or_else(|| {
                panic!(
                    "no exposure line in:\n{text}{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        exposure_of(line).unwrap_or_else(|| panic!("unreadable exposure line: {line}"))
    }

    /// "Overall exposure level for UNIT: 1.8 OK 🙂" (":-)" without UTF-8).
    fn exposure_of(line: &str) -> Option<f64> {
        let (_, rest) = line.split_once("Overall exposure level")?;
        let (_, score) = rest.split_once(": ")?;
        score.split_whitespace().next()?.parse().ok()
    }

    #[test]
    fn exposure_line_with_and_without_utf8() {
        assert_eq!(
            exposure_of("→ Overall exposure level for a.service: 1.8 OK 🙂"),
            Some(1.8)
        );
        assert_eq!(
            exposure_of("-> Overall exposure level for a.service: 4.4 OK :-)"),
            Some(4.4)
        );
        assert_eq!(exposure_of("nothing here"), None);
    }

    /// #14: the director unit grants the capabilities the daemon needs and
    /// nothing else. The VM tests read the same score from the live unit.
    #[test]
    fn director_unit_exposure_is_at_most_2() {
        let spec = example("dr.toml");
        let d = desired_cluster(&spec).expect("render");
        let unit = d
            .hosts
            .iter()
            .flat_map(|h| h.files.iter())
            .find(|f| f.path.ends_with(".service") && f.path.contains("lvsup-director"))
            .expect("director unit");
        let score = exposure(&unit.content);
        assert!(score <= 2.0, "exposure {score} > 2.0:\n{}", unit.content);
        // With fwmark services: nft runs before the daemon (`+`), the
        // daemon's sandbox is the same.
        let fw = unit_of(&fwmark_spec(), "dr1", &director_unit("web"));
        assert!(fw.contains("ExecStartPre=+"), "{fw}");
        let fw_score = exposure(&fw);
        assert!(fw_score <= 2.0, "exposure {fw_score} > 2.0:\n{fw}");
        // The check can fail: the same unit running as root with every
        // capability scores far worse.
        let loose: String = unit
            .content
            .lines()
            .filter(|l| {
                ![
                    "DynamicUser",
                    "CapabilityBoundingSet",
                    "SystemCallFilter",
                    "AmbientCapabilities",
                ]
                .iter()
                .any(|k| l.starts_with(k))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let worse = exposure(&loose);
        assert!(worse > 2.0, "the loosened unit still scores {worse}");
    }

    /// The system calls of `systemd-analyze syscall-filter GROUP`, nested
    /// groups expanded.
    fn syscall_group(group: &str) -> std::collections::BTreeSet<String> {
        let out = std::process::Command::new("systemd-analyze")
            .args(["syscall-filter", "--no-pager", group])
            .output()
            .unwrap_or_else(|e| panic!("systemd-analyze (package systemd) is required: {e}"));
        assert!(
            out.status.success(),
            "systemd-analyze syscall-filter {group}"
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut set = std::collections::BTreeSet::new();
        for line in text.lines().skip(1).map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with('@') {
                set.extend(syscall_group(line));
            } else {
                set.insert(line.to_string());
            }
        }
        assert!(!set.is_empty(), "{group}: nothing in\n{text}");
        set
    }

    /// Script checks and notify hooks fork and exec under the director
    /// unit's syscall filter: every call `director::exec` makes is allowed
    /// by it (`SystemCallFilter=` lines read from the rendered unit).
    #[test]
    fn director_unit_syscall_filter_allows_running_scripts() {
        let spec = example("dr.toml");
        let d = desired_cluster(&spec).expect("render");
        let unit = d
            .hosts
            .iter()
            .flat_map(|h| h.files.iter())
            .find(|f| f.path.ends_with(".service") && f.path.contains("lvsup-director"))
            .expect("director unit");
        let mut allowed = std::collections::BTreeSet::new();
        for line in unit.content.lines() {
            let Some(v) = line.strip_prefix("SystemCallFilter=") else {
                continue;
            };
            let (deny, v) = match v.strip_prefix('~') {
                Some(rest) => (true, rest),
                None => (false, v),
            };
            for item in v.split_whitespace() {
                let calls = if item.starts_with('@') {
                    syscall_group(item)
                } else {
                    std::iter::once(item.to_string()).collect()
                };
                if deny {
                    allowed.retain(|c| !calls.contains(c));
                } else {
                    allowed.extend(calls);
                }
            }
        }
        assert!(
            !allowed.is_empty(),
            "no SystemCallFilter= in\n{}",
            unit.content
        );
        for call in crate::director::exec::SYSCALLS {
            assert!(
                allowed.contains(*call),
                "{call} is filtered by the director unit"
            );
        }
        // The test can fail: capset (best effort in the child) is filtered.
        assert!(!allowed.contains("capset"));
    }

    #[test]
    fn vrrp_unicast_and_sync_daemon_reach_every_director_toml() {
        let director_toml = |spec: &ClusterSpec, name: &str| {
            let d = desired_cluster(spec).expect("render");
            let h = d.hosts.iter().find(|h| h.name == name).expect("host");
            let f = h
                .files
                .iter()
                .find(|f| f.path == director_config_path(&spec.name))
                .expect("director.toml");
            DirectorConfig::parse(&f.content).expect("parse")
        };
        // Defaults: multicast, no sync daemon (dr.toml leaves both out).
        let dr = example("dr.toml");
        assert!(!dr.vrrp_unicast && !dr.sync_daemon);
        let c = director_toml(&dr, "lvs191");
        assert!(!c.vrrp.unicast && !c.vrrp.sync_daemon && !c.vrrp.accept_foreign);
        // vrrp_accept_foreign (multicast, mixed clusters) reaches the file;
        // with vrrp_unicast it is refused (a no-op there).
        let dr_text =
            std::fs::read_to_string(format!("{}/examples/dr.toml", env!("CARGO_MANIFEST_DIR")))
                .expect("dr.toml");
        let foreign = dr_text.replace("vrid = 51 ", "vrid = 51\nvrrp_accept_foreign = true ");
        let spec = config::parse_str("dr.toml", &foreign).unwrap_or_else(|e| panic!("{e}"));
        assert!(spec.vrrp_accept_foreign);
        assert!(director_toml(&spec, "lvs191").vrrp.accept_foreign);
        let both = foreign.replace("vrid = 51\n", "vrid = 51\nvrrp_unicast = true\n");
        let err = config::parse_str("dr.toml", &both).expect_err("unicast + accept_foreign");
        assert!(err.to_string().contains("vrrp_accept_foreign"), "{err}");
        // tun.toml turns the sync daemon on: on every director (the daemon
        // picks master or backup by VRRP state).
        let tun = example("tun.toml");
        assert!(tun.sync_daemon);
        for d in &tun.directors {
            assert!(director_toml(&tun, &d.name).vrrp.sync_daemon, "{}", d.name);
        }
        // Unicast: each director's peers are the others' addresses.
        let text =
            std::fs::read_to_string(format!("{}/examples/dr.toml", env!("CARGO_MANIFEST_DIR")))
                .expect("dr.toml")
                .replace("vrid = 51 ", "vrid = 51\nvrrp_unicast = true ");
        let spec = config::parse_str("dr.toml", &text).unwrap_or_else(|e| panic!("{e}"));
        assert!(spec.vrrp_unicast);
        let c = director_toml(&spec, "lvs191");
        assert!(c.vrrp.unicast);
        assert_eq!(
            c.vrrp.peers,
            ["192.168.0.192".parse::<Ipv4Addr>().expect("ip")]
        );
        assert_eq!(crate::contract::director_config::check(&c), Ok(()));
        assert_eq!(c.metrics, None);
        // The metrics listener: the same address on every director.
        let text = text.replace("vrid = 51\n", "vrid = 51\nmetrics = \"127.0.0.1:9100\"\n");
        let spec = config::parse_str("dr.toml", &text).unwrap_or_else(|e| panic!("{e}"));
        for d in &spec.directors {
            let c = director_toml(&spec, &d.name);
            assert_eq!(c.metrics, Some("127.0.0.1:9100".parse().expect("addr")));
        }
        // ":PORT": each director on its own address (never the VIP); a
        // director's own `metrics` key wins.
        let text = text
            .replace("metrics = \"127.0.0.1:9100\"", "metrics = \":9100\"")
            .replace(
                "name = \"lvs192\"",
                "name = \"lvs192\"\nmetrics = \"10.9.9.9:9200\"",
            );
        let spec = config::parse_str("dr.toml", &text).unwrap_or_else(|e| panic!("{e}"));
        let c = director_toml(&spec, "lvs191");
        assert_eq!(c.metrics, Some("192.168.0.191:9100".parse().expect("addr")));
        let c = director_toml(&spec, "lvs192");
        assert_eq!(c.metrics, Some("10.9.9.9:9200".parse().expect("addr")));
    }

    #[test]
    fn apply_order_is_real_servers_then_backups_then_master() {
        let spec = example("dr.toml");
        let d = desired_cluster(&spec).expect("render");
        let names: Vec<&str> = d.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["node1", "node2", "lvs192", "lvs191"]);
        assert_eq!(
            d.hosts[3].role,
            Role::Director {
                priority: 150,
                master: true
            }
        );
    }

    #[test]
    fn ipvs_table_uses_the_modes_forwarding_and_nat_port_remap() {
        let nat = example("nat.toml");
        let t = ipvs_table(&nat);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].scheduler, "sh");
        assert!(
            t[0].destinations
                .iter()
                .all(|d| d.forward == Forward::Masq && d.port == 8080)
        );
        let tun = example("tun.toml");
        let t = ipvs_table(&tun);
        assert_eq!(t[0].persistence_secs, Some(300));
        assert_eq!(
            t[0].destinations
                .iter()
                .map(|d| d.weight)
                .collect::<Vec<_>>(),
            [3, 1]
        );
        assert!(
            t[0].destinations
                .iter()
                .all(|d| d.forward == Forward::Tunnel)
        );
    }

    /// examples/two-vips.toml: each service on its VIP with only its real
    /// servers at their weight there; both VIPs float on the directors and
    /// sit on every real server's lo (node2 serves only the first VIP's
    /// services, but one unit per cluster puts them all).
    #[test]
    fn several_vips_and_per_service_real_servers() {
        let spec = example("two-vips.toml");
        let t = ipvs_table(&spec);
        let row = |v: &VirtualService| {
            let d: Vec<(String, u32)> = v
                .destinations
                .iter()
                .map(|d| (d.name.clone(), d.weight))
                .collect();
            (v.label(), d)
        };
        let rows: Vec<_> = t.iter().map(row).collect();
        let n = |s: &str, w| (s.to_string(), w);
        assert_eq!(
            rows,
            [
                (
                    "TCP 192.168.0.100:80".to_string(),
                    vec![n("node1", 100), n("node2", 100)]
                ),
                (
                    "TCP 192.168.0.100:443".to_string(),
                    vec![n("node1", 100), n("node2", 100)]
                ),
                ("TCP 192.168.0.101:80".to_string(), vec![n("node1", 50)]),
            ]
        );
        let d = desired_cluster(&spec).expect("render");
        let lvs191 = d.hosts.iter().find(|h| h.name == "lvs191").expect("lvs191");
        let floating: Vec<String> = lvs191
            .addresses
            .iter()
            .filter(|a| a.holder == Holder::Vrrp)
            .map(|a| a.address.to_string())
            .collect();
        assert_eq!(floating, ["192.168.0.100/32", "192.168.0.101/32"]);
        for name in ["node1", "node2"] {
            let h = d.hosts.iter().find(|h| h.name == name).expect("host");
            let on_lo: Vec<String> = h
                .addresses
                .iter()
                .filter(|a| a.interface == Interface::Named("lo".into()))
                .map(|a| a.address.to_string())
                .collect();
            assert_eq!(on_lo, ["192.168.0.100/32", "192.168.0.101/32"], "{name}");
        }
        // TUN: every VIP on tunl0.
        let text = std::fs::read_to_string(format!(
            "{}/examples/two-vips.toml",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("example")
        .replace("mode = \"dr\"", "mode = \"tun\"");
        let tun = config::parse_str("two-vips.toml", &text).unwrap_or_else(|e| panic!("{e}"));
        let d = desired_cluster(&tun).expect("render");
        let on_tunl0 = d.hosts[0]
            .addresses
            .iter()
            .filter(|a| a.interface == Interface::Named("tunl0".into()))
            .count();
        assert_eq!(on_tunl0, 2);
        // NAT: each VIP on the directors (with the gateway); the real
        // servers route through the gateway and hold no VIP.
        let text =
            std::fs::read_to_string(format!("{}/examples/nat.toml", env!("CARGO_MANIFEST_DIR")))
                .expect("example")
                .replacen(
                    "[[directors]]",
                    "[[services]]\nvip = \"10.0.0.101\"\nport = 80\n\n[[directors]]",
                    1,
                );
        let nat = config::parse_str("nat.toml", &text).unwrap_or_else(|e| panic!("{e}"));
        let d = desired_cluster(&nat).expect("render");
        let nat1 = d.hosts.iter().find(|h| h.name == "nat1").expect("nat1");
        let floating: Vec<String> = nat1
            .addresses
            .iter()
            .map(|a| a.address.to_string())
            .collect();
        assert_eq!(
            floating,
            ["10.0.0.100/32", "10.0.0.101/32", "192.168.10.254/24"]
        );
        assert!(
            d.hosts[0].addresses.is_empty(),
            "{:?}",
            d.hosts[0].addresses
        );
        let t = ipvs_table(&nat);
        assert_eq!(t[1].label(), "TCP 10.0.0.101:80");
        assert!(t[1].destinations.iter().all(|d| d.port == 8080));
    }

    #[test]
    fn real_server_settings_per_mode() {
        let dr = desired_cluster(&example("dr.toml")).expect("render");
        let node1 = &dr.hosts[0];
        let s = sysctl_map(node1);
        assert_eq!(s.get("net.ipv4.conf.all.arp_ignore"), Some(&"1"));
        assert_eq!(s.get("net.ipv4.conf.lo.arp_announce"), Some(&"2"));
        assert_eq!(node1.addresses[0].interface, Interface::Named("lo".into()));

        let tun = desired_cluster(&example("tun.toml")).expect("render");
        let rs1 = &tun.hosts[0];
        assert_eq!(rs1.modules, ["ipip"]);
        assert_eq!(
            sysctl_map(rs1).get("net.ipv4.conf.tunl0.rp_filter"),
            Some(&"0")
        );
        assert_eq!(rs1.addresses[0].interface, Interface::Named("tunl0".into()));

        let nat = desired_cluster(&example("nat.toml")).expect("render");
        let app1 = &nat.hosts[0];
        assert!(app1.sysctls.is_empty());
        assert_eq!(
            app1.routes[0].via,
            "192.168.10.254".parse::<Ipv4Addr>().expect("ip")
        );
        let nat1 = nat.hosts.iter().find(|h| h.name == "nat1").expect("nat1");
        assert_eq!(sysctl_map(nat1).get("net.ipv4.ip_forward"), Some(&"1"));
        assert_eq!(nat1.addresses.len(), 2, "VIP and gateway float");
    }

    fn unit_of(spec: &ClusterSpec, host: &str, unit: &str) -> String {
        let d = desired_cluster(spec).expect("render");
        let h = d.hosts.iter().find(|h| h.name == host).expect("host");
        h.files
            .iter()
            .find(|f| f.path == unit_path(unit))
            .expect("unit file")
            .content
            .clone()
    }

    /// The real server unit's `ExecStartPre` runs systemd-sysctl from
    /// /usr/lib/systemd (merged /usr, Fedora, openSUSE) or /lib/systemd
    /// (Debian without merged /usr), else `sysctl -p`: run its command with
    /// `sh`, those paths pointed at stand-ins that say who ran.
    #[test]
    fn real_server_unit_applies_sysctls_with_and_without_merged_usr() {
        let spec = example("dr.toml");
        let unit = unit_of(&spec, "node1", &realserver_unit(&spec.name));
        assert!(
            !unit.contains("ExecStartPre=/usr/lib/systemd/systemd-sysctl"),
            "{unit}"
        );
        let line = unit
            .lines()
            .find_map(|l| l.strip_prefix("ExecStartPre=/bin/sh -c '"))
            .expect("ExecStartPre through /bin/sh");
        // systemd turns `$$` into `$`; the command is single-quoted
        let script = line
            .strip_suffix('\'')
            .expect("closing quote")
            .replace("$$", "$");
        let dir = tempfile::tempdir().expect("tempdir");
        let stand_in = |name: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, format!("#!/bin/sh\necho {name} \"$@\"\n")).expect("write");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            p.to_string_lossy().into_owned()
        };
        let usr = stand_in("usr-lib");
        let lib = stand_in("lib");
        let sysctl = stand_in("sysctl");
        let missing = dir.path().join("missing").to_string_lossy().into_owned();
        let run = |usr_path: &str, lib_path: &str| {
            let s = script
                .replace("/usr/lib/systemd/systemd-sysctl", usr_path)
                .replace("/lib/systemd/systemd-sysctl", lib_path)
                .replace("exec sysctl -p", &format!("exec {sysctl} -p"));
            let out = std::process::Command::new("sh")
                .args(["-c", &s])
                .output()
                .expect("sh");
            assert!(out.status.success(), "{s}: {out:?}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let file = sysctl_path(&spec.name);
        assert_eq!(run(&usr, &lib), format!("usr-lib {file}\n"));
        assert_eq!(
            run(&missing, &lib),
            format!("lib {file}\n"),
            "no merged /usr"
        );
        assert_eq!(run(&missing, &missing), format!("sysctl -p {file}\n"));
    }

    fn fwmark_spec() -> ClusterSpec {
        let text = std::fs::read_to_string(format!(
            "{}/examples/minimal.toml",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("example")
        .replacen(
            "[[services]]\nport = 80\nscheduler = \"rr\"",
            "[[services]]\nfwmark = 5\nports = [443, 80]\nscheduler = \"sh\"\npersistence = \"300s\"\n\
             persistence_netmask = \"/24\"\nsorry_server = \"172.18.250.90\"\n\
             [services.health]\nport = 80\n\n[[services]]\nfwmark = 4294967295\nports = [53]\n\
             protocol = \"udp\"\n",
            1,
        );
        config::parse_str("fwmark.toml", &text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn fwmark_services_get_their_rules_file_and_unit_lines() {
        let spec = fwmark_spec();
        let f = fwmark_rules(&spec).expect("rules");
        assert_eq!(f.path, "/etc/lvsup/web/fwmark.nft");
        assert!(
            f.content.contains(
                "ip daddr 172.18.250.99 tcp dport { 80, 443 } meta mark set 0x00000005 comment \"FWM 5\""
            ),
            "{}",
            f.content
        );
        assert!(
            f.content
                .contains("ip daddr 172.18.250.99 udp dport { 53 } meta mark set 0xffffffff"),
            "{}",
            f.content
        );
        let unit = unit_of(&spec, "dr1", &director_unit("web"));
        assert!(
            unit.contains("\nExecStartPre=+/usr/sbin/nft -f /etc/lvsup/web/fwmark.nft\n"),
            "{unit}"
        );
        assert!(
            unit.contains("\nExecReload=+/usr/sbin/nft -f /etc/lvsup/web/fwmark.nft\nExecReload=/bin/kill -HUP $MAINPID\n"),
            "{unit}"
        );
        let d = desired_cluster(&spec).expect("render");
        let dir = d.hosts.iter().find(|h| h.name == "dr1").expect("dr1");
        assert!(dir.files.iter().any(|x| x == &f));
        let t = &dir.ipvs[0];
        assert_eq!(
            (t.fwmark, t.port, t.persistence_netmask),
            (Some(5), 0, Some(24))
        );
        assert_eq!(t.label(), "FWM 5");
        assert!(t.destinations.iter().all(|x| x.port == 0));
        let sorry = t.sorry_server.as_ref().expect("sorry");
        assert_eq!(
            (sorry.port, sorry.weight, sorry.forward),
            (0, 1, Forward::Route)
        );
        // real servers get nothing of it; a cluster without fwmark neither
        let rs = d.hosts.iter().find(|h| h.name == "rs1").expect("rs1");
        assert!(!rs.files.iter().any(|x| x.path.ends_with(".nft")));
        let plain = example("minimal.toml");
        assert_eq!(fwmark_rules(&plain), None);
        assert!(!unit_of(&plain, "dr1", &director_unit("web")).contains("nft"));
    }

    /// The rules file loads in nft, twice (a reload replaces the table),
    /// in a throwaway user and network namespace (`unshare -rn`: no root,
    /// nothing left behind). nft (package nftables) is required: tests/run
    /// installs it; without it this test fails.
    #[test]
    fn fwmark_rules_load_in_nft_in_a_throwaway_namespace() {
        let nft = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or_else(|| {
                panic!("nft (package nftables) is required: apt-get install nftables")
            });
        let f = fwmark_rules(&fwmark_spec()).expect("rules");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fwmark.nft");
        std::fs::write(&path, &f.content).expect("write");
        let p = path.to_string_lossy();
        let out = std::process::Command::new("unshare")
            .args([
                "-rn",
                "sh",
                "-c",
                &format!("{nft} -f '{p}' && {nft} -f '{p}' && {nft} list ruleset"),
            ])
            .output()
            .unwrap_or_else(|e| panic!("unshare (util-linux) is required: {e}"));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}\n{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(text.matches("table ip lvsup_web").count(), 1, "{text}");
        assert!(
            text.contains("ip daddr 172.18.250.99 tcp dport { 80, 443 } meta mark set 0x00000005"),
            "{text}"
        );
        // and nft refuses a broken one (the check can fail)
        std::fs::write(
            &path,
            f.content.replace("prerouting priority", "prerouting prio"),
        )
        .expect("write");
        let bad = std::process::Command::new("unshare")
            .args(["-rn", nft, "-f", &p])
            .output()
            .expect("unshare");
        assert!(!bad.status.success());
    }

    #[test]
    fn director_unit_raises_the_file_descriptor_limit() {
        let spec = example("dr.toml");
        let unit = unit_of(&spec, "lvs191", &director_unit(&spec.name));
        assert!(unit.contains("\nLimitNOFILE=8192\n"), "{unit}");
        // many checks: more than the floor
        let mut big = spec.clone();
        let rs = big.real_servers[0].clone();
        big.real_servers = (0..3000).map(|_| rs.clone()).collect();
        assert_eq!(director_nofile(&big), 1024 + 4 * 3000 * big.services.len());
    }
}
