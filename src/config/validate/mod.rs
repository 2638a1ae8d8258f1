//! Raw schema → [`ClusterSpec`]: every rule of the contract, all problems at once.
//!
//! Elements that could not be read at all (unknown keys, wrong types) are
//! skipped here; rules about counts ("at least one director") are then not
//! checked for their section, so a broken element does not also produce a
//! misleading "no directors" error.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::time::Duration;

use ipnet::Ipv4Net;
use toml::Spanned;

use super::diag::{Problem, line_col, suggest};
use super::model::*;
use super::raw::*;

/// Default prefix of a management address written without one.
pub const DEFAULT_PREFIX: u8 = 24;
/// VRRPv3 advertisement interval bounds (RFC 5798 §5.2.7: 12 bits of centiseconds).
pub const ADVERT_MIN: Duration = Duration::from_millis(10);
pub const ADVERT_MAX: Duration = Duration::from_secs(40);
/// First director's default priority, and the step down for each next one.
pub const PRIORITY_FIRST: i64 = 150;
pub const PRIORITY_STEP: i64 = 10;

/// The VRRP virtual router id derived from the cluster name when `vrid` is not
/// set: 1 + (FNV-1a 32-bit hash of the name mod 255). Stable across versions:
/// changing it would split a running cluster's directors.
pub fn derived_vrid(name: &str) -> u8 {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (1 + h % 255) as u8
}

struct V<'t> {
    text: &'t str,
    problems: Vec<Problem>,
    poisoned: &'t std::collections::BTreeSet<String>,
}

type Sp<T> = Spanned<T>;

impl V<'_> {
    fn err(&mut self, key: &str, span: Range<usize>, msg: String) -> &mut Problem {
        self.problems.push(Problem::new(key, msg).at(span));
        let last = self.problems.len() - 1;
        &mut self.problems[last]
    }

    fn line(&self, span: &Range<usize>) -> usize {
        line_col(self.text, span.start).0
    }

    fn required<'a, T>(
        &mut self,
        table: &str,
        key: &str,
        v: &'a S<T>,
        tspan: &Range<usize>,
    ) -> Option<&'a Sp<T>> {
        if v.is_none() && !self.poisoned.contains(&format!("{table}.{key}")) {
            self.err(
                &format!("{table}.{key}"),
                tspan.clone(),
                format!("missing required key `{key}` in `{table}`"),
            );
        }
        v.as_ref()
    }

    fn one_of<'a>(&mut self, key: &str, v: &Sp<String>, options: &[&'a str]) -> Option<&'a str> {
        let s = v.get_ref().as_str();
        if let Some(o) = options.iter().find(|o| **o == s) {
            return Some(o);
        }
        let lower = s.to_ascii_lowercase();
        let hint = if options.contains(&lower.as_str()) {
            format!("write it in lower case: \"{lower}\"")
        } else if let Some(m) = suggest(s, options) {
            format!("did you mean \"{m}\"?")
        } else {
            format!("one of: {}", options.join(", "))
        };
        let what = key.rsplit('.').next().unwrap_or(key).replace('_', " ");
        self.err(key, v.span(), format!("unknown {what} \"{s}\""))
            .hint = Some(hint);
        None
    }

    fn int(&mut self, key: &str, v: &Sp<i64>, lo: i64, hi: i64, what: &str) -> Option<i64> {
        let n = *v.get_ref();
        if n < lo || n > hi {
            self.err(
                key,
                v.span(),
                format!("{what} must be {lo}..={hi}, got {n}"),
            );
            return None;
        }
        Some(n)
    }

    fn duration(&mut self, key: &str, v: &Sp<String>) -> Option<Duration> {
        let s = v.get_ref().trim();
        match humantime::parse_duration(s) {
            Ok(d) if d.subsec_nanos() % 1_000_000 != 0 => {
                self.err(
                    key,
                    v.span(),
                    format!("\"{s}\" is finer than a millisecond"),
                );
                None
            }
            Ok(d) => Some(d),
            Err(_) => {
                self.err(key, v.span(), format!("\"{s}\" is not a duration"))
                    .hint =
                    Some("a whole number and a unit, e.g. \"100ms\", \"2s\", \"1m\"".into());
                None
            }
        }
    }

    fn ipv4(&mut self, key: &str, v: &Sp<String>) -> Option<Ipv4Addr> {
        let s = v.get_ref().trim();
        match s.parse::<Ipv4Addr>() {
            Ok(a) => self.unicast(key, v, a),
            Err(_) => {
                let hint = if s.contains('/') {
                    "the VIP is a single address: write it without a prefix"
                } else {
                    "an IPv4 address in dotted form, e.g. \"192.168.0.100\""
                };
                self.err(key, v.span(), format!("\"{s}\" is not an IPv4 address"))
                    .hint = Some(hint.into());
                None
            }
        }
    }

    /// An address with an optional prefix (default /24).
    fn ipv4_net(&mut self, key: &str, v: &Sp<String>) -> Option<Ipv4Net> {
        let s = v.get_ref().trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let Ok(a) = addr.parse::<Ipv4Addr>() else {
            self.err(key, v.span(), format!("\"{s}\" is not an IPv4 address"))
                .hint = Some("dotted form with an optional prefix, e.g. \"10.0.0.11/24\"".into());
            return None;
        };
        let prefix = match prefix {
            None => DEFAULT_PREFIX,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if (1..=32).contains(&p) => p,
                _ => {
                    self.err(
                        key,
                        v.span(),
                        format!("\"{s}\" has an invalid prefix \"/{p}\""),
                    )
                    .hint = Some("a prefix length 1..=32, e.g. /24".into());
                    return None;
                }
            },
        };
        self.unicast(key, v, a)?;
        Ipv4Net::new(a, prefix).ok()
    }

    fn unicast(&mut self, key: &str, v: &Sp<String>, a: Ipv4Addr) -> Option<Ipv4Addr> {
        let bad = if a.is_unspecified() {
            Some("the unspecified address")
        } else if a.is_loopback() {
            Some("a loopback address")
        } else if a.is_multicast() {
            Some("a multicast address")
        } else if a.is_broadcast() {
            Some("the broadcast address")
        } else {
            None
        };
        match bad {
            Some(what) => {
                self.err(
                    key,
                    v.span(),
                    format!("{a} is {what}; a unicast address is needed"),
                );
                None
            }
            None => Some(a),
        }
    }

    fn host_name(&mut self, key: &str, v: &Sp<String>) -> Option<String> {
        let s = v.get_ref();
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if !ok {
            self.err(key, v.span(), format!("\"{s}\" is not a valid host name"))
                .hint = Some("letters, digits and inner hyphens, at most 63 characters (it names the host in plans, logs and the lab)".into());
            return None;
        }
        Some(s.clone())
    }

    /// Free text that names a host, user, interface or path: it reaches
    /// command lines (ssh, ip, systemd units) and the reviewer's terminal, so
    /// control characters (ESC, NUL, newlines…) and a leading `-` (read as
    /// an option by ssh and ip) are refused. The value is shown escaped.
    fn free_text(&mut self, key: &str, v: &Sp<String>, what: &str) -> bool {
        let s = v.get_ref();
        let bad = if s.chars().any(char::is_control) {
            "contains control characters"
        } else if s.starts_with('-') {
            "starts with '-' (a command would read it as an option)"
        } else {
            return true;
        };
        self.err(
            key,
            v.span(),
            format!("{key} = \"{}\": the {what} {bad}", s.escape_debug()),
        )
        .hint = Some("printable characters only, and no '-' first".into());
        false
    }

    fn word(&mut self, key: &str, v: &Sp<String>, what: &str) -> Option<String> {
        if !self.free_text(key, v, what) {
            return None;
        }
        let s = v.get_ref();
        if s.is_empty() || s.chars().any(char::is_whitespace) {
            self.err(key, v.span(), format!("\"{s}\" is not a valid {what}"))
                .hint = Some("it must be non-empty and contain no spaces".into());
            return None;
        }
        Some(s.clone())
    }

    fn ifname(&mut self, key: &str, v: &Sp<String>) -> Option<String> {
        if !self.free_text(key, v, "interface name") {
            return None;
        }
        let s = v.get_ref();
        let ok = !s.is_empty()
            && s.len() <= 15
            && s != "."
            && s != ".."
            && !s.chars().any(|c| c == '/' || c == ':' || c.is_whitespace());
        if !ok {
            self.err(
                key,
                v.span(),
                format!("\"{s}\" is not a valid interface name"),
            )
            .hint =
                Some("a Linux interface name: 1 to 15 characters, no '/', ':' or spaces".into());
            return None;
        }
        Some(s.clone())
    }
}

