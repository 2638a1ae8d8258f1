//! What the facts script printed (`### section` blocks), parsed (pure,
//! tested on outputs recorded from lab hosts) into [`plan::Observed`] plus
//! host facts; what those facts say is missing on a host.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::config::{ClusterSpec, Forward, Mode, Protocol};
use crate::contract::status::Status;
use crate::desired::{Destination, HostState, Interface, Role, VirtualService};
use crate::plan::Observed;

use super::previous_sysctl_path;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModuleState {
    Loaded,
    Available,
    Missing,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Iface {
    pub name: String,
    pub up: bool,
    pub addresses: Vec<Ipv4Net>,
}

/// One IPVS destination as `/proc/net/ip_vs` shows it, with its counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveDest {
    pub address: Ipv4Addr,
    pub port: u16,
    pub forward: String,
    pub weight: u32,
    pub active: u64,
    pub inactive: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveService {
    /// "TCP", "UDP", "SCTP"; "FWM" for a fwmark service.
    pub protocol: String,
    /// 0.0.0.0 for a fwmark service.
    pub vip: Ipv4Addr,
    /// 0 for a fwmark service.
    pub port: u16,
    /// A fwmark service's mark.
    pub fwmark: Option<u32>,
    pub scheduler: String,
    pub persistence: Option<u32>,
    /// A persistent service's netmask (host order), as the kernel prints it.
    pub netmask: Option<u32>,
    pub destinations: Vec<LiveDest>,
}

impl LiveService {
    pub fn label(&self) -> String {
        match self.fwmark {
            Some(m) => format!("FWM {m}"),
            None => format!("{} {}:{}", self.protocol, self.vip, self.port),
        }
    }
}

/// What one round trip told about a host.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub os: String,
    pub arch: String,
    pub kernel: String,
    pub distro: String,
    /// `2.36`; `None` when not glibc.
    pub glibc: Option<String>,
    pub uid: Option<u32>,
    pub systemd: bool,
    pub init: String,
    pub interfaces: Vec<Iface>,
    pub modules: BTreeMap<String, ModuleState>,
    pub binary_sha256: Option<String>,
    /// `None` when the host is not a director or the daemon is not installed;
    /// `Err` with what it said when it did not answer with its status JSON.
    pub daemon: Option<Result<Status, String>>,
    /// `None` when `/proc/net/ip_vs` is absent (no ip_vs loaded) or not a director.
    pub ipvs: Option<Vec<LiveService>>,
    /// Directors: whether `nft` is installed (fwmark services need it);
    /// `None` when not reported.
    pub nft: Option<bool>,
    /// Previous values recorded by an earlier apply.
    pub previous_sysctls: Option<BTreeMap<String, Option<String>>>,
    /// The undo records an interrupted `lvsup verify` left, as
    /// [`crate::observe::verify_undo_list_command`] lists them (raw; read by
    /// `crate::verify::undo::parse_listing`).
    pub verify_undo: String,
    pub observed: Observed,
}

#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    #[error("facts output is incomplete (no end marker): the script was cut short")]
    Truncated,
    #[error("facts: {0}")]
    Malformed(String),
}

#[derive(Deserialize)]
struct IpAddrJson {
    ifname: String,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    addr_info: Vec<AddrInfoJson>,
}

#[derive(Deserialize)]
struct AddrInfoJson {
    family: String,
    local: Option<String>,
    prefixlen: Option<u8>,
}

/// `ip -j addr` (iproute2's JSON): every interface, whether it is up, and
/// its IPv4 addresses (an entry without an address or a prefix length, which
/// iproute2 always prints, is left out). The facts' `addr` section and
/// verify's polls ([`super::live`]) read it so.
pub fn parse_ip_addr(json: &str) -> Result<Vec<Iface>, serde_json::Error> {
    let list: Vec<IpAddrJson> = serde_json::from_str(json.trim())?;
    Ok(list
        .into_iter()
        .map(|i| Iface {
            up: i.flags.iter().any(|x| x == "UP"),
            addresses: i
                .addr_info
                .iter()
                .filter(|a| a.family == "inet")
                .filter_map(|a| {
                    let ip: Ipv4Addr = a.local.as_deref()?.parse().ok()?;
                    Ipv4Net::new(ip, a.prefixlen?).ok()
                })
                .collect(),
            name: i.ifname,
        })
        .collect())
}

/// The largest file the facts may carry: lvsup's own files are a few KB (a
/// director.toml with hundreds of real servers stays far below this).
pub const MAX_FILE_BYTES: usize = 4 << 20;
/// The largest facts output parsed: a host that sends more is broken or hostile.
pub const MAX_OUTPUT_BYTES: usize = 64 << 20;

