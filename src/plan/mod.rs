//! Plans: the difference between the desired state of each host and what the
//! host has (pure). Offline, a host is taken to hold nothing of lvsup's; the
//! live plan (later) fills [`Observed`] from facts gathered over SSH and uses
//! the same diff. Rendering: one plain sentence per change, unified diffs for
//! files (via `similar`), or JSON. Order is stable: hosts in apply order, and
//! within a host the order apply works in (files, binary, modules, sysctls,
//! units, addresses, routes, IPVS).

pub mod shared;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::config::diag::terminal_safe;
use crate::config::{ClusterSpec, Mode};
use crate::contract::director_config::DirectorConfig;
use crate::contract::director_config::restart_needed;
use crate::desired::{
    BINARY_PATH, DesiredCluster, Destination, Holder, HostState, Role, VirtualService,
};

/// What a host has of the things lvsup manages. `Default` is a fresh host.
/// Serialized only into a saved plan's facts digest (`notes` left out:
/// they are not state).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Observed {
    /// Path → content of the files lvsup manages that exist.
    pub files: BTreeMap<String, String>,
    /// Whether `/usr/local/bin/lvsup` is there and is this very version.
    pub binary_current: bool,
    pub modules_loaded: BTreeSet<String>,
    pub sysctls: BTreeMap<String, String>,
    /// Unit → (enabled, active).
    pub units: BTreeMap<String, (bool, bool)>,
    /// (interface, address/prefix) pairs present on the host.
    pub addresses: BTreeSet<(String, String)>,
    /// Routes as `ip route` prints them, e.g. `default via 192.168.10.254`.
    pub routes: BTreeSet<String>,
    /// The kernel's IPVS table (directors).
    pub ipvs: Vec<VirtualService>,
    /// Undo records an interrupted `lvsup verify` left on the host: path →
    /// what it left, in one sentence (drift: apply or verify undoes it).
    pub verify_leftovers: BTreeMap<String, String>,
    /// Facts worth showing with the host's plan that are not changes (e.g. a
    /// real server at weight 0 because its health checks fail).
    #[serde(skip)]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Plan {
    pub cluster: String,
    pub mode: Mode,
    pub vip: String,
    /// The services' own VIPs besides `vip` (`[[services]] vip`); absent
    /// when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other_vips: Vec<String>,
    /// True when no host was contacted.
    pub offline: bool,
    pub hosts: Vec<HostPlan>,
    /// Live plans: hosts that could not be planned (unreachable, missing
    /// prerequisites), each with the step that failed. They are not in `hosts`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<HostError>,
}