pub fn validate(
    text: &str,
    raw: &RawFile,
    problems: Vec<Problem>,
) -> Result<ClusterSpec, Vec<Problem>> {
    if raw.syntax_failed {
        return Err(problems);
    }
    let mut v = V {
        text,
        problems,
        poisoned: &raw.poisoned,
    };
    let spec = build(&mut v, raw);
    match spec {
        Some(spec) if v.problems.is_empty() => Ok(spec),
        _ => Err(v.problems),
    }
}

/// A validated host with where it stands in the file.
struct Placed<T> {
    item: T,
    /// `directors[1]`
    path: String,
    addr_span: Range<usize>,
    internal_span: Option<Range<usize>>,
}

/// An address and where it came from, for the uniqueness rule.
struct AddrUse {
    addr: Ipv4Addr,
    key: String,
    span: Range<usize>,
}

fn build(v: &mut V<'_>, raw: &RawFile) -> Option<ClusterSpec> {
    let whole = 0..0;
    // ---- [cluster]
    let mut name = None;
    let mut vip = None;
    let mut mode = None;
    let mut interface = None;
    let mut vrid = None;
    let mut advert_interval = Some(Duration::from_secs(1));
    let mut preempt = true;
    let mut vrrp_unicast = None;
    let mut sync_daemon = false;
    let mut vrrp_accept_foreign = None;
    let mut metrics = None;
    let mut ipvs_timeouts = None;
    let mut expire_nodest_conn = true;
    let mut expire_quiescent_template = true;
    let mut drain_timeout = Some(DEFAULT_DRAIN_TIMEOUT);
    match &raw.cluster {
        None if v.poisoned.contains("cluster") => {}
        None => {
            v.problems.push(
                Problem::new("cluster", "missing required section `[cluster]`")
                    .at(whole.clone())
                    .hint("add a [cluster] section with name, vip and mode"),
            );
        }
        Some(Elem { value: None, .. }) => {}
        Some(Elem {
            span,
            value: Some(c),
        }) => {
            if let Some(n) = v.required("cluster", "name", &c.name, span) {
                let s = n.get_ref();
                let ok = s.len() <= 32
                    && s.starts_with(|ch: char| ch.is_ascii_lowercase())
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if ok {
                    name = Some(s.clone());
                } else {
                    v.err("cluster.name", n.span(), format!("\"{s}\" is not a valid cluster name"))
                        .hint = Some("[a-z][a-z0-9-]{0,31}: it names units, the VRRP instance and state directories".into());
                }
            }
            if let Some(a) = v.required("cluster", "vip", &c.vip, span) {
                vip = v.ipv4("cluster.vip", a).map(|ip| (ip, a.span()));
            }
            if let Some(m) = v.required("cluster", "mode", &c.mode, span) {
                mode = v
                    .one_of("cluster.mode", m, Mode::ALL)
                    .and_then(Mode::parse)
                    .map(|md| (md, m.span()));
            }
            if let Some(i) = &c.interface {
                interface = v.ifname("cluster.interface", i);
            }
            if let Some(r) = &c.vrid {
                vrid = v.int("cluster.vrid", r, 1, 255, "vrid").map(|n| n as u8);
            }
            if let Some(a) = &c.advert_interval {
                advert_interval = v.duration("cluster.advert_interval", a);
                if let Some(d) = advert_interval {
                    if d < ADVERT_MIN || d > ADVERT_MAX {
                        v.err(
                            "cluster.advert_interval",
                            a.span(),
                            format!(
                                "advert_interval must be 10ms..=40s, got \"{}\"",
                                a.get_ref()
                            ),
                        );
                        advert_interval = None;
                    } else if d.as_millis() % 10 != 0 {
                        v.err(
                            "cluster.advert_interval",
                            a.span(),
                            format!("advert_interval \"{}\" is not a whole number of centiseconds", a.get_ref()),
                        )
                        .hint = Some("VRRPv3 carries the interval in units of 10ms; lvsup does not round it silently: use a multiple of 10ms".into());
                        advert_interval = None;
                    }
                }
            }
            if let Some(p) = &c.preempt {
                preempt = *p.get_ref();
            }
            if let Some(u) = &c.vrrp_unicast {
                vrrp_unicast = Some((*u.get_ref(), u.span()));
            }
            if let Some(a) = &c.vrrp_accept_foreign {
                vrrp_accept_foreign = Some((*a.get_ref(), a.span()));
            }
            if let Some(s) = &c.sync_daemon {
                sync_daemon = *s.get_ref();
            }
            if let Some(m) = &c.metrics {
                if let Some(port) = m.get_ref().strip_prefix(':') {
                    metrics =
                        metrics_port(v, "cluster.metrics", m, port).map(MetricsListen::OwnAddress);
                } else {
                    metrics = metrics_addr(v, "cluster.metrics", m).map(MetricsListen::Address);
                    if let (Some(MetricsListen::Address(a)), Some((vip, _))) = (&metrics, &vip)
                        && a.ip() == std::net::IpAddr::V4(*vip)
                    {
                        v.err("cluster.metrics", m.span(), format!("metrics must not listen on the VIP {vip}: every client of the cluster could read it"))
                            .hint = Some("\":9100\" listens on each director's own address".into());
                        metrics = None;
                    }
                }
            }
        }
    }

    if let Some(Elem { value: Some(c), .. }) = &raw.cluster {
        if let Some(t) = &c.ipvs_timeouts {
            ipvs_timeouts = Some(timeouts(v, t.get_ref()));
        }
        if let Some(b) = &c.expire_nodest_conn {
            expire_nodest_conn = *b.get_ref();
        }
        if let Some(b) = &c.expire_quiescent_template {
            expire_quiescent_template = *b.get_ref();
        }
        if let Some(d) = &c.drain_timeout {
            drain_timeout = v.duration("cluster.drain_timeout", d);
            if drain_timeout.is_some_and(|t| t > MAX_DRAIN_TIMEOUT) {
                v.err(
                    "cluster.drain_timeout",
                    d.span(),
                    format!("drain_timeout must be 0s..=7d, got \"{}\"", d.get_ref()),
                )
                .hint = Some(
                    "a removed real server stays at weight 0 at most this long; \"0s\" deletes \
                     it at once. Default \"5m\""
                        .into(),
                );
                drain_timeout = None;
            }
        }
    }

    // ---- [ssh]
    let ssh = match &raw.ssh {
        Some(Elem { value: Some(s), .. }) => ssh_settings(v, s),
        _ => SshSettings::default(),
    };

    let mut addrs: Vec<AddrUse> = Vec::new();
    if let Some((ip, span)) = &vip {
        addrs.push(AddrUse {
            addr: *ip,
            key: "cluster.vip".into(),
            span: span.clone(),
        });
    }

    // ---- [[services]]
    let mut services = Vec::new();
    let mut seen_services: BTreeMap<(u16, Protocol), (String, Range<usize>)> = BTreeMap::new();
    count_rule(v, "services", raw.services.as_deref(), "[[services]]");
    for (i, e) in raw.services.iter().flatten().enumerate() {
        let Some(s) = &e.value else { continue };
        let path = format!("services[{i}]");
        if let Some(svc) = service(v, &path, s, &e.span) {
            let key = (svc.port, svc.protocol);
            let pspan = s.port.as_ref().map_or(e.span.clone(), |p| p.span());
            if let Some((first, fspan)) = seen_services.get(&key) {
                let line = v.line(fspan);
                v.err(
                    &format!("{path}.port"),
                    pspan,
                    format!(
                        "{} port {} is already a service in {first} (line {line})",
                        svc.protocol, svc.port
                    ),
                )
                .related = Some(("first defined here".into(), fspan.clone()));
            } else {
                seen_services.insert(key, (path.clone(), pspan));
            }
            services.push(svc);
        }
    }

    // ---- [nat]
    let mode_v = mode.as_ref().map(|(m, _)| *m);
    let mut nat = None;
    match (&raw.nat, mode_v) {
        (Some(e), Some(m)) if m != Mode::Nat => {
            v.err(
                "nat",
                e.span.clone(),
                format!(
                    "a [nat] section is only valid with mode = \"nat\" (mode is \"{}\")",
                    m.as_str()
                ),
            )
            .hint = Some("remove [nat], or set mode = \"nat\"".into());
        }
        (None, Some(Mode::Nat)) => {
            let span = mode.as_ref().map(|(_, s)| s.clone()).unwrap_or_default();
            v.err("nat", span, "mode = \"nat\" needs a [nat] section".into())
                .hint = Some("add [nat] with gateway = \"<floating internal address the real servers route through>\"".into());
        }
        (
            Some(Elem {
                span,
                value: Some(n),
            }),
            _,
        ) => {
            let gateway = v
                .required("nat", "gateway", &n.gateway, span)
                .and_then(|g| v.ipv4_net("nat.gateway", g).map(|net| (net, g.span())));
            let internal_interface = n
                .internal_interface
                .as_ref()
                .and_then(|i| v.ifname("nat.internal_interface", i));
            if let Some((g, gspan)) = gateway {
                addrs.push(AddrUse {
                    addr: g.addr(),
                    key: "nat.gateway".into(),
                    span: gspan.clone(),
                });
                nat = Some((
                    Nat {
                        gateway: g,
                        internal_interface,
                    },
                    gspan,
                ));
            }
        }
        _ => {}
    }

    // ---- names
    let mut names: BTreeMap<String, (String, Range<usize>)> = BTreeMap::new();
    let mut check_name = |v: &mut V<'_>, key: String, n: &Sp<String>| -> Option<String> {
        let name = v.host_name(&key, n)?;
        if let Some((first, fspan)) = names.get(&name) {
            let line = v.line(fspan);
            v.err(
                &key,
                n.span(),
                format!("name \"{name}\" is already used by {first} (line {line})"),
            )
            .related = Some(("first used here".into(), fspan.clone()));
            return None;
        }
        names.insert(
            name.clone(),
            (key.trim_end_matches(".name").to_string(), n.span()),
        );
        Some(name)
    };

    // ---- [[directors]]
    let mut directors = Vec::new();
    count_rule(v, "directors", raw.directors.as_deref(), "[[directors]]");
    // Unicast adverts go to the other directors: with one there is nobody to
    // send to (and the daemon refuses a unicast config without peers).
    if let Some((true, span)) = &vrrp_unicast
        && raw.directors.as_ref().is_some_and(|d| d.len() == 1)
    {
        v.err(
            "cluster.vrrp_unicast",
            span.clone(),
            "vrrp_unicast = true needs at least two [[directors]]: adverts go to the other directors' addresses".into(),
        )
        .hint = Some("add the second director, or leave vrrp_unicast out (multicast)".into());
    }
    // Unicast accepts adverts only from the other directors by design: a
    // foreign router cannot be heard there, so the key would be a no-op.
    if let (Some((true, _)), Some((true, span))) = (&vrrp_unicast, &vrrp_accept_foreign) {
        v.err(
            "cluster.vrrp_accept_foreign",
            span.clone(),
            "vrrp_accept_foreign = true only applies to multicast VRRP; vrrp_unicast = true accepts adverts from the other directors only".into(),
        )
        .hint = Some("leave one of vrrp_unicast and vrrp_accept_foreign out".into());
    }
    let mut priorities: BTreeMap<u8, (String, Range<usize>)> = BTreeMap::new();
    for (i, e) in raw.directors.iter().flatten().enumerate() {
        let Some(d) = &e.value else { continue };
        let path = format!("directors[{i}]");
        let name = v
            .required(&path, "name", &d.name, &e.span)
            .and_then(|n| check_name(v, format!("{path}.name"), n));
        let address = v
            .required(&path, "address", &d.address, &e.span)
            .and_then(|a| {
                v.ipv4_net(&format!("{path}.address"), a)
                    .map(|n| (n, a.span()))
            });
        let (priority, pspan) = match &d.priority {
            Some(p) => (
                v.int(&format!("{path}.priority"), p, 1, 254, "priority")
                    .map(|n| n as u8),
                p.span(),
            ),
            None => {
                let p = PRIORITY_FIRST - PRIORITY_STEP * i as i64;
                if p < 1 {
                    v.err(
                        &format!("{path}.priority"),
                        e.span.clone(),
                        format!(
                            "no default priority for director {} (150 - 10 × {i} < 1)",
                            i + 1
                        ),
                    )
                    .hint = Some("set `priority` (1..=254) on each director".into());
                    (None, e.span.clone())
                } else {
                    (Some(p as u8), e.span.clone())
                }
            }
        };
        if let Some(p) = priority {
            if let Some((first, fspan)) = priorities.get(&p) {
                let line = v.line(fspan);
                let key = format!("{path}.priority");
                v.err(&key, pspan.clone(), format!("priority {p} is already {first}'s (line {line}); priorities must be distinct"))
                    .hint = Some(if d.priority.is_none() {
                        "this is the default from director order (150, 140, …): set `priority` explicitly".into()
                    } else {
                        "VRRP elects by priority: give each director its own".into()
                    });
            } else {
                priorities.insert(p, (path.clone(), pspan));
            }
        }
        let ssh_host = d
            .ssh_host
            .as_ref()
            .and_then(|h| v.word(&format!("{path}.ssh_host"), h, "ssh host"));
        let dmetrics = d.metrics.as_ref().and_then(|m| {
            let key = format!("{path}.metrics");
            let a = metrics_addr(v, &key, m)?;
            if let Some((vip, _)) = &vip
                && a.ip() == std::net::IpAddr::V4(*vip)
            {
                v.err(&key, m.span(), format!("metrics must not listen on the VIP {vip}: every client of the cluster could read it"))
                    .hint = Some("use the director's own address, 127.0.0.1, or a management address".into());
                return None;
            }
            Some(a)
        });
        let internal_address = match (&d.internal_address, mode_v) {
            (Some(ia), Some(m)) if m != Mode::Nat => {
                v.err(
                    &format!("{path}.internal_address"),
                    ia.span(),
                    format!(
                        "internal_address is only valid with mode = \"nat\" (mode is \"{}\")",
                        m.as_str()
                    ),
                );
                None
            }
            (Some(ia), _) => v
                .ipv4_net(&format!("{path}.internal_address"), ia)
                .map(|n| (n, ia.span())),
            (None, Some(Mode::Nat)) => {
                v.err(&format!("{path}.internal_address"), e.span.clone(), "missing required key `internal_address` (mode = \"nat\")".into())
                    .hint = Some("the director's own address on the real servers' subnet, e.g. \"192.168.10.253/24\"".into());
                None
            }
            (None, _) => None,
        };
        if let Some((a, s)) = &address {
            addrs.push(AddrUse {
                addr: a.addr(),
                key: format!("{path}.address"),
                span: s.clone(),
            });
        }
        if let Some((a, s)) = &internal_address {
            addrs.push(AddrUse {
                addr: a.addr(),
                key: format!("{path}.internal_address"),
                span: s.clone(),
            });
        }
        if let (Some(name), Some((address, aspan)), Some(priority)) = (name, address, priority) {
            directors.push(Placed {
                item: Director {
                    metrics: dmetrics,
                    name,
                    address,
                    priority,
                    ssh_host,
                    internal_address: internal_address.as_ref().map(|(n, _)| *n),
                },
                path: path.clone(),
                addr_span: aspan,
                internal_span: internal_address.map(|(_, s)| s),
            });
        }
    }

    // ---- [[real_servers]]
    let mut real_servers = Vec::new();
    count_rule(
        v,
        "real_servers",
        raw.real_servers.as_deref(),
        "[[real_servers]]",
    );
    for (i, e) in raw.real_servers.iter().flatten().enumerate() {
        let Some(r) = &e.value else { continue };
        let path = format!("real_servers[{i}]");
        let name = v
            .required(&path, "name", &r.name, &e.span)
            .and_then(|n| check_name(v, format!("{path}.name"), n));
        let address = v
            .required(&path, "address", &r.address, &e.span)
            .and_then(|a| {
                v.ipv4_net(&format!("{path}.address"), a)
                    .map(|n| (n, a.span()))
            });
        let weight = match &r.weight {
            Some(w) => v
                .int(&format!("{path}.weight"), w, 0, 65535, "weight")
                .map(|n| n as u32),
            None => Some(1),
        };
        let port = match &r.port {
            Some(p) => rs_port(v, &path, p, mode_v, &services),
            None => Some(None),
        };
        let ssh_host = r
            .ssh_host
            .as_ref()
            .and_then(|h| v.word(&format!("{path}.ssh_host"), h, "ssh host"));
        let drain = r.drain.as_ref().is_some_and(|d| *d.get_ref());
        if let Some((a, s)) = &address {
            addrs.push(AddrUse {
                addr: a.addr(),
                key: format!("{path}.address"),
                span: s.clone(),
            });
        }
        if let (Some(name), Some((address, aspan)), Some(weight), Some(port)) =
            (name, address, weight, port)
        {
            real_servers.push(Placed {
                item: RealServer {
                    name,
                    address,
                    weight,
                    port,
                    ssh_host,
                    drain,
                },
                path: path.clone(),
                addr_span: aspan,
                internal_span: None,
            });
        }
    }

    // ---- addresses are unique, and none is the VIP; the error is at the later one
    addrs.sort_by_key(|u| u.span.start);
    let mut seen: BTreeMap<Ipv4Addr, usize> = BTreeMap::new();
    for (i, u) in addrs.iter().enumerate() {
        if let Some(&first) = seen.get(&u.addr) {
            let f = &addrs[first];
            let line = v.line(&f.span);
            let msg = if f.key == "cluster.vip" {
                format!(
                    "{} is the VIP (line {line}); the VIP must be none of the hosts' addresses",
                    u.addr
                )
            } else {
                format!("{} is already used by {} (line {line})", u.addr, f.key)
            };
            v.err(&u.key, u.span.clone(), msg).related =
                Some(("first used here".into(), f.span.clone()));
        } else {
            seen.insert(u.addr, i);
        }
    }

    // ---- topology rules per mode
    if let (Some((vip, _)), Some((m, _))) = (&vip, &mode) {
        topology(v, *vip, *m, &directors, &real_servers, nat.as_ref());
    }

    let (name, (vip, _), (mode, _), advert_interval) = (name?, vip?, mode?, advert_interval?);
    let drain_timeout = drain_timeout?;
    Some(ClusterSpec {
        vrid: vrid.unwrap_or_else(|| derived_vrid(&name)),
        name,
        vip,
        mode,
        interface,
        advert_interval,
        preempt,
        vrrp_unicast: vrrp_unicast.is_some_and(|(u, _)| u),
        vrrp_accept_foreign: vrrp_accept_foreign.is_some_and(|(a, _)| a),
        sync_daemon,
        metrics,
        ipvs_timeouts,
        expire_nodest_conn,
        expire_quiescent_template,
        drain_timeout,
        ssh,
        services,
        directors: directors.into_iter().map(|d| d.item).collect(),
        real_servers: real_servers.into_iter().map(|r| r.item).collect(),
        nat: nat.map(|(n, _)| n),
    })
}

