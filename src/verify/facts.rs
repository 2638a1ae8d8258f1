//! Parsing what hosts print (pure): `ip -j addr`, `ip -j route`, sysctl
//! listings, `lvsup ipvs list --json`, `ipvsadm -Ln` / `ipvsadm -Ln --stats`.
//! Malformed input is an error with context, never a panic.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::Deserialize;

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

#[derive(Deserialize)]
struct IpAddrIface {
    ifname: String,
    #[serde(default)]
    addr_info: Vec<IpAddrInfo>,
}

#[derive(Deserialize)]
struct IpAddrInfo {
    family: String,
    local: String,
}

/// `ip -j addr show` → (interface, IPv4 address) pairs.
pub fn parse_ip_addr(json: &str) -> Result<Vec<(String, Ipv4Addr)>, ParseError> {
    let v: Vec<IpAddrIface> =
        serde_json::from_str(json.trim()).map_err(|e| perr("ip -j addr", e))?;
    let mut out = Vec::new();
    for i in v {
        for a in i.addr_info {
            if a.family == "inet"
                && let Ok(ip) = a.local.parse::<Ipv4Addr>()
            {
                out.push((i.ifname.clone(), ip));
            }
        }
    }
    Ok(out)
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
    pub load: Option<super::analysis::Load>,
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
                        conns: d.stats.map_or(0, |s| s.conns),
                        load: Some(super::analysis::Load {
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
                        (Ok(active), Ok(inactive)) => {
                            Some(super::analysis::Load { active, inactive })
                        }
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

/// The marker a host prints before the ipvsadm fallback sections.
pub const IPVSADM_MARK: &str = "#lvsup-verify:ipvsadm";
pub const STATS_MARK: &str = "#lvsup-verify:stats";

/// The shell command that prints a table snapshot: lvsup's JSON when the
/// director has lvsup, else both ipvsadm listings after a marker.
pub fn table_command() -> String {
    format!(
        "PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/sbin:$PATH; \
         lvsup ipvs list --json 2>/dev/null || {{ echo '{IPVSADM_MARK}'; ipvsadm -Ln --exact && \
         echo '{STATS_MARK}' && ipvsadm -Ln --stats --exact; }}"
    )
}

/// Parse what [`table_command`] printed; returns the table and its source.
pub fn parse_table_output(out: &str) -> Result<(Vec<SvcSnap>, &'static str), ParseError> {
    if let Some(rest) = out.split_once(IPVSADM_MARK).map(|(_, r)| r) {
        let (list, stats) = rest.split_once(STATS_MARK).unwrap_or((rest, ""));
        return Ok((parse_ipvsadm(list, stats)?, FROM_IPVSADM));
    }
    Ok((parse_ipvs_json(out)?, FROM_LVSUP))
}

/// Split the output of a command made of sections separated by `marker` lines.
pub fn sections<'a>(out: &'a str, marker: &str) -> Vec<&'a str> {
    out.split(marker).collect()
}

/// `vrrp.state` of `lvsup director status --json` ("Initialize" | "Backup" |
/// "Master"); None when the output is not that JSON.
///
/// Read through the daemon's own type ([`crate::contract::status::Status`]),
/// so a renamed field cannot go unnoticed here; a daemon of another lvsup
/// version reads too (unknown fields are ignored, later ones are optional).
pub fn parse_vrrp_state(json: &str) -> Option<String> {
    serde_json::from_str::<crate::contract::status::Status>(json.trim())
        .ok()
        .map(|st| st.vrrp.state)
}

/// When the daemon of `lvsup director status --json` last became Master
/// (its last transition to Master, in ms since the Unix epoch, its own
/// clock); None when the output is not that JSON or it never did.
pub fn parse_master_since_ms(json: &str) -> Option<u64> {
    let st = serde_json::from_str::<crate::contract::status::Status>(json.trim()).ok()?;
    let t = st
        .vrrp
        .transitions
        .iter()
        .rev()
        // Notes are recorded as Master → Master: not a transition.
        .find(|t| t.to.eq_ignore_ascii_case("master") && !t.from.eq_ignore_ascii_case("master"))?;
    let at = humantime::parse_rfc3339(&t.at).ok()?;
    let ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    u64::try_from(ms).ok()
}

/// The last line of output ending in `date +%s%3N`: ms since the Unix epoch.
pub fn parse_epoch_ms(out: &str) -> Option<u64> {
    out.lines()
        .rev()
        .find(|l| !l.trim().is_empty())?
        .trim()
        .parse()
        .ok()
}

/// The shell command that lists the client ports of the IPVS connection
/// entries to `vip`: `/proc/net/ip_vs_conn` (hex: `TCP C0A80001 9C40
/// C0A80064 0050 ...`), filtered on the director so a busy table stays there.
pub fn conn_ports_command(protocol: &str, vip: SocketAddr) -> String {
    let (ip, port) = match vip {
        SocketAddr::V4(a) => (format!("{:08X}", u32::from(*a.ip())), a.port()),
        SocketAddr::V6(a) => (format!("{:032X}", u128::from(*a.ip())), a.port()),
    };
    format!(
        "awk 'toupper($1) == \"{}\" && toupper($4) == \"{ip}\" && toupper($5) == \"{port:04X}\" {{ print $3 }}' /proc/net/ip_vs_conn",
        protocol.to_ascii_uppercase()
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
    fn master_since_is_the_last_real_transition_to_master() {
        let fixture = include_str!("../../tests/fixtures/contract/director-status.json");
        // 2026-11-21T07:00:03.400Z
        assert_eq!(parse_master_since_ms(fixture), Some(1_795_244_403_400));
        let mut v: serde_json::Value = serde_json::from_str(fixture).expect("fixture");
        let tr = &mut v["vrrp"]["transitions"];
        let note = serde_json::json!({"at": "2026-11-21T08:00:00.000Z", "from": "Master",
            "to": "Master", "reason": "a note"});
        tr.as_array_mut().expect("array").push(note);
        assert_eq!(
            parse_master_since_ms(&v.to_string()),
            Some(1_795_244_403_400)
        );
        v["vrrp"]["transitions"] = serde_json::json!([]);
        assert_eq!(parse_master_since_ms(&v.to_string()), None);
        assert_eq!(parse_master_since_ms("not json"), None);
        assert_eq!(
            parse_epoch_ms("something\n1700000000123\n"),
            Some(1_700_000_000_123)
        );
        assert_eq!(parse_epoch_ms(""), None);
    }

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
}
