//! What `lvsup verify` looks at on a running cluster (pure): the commands,
//! rendered from `templates/scripts/verify-*.sh.j2`, and the parsers of
//! what they print — a director's addresses (who holds the VIP), a real
//! server's addresses, default route and ARP sysctls, a director's IPVS
//! table with its counters (`lvsup ipvs list --json`, or the `ipvsadm -Ln`
//! listings), the client ports of its connection entries. Sections are
//! `### name` lines, as in the facts. Host output is untrusted: malformed
//! input is an error with context, never a panic. `verify` decides what it
//! means.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use minijinja::context;
use serde::{Deserialize, Serialize};

use crate::script;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{what}: {why}")]
pub struct ParseError {
    pub what: String,
    pub why: String,
}

fn perr(what: &str, why: impl ToString) -> ParseError {
    ParseError {
        what: what.into(),
        why: why.to_string(),
    }
}

// ------------------------------------------------------------ addresses

/// The command that prints a host's addresses (`ip -j addr show`).
pub fn addresses_command() -> String {
    script::render_line("verify-addresses.sh.j2", context! {})
}

/// What [`addresses_command`] printed → (interface, IPv4 address) pairs,
/// read by the facts' own parser ([`super::parse_ip_addr`]).
pub fn parse_addresses(json: &str) -> Result<Vec<(String, Ipv4Addr)>, ParseError> {
    let list = super::parse_ip_addr(json).map_err(|e| perr("ip -j addr", e))?;
    Ok(list
        .into_iter()
        .flat_map(|i| {
            let name = i.name;
            i.addresses
                .into_iter()
                .map(move |a| (name.clone(), a.addr()))
        })
        .collect())
}

// ------------------------------------------------------------ real servers

/// What a real server showed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RealServerFacts {
    pub name: String,
    pub addrs: Vec<(String, Ipv4Addr)>,
    /// `net.ipv4.conf.<iface>.<key>` values, iface "all" included.
    pub sysctls: BTreeMap<(String, String), i64>,
    /// Gateway of the default route.
    pub default_gateway: Option<Ipv4Addr>,
    pub error: Option<String>,
}

/// The command that prints a real server's addresses, default route and
/// ARP/rp_filter sysctls as `### addr`, `### route`, `### sysctl`, `### end`.
pub fn rs_facts_command() -> String {
    script::render("verify-realserver.sh.j2", context! {})
}

/// Parse what [`rs_facts_command`] printed on real server `name`.
pub fn parse_rs_facts(name: &str, out: &str) -> RealServerFacts {
    let mut f = RealServerFacts {
        name: name.into(),
        ..Default::default()
    };
    let parts: BTreeMap<String, String> = match super::parse::sections(out.as_bytes()) {
        Ok(s) => s
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect(),
        Err(_) => BTreeMap::new(),
    };
    match (parts.get("addr"), parts.get("route"), parts.get("sysctl")) {
        (Some(addr), Some(route), Some(sysctls)) => {
            match parse_addresses(addr) {
                Ok(a) => f.addrs = a,
                Err(e) => f.error = Some(e.to_string()),
            }
            f.default_gateway = parse_default_gateway(route).ok().flatten();
            f.sysctls = parse_sysctls(sysctls);
        }
        _ => f.error = Some("unexpected output of the fact commands".into()),
    }
    f
}

#[derive(Deserialize)]
struct IpRoute {
    #[serde(default)]
    dst: String,
    gateway: Option<String>,
}

/// `ip -j route show default` → the default route's gateway.
pub fn parse_default_gateway(json: &str) -> Result<Option<Ipv4Addr>, ParseError> {
    let t = json.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let v: Vec<IpRoute> = serde_json::from_str(t).map_err(|e| perr("ip -j route", e))?;
    Ok(v.iter()
        .find(|r| r.dst == "default" || r.dst.is_empty())
        .and_then(|r| r.gateway.as_deref())
        .and_then(|g| g.parse().ok()))
}

/// `grep -H . /proc/sys/net/ipv4/conf/*/KEY` → {(iface, key): value}.
pub fn parse_sysctls(text: &str) -> BTreeMap<(String, String), i64> {
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let Some((path, val)) = line.split_once(':') else {
            continue;
        };
        let Some(rest) = path.strip_prefix("/proc/sys/net/ipv4/conf/") else {
            continue;
        };
        let Some((iface, key)) = rest.split_once('/') else {
            continue;
        };
        if let Ok(v) = val.trim().parse::<i64>() {
            m.insert((iface.to_string(), key.to_string()), v);
        }
    }
    m
}

