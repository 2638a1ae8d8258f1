//! `lvsup destroy`: remove exactly what lvsup added, per host, from what the
//! facts show is there (so a second destroy finds nothing and does nothing):
//! units stopped and disabled (the director daemon hands the VIP over and
//! removes its IPVS services on SIGTERM; a real server's ExecStop removes its
//! VIP or route), leftovers of lvsup's own IPVS services and floating
//! addresses removed, files removed, sysctls restored to the values recorded
//! before apply changed them, except those another lvsup cluster on the host
//! still sets (left at its value, and said so: `crate::plan::shared`). Kernel modules stay loaded (other users may
//! need them); modules-load.d no longer loads them at boot.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use minijinja::context;
use minijinja::value::{Serde, Value};

use super::Live;
use super::run::{HostReport, Progress, Report, StepCtx, not_contacted, run_steps};
use super::steps::{Step, StepAction};
use crate::config::{ClusterSpec, Protocol};
use crate::desired::{self, HostState, Role};
use crate::layout;
use crate::observe::{Facts, managed_paths, previous_sysctl_path};
use crate::plan::shared::{self, SysctlFate};
use crate::script;

fn script_step(what: impl Into<String>, s: String) -> Step {
    Step {
        what: what.into(),
        action: StepAction::Script { script: s },
    }
}

/// One of lvsup's IPVS services, as remove-ipvs.sh.j2 names it.
#[derive(serde::Serialize)]
struct IpvsKey {
    /// `TCP 0A000064:0050` or `FWM 00000005`, as `/proc/net/ip_vs` shows it
    /// (spaces squeezed).
    key: String,
    /// `TCP 10.0.0.100:80`
    label: String,
    /// `-t`, `-u` or `-f`
    flag: &'static str,
    /// `10.0.0.100:80`, or a fwmark service's mark
    addr: String,
}

