//! From a host's plan and facts to the ordered steps that converge it (pure).
//! Each step is a sentence plus what to run; the runner executes them one by
//! one and stops the host at the first failure, so the summary can say
//! exactly what was and was not done.
//!
//! Order on one host: binary, files (atomically: temp file + rename in the
//! same directory), modules (modprobe now; modules-load.d keeps them), the
//! previous values of the sysctls (what destroy restores), sysctls
//! (`systemd-sysctl FILE`: the same code path as boot), `daemon-reload` only
//! when a unit file changed, then the unit: `enable --now` when it does not
//! run, `reload` (SIGHUP, no VIP movement) when only the director's config or
//! the IPVS table differs, `restart` when its unit file or binary changed, or
//! its config changed in what the daemon only reads at start (`[vrrp]`, `vip`,
//! `interface`, `[nat]`, `metrics`), or a real server's address/route drifted (the
//! oneshot unit re-adds them).

use std::fmt::Write as _;

use serde::Serialize;

use crate::config::ClusterSpec;
use crate::desired::{self, HostState, Role};
use crate::director::config::DirectorConfig;
use crate::director::config::restart_needed;
use crate::plan::{HostPlan, Item};
use crate::remote::facts::{Facts, previous_sysctl_path};
use crate::remote::shell_quote;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// What the step does, in a few words (the progress line and the summary).
    pub what: String,
    pub action: StepAction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepAction {
    /// A shell script run with `sh -s`.
    Script { script: String },
    /// Stream the director binary to `path` (temp file + rename).
    UploadBinary { path: String },
    /// Read the current values of `keys` on the host, add those not yet
    /// recorded to the previous-values file (what destroy restores).
    RecordSysctls { keys: Vec<String> },
}

fn script(what: impl Into<String>, s: String) -> Step {
    Step {
        what: what.into(),
        action: StepAction::Script { script: s },
    }
}

/// Write `content` to `path` atomically: a temp file in the same directory,
/// mode set, then `mv` over the old one.
pub fn write_file_script(path: &str, mode: u32, content: &str) -> String {
    let p = shell_quote(path);
    format!(
        "set -e\n\
         umask 022\n\
         d=$(dirname {p})\n\
         mkdir -p \"$d\"\n\
         t=$(mktemp \"$d/.lvsup.XXXXXX\")\n\
         trap 'rm -f \"$t\"' EXIT\n\
         printf '%s' {} > \"$t\"\n\
         chmod {mode:04o} \"$t\"\n\
         mv -f \"$t\" {p}\n\
         trap - EXIT\n",
        shell_quote(content)
    )
}

/// The script that uploads a binary (data on stdin).
pub fn upload_script(path: &str) -> String {
    let p = shell_quote(path);
    format!(
        "set -e; d=$(dirname {p}); mkdir -p \"$d\"; t=$(mktemp \"$d/.lvsup.XXXXXX\"); \
         trap 'rm -f \"$t\"' EXIT; cat > \"$t\"; chmod 0755 \"$t\"; mv -f \"$t\" {p}; trap - EXIT"
    )
}

const SYSTEMD_SYSCTL: &str = "for p in /usr/lib/systemd/systemd-sysctl /lib/systemd/systemd-sysctl; do \
     if [ -x \"$p\" ]; then exec \"$p\" \"$1\"; fi; done; exec sysctl -p \"$1\"";

/// The unit is active afterwards, or the step fails with the unit's last log lines.
fn check_active(unit: &str) -> String {
    let u = shell_quote(unit);
    format!(
        "sleep 0.3\n\
         if ! systemctl is-active --quiet {u}; then\n  \
           echo \"unit {unit} is $(systemctl is-active {u}) after starting it:\" >&2\n  \
           journalctl -u {u} -n 8 --no-pager -o cat >&2 || true\n  \
           exit 1\n\
         fi\n"
    )
}