/// `[cluster] ipvs_timeouts`: whole seconds, 1s..=24d each.
fn timeouts(v: &mut V<'_>, t: &RawIpvsTimeouts) -> IpvsTimeouts {
    let mut one = |name: &str, d: &S<String>| {
        let d = d.as_ref()?;
        let key = format!("cluster.ipvs_timeouts.{name}");
        let got = v.duration(&key, d)?;
        if got.subsec_nanos() != 0 || got < Duration::from_secs(1) || got > IpvsTimeouts::MAX {
            v.err(
                &key,
                d.span(),
                format!(
                    "ipvs_timeouts.{name} must be whole seconds from 1s to 24d, got \"{}\"",
                    d.get_ref()
                ),
            )
            .hint = Some(
                "the kernel counts these timeouts in seconds; leave the key out to keep the \
                 kernel's value (tcp 900s, tcpfin 120s, udp 300s)"
                    .into(),
            );
            return None;
        }
        Some(got)
    };
    IpvsTimeouts {
        tcp: one("tcp", &t.tcp),
        tcpfin: one("tcpfin", &t.tcpfin),
        udp: one("udp", &t.udp),
    }
}

/// "at least one" — only when every element of the section could be read.
fn count_rule<T>(v: &mut V<'_>, name: &str, elems: Option<&[Elem<T>]>, header: &str) {
    if elems.is_none_or(|e| e.is_empty()) && !v.poisoned.contains(name) {
        v.problems.push(
            Problem::new(name, format!("at least one `{header}` is required"))
                .at(0..0)
                .hint(format!("add a {header} table")),
        );
    }
}