// ------------------------------------------------------------ IPVS table

/// A destination's connection entries on the director, as IPVS counts them
/// for its schedulers: `activeconns` (ESTABLISHED) and `inactconns` (every
/// other state: SYN_RECV, FIN_WAIT, TIME_WAIT…). Live values, unlike the
/// `conns` totals (see `COUNTER_PERIOD` in `verify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Load {
    pub active: u32,
    pub inactive: u32,
}

/// One virtual service of a director's table, reduced to what verify reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SvcSnap {
    /// "tcp" / "udp" ("" for a fwmark service)
    pub protocol: String,
    pub addr: Option<SocketAddr>,
    /// A fwmark service's mark (`addr` is then `None`).
    pub fwmark: Option<u32>,
    pub scheduler: String,
    pub dests: Vec<DestSnap>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestSnap {
    pub addr: IpAddr,
    pub port: u16,
    pub weight: u32,
    /// Connections scheduled to it since it was added (stats.conns).
    pub conns: u64,
    /// Its live active/inactive connection entries (None: not reported).
    pub load: Option<Load>,
}

/// Where a table snapshot came from.
pub const FROM_LVSUP: &str = "lvsup ipvs list --json";
pub const FROM_IPVSADM: &str = "ipvsadm -Ln --exact + ipvsadm -Ln --stats --exact";

/// `lvsup ipvs list --json`, read through its own type
/// ([`crate::contract::ipvs_list::IpvsList`]).
pub fn parse_ipvs_json(json: &str) -> Result<Vec<SvcSnap>, ParseError> {
    use crate::ipvs::ServiceId;
    let t = crate::contract::ipvs_list::IpvsList::parse(json).map_err(|e| perr(FROM_LVSUP, e))?;
    Ok(t.services
        .into_iter()
        .map(|s| {
            let (protocol, addr, fwmark) = match s.id {
                ServiceId::Addr { protocol, addr } => {
                    (protocol.name().to_ascii_lowercase(), Some(addr), None)
                }
                ServiceId::Fwmark { mark, .. } => (String::new(), None, Some(mark)),
            };
            SvcSnap {
                protocol,
                addr,
                fwmark,
                scheduler: s.scheduler,
                dests: s
                    .destinations
                    .into_iter()
                    .map(|d| DestSnap {
                        addr: d.addr,
                        port: d.port,
                        weight: d.weight,
                        conns: d.stats.as_ref().map_or(0, |s| s.conns),
                        load: Some(Load {
                            active: d.active_conns,
                            inactive: d.inact_conns,
                        }),
                    })
                    .collect(),
            }
        })
        .collect())
}

fn parse_sockaddr(s: &str) -> Option<SocketAddr> {
    s.parse().ok()
}

