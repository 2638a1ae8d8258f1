//! Saved plans (`lvsup plan -o PLANFILE`, `lvsup apply PLANFILE`), like
//! Terraform's: the plan as JSON with what it was made from (the cluster
//! file's SHA-256, the director binary's, and per host a digest of its
//! facts), so that `apply PLANFILE` can refuse a stale plan and otherwise
//! apply exactly it, without asking again (pure; the command line reads and
//! writes the file).
//!
//! The facts digest is the SHA-256 of the parsed facts the plan is made
//! from (canonical JSON): everything lvsup observes of its files, units,
//! modules, sysctls, addresses, routes and IPVS table (without the
//! connection counters), the installed binary and the host's OS. So any
//! change on a host that could change its plan changes the digest; traffic
//! (IPVS counters) and the daemon's status report do not.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{BinarySource, Live};
use crate::contract::sha256_hex;
use crate::observe::Facts;
use crate::plan::Plan;

/// The saved plan file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SavedPlan {
    pub format_version: u32,
    /// The lvsup that made it (another version plans differently).
    pub lvsup_version: String,
    pub cluster: String,
    /// The cluster file as given to `plan -f`.
    pub cluster_file: String,
    pub cluster_sha256: String,
    /// `--director-binary` when given (else the running lvsup).
    #[serde(default)]
    pub director_binary: Option<String>,
    pub director_binary_sha256: String,
    /// `--target`s (empty: every host).
    #[serde(default)]
    pub targets: Vec<String>,
    /// Host → facts digest, for every host planned.
    pub hosts: BTreeMap<String, String>,
    /// The plan as `plan --json` prints it (what is shown and applied).
    pub plan: serde_json::Value,
}

/// The facts a host's plan is made from, as digested.
#[derive(Serialize)]
struct DigestInput<'a> {
    os: &'a str,
    arch: &'a str,
    kernel: &'a str,
    glibc: &'a Option<String>,
    uid: &'a Option<u32>,
    systemd: bool,
    interfaces: &'a [crate::observe::Iface],
    modules: &'a BTreeMap<String, crate::observe::ModuleState>,
    binary_sha256: &'a Option<String>,
    previous_sysctls: &'a Option<BTreeMap<String, Option<String>>>,
    observed: &'a crate::plan::Observed,
}

/// The digest of a host's facts (hex SHA-256).
pub fn facts_digest(f: &Facts) -> String {
    let input = DigestInput {
        os: &f.os,
        arch: &f.arch,
        kernel: &f.kernel,
        glibc: &f.glibc,
        uid: &f.uid,
        systemd: f.systemd,
        interfaces: &f.interfaces,
        modules: &f.modules,
        binary_sha256: &f.binary_sha256,
        previous_sysctls: &f.previous_sysctls,
        observed: &f.observed,
    };
    // serializing plain data into a Vec cannot fail; an empty input would
    // still be a digest that differs from any real one
    let bytes = serde_json::to_vec(&input).unwrap_or_default();
    sha256_hex(&bytes)
}

/// The SHA-256 of the cluster file's bytes.
pub fn file_sha256(bytes: &[u8]) -> String {
    sha256_hex(bytes)
}

/// The plan's JSON without what is not applied (notes: health, floating
/// addresses), to compare a fresh plan with the saved one.
pub fn applied_part(plan: &serde_json::Value) -> serde_json::Value {
    let mut p = plan.clone();
    if let Some(hosts) = p.get_mut("hosts").and_then(|h| h.as_array_mut()) {
        for h in hosts {
            if let Some(o) = h.as_object_mut() {
                o.remove("notes");
            }
        }
    }
    p
}

/// Why a saved plan cannot be applied now; empty when it can (pure).
/// `now`: what `apply PLANFILE` found — the same fields, from the cluster
/// file, the binary and the facts gathered again.
pub fn stale_reasons(saved: &SavedPlan, now: &SavedPlan) -> Vec<String> {
    let mut why = Vec::new();
    if saved.lvsup_version != now.lvsup_version {
        why.push(format!(
            "the plan was made by lvsup {}, this is lvsup {}",
            saved.lvsup_version, now.lvsup_version
        ));
    }
    if saved.cluster_sha256 != now.cluster_sha256 {
        why.push(format!(
            "the cluster file {} changed since the plan was made (from {})",
            now.cluster_file, saved.cluster_file
        ));
    }
    if saved.director_binary_sha256 != now.director_binary_sha256 {
        why.push("the director binary is not the one the plan was made with".to_string());
    }
    let names: std::collections::BTreeSet<&String> =
        saved.hosts.keys().chain(now.hosts.keys()).collect();
    for h in names {
        match (saved.hosts.get(h), now.hosts.get(h)) {
            (Some(a), Some(b)) if a == b => {}
            (Some(_), Some(_)) => why.push(format!("host {h} changed since the plan was made")),
            (Some(_), None) => why.push(format!("host {h} could not be checked now")),
            (None, Some(_)) => why.push(format!("host {h} could not be planned then")),
            (None, None) => {}
        }
    }
    // same inputs make the same plan; a difference here is a bug, but
    // applying something else than what was shown must never happen
    if why.is_empty() && applied_part(&saved.plan) != applied_part(&now.plan) {
        why.push("the plan made now differs from the saved one".to_string());
    }
    why
}

