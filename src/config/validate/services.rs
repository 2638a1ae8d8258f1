//! `[[services]]` with their health checks, and a real server's `port`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::time::Duration;

use super::addresses::AddrUse;
use super::check::{Sp, V, count_rule};
use crate::config::model::*;
use crate::config::raw::*;

/// The services read from the file, with where each one's name is (for
/// the rule that every service has a real server).
pub(super) struct ServicesPart {
    pub(super) services: Vec<Service>,
    /// `(path, span)` of each of `services`: the `name` key if written,
    /// else the table.
    pub(super) places: Vec<(String, Range<usize>)>,
    /// Every element of `[[services]]` was read and valid: the names are
    /// complete, so a real server's unknown name is an error.
    pub(super) complete: bool,
}

/// Every `[[services]]` table; a (vip, port, protocol) may appear once (a
/// fwmark service's `ports` count, on its VIP), a fwmark once, a name once.
/// `cluster_vip`: the default of `vip`; a service's own VIP is added to
/// `addrs` (once per address) for the uniqueness rule.
pub(super) fn services(
    v: &mut V<'_>,
    raw: &RawFile,
    cluster_vip: Option<Ipv4Addr>,
    addrs: &mut Vec<AddrUse>,
) -> ServicesPart {
    let mut services = Vec::new();
    let mut places = Vec::new();
    let mut seen_services: BTreeMap<(Ipv4Addr, u16, Protocol), (String, Range<usize>)> =
        BTreeMap::new();
    let mut seen_marks: BTreeMap<u32, (String, Range<usize>)> = BTreeMap::new();
    let mut seen_names: BTreeMap<String, (String, Range<usize>)> = BTreeMap::new();
    count_rule(v, "services", raw.services.as_deref(), "[[services]]");
    let before = v.problems.len();
    for (i, e) in raw.services.iter().flatten().enumerate() {
        let Some(s) = &e.value else { continue };
        let path = format!("services[{i}]");
        let vip = match &s.vip {
            Some(a) => v.ipv4(&format!("{path}.vip"), a).map(|ip| {
                if Some(ip) != cluster_vip && !addrs.iter().any(|u| u.addr == ip) {
                    addrs.push(AddrUse {
                        addr: ip,
                        key: format!("{path}.vip"),
                        span: a.span(),
                    });
                }
                Some(ip)
            }),
            None => Some(None),
        };
        let Some(svc) = service(v, &path, s, &e.span) else {
            continue;
        };
        let Some(own_vip) = vip else { continue };
        let Some(vip) = own_vip.or(cluster_vip) else {
            continue;
        };
        let (name, nspan) = match &s.name {
            Some(n) => match service_name(v, &format!("{path}.name"), n) {
                Some(name) => (name, n.span()),
                None => continue,
            },
            None => (
                Service::default_name(
                    own_vip,
                    svc.port,
                    svc.protocol,
                    svc.fwmark.as_ref().map(|f| f.mark),
                ),
                e.span.clone(),
            ),
        };
        let mut ok = true;
        if let (Some(f), Some(m)) = (&svc.fwmark, &s.fwmark) {
            if let Some((first, fspan)) = seen_marks.get(&f.mark) {
                let line = v.line(fspan);
                v.err(
                    &format!("{path}.fwmark"),
                    m.span(),
                    format!(
                        "fwmark {} is already the mark of {first} (line {line})",
                        f.mark
                    ),
                )
                .related = Some(("first defined here".into(), fspan.clone()));
                ok = false;
            } else {
                seen_marks.insert(f.mark, (path.clone(), m.span()));
            }
        }
        // Every port the service takes on its VIP, with the span to point at.
        let taken: Vec<(u16, Range<usize>, String)> = match (&svc.fwmark, &s.ports) {
            (Some(f), Some(ps)) => f
                .ports
                .iter()
                .map(|p| {
                    let span = ps
                        .get_ref()
                        .iter()
                        .find(|x| *x.get_ref() == i64::from(*p))
                        .map_or(ps.span(), |x| x.span());
                    (*p, span, format!("{path}.ports"))
                })
                .collect(),
            _ => vec![(
                svc.port,
                s.port.as_ref().map_or(e.span.clone(), |p| p.span()),
                format!("{path}.port"),
            )],
        };
        for (port, pspan, key) in taken {
            let k = (vip, port, svc.protocol);
            if let Some((first, fspan)) = seen_services.get(&k) {
                let line = v.line(fspan);
                v.err(
                    &key,
                    pspan,
                    format!(
                        "{} port {port} of {vip} is already a service in {first} (line {line})",
                        svc.protocol
                    ),
                )
                .related = Some(("first defined here".into(), fspan.clone()));
                ok = false;
            } else {
                seen_services.insert(k, (path.clone(), pspan));
            }
        }
        if !ok {
            continue;
        }
        if let Some((first, fspan)) = seen_names.get(&name) {
            let line = v.line(fspan);
            let msg = if s.name.is_some() {
                format!("service name \"{name}\" is already used by {first} (line {line})")
            } else {
                format!(
                    "the default name of this service, \"{name}\", is already used by {first} (line {line})"
                )
            };
            v.err(&format!("{path}.name"), nspan.clone(), msg).related =
                Some(("first used here".into(), fspan.clone()));
            continue;
        }
        seen_names.insert(name.clone(), (path.clone(), nspan.clone()));
        places.push((path, nspan));
        services.push(Service { name, vip, ..svc });
    }
    let complete = v.problems.len() == before
        && raw
            .services
            .as_ref()
            .is_some_and(|e| e.iter().all(|e| e.value.is_some()) && e.len() == services.len())
        && !v.poisoned.iter().any(|k| k.starts_with("services"));
    ServicesPart {
        services,
        places,
        complete,
    }
}

