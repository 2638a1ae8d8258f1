//! Parsed keepalived.conf files (one per director) → one cluster.toml text.
//! Pure. The mapping is documented in the parent module.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::keywords;
use super::parse::{Loc, Stmt};
use crate::config::{Mode, Protocol, SCHEDULERS, format_duration};

/// One director's file, parsed, with the addresses given on the command line.
#[derive(Debug, Clone)]
pub struct DirectorInput {
    /// The file as named in messages.
    pub file: String,
    pub stmts: Vec<Stmt>,
    /// Notes of the parser (an include that matched nothing): warnings.
    pub notes: Vec<(Loc, String)>,
    /// `CONF@ADDRESS`
    pub address: Option<Ipv4Addr>,
    /// `CONF@ADDRESS,INTERNAL` (NAT: the director's address on the real servers' subnet)
    pub internal: Option<Ipv4Addr>,
}

/// A construct and what happens to it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub loc: Loc,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.loc, self.message)
    }
}

/// Why nothing was written: errors (missing address, IPv6, files that
/// disagree…) and constructs lvsup cannot express (`--lossy` drops those).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportError {
    pub errors: Vec<String>,
    pub unsupported: Vec<Finding>,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot import: nothing written")?;
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        if !self.unsupported.is_empty() {
            write!(
                f,
                "\nlvsup cannot express {} construct{} (--lossy drops them, with a warning each):",
                self.unsupported.len(),
                if self.unsupported.len() == 1 { "" } else { "s" }
            )?;
            for u in &self.unsupported {
                write!(f, "\n  {u}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ImportError {}

/// The cluster.toml text, and one warning line per dropped or approximated construct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub toml: String,
    pub warnings: Vec<String>,
}

/// Collects what one conversion finds.
#[derive(Default)]
struct Out {
    errors: Vec<String>,
    unsupported: Vec<Finding>,
    warnings: Vec<Finding>,
}

impl Out {
    fn unsupported(&mut self, s: &Stmt, why: &str) {
        self.unsupported.push(Finding {
            loc: s.loc.clone(),
            message: format!("{}: {why}", s.text()),
        });
    }
    fn warn(&mut self, loc: &Loc, message: String) {
        self.warnings.push(Finding {
            loc: loc.clone(),
            message,
        });
    }
    fn error(&mut self, loc: &Loc, message: String) {
        self.errors.push(format!("{loc}: {message}"));
    }
    /// A keyword this converter does not map: dropped, refused, or unknown.
    fn other(&mut self, s: &Stmt) {
        if let Some(why) = keywords::dropped(&s.keyword) {
            self.warn(&s.loc, format!("{} dropped: {why}", s.keyword));
        } else if keywords::KNOWN.contains(&s.keyword.as_str()) {
            self.unsupported(s, keywords::unsupported(&s.keyword));
        } else {
            self.warn(
                &s.loc,
                format!(
                    "unknown keyword {} ignored (keepalived ignores it too)",
                    s.keyword
                ),
            );
        }
    }
}

// ---------------------------------------------------------------- values

fn arg<'a>(s: &'a Stmt, out: &mut Out) -> Option<&'a str> {
    let a = s.args.first().map(String::as_str);
    if a.is_none() {
        out.error(&s.loc, format!("{} needs a value", s.keyword));
    }
    a
}

fn ipv4(text: &str, loc: &Loc, out: &mut Out) -> Option<Ipv4Addr> {
    if text.contains(':') {
        out.error(
            loc,
            format!("{text}: IPv6 is not supported yet (lvsup clusters are IPv4 for now)"),
        );
        return None;
    }
    match text.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            out.error(loc, format!("\"{text}\" is not an IPv4 address"));
            None
        }
    }
}

/// `ADDR[/PREFIX]`
fn ipv4_prefix(text: &str, loc: &Loc, out: &mut Out) -> Option<(Ipv4Addr, Option<u8>)> {
    let (a, p) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let addr = ipv4(a, loc, out)?;
    match p {
        None => Some((addr, None)),
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= 32 => Some((addr, Some(n))),
            _ => {
                out.error(loc, format!("\"{text}\" has an invalid prefix"));
                None
            }
        },
    }
}

fn number<T: std::str::FromStr>(s: &Stmt, out: &mut Out) -> Option<T> {
    let a = arg(s, out)?;
    match a.parse() {
        Ok(n) => Some(n),
        Err(_) => {
            out.error(
                &s.loc,
                format!("{}: \"{a}\" is not a valid number", s.keyword),
            );
            None
        }
    }
}

fn port(text: &str, loc: &Loc, out: &mut Out) -> Option<u16> {
    match text.parse::<u16>() {
        Ok(p) if p > 0 => Some(p),
        _ => {
            out.error(loc, format!("\"{text}\" is not a port (1..=65535)"));
            None
        }
    }
}

/// keepalived `<TIMER>`: seconds, fractions allowed; lvsup keeps milliseconds.
fn timer(s: &Stmt, out: &mut Out) -> Option<Duration> {
    let a = arg(s, out)?;
    let secs: f64 = match a.parse() {
        Ok(v) if (0.0..=1e9).contains(&v) => v,
        _ => {
            out.error(
                &s.loc,
                format!("{}: \"{a}\" is not a time in seconds", s.keyword),
            );
            return None;
        }
    };
    let ms = secs * 1000.0;
    if (ms - ms.round()).abs() > 1e-6 {
        out.unsupported(s, "lvsup times are whole milliseconds");
    }
    Some(Duration::from_millis(ms.round() as u64))
}

// ---------------------------------------------------------------- vrrp

#[derive(Debug, Clone)]
struct Vip {
    addr: Ipv4Addr,
    prefix: Option<u8>,
    dev: Option<String>,
    loc: Loc,
}

#[derive(Debug, Clone)]
struct Instance {
    name: String,
    loc: Loc,
    interface: Option<(String, Loc)>,
    vrid: Option<(u8, Loc)>,
    priority: (u8, Loc),
    advert: (Duration, Loc),
    preempt: (bool, Loc),
    vips: Vec<Vip>,
    src_ip: Option<(Ipv4Addr, Loc)>,
    peers: Option<(Vec<Ipv4Addr>, Loc)>,
    sync_daemon: Option<(String, Loc)>,
    /// `version` (VRRP protocol version keepalived speaks).
    version: Option<String>,
    preempt_delay: Option<(Duration, Loc)>,
    notify: NotifyIn,
}

/// notify_master / notify_backup / notify_fault / notify_stop, as argv.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct NotifyIn {
    master: Option<(Vec<String>, Loc)>,
    backup: Option<(Vec<String>, Loc)>,
    fault: Option<(Vec<String>, Loc)>,
    stop: Option<(Vec<String>, Loc)>,
}

impl NotifyIn {
    /// Read one notify_* statement; false when `s` is none of them.
    fn read(&mut self, s: &Stmt, out: &mut Out) -> bool {
        let slot = match s.keyword.as_str() {
            "notify_master" => &mut self.master,
            "notify_backup" => &mut self.backup,
            "notify_fault" => &mut self.fault,
            "notify_stop" => &mut self.stop,
            _ => return false,
        };
        // `notify_master "/path arg…" [username [groupname]]`
        let Some(cmd) = arg(s, out) else { return true };
        if s.args.len() > 1 {
            out.warn(
                &s.loc,
                format!(
                    "{}: user {} dropped: lvsup runs notify programs as the director daemon's unprivileged user",
                    s.keyword,
                    s.args[1..].join(" ")
                ),
            );
        }
        if let Some(argv) = program(s, cmd, out) {
            *slot = Some((argv, s.loc.clone()));
        }
        true
    }

    /// `[cluster] notify = { … }`, or `None` when no hook is set.
    fn toml(&self) -> Option<String> {
        let parts: Vec<String> = [
            ("master", &self.master),
            ("backup", &self.backup),
            ("fault", &self.fault),
            ("stop", &self.stop),
        ]
        .iter()
        .filter_map(|(k, v)| {
            v.as_ref().map(|(argv, _)| {
                let words: Vec<String> = argv.iter().map(|a| q(a)).collect();
                format!("{k} = [{}]", words.join(", "))
            })
        })
        .collect();
        (!parts.is_empty()).then(|| format!("notify = {{ {} }}", parts.join(", ")))
    }
}