/// Both ipvsadm listings: `-Ln --exact` (weights) and `-Ln --stats --exact` (conns).
pub fn parse_ipvsadm(list: &str, stats: &str) -> Result<Vec<SvcSnap>, ParseError> {
    let mut svcs: Vec<SvcSnap> = Vec::new();
    for line in list.lines() {
        let tok: Vec<&str> = line.split_whitespace().collect();
        match tok.as_slice() {
            [p, a, sched, ..] if *p == "TCP" || *p == "UDP" => svcs.push(SvcSnap {
                protocol: p.to_ascii_lowercase(),
                addr: Some(
                    parse_sockaddr(a)
                        .ok_or_else(|| perr("ipvsadm -Ln", format!("bad address {a}")))?,
                ),
                fwmark: None,
                scheduler: (*sched).to_string(),
                dests: vec![],
            }),
            // `FWM  5 wlc persistent 1800 mask 255.255.255.0`
            ["FWM", m, sched, ..] => svcs.push(SvcSnap {
                protocol: String::new(),
                addr: None,
                fwmark: Some(
                    m.parse()
                        .map_err(|_| perr("ipvsadm -Ln", format!("bad fwmark {m}")))?,
                ),
                scheduler: (*sched).to_string(),
                dests: vec![],
            }),
            ["->", a, _fwd, w, rest @ ..] if *a != "RemoteAddress:Port" => {
                let sa = parse_sockaddr(a)
                    .ok_or_else(|| perr("ipvsadm -Ln", format!("bad address {a}")))?;
                let weight = w
                    .parse()
                    .map_err(|_| perr("ipvsadm -Ln", format!("bad weight {w}")))?;
                let s = svcs
                    .last_mut()
                    .ok_or_else(|| perr("ipvsadm -Ln", "destination before any service"))?;
                // ActiveConn InActConn
                let load = match rest {
                    [act, inact, ..] => match (act.parse(), inact.parse()) {
                        (Ok(active), Ok(inactive)) => Some(Load { active, inactive }),
                        _ => None,
                    },
                    _ => None,
                };
                s.dests.push(DestSnap {
                    addr: sa.ip(),
                    port: sa.port(),
                    weight,
                    conns: 0,
                    load,
                });
            }
            _ => {}
        }
    }
    let mut cur: Option<usize> = None;
    for line in stats.lines() {
        let tok: Vec<&str> = line.split_whitespace().collect();
        match tok.as_slice() {
            [p, a, ..] if *p == "TCP" || *p == "UDP" => {
                let sa = parse_sockaddr(a);
                let proto = p.to_ascii_lowercase();
                cur = svcs
                    .iter()
                    .position(|s| s.addr == sa && s.protocol == proto);
            }
            ["FWM", m, ..] => {
                let m = m.parse::<u32>().ok();
                cur = svcs.iter().position(|s| m.is_some() && s.fwmark == m);
            }
            ["->", a, conns, ..] if *a != "RemoteAddress:Port" => {
                let (Some(i), Some(sa)) = (cur, parse_sockaddr(a)) else {
                    continue;
                };
                let n: u64 = conns.parse().map_err(|_| {
                    perr(
                        "ipvsadm -Ln --stats",
                        format!("bad count {conns} (need --exact)"),
                    )
                })?;
                if let Some(d) = svcs[i]
                    .dests
                    .iter_mut()
                    .find(|d| d.addr == sa.ip() && d.port == sa.port())
                {
                    d.conns = n;
                }
            }
            _ => {}
        }
    }
    Ok(svcs)
}

/// The section line a director prints before each ipvsadm listing of the
/// fallback (`### ipvsadm`, then `### stats`).
const IPVSADM_SECTION: &str = "### ipvsadm";
const STATS_SECTION: &str = "### stats";

/// The command that prints a table snapshot: lvsup's JSON when the
/// director has lvsup, else both ipvsadm listings after `### ipvsadm` and
/// `### stats` lines.
pub fn table_command() -> String {
    script::render("verify-ipvs-table.sh.j2", context! {})
}

/// The text after the line `line` of `out`, if `out` has that line.
fn after_line<'a>(out: &'a str, line: &str) -> Option<(&'a str, &'a str)> {
    let mut at = 0;
    for l in out.split_inclusive('\n') {
        if l.trim_end_matches(['\n', '\r']) == line {
            return Some((&out[..at], &out[at + l.len()..]));
        }
        at += l.len();
    }
    None
}

/// Parse what [`table_command`] printed; returns the table and its source.
pub fn parse_table_output(out: &str) -> Result<(Vec<SvcSnap>, &'static str), ParseError> {
    if let Some((_, rest)) = after_line(out, IPVSADM_SECTION) {
        let (list, stats) = after_line(rest, STATS_SECTION).unwrap_or((rest, ""));
        return Ok((parse_ipvsadm(list, stats)?, FROM_IPVSADM));
    }
    Ok((parse_ipvs_json(out)?, FROM_LVSUP))
}

/// The command that lists the client ports of the IPVS connection entries
/// to `vip` (`protocol`: `tcp`, `udp`): `/proc/net/ip_vs_conn` (hex: `TCP
/// C0A80001 9C40 C0A80064 0050 ...`), filtered on the director so a busy
/// table stays there.
pub fn conn_ports_command(protocol: &str, vip: SocketAddr) -> String {
    let (ip, port) = match vip {
        SocketAddr::V4(a) => (format!("{:08X}", u32::from(*a.ip())), a.port()),
        SocketAddr::V6(a) => (format!("{:032X}", u128::from(*a.ip())), a.port()),
    };
    script::render_line(
        "verify-conn-ports.sh.j2",
        context! {
            protocol => protocol.to_ascii_uppercase(),
            ip,
            port => format!("{port:04X}"),
        },
    )
}