/// The saved plan of `plan`, made from `live`'s facts, the cluster file
/// (`cluster_file` as given, its bytes) and the director binary (pure).
pub fn of(
    live: &Live,
    plan: &Plan,
    cluster_file: &str,
    cluster_bytes: &[u8],
    binary: &BinarySource,
    targets: &[String],
) -> SavedPlan {
    SavedPlan {
        format_version: 1,
        lvsup_version: env!("CARGO_PKG_VERSION").to_string(),
        cluster: live.spec.name.clone(),
        cluster_file: cluster_file.to_string(),
        cluster_sha256: file_sha256(cluster_bytes),
        director_binary: binary.explicit.then(|| binary.path.display().to_string()),
        director_binary_sha256: binary.sha256.clone(),
        targets: targets.to_vec(),
        hosts: live
            .hosts
            .iter()
            .filter_map(|h| {
                h.facts
                    .as_ref()
                    .ok()
                    .map(|f| (h.want.name.clone(), facts_digest(f)))
            })
            .collect(),
        plan: serde_json::to_value(plan).unwrap_or(serde_json::Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        let mut f = Facts {
            os: "Linux".into(),
            arch: "x86_64".into(),
            ..Facts::default()
        };
        f.observed
            .files
            .insert("/etc/lvsup/web/director.toml".into(), "a = 1\n".into());
        f.observed
            .sysctls
            .insert("net.ipv4.ip_forward".into(), "1".into());
        f
    }

    #[test]
    fn any_change_of_what_a_plan_is_made_from_changes_the_digest() {
        let base = facts_digest(&facts());
        assert_eq!(base, facts_digest(&facts()), "deterministic");
        assert_eq!(base.len(), 64);
        type Change = Box<dyn Fn(&mut Facts)>;
        let changes: Vec<Change> = vec![
            Box::new(|f| {
                f.observed
                    .files
                    .insert("/etc/lvsup/web/director.toml".into(), "a = 2\n".into());
            }),
            Box::new(|f| {
                f.observed
                    .sysctls
                    .insert("net.ipv4.ip_forward".into(), "0".into());
            }),
            Box::new(|f| {
                f.observed
                    .addresses
                    .insert(("lo".into(), "192.0.2.1/32".into()));
            }),
            Box::new(|f| {
                f.observed.routes.insert("default via 192.0.2.254".into());
            }),
            Box::new(|f| {
                f.observed
                    .units
                    .insert("lvsup-web.service".into(), (true, false));
            }),
            Box::new(|f| {
                f.observed.modules_loaded.insert("ip_vs".into());
            }),
            Box::new(|f| f.observed.binary_current = true),
            Box::new(|f| f.binary_sha256 = Some("ab".into())),
            Box::new(|f| f.previous_sysctls = Some(BTreeMap::new())),
            Box::new(|f| f.kernel = "6.1".into()),
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut f = facts();
            change(&mut f);
            assert_ne!(facts_digest(&f), base, "change {i} kept the digest");
        }
        // what is not state does not count: notes, the daemon's report
        let mut f = facts();
        f.observed.notes.push("rs1 at weight 0".into());
        f.daemon = Some(Ok(crate::contract::status::tests::sample()));
        assert_eq!(facts_digest(&f), base);
    }

    fn saved() -> SavedPlan {
        SavedPlan {
            format_version: 1,
            lvsup_version: "0.1.0".into(),
            cluster: "web".into(),
            cluster_file: "web.toml".into(),
            cluster_sha256: "c1".into(),
            director_binary: None,
            director_binary_sha256: "b1".into(),
            targets: vec![],
            hosts: [
                ("rs1".to_string(), "d1".to_string()),
                ("lvs1".into(), "d2".into()),
            ]
            .into_iter()
            .collect(),
            plan: serde_json::json!({"cluster": "web", "hosts": [{"host": "rs1", "changes": [1], "notes": ["a"]}]}),
        }
    }

    #[test]
    fn a_plan_is_stale_when_anything_it_was_made_from_changed() {
        let s = saved();
        assert_eq!(stale_reasons(&s, &s.clone()), Vec::<String>::new());
        // notes are not applied: a different note is not staleness
        let mut now = s.clone();
        now.plan = serde_json::json!({"cluster": "web", "hosts": [{"host": "rs1", "changes": [1], "notes": ["b"]}]});
        assert!(stale_reasons(&s, &now).is_empty());

        let mut now = s.clone();
        now.hosts.insert("rs1".into(), "d9".into());
        assert_eq!(
            stale_reasons(&s, &now),
            vec!["host rs1 changed since the plan was made".to_string()]
        );
        let mut now = s.clone();
        now.hosts.remove("lvs1");
        assert_eq!(
            stale_reasons(&s, &now),
            vec!["host lvs1 could not be checked now".to_string()]
        );
        let mut now = s.clone();
        now.cluster_sha256 = "c2".into();
        assert!(stale_reasons(&s, &now)[0].starts_with("the cluster file web.toml changed"));
        let mut now = s.clone();
        now.director_binary_sha256 = "b2".into();
        assert!(stale_reasons(&s, &now)[0].contains("director binary"));
        let mut now = s.clone();
        now.lvsup_version = "0.2.0".into();
        assert!(stale_reasons(&s, &now)[0].contains("lvsup 0.1.0"));
        // same inputs, another plan: refused all the same
        let mut now = s.clone();
        now.plan = serde_json::json!({"cluster": "web", "hosts": []});
        assert_eq!(
            stale_reasons(&s, &now),
            vec!["the plan made now differs from the saved one".to_string()]
        );
    }

    #[test]
    fn the_file_round_trips() {
        let s = saved();
        let text = serde_json::to_string_pretty(&s).expect("json");
        assert!(text.starts_with("{\n  \"format_version\": 1,"), "{text}");
        let back: SavedPlan = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, s);
        assert!(serde_json::from_str::<SavedPlan>("{\"format_version\": 1}").is_err());
    }
}