/// Split the raw output into sections. The files come as a `### file-sizes`
/// block (`stat -c '%s %n'`: `N PATH` per line) and a `### file-contents`
/// block with their bytes back to back (one `cat`), which become one
/// `file PATH` section each. Host output is untrusted: lengths are checked
/// before any arithmetic or slicing (a length of 18446744073709551615 once
/// overflowed here), so bad output is an error, never a panic.
pub(super) fn sections(out: &[u8]) -> Result<Vec<(String, Vec<u8>)>, FactsError> {
    if out.len() > MAX_OUTPUT_BYTES {
        return Err(FactsError::Malformed(format!(
            "{} bytes of output, more than the {} MiB a host's facts can be",
            out.len(),
            MAX_OUTPUT_BYTES >> 20
        )));
    }
    let mut res: Vec<(String, Vec<u8>)> = Vec::new();
    let mut i = 0;
    let mut ended = false;
    while i < out.len() {
        let end = out[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(out.len(), |p| i + p);
        let line = String::from_utf8_lossy(&out[i..end]).into_owned();
        let next = (end + 1).min(out.len());
        if let Some(head) = line.strip_prefix("### ") {
            if head == "file-contents" {
                let sizes = match res.pop() {
                    Some((name, body)) if name == "file-sizes" => file_sizes(&body)?,
                    _ => {
                        return Err(FactsError::Malformed(
                            "file contents without their sizes".into(),
                        ));
                    }
                };
                i = file_contents(out, next, sizes, &mut res)?;
                continue;
            }
            if head == "end" {
                ended = true;
                break;
            }
            res.push((head.to_string(), Vec::new()));
        } else if let Some(last) = res.last_mut() {
            last.1.extend_from_slice(&out[i..next]);
        }
        i = next;
    }
    if !ended {
        return Err(FactsError::Truncated);
    }
    Ok(res)
}

/// The `### file-sizes` block: `N PATH` per line, each N at most
/// [`MAX_FILE_BYTES`].
fn file_sizes(body: &[u8]) -> Result<Vec<(usize, String)>, FactsError> {
    let text = String::from_utf8_lossy(body);
    let mut sizes = Vec::new();
    for line in text.lines() {
        let bad = || FactsError::Malformed(format!("bad file size line {line:?}"));
        let (n, path) = line.split_once(' ').ok_or_else(bad)?;
        let n: usize = n.parse().map_err(|_| bad())?;
        if n > MAX_FILE_BYTES || path.is_empty() {
            return Err(FactsError::Malformed(format!(
                "bad file size line {line:?}: lvsup's files are at most {} MiB and have a path",
                MAX_FILE_BYTES >> 20
            )));
        }
        sizes.push((n, path.to_string()));
    }
    Ok(sizes)
}

/// Cut the bytes from `start` into the files of `sizes`, push them as
/// `file PATH` sections, and return where the output goes on. The `echo`
/// after the bytes and the next section's header must follow exactly: a
/// file that grew, shrank or went away between `stat` and `cat` shifts them.
fn file_contents(
    out: &[u8],
    start: usize,
    sizes: Vec<(usize, String)>,
    res: &mut Vec<(String, Vec<u8>)>,
) -> Result<usize, FactsError> {
    let mut at = start;
    for (n, path) in sizes {
        let stop = at.checked_add(n).ok_or(FactsError::Truncated)?;
        if stop > out.len() {
            return Err(FactsError::Truncated);
        }
        res.push((format!("file {path}"), out[at..stop].to_vec()));
        at = stop;
    }
    if out.get(at) != Some(&b'\n') || !out[at + 1..].starts_with(b"### ") {
        return Err(FactsError::Malformed(
            "a file changed while it was read (its size and its bytes disagree): run again".into(),
        ));
    }
    Ok(at + 1)
}

/// Parse the output of [`super::script`] for host `want` of `spec`. `local_sha256`
/// is the hash of the binary apply would install.
pub fn parse(
    spec: &ClusterSpec,
    want: &HostState,
    out: &[u8],
    local_sha256: &str,
) -> Result<Facts, FactsError> {
    let mut f = Facts::default();
    // Persistence timeouts from the kernel over netlink (our binary on the host) and
    // the kernel's HZ: /proc/net/ip_vs prints the timeout in jiffies.
    let mut netlink_persistence: Option<PersistenceByService> = None;
    let mut hz: Option<u32> = None;
    let names: BTreeMap<Ipv4Addr, &str> = spec
        .real_servers
        .iter()
        .map(|r| (r.address.addr(), r.name.as_str()))
        .collect();
    for (name, body) in sections(out)? {
        let text = String::from_utf8_lossy(&body).into_owned();
        match name.as_str() {
            "os" => {
                let l: Vec<&str> = text.lines().collect();
                let get = |i: usize| l.get(i).map(|s| s.trim().to_string()).unwrap_or_default();
                f.os = get(0);
                f.arch = get(1);
                f.kernel = get(2);
                f.distro = get(3);
                f.glibc = get(4).strip_prefix("glibc ").map(|v| v.trim().to_string());
                f.uid = get(5).parse().ok();
            }
            "init" => {
                let t = text.trim();
                f.systemd = t == "systemd";
                f.init = t.to_string();
            }
            "addr" => {
                let list = parse_ip_addr(&text)
                    .map_err(|e| FactsError::Malformed(format!("ip -j addr: {e}")))?;
                for i in list {
                    for a in &i.addresses {
                        f.observed.addresses.insert((i.name.clone(), a.to_string()));
                    }
                    f.interfaces.push(i);
                }
            }
            "route" => {
                for l in text.lines() {
                    let w: Vec<&str> = l.split_whitespace().collect();
                    if w.len() >= 3 && w[1] == "via" {
                        f.observed.routes.insert(format!("{} via {}", w[0], w[2]));
                    }
                }
            }
            "sysctl" => {
                for l in text.lines() {
                    if let Some((k, v)) = l.split_once('=') {
                        f.observed
                            .sysctls
                            .insert(k.trim().to_string(), v.trim().to_string());
                    }
                }
            }
            "modules" => {
                for l in text.lines() {
                    let mut w = l.split_whitespace();
                    if let (Some(m), Some(st)) = (w.next(), w.next()) {
                        let st = match st {
                            "loaded" => ModuleState::Loaded,
                            "available" => ModuleState::Available,
                            _ => ModuleState::Missing,
                        };
                        if st == ModuleState::Loaded {
                            f.observed.modules_loaded.insert(m.to_string());
                        }
                        f.modules.insert(m.to_string(), st);
                    }
                }
            }
            "binary" => {
                let h = text.trim();
                if !h.is_empty() {
                    f.binary_sha256 = Some(h.to_string());
                    f.observed.binary_current = h == local_sha256;
                }
            }
            "units" => {
                for (unit, enabled, active) in parse_units(&text) {
                    f.observed.units.insert(unit, (enabled, active));
                }
            }
            "ipvs" => {
                if !text.trim().is_empty() {
                    f.ipvs = Some(parse_proc_ip_vs(&text)?);
                }
            }
            "ipvs-netlink" => netlink_persistence = parse_ipvs_list_persistence(&text),
            "nft" => f.nft = Some(!text.trim().is_empty()),
            "verify-undo" => f.verify_undo = text,
            "hz" => {
                hz = text
                    .trim()
                    .strip_prefix("CONFIG_HZ=")
                    .and_then(|v| v.parse::<u32>().ok())
                    .filter(|v| *v > 0);
            }
            "daemon" => {
                let t = text.trim();
                if !t.is_empty() {
                    f.daemon = Some(serde_json::from_str(t).map_err(|e| {
                        if e.is_data() {
                            // JSON, but not the status document
                            format!("status not understood: {e}")
                        } else {
                            t.lines().last().unwrap_or("no output").trim().to_string()
                        }
                    }));
                }
            }
            other => {
                if let Some(path) = other.strip_prefix("file ") {
                    if path == previous_sysctl_path(&spec.name) {
                        f.previous_sysctls = serde_json::from_slice(&body).ok();
                    }
                    f.observed.files.insert(
                        path.to_string(),
                        String::from_utf8_lossy(&body).into_owned(),
                    );
                }
            }
        }
    }
    let _ = want;
    if let Some(live) = &mut f.ipvs {
        let note = persistence_in_seconds(live, netlink_persistence.as_ref(), hz);
        f.observed.notes.extend(note);
        f.observed.ipvs = live.iter().map(|s| to_virtual(s, &names)).collect();
    }
    health_weights(&mut f);
    Ok(f)
}

/// The `units` section: `systemctl show --property=Id,UnitFileState,ActiveState`,
/// one block per unit, blank lines between. `UnitFileState` is `is-enabled`'s
/// word (empty without a unit file), `ActiveState` `is-active`'s. A unit
/// without a unit file that is not running is left out (not on the host).
fn parse_units(text: &str) -> Vec<(String, bool, bool)> {
    let mut units = Vec::new();
    for block in text.split("\n\n") {
        let (mut id, mut file_state, mut activity) = ("", "", "");
        for line in block.lines() {
            match line.split_once('=') {
                Some(("Id", v)) => id = v.trim(),
                Some(("UnitFileState", v)) => file_state = v.trim(),
                Some(("ActiveState", v)) => activity = v.trim(),
                _ => {}
            }
        }
        let active = activity == "active" || activity == "reloading";
        if !id.is_empty() && (!file_state.is_empty() || active) {
            units.push((id.to_string(), file_state == "enabled", active));
        }
    }
    units
}

/// The daemon sets a real server whose health checks fail to weight 0 in
/// the kernel (desired IPVS = config × health). That is not drift: where the
/// daemon's status says a destination is down and the kernel has the weight
/// the daemon wants, compare with the configured weight, and say so.
fn health_weights(f: &mut Facts) {
    let Some(Ok(status)) = &f.daemon else { return };
    for svc in &mut f.observed.ipvs {
        let Some(st) = status.services.iter().find(|s| match svc.fwmark {
            Some(m) => s.fwmark == Some(m),
            None => {
                s.fwmark.is_none()
                    && s.port == svc.port
                    && s.protocol.eq_ignore_ascii_case(svc.protocol.as_str())
            }
        }) else {
            continue;
        };
        let label = svc.label();
        // Removed from the file and draining: the daemon deletes it when its
        // connections end; not drift.
        svc.destinations.retain(|d| {
            let gone = st
                .draining
                .iter()
                .any(|r| r.address == d.address && r.port == d.port);
            if gone {
                f.observed.notes.push(format!(
                    "{label} {}:{} is draining (removed from cluster.toml): the daemon deletes it \
                     when its connections end or drain_timeout passes",
                    d.address, d.port
                ));
            }
            !gone
        });
        for d in &mut svc.destinations {
            let Some(r) = st
                .real_servers
                .iter()
                .find(|r| r.address == d.address && r.port == d.port)
            else {
                continue;
            };
            // drain = true: weight 0 is what the file asks for.
            if r.drain {
                continue;
            }
            let (weight, effective, health) = (r.weight, r.effective_weight, &r.health);
            if effective != weight && d.weight == effective {
                f.observed.notes.push(format!(
                    "{} {}:{} ({}) is at weight {effective} in the kernel because its health is {health}                      (the daemon's doing, not drift; configured weight {weight})",
                    label,
                    d.address,
                    d.port,
                    d.name
                ));
                d.weight = weight;
            }
        }
    }
}

fn to_virtual(s: &LiveService, names: &BTreeMap<Ipv4Addr, &str>) -> VirtualService {
    VirtualService {
        protocol: if s.protocol == "UDP" {
            Protocol::Udp
        } else {
            Protocol::Tcp
        },
        vip: s.vip,
        port: s.port,
        fwmark: s.fwmark,
        scheduler: s.scheduler.clone(),
        persistence_secs: s.persistence,
        persistence_netmask: s
            .persistence
            .and(s.netmask)
            .map(|m| m.leading_ones() as u8)
            .filter(|m| *m != 32),
        sorry_server: None,
        destinations: s
            .destinations
            .iter()
            .map(|d| Destination {
                name: names
                    .get(&d.address)
                    .map_or_else(|| d.address.to_string(), |n| n.to_string()),
                address: d.address,
                port: d.port,
                forward: match d.forward.as_str() {
                    "Masq" => Forward::Masq,
                    "Tunnel" => Forward::Tunnel,
                    // Local (a director's own address) compares as Route: the plan shows weight/kind
                    _ => Forward::Route,
                },
                weight: d.weight,
            })
            .collect(),
    }
}

/// `persistent TIMEOUT NETMASK` of a service line: the timeout (jiffies)
/// and the netmask (hex, host order).
fn persistent(w: &[&str]) -> (Option<u32>, Option<u32>) {
    let Some(i) = w.iter().position(|x| *x == "persistent") else {
        return (None, None);
    };
    (
        w.get(i + 1).and_then(|t| t.parse().ok()),
        w.get(i + 2).and_then(|t| u32::from_str_radix(t, 16).ok()),
    )
}

fn hex_endpoint(s: &str) -> Option<(Ipv4Addr, u16)> {
    let (a, p) = s.split_once(':')?;
    let a = u32::from_str_radix(a, 16).ok()?;
    let p = u16::from_str_radix(p, 16).ok()?;
    Some((Ipv4Addr::from(a), p))
}

/// Persistence timeout (seconds) per (protocol, VIP, port), `None` = not persistent.
pub type PersistenceByService = BTreeMap<(String, Ipv4Addr, u16), Option<u32>>;

/// HZ assumed when neither netlink nor the kernel config tell: Debian's and
/// Ubuntu's stock kernels are built with CONFIG_HZ=250.
const ASSUMED_HZ: u32 = 250;

/// Persistence timeouts per (protocol, VIP, port) from `lvsup ipvs list --json`
/// (seconds, as netlink gives them). `None` when the output is absent or not
/// understood (e.g. an older binary on the host): then HZ is used.
pub fn parse_ipvs_list_persistence(text: &str) -> Option<PersistenceByService> {
    let list = crate::contract::ipvs_list::IpvsList::parse(text).ok()?;
    let mut out = BTreeMap::new();
    for s in list.services {
        match s.id {
            crate::ipvs::ServiceId::Addr {
                protocol,
                addr: std::net::SocketAddr::V4(addr),
            } => {
                out.insert(
                    (protocol.name().to_string(), *addr.ip(), addr.port()),
                    s.persistence,
                );
            }
            crate::ipvs::ServiceId::Fwmark {
                mark,
                family: crate::ipvs::Family::Inet,
            } => {
                out.insert(("FWM".into(), Ipv4Addr::from(mark), 0), s.persistence);
            }
            _ => {}
        }
    }
    Some(out)
}

/// A service's key in [`PersistenceByService`]: a fwmark service is
/// `("FWM", the mark as an address, 0)`.
fn persistence_key(s: &LiveService) -> (String, Ipv4Addr, u16) {
    match s.fwmark {
        Some(m) => ("FWM".into(), Ipv4Addr::from(m), 0),
        None => (s.protocol.to_ascii_uppercase(), s.vip, s.port),
    }
}

/// `/proc/net/ip_vs` prints a persistent service's timeout in jiffies
/// (`svc->timeout`, i.e. seconds × HZ; 75000 for 300 s at HZ=250) while
/// ipvsadm and netlink give seconds. Turn the parsed values into seconds:
/// from netlink when the host could answer, else by the kernel's HZ, else
/// by [`ASSUMED_HZ`] with a note saying so.
pub fn persistence_in_seconds(
    live: &mut [LiveService],
    netlink: Option<&PersistenceByService>,
    hz: Option<u32>,
) -> Option<String> {
    let mut assumed = false;
    for s in live.iter_mut() {
        let Some(jiffies) = s.persistence else {
            continue;
        };
        let key = persistence_key(s);
        if let Some(Some(secs)) = netlink.and_then(|m| m.get(&key)) {
            s.persistence = Some(*secs);
            continue;
        }
        let h = hz.unwrap_or_else(|| {
            assumed = true;
            ASSUMED_HZ
        });
        s.persistence = Some(jiffies / h);
    }
    assumed.then(|| {
        format!(
            "IPVS persistence timeouts read from /proc/net/ip_vs (in jiffies) assuming HZ={ASSUMED_HZ}: \
             the kernel config was not readable and lvsup is not installed yet"
        )
    })
}

/// `/proc/net/ip_vs` (IPv4 services; fwmark and IPv6 services are skipped):
/// ```text
/// IP Virtual Server version 1.2.1 (size=4096)
/// Prot LocalAddress:Port Scheduler Flags
///   -> RemoteAddress:Port Forward Weight ActiveConn InActConn
/// TCP  C0A80064:0050 rr persistent 300
///   -> C0A800AC:0050      Route   100    0          0
/// ```
pub fn parse_proc_ip_vs(text: &str) -> Result<Vec<LiveService>, FactsError> {
    let mut out: Vec<LiveService> = Vec::new();
    let mut skipping = false;
    for l in text.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        match w.first() {
            Some(&"TCP") | Some(&"UDP") | Some(&"SCTP") => {
                let Some((vip, port)) = w.get(1).and_then(|e| hex_endpoint(e)) else {
                    skipping = true; // IPv6 ([..]:port)
                    continue;
                };
                skipping = false;
                let (persistence, netmask) = persistent(&w);
                out.push(LiveService {
                    protocol: w[0].to_string(),
                    vip,
                    port,
                    fwmark: None,
                    scheduler: w.get(2).unwrap_or(&"?").to_string(),
                    persistence,
                    netmask,
                    destinations: vec![],
                });
            }
            // `FWM  00000005 wlc [ops ]persistent 75000 FFFFFF00`
            Some(&"FWM") => {
                let Some(mark) = w.get(1).and_then(|m| u32::from_str_radix(m, 16).ok()) else {
                    skipping = true;
                    continue;
                };
                skipping = false;
                let (persistence, netmask) = persistent(&w);
                out.push(LiveService {
                    protocol: "FWM".into(),
                    vip: Ipv4Addr::UNSPECIFIED,
                    port: 0,
                    fwmark: Some(mark),
                    scheduler: w.get(2).unwrap_or(&"?").to_string(),
                    persistence,
                    netmask,
                    destinations: vec![],
                });
            }
            Some(&"->") if w.get(1) != Some(&"RemoteAddress:Port") => {
                if skipping {
                    continue;
                }
                let Some(svc) = out.last_mut() else { continue };
                let (address, port) = w
                    .get(1)
                    .and_then(|e| hex_endpoint(e))
                    .ok_or_else(|| FactsError::Malformed(format!("/proc/net/ip_vs: {l:?}")))?;
                let num = |i: usize| w.get(i).and_then(|t| t.parse::<u64>().ok()).unwrap_or(0);
                let weight = u32::try_from(num(3)).map_err(|_| {
                    FactsError::Malformed(format!("/proc/net/ip_vs: weight out of range in {l:?}"))
                })?;
                svc.destinations.push(LiveDest {
                    address,
                    port,
                    forward: w.get(2).unwrap_or(&"?").to_string(),
                    weight,
                    active: num(4),
                    inactive: num(5),
                });
            }
            _ => {}
        }
    }
    Ok(out)
}

