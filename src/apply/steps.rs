//! From a host's plan and facts to the ordered steps that converge it (pure).
//! Each step is a sentence plus what to run; the runner executes them one by
//! one and stops the host at the first failure, so the summary can say
//! exactly what was and was not done.
//!
//! Order on one host: binary, files (atomically: temp file + rename in the
//! same directory), modules (modprobe now; modules-load.d keeps them), the
//! previous values of the sysctls (what destroy restores), sysctls
//! (`systemd-sysctl FILE`: the same code path as boot), `daemon-reload` only
//! when a unit file changed, then the unit as the plan decided it
//! ([`crate::plan::unit_plans`]: start, reload or restart, and why).

use std::fmt::Write as _;

use minijinja::context;
use minijinja::value::{Serde, Value};
use serde::Serialize;

use crate::config::ClusterSpec;
use crate::desired::{self, HostState};
use crate::observe::{Facts, previous_sysctl_path};
use crate::plan::{HostPlan, Item, UnitAction};
use crate::script;

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

fn script_step(what: impl Into<String>, s: String) -> Step {
    Step {
        what: what.into(),
        action: StepAction::Script { script: s },
    }
}

/// Write `content` to `path` atomically: a temp file in the same directory,
/// mode set, then `mv` over the old one.
pub fn write_file_script(path: &str, mode: u32, content: &str) -> String {
    script::render(
        "write-file.sh.j2",
        context! { path, content, mode => format!("{mode:04o}") },
    )
}

/// The script that uploads a binary (data on stdin) of `size` bytes and
/// SHA-256 `sha256` (hex) to `path`: into a temp file next to it, checked
/// (size, then hash) on the host, and only then renamed over the old one. A
/// stream cut short ends `cat` with EOF like a complete one; without the
/// check a truncated binary was installed with exit 0 and crashed at the
/// daemon's next start. On a mismatch the old binary stays and the temp file
/// goes.
pub fn upload_script(path: &str, size: usize, sha256: &str) -> String {
    script::render("upload.sh.j2", context! { path, size, sha256 })
}

/// The script that prints `KEY=VALUE` for each of `keys` (just `KEY` when
/// the host has no such sysctl): the values before lvsup changes them.
pub fn read_sysctls_script(keys: &[String]) -> String {
    script::render("read-sysctls.sh.j2", context! { keys => keys.to_vec() })
}

/// Remove lvsup's nftables table of `cluster`'s fwmark marks and its rules
/// file `rules` (apply, when no fwmark service is left; destroy).
pub fn fwmark_removal_step(cluster: &str, rules: &str) -> Step {
    let table = crate::layout::fwmark_table(cluster);
    script_step(
        format!("remove nftables table ip {table} and {rules}"),
        script::render(
            "remove-fwmark.sh.j2",
            context! { table, rules, nft => crate::layout::NFT_PATH },
        ),
    )
}