/// `[[services]] name`: letters, digits and `- _ / : .`, at most 64.
fn service_name(v: &mut V<'_>, key: &str, n: &Sp<String>) -> Option<String> {
    let s = n.get_ref();
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_/:.".contains(&b));
    if !ok {
        v.err(
            key,
            n.span(),
            format!("\"{}\" is not a valid service name", s.escape_debug()),
        )
        .hint = Some(
            "letters, digits and - _ / : . (at most 64 characters), e.g. \"web\" or \"80/tcp\""
                .into(),
        );
        return None;
    }
    Some(s.clone())
}

fn service(v: &mut V<'_>, path: &str, s: &RawService, span: &Range<usize>) -> Option<Service> {
    let fwmark = fwmark(v, path, s, span);
    let port = match (&s.fwmark, &s.port) {
        (Some(_), None) => Some(0),
        (Some(_), Some(p)) => {
            v.err(
                &format!("{path}.port"),
                p.span(),
                format!(
                    "`port` = {} and `fwmark` exclude each other: a fwmark service takes `ports`",
                    p.get_ref()
                ),
            )
            .hint = Some("list every port in `ports = [...]` and remove `port`".into());
            None
        }
        _ => v
            .required(path, "port", &s.port, span)
            .and_then(|p| v.int(&format!("{path}.port"), p, 1, 65535, "port"))
            .map(|n| n as u16),
    };
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
    let persistence_netmask = match &s.persistence_netmask {
        None => Some(None),
        Some(m) => {
            let key = format!("{path}.persistence_netmask");
            match parse_netmask(m.get_ref()) {
                Err(why) => {
                    v.err(
                        &key,
                        m.span(),
                        format!("persistence_netmask \"{}\": {why}", m.get_ref()),
                    )
                    .hint = Some(
                        "a netmask such as \"255.255.255.0\", or a prefix length such as \"/24\""
                            .into(),
                    );
                    None
                }
                Ok(_) if s.persistence.is_none() => {
                    v.err(
                        &key,
                        m.span(),
                        format!(
                            "persistence_netmask \"{}\" needs `persistence`: it sets which clients share one persistent real server",
                            m.get_ref()
                        ),
                    )
                    .hint = Some("add persistence = \"300s\" (or how long clients stick), or remove persistence_netmask".into());
                    None
                }
                Ok(n) => Some(Some(n)),
            }
        }
    };
    let sorry_server = match &s.sorry_server {
        None => Some(None),
        Some(x) => match SorryServer::parse(x.get_ref()) {
            Ok(ss) => Some(Some(ss)),
            Err(why) => {
                v.err(
                    &format!("{path}.sorry_server"),
                    x.span(),
                    format!("sorry_server \"{}\": {why}", x.get_ref()),
                )
                .hint = Some(
                    "\"ADDRESS\" or \"ADDRESS:PORT\", e.g. \"10.0.0.9\" or \"10.0.0.9:8080\""
                        .into(),
                );
                None
            }
        },
    };
    let fwmark_on = matches!(fwmark, Some(Some(_)));
    let health = health(v, path, s.health.as_ref(), protocol, fwmark_on, span);
    Some(Service {
        name: String::new(),
        vip: Ipv4Addr::UNSPECIFIED,
        port: port?,
        protocol: protocol?,
        scheduler: scheduler?,
        persistence: persistence?,
        persistence_netmask: persistence_netmask?,
        fwmark: fwmark?,
        sorry_server: sorry_server?,
        health: health?,
    })
}