/// A host that could not be planned or applied, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HostError {
    pub host: String,
    /// The step that failed: `connect`, `gather facts`, `check prerequisites`, ...
    pub step: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HostPlan {
    pub host: String,
    pub address: String,
    pub role: Role,
    pub changes: Vec<Change>,
    /// What apply does to the host's units after the changes, and why:
    /// for a director, whether it is reloaded (no VIP movement) or restarted
    /// (the VIP is handed over when it holds it). Decided here, before anyone
    /// confirms, by [`unit_plans`]; apply's steps follow it.
    pub units: Vec<UnitPlan>,
    /// Things worth knowing that are not changes (floating addresses, unowned IPVS services).
    pub notes: Vec<String>,
    /// What apply will do that the operator may not expect and can avoid
    /// ([`restart_warnings`]): shown as `! warning: …` lines.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// What apply does to one unit.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UnitPlan {
    pub unit: String,
    /// `systemctl enable` (a start enables too).
    pub enable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<UnitAction>,
    /// Why `action`, in a few words (empty without an action).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub why: String,
    /// A director's restart: the VRRP instance restarts, so the VIP moves to
    /// a backup when this director holds it. False for reloads and real servers.
    pub vip_handover: bool,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UnitAction {
    /// It does not run: `enable --now`.
    Start,
    /// `systemctl restart`.
    Restart,
    /// `systemctl reload`: SIGHUP, the daemon re-reads its config and
    /// reconciles IPVS in place (directors only; no VIP movement).
    Reload,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
}

impl Action {
    fn sign(self) -> char {
        match self {
            Action::Create => '+',
            Action::Update => '~',
            Action::Delete => '-',
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Change {
    pub action: Action,
    #[serde(flatten)]
    pub item: Item,
    /// The change in one plain sentence.
    pub summary: String,
    /// Files: a unified diff from what the host has to what lvsup will write.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Item {
    File {
        path: String,
        mode: String,
    },
    Binary {
        path: String,
        version: String,
    },
    Module {
        name: String,
    },
    Sysctl {
        key: String,
        value: String,
        previous: Option<String>,
    },
    Unit {
        name: String,
    },
    Address {
        address: String,
        interface: String,
    },
    Route {
        destination: String,
        via: String,
    },
    IpvsService {
        service: String,
        scheduler: String,
        persistence: Option<u32>,
    },
    IpvsDestination {
        service: String,
        destination: String,
        forward: String,
        weight: u32,
    },
    /// A change an interrupted `lvsup verify` left (its undo record at
    /// `record`); apply, destroy and verify undo it before anything else.
    InterruptedVerify {
        record: String,
    },
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        self.hosts.iter().any(|h| !h.changes.is_empty())
    }

    pub fn count(&self, action: Action) -> usize {
        self.hosts
            .iter()
            .flat_map(|h| &h.changes)
            .filter(|c| c.action == action)
            .count()
    }

    /// The human form.
    pub fn render_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "Plan for cluster \"{}\" ({}, {} {}{}){}",
            self.cluster,
            self.mode,
            if self.other_vips.is_empty() {
                "VIP"
            } else {
                "VIPs"
            },
            self.vip,
            self.other_vips
                .iter()
                .map(|v| format!(", {v}"))
                .collect::<String>(),
            if self.offline {
                " — offline: no host was contacted, every host is shown as fresh"
            } else {
                ""
            }
        );
        for h in &self.hosts {
            let n = h.changes.len();
            let _ = writeln!(
                o,
                "\n{} ({}, {}): {}",
                h.host,
                h.role.describe(),
                h.address,
                match n {
                    0 => "no changes".to_string(),
                    1 => "1 change".to_string(),
                    n => format!("{n} changes"),
                }
            );
            for c in &h.changes {
                let _ = writeln!(o, "  {} {}", c.action.sign(), c.summary);
                if let Some(d) = &c.diff {
                    for line in d.lines() {
                        let _ = writeln!(o, "      {line}");
                    }
                }
            }
            for u in &h.units {
                if let Some(line) = u.describe() {
                    let _ = writeln!(o, "  > {line}");
                }
            }
            for note in &h.notes {
                let _ = writeln!(o, "  = {note}");
            }
            for w in &h.warnings {
                let _ = writeln!(o, "  ! warning: {w}");
            }
        }
        for e in &self.errors {
            let _ = writeln!(
                o,
                "\n{}: ERROR at step \"{}\": {}",
                e.host, e.step, e.message
            );
        }
        let order: Vec<&str> = self.hosts.iter().map(|h| h.host.as_str()).collect();
        if !self.errors.is_empty() {
            let _ = writeln!(
                o,
                "\n{} of {} hosts could not be planned (see above).",
                self.errors.len(),
                self.errors.len() + self.hosts.len()
            );
        }
        if self.has_changes() {
            let _ = writeln!(
                o,
                "\nPlan: {} to create, {} to update, {} to delete on {} of {} hosts. Apply order: {}.",
                self.count(Action::Create),
                self.count(Action::Update),
                self.count(Action::Delete),
                self.hosts.iter().filter(|h| !h.changes.is_empty()).count(),
                self.hosts.len(),
                order.join(", ")
            );
        } else if self.errors.is_empty() {
            let _ = writeln!(
                o,
                "\nNo changes: every host matches cluster \"{}\".",
                self.cluster
            );
        } else {
            let _ = writeln!(
                o,
                "\nNo changes on the {} hosts that could be planned.",
                self.hosts.len()
            );
        }
        // host output (file contents in diffs, errors, notes) is untrusted
        terminal_safe(&o)
    }
}

/// The plan against fresh hosts, without contacting any.
pub fn offline(spec: &ClusterSpec, desired: &DesiredCluster) -> Plan {
    let fresh = Observed::default();
    plan(spec, desired, |_| Some(&fresh), true)
}

/// The plan of `desired` against what `observed` says each host has.
pub fn plan<'a>(
    spec: &ClusterSpec,
    desired: &DesiredCluster,
    observed: impl Fn(&str) -> Option<&'a Observed>,
    offline: bool,
) -> Plan {
    let fresh = Observed::default();
    Plan {
        cluster: spec.name.clone(),
        mode: spec.mode,
        vip: spec.vip.to_string(),
        other_vips: spec.vips()[1..].iter().map(|v| v.to_string()).collect(),
        offline,
        errors: Vec::new(),
        hosts: desired
            .hosts
            .iter()
            .map(|h| diff_host(&spec.name, h, observed(&h.name).unwrap_or(&fresh)))
            .collect(),
    }
}