/// `systemctl VERB UNIT`; with `check`, the unit is active afterwards, or
/// the step fails with the unit's last log lines.
fn unit_script(verb: &str, unit: &str, check: bool) -> String {
    script::render("unit.sh.j2", context! { verb, unit, check })
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
    for c in &hp.changes {
        match &c.item {
            Item::File { path, .. } => changed_files.push(path),
            Item::Binary { .. } => binary = true,
            Item::Module { name } => modules.push(name),
            Item::Sysctl { key, .. } => sysctl_keys.push(key.clone()),
            // units, addresses, routes, IPVS: what the units do about them
            // is in `hp.units`
            Item::Unit { .. }
            | Item::Address { .. }
            | Item::Route { .. }
            | Item::IpvsService { .. }
            | Item::IpvsDestination { .. }
            // undone before the plan is made (crate::apply::gather)
            | Item::InterruptedVerify { .. } => {}
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
            steps.push(script_step(
                format!("write {}", f.path),
                write_file_script(&f.path, f.mode, &f.content),
            ));
        }
    }
    let rules = crate::layout::fwmark_rules_path(cluster);
    if changed_files.contains(&rules.as_str()) && !want.files.iter().any(|f| f.path == rules) {
        steps.push(fwmark_removal_step(cluster, &rules));
    }
    if !modules.is_empty() {
        steps.push(script_step(
            format!("load kernel modules {}", modules.join(", ")),
            script::render(
                "modprobe.sh.j2",
                context! { modules => Value::from(Serde(&modules)) },
            ),
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
        steps.push(script_step(
            format!("apply sysctls from {sysctl_file}"),
            script::render("apply-sysctls.sh.j2", context! { file => sysctl_file }),
        ));
    }
    let unit_files_changed = want
        .units
        .iter()
        .any(|u| changed_files.contains(&desired::unit_path(&u.name).as_str()));
    if unit_files_changed {
        steps.push(script_step(
            "systemctl daemon-reload",
            script::render("daemon-reload.sh.j2", context! {}),
        ));
    }

    // What to do to each unit was decided with the plan (shown before the
    // confirmation): [`crate::plan::unit_plans`].
    for u in &hp.units {
        match u.action {
            Some(UnitAction::Start) => {
                steps.push(script_step(
                    format!("enable and start {}", u.unit),
                    unit_script("enable --now", &u.unit, true),
                ));
                continue;
            }
            _ if u.enable => steps.push(script_step(
                format!("enable {}", u.unit),
                unit_script("enable", &u.unit, false),
            )),
            _ => {}
        }
        match u.action {
            Some(UnitAction::Restart) => steps.push(script_step(
                format!("restart {} ({})", u.unit, u.why),
                unit_script("restart", &u.unit, true),
            )),
            Some(UnitAction::Reload) => steps.push(script_step(
                format!("reload {} ({}: SIGHUP, no VIP movement)", u.unit, u.why),
                unit_script("reload", &u.unit, true),
            )),
            Some(UnitAction::Start) | None => {}
        }
    }
    steps
}

/// One line per step, for `--dry-run`-like output and golden tests.
pub fn describe(steps: &[Step]) -> String {
    let mut s = String::new();
    for (i, st) in steps.iter().enumerate() {
        let _ = writeln!(s, "{}. {}", i + 1, st.what);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use std::io::Write;
    use std::process::{Command, Stdio};

    /// Run the upload script with the local `sh` (the script is POSIX sh and
    /// coreutils, as on the hosts), feeding `sent` while announcing `data`.
    fn upload(path: &std::path::Path, data: &[u8], sent: &[u8]) -> (bool, String) {
        let sha: String = Sha256::digest(data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let script = upload_script(&path.to_string_lossy(), data.len(), &sha);
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sh");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(sent)
            .expect("write");
        let out = child.wait_with_output().expect("wait");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn leftovers(dir: &std::path::Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn upload_installs_a_complete_binary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin/lvsup");
        // A temp file an earlier, killed upload left: cleaned up (the
        // pattern only: other dot files stay).
        std::fs::create_dir_all(dir.path().join("bin")).expect("mkdir");
        std::fs::write(dir.path().join("bin/.lvsup.Ab12Cd"), b"cut").expect("stale");
        std::fs::write(dir.path().join("bin/.lvsup.keep"), b"other").expect("other");
        let data = b"\x7fELF new binary".repeat(1000);
        let (ok, err) = upload(&bin, &data, &data);
        assert!(ok, "{err}");
        assert_eq!(std::fs::read(&bin).expect("installed"), data);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&bin).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(leftovers(&dir.path().join("bin")), [".lvsup.keep", "lvsup"]);
    }

    #[test]
    fn upload_cut_short_keeps_the_old_binary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("lvsup");
        std::fs::write(&bin, b"old").expect("old");
        let data = b"\x7fELF new binary".repeat(1000);
        let (ok, err) = upload(&bin, &data, &data[..3000]);
        assert!(!ok);
        assert!(
            err.contains(&format!(
                "upload incomplete: the host received 3000 of {} bytes; {} left as it was",
                data.len(),
                bin.display()
            )),
            "{err}"
        );
        assert_eq!(std::fs::read(&bin).expect("old stays"), b"old");
        assert_eq!(leftovers(dir.path()), ["lvsup"], "temp file removed");
    }

    #[test]
    fn upload_with_the_right_size_but_other_bytes_keeps_the_old_binary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("lvsup");
        std::fs::write(&bin, b"old").expect("old");
        let data = b"\x7fELF new binary".repeat(100);
        let mut bad = data.clone();
        bad[700] ^= 0xff;
        let (ok, err) = upload(&bin, &data, &bad);
        assert!(!ok);
        assert!(
            err.contains("upload corrupted: SHA-256 on the host is "),
            "{err}"
        );
        assert!(err.contains("left as it was"), "{err}");
        assert_eq!(std::fs::read(&bin).expect("old stays"), b"old");
        assert_eq!(leftovers(dir.path()), ["lvsup"], "temp file removed");
    }
}