fn ssh_settings(v: &mut V<'_>, s: &RawSsh) -> SshSettings {
    let mut out = SshSettings::default();
    if let Some(u) = &s.user {
        out.user = v.word("ssh.user", u, "user name");
    }
    if let Some(p) = &s.port {
        out.port = v.int("ssh.port", p, 1, 65535, "port").map(|n| n as u16);
    }
    if let Some(f) = &s.identity_file {
        out.identity_file = v.word("ssh.identity_file", f, "path");
    }
    if let Some(c) = &s.config {
        out.config = v.word("ssh.config", c, "path");
    }
    if let Some(b) = &s.become_ {
        out.become_sudo = v.one_of("ssh.become", b, &["sudo"]).is_some();
    }
    if let Some(h) = &s.host_key_checking {
        if let Some(o) = v.one_of("ssh.host_key_checking", h, &["strict", "accept-new"]) {
            out.host_key_checking = if o == "strict" {
                HostKeyChecking::Strict
            } else {
                HostKeyChecking::AcceptNew
            };
        }
    }
    out
}

fn service(v: &mut V<'_>, path: &str, s: &RawService, span: &Range<usize>) -> Option<Service> {
    let port = v
        .required(path, "port", &s.port, span)
        .and_then(|p| v.int(&format!("{path}.port"), p, 1, 65535, "port"))
        .map(|n| n as u16);
    let protocol = match &s.protocol {
        Some(p) => v
            .one_of(&format!("{path}.protocol"), p, Protocol::ALL)
            .and_then(Protocol::parse),
        None => Some(Protocol::Tcp),
    };
    let scheduler = match &s.scheduler {
        Some(sc) => v
            .one_of(&format!("{path}.scheduler"), sc, SCHEDULERS)
            .map(str::to_string),
        None => Some("wlc".to_string()),
    };
    let persistence = match &s.persistence {
        None => Some(None),
        Some(p) => {
            let key = format!("{path}.persistence");
            match v.duration(&key, p) {
                Some(d) if d.subsec_millis() != 0 || d.is_zero() => {
                    v.err(&key, p.span(), format!("persistence \"{}\" is not a whole number of seconds ≥ 1s", p.get_ref()))
                        .hint = Some("IPVS keeps persistence in seconds (ipvsadm -p); leave the key out to turn persistence off".into());
                    None
                }
                Some(d) if d.as_secs() > u64::from(u32::MAX) => {
                    v.err(
                        &key,
                        p.span(),
                        format!("persistence \"{}\" is too long", p.get_ref()),
                    );
                    None
                }
                Some(d) => Some(Some(d)),
                None => None,
            }
        }
    };
    let health = health(v, path, s.health.as_ref(), protocol);
    Some(Service {
        port: port?,
        protocol: protocol?,
        scheduler: scheduler?,
        persistence: persistence?,
        health: health?,
    })
}