/// Every change that brings host `obs` to `want` (of cluster `cluster`).
pub fn diff_host(cluster: &str, want: &HostState, obs: &Observed) -> HostPlan {
    let mut changes = Vec::new();
    // first: what an interrupted verify left is undone before anything else
    for (record, what) in &obs.verify_leftovers {
        changes.push(Change {
            action: Action::Update,
            item: Item::InterruptedVerify {
                record: record.clone(),
            },
            summary: what.clone(),
            diff: None,
        });
    }
    let mut notes = Vec::new();

    for f in &want.files {
        let old = obs.files.get(&f.path);
        if old == Some(&f.content) {
            continue;
        }
        let (action, verb) = match old {
            None => (Action::Create, "create"),
            Some(_) => (Action::Update, "update"),
        };
        let old_text = old.map_or("", String::as_str);
        let diff = similar::TextDiff::from_lines(old_text, &f.content)
            .unified_diff()
            .context_radius(3)
            .header(
                &if old.is_some() {
                    f.path.clone()
                } else {
                    "/dev/null".to_string()
                },
                &f.path,
            )
            .to_string();
        changes.push(Change {
            action,
            item: Item::File {
                path: f.path.clone(),
                mode: format!("{:04o}", f.mode),
            },
            summary: format!(
                "{verb} file {} ({}, mode {:04o})",
                f.path, f.purpose, f.mode
            ),
            diff: Some(diff),
        });
    }

    // A director whose cluster had fwmark services and has none now: the
    // rules file goes, and with it lvsup's nftables table.
    let rules = crate::layout::fwmark_rules_path(cluster);
    if matches!(want.role, Role::Director { .. })
        && obs.files.contains_key(&rules)
        && !want.files.iter().any(|f| f.path == rules)
    {
        changes.push(Change {
            action: Action::Delete,
            item: Item::File {
                path: rules.clone(),
                mode: "0644".into(),
            },
            summary: format!(
                "remove file {rules} and nftables table ip {} (no fwmark service left)",
                crate::layout::fwmark_table(cluster)
            ),
            diff: None,
        });
    }

    if matches!(want.role, Role::Director { .. }) && !obs.binary_current {
        let version = env!("CARGO_PKG_VERSION").to_string();
        changes.push(Change {
            action: Action::Create,
            item: Item::Binary {
                path: BINARY_PATH.into(),
                version: version.clone(),
            },
            summary: format!("install the director daemon {BINARY_PATH} (lvsup {version})"),
            diff: None,
        });
    }

    for m in &want.modules {
        if !obs.modules_loaded.contains(m) {
            changes.push(Change {
                action: Action::Create,
                item: Item::Module { name: m.clone() },
                summary: format!("load kernel module {m} (now, and at boot)"),
                diff: None,
            });
        }
    }

    for s in &want.sysctls {
        let prev = obs.sysctls.get(&s.key);
        if prev == Some(&s.value) {
            continue;
        }
        let summary = match prev {
            Some(p) => format!("set {} = {} (now {p})", s.key, s.value),
            None => format!("set {} = {}", s.key, s.value),
        };
        changes.push(Change {
            action: if prev.is_some() {
                Action::Update
            } else {
                Action::Create
            },
            item: Item::Sysctl {
                key: s.key.clone(),
                value: s.value.clone(),
                previous: prev.cloned(),
            },
            summary,
            diff: None,
        });
    }

    for u in &want.units {
        let (enabled, active) = obs.units.get(&u.name).copied().unwrap_or((false, false));
        let verb = match (u.enabled && !enabled, u.active && !active) {
            (true, true) => "enable and start",
            (true, false) => "enable",
            (false, true) => "start",
            (false, false) => continue,
        };
        changes.push(Change {
            action: if enabled || active {
                Action::Update
            } else {
                Action::Create
            },
            item: Item::Unit {
                name: u.name.clone(),
            },
            summary: format!("{verb} unit {}", u.name),
            diff: None,
        });
    }

    for a in &want.addresses {
        let iface = a.interface.to_string();
        match &a.holder {
            Holder::Vrrp => notes.push(format!(
                "{} floats on {iface}: held by the VRRP master's daemon, not by this host alone",
                a.address
            )),
            Holder::Unit(unit) => {
                if !obs
                    .addresses
                    .contains(&(iface.clone(), a.address.to_string()))
                {
                    changes.push(Change {
                        action: Action::Create,
                        item: Item::Address {
                            address: a.address.to_string(),
                            interface: iface.clone(),
                        },
                        summary: format!("add address {} on {iface} (by {unit})", a.address),
                        diff: None,
                    });
                }
            }
        }
    }

    for r in &want.routes {
        let text = format!("{} via {}", r.destination, r.via);
        if !obs.routes.contains(&text) {
            changes.push(Change {
                action: Action::Create,
                item: Item::Route {
                    destination: r.destination.clone(),
                    via: r.via.to_string(),
                },
                summary: format!("route {text} (by {}; replies pass the director)", r.unit),
                diff: None,
            });
        }
    }

    diff_ipvs(&want.ipvs, &obs.ipvs, &mut changes, &mut notes);
    notes.extend(obs.notes.iter().cloned());

    let units = unit_plans(cluster, want, obs, &changes);
    HostPlan {
        host: want.name.clone(),
        address: want.address.to_string(),
        role: want.role.clone(),
        warnings: restart_warnings(&want.name, &units, &changes),
        units,
        changes,
        notes,
    }
}