impl Facts {
    /// The interface holding `addr`'s subnet, if any (first match).
    pub fn interface_on_subnet_of(&self, addr: Ipv4Addr) -> Option<&Iface> {
        self.interfaces.iter().find(|i| {
            i.name != "lo"
                && i.addresses
                    .iter()
                    .any(|n| n.contains(&addr) && n.prefix_len() < 32)
        })
    }

    /// Whether some interface holds `addr` itself.
    pub fn holds(&self, addr: Ipv4Addr) -> Option<&Iface> {
        self.interfaces
            .iter()
            .find(|i| i.addresses.iter().any(|n| n.addr() == addr))
    }
}

/// Missing prerequisites of `want` on a host with `facts`: each a sentence.
pub fn prerequisites(spec: &ClusterSpec, want: &HostState, facts: &Facts) -> Vec<String> {
    let mut p = Vec::new();
    // The facts script runs through `sudo -n` when `become` is set, so uid is
    // then 0 whenever sudo let us in (a refused sudo fails the facts step).
    if let Some(uid) = facts.uid.filter(|u| *u != 0) {
        p.push(format!(
            "logged in as uid {uid}, not root, and [ssh] become is not set: lvsup writes \
             system files and units (set `become = \"sudo\"` or log in as root)"
        ));
    }
    if facts.os != "Linux" {
        p.push(format!("not Linux (uname -s: {})", facts.os));
    }
    if !facts.systemd {
        p.push(format!(
            "no systemd (PID 1 is {}): lvsup installs systemd units",
            facts.init
        ));
    }
    let missing = |m: &str| facts.modules.get(m) == Some(&ModuleState::Missing);
    match want.role {
        Role::Director { .. } => {
            for m in &want.modules {
                if missing(m) {
                    p.push(format!(
                        "kernel module {m} is neither loaded nor available (kernel {}): a director needs IPVS",
                        facts.kernel
                    ));
                }
            }
            if facts.nft == Some(false) && spec.services.iter().any(|s| s.fwmark.is_some()) {
                p.push(
                    format!(
                        "no {} (package nftables): the director unit loads the fwmark services' marking rule with it",
                        crate::layout::NFT_PATH
                    ),
                );
            }
            for a in &want.addresses {
                match &a.interface {
                    Interface::Named(n) => {
                        if !facts.interfaces.iter().any(|i| &i.name == n) {
                            p.push(format!("no interface {n} (from cluster.toml) on this host"));
                        }
                    }
                    Interface::HoldingSubnetOf(ip) => {
                        if facts.interface_on_subnet_of(*ip).is_none() {
                            p.push(format!(
                                "no interface has an address on {ip}'s subnet, so none can hold it \
                                 (set `interface` in cluster.toml, or give the host an address there)"
                            ));
                        }
                    }
                }
            }
        }
        Role::RealServer => {
            for m in &want.modules {
                if missing(m) {
                    p.push(format!(
                        "kernel module {m} is neither loaded nor available (kernel {}): TUN real servers need it",
                        facts.kernel
                    ));
                }
            }
            if spec.mode == Mode::Dr && facts.interface_on_subnet_of(spec.vip).is_none() {
                p.push(format!(
                    "DR needs real servers on the VIP's subnet ({}), but no interface of this host has an address there",
                    spec.vip
                ));
            }
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_ip_vs_parses_services_destinations_and_counters() {
        let t = "IP Virtual Server version 1.2.1 (size=4096)\n\
                 Prot LocalAddress:Port Scheduler Flags\n  \
                 -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n\
                 TCP  C0A80064:0050 rr \n  \
                 -> C0A800AC:0050      Route   100    2          7         \n  \
                 -> C0A800AB:0050      Route   100    0          0         \n\
                 FWM  00000001 wlc \n  \
                 -> C0A800AB:0000      Route   1      0          0         \n\
                 UDP  C0A80064:0035 wrr persistent 300\n";
        let s = parse_proc_ip_vs(t).expect("parse");
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].label(), "TCP 192.168.0.100:80");
        // the fwmark service and its destination (port 0)
        assert_eq!((s[1].label(), s[1].fwmark), ("FWM 1".to_string(), Some(1)));
        assert_eq!(s[1].destinations.len(), 1);
        assert_eq!(s[1].destinations[0].port, 0);
        let s = [s[0].clone(), s[2].clone()];
        assert_eq!(s[0].destinations.len(), 2);
        assert_eq!(
            s[0].destinations[0].address,
            Ipv4Addr::new(192, 168, 0, 172)
        );
        assert_eq!(
            (s[0].destinations[0].active, s[0].destinations[0].inactive),
            (2, 7)
        );
        assert_eq!(s[1].persistence, Some(300));
        assert_eq!(s[1].port, 53);
    }

    #[test]
    fn non_root_login_without_become_is_a_prerequisite_error() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/minimal.toml"
        ))
        .expect("example");
        let spec = crate::config::parse_str("minimal.toml", &text).expect("valid");
        let desired = crate::desired::desired_cluster(&spec).expect("render");
        let want = desired.hosts.iter().find(|h| h.name == "rs1").expect("rs1");
        let mut f = Facts {
            os: "Linux".into(),
            systemd: true,
            uid: Some(1000),
            ..Facts::default()
        };
        f.interfaces.push(Iface {
            name: "eth0".into(),
            up: true,
            addresses: vec!["172.18.250.77/24".parse().expect("net")],
        });
        let p = prerequisites(&spec, want, &f);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("uid 1000") && p[0].contains("become = \"sudo\""),
            "{p:?}"
        );
        f.uid = Some(0);
        assert!(prerequisites(&spec, want, &f).is_empty());
    }

    fn persistent_udp_53(jiffies: u32) -> Vec<LiveService> {
        let t = "TCP  C0A80064:0050 rr \nUDP  C0A80064:0035 wrr persistent ".to_string()
            + &jiffies.to_string()
            + " FFFFFFFF\n";
        parse_proc_ip_vs(&t).expect("parse")
    }

    #[test]
    fn fwmark_persistence_and_netmask_from_proc_and_netlink() {
        let t = "FWM  00000005 wlc persistent 75000 FFFFFF00\n  \
                 -> C0A800AB:0000      Route   1      0          0         \n\
                 FWM  00000006 rr \n";
        let mut live = parse_proc_ip_vs(t).expect("parse");
        assert_eq!(live[0].netmask, Some(0xFFFF_FF00));
        assert_eq!(live[1].persistence, None);
        let svc =
            crate::ipvs::Service::new(crate::ipvs::ServiceId::fwmark(5), "wlc").persistent(300);
        let json = crate::contract::ipvs_list::IpvsList {
            version: 0x01_02_01,
            conn_tab_size: 4096,
            services: vec![svc],
        }
        .to_json()
        .expect("json")
        .to_string();
        let netlink = parse_ipvs_list_persistence(&json).expect("understood");
        assert_eq!(
            persistence_in_seconds(&mut live, Some(&netlink), Some(1000)),
            None
        );
        assert_eq!(live[0].persistence, Some(300));
        let v = to_virtual(&live[0], &BTreeMap::new());
        assert_eq!(
            (v.fwmark, v.persistence_netmask, v.label()),
            (Some(5), Some(24), "FWM 5".into())
        );
    }

    #[test]
    fn a_director_of_a_fwmark_cluster_needs_nft() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fwmark.toml"))
                .expect("example");
        let spec = crate::config::parse_str("fwmark.toml", &text).expect("valid");
        let desired = crate::desired::desired_cluster(&spec).expect("render");
        let want = desired
            .hosts
            .iter()
            .find(|h| h.name == "lvs191")
            .expect("director");
        let mut f = Facts {
            os: "Linux".into(),
            systemd: true,
            uid: Some(0),
            nft: Some(false),
            ..Facts::default()
        };
        f.interfaces.push(Iface {
            name: "eth0".into(),
            up: true,
            addresses: vec!["192.168.0.191/24".parse().expect("net")],
        });
        let p = prerequisites(&spec, want, &f);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("package nftables"), "{p:?}");
        f.nft = Some(true);
        assert!(prerequisites(&spec, want, &f).is_empty());
    }

    #[test]
    fn persistence_comes_from_netlink_when_the_host_has_lvsup() {
        // The JSON exactly as `lvsup ipvs list --json` writes it.
        let svc = crate::ipvs::Service::new(
            crate::ipvs::ServiceId::udp("192.168.0.100:53".parse().expect("addr")),
            "wrr",
        )
        .persistent(300);
        let json = crate::contract::ipvs_list::IpvsList {
            version: 0x01_02_01,
            conn_tab_size: 4096,
            services: vec![svc],
        }
        .to_json()
        .expect("json")
        .to_string();
        let netlink = parse_ipvs_list_persistence(&json).expect("understood");
        let mut live = persistent_udp_53(75000);
        let note = persistence_in_seconds(&mut live, Some(&netlink), Some(1000));
        assert_eq!(note, None);
        assert_eq!(live[0].persistence, None);
        assert_eq!(live[1].persistence, Some(300));
    }

    #[test]
    fn persistence_in_jiffies_is_divided_by_the_kernels_hz() {
        let mut live = persistent_udp_53(300_000);
        assert_eq!(persistence_in_seconds(&mut live, None, Some(1000)), None);
        assert_eq!(live[1].persistence, Some(300));
        // Unknown HZ: Debian's 250, and the plan says it assumed so.
        let mut live = persistent_udp_53(75000);
        let note = persistence_in_seconds(&mut live, None, None).expect("a note");
        assert!(note.contains("HZ=250"), "{note}");
        assert_eq!(live[1].persistence, Some(300));
        // Output from another version of lvsup that is not understood: HZ again.
        assert_eq!(parse_ipvs_list_persistence("usage: lvsup ..."), None);
    }

    #[test]
    fn file_sections_are_byte_exact_even_without_a_final_newline() {
        let out = b"### os\nLinux\n### file-sizes\n5 /etc/a\n3 /etc/b\n\
                    ### file-contents\nab\ncd###\n### units\n### end\n";
        let s = sections(out).expect("sections");
        assert_eq!(s[1], ("file /etc/a".to_string(), b"ab\ncd".to_vec()));
        assert_eq!(s[2], ("file /etc/b".to_string(), b"###".to_vec()));
        assert_eq!(s[3].0, "units");
    }

    /// A file that grew, shrank or vanished between `stat` and `cat`: the
    /// bytes do not end where the sizes say, and the facts are refused.
    #[test]
    fn a_file_changed_between_stat_and_cat_is_an_error() {
        for contents in ["abcd", "abcdef", "ab\n", ""] {
            let out = format!(
                "### os\nLinux\n### file-sizes\n5 /etc/a\n### file-contents\n{contents}\n### units\n### end\n"
            );
            match sections(out.as_bytes()) {
                Err(FactsError::Malformed(m)) => assert!(m.contains("changed while"), "{m}"),
                Err(FactsError::Truncated) if contents.is_empty() => {}
                other => panic!("{contents:?}: {other:?}"),
            }
        }
        let out = b"### os\nLinux\n### file-sizes\n5 /etc/a\n### file-contents\nabcde\n### end\n";
        assert_eq!(sections(out).expect("sections")[1].1, b"abcde");
    }

    #[test]
    fn file_contents_without_sizes_is_an_error() {
        let r = sections(b"### os\nLinux\n### file-contents\nabc\n### end\n");
        assert!(matches!(r, Err(FactsError::Malformed(m)) if m.contains("without their sizes")));
    }

    #[test]
    fn units_come_from_systemctl_show_blocks() {
        let text = "Id=a.service\nActiveState=active\nUnitFileState=enabled\n\n\
                    Id=b.service\nActiveState=inactive\nUnitFileState=\n\n\
                    Id=c.service\nUnitFileState=disabled\nActiveState=reloading\n\n\
                    Id=d.service\nActiveState=failed\nUnitFileState=static\n";
        assert_eq!(
            parse_units(text),
            vec![
                ("a.service".to_string(), true, true),
                ("c.service".to_string(), false, true),
                ("d.service".to_string(), false, false),
            ]
        );
        assert!(parse_units("").is_empty());
    }

    #[test]
    fn output_without_end_marker_is_truncated() {
        assert!(matches!(
            sections(b"### os\nLinux\n"),
            Err(FactsError::Truncated)
        ));
    }

    fn dr() -> (ClusterSpec, crate::desired::DesiredCluster) {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/dr.toml");
        let spec = crate::config::load(std::path::Path::new(path)).expect("example");
        let d = crate::desired::desired_cluster(&spec).expect("render");
        (spec, d)
    }

    fn parse_as(host: &str, out: &[u8]) -> Result<Facts, FactsError> {
        let (spec, d) = dr();
        let want = d.hosts.iter().find(|h| h.name == host).expect("host");
        parse(&spec, want, out, "")
    }

    /// A minimal output with `extra` sections before the end marker.
    fn with(extra: &str) -> Vec<u8> {
        format!("### os\nLinux\nx86_64\n6.1\nDebian\nglibc 2.36\n0\n{extra}### end\n").into_bytes()
    }

    fn malformed(r: Result<Facts, FactsError>) -> String {
        match r {
            Err(FactsError::Malformed(m)) => m,
            other => panic!("expected Malformed, got {:?}", other.map(|f| f.os)),
        }
    }

    #[test]
    fn nft_section_says_whether_nft_is_installed() {
        let f = parse_as("lvs191", &with("### nft\n/usr/sbin/nft\n")).expect("facts");
        assert_eq!(f.nft, Some(true));
        let f = parse_as("lvs191", &with("### nft\n")).expect("facts");
        assert_eq!(f.nft, Some(false));
        let f = parse_as("lvs191", &with("")).expect("facts");
        assert_eq!(f.nft, None);
    }

    #[test]
    fn file_length_of_usize_max_is_an_error_not_a_panic() {
        let m = malformed(parse_as(
            "lvs191",
            &with("### file-sizes\n18446744073709551615 /x\n### file-contents\nabc\n"),
        ));
        assert!(m.contains("bad file size line"), "{m}");
        assert!(m.contains("at most 4 MiB"), "{m}");
    }

    #[test]
    fn file_length_beyond_usize_negative_or_missing_is_an_error() {
        for header in [
            "99999999999999999999999999 /x",
            "-1 /x",
            "0x10 /x",
            " /x",
            "5",
            "5 ",
        ] {
            let r = parse_as(
                "node1",
                &with(&format!(
                    "### file-sizes\n{header}\n### file-contents\nhello\n"
                )),
            );
            assert!(
                matches!(r, Err(FactsError::Malformed(_))),
                "{header:?}: {:?}",
                r.map(|f| f.os)
            );
        }
    }

    #[test]
    fn file_just_over_the_bound_is_an_error_and_at_the_bound_is_read() {
        let over = format!(
            "### file-sizes\n{} /x\n### file-contents\n",
            MAX_FILE_BYTES + 1
        );
        malformed(parse_as("node1", &with(&over)));
        let mut out =
            format!("### os\nLinux\n### file-sizes\n{MAX_FILE_BYTES} /x\n### file-contents\n")
                .into_bytes();
        out.extend(std::iter::repeat_n(b'a', MAX_FILE_BYTES));
        out.extend_from_slice(b"\n### end\n");
        let f = parse_as("node1", &out).expect("parses");
        assert_eq!(f.observed.files["/x"].len(), MAX_FILE_BYTES);
    }

    #[test]
    fn file_longer_than_the_output_is_truncated() {
        let r = parse_as(
            "node1",
            b"### os\nLinux\n### file-sizes\n4000 /x\n### file-contents\nshort\n### end\n",
        );
        assert!(matches!(r, Err(FactsError::Truncated)));
    }

    #[test]
    fn output_over_the_bound_is_an_error() {
        let mut out = with("");
        out.resize(MAX_OUTPUT_BYTES + 1, b'\n');
        let m = malformed(parse_as("node1", &out));
        assert!(m.contains("MiB"), "{m}");
    }

    #[test]
    fn ipvs_weight_out_of_range_is_an_error() {
        let m = malformed(parse_as(
            "lvs191",
            &with("### ipvs\nTCP  C0A80064:0050 rr \n  -> C0A800AC:0050 Route 4294967296 0 0\n"),
        ));
        assert!(m.contains("weight out of range"), "{m}");
    }

    /// The daemon's status (the captured document) with one service,
    /// tcp 192.168.0.100:80, and node2 (192.168.0.172) down at `weight`.
    fn daemon_status(weight: u64) -> String {
        let mut v: serde_json::Value =
            serde_json::from_str(crate::contract::status::tests::FIXTURE).expect("fixture");
        let svc = &mut v["services"][0];
        svc["draining"] = serde_json::json!([]);
        let rs = &mut svc["real_servers"][0];
        rs["address"] = "192.168.0.172".into();
        rs["weight"] = weight.into();
        rs["effective_weight"] = 0.into();
        rs["health"] = "down".into();
        v.to_string()
    }

    #[test]
    fn a_down_real_server_at_weight_0_is_the_daemons_doing() {
        let f = parse_as(
            "lvs191",
            &with(&format!(
                "### ipvs\nTCP  C0A80064:0050 rr \n  -> C0A800AC:0050 Route 0 0 0\n### daemon\n{}\n",
                daemon_status(100)
            )),
        )
        .expect("parses");
        assert!(matches!(&f.daemon, Some(Ok(s)) if s.vrrp.state == "Master"));
        assert_eq!(f.observed.ipvs[0].destinations[0].weight, 100);
        assert!(
            f.observed.notes[0].contains("because its health is down"),
            "{:?}",
            f.observed.notes
        );
    }

    #[test]
    fn daemon_weights_out_of_range_are_ignored_not_truncated() {
        // 4294967396 as u32 would wrap to 100 and hide the difference
        let daemon = daemon_status(4_294_967_396);
        let f = parse_as(
            "lvs191",
            &with(&format!(
                "### ipvs\nTCP  C0A80064:0050 rr \n  -> C0A800AC:0050 Route 0 0 0\n### daemon\n{daemon}\n"
            )),
        )
        .expect("parses");
        assert_eq!(f.observed.ipvs[0].destinations[0].weight, 0);
        assert!(f.observed.notes.is_empty(), "{:?}", f.observed.notes);
        assert!(
            matches!(&f.daemon, Some(Err(e)) if e.starts_with("status not understood")),
            "{:?}",
            f.daemon
        );
    }

    #[test]
    fn deeply_nested_json_is_an_error_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        malformed(parse_as("node1", &with(&format!("### addr\n{deep}\n"))));
        // the daemon's answer is kept as text when it is not JSON
        let f = parse_as("lvs191", &with(&format!("### daemon\n{deep}\n"))).expect("parses");
        assert!(matches!(f.daemon, Some(Err(_))));
    }

    /// xorshift64*: a deterministic generator for the bounded fuzz loop (a
    /// dependency for a dozen lines is not worth it; the same seeds every run).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// `lvsup ipvs list --json` with tcp 192.168.0.100:80 persistent 300 s.
    fn netlink_list() -> String {
        use crate::ipvs::{Destination, Forward, Service, ServiceId};
        let svc = Service::new(ServiceId::tcp("192.168.0.100:80".parse().expect("a")), "rr")
            .persistent(300)
            .with_destination(Destination::new(
                "192.168.0.172:80".parse().expect("a"),
                Forward::Route,
                100,
            ));
        crate::contract::ipvs_list::IpvsList {
            version: 0x01_02_01,
            conn_tab_size: 4096,
            services: vec![svc],
        }
        .to_json()
        .expect("json")
        .to_string()
    }

    /// Bounded fuzzing in every `cargo test`: recorded facts of every host,
    /// plus a director's IPVS/daemon sections, mutated (bytes flipped, cut,
    /// slices duplicated, file headers with hostile lengths, numbers made
    /// huge); `parse` must return, Ok or Err, never panic.
    #[test]
    fn mutated_facts_never_panic() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/facts");
        let director_extra = "### ipvs\nIP Virtual Server version 1.2.1 (size=4096)\n\
            Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n\
            TCP  C0A80064:0050 rr persistent 75000\n  -> C0A800AC:0050 Route 100 2 7\n\
            ### ipvs-netlink\n"
            .to_string()
            + &netlink_list()
            + "\n### hz\nCONFIG_HZ=250\n### daemon\n"
            + &daemon_status(100)
            + "\n";
        let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
        for set in ["dr-fresh", "dr-converged", "dr-drift"] {
            for e in std::fs::read_dir(format!("{dir}/{set}")).expect("fixtures") {
                let p = e.expect("entry").path();
                let host = p.file_stem().expect("stem").to_string_lossy().into_owned();
                let text = std::fs::read_to_string(&p).expect("fixture");
                let body = text.strip_suffix("### end\n").expect("end marker");
                let extra = if host.starts_with("lvs") {
                    director_extra.as_str()
                } else {
                    ""
                };
                inputs.push((host, format!("{body}{extra}### end\n").into_bytes()));
            }
        }
        assert!(inputs.len() >= 10, "fixtures missing: {}", inputs.len());
        let (spec, d) = dr();
        let hostile = [
            "18446744073709551615",
            "18446744073709551616",
            "4294967296",
            "-1",
            "0",
            "99999999999999999999",
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let (mut ok, mut err) = (0u32, 0u32);
        for round in 0..3000 {
            let (host, base) = &inputs[round % inputs.len()];
            let want = d.hosts.iter().find(|h| &h.name == host).expect("host");
            let mut b = base.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(b.len());
                match rng.below(6) {
                    0 => b[at] ^= 1 << rng.below(8),
                    1 => b.truncate(at),
                    2 => {
                        let len = rng.below(64).min(b.len() - at);
                        let piece = b[at..at + len].to_vec();
                        b.splice(at..at, piece);
                    }
                    3 => {
                        let n = hostile[rng.below(hostile.len())];
                        let h = format!("\n### file-sizes\n{n} /etc/x\n### file-contents\n");
                        b.splice(at..at, h.into_bytes());
                    }
                    4 => {
                        // a number somewhere made huge
                        if let Some(p) = b[at..].iter().position(u8::is_ascii_digit) {
                            let n = hostile[rng.below(hostile.len())].as_bytes().to_vec();
                            b.splice(at + p..at + p + 1, n);
                        }
                    }
                    _ => {
                        let len = rng.below(16).min(b.len() - at);
                        b.drain(at..at + len);
                    }
                }
                if b.is_empty() {
                    break;
                }
            }
            match parse(&spec, want, &b, "") {
                Ok(_) => ok += 1,
                Err(_) => err += 1,
            }
        }
        // both paths taken: the mutations are neither all harmless nor all fatal
        assert!(ok > 100 && err > 100, "ok {ok}, err {err}");
    }
}