fn health(
    v: &mut V<'_>,
    path: &str,
    h: Option<&Sp<RawHealth>>,
    protocol: Option<Protocol>,
) -> Option<Health> {
    let hp = format!("{path}.health");
    let default_check = if protocol == Some(Protocol::Udp) {
        "none"
    } else {
        "tcp"
    };
    let Some(h) = h else {
        return Some(Health {
            check: if default_check == "none" {
                Check::None
            } else {
                Check::Tcp
            },
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            fall: 3,
            rise: 2,
            port: None,
        });
    };
    let hspan = h.span();
    let h = h.get_ref();
    let check = match &h.check {
        Some(c) => v.one_of(&format!("{hp}.check"), c, Check::ALL),
        None => Some(default_check),
    };
    let mut ok = true;
    let dur = |v: &mut V<'_>,
               key: &str,
               val: &S<String>,
               default: u64|
     -> Option<(Duration, Range<usize>)> {
        match val {
            None => Some((Duration::from_millis(default), hspan.clone())),
            Some(s) => {
                let k = format!("{hp}.{key}");
                let d = v.duration(&k, s)?;
                if d.is_zero() {
                    v.err(
                        &k,
                        s.span(),
                        format!("{key} must be more than 0, got \"{}\"", s.get_ref()),
                    );
                    return None;
                }
                Some((d, s.span()))
            }
        }
    };
    let interval = dur(v, "interval", &h.interval, 2000);
    let timeout = dur(v, "timeout", &h.timeout, 1000);
    if let (Some((i, _)), Some((t, tspan))) = (&interval, &timeout) {
        if t >= i {
            v.err(
                &format!("{hp}.timeout"),
                tspan.clone(),
                format!(
                    "timeout {} must be shorter than interval {}",
                    format_duration(*t),
                    format_duration(*i)
                ),
            )
            .hint = Some("a check must end before the next one starts".into());
            ok = false;
        }
    }
    let count = |v: &mut V<'_>, key: &str, val: &S<i64>, default: u32| -> Option<u32> {
        match val {
            None => Some(default),
            Some(n) => v
                .int(&format!("{hp}.{key}"), n, 1, 1000, key)
                .map(|n| n as u32),
        }
    };
    let fall = count(v, "fall", &h.fall, 3);
    let rise = count(v, "rise", &h.rise, 2);
    let port = match &h.port {
        None => Some(None),
        Some(p) => v
            .int(&format!("{hp}.port"), p, 1, 65535, "port")
            .map(|n| Some(n as u16)),
    };
    let is_http = check == Some("http");
    if check.is_some() && !is_http {
        for (key, span) in [
            ("path", h.path.as_ref().map(|s| s.span())),
            ("expect_status", h.expect_status.as_ref().map(|s| s.span())),
        ] {
            if let Some(span) = span {
                v.err(
                    &format!("{hp}.{key}"),
                    span,
                    format!(
                        "`{key}` only applies to check = \"http\" (check is \"{}\")",
                        check.unwrap_or_default()
                    ),
                );
                ok = false;
            }
        }
    }
    if protocol == Some(Protocol::Udp) && matches!(check, Some("tcp" | "http")) && h.port.is_none()
    {
        let span = h.check.as_ref().map_or(hspan.clone(), |c| c.span());
        v.err(
            &format!("{hp}.port"),
            span,
            format!(
                "a {} check of a UDP service needs `port`: the service's own port is UDP",
                check.unwrap_or_default()
            ),
        )
        .hint = Some(
            "set health.port to a TCP port the real servers listen on, or check = \"none\"".into(),
        );
        ok = false;
    }
    let mut path_ = "/".to_string();
    if let Some(p) = &h.path {
        if !v.free_text(&format!("{hp}.path"), p, "HTTP path") {
            ok = false;
        } else if p.get_ref().starts_with('/') && !p.get_ref().chars().any(char::is_whitespace) {
            path_ = p.get_ref().clone();
        } else {
            v.err(
                &format!("{hp}.path"),
                p.span(),
                format!("\"{}\" is not an HTTP path", p.get_ref()),
            )
            .hint = Some("an absolute path without spaces, e.g. \"/healthz\"".into());
            ok = false;
        }
    }
    let mut status = 200;
    if let Some(s) = &h.expect_status {
        match v.int(&format!("{hp}.expect_status"), s, 100, 599, "expect_status") {
            Some(n) => status = n as u16,
            None => ok = false,
        }
    }
    let check = match check? {
        "tcp" => Check::Tcp,
        "http" => Check::Http {
            path: path_,
            expect_status: status,
        },
        _ => Check::None,
    };
    if !ok {
        return None;
    }
    Some(Health {
        check,
        interval: interval?.0,
        timeout: timeout?.0,
        fall: fall?,
        rise: rise?,
        port: port?,
    })
}