/// A real server removed from a service while its director's daemon
/// restarts is deleted at once, not drained: the restarted daemon starts
/// from the file, which no longer names it (docs/reference/director.md,
/// "Draining"). One warning per removed destination of such a director
/// (pure). Applying the removal alone first (a reload, which drains), then
/// the change that restarts, keeps its connections.
pub fn restart_warnings(host: &str, units: &[UnitPlan], changes: &[Change]) -> Vec<String> {
    let Some(unit) = units
        .iter()
        .find(|u| u.vip_handover && u.action == Some(UnitAction::Restart))
    else {
        return vec![];
    };
    changes
        .iter()
        .filter(|c| c.action == Action::Delete)
        .filter_map(|c| match &c.item {
            Item::IpvsDestination {
                service,
                destination,
                ..
            } => Some(format!(
                "real server {destination} removed from {service} while {host} restarts {}: \
                 no drain, its connections end at once; apply twice (first only the removal, \
                 then the other changes) to drain it",
                unit.unit
            )),
            _ => None,
        })
        .collect()
}

impl UnitPlan {
    /// The plan's line for a restart or a reload (a start is a change already).
    pub fn describe(&self) -> Option<String> {
        let what = match self.action? {
            UnitAction::Start => return None,
            UnitAction::Restart if self.vip_handover => format!(
                "restart {} (VIP handover if this director holds the VIP): {}",
                self.unit, self.why
            ),
            UnitAction::Restart => format!("restart {}: {}", self.unit, self.why),
            UnitAction::Reload => format!(
                "reload {} (SIGHUP, no VIP movement): {}",
                self.unit, self.why
            ),
        };
        Some(what)
    }
}

/// What apply does to each of `want`'s units once `changes` are made (pure):
/// `enable --now` when it does not run; a restart when its unit file or
/// binary changed, when a director's config changed in what the daemon only
/// reads at start ([`director_restart_reason`]), or when a real server's
/// addresses/routes drifted (its oneshot unit re-adds them); a reload
/// (SIGHUP, no VIP movement) when only the director's config or the IPVS
/// table differs.
pub fn unit_plans(
    cluster: &str,
    want: &HostState,
    obs: &Observed,
    changes: &[Change],
) -> Vec<UnitPlan> {
    let file_changed = |p: &str| {
        changes
            .iter()
            .any(|c| matches!(&c.item, Item::File { path, .. } if path == p))
    };
    let binary = changes
        .iter()
        .any(|c| matches!(c.item, Item::Binary { .. }));
    let net_drift = changes
        .iter()
        .any(|c| matches!(c.item, Item::Address { .. } | Item::Route { .. }));
    let ipvs_drift = changes.iter().any(|c| {
        matches!(
            c.item,
            Item::IpvsService { .. } | Item::IpvsDestination { .. }
        )
    });
    let director = matches!(want.role, Role::Director { .. });
    let config_path = crate::desired::director_config_path(cluster);
    let config_changed = director && file_changed(&config_path);
    let mut plans = Vec::new();
    for u in &want.units {
        let (enabled, active) = obs.units.get(&u.name).copied().unwrap_or((false, false));
        let unit_file_changed = file_changed(&crate::desired::unit_path(&u.name));
        let mut p = UnitPlan {
            unit: u.name.clone(),
            enable: !enabled,
            action: None,
            why: String::new(),
            vip_handover: false,
        };
        if !active {
            p.action = Some(UnitAction::Start);
            p.enable = true;
            p.why = "it does not run".into();
        } else {
            let config_restart = if config_changed {
                director_restart_reason(&config_path, want, obs)
            } else {
                None
            };
            let restart = if unit_file_changed {
                Some("its unit file changed".to_string())
            } else if binary {
                Some("its binary changed".to_string())
            } else if let Some(why) = config_restart {
                Some(why)
            } else if !director && net_drift {
                Some("to put its addresses and routes back".to_string())
            } else {
                None
            };
            if let Some(why) = restart {
                p.action = Some(UnitAction::Restart);
                p.why = why;
                p.vip_handover = director;
            } else if director && (config_changed || ipvs_drift) {
                p.action = Some(UnitAction::Reload);
                p.why = if config_changed {
                    "config changed".into()
                } else {
                    "IPVS table drifted".into()
                };
            }
        }
        if p.enable || p.action.is_some() {
            plans.push(p);
        }
    }
    plans
}