/// The steps that remove cluster `spec`'s traces from a host with `facts` (pure).
pub fn destroy_steps(spec: &ClusterSpec, want: &HostState, facts: &Facts) -> Vec<Step> {
    let c = &spec.name;
    let mut steps = Vec::new();
    let director = matches!(want.role, Role::Director { .. });
    for unit in [desired::director_unit(c), desired::realserver_unit(c)] {
        let present = facts.observed.units.contains_key(&unit)
            || facts
                .observed
                .files
                .contains_key(&desired::unit_path(&unit));
        if present {
            let why = if unit == desired::director_unit(c) {
                "the daemon hands the VIP over and removes its IPVS services"
            } else {
                "its ExecStop removes the VIP or route"
            };
            steps.push(script_step(
                format!("stop and disable {unit} ({why})"),
                script::render("stop-unit.sh.j2", context! { unit }),
            ));
        }
    }
    if director {
        // lvsup's own virtual services only, re-checked after the daemon stopped.
        let own: Vec<IpvsKey> = spec
            .services
            .iter()
            .filter(|s| {
                facts.ipvs.as_ref().is_some_and(|t| {
                    t.iter().any(|l| match &s.fwmark {
                        Some(f) => l.fwmark == Some(f.mark),
                        None => {
                            l.fwmark.is_none()
                                && l.vip == s.vip
                                && l.port == s.port
                                && l.protocol.eq_ignore_ascii_case(s.protocol.as_str())
                        }
                    })
                })
            })
            .map(|s| {
                if let Some(f) = &s.fwmark {
                    return IpvsKey {
                        key: format!("FWM {:08X}", f.mark),
                        label: format!("FWM {}", f.mark),
                        flag: "-f",
                        addr: f.mark.to_string(),
                    };
                }
                let flag = if s.protocol == Protocol::Udp {
                    "-u"
                } else {
                    "-t"
                };
                let key = format!(
                    "{} {:08X}:{:04X}",
                    if s.protocol == Protocol::Udp {
                        "UDP"
                    } else {
                        "TCP"
                    },
                    u32::from(s.vip),
                    s.port
                );
                IpvsKey {
                    key,
                    label: s.label(),
                    flag,
                    addr: format!("{}:{}", s.vip, s.port),
                }
            })
            .collect();
        if !own.is_empty() {
            steps.push(script_step(
                format!(
                    "remove lvsup's IPVS services left behind ({} of them; others untouched)",
                    own.len()
                ),
                script::render(
                    "remove-ipvs.sh.j2",
                    context! { services => Value::from(Serde(&own)) },
                ),
            ));
        }
        // lvsup's nftables table of the fwmark marks (the unit stopped
        // above no longer reloads it).
        let rules = desired::fwmark_rules_path(c);
        if spec.services.iter().any(|s| s.fwmark.is_some())
            || facts.observed.files.contains_key(&rules)
        {
            steps.push(super::steps::fwmark_removal_step(c, &rules));
        }
        let floating: Vec<std::net::Ipv4Addr> = want
            .addresses
            .iter()
            .map(|a| a.address.addr())
            .filter(|a| facts.holds(*a).is_some())
            .collect();
        if !floating.is_empty() {
            let list: Vec<String> = floating.iter().map(|a| a.to_string()).collect();
            steps.push(script_step(
                format!("release floating addresses still held: {}", list.join(", ")),
                script::render("release-addresses.sh.j2", context! { addresses => list }),
            ));
        }
    }
    let prev = previous_sysctl_path(c);
    let files: Vec<String> = managed_paths(c)
        .into_iter()
        .filter(|p| *p != prev && facts.observed.files.contains_key(p))
        .collect();
    if !files.is_empty() {
        let units_removed = files.iter().any(|f| f.starts_with("/etc/systemd/"));
        let s = script::render(
            "remove-files.sh.j2",
            context! {
                files => files.clone(),
                config_dir => layout::config_dir(c),
                config_root => layout::CONFIG_ROOT,
                state_dir => layout::state_dir(c),
                state_root => layout::STATE_ROOT,
                daemon_reload => units_removed,
            },
        );
        steps.push(script_step(format!("remove {}", files.join(", ")), s));
    }
    if director && facts.binary_sha256.is_some() {
        steps.push(script_step(
            format!(
                "remove {} unless another cluster's config is left in {}",
                desired::BINARY_PATH,
                layout::CONFIG_ROOT
            ),
            script::render(
                "remove-binary.sh.j2",
                context! { bin => desired::BINARY_PATH, config_root => layout::CONFIG_ROOT },
            ),
        ));
    }
    if facts.observed.files.contains_key(&prev) {
        // a sysctl another lvsup cluster on this host still sets stays as it sets it
        let others = shared::others(c, &facts.observed.files);
        let recorded = facts.previous_sysctls.clone().unwrap_or_default();
        let fates = shared::sysctl_fates(&recorded, &others);
        let mut kept = Vec::new();
        let sysctls: Vec<Value> = fates
            .iter()
            .map(|f| {
                if let SysctlFate::Keep {
                    key,
                    value,
                    cluster,
                } = f
                {
                    kept.push(shared::kept_message(key, value, cluster));
                }
                context! { path => format!("/proc/sys/{}", f.key().replace('.', "/")), value => f.value() }
            })
            .collect();
        let s = script::render(
            "restore-sysctls.sh.j2",
            context! {
                sysctls,
                prev,
                state_dir => layout::state_dir(c),
                state_root => layout::STATE_ROOT,
            },
        );
        let mut what = format!(
            "restore {} sysctls to their values before lvsup, forget them",
            fates.len() - kept.len()
        );
        for k in &kept {
            what.push_str("; ");
            what.push_str(k);
        }
        steps.push(script_step(what, s));
    }
    steps
}

/// What destroy would do: the steps for every host whose facts were gathered
/// (index into `live.hosts`, steps; pure).
pub fn plan(live: &Live) -> Vec<(usize, Vec<Step>)> {
    live.hosts
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            h.facts
                .as_ref()
                .ok()
                .map(|f| (i, destroy_steps(&live.spec, &h.want, f)))
        })
        .collect()
}