/// A real server's `port`: NAT only, and unambiguous.
fn rs_port(
    v: &mut V<'_>,
    path: &str,
    p: &Sp<i64>,
    mode: Option<Mode>,
    services: &[Service],
) -> Option<Option<u16>> {
    let key = format!("{path}.port");
    let port = v.int(&key, p, 1, 65535, "port")? as u16;
    match mode {
        Some(m) if !m.can_remap_ports() => {
            if let Some(s) = services.iter().find(|s| s.port != port) {
                v.err(
                    &key,
                    p.span(),
                    format!("port {port} differs from the service port {}", s.port),
                )
                .hint = Some(format!(
                    "{m} cannot remap ports: real servers must listen on {}; remove `port`, or use mode = \"nat\"",
                    s.port
                ));
                return None;
            }
        }
        _ => {
            let mut ports: Vec<u16> = services.iter().map(|s| s.port).collect();
            ports.sort_unstable();
            ports.dedup();
            if ports.len() > 1 {
                v.err(
                    &key,
                    p.span(),
                    format!("port {port} is ambiguous: the services listen on ports {ports:?}"),
                )
                .hint = Some(
                    "port remapping needs a single service port; use one cluster per service port"
                        .into(),
                );
                return None;
            }
        }
    }
    Some(Some(port))
}

