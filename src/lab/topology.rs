//! The lab topology of a cluster (pure): which bridges, network namespaces,
//! veth links and addresses `lvsup lab up` creates so that every director and
//! real server of the file exists at its own address, plus a client and the
//! operator (the machine running lvsup, in the root namespace).
//!
//! - DR and TUN: one layer-2 segment (one bridge) holding every host. Hosts on
//!   different subnets (allowed in TUN) get on-link routes to each other.
//! - NAT: an external segment (directors' `address`, the client, the operator)
//!   and an internal one (directors' `internal_address`, the real servers). The
//!   operator also has a leg on the internal segment — its management network,
//!   so it can reach the real servers over SSH — while the client has none:
//!   the client reaches the real servers only through the VIP.
//! - The operator's and the client's addresses are the highest free addresses
//!   of their subnets.
//!
//! All names are derived from the cluster name, so `lab down` finds everything
//! again from the file alone, even after a crash halfway through `lab up`.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Serialize;

use crate::config::{ClusterSpec, Mode, Protocol};

/// Where a lab keeps its state, keys and host filesystems (a tmpfs).
pub const STATE_ROOT: &str = "/run/lvsup-lab";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Topology {
    pub cluster: String,
    /// 6 hex digits derived from the cluster name; keeps link names short and unique.
    pub id: String,
    pub segments: Vec<Segment>,
    pub hosts: Vec<LabHost>,
    pub client: Node,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Segment {
    /// "external" or "internal"
    pub role: String,
    pub bridge: String,
    pub subnets: Vec<Ipv4Net>,
    /// The operator's addresses on this bridge, one per subnet.
    pub operator: Vec<Ipv4Net>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostRole {
    Director,
    RealServer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabHost {
    pub name: String,
    pub role: HostRole,
    /// systemd-nspawn machine name (also the cgroup name).
    pub machine: String,
    /// The management address (SSH).
    pub address: Ipv4Addr,
    pub node: Node,
    /// Demo web server ports (real servers): one per TCP service, the real server's port.
    pub demo_ports: Vec<u16>,
    /// Demo UDP responder ports (real servers): one per UDP service, the real server's port.
    pub demo_udp_ports: Vec<u16>,
}

/// A network namespace with its links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    pub netns: String,
    pub links: Vec<Link>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    /// Name inside the namespace: eth0, eth1.
    pub ifname: String,
    /// The veth peer's name in the root namespace, enslaved to `bridge`.
    pub peer: String,
    pub bridge: String,
    pub address: Ipv4Net,
    /// Other subnets of the same segment, reached on-link.
    pub onlink: Vec<Ipv4Net>,
}

impl Topology {
    pub fn state_dir(&self) -> String {
        format!("{STATE_ROOT}/{}", self.cluster)
    }

    pub fn host(&self, name: &str) -> Option<&LabHost> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// Every namespace the lab creates.
    pub fn namespaces(&self) -> Vec<&str> {
        self.hosts
            .iter()
            .map(|h| h.node.netns.as_str())
            .chain([self.client.netns.as_str()])
            .collect()
    }
}

/// FNV-1a 32 of the name, 6 hex digits.
pub fn lab_id(cluster: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in cluster.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{:06x}", h & 0x00ff_ffff)
}

/// The highest address of `net` (below broadcast) not in `used`.
fn free_addr(net: Ipv4Net, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Net> {
    let first = u32::from(net.network());
    let last = u32::from(net.broadcast());
    (first + 1..last)
        .rev()
        .map(Ipv4Addr::from)
        .find(|a| !used.contains(a))
        .and_then(|a| Ipv4Net::new(a, net.prefix_len()).ok())
}

fn push_unique(v: &mut Vec<Ipv4Net>, n: Ipv4Net) {
    let n = n.trunc();
    if !v.contains(&n) {
        v.push(n);
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("lab topology: no free address left on {0} for the operator or the client")]
pub struct NoFreeAddress(pub Ipv4Net);

pub fn topology(spec: &ClusterSpec) -> Result<Topology, NoFreeAddress> {
    let id = lab_id(&spec.name);
    let nat = spec.mode == Mode::Nat;
    let ext_bridge = format!("lvb{id}e");
    let int_bridge = format!("lvb{id}i");

    let mut used: BTreeSet<Ipv4Addr> = BTreeSet::new();
    used.extend(spec.vips());
    for d in &spec.directors {
        used.insert(d.address.addr());
        if let Some(i) = d.internal_address {
            used.insert(i.addr());
        }
    }
    for r in &spec.real_servers {
        used.insert(r.address.addr());
    }
    if let Some(n) = &spec.nat {
        used.insert(n.gateway.addr());
    }

    // Subnets per segment.
    let mut ext: Vec<Ipv4Net> = Vec::new();
    let mut int: Vec<Ipv4Net> = Vec::new();
    for d in &spec.directors {
        push_unique(&mut ext, d.address);
        if let Some(i) = d.internal_address {
            push_unique(&mut int, i);
        }
    }
    for r in &spec.real_servers {
        push_unique(if nat { &mut int } else { &mut ext }, r.address);
    }
    if !ext.iter().any(|n| n.contains(&spec.vip)) {
        // The client needs an address next to the VIP.
        if let Ok(n) = Ipv4Net::new(spec.vip, 24) {
            push_unique(&mut ext, n);
        }
    }
    if let Some(n) = &spec.nat {
        push_unique(&mut int, n.gateway);
    }

    let mut alloc = |net: Ipv4Net| -> Result<Ipv4Net, NoFreeAddress> {
        let a = free_addr(net, &used).ok_or(NoFreeAddress(net))?;
        used.insert(a.addr());
        Ok(a)
    };
    let ext_operator = ext
        .iter()
        .map(|n| alloc(*n))
        .collect::<Result<Vec<_>, _>>()?;
    let int_operator = int
        .iter()
        .map(|n| alloc(*n))
        .collect::<Result<Vec<_>, _>>()?;
    let vip_net = ext
        .iter()
        .find(|n| n.contains(&spec.vip))
        .copied()
        .unwrap_or(ext[0]);
    let client_addr = alloc(vip_net)?;

    let mut segments = vec![Segment {
        role: "external".into(),
        bridge: ext_bridge.clone(),
        subnets: ext.clone(),
        operator: ext_operator,
    }];
    if nat {
        segments.push(Segment {
            role: "internal".into(),
            bridge: int_bridge.clone(),
            subnets: int.clone(),
            operator: int_operator,
        });
    }

    let link = |ifname: &str, peer: String, bridge: &str, address: Ipv4Net, seg: &[Ipv4Net]| Link {
        ifname: ifname.into(),
        peer,
        bridge: bridge.into(),
        address,
        onlink: seg
            .iter()
            .filter(|n| **n != address.trunc())
            .copied()
            .collect(),
    };

    let mut hosts = Vec::new();
    let mut n = 0usize;
    for d in &spec.directors {
        n += 1;
        let mut links = vec![link(
            "eth0",
            format!("ve{id}{n:02}a"),
            &ext_bridge,
            d.address,
            &ext,
        )];
        if let Some(i) = d.internal_address {
            links.push(link("eth1", format!("ve{id}{n:02}b"), &int_bridge, i, &int));
        }
        hosts.push(LabHost {
            name: d.name.clone(),
            role: HostRole::Director,
            machine: machine_name(&id, &d.name),
            address: d.address.addr(),
            node: Node {
                netns: format!("lvsup-{}-{}", spec.name, d.name),
                links,
            },
            demo_ports: vec![],
            demo_udp_ports: vec![],
        });
    }
    for r in &spec.real_servers {
        n += 1;
        let (bridge, seg) = if nat {
            (&int_bridge, &int)
        } else {
            (&ext_bridge, &ext)
        };
        let ports_of = |proto: Protocol| {
            let mut ports: Vec<u16> = spec
                .services
                .iter()
                .filter(|s| s.protocol == proto && r.serves(s))
                .flat_map(|s| match &s.fwmark {
                    // a fwmark service: every marked port (the packet keeps its port)
                    Some(f) => f.ports.clone(),
                    None => vec![r.port_for(s)],
                })
                .collect();
            ports.sort_unstable();
            ports.dedup();
            ports
        };
        hosts.push(LabHost {
            name: r.name.clone(),
            role: HostRole::RealServer,
            machine: machine_name(&id, &r.name),
            address: r.address.addr(),
            node: Node {
                netns: format!("lvsup-{}-{}", spec.name, r.name),
                links: vec![link(
                    "eth0",
                    format!("ve{id}{n:02}a"),
                    bridge,
                    r.address,
                    seg,
                )],
            },
            demo_ports: ports_of(Protocol::Tcp),
            demo_udp_ports: ports_of(Protocol::Udp),
        });
    }

    Ok(Topology {
        cluster: spec.name.clone(),
        id: id.clone(),
        segments,
        hosts,
        client: Node {
            netns: format!("lvsup-{}-client", spec.name),
            links: vec![link(
                "eth0",
                format!("ve{id}00c"),
                &ext_bridge,
                client_addr,
                &ext,
            )],
        },
    })
}

/// A valid hostname of at most 64 characters (systemd's machine-name limit).
fn machine_name(id: &str, host: &str) -> String {
    let mut m = format!("lvsup-{id}-{host}");
    m.truncate(64);
    m.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn example(name: &str) -> ClusterSpec {
        let path = format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"));
        config::load(std::path::Path::new(&path)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("net")
    }

    #[test]
    fn dr_is_one_segment_with_operator_and_client_at_the_top_of_the_subnet() {
        let t = topology(&example("dr.toml")).expect("topology");
        assert_eq!(t.segments.len(), 1);
        let s = &t.segments[0];
        assert_eq!(s.subnets, [net("192.168.0.0/24")]);
        assert_eq!(s.operator, [net("192.168.0.254/24")]);
        assert_eq!(t.client.links[0].address, net("192.168.0.253/24"));
        assert_eq!(t.hosts.len(), 4);
        assert!(t.hosts.iter().all(|h| h.node.links.len() == 1));
        let node1 = t.host("node1").expect("node1");
        assert_eq!(node1.demo_ports, [80]);
        // a fwmark service: a demo server on every marked port
        let fw = topology(&example("fwmark.toml")).expect("topology");
        let fw_node1 = fw.host("node1").expect("node1");
        assert_eq!(fw_node1.demo_ports, [80, 443]);
        assert_eq!(node1.node.netns, "lvsup-web-node1");
        // link names fit IFNAMSIZ
        for h in &t.hosts {
            for l in &h.node.links {
                assert!(l.peer.len() <= 15 && l.bridge.len() <= 15, "{l:?}");
            }
        }
    }

    #[test]
    fn nat_has_two_segments_and_the_client_only_the_external_one() {
        let t = topology(&example("nat.toml")).expect("topology");
        assert_eq!(t.segments.len(), 2);
        assert_eq!(t.segments[1].subnets, [net("192.168.10.0/24")]);
        // operator on both (management); gateway .254 is taken, so .253
        assert_eq!(t.segments[1].operator, [net("192.168.10.253/24")]);
        assert_eq!(t.client.links.len(), 1);
        assert_eq!(t.client.links[0].bridge, t.segments[0].bridge);
        let nat1 = t.host("nat1").expect("nat1");
        assert_eq!(nat1.node.links.len(), 2);
        assert_eq!(nat1.node.links[1].ifname, "eth1");
        let app1 = t.host("app1").expect("app1");
        assert_eq!(app1.node.links[0].bridge, t.segments[1].bridge);
        assert_eq!(app1.demo_ports, [8080], "the real server's own port");
        assert!(app1.demo_udp_ports.is_empty(), "no UDP service");
    }

    #[test]
    fn tun_real_servers_on_other_subnets_get_onlink_routes() {
        let mut spec = example("tun.toml");
        spec.real_servers[1].address = net("10.9.0.2/24");
        let t = topology(&spec).expect("topology");
        assert_eq!(t.segments[0].subnets.len(), 2);
        let rs2 = t.host("rs2").expect("rs2");
        assert_eq!(rs2.node.links[0].onlink, [net("192.168.0.0/24")]);
        // The example's UDP service gets the demo UDP responder, its TCP
        // service the web server; directors get neither.
        assert_eq!(rs2.demo_ports, [80]);
        assert_eq!(rs2.demo_udp_ports, [53]);
        let dir1 = t.host("dir1").expect("dir1");
        assert!(dir1.demo_ports.is_empty() && dir1.demo_udp_ports.is_empty());
        assert_eq!(
            t.segments[0].operator.len(),
            2,
            "operator reaches both subnets"
        );
    }

    #[test]
    fn names_are_derived_from_the_cluster_name_only() {
        let a = topology(&example("dr.toml")).expect("a");
        let b = topology(&example("minimal.toml")).expect("b");
        // both clusters are called "web": same id, same bridge (one lab per name)
        assert_eq!(a.id, b.id);
        assert_eq!(a.id, lab_id("web"));
        assert_eq!(a.segments[0].bridge, format!("lvb{}e", a.id));
    }
}
