//! `[[services]]` with their health checks, and a real server's `port`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use super::check::{Sp, V, count_rule};
use crate::config::model::*;
use crate::config::raw::*;

/// Every `[[services]]` table; a port and protocol may appear once.
pub(super) fn services(v: &mut V<'_>, raw: &RawFile) -> Vec<Service> {
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
    services
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
    let (rules_ok, http) = check_rules(v, &hp, h, &hspan, check, protocol);
    ok &= rules_ok;
    let script = script_check(v, &hp, h, &hspan, check);
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