fn topology(
    v: &mut V<'_>,
    vip: Ipv4Addr,
    mode: Mode,
    directors: &[Placed<Director>],
    real_servers: &[Placed<RealServer>],
    nat: Option<&(Nat, Range<usize>)>,
) {
    match mode {
        Mode::Dr => {
            let hosts = directors
                .iter()
                .map(|d| (&d.path, d.item.address, &d.addr_span))
                .chain(
                    real_servers
                        .iter()
                        .map(|r| (&r.path, r.item.address, &r.addr_span)),
                );
            for (path, addr, span) in hosts {
                if !addr.contains(&vip) {
                    v.err(&format!("{path}.address"), span.clone(), format!("{addr} is not on the VIP's subnet ({vip} is outside {})", addr.trunc()))
                        .hint = Some("in DR mode directors and real servers share the VIP's layer-2 segment; put them on one subnet, or use mode = \"tun\"".into());
                }
            }
        }
        Mode::Tun => {}
        Mode::Nat => {
            let Some(first) = directors.first() else {
                return;
            };
            let Some(internal) = first.item.internal_address.map(|a| a.trunc()) else {
                return;
            };
            for d in directors {
                if let (Some(ia), Some(ispan)) = (d.item.internal_address, &d.internal_span) {
                    let key = format!("{}.internal_address", d.path);
                    if ia.trunc() != internal {
                        v.err(
                            &key,
                            ispan.clone(),
                            format!(
                                "{ia} is not on the internal subnet {internal} of {}",
                                first.item.name
                            ),
                        )
                        .hint = Some(
                            "all directors need an address on the real servers' subnet".into(),
                        );
                    }
                    if ia.contains(&vip) {
                        v.err(&key, ispan.clone(), format!("{ia} is on the VIP's subnet; in NAT mode the internal subnet is a different one"));
                    }
                }
            }
            for r in real_servers {
                let key = format!("{}.address", r.path);
                if !internal.contains(&r.item.address.addr()) {
                    v.err(&key, r.addr_span.clone(), format!("{} is not on the internal subnet {internal}", r.item.address.addr()))
                        .hint = Some("in NAT mode real servers sit on the internal subnet and route through nat.gateway".into());
                } else if r.item.address.contains(&vip) {
                    v.err(&key, r.addr_span.clone(), format!("{} is on the VIP's subnet; in NAT mode real servers are on the internal subnet, not the VIP's", r.item.address));
                }
            }
            if let Some((n, gspan)) = nat {
                if !internal.contains(&n.gateway.addr()) {
                    v.err("nat.gateway", gspan.clone(), format!("{} is not on the internal subnet {internal}", n.gateway.addr()))
                        .hint = Some("the gateway is the floating address the real servers route through: it lives on their subnet".into());
                }
            }
        }
    }
}

