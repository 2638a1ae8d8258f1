//! `[[directors]]` and `[[real_servers]]`: names unique across both,
//! priorities distinct, addresses collected for the uniqueness rule.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::ops::Range;

use super::addresses::AddrUse;
use super::check::{Sp, V, count_rule};
use super::metrics::director_metrics;
use super::services::rs_port;
use super::{PRIORITY_FIRST, PRIORITY_STEP};
use crate::config::model::*;
use crate::config::raw::*;

/// A validated host with where it stands in the file.
pub(super) struct Placed<T> {
    pub(super) item: T,
    /// `directors[1]`
    pub(super) path: String,
    pub(super) addr_span: Range<usize>,
    pub(super) internal_span: Option<Range<usize>>,
}

/// What the host sections share: the VIP and mode from `[cluster]`, the
/// names and priorities seen so far, and every address read.
pub(super) struct Hosts {
    vip: Option<Ipv4Addr>,
    mode: Option<Mode>,
    names: BTreeMap<String, (String, Range<usize>)>,
    priorities: BTreeMap<u8, (String, Range<usize>)>,
    pub(super) addrs: Vec<AddrUse>,
}

impl Hosts {
    pub(super) fn new(vip: Option<Ipv4Addr>, mode: Option<Mode>, addrs: Vec<AddrUse>) -> Self {
        Hosts {
            vip,
            mode,
            names: BTreeMap::new(),
            priorities: BTreeMap::new(),
            addrs,
        }
    }

    /// A host name: valid, and used by no other host.
    fn check_name(&mut self, v: &mut V<'_>, key: String, n: &Sp<String>) -> Option<String> {
        let name = v.host_name(&key, n)?;
        if let Some((first, fspan)) = self.names.get(&name) {
            let line = v.line(fspan);
            v.err(
                &key,
                n.span(),
                format!("name \"{name}\" is already used by {first} (line {line})"),
            )
            .related = Some(("first used here".into(), fspan.clone()));
            return None;
        }
        self.names.insert(
            name.clone(),
            (key.trim_end_matches(".name").to_string(), n.span()),
        );
        Some(name)
    }

    /// Every `[[directors]]` table, after the VRRP rules that depend on
    /// their count.
    pub(super) fn directors(
        &mut self,
        v: &mut V<'_>,
        raw: &RawFile,
        vrrp_unicast: &Option<(bool, Range<usize>)>,
        vrrp_accept_foreign: &Option<(bool, Range<usize>)>,
    ) -> Vec<Placed<Director>> {
        let mut directors = Vec::new();
        count_rule(v, "directors", raw.directors.as_deref(), "[[directors]]");
        // Unicast adverts go to the other directors: with one there is nobody to
        // send to (and the daemon refuses a unicast config without peers).
        if let Some((true, span)) = vrrp_unicast
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
        if let (Some((true, _)), Some((true, span))) = (vrrp_unicast, vrrp_accept_foreign) {
            v.err(
                "cluster.vrrp_accept_foreign",
                span.clone(),
                "vrrp_accept_foreign = true only applies to multicast VRRP; vrrp_unicast = true accepts adverts from the other directors only".into(),
            )
            .hint = Some("leave one of vrrp_unicast and vrrp_accept_foreign out".into());
        }
        for (i, e) in raw.directors.iter().flatten().enumerate() {
            let Some(d) = &e.value else { continue };
            directors.extend(self.director(v, i, e, d));
        }
        directors
    }