/// Why a changed director.toml needs a restart, not a reload: the running
/// daemon refuses a SIGHUP that changes `[vrrp]` (priority, interval,
/// `vrrp_unicast`, `sync_daemon`…), `vip`, `interface`, `[nat]` or `metrics`
/// ([`restart_needed`]) and keeps the old config, so a reload would leave the
/// change on disk but not in force. A restart hands the VIP over gracefully
/// first. An old file that is missing or unreadable: the running config is
/// unknown, restart.
/// The new side is `desired`'s typed config (no text round trip); the old
/// one comes from the host as text and is parsed here, once.
fn director_restart_reason(path: &str, want: &HostState, obs: &Observed) -> Option<String> {
    let new = want.director_config.as_ref()?;
    let Some(old) = obs.files.get(path) else {
        return Some("its config was missing: what it runs is unknown".into());
    };
    match DirectorConfig::parse(old) {
        Ok(old) => restart_needed(&old, new)
            .map(|what| format!("{what} changed in its config: a reload cannot apply that")),
        Err(_) => Some("its old config does not parse: what it runs is unknown".into()),
    }
}

fn service_detail(s: &VirtualService) -> String {
    match (s.persistence_secs, s.persistence_netmask) {
        (Some(p), Some(m)) => format!("scheduler {}, persistent {p}s per /{m}", s.scheduler),
        (Some(p), None) => format!("scheduler {}, persistent {p}s", s.scheduler),
        _ => format!("scheduler {}", s.scheduler),
    }
}

fn dest_detail(d: &Destination) -> String {
    format!(
        "{} {}:{}, weight {}",
        d.forward, d.address, d.port, d.weight
    )
}