/// `fwmark` with its `ports`: `Some(None)` = not a fwmark service (and no
/// `ports`), `None` = an error was reported.
fn fwmark(
    v: &mut V<'_>,
    path: &str,
    s: &RawService,
    span: &Range<usize>,
) -> Option<Option<Fwmark>> {
    let Some(m) = &s.fwmark else {
        if let Some(ps) = &s.ports {
            v.err(
                &format!("{path}.ports"),
                ps.span(),
                "`ports` only applies to a fwmark service (`fwmark = N`)".into(),
            )
            .hint = Some("a service of one port takes `port = N`; several ports on one service need `fwmark`".into());
            return None;
        }
        return Some(None);
    };
    let mark = v.int(
        &format!("{path}.fwmark"),
        m,
        1,
        i64::from(u32::MAX),
        "fwmark",
    );
    let key = format!("{path}.ports");
    let Some(ps) = &s.ports else {
        if !v.poisoned.contains(&key) {
            v.err(
                &key,
                m.span(),
                format!(
                    "fwmark {} needs `ports`: the ports lvsup's nftables rule marks",
                    m.get_ref()
                ),
            )
            .hint = Some("e.g. ports = [80, 443]".into());
        }
        let _ = span;
        return None;
    };
    if ps.get_ref().is_empty() {
        v.err(
            &key,
            ps.span(),
            "`ports` is empty: a fwmark service needs at least one port".into(),
        )
        .hint = Some("e.g. ports = [80, 443]".into());
        return None;
    }
    let mut ports = Vec::new();
    let mut ok = true;
    for p in ps.get_ref() {
        match v.int(&key, p, 1, 65535, "port") {
            Some(n) if ports.contains(&(n as u16)) => {
                v.err(&key, p.span(), format!("port {n} is listed twice"));
                ok = false;
            }
            Some(n) => ports.push(n as u16),
            None => ok = false,
        }
    }
    ports.sort_unstable();
    if !ok {
        return None;
    }
    Some(Some(Fwmark {
        mark: mark? as u32,
        ports,
    }))
}

/// The rules of `sorry_server` that need the rest of the file: not a real
/// server, director or the VIP; a port only where the mode can remap
/// ports (NAT), like a real server's `port`.
/// An address the sorry server must not be: (address, what it is, the
/// ports it serves; `None` = every port).
pub(super) type Taken = (std::net::Ipv4Addr, String, Option<Vec<u16>>);

pub(super) fn sorry_servers(v: &mut V<'_>, raw: &RawFile, mode: Option<Mode>, taken: &[Taken]) {
    for (i, e) in raw.services.iter().flatten().enumerate() {
        let Some(s) = &e.value else { continue };
        let Some(x) = &s.sorry_server else { continue };
        let Ok(ss) = SorryServer::parse(x.get_ref()) else {
            continue;
        };
        let key = format!("services[{i}].sorry_server");
        let clash = taken.iter().find(|(a, _, ports)| {
            *a == ss.address
                && match (ports, ss.port) {
                    (Some(ports), Some(p)) => ports.contains(&p),
                    _ => true,
                }
        });
        if let Some((_, what, _)) = clash {
            v.err(
                &key,
                x.span(),
                format!("sorry_server \"{}\" is {what}", x.get_ref()),
            )
            .hint = Some("the sorry server is a host outside the cluster (a maintenance page), used while every real server is down; in NAT it may be a real server's address on a port that server does not serve".into());
            continue;
        }
        if let (Some(m), Some(p)) = (mode, ss.port)
            && !m.can_remap_ports()
        {
            let service_port = s.port.as_ref().map(|p| *p.get_ref());
            if s.fwmark.is_some() || service_port != Some(i64::from(p)) {
                v.err(
                    &key,
                    x.span(),
                    format!("sorry_server \"{}\": {m} cannot remap ports", x.get_ref()),
                )
                .hint = Some(format!(
                    "{m} forwards to the port the client asked for: write the address alone, \"{}\"",
                    ss.address
                ));
            }
        }
    }
}

