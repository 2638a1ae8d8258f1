//! From a host's plan and facts to the ordered steps that converge it (pure).
//! Each step is a sentence plus what to run; the runner executes them one by
//! one and stops the host at the first failure, so the summary can say
//! exactly what was and was not done.
//!
//! Order on one host: binary, files (atomically: temp file + rename in the
//! same directory), modules (modprobe now; modules-load.d keeps them), the
//! previous values of the sysctls (what destroy restores), sysctls
//! (`systemd-sysctl FILE`: the same code path as boot), `daemon-reload` only
//! when a unit file changed (not for a unit new on the host that is started
//! next: `enable --now` loads it), then the unit as the plan decided it
//! ([`crate::plan::unit_plans`]: start, reload or restart, and why).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;

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
    /// Read the current values of `keys` on the host (keys the facts did not
    /// show: created by a module this apply loads), add them to `known` and
    /// write the result as the previous-values file (what destroy restores).
    /// When the facts showed every key, [`steps_for`] writes the file with a
    /// plain script step instead (no round trip of its own).
    RecordSysctls {
        keys: Vec<String>,
        known: BTreeMap<String, Option<String>>,
    },
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
pub fn upload_script(cluster: &str, path: &str, size: usize, sha256: &str) -> String {
    script::render("upload.sh.j2", context! { cluster, path, size, sha256 })
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
        let what = format!(
            "record current values of {} sysctls in {}",
            unrecorded.len(),
            previous_sysctl_path(cluster)
        );
        // A key another lvsup cluster on this host set: its record is the
        // host's original value, not the current one (the other cluster's).
        let mut known = crate::plan::shared::inherited_previous(
            &recorded,
            &unrecorded,
            &crate::plan::shared::others(cluster, &facts.observed.files),
        );
        // The facts were read under the cluster lock just before: a key they
        // show has that value until this apply changes it. Only keys they
        // could not show (created by a module loaded above) are read on the
        // host, after the modules.
        let mut keys = Vec::new();
        for k in &unrecorded {
            if known.contains_key(k) {
                continue;
            }
            match facts.observed.sysctls.get(k) {
                Some(v) => {
                    known.insert(k.clone(), Some(v.clone()));
                }
                None => keys.push(k.clone()),
            }
        }
        steps.push(if keys.is_empty() {
            script_step(
                what,
                write_file_script(&previous_sysctl_path(cluster), 0o644, &record_json(&known)),
            )
        } else {
            Step {
                what,
                action: StepAction::RecordSysctls { keys, known },
            }
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
    // A changed unit file needs `daemon-reload` before systemd acts on the
    // unit, except for a unit new on the host that is about to be started:
    // systemd reads a unit it never loaded from disk, and `systemctl enable`
    // reloads the manager itself. A reload costs ~0.1 s on a quiet host and
    // seconds on a busy one (4.6 s measured in the VM lab), so a fresh apply
    // skips the second one.
    let needs_reload = want.units.iter().any(|u| {
        let path = desired::unit_path(&u.name);
        let starts = hp
            .units
            .iter()
            .any(|p| p.unit == u.name && p.action == Some(UnitAction::Start));
        changed_files.contains(&path.as_str())
            && (facts.observed.files.contains_key(&path) || !starts)
    });
    if needs_reload {
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

/// The previous-values file (`/var/lib/lvsup/CLUSTER/previous-sysctl.json`):
/// key → value before lvsup, `null` for a key the host did not have.
pub fn record_json(known: &BTreeMap<String, Option<String>>) -> String {
    serde_json::to_string_pretty(known).unwrap_or_else(|_| "{}".into()) + "\n"
}

/// The steps run together, in order: each run of consecutive script steps is
/// one batch (one SSH round trip, [`batch_script`]); an upload or a sysctl
/// read, which need their own exchange with the host, is a batch alone.
/// Every step still reports on its own (the markers of [`batch_script`]).
/// Why: a fresh real server has six script steps and a director nine;
/// each round trip costs an SSH channel and a remote `sh`, and the cost
/// adds up over a fleet and under the lab VM's emulation.
pub fn batches(steps: &[Step]) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for (i, st) in steps.iter().enumerate() {
        let script = matches!(st.action, StepAction::Script { .. });
        match out.last_mut() {
            Some(r) if script && matches!(steps[r.start].action, StepAction::Script { .. }) => {
                r.end = i + 1
            }
            _ => out.push(i..i + 1),
        }
    }
    out
}

/// The marker [`batch_script`] prints on stderr before step `index`.
pub fn step_marker(index: usize) -> String {
    format!("@@lvsup-step {index}")
}

/// One script that runs `scripts` (step index, script) one after the other,
/// each in its own `sh -s` as if sent alone, and stops at the first failure
/// with that step's exit status ([`failed_in_batch`] reads which).
pub fn batch_script(scripts: &[(usize, &str)]) -> String {
    #[derive(Serialize)]
    struct One<'a> {
        index: usize,
        delim: String,
        script: &'a str,
    }
    let steps: Vec<One> = scripts
        .iter()
        .map(|&(index, script)| {
            // A here-document ends at the first line equal to its delimiter:
            // pick one that no line of the script is.
            let mut delim = format!("LVSUP_STEP_{index}_EOF");
            while script.lines().any(|l| l.trim_end_matches('\r') == delim) {
                delim.push('_');
            }
            One {
                index,
                delim,
                script: script.strip_suffix('\n').unwrap_or(script),
            }
        })
        .collect();
    script::render(
        "batch.sh.j2",
        context! { steps => Value::from(Serde(&steps)) },
    )
}

/// Which step of the batch `range` failed, and what it printed, from the
/// batch's stderr (everything after the last marker of a step in `range`).
/// No marker: the batch failed before its first step (e.g. `sudo -n`
/// refused), which is then the one reported.
pub fn failed_in_batch(stderr: &str, range: &Range<usize>) -> (usize, String) {
    let mut failed = range.start;
    let mut after = 0;
    let mut pos = 0;
    for line in stderr.split_inclusive('\n') {
        pos += line.len();
        if let Some(n) = line.trim_end().strip_prefix("@@lvsup-step ")
            && let Ok(i) = n.parse::<usize>()
            && range.contains(&i)
        {
            failed = i;
            after = pos;
        }
    }
    (failed, stderr[after..].trim().to_string())
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
        let script = upload_script("web", &path.to_string_lossy(), data.len(), &sha);
        let out = sh(&["-c", &script], sent);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The local `sh` with `args` and `input` on its stdin.
    fn sh(args: &[&str], input: &[u8]) -> std::process::Output {
        let mut child = Command::new("sh")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sh");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write");
        child.wait_with_output().expect("wait")
    }

    fn leftovers(dir: &std::path::Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn script(what: &str, s: &str) -> Step {
        script_step(what, s.to_string())
    }

    /// Run a batch of `scripts` with the local `sh -s`, as the host would.
    fn run_batch(scripts: &[(usize, &str)]) -> (Option<i32>, String, String) {
        let out = sh(&["-s"], batch_script(scripts).as_bytes());
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[test]
    fn consecutive_script_steps_share_a_batch_uploads_and_reads_stand_alone() {
        let upload = Step {
            what: "upload".into(),
            action: StepAction::UploadBinary { path: "/x".into() },
        };
        let read = Step {
            what: "record".into(),
            action: StepAction::RecordSysctls {
                keys: vec!["k".into()],
                known: BTreeMap::new(),
            },
        };
        let a = script("a", "true");
        let steps = vec![upload, a.clone(), a.clone(), read, a.clone(), a.clone(), a];
        assert_eq!(batches(&steps), vec![0..1, 1..3, 3..4, 4..7]);
        assert_eq!(batches(&[]), Vec::<Range<usize>>::new());
    }

    #[test]
    fn a_batch_runs_every_step_as_if_alone_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("log");
        let p = f.to_string_lossy();
        // Step scripts as lvsup's templates write them: `set -e`, traps,
        // `exit 0` in the middle, here-documents of their own, `$` that must
        // reach the step's own shell unexpanded.
        let one = format!(
            "set -e\ntrap 'echo trap1 >> {p}' EXIT\necho one >> {p}\nexit 0\necho never >> {p}\n"
        );
        let two = format!("x='$HOME'\ncat >> {p} <<EOF\ntwo $x\nLVSUP_STEP_2_EOF\nEOF\n");
        let three = format!("echo three >> {p}");
        let (code, _, err) = run_batch(&[(1, &one), (2, &two), (3, &three)]);
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(
            std::fs::read_to_string(&f).expect("log"),
            "one\ntrap1\ntwo $HOME\nLVSUP_STEP_2_EOF\nthree\n"
        );
        assert_eq!(
            err, "@@lvsup-step 1\n@@lvsup-step 2\n@@lvsup-step 3\n",
            "one marker per step, nothing else"
        );
    }

    #[test]
    fn a_failed_step_ends_the_batch_and_is_named_with_its_own_message() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("log");
        let p = f.to_string_lossy();
        let ok = format!("echo ok >> {p}; echo 'noise on stderr' >&2");
        let bad = "echo 'unit x failed to start' >&2\nexit 3".to_string();
        let after = format!("echo after >> {p}");
        let (code, _, err) = run_batch(&[(4, &ok), (5, &bad), (6, &after)]);
        assert_eq!(code, Some(3), "the step's own exit status: {err}");
        assert_eq!(std::fs::read_to_string(&f).expect("log"), "ok\n");
        assert_eq!(
            failed_in_batch(&err, &(4..7)),
            (5, "unit x failed to start".to_string())
        );
        // the first step failing, and a batch that failed before any marker
        // (sudo -n refused): its first step is named
        let (_, _, err) = run_batch(&[(4, "exit 1"), (5, &after)]);
        assert_eq!(failed_in_batch(&err, &(4..6)), (4, String::new()));
        assert_eq!(
            failed_in_batch("sudo: a password is required", &(4..6)),
            (4, "sudo: a password is required".to_string())
        );
        // a marker of another range (or a step printing one) is not taken
        assert_eq!(
            failed_in_batch("@@lvsup-step 4\n@@lvsup-step 9\nboom", &(4..6)),
            (4, "@@lvsup-step 9\nboom".to_string())
        );
    }

    #[test]
    fn upload_installs_a_complete_binary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin/lvsup");
        // A temp file an earlier, killed upload of this cluster left:
        // cleaned up. Another cluster's (its upload may be running now,
        // under its own lock; "web-2" starts like "web") and other dot
        // files stay.
        std::fs::create_dir_all(dir.path().join("bin")).expect("mkdir");
        std::fs::write(dir.path().join("bin/.lvsup.web.Ab12Cd"), b"cut").expect("stale");
        std::fs::write(dir.path().join("bin/.lvsup.api.Xy34Zw"), b"api").expect("api");
        std::fs::write(dir.path().join("bin/.lvsup.web-2.Qq11Ww"), b"web-2").expect("web-2");
        std::fs::write(dir.path().join("bin/.lvsup.keep"), b"other").expect("other");
        let data = b"\x7fELF new binary".repeat(1000);
        let (ok, err) = upload(&bin, &data, &data);
        assert!(ok, "{err}");
        assert_eq!(std::fs::read(&bin).expect("installed"), data);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&bin).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(
            leftovers(&dir.path().join("bin")),
            [
                ".lvsup.api.Xy34Zw",
                ".lvsup.keep",
                ".lvsup.web-2.Qq11Ww",
                "lvsup"
            ]
        );
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
