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

/// Every `[[services]]` table; a (vip, port, protocol) may appear once, a
/// name once. `cluster_vip`: the default of `vip`; a service's own VIP is
/// added to `addrs` (once per address) for the uniqueness rule.
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
        let name = match &s.name {
            Some(n) => match service_name(v, &format!("{path}.name"), n) {
                Some(name) => (name, n.span()),
                None => continue,
            },
            None => (
                Service::default_name(own_vip, svc.port, svc.protocol),
                e.span.clone(),
            ),
        };
        let (name, nspan) = name;
        let key = (vip, svc.port, svc.protocol);
        let pspan = s.port.as_ref().map_or(e.span.clone(), |p| p.span());
        if let Some((first, fspan)) = seen_services.get(&key) {
            let line = v.line(fspan);
            v.err(
                &format!("{path}.port"),
                pspan,
                format!(
                    "{} {vip}:{} is already a service in {first} (line {line})",
                    svc.protocol, svc.port
                ),
            )
            .related = Some(("first defined here".into(), fspan.clone()));
            continue;
        }
        seen_services.insert(key, (path.clone(), pspan));
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
        name: String::new(),
        vip: Ipv4Addr::UNSPECIFIED,
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
    let (rules_ok, path_, status) = check_rules(v, &hp, h, &hspan, check, protocol);
    ok &= rules_ok;
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

/// The rules tied to the check kind: `path` and `expect_status` only for
/// HTTP, a TCP port for a UDP service's TCP or HTTP check, and the HTTP
/// values themselves. Returns whether all held, the path and the status.
fn check_rules(
    v: &mut V<'_>,
    hp: &str,
    h: &RawHealth,
    hspan: &Range<usize>,
    check: Option<&str>,
    protocol: Option<Protocol>,
) -> (bool, String, u16) {
    let mut ok = true;
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
    (ok, path_, status)
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