/// The destroy plan as shown before asking (pure).
pub fn render_plan(live: &Live, plans: &[(usize, Vec<Step>)]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Destroy cluster \"{}\":", live.spec.name);
    for h in &live.hosts {
        if let Err(e) = &h.facts {
            let _ = writeln!(
                out,
                "\n{}: ERROR at step \"{}\": {}",
                e.host, e.step, e.message
            );
        }
    }
    for (i, st) in plans {
        let name = &live.hosts[*i].want.name;
        if st.is_empty() {
            let _ = writeln!(
                out,
                "\n{name}: nothing of cluster \"{}\" here",
                live.spec.name
            );
        } else {
            let _ = writeln!(out, "\n{name}: {} steps", st.len());
            for s in st {
                let _ = writeln!(out, "  - {}", s.what);
            }
        }
    }
    out
}

/// Destroy in the reverse of apply order: the master first hands over...
/// then backups, then real servers (no director forwards to a bare host).
pub async fn run(live: &Live, plans: Vec<(usize, Vec<Step>)>, progress: &dyn Progress) -> Report {
    let mut reports: BTreeMap<String, HostReport> = BTreeMap::new();
    for h in &live.hosts {
        if let Err(e) = &h.facts {
            reports.insert(h.want.name.clone(), not_contacted(e));
        }
    }
    let by_index: BTreeMap<usize, Vec<Step>> = plans.into_iter().collect();
    for directors in [true, false] {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, h) in live.hosts.iter().enumerate() {
            if matches!(h.want.role, Role::Director { .. }) != directors {
                continue;
            }
            let (Some(steps), Some(conn)) = (by_index.get(&i), h.conn.clone()) else {
                continue;
            };
            let name = h.want.name.clone();
            if steps.is_empty() {
                reports.insert(name.clone(), HostReport::unchanged(name));
                continue;
            }
            let steps = steps.clone();
            let line = progress.host(&name);
            let ctx = StepCtx {
                binary: None,
                cluster: live.spec.name.clone(),
                limit: live.step_timeout,
            };
            let parallel = live.parallel.clone();
            tasks.spawn(async move {
                let _permit = parallel.acquire_owned().await;
                run_steps(&conn, &name, &steps, line.as_ref(), &ctx).await
            });
        }
        while let Some(r) = tasks.join_next().await {
            if let Ok(rep) = r {
                reports.insert(rep.host.clone(), rep);
            }
        }
    }
    Report {
        verb: "destroy".into(),
        hosts: live
            .hosts
            .iter()
            .rev()
            .filter_map(|h| reports.remove(&h.want.name))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sysctl_another_cluster_still_sets_is_kept_and_said_so() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/dr.toml");
        let spec = crate::config::load(std::path::Path::new(path)).expect("example");
        let d = desired::desired_cluster(&spec).expect("render");
        let want = d
            .hosts
            .iter()
            .find(|h| h.role == Role::RealServer)
            .expect("a real server");
        let prev = previous_sysctl_path(&spec.name);
        let mut f = Facts::default();
        let recorded: BTreeMap<String, Option<String>> = [
            ("net.ipv4.conf.all.arp_ignore", "0"),
            ("net.ipv4.conf.lo.arp_ignore", "0"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), Some(v.to_string())))
        .collect();
        f.previous_sysctls = Some(recorded);
        f.observed.files.insert(prev, "{}".into());
        f.observed.files.insert(
            "/etc/sysctl.d/90-lvsup-other.conf".into(),
            "net.ipv4.conf.all.arp_ignore = 1\n".into(),
        );
        let steps = destroy_steps(&spec, want, &f);
        let last = steps.last().expect("a restore step");
        assert_eq!(
            last.what,
            "restore 1 sysctls to their values before lvsup, forget them; \
             kept net.ipv4.conf.all.arp_ignore=1: cluster other still sets it"
        );
        let StepAction::Script { script } = &last.action else {
            panic!("not a script: {:?}", last.action)
        };
        assert!(
            script.contains("echo '1' > '/proc/sys/net/ipv4/conf/all/arp_ignore'")
                && script.contains("echo '0' > '/proc/sys/net/ipv4/conf/lo/arp_ignore'"),
            "{script}"
        );
        // without the other cluster, both go back to 0
        f.observed.files.remove("/etc/sysctl.d/90-lvsup-other.conf");
        let steps = destroy_steps(&spec, want, &f);
        let last = steps.last().expect("a restore step");
        assert_eq!(
            last.what,
            "restore 2 sysctls to their values before lvsup, forget them"
        );
    }
}