fn health(
    v: &mut V<'_>,
    path: &str,
    h: Option<&Sp<RawHealth>>,
    protocol: Option<Protocol>,
    fwmark: bool,
    sspan: &Range<usize>,
) -> Option<Health> {
    let hp = format!("{path}.health");
    let default_check = if protocol == Some(Protocol::Udp) {
        "none"
    } else {
        "tcp"
    };
    if h.is_none() && fwmark && default_check != "none" {
        v.err(
            &format!("{hp}.port"),
            sspan.clone(),
            "a fwmark service's health check needs `health.port`: the service has several ports".into(),
        )
        .hint = Some("add [services.health] with port = one of the ports the real servers listen on (e.g. 80), or check = \"none\"".into());
        return None;
    }
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
    let (rules_ok, http) = check_rules(v, &hp, h, &hspan, check, protocol);
    ok &= rules_ok;
    let script = script_check(v, &hp, h, &hspan, check);
    if fwmark
        && protocol != Some(Protocol::Udp)
        && !matches!(check, Some("none"))
        && h.port.is_none()
    {
        let span = h.check.as_ref().map_or(hspan.clone(), |c| c.span());
        v.err(
            &format!("{hp}.port"),
            span,
            format!(
                "a {} check of a fwmark service needs `port`: the service has several ports",
                check.unwrap_or_default()
            ),
        )
        .hint = Some(
            "set health.port to one of the ports the real servers listen on, or check = \"none\""
                .into(),
        );
        ok = false;
    }
    let check = match check? {
        "tcp" => Check::Tcp,
        "http" => Check::Http(http),
        "https" => Check::Https {
            http,
            tls_verify: h.tls_verify.as_ref().is_none_or(|b| *b.get_ref()),
            sni: h.sni.as_ref().map(|s| s.get_ref().clone()),
        },
        "script" => Check::Script { argv: script? },
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

/// Longest `expect_body` accepted: it is searched for in the first
/// [`crate::config::MAX_BODY`] bytes of every answer.
const MAX_EXPECT_BODY: usize = 4096;

/// The rules tied to the check kind: the HTTP keys only for http/https, the
/// TLS keys only for https, a TCP port for a UDP service's TCP or HTTP(S)
/// check, and the HTTP values themselves. Returns whether all held, and the
/// HTTP part (defaults where unset).
fn check_rules(
    v: &mut V<'_>,
    hp: &str,
    h: &RawHealth,
    hspan: &Range<usize>,
    check: Option<&str>,
    protocol: Option<Protocol>,
) -> (bool, HttpCheck) {
    let mut ok = true;
    let is_http = matches!(check, Some("http" | "https"));
    let only = |v: &mut V<'_>, key: &str, span: Option<Range<usize>>, kinds: &str| {
        let Some(span) = span else { return true };
        v.err(
            &format!("{hp}.{key}"),
            span,
            format!(
                "`{key}` only applies to {kinds} (check is \"{}\")",
                check.unwrap_or_default()
            ),
        );
        false
    };
    if check.is_some() && !is_http {
        for (key, span) in [
            ("path", h.path.as_ref().map(|s| s.span())),
            ("expect_status", h.expect_status.as_ref().map(|s| s.span())),
            ("expect_body", h.expect_body.as_ref().map(|s| s.span())),
            ("expect_digest", h.expect_digest.as_ref().map(|s| s.span())),
        ] {
            ok &= only(v, key, span, "check = \"http\" or \"https\"");
        }
    }
    if check.is_some() && check != Some("https") {
        for (key, span) in [
            ("tls_verify", h.tls_verify.as_ref().map(|s| s.span())),
            ("sni", h.sni.as_ref().map(|s| s.span())),
        ] {
            ok &= only(v, key, span, "check = \"https\"");
        }
    }
    if check.is_some() && check != Some("script") {
        ok &= only(
            v,
            "script",
            h.script.as_ref().map(|s| s.span()),
            "check = \"script\"",
        );
    }
    if protocol == Some(Protocol::Udp)
        && matches!(check, Some("tcp" | "http" | "https"))
        && h.port.is_none()
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
    let mut http = HttpCheck {
        path: "/".to_string(),
        expect_status: 200,
        expect_body: None,
        expect_digest: None,
    };
    if let Some(p) = &h.path {
        if !v.free_text(&format!("{hp}.path"), p, "HTTP path") {
            ok = false;
        } else if p.get_ref().starts_with('/') && !p.get_ref().chars().any(char::is_whitespace) {
            http.path = p.get_ref().clone();
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
    if let Some(s) = &h.expect_status {
        match v.int(&format!("{hp}.expect_status"), s, 100, 599, "expect_status") {
            Some(n) => http.expect_status = n as u16,
            None => ok = false,
        }
    }
    if let Some(b) = &h.expect_body {
        let key = format!("{hp}.expect_body");
        let text = b.get_ref();
        if text.is_empty() || text.len() > MAX_EXPECT_BODY {
            v.err(
                &key,
                b.span(),
                format!(
                    "expect_body must be 1..={MAX_EXPECT_BODY} bytes, got {}",
                    text.len()
                ),
            )
            .hint = Some("leave the key out to accept any body".into());
            ok = false;
        } else {
            http.expect_body = Some(text.clone());
        }
    }
    if let Some(d) = &h.expect_digest {
        let text = d.get_ref().trim();
        if text.len() == 32 && text.bytes().all(|c| c.is_ascii_hexdigit()) {
            http.expect_digest = Some(text.to_ascii_lowercase());
        } else {
            v.err(
                &format!("{hp}.expect_digest"),
                d.span(),
                format!(
                    "expect_digest \"{}\" is not an MD5 digest",
                    d.get_ref().escape_debug()
                ),
            )
            .hint = Some(
                "32 hexadecimal digits, as `md5sum` prints them (keepalived's `digest`)".into(),
            );
            ok = false;
        }
    }
    if let Some(n) = &h.sni {
        let key = format!("{hp}.sni");
        if !v.free_text(&key, n, "server name") {
            ok = false;
        } else if rustls::pki_types::ServerName::try_from(n.get_ref().as_str()).is_err() {
            v.err(
                &key,
                n.span(),
                format!("\"{}\" is not a DNS name or IP address", n.get_ref()),
            )
            .hint = Some(
                "the name the real servers' certificate is issued for, e.g. \"www.example.com\""
                    .into(),
            );
            ok = false;
        }
    }
    (ok, http)
}

/// `script`: required for check = "script"; an argv list whose first word
/// is an absolute path (no `PATH` search: the daemon's environment is not
/// the operator's shell).
fn script_check(
    v: &mut V<'_>,
    hp: &str,
    h: &RawHealth,
    hspan: &Range<usize>,
    check: Option<&str>,
) -> Option<Vec<String>> {
    if check != Some("script") {
        return None;
    }
    let s = v.required(hp, "script", &h.script, hspan)?;
    argv(v, &format!("{hp}.script"), s)
}

/// A program and its arguments (`script`, `notify.*`): non-empty, the
/// program an absolute path, no control characters.
pub(super) fn argv(v: &mut V<'_>, key: &str, s: &Sp<Vec<String>>) -> Option<Vec<String>> {
    let words = s.get_ref();
    let name = key.rsplit('.').next().unwrap_or(key);
    let Some(first) = words.first() else {
        v.err(key, s.span(), format!("`{name}` is an empty list"))
            .hint = Some("the program's absolute path, then its arguments, e.g. [\"/usr/local/bin/prog\", \"arg\"]".into());
        return None;
    };
    if let Some(w) = words.iter().find(|w| w.chars().any(char::is_control)) {
        v.err(
            key,
            s.span(),
            format!("\"{}\" contains control characters", w.escape_debug()),
        );
        return None;
    }
    if !first.starts_with('/') || first.ends_with('/') {
        v.err(
            key,
            s.span(),
            format!("\"{first}\" is not an absolute path to a program"),
        )
        .hint = Some(
            "the daemon runs it without a shell and without searching PATH: write the full \
             path, e.g. \"/usr/local/bin/check\" (for a shell command: [\"/bin/sh\", \"-c\", \"...\"])"
                .into(),
        );
        return None;
    }
    Some(words.clone())
}

/// A real server's `port`: NAT only, and unambiguous.
pub(super) fn rs_port(
    v: &mut V<'_>,
    path: &str,
    p: &Sp<i64>,
    mode: Option<Mode>,
    services: &[Service],
) -> Option<Option<u16>> {
    let key = format!("{path}.port");
    let port = v.int(&key, p, 1, 65535, "port")? as u16;
    if let Some(f) = services.iter().find_map(|s| s.fwmark.as_ref()) {
        v.err(
            &key,
            p.span(),
            format!(
                "port {port} is ambiguous: fwmark {} takes ports {}",
                f.mark,
                f.ports_text()
            ),
        )
        .hint = Some(
            "a fwmark service forwards each packet to the port it was sent to: remove `port`"
                .into(),
        );
        return None;
    }
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
