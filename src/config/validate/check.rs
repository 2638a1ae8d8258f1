//! The validator [`V`]: collects problems and checks single values (ranges,
//! addresses, names, durations), each error at its value's span.

use std::net::Ipv4Addr;
use std::ops::Range;
use std::time::Duration;

use ipnet::Ipv4Net;
use toml::Spanned;

use super::DEFAULT_PREFIX;
use crate::config::diag::{Problem, line_col, suggest};
use crate::config::raw::{Elem, S};

pub(super) struct V<'t> {
    pub(super) text: &'t str,
    pub(super) problems: Vec<Problem>,
    pub(super) poisoned: &'t std::collections::BTreeSet<String>,
    /// Every `[[services]]` element was read and valid: real servers'
    /// `services`/`weights` names can be checked against them.
    pub(super) services_complete: bool,
}

pub(super) type Sp<T> = Spanned<T>;

impl V<'_> {
    pub(super) fn err(&mut self, key: &str, span: Range<usize>, msg: String) -> &mut Problem {
        self.problems.push(Problem::new(key, msg).at(span));
        let last = self.problems.len() - 1;
        &mut self.problems[last]
    }

    pub(super) fn line(&self, span: &Range<usize>) -> usize {
        line_col(self.text, span.start).0
    }

    pub(super) fn required<'a, T>(
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

    pub(super) fn one_of<'a>(
        &mut self,
        key: &str,
        v: &Sp<String>,
        options: &[&'a str],
    ) -> Option<&'a str> {
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

    pub(super) fn int(
        &mut self,
        key: &str,
        v: &Sp<i64>,
        lo: i64,
        hi: i64,
        what: &str,
    ) -> Option<i64> {
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

    pub(super) fn duration(&mut self, key: &str, v: &Sp<String>) -> Option<Duration> {
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

    pub(super) fn ipv4(&mut self, key: &str, v: &Sp<String>) -> Option<Ipv4Addr> {
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
    pub(super) fn ipv4_net(&mut self, key: &str, v: &Sp<String>) -> Option<Ipv4Net> {
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

    pub(super) fn unicast(&mut self, key: &str, v: &Sp<String>, a: Ipv4Addr) -> Option<Ipv4Addr> {
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

    pub(super) fn host_name(&mut self, key: &str, v: &Sp<String>) -> Option<String> {
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
    pub(super) fn free_text(&mut self, key: &str, v: &Sp<String>, what: &str) -> bool {
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

    pub(super) fn word(&mut self, key: &str, v: &Sp<String>, what: &str) -> Option<String> {
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

    pub(super) fn ifname(&mut self, key: &str, v: &Sp<String>) -> Option<String> {
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

/// "at least one" — only when every element of the section could be read.
pub(super) fn count_rule<T>(v: &mut V<'_>, name: &str, elems: Option<&[Elem<T>]>, header: &str) {
    if elems.is_none_or(|e| e.is_empty()) && !v.poisoned.contains(name) {
        v.problems.push(
            Problem::new(name, format!("at least one `{header}` is required"))
                .at(0..0)
                .hint(format!("add a {header} table")),
        );
    }
}