/// A metrics listener `"ADDRESS:PORT"` (`key` names it in errors).
fn metrics_addr(v: &mut V<'_>, key: &str, m: &Spanned<String>) -> Option<std::net::SocketAddr> {
    match m.get_ref().parse::<std::net::SocketAddr>() {
        Ok(a) => metrics_port(v, key, m, &a.port().to_string()).map(|_| a),
        Err(_) => {
            v.err(
                key,
                m.span(),
                format!(
                    "metrics must be ADDRESS:PORT or :PORT, got \"{}\"",
                    m.get_ref()
                ),
            )
            .hint = Some(
                "e.g. \"127.0.0.1:9100\" (a local agent), \":9100\" (each director's own \
                 address) or a management address; leave it out for no metrics listener"
                    .into(),
            );
            None
        }
    }
}

/// The port of a metrics listener: 1024..=65535.
fn metrics_port(v: &mut V<'_>, key: &str, m: &Spanned<String>, port: &str) -> Option<u16> {
    match port.parse::<u16>() {
        Ok(p) if p >= 1024 => Some(p),
        Ok(p) => {
            v.err(key, m.span(), format!("metrics port {p} is below 1024"))
                .hint = Some(
                "the director unit keeps only CAP_NET_ADMIN and CAP_NET_RAW, so it \
                 cannot bind a privileged port: use e.g. 9100"
                    .into(),
            );
            None
        }
        Err(_) => {
            v.err(
                key,
                m.span(),
                format!(
                    "metrics must be ADDRESS:PORT or :PORT, got \"{}\"",
                    m.get_ref()
                ),
            )
            .hint = Some("e.g. \":9100\" or \"127.0.0.1:9100\"".into());
            None
        }
    }
}