/// The ports [`conn_ports_command`] printed (hex, one a line); junk is skipped.
pub fn parse_conn_ports(out: &str) -> std::collections::HashSet<u16> {
    out.lines()
        .filter_map(|l| u16::from_str_radix(l.trim(), 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fwmark_services_in_both_table_sources() {
        let list = "IP Virtual Server version 1.2.1 (size=4096)\n\
                    Prot LocalAddress:Port Scheduler Flags\n  \
                    -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
                    FWM  5 wlc persistent 1800 mask 255.255.255.0\n  \
                    -> 192.168.0.171:0              Route   1      2          3\n\
                    TCP  192.168.0.100:80 rr\n  \
                    -> 192.168.0.172:80             Route   1      0          0\n";
        let stats = "FWM  5  10 20 30 400 500\n  \
                     -> 192.168.0.171:0  7 1 1 1 1\n";
        let t = parse_ipvsadm(list, stats).expect("parse");
        assert_eq!((t[0].fwmark, t[0].addr), (Some(5), None));
        assert_eq!((t[0].dests[0].port, t[0].dests[0].conns), (0, 7));
        assert_eq!(t[1].fwmark, None);
        let json = crate::contract::ipvs_list::IpvsList {
            version: 0x01_02_01,
            conn_tab_size: 4096,
            services: vec![crate::ipvs::Service::new(
                crate::ipvs::ServiceId::fwmark(5),
                "wlc",
            )],
        }
        .to_json()
        .expect("json")
        .to_string();
        let t = parse_ipvs_json(&json).expect("parse");
        assert_eq!((t[0].fwmark, t[0].addr), (Some(5), None));
    }

    /// The sections the command prints, in the output as a host gives it.
    #[test]
    fn real_server_sections_parse_and_a_cut_output_is_an_error() {
        let out = "### addr\n[{\"ifname\":\"lo\",\"flags\":[\"UP\"],\"addr_info\":\
                   [{\"family\":\"inet\",\"local\":\"192.168.0.100\",\"prefixlen\":32}]}]\n\
                   ### route\n[{\"dst\":\"default\",\"gateway\":\"192.168.0.1\",\"dev\":\"eth0\"}]\n\
                   ### sysctl\n/proc/sys/net/ipv4/conf/all/arp_ignore:1\n\
                   /proc/sys/net/ipv4/conf/lo/rp_filter:0\n### end\n";
        let f = parse_rs_facts("node1", out);
        assert_eq!(f.error, None);
        assert_eq!(
            f.addrs,
            [("lo".to_string(), Ipv4Addr::new(192, 168, 0, 100))]
        );
        assert_eq!(f.default_gateway, Some(Ipv4Addr::new(192, 168, 0, 1)));
        assert_eq!(f.sysctls[&("all".into(), "arp_ignore".into())], 1);
        assert_eq!(f.sysctls[&("lo".into(), "rp_filter".into())], 0);
        for cut in [
            out.replace("### end\n", ""),
            out.replace("### route\n", ""),
            String::new(),
        ] {
            let f = parse_rs_facts("node1", &cut);
            assert_eq!(
                f.error.as_deref(),
                Some("unexpected output of the fact commands"),
                "{cut}"
            );
        }
        let bad = parse_rs_facts("node1", &out.replace("[{\"ifname\":\"lo\"", "[{"));
        assert!(bad.error.is_some_and(|e| e.starts_with("ip -j addr: ")));
    }

    /// The ipvsadm sections are found as whole lines, wherever they are.
    #[test]
    fn the_ipvsadm_fallback_is_found_by_its_section_lines() {
        let out = "### ipvsadm\nTCP  10.0.0.100:80 rr\n  -> 10.0.0.11:80 Route 3 1 2\n\
                   ### stats\nTCP  10.0.0.100:80 9 0 0 0 0\n  -> 10.0.0.11:80 9 0 0 0 0\n";
        let (t, from) = parse_table_output(out).expect("parses");
        assert_eq!(from, FROM_IPVSADM);
        assert_eq!((t[0].dests[0].weight, t[0].dests[0].conns), (3, 9));
        // a section name inside a line is not a section
        assert!(parse_table_output("x ### ipvsadm\n").is_err());
    }
}