/// A keepalived command string (misc_path, notify_*) as argv: split the way
/// keepalived splits it before its execve (white space; '…' and "…" quote,
/// `\` escapes), no shell. Hand-written: it is keepalived's rule, not a
/// shell's (no variables, globs or redirections to honour), a few lines.
fn split_command(cmd: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = cmd.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated ' quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => cur.push(c),
                            None => return Err("\\ at the end".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("unterminated \" quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => cur.push(c),
                    None => return Err("\\ at the end".into()),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// `cmd` of statement `s` as an argv lvsup can run: split, and the program
/// an absolute path (lvsup searches no PATH).
fn program(s: &Stmt, cmd: &str, out: &mut Out) -> Option<Vec<String>> {
    let argv = match split_command(cmd) {
        Ok(a) => a,
        Err(e) => {
            out.error(&s.loc, format!("{}: {e}", s.keyword));
            return None;
        }
    };
    match argv.first() {
        None => {
            out.error(&s.loc, format!("{} needs a command", s.keyword));
            None
        }
        Some(p) if !p.starts_with('/') => {
            out.unsupported(
                s,
                "lvsup runs a program by its absolute path (no shell, no PATH search)",
            );
            None
        }
        Some(_) => Some(argv),
    }
}

fn instance(s: &Stmt, out: &mut Out) -> Instance {
    let mut i = Instance {
        name: s.args.first().cloned().unwrap_or_default(),
        loc: s.loc.clone(),
        interface: None,
        vrid: None,
        priority: (100, s.loc.clone()),
        advert: (Duration::from_secs(1), s.loc.clone()),
        preempt: (true, s.loc.clone()),
        vips: Vec::new(),
        src_ip: None,
        peers: None,
        sync_daemon: None,
        version: None,
        preempt_delay: None,
        notify: NotifyIn::default(),
    };
    for c in s.children() {
        match c.keyword.as_str() {
            "interface" => i.interface = arg(c, out).map(|a| (a.to_string(), c.loc.clone())),
            "virtual_router_id" => {
                if let Some(n) = number::<u16>(c, out) {
                    if (1..=255).contains(&n) {
                        i.vrid = Some((n as u8, c.loc.clone()));
                    } else {
                        out.error(&c.loc, format!("virtual_router_id {n} is not 1..=255"));
                    }
                }
            }
            "priority" => {
                if let Some(n) = number::<u16>(c, out) {
                    match n {
                        1..=254 => i.priority = (n as u8, c.loc.clone()),
                        255 => out.unsupported(
                            c,
                            "priority 255 (address owner): lvsup priorities are 1..=254",
                        ),
                        _ => out.error(&c.loc, format!("priority {n} is not 1..=255")),
                    }
                }
            }
            "advert_int" => {
                if let Some(d) = timer(c, out) {
                    if d.as_millis() % 10 != 0
                        || d < crate::config::validate::ADVERT_MIN
                        || d > crate::config::validate::ADVERT_MAX
                    {
                        out.unsupported(
                            c,
                            "lvsup advert intervals are whole centiseconds in 10ms..=40s",
                        );
                    } else {
                        i.advert = (d, c.loc.clone());
                    }
                }
            }
            "version" => i.version = c.args.first().cloned(),
            // MASTER/BACKUP is only the start state: priority elects.
            "state" => {}
            "nopreempt" => i.preempt = (false, c.loc.clone()),
            "preempt_delay" => {
                if let Some(d) = timer(c, out) {
                    if d > crate::config::MAX_PREEMPT_DELAY {
                        out.error(&c.loc, "preempt_delay is more than 1000 seconds".into());
                    } else {
                        i.preempt_delay = Some((d, c.loc.clone()));
                    }
                }
            }
            "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" => {
                i.notify.read(c, out);
            }
            "preempt" => i.preempt = (true, c.loc.clone()),
            "virtual_ipaddress" => {
                for v in c.children() {
                    if let Some(vip) = vip_line(v, out) {
                        i.vips.push(vip);
                    }
                }
            }
            "mcast_src_ip" | "unicast_src_ip" => {
                if let Some(a) = arg(c, out).and_then(|a| ipv4(a, &c.loc, out)) {
                    i.src_ip = Some((a, c.loc.clone()));
                }
            }
            "unicast_peer" => {
                let mut peers = Vec::new();
                for p in c.children() {
                    if !p.args.is_empty() {
                        out.unsupported(p, "lvsup sets no TTL limits on unicast peers");
                    }
                    if let Some(a) = ipv4(&p.keyword, &p.loc, out) {
                        peers.push(a);
                    }
                }
                i.peers = Some((peers, c.loc.clone()));
            }
            // keepalived 1.x: the IPVS sync daemon on this interface.
            "lvs_sync_daemon_interface" => {
                i.sync_daemon = arg(c, out).map(|a| (a.to_string(), c.loc.clone()));
            }
            _ => out.other(c),
        }
    }
    i
}

/// `ADDR[/PREFIX] [dev IF] [brd X] [label L] …`
fn vip_line(v: &Stmt, out: &mut Out) -> Option<Vip> {
    let (addr, prefix) = ipv4_prefix(&v.keyword, &v.loc, out)?;
    let mut dev = None;
    let mut it = v.args.iter();
    while let Some(opt) = it.next() {
        let val = it.next();
        match (opt.as_str(), val) {
            ("dev", Some(d)) => dev = Some(d.clone()),
            ("label" | "brd" | "broadcast", Some(_)) => out.warn(
                &v.loc,
                format!("virtual_ipaddress option `{opt}` dropped: lvsup adds the address itself"),
            ),
            _ => {
                out.unsupported.push(Finding {
                    loc: v.loc.clone(),
                    message: format!(
                        "virtual_ipaddress option `{opt}`: lvsup adds the VIP with no options"
                    ),
                });
                break;
            }
        }
    }
    Some(Vip {
        addr,
        prefix,
        dev,
        loc: v.loc.clone(),
    })
}

// ---------------------------------------------------------------- ipvs

/// Timers inherited virtual_server → real_server → checker.
#[derive(Debug, Clone, Copy, Default)]
struct Timers {
    delay_loop: Option<Duration>,
    connect_timeout: Option<Duration>,
    retry: Option<u32>,
}

impl Timers {
    /// Returns whether `s` was a timer keyword.
    fn read(&mut self, s: &Stmt, out: &mut Out) -> bool {
        match s.keyword.as_str() {
            "delay_loop" => self.delay_loop = timer(s, out).or(self.delay_loop),
            "connect_timeout" => self.connect_timeout = timer(s, out).or(self.connect_timeout),
            "retry" | "nb_get_retry" => self.retry = number(s, out).or(self.retry),
            // No lvsup equivalent: lvsup re-checks at `interval` (see the module docs).
            "delay_before_retry" => {}
            _ => return false,
        }
        true
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum CheckKind {
    Tcp,
    /// HTTP_GET, or SSL_GET (`tls`: https without certificate verification).
    Http {
        path: String,
        status: u16,
        digest: Option<String>,
        body: Option<String>,
        tls: bool,
        /// SSL_GET `virtualhost`: lvsup's `sni` (SNI and Host header).
        sni: Option<String>,
    },
    /// MISC_CHECK: the program and its arguments.
    Script {
        argv: Vec<String>,
    },
    None,
}

/// The lvsup health of one real server, before it becomes the service's.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HealthOut {
    check: CheckKind,
    interval: Duration,
    timeout: Duration,
    fall: u32,
    port: Option<u16>,
}

#[derive(Debug, Clone)]
struct Rs {
    addr: Ipv4Addr,
    port: u16,
    weight: u32,
    name: Option<String>,
    health: HealthOut,
    loc: Loc,
    health_loc: Loc,
}

#[derive(Debug, Clone)]
struct Vs {
    loc: Loc,
    /// 0.0.0.0 for a fwmark service (the cluster's VIP is used).
    vip: Ipv4Addr,
    /// 0 for a fwmark service.
    port: u16,
    protocol: Protocol,
    scheduler: String,
    persistence: Option<u32>,
    /// `virtual_server fwmark N` with the ports from its line's comment.
    fwmark: Option<(u32, Vec<u16>)>,
    /// `persistence_granularity`, as a prefix length.
    netmask: Option<u8>,
    /// `sorry_server`, as cluster.toml writes it.
    sorry: Option<String>,
    mode: (Mode, Loc),
    rs: Vec<Rs>,
}

/// The ports of a fwmark virtual server from the comment on its line:
/// `# ports 80,443`, `# ports: 80 443`, `# ports = [80, 443]`. keepalived
/// does not know them (the firewall rule that sets the mark is elsewhere).
fn ports_in_comment(c: &str) -> Option<Vec<u16>> {
    let rest = c.trim().strip_prefix("ports")?;
    let rest = rest.trim_start_matches([':', '=', ' ', '\t']);
    let rest = rest.trim().trim_start_matches('[').trim_end_matches(']');
    let mut ports = Vec::new();
    for p in rest.split([',', ' ', '\t']).filter(|p| !p.is_empty()) {
        let n: u16 = p.parse().ok().filter(|n| *n > 0)?;
        if !ports.contains(&n) {
            ports.push(n);
        }
    }
    ports.sort_unstable();
    (!ports.is_empty()).then_some(ports)
}

fn mode_of(s: &Stmt, out: &mut Out) -> Option<Mode> {
    let a = arg(s, out)?;
    match a.to_ascii_uppercase().as_str() {
        "DR" => Some(Mode::Dr),
        "NAT" => Some(Mode::Nat),
        "TUN" => {
            if s.args.len() > 1 {
                out.unsupported(s, "lvsup tunnels are plain ipip");
            }
            Some(Mode::Tun)
        }
        _ => {
            out.error(
                &s.loc,
                format!("{}: unknown forwarding method \"{a}\"", s.keyword),
            );
            None
        }
    }
}

fn virtual_server(s: &Stmt, out: &mut Out) -> Option<Vs> {
    let mut fwmark = None;
    let (vip, vport) = match s.args.as_slice() {
        [kw, mark, ..] if kw == "fwmark" => {
            let Some(m) = mark.parse::<u32>().ok().filter(|m| *m > 0) else {
                out.error(
                    &s.loc,
                    format!("virtual_server fwmark \"{mark}\": a mark is 1..=4294967295"),
                );
                return None;
            };
            let Some(ports) = s.comment.as_deref().and_then(ports_in_comment) else {
                out.unsupported(
                    s,
                    &format!(
                        "keepalived.conf does not say which ports mark {m} covers (the iptables/nft rule that sets it is outside keepalived): \
                         add the comment `# ports 80,443` (the marked ports) at the end of this line and import again, \
                         or write the service by hand (fwmark = {m}, ports = [...])"
                    ),
                );
                return None;
            };
            fwmark = Some((m, ports));
            (Ipv4Addr::UNSPECIFIED, 0)
        }
        [kw] if kw == "fwmark" => {
            out.error(&s.loc, "virtual_server fwmark needs the mark".into());
            return None;
        }
        [kw, ..] if kw == "group" => {
            out.unsupported(s, keywords::unsupported("group"));
            return None;
        }
        [ip, p, ..] => (ipv4(ip, &s.loc, out)?, port(p, &s.loc, out)?),
        [ip] => {
            ipv4(ip, &s.loc, out)?;
            out.unsupported(
                s,
                "a virtual server without a port: lvsup services have one",
            );
            return None;
        }
        [] => {
            out.error(&s.loc, "virtual_server needs an address and a port".into());
            return None;
        }
    };
    let mut timers = Timers::default();
    let mut protocol = None;
    let mut scheduler = None;
    let mut persistence = None;
    let mut mode = None;
    let mut netmask: Option<(u8, Loc)> = None;
    let mut sorry: Option<(Ipv4Addr, Option<u16>, Loc)> = None;
    let mut rs_stmts = Vec::new();
    for c in s.children() {
        if timers.read(c, out) {
            continue;
        }
        match c.keyword.as_str() {
            "persistence_granularity" => {
                if let Some(a) = arg(c, out) {
                    match crate::config::parse_netmask(a) {
                        Ok(n) => netmask = Some((n, c.loc.clone())),
                        Err(why) => {
                            out.error(&c.loc, format!("persistence_granularity {a}: {why}"))
                        }
                    }
                }
            }
            // the service's own method: what lvsup does anyway
            "sorry_server_lvs_method"
                if c.args.first().is_some_and(|a| {
                    s.children().iter().any(|k| {
                        matches!(k.keyword.as_str(), "lb_kind" | "lvs_method")
                            && k.args.first().is_some_and(|b| b.eq_ignore_ascii_case(a))
                    })
                }) => {}
            "sorry_server" => match c.args.as_slice() {
                [ip, rest @ ..] => {
                    let Some(a) = ipv4(ip, &c.loc, out) else {
                        continue;
                    };
                    let p = match rest.first() {
                        Some(p) => match port(p, &c.loc, out) {
                            Some(p) => Some(p),
                            None => continue,
                        },
                        None => None,
                    };
                    sorry = Some((a, p, c.loc.clone()));
                }
                [] => out.error(&c.loc, "sorry_server needs an address".into()),
            },
            "lb_algo" | "lvs_sched" => {
                if let Some(a) = arg(c, out) {
                    if SCHEDULERS.contains(&a) {
                        scheduler = Some(a.to_string());
                    } else {
                        out.unsupported(c, "not a scheduler lvsup knows");
                    }
                }
            }
            "lb_kind" | "lvs_method" => mode = mode_of(c, out).map(|m| (m, c.loc.clone())),
            "persistence_timeout" => {
                persistence = Some(match c.args.first() {
                    // keepalived: without a value, 6 minutes.
                    None => 360,
                    Some(_) => match number::<u32>(c, out) {
                        Some(0) | None => continue,
                        Some(n) => n,
                    },
                })
            }
            "protocol" => match arg(c, out).map(str::to_ascii_lowercase).as_deref() {
                Some("tcp") => protocol = Some(Protocol::Tcp),
                Some("udp") => protocol = Some(Protocol::Udp),
                Some(_) => out.unsupported(c, "lvsup services are tcp or udp"),
                None => {}
            },
            "real_server" => rs_stmts.push(c),
            _ => out.other(c),
        }
    }
    let protocol = match protocol {
        Some(p) => p,
        // keepalived ignores (and warns about) a fwmark service's protocol:
        // IPVS matches the mark alone. lvsup's rule marks one protocol.
        None if fwmark.is_some() => {
            out.warn(
                &s.loc,
                "fwmark service without protocol: lvsup's nftables rule marks tcp packets (add `protocol UDP` for udp; keepalived ignores it for fwmark services)".into(),
            );
            Protocol::Tcp
        }
        None => {
            out.warn(
                &s.loc,
                "no protocol: keepalived (and the kernel) default to UDP, so the service is udp"
                    .into(),
            );
            Protocol::Udp
        }
    };
    let scheduler = scheduler.unwrap_or_else(|| {
        out.warn(&s.loc, "no lb_algo: keepalived's default wlc".into());
        "wlc".into()
    });
    let mode = mode.unwrap_or_else(|| {
        out.warn(&s.loc, "no lb_kind: keepalived's default NAT".into());
        (Mode::Nat, s.loc.clone())
    });
    let mut rs = Vec::new();
    for r in rs_stmts {
        if let Some(x) = real_server(r, vport, protocol, mode.0, timers, out) {
            rs.push(x);
        }
    }
    let netmask = match netmask {
        Some((n, loc)) if persistence.is_none() => {
            out.warn(
                &loc,
                format!("persistence_granularity /{n} dropped: without persistence_timeout it has no effect"),
            );
            None
        }
        // /32: the default
        Some((32, _)) => None,
        Some((n, _)) => Some(n),
        None => None,
    };
    // The sorry server's port: NAT may forward to another port; DR and TUN
    // forward to the one the client asked for (keepalived's port is unused).
    let sorry = sorry.map(|(a, p, loc)| match p {
        // keepalived clears it too: a fwmark destination takes the packet's port
        Some(p) if vport == 0 => {
            out.warn(
                &loc,
                format!("sorry_server port {p} dropped: a fwmark service's sorry server takes the packet's own port (keepalived clears it too)"),
            );
            a.to_string()
        }
        Some(p) if mode.0 == Mode::Nat && p != vport => format!("{a}:{p}"),
        Some(p) if p != vport && vport != 0 => {
            out.warn(
                &loc,
                format!("sorry_server port {p} differs from the virtual server's {vport}: {} cannot remap ports, it gets {vport}", mode.0),
            );
            a.to_string()
        }
        _ => a.to_string(),
    });
    Some(Vs {
        loc: s.loc.clone(),
        vip,
        port: vport,
        protocol,
        scheduler,
        persistence,
        fwmark,
        netmask,
        sorry,
        mode,
        rs,
    })
}

fn real_server(
    s: &Stmt,
    vport: u16,
    protocol: Protocol,
    mode: Mode,
    inherited: Timers,
    out: &mut Out,
) -> Option<Rs> {
    let addr = ipv4(s.args.first()?, &s.loc, out)?;
    let mut rport = match s.args.get(1) {
        Some(p) => port(p, &s.loc, out)?,
        None => vport,
    };
    // A fwmark service's destinations take the packet's own port: the
    // real server's port is where its check connects.
    let fwmark = vport == 0;
    if !fwmark && rport != vport && mode != Mode::Nat {
        out.warn(
            &s.loc,
            format!(
                "real server port {rport} differs from the virtual server's {vport}: {mode} cannot remap ports, keepalived uses {vport} too"
            ),
        );
        rport = vport;
    }
    let mut timers = inherited;
    let mut weight = (1u32, s.loc.clone());
    let mut checkers = Vec::new();
    for c in s.children() {
        if timers.read(c, out) {
            continue;
        }
        match c.keyword.as_str() {
            "weight" => {
                if let Some(w) = number::<u32>(c, out) {
                    if w > 65535 {
                        out.error(&c.loc, format!("weight {w} is more than 65535"));
                    }
                    weight = (w.min(65535), c.loc.clone());
                }
            }
            "lvs_method" => {
                if mode_of(c, out).is_some_and(|m| m != mode) {
                    out.unsupported(c, "lvsup forwards every real server the same way");
                }
            }
            "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK" => checkers.push(c),
            _ => out.other(c),
        }
    }
    let health = match checkers.as_slice() {
        [] => (
            HealthOut {
                check: CheckKind::None,
                interval: Duration::from_secs(2),
                timeout: Duration::from_secs(1),
                fall: 1,
                port: None,
            },
            s.loc.clone(),
        ),
        [first, rest @ ..] => {
            for extra in rest {
                out.unsupported(extra, "lvsup runs one health check per service");
            }
            (
                checker(first, addr, rport, protocol, timers, out),
                first.loc.clone(),
            )
        }
    };
    let mut health = health;
    if fwmark {
        if health.0.check != CheckKind::None {
            match health.0.port {
                Some(p) if p != 0 => {}
                _ if rport != 0 => health.0.port = Some(rport),
                _ => {
                    out.error(
                        &s.loc,
                        format!("real_server {addr} of a fwmark virtual_server has no port: its check needs one (a port on this line, or connect_port)"),
                    );
                    return None;
                }
            }
        }
        rport = 0;
    }
    Some(Rs {
        addr,
        port: rport,
        weight: weight.0,
        name: s.comment.as_deref().and_then(name_in_comment),
        health: health.0,
        loc: s.loc.clone(),
        health_loc: health.1,
    })
}

fn checker(
    c: &Stmt,
    addr: Ipv4Addr,
    rport: u16,
    protocol: Protocol,
    inherited: Timers,
    out: &mut Out,
) -> HealthOut {
    let mut timers = inherited;
    let mut connect_port = None;
    let mut urls = Vec::new();
    let mut misc: Option<Vec<String>> = None;
    let mut misc_timeout = None;
    let is_http = c.keyword == "HTTP_GET" || c.keyword == "SSL_GET";
    let is_ssl = c.keyword == "SSL_GET";
    let mut vhost: Option<String> = None;
    let mut enable_sni = false;
    for k in c.children() {
        if c.keyword == "TCP_CHECK" && k.keyword == "nb_get_retry" {
            out.warn(
                &k.loc,
                "nb_get_retry in TCP_CHECK: keepalived 2.x ignores it (unknown there, retry stays 1); lvsup takes it as retry".into(),
            );
        }
        if timers.read(k, out) {
            continue;
        }
        match k.keyword.as_str() {
            "connect_port" => {
                connect_port = arg(k, out).and_then(|a| port(a, &k.loc, out));
            }
            "url" if is_http => urls.push(k),
            "virtualhost" if is_ssl => vhost = arg(k, out).map(str::to_string),
            "enable_sni" if is_ssl => enable_sni = true,
            "misc_path" if c.keyword == "MISC_CHECK" => {
                // keepalived reads the rest of the line as the command.
                let cmd = k.args.join(" ");
                misc = program(k, &cmd, out).map(|argv| placeholders(argv, addr, rport));
            }
            "misc_timeout" if c.keyword == "MISC_CHECK" => misc_timeout = timer(k, out),
            "user" if c.keyword == "MISC_CHECK" => out.warn(
                &k.loc,
                format!(
                    "user {} dropped: lvsup runs script checks as the director daemon's unprivileged user",
                    k.args.join(" ")
                ),
            ),
            _ => out.other(k),
        }
    }
    let check = if c.keyword == "MISC_CHECK" {
        match misc {
            Some(argv) => CheckKind::Script { argv },
            None => {
                if !c.children().iter().any(|k| k.keyword == "misc_path") {
                    out.error(&c.loc, "MISC_CHECK without misc_path".into());
                }
                CheckKind::None
            }
        }
    } else if is_http {
        let mut path = "/".to_string();
        let mut status = 200;
        let mut digest = None;
        let mut body = None;
        match urls.as_slice() {
            [] => out.warn(&c.loc, "HTTP_GET without url: lvsup checks path /".into()),
            [first, rest @ ..] => {
                for extra in rest {
                    out.unsupported(extra, "lvsup http checks fetch one path");
                }
                let mut have_status = false;
                for u in first.children() {
                    match u.keyword.as_str() {
                        "path" => {
                            if let Some(p) = arg(u, out) {
                                path = p.to_string();
                            }
                        }
                        "status_code" => {
                            have_status = true;
                            match u.args.as_slice() {
                                [one]
                                    if one
                                        .parse::<u16>()
                                        .is_ok_and(|n| (100..=599).contains(&n)) =>
                                {
                                    status = one.parse().unwrap_or(200);
                                }
                                _ => out.unsupported(u, "lvsup http checks expect one status code"),
                            }
                        }
                        "digest" => match u.args.as_slice() {
                            [d] if d.len() == 32 && d.bytes().all(|b| b.is_ascii_hexdigit()) => {
                                digest = Some(d.to_ascii_lowercase());
                            }
                            _ => out.error(
                                &u.loc,
                                format!("digest {}: not an MD5 digest (32 hex digits)", u.args.join(" ")),
                            ),
                        },
                        "virtualhost" if is_ssl => vhost = arg(u, out).map(str::to_string),
                        // A regex without special characters is a substring.
                        "regex" => match u.args.as_slice() {
                            [r] if !r.is_empty()
                                && !r.contains(|c: char| ".^$*+?()[]{}|\\".contains(c)) =>
                            {
                                body = Some(r.clone());
                            }
                            _ => out.unsupported(
                                u,
                                "lvsup matches the body against plain text (expect_body), not a regular expression",
                            ),
                        },
                        _ => out.other(u),
                    }
                }
                if !have_status {
                    out.warn(
                        &first.loc,
                        "url without status_code: keepalived accepts any 2xx, lvsup expects 200"
                            .into(),
                    );
                }
            }
        }
        let sni = match vhost {
            Some(v) if rustls::pki_types::ServerName::try_from(v.as_str()).is_ok() => {
                if !enable_sni {
                    out.warn(
                        &c.loc,
                        format!(
                            "virtualhost {v} without enable_sni: lvsup sends it in the TLS handshake (SNI) as well as in the Host header"
                        ),
                    );
                }
                Some(v)
            }
            Some(v) => {
                out.error(&c.loc, format!("virtualhost {v}: not a DNS name"));
                None
            }
            None => None,
        };
        CheckKind::Http {
            path,
            status,
            digest,
            body,
            tls: is_ssl,
            sni,
        }
    } else {
        CheckKind::Tcp
    };
    let interval = timers.delay_loop.unwrap_or(Duration::from_secs(60));
    // MISC_CHECK: misc_timeout, by default delay_loop (keepalived's default).
    let timeout = if c.keyword == "MISC_CHECK" {
        misc_timeout.unwrap_or(interval)
    } else {
        timers.connect_timeout.unwrap_or(Duration::from_secs(5))
    };
    let interval = if timeout >= interval {
        let i = timeout + interval;
        out.warn(
            &c.loc,
            format!(
                "connect_timeout {} is not shorter than delay_loop {}: interval {} (keepalived starts the next check delay_loop after one ends)",
                format_duration(timeout),
                format_duration(interval),
                format_duration(i)
            ),
        );
        i
    } else {
        interval
    };
    let port = match (connect_port, protocol) {
        // A script connects nowhere; {port} is the real server's.
        _ if matches!(check, CheckKind::Script { .. } | CheckKind::None) => None,
        (Some(p), _) if p != rport => Some(p),
        // A tcp/http check of a UDP service needs a port: the real server's.
        (p, Protocol::Udp) => Some(p.unwrap_or(rport)),
        _ => None,
    };
    HealthOut {
        check,
        interval,
        timeout,
        fall: timers.retry.unwrap_or(1).saturating_add(1).min(1000),
        port,
    }
}

/// The real server's own address (and port, as a whole word or after
/// `ADDRESS:`) in a MISC_CHECK command → `{address}`/`{port}`: keepalived
/// configs write one misc_path per real server, lvsup has one script per
/// service, run with each real server's values.
fn placeholders(argv: Vec<String>, addr: Ipv4Addr, port: u16) -> Vec<String> {
    let a = addr.to_string();
    let p = port.to_string();
    argv.into_iter()
        .enumerate()
        .map(|(i, w)| {
            if i == 0 {
                return w;
            }
            if w == p {
                return "{port}".into();
            }
            let w = w.replace(&format!("{a}:{p}"), "{address}:{port}");
            // Replace the address only where it is not part of a longer one.
            let mut out = String::new();
            let mut rest = w.as_str();
            while let Some(i) = rest.find(&a) {
                let before = rest[..i].chars().next_back();
                let after = rest[i + a.len()..].chars().next();
                let part_of_more =
                    |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit() || c == '.');
                out.push_str(&rest[..i]);
                if part_of_more(before) || part_of_more(after) {
                    out.push_str(&a);
                } else {
                    out.push_str("{address}");
                }
                rest = &rest[i + a.len()..];
            }
            out.push_str(rest);
            out
        })
        .collect()
}

/// A real server's name from the comment on its line: `# web1`, `# name: web1`,
/// `# name=web1`. Anything else (a sentence, another language) names nothing.
fn name_in_comment(c: &str) -> Option<String> {
    let c = c.trim();
    let c = c
        .strip_prefix("name")
        .map(|r| r.trim_start_matches([':', '=', ' ']).trim())
        .filter(|r| !r.is_empty())
        .unwrap_or(c);
    valid_host_name(c).then(|| c.to_string())
}

fn valid_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn dashed(a: Ipv4Addr) -> String {
    a.to_string().replace('.', "-")
}

// ---------------------------------------------------------------- one file

#[derive(Debug, Clone)]
struct Gateway {
    addr: Ipv4Addr,
    prefix: Option<u8>,
    interface: Option<String>,
    src_ip: Option<Ipv4Addr>,
    loc: Loc,
}

/// What one director's file says.
#[derive(Debug, Clone)]
struct FileView {
    file: String,
    router_id: Option<String>,
    main: Instance,
    vip: Vip,
    mode: (Mode, Loc),
    gateway: Option<Gateway>,
    sync_daemon: bool,
    services: Vec<Vs>,
    address: Option<Ipv4Addr>,
    internal: Option<Ipv4Addr>,
}

fn read_file(input: &DirectorInput, out: &mut Out) -> Option<FileView> {
    let mut router_id = None;
    let mut instances = Vec::new();
    let mut groups: Vec<(Stmt, Vec<String>)> = Vec::new();
    let mut services = Vec::new();
    let mut sync_daemon_global: Option<(String, Loc)> = None;
    let mut vrrp_version: Option<String> = None;
    let errors_before = out.errors.len();
    for (loc, note) in &input.notes {
        out.warn(loc, note.clone());
    }
    for s in &input.stmts {
        match s.keyword.as_str() {
            "global_defs" => {
                for g in s.children() {
                    match g.keyword.as_str() {
                        "router_id" => router_id = g.args.first().cloned(),
                        "vrrp_version" => vrrp_version = g.args.first().cloned(),
                        "lvs_sync_daemon" => {
                            sync_daemon_global =
                                arg(g, out).map(|a| (a.to_string(), g.loc.clone()));
                        }
                        _ => out.other(g),
                    }
                }
            }
            "vrrp_instance" => instances.push(instance(s, out)),
            "vrrp_sync_group" => {
                let mut members = Vec::new();
                for c in s.children() {
                    match c.keyword.as_str() {
                        "group" => {
                            members.extend(c.children().iter().map(|m| m.keyword.clone()));
                            members.extend(c.args.iter().cloned());
                        }
                        // The group's hooks: read with the instance that holds the VIP.
                        "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" => {}
                        _ => out.other(c),
                    }
                }
                groups.push((s.clone(), members));
            }
            "virtual_server" => {
                if let Some(vs) = virtual_server(s, out) {
                    services.push(vs);
                }
            }
            _ => out.other(s),
        }
    }
    let file = &input.file;
    let Some(first) = services.first() else {
        if out.errors.len() > errors_before {
            return None;
        }
        out.errors.push(format!(
            "{file}: no virtual_server with an address and a port: nothing for lvsup to balance"
        ));
        return None;
    };
    // fwmark services have no address: the VIP is the first address
    // service's, else the first address of the first vrrp_instance.
    let vip_addr = match services.iter().find(|v| v.fwmark.is_none()) {
        Some(v) => v.vip,
        None => match instances.first().and_then(|i| i.vips.first()) {
            Some(v) => {
                out.warn(
                    &first.loc,
                    format!("the fwmark services' packets are marked for {} (the first virtual_ipaddress): lvsup's nftables rule matches that destination", v.addr),
                );
                v.addr
            }
            None => {
                out.errors.push(format!(
                    "{file}: no vrrp_instance with a virtual_ipaddress: lvsup needs the VIP"
                ));
                return None;
            }
        },
    };
    let mode = first.mode.clone();
    let first_loc = first.loc.clone();
    services.retain(|vs| {
        if vs.mode.0 != mode.0 {
            out.unsupported.push(Finding {
                loc: vs.mode.1.clone(),
                message: format!(
                    "lb_kind {}: lvsup forwards every service the same way ({} from {})",
                    vs.mode.0, mode.0, mode.1
                ),
            });
            return false;
        }
        true
    });
    // The instance holding the VIP.
    let Some(main_idx) = instances
        .iter()
        .position(|i| i.vips.iter().any(|v| v.addr == vip_addr))
    else {
        out.errors.push(format!(
            "{file}: the VIP {vip_addr} of virtual_server ({}) is in no vrrp_instance's virtual_ipaddress: lvsup needs the VRRP instance that holds it",
            first_loc
        ));
        return None;
    };
    let mut main = instances[main_idx].clone();
    // Virtual servers on other VIPs: services with their own `vip`, when
    // the instance holding the first VIP holds theirs too (lvsup's one VRRP
    // instance carries every VIP of a cluster).
    services.retain(|vs| {
        // fwmark services have no address: they take the cluster's VIP
        if vs.fwmark.is_some() || vs.vip == vip_addr || main.vips.iter().any(|v| v.addr == vs.vip)
        {
            return true;
        }
        match instances.iter().find(|i| i.vips.iter().any(|v| v.addr == vs.vip)) {
            Some(other) => out.unsupported.push(Finding {
                loc: vs.loc.clone(),
                message: format!(
                    "virtual_server on {}: its VIP is in vrrp_instance {}, but lvsup holds every VIP of a cluster in one VRRP instance ({}, which holds {vip_addr})",
                    vs.vip, other.name, main.name
                ),
            }),
            None => out.errors.push(format!(
                "{file}: the VIP {} of virtual_server ({}) is in no vrrp_instance's virtual_ipaddress: lvsup needs the VRRP instance that holds it",
                vs.vip, vs.loc
            )),
        }
        false
    });
    let service_vips: BTreeSet<Ipv4Addr> = services
        .iter()
        .map(|s| if s.fwmark.is_some() { vip_addr } else { s.vip })
        .collect();
    // keepalived speaks VRRPv2 unless told otherwise, and VRRPv2 adverts are whole seconds.
    let version = main.version.clone().or(vrrp_version);
    let ms = main.advert.0.as_millis() as u64;
    if version.as_deref() != Some("3") && ms % 1000 != 0 {
        let secs = ((ms + 500) / 1000).max(1);
        out.warn(
            &main.advert.1,
            format!("advert_int {}: keepalived rounds it to {secs}s for VRRPv2 (no vrrp_version 3), and so does the import", format_duration(main.advert.0)),
        );
        main.advert.0 = Duration::from_secs(secs);
    }
    let vip = main.vips.iter().find(|v| v.addr == vip_addr).cloned()?;
    for v in main.vips.iter().filter(|v| service_vips.contains(&v.addr)) {
        if v.dev
            .as_ref()
            .is_some_and(|d| Some(d) != main.interface.as_ref().map(|i| &i.0))
        {
            out.unsupported.push(Finding {
                loc: v.loc.clone(),
                message: "the VIP on another interface than its vrrp_instance's: lvsup puts it on the VRRP interface".into(),
            });
        }
    }
    let mut gateway = None;
    for v in main.vips.iter().filter(|v| !service_vips.contains(&v.addr)) {
        if mode.0 == Mode::Nat && gateway.is_none() {
            gateway = Some(Gateway {
                addr: v.addr,
                prefix: v.prefix,
                interface: v.dev.clone(),
                src_ip: None,
                loc: v.loc.clone(),
            });
        } else {
            out.unsupported.push(Finding {
                loc: v.loc.clone(),
                message: format!(
                    "{}: no virtual_server uses it: lvsup holds the services' VIPs (and in NAT mode one gateway)",
                    v.addr
                ),
            });
        }
    }
    let group_of = |name: &str| groups.iter().find(|(_, m)| m.iter().any(|x| x == name));
    let main_group = group_of(&main.name).map(|(g, _)| g.loc.clone());
    // notify_* of a vrrp_sync_group: its instances change state together, so
    // the group's hooks are the cluster's (keepalived runs both a group's
    // and an instance's; lvsup has one program per state).
    for (g, _) in &groups {
        for c in g.children() {
            if !matches!(
                c.keyword.as_str(),
                "notify_master" | "notify_backup" | "notify_fault" | "notify_stop"
            ) {
                continue;
            }
            if Some(&g.loc) != main_group.as_ref() {
                out.other(c);
                continue;
            }
            let mut from_group = NotifyIn::default();
            if from_group.read(c, out) {
                for (mine, theirs) in [
                    (&mut main.notify.master, from_group.master),
                    (&mut main.notify.backup, from_group.backup),
                    (&mut main.notify.fault, from_group.fault),
                    (&mut main.notify.stop, from_group.stop),
                ] {
                    let Some(theirs) = theirs else { continue };
                    match mine {
                        Some(m) => out.unsupported.push(Finding {
                            loc: theirs.1.clone(),
                            message: format!(
                                "{}: vrrp_instance {} has its own ({}): lvsup runs one program per state",
                                c.text(),
                                main.name,
                                m.1
                            ),
                        }),
                        None => *mine = Some(theirs),
                    }
                }
            }
        }
    }
    if main.preempt_delay.is_some() && !main.preempt.0 {
        if let Some((_, loc)) = main.preempt_delay.take() {
            out.warn(
                &loc,
                "preempt_delay dropped: it has no effect with nopreempt (in keepalived too)".into(),
            );
        }
    }
    for (k, other) in instances.iter().enumerate() {
        if k == main_idx {
            continue;
        }
        let same_group = main_group.is_some()
            && group_of(&other.name).map(|(g, _)| &g.loc) == main_group.as_ref();
        match other.vips.as_slice() {
            [g] if same_group && mode.0 == Mode::Nat && gateway.is_none() => {
                out.warn(
                    &other.loc,
                    format!(
                        "vrrp_instance {}: its address {} becomes nat.gateway, held with the VIP by lvsup's one VRRP instance (its own virtual_router_id and priority are not used)",
                        other.name, g.addr
                    ),
                );
                gateway = Some(Gateway {
                    addr: g.addr,
                    prefix: g.prefix,
                    interface: g
                        .dev
                        .clone()
                        .or_else(|| other.interface.as_ref().map(|i| i.0.clone())),
                    src_ip: other.src_ip.as_ref().map(|s| s.0),
                    loc: g.loc.clone(),
                });
            }
            _ => out.unsupported.push(Finding {
                loc: other.loc.clone(),
                message: format!(
                    "vrrp_instance {}: lvsup runs one VRRP instance per cluster ({} holds the VIP)",
                    other.name, main.name
                ),
            }),
        }
    }
    if mode.0 == Mode::Nat && gateway.is_none() {
        out.errors.push(format!(
            "{file}: NAT (lb_kind NAT at {}) needs the real servers' gateway as a floating address: a second address in {}'s virtual_ipaddress, or a vrrp_instance in its vrrp_sync_group",
            mode.1, main.name
        ));
    }
    let vrrp_iface = main.interface.as_ref().map(|i| i.0.clone());
    let sync = main.sync_daemon.clone().or(sync_daemon_global);
    let sync_daemon = match sync {
        Some((iface, _)) if Some(&iface) == vrrp_iface.as_ref() => true,
        Some((iface, loc)) => {
            out.unsupported.push(Finding {
                loc,
                message: format!(
                    "the IPVS sync daemon on {iface}: lvsup runs it on the VRRP interface"
                ),
            });
            false
        }
        None => false,
    };
    if main.vrid.is_none() {
        out.error(
            &main.loc,
            format!("vrrp_instance {} has no virtual_router_id", main.name),
        );
    }
    Some(FileView {
        file: file.clone(),
        router_id,
        vip,
        mode,
        gateway,
        sync_daemon,
        services,
        address: input.address,
        internal: input.internal,
        main,
    })
}

// ---------------------------------------------------------------- the cluster

/// Import one keepalived.conf per director (already parsed) into one cluster.toml.
pub fn convert(inputs: &[DirectorInput], lossy: bool) -> Result<Imported, ImportError> {
    let mut out = Out::default();
    let views: Vec<FileView> = inputs
        .iter()
        .filter_map(|i| read_file(i, &mut out))
        .collect();
    if inputs.is_empty() {
        out.errors.push("no keepalived.conf given".into());
    }
    let text = if views.len() == inputs.len() && !inputs.is_empty() {
        assemble(&views, &mut out)
    } else {
        None
    };
    out.unsupported.sort();
    out.unsupported.dedup();
    if !out.errors.is_empty() || (!lossy && !out.unsupported.is_empty()) {
        return Err(ImportError {
            errors: out.errors,
            unsupported: out.unsupported,
        });
    }
    let Some(body) = text else {
        return Err(ImportError {
            errors: vec!["internal error: no cluster assembled".into()],
            unsupported: Vec::new(),
        });
    };
    let mut warnings: Vec<String> = out
        .unsupported
        .iter()
        .map(|u| format!("{}: dropped (--lossy): {}", u.loc, u.message))
        .collect();
    warnings.extend(out.warnings.iter().map(|w| w.to_string()));
    let files: Vec<&str> = inputs.iter().map(|i| i.file.as_str()).collect();
    let mut toml = format!(
        "# Imported by `lvsup import keepalived` from {}.\n",
        files.join(", ")
    );
    if !out.unsupported.is_empty() {
        toml.push_str("# Dropped by --lossy (lvsup cannot express them):\n");
        for u in &out.unsupported {
            toml.push_str(&format!("#   {u}\n"));
        }
    }
    toml.push('\n');
    toml.push_str(&body);
    if let Err(e) = crate::config::parse_str("imported cluster.toml", &toml) {
        return Err(ImportError {
            errors: vec![format!(
                "internal error: the cluster.toml lvsup import produced does not pass lvsup's validation (a bug of the importer, or an input it does not check yet):\n{}\n--- produced text ---\n{toml}",
                e.render(false)
            )],
            unsupported: Vec::new(),
        });
    }
    Ok(Imported { toml, warnings })
}

fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn with_prefix(a: Ipv4Addr, prefix: Option<u8>) -> String {
    match prefix {
        Some(p) if p != crate::config::validate::DEFAULT_PREFIX && p < 32 && p > 0 => {
            format!("{a}/{p}")
        }
        _ => a.to_string(),
    }
}

/// `vi-1` from `VI_1`: the cluster name rule `[a-z][a-z0-9-]{0,31}`.
fn cluster_name(instance: &str) -> String {
    let mut s: String = instance
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        s.insert_str(0, "ka-");
    }
    s.truncate(32);
    let t = s.trim_end_matches('-').to_string();
    if t.is_empty() { "keepalived".into() } else { t }
}

/// The value of one cluster-wide setting in one file, for the comparison of files.
fn shared(v: &FileView) -> Vec<(String, String, Loc)> {
    let m = &v.main;
    let mut out = vec![
        ("VIP".to_string(), v.vip.addr.to_string(), v.vip.loc.clone()),
        ("lb_kind".into(), v.mode.0.to_string(), v.mode.1.clone()),
        (
            "interface".into(),
            m.interface
                .as_ref()
                .map_or("(none)".into(), |i| i.0.clone()),
            m.interface.as_ref().map_or(m.loc.clone(), |i| i.1.clone()),
        ),
        (
            "virtual_router_id".into(),
            m.vrid.as_ref().map_or("(none)".into(), |i| i.0.to_string()),
            m.vrid.as_ref().map_or(m.loc.clone(), |i| i.1.clone()),
        ),
        (
            "advert_int".into(),
            format_duration(m.advert.0),
            m.advert.1.clone(),
        ),
        (
            "preempt".into(),
            if m.preempt.0 { "preempt" } else { "nopreempt" }.into(),
            m.preempt.1.clone(),
        ),
        (
            "unicast".into(),
            if m.peers.is_some() {
                "unicast_peer"
            } else {
                "multicast"
            }
            .into(),
            m.peers.as_ref().map_or(m.loc.clone(), |p| p.1.clone()),
        ),
        (
            "IPVS sync daemon".into(),
            if v.sync_daemon { "on" } else { "off" }.into(),
            m.loc.clone(),
        ),
        (
            "preempt_delay".into(),
            m.preempt_delay
                .as_ref()
                .map_or("0s".into(), |d| format_duration(d.0)),
            m.preempt_delay
                .as_ref()
                .map_or(m.loc.clone(), |d| d.1.clone()),
        ),
    ];
    for (k, v) in [
        ("notify_master", &m.notify.master),
        ("notify_backup", &m.notify.backup),
        ("notify_fault", &m.notify.fault),
        ("notify_stop", &m.notify.stop),
    ] {
        out.push((
            k.to_string(),
            v.as_ref().map_or("(none)".into(), |a| a.0.join(" ")),
            v.as_ref().map_or(m.loc.clone(), |a| a.1.clone()),
        ));
    }
    if let Some(g) = &v.gateway {
        out.push(("NAT gateway".into(), g.addr.to_string(), g.loc.clone()));
    }
    for s in &v.services {
        let mut desc = format!(
            "lb_algo {}, persistence {}",
            s.scheduler,
            s.persistence.map_or("off".into(), |p| format!("{p}s"))
        );
        if let Some(n) = s.netmask {
            desc.push_str(&format!(" per /{n}"));
        }
        if let Some((_, ports)) = &s.fwmark {
            desc.push_str(&format!(", ports {ports:?}"));
        }
        if let Some(x) = &s.sorry {
            desc.push_str(&format!(", sorry_server {x}"));
        }
        for r in &s.rs {
            desc.push_str(&format!(
                "; real_server {}:{} weight {} check {:?}",
                r.addr, r.port, r.weight, r.health
            ));
        }
        out.push((
            match &s.fwmark {
                Some((m, _)) => format!("virtual_server fwmark {m} {}", s.protocol),
                None => format!("virtual_server {} {}:{}", s.protocol, s.vip, s.port),
            },
            desc,
            s.loc.clone(),
        ));
    }
    out
}

fn compare_files(views: &[FileView], out: &mut Out) {
    let Some(first) = views.first() else { return };
    let a = shared(first);
    for other in &views[1..] {
        let b = shared(other);
        let am: BTreeMap<&str, (&str, &Loc)> = a
            .iter()
            .map(|(k, v, l)| (k.as_str(), (v.as_str(), l)))
            .collect();
        let bm: BTreeMap<&str, (&str, &Loc)> = b
            .iter()
            .map(|(k, v, l)| (k.as_str(), (v.as_str(), l)))
            .collect();
        for (k, (av, al)) in &am {
            match bm.get(k) {
                None => out.errors.push(format!(
                    "{} and {} differ: {k} ({al}) is not in {}",
                    first.file, other.file, other.file
                )),
                Some((bv, bl)) if bv != av => out.errors.push(format!(
                    "{} and {} differ: {k} is {av} at {al} but {bv} at {bl}",
                    first.file, other.file
                )),
                _ => {}
            }
        }
        for (k, (_, bl)) in &bm {
            if !am.contains_key(k) {
                out.errors.push(format!(
                    "{} and {} differ: {k} ({bl}) is not in {}",
                    first.file, other.file, first.file
                ));
            }
        }
    }
}

struct DirectorOut {
    name: String,
    address: Ipv4Addr,
    internal: Option<Ipv4Addr>,
    priority: u8,
}

fn assemble(views: &[FileView], out: &mut Out) -> Option<String> {
    compare_files(views, out);
    let v0 = &views[0];
    let mode = v0.mode.0;
    // ---- directors
    let mut directors = Vec::new();
    for v in views {
        let src = v.main.src_ip.as_ref().map(|s| s.0);
        let address = match (src, v.address) {
            (Some(s), Some(c)) if s != c => {
                out.errors.push(format!(
                    "{}: the director address {c} given on the command line is not the vrrp_instance's source address {s}",
                    v.file
                ));
                None
            }
            (Some(s), _) => Some(s),
            (None, Some(c)) => Some(c),
            (None, None) => {
                out.errors.push(format!(
                    "{}: no director address: vrrp_instance {} has no unicast_src_ip or mcast_src_ip; give it as {}@ADDRESS",
                    v.file, v.main.name, v.file
                ));
                None
            }
        };
        let internal = if mode == Mode::Nat {
            let from_conf = v.gateway.as_ref().and_then(|g| g.src_ip);
            match (from_conf, v.internal) {
                (Some(s), Some(c)) if s != c => {
                    out.errors.push(format!(
                        "{}: the internal address {c} given on the command line is not the gateway instance's source address {s}",
                        v.file
                    ));
                    None
                }
                (Some(s), _) | (None, Some(s)) => Some(s),
                (None, None) => {
                    out.errors.push(format!(
                        "{}: no internal address (NAT: the director's own address on the real servers' subnet); give it as {}@ADDRESS,INTERNAL",
                        v.file, v.file
                    ));
                    None
                }
            }
        } else {
            if v.internal.is_some() {
                out.errors.push(format!(
                    "{}: an internal address is only for NAT (this is {mode})",
                    v.file
                ));
            }
            None
        };
        let address = address?;
        directors.push(DirectorOut {
            name: String::new(),
            address,
            internal,
            priority: v.main.priority.0,
        });
    }
    if directors.len() != views.len() {
        return None;
    }
    // names: router_id, unless missing, invalid or shared with another file
    let ids: Vec<Option<String>> = views
        .iter()
        .map(|v| {
            v.router_id
                .as_ref()
                .map(|r| r.to_ascii_lowercase().replace('_', "-"))
                .filter(|r| valid_host_name(r))
        })
        .collect();
    for (k, d) in directors.iter_mut().enumerate() {
        let unique = ids[k].is_some() && ids.iter().filter(|i| **i == ids[k]).count() == 1;
        d.name = match (&ids[k], unique) {
            (Some(id), true) => id.clone(),
            _ => format!("director-{}", dashed(d.address)),
        };
    }
    // priorities distinct, unicast peers are the other directors
    for (k, v) in views.iter().enumerate() {
        for (j, w) in views.iter().enumerate().skip(k + 1) {
            if directors[k].priority == directors[j].priority {
                out.errors.push(format!(
                    "{} and {} have the same priority {} ({} and {}): lvsup needs distinct priorities (keepalived breaks the tie by the higher address)",
                    v.file, w.file, directors[k].priority, v.main.priority.1, w.main.priority.1
                ));
            }
            if directors[k].address == directors[j].address {
                out.errors.push(format!(
                    "{} and {} have the same director address {}",
                    v.file, w.file, directors[k].address
                ));
            }
        }
        if let Some((peers, loc)) = &v.main.peers {
            let want: BTreeSet<Ipv4Addr> = directors
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != k)
                .map(|(_, d)| d.address)
                .collect();
            let got: BTreeSet<Ipv4Addr> = peers.iter().copied().collect();
            if want != got {
                let show = |s: &BTreeSet<Ipv4Addr>| {
                    s.iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                out.errors.push(format!(
                    "{loc}: unicast_peer lists [{}] but the other directors imported are [{}]: import every director's file",
                    show(&got),
                    show(&want)
                ));
            }
        }
    }
    // ---- services: names (lvsup's defaults) and VIPs
    let services = &v0.services;
    let cluster_vip = v0.vip.addr;
    let own_vip = |s: &Vs| (s.fwmark.is_none() && s.vip != cluster_vip).then_some(s.vip);
    let svc_names: Vec<String> = services
        .iter()
        .map(|s| {
            crate::config::Service::default_name(
                own_vip(s),
                s.port,
                s.protocol,
                s.fwmark.as_ref().map(|(m, _)| *m),
            )
        })
        .collect();
    // ---- real servers: the union in file order; a real server of only some
    // virtual servers gets `services`, another weight in one gets `weights`
    let mut rs_order: Vec<Ipv4Addr> = Vec::new();
    let mut rs_map: BTreeMap<Ipv4Addr, Rs> = BTreeMap::new();
    // per real server: (service index, weight) where it appears
    let mut rs_in: BTreeMap<Ipv4Addr, Vec<(usize, u32)>> = BTreeMap::new();
    for (k, s) in services.iter().enumerate() {
        for r in &s.rs {
            let seen = rs_in.entry(r.addr).or_default();
            if seen.iter().any(|(j, _)| *j == k) {
                // the same address twice in one virtual server (two ports):
                // one destination per address and service in lvsup
                out.unsupported.push(Finding {
                    loc: r.loc.clone(),
                    message: format!(
                        "real_server {} appears twice in this virtual_server: lvsup has one destination per real server and service",
                        r.addr
                    ),
                });
                continue;
            }
            seen.push((k, r.weight));
            if let std::collections::btree_map::Entry::Vacant(e) = rs_map.entry(r.addr) {
                rs_order.push(r.addr);
                e.insert(r.clone());
            }
        }
    }
    if rs_order.is_empty() {
        out.errors.push(format!("{}: no real_server", v0.file));
        return None;
    }
    // per-real-server port (NAT remapping), among the services it serves
    let mut rs_port: BTreeMap<Ipv4Addr, Option<u16>> = BTreeMap::new();
    for s in services {
        for r in &s.rs {
            let remap = (r.port != s.port).then_some(r.port);
            if let std::collections::btree_map::Entry::Vacant(e) = rs_port.entry(r.addr) {
                let mut ports: Vec<u16> = rs_in[&r.addr]
                    .iter()
                    .map(|(j, _)| services[*j].port)
                    .collect();
                ports.sort_unstable();
                ports.dedup();
                if remap.is_some() && ports.len() > 1 {
                    out.unsupported.push(Finding {
                        loc: r.loc.clone(),
                        message: format!(
                            "real_server {} on port {} for virtual server port {}: lvsup remaps ports only for a real server of one service port",
                            r.addr, r.port, s.port
                        ),
                    });
                    e.insert(None);
                } else {
                    e.insert(remap);
                }
            }
        }
    }
    // ---- health: one per service
    let mut health: Vec<HealthOut> = Vec::new();
    for s in services {
        let mut rs = s.rs.iter();
        let Some(first) = rs.next() else {
            health.push(HealthOut {
                check: CheckKind::None,
                interval: Duration::from_secs(2),
                timeout: Duration::from_secs(1),
                fall: 1,
                port: None,
            });
            out.errors.push(format!(
                "{}: virtual_server {} {}:{} has no real_server",
                s.loc, s.protocol, s.vip, s.port
            ));
            continue;
        };
        for r in rs {
            if r.health != first.health {
                out.unsupported.push(Finding {
                    loc: r.health_loc.clone(),
                    message: format!(
                        "the health check of real_server {} differs from real_server {}'s ({}): lvsup has one health check per service",
                        r.addr, first.addr, first.health_loc
                    ),
                });
            }
        }
        health.push(first.health.clone());
    }
    // ---- names of real servers
    let mut used: BTreeSet<String> = directors.iter().map(|d| d.name.clone()).collect();
    let mut rs_names = BTreeMap::new();
    for a in &rs_order {
        let r = &rs_map[a];
        let derived = format!("rs-{}", dashed(*a));
        let name = match &r.name {
            Some(n) if !used.contains(n) => n.clone(),
            Some(n) => {
                out.warn(
                    &r.loc,
                    format!("name {n} from the comment is already used: {derived}"),
                );
                derived
            }
            None => derived,
        };
        used.insert(name.clone());
        rs_names.insert(*a, name);
    }

    // ---- render
    let m = &v0.main;
    let vip_prefix = v0.vip.prefix;
    let mut t = String::new();
    t.push_str("[cluster]\n");
    t.push_str(&format!("name = {}\n", q(&cluster_name(&m.name))));
    t.push_str(&format!("vip = {}\n", q(&v0.vip.addr.to_string())));
    t.push_str(&format!("mode = {}\n", q(mode.as_str())));
    if let Some((i, _)) = &m.interface {
        t.push_str(&format!("interface = {}\n", q(i)));
    }
    if let Some((vrid, _)) = m.vrid {
        t.push_str(&format!("vrid = {vrid}\n"));
    }
    t.push_str(&format!(
        "advert_interval = {}\n",
        q(&format_duration(m.advert.0))
    ));
    if !m.preempt.0 {
        t.push_str("preempt = false\n");
    }
    if let Some((d, _)) = &m.preempt_delay {
        t.push_str(&format!("preempt_delay = {}\n", q(&format_duration(*d))));
    }
    if let Some(n) = m.notify.toml() {
        t.push_str(&n);
        t.push('\n');
    }
    if m.peers.is_some() {
        t.push_str("vrrp_unicast = true\n");
    }
    if v0.sync_daemon {
        t.push_str("sync_daemon = true\n");
    }
    for (s, h) in services.iter().zip(&health) {
        t.push_str("\n[[services]]\n");
        match &s.fwmark {
            Some((m, ports)) => {
                let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
                t.push_str(&format!("fwmark = {m}\nports = [{}]\n", ports.join(", ")));
            }
            None => {
                if let Some(v) = own_vip(s) {
                    t.push_str(&format!("vip = {}\n", q(&v.to_string())));
                }
                t.push_str(&format!("port = {}\n", s.port));
            }
        }
        t.push_str(&format!("protocol = {}\n", q(s.protocol.as_str())));
        t.push_str(&format!("scheduler = {}\n", q(&s.scheduler)));
        if let Some(p) = s.persistence {
            t.push_str(&format!("persistence = {}\n", q(&format!("{p}s"))));
        }
        if let Some(n) = s.netmask {
            let mask = Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(n)).unwrap_or(0));
            t.push_str(&format!("persistence_netmask = {}\n", q(&mask.to_string())));
        }
        if let Some(x) = &s.sorry {
            t.push_str(&format!("sorry_server = {}\n", q(x)));
        }
        t.push_str("\n[services.health]\n");
        match &h.check {
            CheckKind::None => t.push_str("check = \"none\"\n"),
            CheckKind::Tcp | CheckKind::Http { .. } | CheckKind::Script { .. } => {
                let name = match &h.check {
                    CheckKind::Http { tls: true, .. } => "https",
                    CheckKind::Http { .. } => "http",
                    CheckKind::Script { .. } => "script",
                    _ => "tcp",
                };
                t.push_str(&format!("check = {}\n", q(name)));
                t.push_str(&format!("interval = {}\n", q(&format_duration(h.interval))));
                t.push_str(&format!("timeout = {}\n", q(&format_duration(h.timeout))));
                t.push_str(&format!("fall = {}\n", h.fall));
                t.push_str("rise = 1\n");
                if let Some(p) = h.port {
                    t.push_str(&format!("port = {p}\n"));
                }
                if let CheckKind::Http {
                    path,
                    status,
                    digest,
                    body,
                    tls,
                    sni,
                } = &h.check
                {
                    t.push_str(&format!("path = {}\n", q(path)));
                    t.push_str(&format!("expect_status = {status}\n"));
                    if let Some(b) = body {
                        t.push_str(&format!("expect_body = {}\n", q(b)));
                    }
                    if let Some(d) = digest {
                        t.push_str(&format!("expect_digest = {}\n", q(d)));
                    }
                    if *tls {
                        // keepalived's SSL_GET never verifies the certificate.
                        t.push_str("tls_verify = false\n");
                    }
                    if let Some(n) = sni {
                        t.push_str(&format!("sni = {}\n", q(n)));
                    }
                }
                if let CheckKind::Script { argv } = &h.check {
                    let words: Vec<String> = argv.iter().map(|a| q(a)).collect();
                    t.push_str(&format!("script = [{}]\n", words.join(", ")));
                }
            }
        }
    }
    for d in &directors {
        t.push_str("\n[[directors]]\n");
        t.push_str(&format!("name = {}\n", q(&d.name)));
        t.push_str(&format!(
            "address = {}\n",
            q(&with_prefix(d.address, vip_prefix))
        ));
        t.push_str(&format!("priority = {}\n", d.priority));
        if let Some(i) = d.internal {
            let p = v0.gateway.as_ref().and_then(|g| g.prefix);
            t.push_str(&format!("internal_address = {}\n", q(&with_prefix(i, p))));
        }
    }
    let rs_prefix = if mode == Mode::Nat {
        v0.gateway.as_ref().and_then(|g| g.prefix)
    } else {
        vip_prefix
    };
    for a in &rs_order {
        let r = &rs_map[a];
        t.push_str("\n[[real_servers]]\n");
        t.push_str(&format!("name = {}\n", q(&rs_names[a])));
        t.push_str(&format!("address = {}\n", q(&with_prefix(*a, rs_prefix))));
        t.push_str(&format!("weight = {}\n", r.weight));
        if let Some(Some(p)) = rs_port.get(a) {
            t.push_str(&format!("port = {p}\n"));
        }
        let inn = &rs_in[a];
        if inn.len() < services.len() {
            let names: Vec<String> = inn.iter().map(|(k, _)| q(&svc_names[*k])).collect();
            t.push_str(&format!("services = [{}]\n", names.join(", ")));
        }
        let other: Vec<String> = inn
            .iter()
            .filter(|(_, w)| *w != r.weight)
            .map(|(k, w)| format!("{} = {w}", q(&svc_names[*k])))
            .collect();
        if !other.is_empty() {
            t.push_str(&format!("weights = {{ {} }}\n", other.join(", ")));
        }
    }
    if let Some(g) = &v0.gateway {
        t.push_str("\n[nat]\n");
        t.push_str(&format!(
            "gateway = {}\n",
            q(&with_prefix(g.addr, g.prefix))
        ));
        if let Some(i) = &g.interface {
            t.push_str(&format!("internal_interface = {}\n", q(i)));
        }
    }
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::keepalived::parse::{parse, tests::MapIncludes};

    fn input(file: &str, text: &str, address: Option<&str>) -> DirectorInput {
        let p = parse(file, text, &mut MapIncludes(BTreeMap::new())).expect("parses");
        DirectorInput {
            file: file.into(),
            stmts: p.stmts,
            notes: p.notes,
            address: address.map(|a| a.parse().expect("address")),
            internal: None,
        }
    }

    const VS: &str = "virtual_server 10.0.0.100 80 {\n lb_algo rr\n lb_kind DR\n protocol TCP\n real_server 10.0.0.21 80 {\n }\n}\n";

    fn instance_with(extra: &str) -> String {
        format!(
            "vrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 9\n priority 150\n{extra}\n virtual_ipaddress {{\n  10.0.0.100\n }}\n}}\n"
        )
    }

    #[test]
    fn names_come_from_a_one_word_comment_only() {
        assert_eq!(name_in_comment("web1"), Some("web1".into()));
        assert_eq!(name_in_comment("name: web-2"), Some("web-2".into()));
        assert_eq!(name_in_comment("name=db"), Some("db".into()));
        assert_eq!(name_in_comment("第一台真實Server 相關組態設定"), None);
        assert_eq!(name_in_comment("the first server"), None);
    }

    #[test]
    fn cluster_names_follow_the_cluster_name_rule() {
        assert_eq!(cluster_name("VI_1"), "vi-1");
        assert_eq!(cluster_name("vip_apache"), "vip-apache");
        assert_eq!(cluster_name("1st"), "ka-1st");
        assert_eq!(cluster_name(&"x".repeat(40)).len(), 32);
    }

    #[test]
    fn ports_come_from_the_fwmark_line_comment() {
        assert_eq!(ports_in_comment("ports 80,443"), Some(vec![80, 443]));
        assert_eq!(ports_in_comment("ports: 443 80"), Some(vec![80, 443]));
        assert_eq!(
            ports_in_comment("ports = [80, 443, 80]"),
            Some(vec![80, 443])
        );
        assert_eq!(ports_in_comment("web ports"), None);
        assert_eq!(ports_in_comment("ports 80,http"), None);
        assert_eq!(ports_in_comment("ports 0"), None);
        assert_eq!(ports_in_comment("ports"), None);
    }

    /// Valid cluster.toml, or the test fails with the text.
    fn valid(toml: &str) -> crate::config::ClusterSpec {
        crate::config::parse_str("imported", toml).unwrap_or_else(|e| panic!("{e}\n{toml}"))
    }

    #[test]
    fn a_fwmark_virtual_server_with_its_ports_in_a_comment() {
        let text = instance_with(" unicast_src_ip 10.0.0.11")
            + "virtual_server fwmark 7 { # ports 80,443\n lb_algo wlc\n lb_kind DR\n protocol TCP\n persistence_timeout 600\n \
               persistence_granularity 255.255.0.0\n sorry_server 10.0.0.50 80\n \
               real_server 10.0.0.21 80 {\n  TCP_CHECK {\n   connect_timeout 1\n  }\n }\n \
               real_server 10.0.0.22 80 {\n  TCP_CHECK {\n   connect_timeout 1\n  }\n }\n}\n";
        let got = convert(&[input("a.conf", &text, None)], false).expect("imports");
        assert!(
            got.toml.contains(
                "[[services]]\nfwmark = 7\nports = [80, 443]\nprotocol = \"tcp\"\nscheduler = \"wlc\"\n\
                 persistence = \"600s\"\npersistence_netmask = \"255.255.0.0\"\nsorry_server = \"10.0.0.50\"\n"
            ),
            "{}",
            got.toml
        );
        // the check connects to the real servers' port; no real server `port`
        assert!(got.toml.contains("\nport = 80\n"), "{}", got.toml);
        let spec = valid(&got.toml);
        let s = &spec.services[0];
        assert_eq!(s.fwmark.as_ref().map(|f| f.mark), Some(7));
        assert_eq!((s.persistence_netmask, s.health.port), (Some(16), Some(80)));
        assert!(spec.real_servers.iter().all(|r| r.port.is_none()));
        assert_eq!(spec.vip, Ipv4Addr::new(10, 0, 0, 100), "the instance's VIP");
        assert!(
            got.warnings
                .iter()
                .any(|w| w.contains("the fwmark services' packets are marked for 10.0.0.100")),
            "{:#?}",
            got.warnings
        );
    }

    #[test]
    fn a_fwmark_virtual_server_without_its_ports_names_the_line_and_the_key() {
        let text = instance_with(" unicast_src_ip 10.0.0.11")
            + VS
            + "virtual_server fwmark 7 {\n lb_kind DR\n protocol TCP\n real_server 10.0.0.21 80 {\n }\n}\n";
        let err = convert(&[input("a.conf", &text, None)], false).expect_err("ports unknown");
        assert_eq!(err.unsupported.len(), 1, "{err}");
        assert_eq!(err.unsupported[0].loc.to_string(), "a.conf:17");
        assert!(
            err.unsupported[0].message.contains("# ports 80,443"),
            "{err}"
        );
        assert!(
            err.unsupported[0]
                .message
                .contains("fwmark = 7, ports = [...]"),
            "{err}"
        );
        // --lossy: the file without that service
        let got = convert(&[input("a.conf", &text, None)], true).expect("lossy");
        assert!(!got.toml.contains("fwmark = 7\n"), "{}", got.toml);
        valid(&got.toml);
    }

    #[test]
    fn sorry_server_ports_follow_the_mode() {
        // DR: the port the client asked for, a different one is a warning
        let text = instance_with(" unicast_src_ip 10.0.0.11")
            + "virtual_server 10.0.0.100 80 {\n lb_kind DR\n protocol TCP\n sorry_server 10.0.0.50 8080\n real_server 10.0.0.21 80 {\n }\n}\n";
        let got = convert(&[input("a.conf", &text, None)], false).expect("imports");
        assert!(
            got.toml.contains("sorry_server = \"10.0.0.50\"\n"),
            "{}",
            got.toml
        );
        assert!(
            got.warnings
                .iter()
                .any(|w| w.contains("sorry_server port 8080 differs from the virtual server's 80")),
            "{:#?}",
            got.warnings
        );
        valid(&got.toml);
        // NAT: kept
        let text = "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 9\n virtual_ipaddress {\n  10.0.0.100\n  192.168.10.254/24 dev eth1\n }\n}\n\
                    virtual_server 10.0.0.100 80 {\n lb_kind NAT\n protocol TCP\n sorry_server 192.168.10.50 8080\n real_server 192.168.10.21 80 {\n }\n}\n";
        let got = convert(
            &[DirectorInput {
                internal: Some(Ipv4Addr::new(192, 168, 10, 11)),
                ..input("a.conf", text, Some("10.0.0.11"))
            }],
            false,
        )
        .expect("imports");
        assert!(
            got.toml.contains("sorry_server = \"192.168.10.50:8080\"\n"),
            "{}",
            got.toml
        );
        valid(&got.toml);
        // sorry_server_lvs_method: the service's own method is fine, another one is not
        let same = instance_with(" unicast_src_ip 10.0.0.11")
            + "virtual_server 10.0.0.100 80 {\n lb_kind DR\n protocol TCP\n sorry_server 10.0.0.50 80\n sorry_server_lvs_method DR\n real_server 10.0.0.21 80 {\n }\n}\n";
        convert(&[input("a.conf", &same, None)], false).expect("same method");
        let other = same.replace("sorry_server_lvs_method DR", "sorry_server_lvs_method TUN");
        let err = convert(&[input("a.conf", &other, None)], false).expect_err("other method");
        assert!(
            err.unsupported[0]
                .message
                .contains("forwards to the sorry server"),
            "{err}"
        );
        // sorry_server_inhibit stays unsupported, with its reason
        let text = instance_with(" unicast_src_ip 10.0.0.11")
            + "virtual_server 10.0.0.100 80 {\n lb_kind DR\n protocol TCP\n sorry_server 10.0.0.50 80\n sorry_server_inhibit\n real_server 10.0.0.21 80 {\n }\n}\n";
        let err = convert(&[input("a.conf", &text, None)], false).expect_err("inhibit");
        assert!(
            err.unsupported[0].message.contains("no weight-0 inhibit"),
            "{err}"
        );
    }

    #[test]
    fn persistence_granularity_becomes_persistence_netmask() {
        let text = instance_with(" unicast_src_ip 10.0.0.11")
            + "virtual_server 10.0.0.100 80 {\n lb_kind DR\n protocol TCP\n persistence_timeout 300\n persistence_granularity 255.255.255.0\n real_server 10.0.0.21 80 {\n }\n}\n";
        let got = convert(&[input("a.conf", &text, None)], false).expect("imports");
        assert!(
            got.toml
                .contains("persistence = \"300s\"\npersistence_netmask = \"255.255.255.0\"\n"),
            "{}",
            got.toml
        );
        assert_eq!(valid(&got.toml).services[0].persistence_netmask, Some(24));
        // not a netmask: an error naming the line
        let bad = text.replace("255.255.255.0", "255.0.255.0");
        let err = convert(&[input("a.conf", &bad, None)], false).expect_err("bad mask");
        assert!(
            err.errors
                .iter()
                .any(|e| e.starts_with("a.conf:14: persistence_granularity 255.0.255.0")),
            "{err}"
        );
    }

    #[test]
    fn timers_are_inherited_and_mapped() {
        let text = format!(
            "{}virtual_server 10.0.0.100 80 {{\n lb_kind DR\n protocol TCP\n delay_loop 10\n retry 4\n real_server 10.0.0.21 80 {{\n  connect_timeout 2\n  TCP_CHECK {{\n   connect_port 8080\n  }}\n }}\n}}\n",
            instance_with(" unicast_src_ip 10.0.0.11")
        );
        let got = convert(&[input("a.conf", &text, None)], false).expect("imports");
        assert!(
            got.toml.contains(
                "interval = \"10s\"\ntimeout = \"2s\"\nfall = 5\nrise = 1\nport = 8080\n"
            ),
            "{}",
            got.toml
        );
    }

    #[test]
    fn a_timeout_not_shorter_than_delay_loop_adds_them_with_a_warning() {
        let text = format!(
            "{}virtual_server 10.0.0.100 80 {{\n lb_kind DR\n protocol TCP\n delay_loop 3\n real_server 10.0.0.21 80 {{\n  TCP_CHECK {{\n   connect_timeout 5\n  }}\n }}\n}}\n",
            instance_with("")
        );
        let got = convert(&[input("a.conf", &text, Some("10.0.0.11"))], false).expect("imports");
        assert!(
            got.toml.contains("interval = \"8s\"\ntimeout = \"5s\""),
            "{}",
            got.toml
        );
        assert!(
            got.warnings.iter().any(|w| w.starts_with(
                "a.conf:15: connect_timeout 5s is not shorter than delay_loop 3s: interval 8s"
            )),
            "{:#?}",
            got.warnings
        );
    }

    #[test]
    fn a_nat_gateway_can_be_a_second_address_of_the_instance() {
        let text = "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 9\n virtual_ipaddress {\n  10.0.0.100\n  192.168.10.254/24 dev eth1\n }\n}\nvirtual_server 10.0.0.100 80 {\n lb_kind NAT\n protocol TCP\n real_server 192.168.10.21 80 {\n }\n}\n";
        let got = convert(
            &[DirectorInput {
                internal: Some(Ipv4Addr::new(192, 168, 10, 11)),
                ..input("a.conf", text, Some("10.0.0.11"))
            }],
            false,
        )
        .expect("imports");
        assert!(
            got.toml
                .ends_with("[nat]\ngateway = \"192.168.10.254\"\ninternal_interface = \"eth1\"\n"),
            "{}",
            got.toml
        );
        assert!(got.toml.contains("internal_address = \"192.168.10.11\""));
    }

    #[test]
    fn unicast_peers_must_be_the_other_directors() {
        let a = instance_with(" unicast_src_ip 10.0.0.11\n unicast_peer {\n  10.0.0.13\n }") + VS;
        let b = instance_with(
            " unicast_src_ip 10.0.0.12\n priority 100\n unicast_peer {\n  10.0.0.11\n }",
        ) + VS;
        let e = convert(
            &[input("a.conf", &a, None), input("b.conf", &b, None)],
            false,
        )
        .unwrap_err();
        assert_eq!(
            e.errors,
            vec!["a.conf:6: unicast_peer lists [10.0.0.13] but the other directors imported are [10.0.0.12]: import every director's file".to_string()]
        );
    }

    /// A real server in only some virtual servers serves only those
    /// services (`services`); its weight in another one is `weights`.
    #[test]
    fn real_servers_of_some_services_and_their_own_weights() {
        let text = instance_with(" unicast_src_ip 10.0.0.11")
            + VS
            + "virtual_server 10.0.0.100 81 {\n lb_kind DR\n protocol TCP\n real_server 10.0.0.21 81 {\n  weight 3\n }\n real_server 10.0.0.22 81 {\n }\n}\n";
        let got = convert(&[input("a.conf", &text, None)], false).expect("imports");
        assert!(
            got.toml.contains(
                "name = \"rs-10-0-0-21\"\naddress = \"10.0.0.21\"\nweight = 1\nweights = { \"81/tcp\" = 3 }\n"
            ),
            "{}",
            got.toml
        );
        assert!(
            got.toml.contains(
                "name = \"rs-10-0-0-22\"\naddress = \"10.0.0.22\"\nweight = 1\nservices = [\"81/tcp\"]\n"
            ),
            "{}",
            got.toml
        );
        let spec = crate::config::parse_str("a.toml", &got.toml).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.real_servers[1].services, Some(vec!["81/tcp".into()]));
        assert_eq!(spec.real_servers[0].weight_for(&spec.services[1]), 3);
    }

    /// Virtual servers on several addresses of the one vrrp_instance: a
    /// service with its own `vip` each; on an address of another instance
    /// (lvsup runs one per cluster) or of none they are refused.
    #[test]
    fn virtual_servers_on_several_vips_of_the_instance() {
        let inst = "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 9\n priority 150\n unicast_src_ip 10.0.0.11\n virtual_ipaddress {\n  10.0.0.100\n  10.0.0.101\n }\n}\n";
        let vs2 = "virtual_server 10.0.0.101 80 {\n lb_algo rr\n lb_kind DR\n protocol TCP\n real_server 10.0.0.22 80 {\n }\n}\n";
        let text = format!("{inst}{VS}{vs2}");
        let got = convert(&[input("a.conf", &text, None)], false).expect("imports");
        assert!(got.toml.contains("vip = \"10.0.0.100\"\n"), "{}", got.toml);
        assert!(
            got.toml
                .contains("[[services]]\nvip = \"10.0.0.101\"\nport = 80\n"),
            "{}",
            got.toml
        );
        assert!(
            got.toml.contains("services = [\"10.0.0.101:80/tcp\"]\n"),
            "{}",
            got.toml
        );
        let spec = crate::config::parse_str("a.toml", &got.toml).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.vips().len(), 2);
        // An address of no virtual server is still refused (not a gateway in DR).
        let three = inst.replace("  10.0.0.101\n", "  10.0.0.101\n  10.0.0.102\n");
        let e = convert(
            &[input("a.conf", &format!("{three}{VS}{vs2}"), None)],
            false,
        )
        .unwrap_err();
        assert_eq!(
            e.unsupported
                .iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>(),
            [
                "a.conf:9: 10.0.0.102: no virtual_server uses it: lvsup holds the services' VIPs (and in NAT mode one gateway)"
            ]
        );
        // A VIP of another vrrp_instance: one VRRP instance per cluster.
        let other = "vrrp_instance VI_2 {\n interface eth0\n virtual_router_id 10\n priority 150\n virtual_ipaddress {\n  10.0.0.101\n }\n}\n";
        let one = inst.replace("  10.0.0.101\n", "");
        let e = convert(
            &[input("a.conf", &format!("{one}{other}{VS}{vs2}"), None)],
            false,
        )
        .unwrap_err();
        let msgs: Vec<String> = e.unsupported.iter().map(|f| f.to_string()).collect();
        assert!(
            msgs.iter().any(|m| m.contains(
                "virtual_server on 10.0.0.101: its VIP is in vrrp_instance VI_2, but lvsup holds every VIP of a cluster in one VRRP instance (VI_1, which holds 10.0.0.100)"
            )),
            "{msgs:#?}"
        );
        // A VIP in no instance: an error naming the virtual server.
        let e = convert(&[input("a.conf", &format!("{one}{VS}{vs2}"), None)], false).unwrap_err();
        assert!(
            e.errors
                .iter()
                .any(|m| m.contains("the VIP 10.0.0.101 of virtual_server (a.conf:")),
            "{:#?}",
            e.errors
        );
    }

    #[test]
    fn keepalived_defaults_protocol_udp_and_scheduler_wlc_with_warnings() {
        let text = instance_with(" unicast_src_ip 10.0.0.11")
            + "virtual_server 10.0.0.100 53 {\n lb_kind DR\n real_server 10.0.0.21 53 {\n  TCP_CHECK {\n  }\n }\n}\n";
        let got = convert(&[input("a.conf", &text, None)], false).expect("imports");
        assert!(
            got.toml.contains("protocol = \"udp\"\nscheduler = \"wlc\""),
            "{}",
            got.toml
        );
        assert!(got.toml.contains("port = 53\n"), "{}", got.toml);
        assert_eq!(got.warnings.len(), 2, "{:#?}", got.warnings);
    }
}