    /// One `[[directors]]` table, `i` in file order.
    fn director(
        &mut self,
        v: &mut V<'_>,
        i: usize,
        e: &Elem<RawDirector>,
        d: &RawDirector,
    ) -> Option<Placed<Director>> {
        let path = format!("directors[{i}]");
        let name = v
            .required(&path, "name", &d.name, &e.span)
            .and_then(|n| self.check_name(v, format!("{path}.name"), n));
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
            if let Some((first, fspan)) = self.priorities.get(&p) {
                let line = v.line(fspan);
                let key = format!("{path}.priority");
                v.err(&key, pspan.clone(), format!("priority {p} is already {first}'s (line {line}); priorities must be distinct"))
                    .hint = Some(if d.priority.is_none() {
                        "this is the default from director order (150, 140, …): set `priority` explicitly".into()
                    } else {
                        "VRRP elects by priority: give each director its own".into()
                    });
            } else {
                self.priorities.insert(p, (path.clone(), pspan));
            }
        }
        let ssh_host = d
            .ssh_host
            .as_ref()
            .and_then(|h| v.word(&format!("{path}.ssh_host"), h, "ssh host"));
        let dmetrics = d
            .metrics
            .as_ref()
            .and_then(|m| director_metrics(v, &format!("{path}.metrics"), m, self.vip));
        let internal_address = match (&d.internal_address, self.mode) {
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
            self.addrs.push(AddrUse {
                addr: a.addr(),
                key: format!("{path}.address"),
                span: s.clone(),
            });
        }
        if let Some((a, s)) = &internal_address {
            self.addrs.push(AddrUse {
                addr: a.addr(),
                key: format!("{path}.internal_address"),
                span: s.clone(),
            });
        }
        if let (Some(name), Some((address, aspan)), Some(priority)) = (name, address, priority) {
            return Some(Placed {
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
        None
    }

    /// Every `[[real_servers]]` table; `services` decide whether `port` may remap.
    pub(super) fn real_servers(
        &mut self,
        v: &mut V<'_>,
        raw: &RawFile,
        services: &[Service],
    ) -> Vec<Placed<RealServer>> {
        let mut real_servers = Vec::new();
        count_rule(
            v,
            "real_servers",
            raw.real_servers.as_deref(),
            "[[real_servers]]",
        );
        for (i, e) in raw.real_servers.iter().flatten().enumerate() {
            let Some(r) = &e.value else { continue };
            real_servers.extend(self.real_server(v, i, e, r, services));
        }
        real_servers
    }

    /// One `[[real_servers]]` table, `i` in file order.
    fn real_server(
        &mut self,
        v: &mut V<'_>,
        i: usize,
        e: &Elem<RawRealServer>,
        r: &RawRealServer,
        services: &[Service],
    ) -> Option<Placed<RealServer>> {
        let path = format!("real_servers[{i}]");
        let name = v
            .required(&path, "name", &r.name, &e.span)
            .and_then(|n| self.check_name(v, format!("{path}.name"), n));
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
        let (served, weights) = served(v, &path, r, services);
        let mine: Vec<Service> = match &served {
            Some(Some(names)) => services
                .iter()
                .filter(|s| names.contains(&s.name))
                .cloned()
                .collect(),
            _ => services.to_vec(),
        };
        let port = match &r.port {
            Some(p) => rs_port(v, &path, p, self.mode, &mine),
            None => Some(None),
        };
        let ssh_host = r
            .ssh_host
            .as_ref()
            .and_then(|h| v.word(&format!("{path}.ssh_host"), h, "ssh host"));
        let drain = r.drain.as_ref().is_some_and(|d| *d.get_ref());
        if let Some((a, s)) = &address {
            self.addrs.push(AddrUse {
                addr: a.addr(),
                key: format!("{path}.address"),
                span: s.clone(),
            });
        }
        if let (
            Some(name),
            Some((address, aspan)),
            Some(weight),
            Some(port),
            Some(services),
            Some(weights),
        ) = (name, address, weight, port, served, weights)
        {
            return Some(Placed {
                item: RealServer {
                    name,
                    address,
                    weight,
                    port,
                    ssh_host,
                    drain,
                    services,
                    weights,
                },
                path: path.clone(),
                addr_span: aspan,
                internal_span: None,
            });
        }
        None
    }
}

/// A real server's `services`: `None` = every service.
type Served = Option<Vec<String>>;

/// A real server's `services` and `weights`: each name a service of the
/// file (checked only when every service was read, `complete`), `weights`
/// only for services it serves, each weight 0..=65535. `None`: an error.
fn served(
    v: &mut V<'_>,
    path: &str,
    r: &RawRealServer,
    services: &[Service],
) -> (Option<Served>, Option<BTreeMap<String, u32>>) {
    let known: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    let complete = v.services_complete;
    let unknown = |v: &mut V<'_>, key: &str, name: &str, span: Range<usize>| {
        v.err(
            key,
            span,
            format!(
                "{key}: \"{}\" is not a service of this cluster",
                name.escape_debug()
            ),
        )
        .hint = Some(match crate::config::diag::suggest(name, &known) {
            Some(s) => format!("did you mean \"{s}\"? services are: {}", known.join(", ")),
            None => format!(
                "services are: {} (a service's name is its `name`, else \"PORT/PROTO\", or \"VIP:PORT/PROTO\" with its own vip)",
                known.join(", ")
            ),
        });
    };
    let key = format!("{path}.services");
    let served = match &r.services {
        None => Some(None),
        Some(list) if list.get_ref().is_empty() => {
            v.err(
                &key,
                list.span(),
                "services = []: the real server would serve no service".into(),
            )
            .hint =
                Some("list the services it serves, or leave `services` out for all of them".into());
            None
        }
        Some(list) => {
            let mut names: Vec<String> = Vec::new();
            let mut ok = true;
            for n in list.get_ref() {
                let name = n.get_ref();
                if names.contains(name) {
                    v.err(
                        &key,
                        n.span(),
                        format!("{key}: \"{}\" is listed twice", name.escape_debug()),
                    );
                    ok = false;
                } else if complete && !known.contains(&name.as_str()) {
                    unknown(v, &key, name, n.span());
                    ok = false;
                } else {
                    names.push(name.clone());
                }
            }
            ok.then_some(Some(names))
        }
    };
    let mut weights = BTreeMap::new();
    let mut wok = true;
    if let Some(w) = &r.weights {
        for (name, val) in w.get_ref() {
            let wkey = format!("{path}.weights.{name}");
            if complete && !known.contains(&name.as_str()) {
                unknown(v, &wkey, name, val.span());
                wok = false;
                continue;
            }
            if let Some(Some(list)) = &served
                && !list.contains(name)
            {
                v.err(
                    &wkey,
                    val.span(),
                    format!(
                        "{wkey}: the real server does not serve \"{}\" (its services are: {})",
                        name.escape_debug(),
                        list.join(", ")
                    ),
                )
                .hint = Some("add the service to `services`, or remove this weight".into());
                wok = false;
                continue;
            }
            match v.int(&wkey, val, 0, 65535, "weight") {
                Some(n) => {
                    weights.insert(name.clone(), n as u32);
                }
                None => wok = false,
            }
        }
    }
    (served, wok.then_some(weights))
}