/// The steps that bring a host from `facts` to `want`, given its plan `hp`.
pub fn steps_for(spec: &ClusterSpec, want: &HostState, hp: &HostPlan, facts: &Facts) -> Vec<Step> {
    let mut steps = Vec::new();
    if hp.changes.is_empty() {
        return steps;
    }
    let cluster = &spec.name;
    let mut changed_files: Vec<&str> = Vec::new();
    let mut binary = false;
    let mut modules: Vec<&str> = Vec::new();
    let mut sysctl_keys: Vec<String> = Vec::new();
    let mut net_drift = false;
    let mut ipvs_drift = false;
    for c in &hp.changes {
        match &c.item {
            Item::File { path, .. } => changed_files.push(path),
            Item::Binary { .. } => binary = true,
            Item::Module { name } => modules.push(name),
            Item::Sysctl { key, .. } => sysctl_keys.push(key.clone()),
            Item::Unit { .. } => {}
            Item::Address { .. } | Item::Route { .. } => net_drift = true,
            Item::IpvsService { .. } | Item::IpvsDestination { .. } => ipvs_drift = true,
        }
    }

    if binary {
        steps.push(Step {
            what: format!("upload the director binary to {}", desired::BINARY_PATH),
            action: StepAction::UploadBinary {
                path: desired::BINARY_PATH.into(),
            },
        });
    }
    for f in &want.files {
        if changed_files.contains(&f.path.as_str()) {
            steps.push(script(
                format!("write {}", f.path),
                write_file_script(&f.path, f.mode, &f.content),
            ));
        }
    }
    if !modules.is_empty() {
        let list: Vec<String> = modules.iter().map(|m| shell_quote(m)).collect();
        steps.push(script(
            format!("load kernel modules {}", modules.join(", ")),
            format!("modprobe -a {}\n", list.join(" ")),
        ));
    }
    // After the modules (ip_vs creates net.ipv4.vs.*), before anything can change a
    // sysctl: the values to restore on destroy.
    let recorded = facts.previous_sysctls.clone().unwrap_or_default();
    let unrecorded: Vec<String> = want
        .sysctls
        .iter()
        .map(|s| s.key.clone())
        .filter(|k| !recorded.contains_key(k))
        .collect();
    let sysctl_file = desired::sysctl_path(cluster);
    if !unrecorded.is_empty()
        && (!sysctl_keys.is_empty() || changed_files.contains(&sysctl_file.as_str()))
    {
        steps.push(Step {
            what: format!(
                "record current values of {} sysctls in {}",
                unrecorded.len(),
                previous_sysctl_path(cluster)
            ),
            action: StepAction::RecordSysctls { keys: unrecorded },
        });
    }

    // Modules first: the director's sysctls (net.ipv4.vs.*) exist once ip_vs is loaded.
    if !want.sysctls.is_empty()
        && (!sysctl_keys.is_empty() || changed_files.contains(&sysctl_file.as_str()))
    {
        steps.push(script(
            format!("apply sysctls from {sysctl_file}"),
            format!("set -- {}\n{SYSTEMD_SYSCTL}\n", shell_quote(&sysctl_file)),
        ));
    }
    let unit_files_changed = want
        .units
        .iter()
        .any(|u| changed_files.contains(&desired::unit_path(&u.name).as_str()));
    if unit_files_changed {
        steps.push(script(
            "systemctl daemon-reload",
            "systemctl daemon-reload\n".into(),
        ));
    }

    for u in &want.units {
        let (enabled, active) = facts
            .observed
            .units
            .get(&u.name)
            .copied()
            .unwrap_or((false, false));
        let unit_file_changed = changed_files.contains(&desired::unit_path(&u.name).as_str());
        let q = shell_quote(&u.name);
        let director = matches!(want.role, Role::Director { .. });
        let config_changed =
            director && changed_files.contains(&desired::director_config_path(cluster).as_str());
        if !active {
            steps.push(script(
                format!("enable and start {}", u.name),
                format!("systemctl enable --now {q}\n{}", check_active(&u.name)),
            ));
            continue;
        }
        if !enabled {
            steps.push(script(
                format!("enable {}", u.name),
                format!("systemctl enable {q}\n"),
            ));
        }
        let config_needs_restart = if config_changed {
            director_restart_reason(cluster, want, facts)
        } else {
            None
        };
        if unit_file_changed || binary || (!director && net_drift) || config_needs_restart.is_some()
        {
            let why = if unit_file_changed {
                "its unit file changed".to_string()
            } else if binary {
                "its binary changed".to_string()
            } else if let Some(why) = config_needs_restart {
                why
            } else {
                "to put its addresses and routes back".to_string()
            };
            steps.push(script(
                format!("restart {} ({why})", u.name),
                format!("systemctl restart {q}\n{}", check_active(&u.name)),
            ));
        } else if director && (config_changed || ipvs_drift) {
            let why = if config_changed {
                "config changed"
            } else {
                "IPVS table drifted"
            };
            steps.push(script(
                format!("reload {} ({why}: SIGHUP, no VIP movement)", u.name),
                format!("systemctl reload {q}\n{}", check_active(&u.name)),
            ));
        }
    }
    steps
}

/// Why a changed director.toml needs a restart, not a reload: the running
/// daemon refuses a SIGHUP that changes `[vrrp]` (priority, interval,
/// `vrrp_unicast`, `sync_daemon`…), `vip`, `interface`, `[nat]` or `metrics`
/// ([`restart_needed`]) and keeps the old config, so a reload would leave the
/// change on disk but not in force. A restart hands the VIP over gracefully
/// first. An old file that is missing or unreadable: the running config is
/// unknown, restart.
fn director_restart_reason(cluster: &str, want: &HostState, facts: &Facts) -> Option<String> {
    let path = desired::director_config_path(cluster);
    let new = want.files.iter().find(|f| f.path == path)?;
    let new = DirectorConfig::parse(&new.content).ok()?;
    let Some(old) = facts.observed.files.get(&path) else {
        return Some("its config was missing: what it runs is unknown".into());
    };
    match DirectorConfig::parse(old) {
        Ok(old) => restart_needed(&old, &new)
            .map(|what| format!("{what} changed in its config: a reload cannot apply that")),
        Err(_) => Some("its old config does not parse: what it runs is unknown".into()),
    }
}

/// One line per step, for `--dry-run`-like output and golden tests.
pub fn describe(steps: &[Step]) -> String {
    let mut s = String::new();
    for (i, st) in steps.iter().enumerate() {
        let _ = writeln!(s, "{}. {}", i + 1, st.what);
    }
    s
}