/// SSL_GET, digest, literal regex, MISC_CHECK, notify_*, preempt_delay.
#[cfg(test)]
mod checks_and_hooks_tests {
    use super::*;
    use crate::import::keepalived::parse::{parse, tests::MapIncludes};

    fn input(file: &str, text: &str, address: &str) -> DirectorInput {
        let p = parse(file, text, &mut MapIncludes(BTreeMap::new())).expect("parses");
        DirectorInput {
            file: file.into(),
            stmts: p.stmts,
            notes: p.notes,
            address: Some(address.parse().expect("address")),
            internal: None,
        }
    }

    fn instance(extra: &str) -> String {
        format!(
            "vrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 9\n priority 150\n{extra}\n virtual_ipaddress {{\n  10.0.0.100\n }}\n}}\n"
        )
    }

    /// A virtual_server on port 443 whose two real servers carry `check`
    /// (`{A}` becomes each real server's address).
    fn vs(check: &str) -> String {
        let rs = |a: &str| {
            format!(
                " real_server {a} 443 {{\n{}\n }}\n",
                check.replace("{A}", a)
            )
        };
        format!(
            "virtual_server 10.0.0.100 443 {{\n lb_kind DR\n protocol TCP\n delay_loop 10\n{}{}}}\n",
            rs("10.0.0.21"),
            rs("10.0.0.22")
        )
    }