fn diff_ipvs(
    want: &[VirtualService],
    have: &[VirtualService],
    changes: &mut Vec<Change>,
    notes: &mut Vec<String>,
) {
    let key = VirtualService::key;
    for w in want {
        let label = w.label();
        let h = have.iter().find(|h| key(h) == key(w));
        let service_item = Item::IpvsService {
            service: label.clone(),
            scheduler: w.scheduler.clone(),
            persistence: w.persistence_secs,
        };
        match h {
            None => changes.push(Change {
                action: Action::Create,
                item: service_item,
                summary: format!("add IPVS service {label} ({})", service_detail(w)),
                diff: None,
            }),
            Some(h)
                if h.scheduler != w.scheduler
                    || h.persistence_secs != w.persistence_secs
                    || h.persistence_netmask != w.persistence_netmask =>
            {
                changes.push(Change {
                    action: Action::Update,
                    item: service_item,
                    summary: format!(
                        "change IPVS service {label}: {} → {}",
                        service_detail(h),
                        service_detail(w)
                    ),
                    diff: None,
                })
            }
            Some(_) => {}
        }
        let have_dests: &[Destination] = h.map_or(&[], |h| &h.destinations);
        for d in &w.destinations {
            let dest = format!("{}:{}", d.address, d.port);
            let item = Item::IpvsDestination {
                service: label.clone(),
                destination: dest.clone(),
                forward: d.forward.to_string(),
                weight: d.weight,
            };
            match have_dests
                .iter()
                .find(|x| x.address == d.address && x.port == d.port)
            {
                None => changes.push(Change {
                    action: Action::Create,
                    item,
                    summary: format!(
                        "add IPVS destination {label} -> {} ({}: {})",
                        dest,
                        d.name,
                        dest_detail(d)
                    ),
                    diff: None,
                }),
                Some(x) if x.weight != d.weight || x.forward != d.forward => changes.push(Change {
                    action: Action::Update,
                    item,
                    summary: format!(
                        "change IPVS destination {label} -> {dest} ({}): {} → {}",
                        d.name,
                        dest_detail(x),
                        dest_detail(d)
                    ),
                    diff: None,
                }),
                Some(_) => {}
            }
        }
        if let Some(ss) = &w.sorry_server {
            let in_use = have_dests
                .iter()
                .any(|x| x.address == ss.address && x.port == ss.port);
            notes.push(if in_use {
                format!(
                    "{label}: sorry server {}:{} in use (no real server can take a connection): the daemon removes it when one can",
                    ss.address, ss.port
                )
            } else {
                format!(
                    "{label}: sorry server {}:{} ({}, weight 1) is added by the daemon while no real server can take a connection",
                    ss.address, ss.port, ss.forward
                )
            });
        }
        for x in have_dests {
            let is_sorry = w
                .sorry_server
                .as_ref()
                .is_some_and(|ss| ss.address == x.address && ss.port == x.port);
            if !is_sorry
                && !w
                    .destinations
                    .iter()
                    .any(|d| d.address == x.address && d.port == x.port)
            {
                changes.push(Change {
                    action: Action::Delete,
                    item: Item::IpvsDestination {
                        service: label.clone(),
                        destination: format!("{}:{}", x.address, x.port),
                        forward: x.forward.to_string(),
                        weight: x.weight,
                    },
                    summary: format!(
                        "remove IPVS destination {label} -> {}:{} (not in cluster.toml)",
                        x.address, x.port
                    ),
                    diff: None,
                });
            }
        }
    }
    for h in have {
        if !want.iter().any(|w| key(w) == key(h)) {
            notes.push(format!(
                "IPVS service {} is not lvsup's: left alone",
                h.label()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::desired::desired_cluster;

    fn spec() -> ClusterSpec {
        let path = format!("{}/examples/dr.toml", env!("CARGO_MANIFEST_DIR"));
        config::load(std::path::Path::new(&path)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// What a host that `apply` converged would report.
    fn converged(h: &HostState) -> Observed {
        Observed {
            files: h
                .files
                .iter()
                .map(|f| (f.path.clone(), f.content.clone()))
                .collect(),
            binary_current: true,
            modules_loaded: h.modules.iter().cloned().collect(),
            sysctls: h
                .sysctls
                .iter()
                .map(|s| (s.key.clone(), s.value.clone()))
                .collect(),
            units: h
                .units
                .iter()
                .map(|u| (u.name.clone(), (true, true)))
                .collect(),
            addresses: h
                .addresses
                .iter()
                .map(|a| (a.interface.to_string(), a.address.to_string()))
                .collect(),
            routes: h
                .routes
                .iter()
                .map(|r| format!("{} via {}", r.destination, r.via))
                .collect(),
            ipvs: h.ipvs.clone(),
            verify_leftovers: BTreeMap::new(),
            notes: vec![],
        }
    }

    #[test]
    fn converged_fwmark_director_with_its_sorry_server_in_use_has_no_changes() {
        let path = format!("{}/examples/fwmark.toml", env!("CARGO_MANIFEST_DIR"));
        let spec = config::load(std::path::Path::new(&path)).unwrap_or_else(|e| panic!("{e}"));
        let d = desired_cluster(&spec).expect("render");
        let h = d
            .hosts
            .iter()
            .find(|h| h.name == "lvs191")
            .expect("director");
        let mut obs = converged(h);
        // as read back from the host: no sorry_server field, the sorry
        // server a destination (both real servers down)
        let mut live = h.ipvs[0].clone();
        let sorry = live.sorry_server.take().expect("sorry server");
        for d in &mut live.destinations {
            d.weight = 0;
        }
        live.destinations.push(sorry);
        obs.ipvs = vec![live];
        let hp = diff_host(&spec.name, h, &obs);
        let ipvs: Vec<&Change> = hp
            .changes
            .iter()
            .filter(|c| {
                matches!(
                    c.item,
                    Item::IpvsDestination { .. } | Item::IpvsService { .. }
                )
            })
            .collect();
        // the weights are the daemon's (health); the sorry server is not drift
        assert!(
            ipvs.iter().all(|c| c.action == Action::Update),
            "{:#?}",
            hp.changes
        );
        assert!(
            hp.notes
                .iter()
                .any(|n| n.contains("FWM 1: sorry server 192.168.0.180:0 in use")),
            "{:#?}",
            hp.notes
        );
        // the netmask is compared
        let mut obs = converged(h);
        obs.ipvs[0].persistence_netmask = None;
        let hp = diff_host(&spec.name, h, &obs);
        assert!(
            hp.changes.iter().any(|c| c.summary
                == "change IPVS service FWM 1: scheduler wlc, persistent 1800s → scheduler wlc, persistent 1800s per /24"),
            "{:#?}",
            hp.changes
        );
    }

    #[test]
    fn converged_hosts_have_no_changes() {
        let spec = spec();
        let d = desired_cluster(&spec).expect("render");
        let obs: BTreeMap<String, Observed> = d
            .hosts
            .iter()
            .map(|h| (h.name.clone(), converged(h)))
            .collect();
        let p = plan(&spec, &d, |n| obs.get(n), false);
        assert!(!p.has_changes(), "{}", p.render_text());
        assert!(p.render_text().contains("No changes"));
    }

    #[test]
    fn drift_by_hand_shows_as_precise_changes() {
        let spec = spec();
        let d = desired_cluster(&spec).expect("render");
        let lvs191 = d.hosts.iter().find(|h| h.name == "lvs191").expect("host");
        let mut obs = converged(lvs191);
        // someone ran `ipvsadm -e ... -w 5` and `ipvsadm -d ... -r node2`, added a service of
        // their own, and edited the sysctl file by hand
        obs.ipvs[0].destinations[0].weight = 5;
        obs.ipvs[0].destinations.remove(1);
        let mut foreign = obs.ipvs[0].clone();
        foreign.port = 443;
        obs.ipvs.push(foreign);
        obs.sysctls
            .insert("net.ipv4.vs.expire_nodest_conn".into(), "0".into());
        let hp = diff_host(&spec.name, lvs191, &obs);
        let summaries: Vec<&str> = hp.changes.iter().map(|c| c.summary.as_str()).collect();
        assert_eq!(
            summaries,
            [
                "set net.ipv4.vs.expire_nodest_conn = 1 (now 0)",
                "change IPVS destination TCP 192.168.0.100:80 -> 192.168.0.171:80 (node1): Route 192.168.0.171:80, weight 5 → Route 192.168.0.171:80, weight 100",
                "add IPVS destination TCP 192.168.0.100:80 -> 192.168.0.172:80 (node2: Route 192.168.0.172:80, weight 100)",
            ]
        );
        assert!(
            hp.notes
                .iter()
                .any(|n| n.contains("TCP 192.168.0.100:443 is not lvsup's"))
        );
    }

    #[test]
    fn changed_file_is_an_update_with_a_unified_diff() {
        let spec = spec();
        let d = desired_cluster(&spec).expect("render");
        let node1 = &d.hosts[0];
        let mut obs = converged(node1);
        let path = node1.files[0].path.clone();
        obs.files
            .insert(path.clone(), "net.ipv4.conf.all.arp_ignore = 0\n".into());
        let hp = diff_host(&spec.name, node1, &obs);
        assert_eq!(hp.changes.len(), 1);
        let c = &hp.changes[0];
        assert_eq!(c.action, Action::Update);
        let diff = c.diff.as_deref().expect("diff");
        assert!(
            diff.starts_with(&format!("--- {path}\n+++ {path}\n")),
            "{diff}"
        );
        assert!(diff.contains("-net.ipv4.conf.all.arp_ignore = 0"));
        assert!(diff.contains("+net.ipv4.conf.all.arp_ignore = 1"));
    }

    /// lvs191 (the master) of examples/dr.toml, converged, then `edit`ed.
    fn master_units(edit: impl FnOnce(&HostState, &mut Observed)) -> Vec<UnitPlan> {
        let spec = spec();
        let d = desired_cluster(&spec).expect("render");
        let lvs191 = d.hosts.iter().find(|h| h.name == "lvs191").expect("host");
        let mut obs = converged(lvs191);
        edit(lvs191, &mut obs);
        diff_host(&spec.name, lvs191, &obs).units
    }

    fn config_path() -> String {
        crate::desired::director_config_path("web")
    }

    #[test]
    fn converged_director_neither_reloads_nor_restarts() {
        assert_eq!(master_units(|_, _| {}), vec![]);
    }

    #[test]
    fn weight_edit_in_director_config_is_a_reload_without_vip_movement() {
        let units = master_units(|_, obs| {
            let c = obs.files.get_mut(&config_path()).expect("config");
            *c = c.replacen("weight = 100", "weight = 7", 1);
        });
        assert_eq!(units.len(), 1, "{units:?}");
        assert_eq!(units[0].action, Some(UnitAction::Reload));
        assert!(!units[0].vip_handover);
        assert_eq!(units[0].why, "config changed");
        assert_eq!(
            units[0].describe().as_deref(),
            Some("reload lvsup-director-web.service (SIGHUP, no VIP movement): config changed")
        );
    }

    #[test]
    fn ipvs_drift_alone_is_a_reload() {
        let units = master_units(|_, obs| obs.ipvs[0].destinations[0].weight = 5);
        assert_eq!(units[0].action, Some(UnitAction::Reload));
        assert_eq!(units[0].why, "IPVS table drifted");
    }

    #[test]
    fn what_a_reload_cannot_apply_is_a_restart_with_vip_handover() {
        // the file on the host says a different priority: [vrrp] differs
        let units = master_units(|_, obs| {
            let c = obs.files.get_mut(&config_path()).expect("config");
            assert!(c.contains("priority = 150"), "{c}");
            *c = c.replacen("priority = 150", "priority = 140", 1);
        });
        assert_eq!(units[0].action, Some(UnitAction::Restart));
        assert!(units[0].vip_handover);
        assert_eq!(
            units[0].why,
            "[vrrp] changed in its config: a reload cannot apply that"
        );
        // a missing or unreadable old config: what runs is unknown
        let units = master_units(|_, obs| {
            obs.files.remove(&config_path());
        });
        assert_eq!(units[0].action, Some(UnitAction::Restart));
        assert!(units[0].why.contains("missing"), "{:?}", units[0]);
        let units = master_units(|_, obs| {
            obs.files.insert(config_path(), "[[[".into());
        });
        assert!(units[0].why.contains("does not parse"), "{:?}", units[0]);
    }

    #[test]
    fn new_binary_or_unit_file_restarts_and_wins_over_a_reload() {
        let units = master_units(|_, obs| {
            obs.binary_current = false;
            obs.ipvs[0].destinations[0].weight = 5;
        });
        assert_eq!(units[0].action, Some(UnitAction::Restart));
        assert_eq!(units[0].why, "its binary changed");
        let units = master_units(|want, obs| {
            let unit = crate::desired::unit_path(&want.units[0].name);
            obs.files.insert(unit, "old unit".into());
        });
        assert_eq!(units[0].action, Some(UnitAction::Restart));
        assert_eq!(units[0].why, "its unit file changed");
    }

    /// A real server removed while the director restarts is deleted at once
    /// (issue 12 item 4: the restarted daemon starts from the file, there is
    /// no drain): the plan says so per director, with the way round it; a
    /// reload drains, so no warning there.
    #[test]
    fn removal_during_a_restart_warns_that_there_is_no_drain() {
        let spec = spec();
        let d = desired_cluster(&spec).expect("render");
        let lvs191 = d.hosts.iter().find(|h| h.name == "lvs191").expect("host");
        let removed = |obs: &mut Observed| {
            let mut gone = obs.ipvs[0].destinations[0].clone();
            gone.address = "192.168.0.179".parse().expect("ip");
            obs.ipvs[0].destinations.push(gone);
        };
        let mut obs = converged(lvs191);
        removed(&mut obs);
        obs.binary_current = false;
        let hp = diff_host(&spec.name, lvs191, &obs);
        assert_eq!(hp.units[0].action, Some(UnitAction::Restart));
        let label = obs.ipvs[0].label();
        assert_eq!(
            hp.warnings,
            [format!(
                "real server 192.168.0.179:80 removed from {label} while lvs191 restarts \
                 lvsup-director-web.service: no drain, its connections end at once; apply twice \
                 (first only the removal, then the other changes) to drain it"
            )]
        );
        let plan = Plan {
            cluster: "web".into(),
            mode: spec.mode,
            vip: spec.vip.to_string(),
            other_vips: vec![],
            offline: false,
            hosts: vec![hp.clone()],
            errors: vec![],
        };
        assert!(
            plan.render_text()
                .contains("\n  ! warning: real server 192.168.0.179:80 removed from "),
            "{}",
            plan.render_text()
        );
        let json = serde_json::to_value(&hp).expect("json");
        assert_eq!(json["warnings"][0], hp.warnings[0].as_str());
        // the removal alone is a reload, which drains: no warning
        let mut obs = converged(lvs191);
        removed(&mut obs);
        let hp = diff_host(&spec.name, lvs191, &obs);
        assert_eq!(hp.units[0].action, Some(UnitAction::Reload));
        assert!(hp.warnings.is_empty(), "{:?}", hp.warnings);
        // a restart that removes nothing: no warning, none in the JSON
        let mut obs = converged(lvs191);
        obs.binary_current = false;
        let hp = diff_host(&spec.name, lvs191, &obs);
        assert!(hp.warnings.is_empty(), "{:?}", hp.warnings);
        assert!(
            serde_json::to_value(&hp)
                .expect("json")
                .get("warnings")
                .is_none()
        );
    }

    #[test]
    fn stopped_unit_starts_and_disabled_unit_is_enabled() {
        let units = master_units(|want, obs| {
            obs.units.insert(want.units[0].name.clone(), (false, false));
            obs.binary_current = false;
        });
        assert_eq!(units[0].action, Some(UnitAction::Start));
        assert!(units[0].enable);
        // a start is a change of the plan already: no extra line
        assert_eq!(units[0].describe(), None);
        let units = master_units(|want, obs| {
            obs.units.insert(want.units[0].name.clone(), (false, true));
        });
        assert_eq!(units[0].action, None);
        assert!(units[0].enable);
    }

    #[test]
    fn real_server_address_drift_restarts_its_unit_without_vip_handover() {
        let spec = spec();
        let d = desired_cluster(&spec).expect("render");
        let node1 = &d.hosts[0];
        let mut obs = converged(node1);
        obs.addresses.clear();
        let units = diff_host(&spec.name, node1, &obs).units;
        assert_eq!(units[0].action, Some(UnitAction::Restart));
        assert!(!units[0].vip_handover);
        assert_eq!(
            units[0].describe().as_deref(),
            Some("restart lvsup-realserver-web.service: to put its addresses and routes back")
        );
    }

    #[test]
    fn host_output_in_the_plan_is_printed_escaped() {
        let spec = spec();
        let d = desired_cluster(&spec).expect("render");
        let node1 = &d.hosts[0];
        let mut obs = converged(node1);
        // a host's file and a note carry terminal escapes
        let path = node1.files[0].path.clone();
        obs.files
            .insert(path, "x = 1\u{1b}]0;owned\u{7}\r\n".into());
        obs.notes.push("health \u{1b}[2J".into());
        let mut p = plan(&spec, &d, |n| (n == "node1").then_some(&obs), false);
        p.errors.push(HostError {
            host: "lvs191".into(),
            step: "gather facts".into(),
            message: "bash: \u{9b}31m".into(),
        });
        let text = p.render_text();
        for c in ['\u{1b}', '\u{7}', '\r', '\u{9b}'] {
            assert!(!text.contains(c), "raw {c:?} in {text:?}");
        }
        assert!(text.contains("-x = 1\\u{1b}]0;owned\\u{7}"), "{text}");
        assert!(text.contains("= health \\u{1b}[2J"), "{text}");
        assert!(text.contains("bash: \\u{9b}31m"), "{text}");
    }
}