    fn import(text: &str) -> Imported {
        match convert(&[input("a.conf", text, "10.0.0.11")], false) {
            Ok(i) => i,
            Err(e) => panic!("{e}\n{text}"),
        }
    }

    fn refused(text: &str) -> String {
        match convert(&[input("a.conf", text, "10.0.0.11")], false) {
            Ok(i) => panic!("imported:\n{}", i.toml),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn ssl_get_is_https_without_verification_and_digest_is_expect_digest() {
        let text = instance("")
            + &vs(
                "  SSL_GET {\n   url {\n    path /health\n    digest 9B3A0C85A887A256D6939DA88AABD8CD\n    status_code 200\n   }\n   connect_timeout 3\n  }",
            );
        let got = import(&text);
        assert!(
            got.toml.contains(
                "check = \"https\"\ninterval = \"10s\"\ntimeout = \"3s\"\nfall = 2\nrise = 1\npath = \"/health\"\nexpect_status = 200\nexpect_digest = \"9b3a0c85a887a256d6939da88aabd8cd\"\ntls_verify = false\n"
            ),
            "{}",
            got.toml
        );
        // HTTP_GET with a digest and a regex of plain text.
        let text = instance("")
            + &vs(
                "  HTTP_GET {\n   url {\n    path /\n    digest 9b3a0c85a887a256d6939da88aabd8cd\n    regex \"status: ok\"\n    status_code 200\n   }\n  }",
            );
        let got = import(&text);
        assert!(
            got.toml.contains("check = \"http\"")
                && got.toml.contains("expect_body = \"status: ok\"\nexpect_digest = \"9b3a0c85a887a256d6939da88aabd8cd\"\n")
                && !got.toml.contains("tls_verify"),
            "{}",
            got.toml
        );
        // SSL_GET's virtualhost (with enable_sni) is the sni; HTTP_GET's is refused.
        let text = instance("")
            + &vs(
                "  SSL_GET {\n   url {\n    path /\n   }\n   virtualhost www.example.com\n   enable_sni\n  }",
            );
        let got = import(&text);
        assert!(
            got.toml
                .contains("tls_verify = false\nsni = \"www.example.com\"\n"),
            "{}",
            got.toml
        );
        assert!(
            !got.warnings
                .iter()
                .any(|w| w.contains("without enable_sni"))
        );
        let text = instance("")
            + &vs("  HTTP_GET {\n   url {\n    path /\n   }\n   virtualhost www.example.com\n  }");
        assert!(refused(&text).contains("virtualhost www.example.com"));
        // A real regex and a broken digest are refused.
        let text =
            instance("") + &vs("  HTTP_GET {\n   url {\n    path /\n    regex \"^ok$\"\n   }\n  }");
        assert!(refused(&text).contains("not a regular expression"));
        let text =
            instance("") + &vs("  HTTP_GET {\n   url {\n    path /\n    digest abc\n   }\n  }");
        assert!(refused(&text).contains("digest abc: not an MD5 digest"));
    }

    #[test]
    fn misc_check_is_a_script_with_the_real_servers_address_as_placeholder() {
        let text = instance("")
            + &vs(
                "  MISC_CHECK {\n   misc_path \"/usr/local/bin/check.sh {A} 443 --url=http://{A}:443/x 10.0.0.210\"\n   misc_timeout 4\n   user nobody\n  }",
            );
        let got = import(&text);
        assert!(
            got.toml.contains(
                "check = \"script\"\ninterval = \"10s\"\ntimeout = \"4s\"\nfall = 2\nrise = 1\nscript = [\"/usr/local/bin/check.sh\", \"{address}\", \"{port}\", \"--url=http://{address}:{port}/x\", \"10.0.0.210\"]\n"
            ),
            "{}",
            got.toml
        );
        assert!(
            got.warnings
                .iter()
                .any(|w| w.contains("user nobody dropped")),
            "{:#?}",
            got.warnings
        );
        crate::config::parse_str("t.toml", &got.toml).expect("valid");
        // Unquoted, with quoted words inside; a relative program is refused.
        assert_eq!(
            split_command("/bin/check 'a b' \"c \\\"d\\\"\" e\\ f").expect("splits"),
            ["/bin/check", "a b", "c \"d\"", "e f"]
        );
        assert!(split_command("/bin/x 'open").is_err());
        let text = instance("") + &vs("  MISC_CHECK {\n   misc_path check.sh\n  }");
        assert!(
            refused(&text).contains("absolute path"),
            "{}",
            refused(&text)
        );
        let text =
            instance("") + &vs("  MISC_CHECK {\n   misc_path /bin/check\n   misc_dynamic\n  }");
        assert!(refused(&text).contains("they set no weight"));
    }

    #[test]
    fn misc_timeout_defaults_to_delay_loop() {
        let text = instance("") + &vs("  MISC_CHECK {\n   misc_path /bin/true\n  }");
        let got = import(&text);
        // timeout = delay_loop 10s, so interval = 10s + 10s (see the mapping).
        assert!(
            got.toml.contains("interval = \"20s\"\ntimeout = \"10s\""),
            "{}",
            got.toml
        );
    }

    #[test]
    fn notify_scripts_and_preempt_delay_convert() {
        let text = instance(
            " preempt_delay 120\n notify_master \"/etc/keepalived/notify.sh MASTER\"\n notify_backup /etc/keepalived/backup.sh root root\n notify_fault /etc/keepalived/fault.sh\n notify_stop \"/usr/bin/logger -t ka stopped\"",
        ) + &vs("");
        let got = import(&text);
        assert!(
            got.toml.contains(
                "preempt_delay = \"2m\"\nnotify = { master = [\"/etc/keepalived/notify.sh\", \"MASTER\"], backup = [\"/etc/keepalived/backup.sh\"], fault = [\"/etc/keepalived/fault.sh\"], stop = [\"/usr/bin/logger\", \"-t\", \"ka\", \"stopped\"] }\n"
            ),
            "{}",
            got.toml
        );
        assert!(
            got.warnings
                .iter()
                .any(|w| w.contains("notify_backup: user root root dropped")),
            "{:#?}",
            got.warnings
        );
        let spec = crate::config::parse_str("t.toml", &got.toml).expect("valid");
        assert_eq!(spec.preempt_delay, Duration::from_secs(120));
        assert_eq!(
            spec.notify.fault.as_deref(),
            Some(&["/etc/keepalived/fault.sh".to_string()][..])
        );
        // The generic notify script is refused, naming the per-state ones.
        let text = instance(" notify /etc/keepalived/notify.sh") + &vs("");
        assert!(refused(&text).contains("notify_master, notify_backup"));
        // preempt_delay with nopreempt: dropped with a warning (no effect in keepalived either).
        let text = instance(" nopreempt\n preempt_delay 30") + &vs("");
        let got = import(&text);
        assert!(!got.toml.contains("preempt_delay"), "{}", got.toml);
        assert!(
            got.warnings
                .iter()
                .any(|w| w.contains("preempt_delay dropped"))
        );
        let text = instance(" preempt_delay 1001") + &vs("");
        assert!(refused(&text).contains("more than 1000 seconds"));
    }

    #[test]
    fn a_sync_groups_notify_scripts_are_the_clusters() {
        let text = instance("")
            + "vrrp_sync_group G {\n group {\n  VI_1\n }\n notify_master /etc/keepalived/master.sh\n}\n"
            + &vs("");
        let got = import(&text);
        assert!(
            got.toml
                .contains("notify = { master = [\"/etc/keepalived/master.sh\"] }"),
            "{}",
            got.toml
        );
        // Both the group and the instance: one program per state.
        let text = instance(" notify_master /etc/keepalived/a.sh")
            + "vrrp_sync_group G {\n group {\n  VI_1\n }\n notify_master /etc/keepalived/b.sh\n}\n"
            + &vs("");
        assert!(refused(&text).contains("lvsup runs one program per state"));
    }

    #[test]
    fn directors_must_agree_on_hooks_and_preempt_delay() {
        let a = instance(" preempt_delay 30\n notify_master /bin/a") + &vs("");
        let b = instance(" preempt_delay 60\n notify_master /bin/a")
            .replace("priority 150", "priority 100")
            + &vs("");
        let r = convert(
            &[
                input("a.conf", &a, "10.0.0.11"),
                input("b.conf", &b, "10.0.0.12"),
            ],
            false,
        );
        let e = r.expect_err("differs").to_string();
        assert!(e.contains("preempt_delay is 30s"), "{e}");
        let b = instance(" preempt_delay 30\n notify_master /bin/b")
            .replace("priority 150", "priority 100")
            + &vs("");
        let r = convert(
            &[
                input("a.conf", &a, "10.0.0.11"),
                input("b.conf", &b, "10.0.0.12"),
            ],
            false,
        );
        let e = r.expect_err("differs").to_string();
        assert!(e.contains("notify_master is /bin/a"), "{e}");
    }

    /// Checks and hooks with several VIPs and per-service real servers: the
    /// check of a virtual server on the second VIP, served by one real server
    /// only, is that service's; the notify hook is the cluster's.
    #[test]
    fn checks_and_hooks_with_several_vips_and_per_service_real_servers() {
        let text = instance(" notify_master /usr/local/bin/vip-up")
            .replace("  10.0.0.100\n", "  10.0.0.100\n  10.0.0.101\n")
            + &vs("  MISC_CHECK {\n   misc_path \"/usr/local/bin/check.sh {A}\"\n  }")
            + "virtual_server 10.0.0.101 443 {\n lb_kind DR\n protocol TCP\n delay_loop 10\n real_server 10.0.0.21 443 {\n  weight 3\n  SSL_GET {\n   url {\n    path /\n   }\n  }\n }\n}\n";
        let got = import(&text);
        let spec = crate::config::parse_str("t.toml", &got.toml)
            .unwrap_or_else(|e| panic!("{e}\n{}", got.toml));
        assert_eq!(
            spec.notify.master.as_deref(),
            Some(&["/usr/local/bin/vip-up".to_string()][..]),
            "{}",
            got.toml
        );
        let names: Vec<&str> = spec.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["443/tcp", "10.0.0.101:443/tcp"]);
        assert_eq!(
            spec.services[0].health.check,
            crate::config::Check::Script {
                argv: vec!["/usr/local/bin/check.sh".into(), "{address}".into()]
            }
        );
        assert!(
            matches!(
                spec.services[1].health.check,
                crate::config::Check::Https {
                    tls_verify: false,
                    ..
                }
            ),
            "{}",
            got.toml
        );
        let (rs21, rs22) = (&spec.real_servers[0], &spec.real_servers[1]);
        assert!(rs21.serves(&spec.services[1]) && !rs22.serves(&spec.services[1]));
        assert_eq!(rs21.weight_for(&spec.services[1]), 3);
        assert_eq!(rs21.weight_for(&spec.services[0]), 1);
    }
}
