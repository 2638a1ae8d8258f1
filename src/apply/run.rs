//! Running steps on hosts: one progress line per host with its current step,
//! hosts in parallel (bounded) within an apply group, groups in order (real
//! servers → backup directors → master), and a summary that says per host
//! what was done, what failed and what was not done.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::steps::{self, Step, StepAction};
use super::{BinarySource, Live};
use crate::config::diag::terminal_safe;
use crate::desired::Role;
use crate::observe::previous_sysctl_path;
use crate::plan::{HostError, Plan};
use crate::remote::{Host, RemoteError};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    /// Every step ran.
    Done,
    /// Nothing to do on this host.
    Unchanged,
    /// Stopped at `failed`.
    Failed { step: String, error: String },
    /// Never worked on: unreachable or missing prerequisites.
    NotContacted { step: String, error: String },
    /// Not touched although it has work: a host earlier in the apply order
    /// failed or could not be reached (`reason` names them).
    Skipped { reason: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    pub host: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub done: Vec<String>,
    pub not_done: Vec<String>,
    pub seconds: f64,
}

impl HostReport {
    /// A host left out: it has `not_done` to do, but an earlier group failed.
    pub fn skipped(host: String, reason: &str, not_done: Vec<String>) -> HostReport {
        HostReport {
            host,
            outcome: Outcome::Skipped {
                reason: reason.to_string(),
            },
            done: vec![],
            not_done,
            seconds: 0.0,
        }
    }

    /// A host that needed nothing: no step was run on it.
    pub fn unchanged(host: String) -> HostReport {
        HostReport {
            host,
            outcome: Outcome::Unchanged,
            done: vec![],
            not_done: vec![],
            seconds: 0.0,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub verb: String,
    pub hosts: Vec<HostReport>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.hosts
            .iter()
            .all(|h| matches!(h.outcome, Outcome::Done | Outcome::Unchanged))
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let count = |f: fn(&Outcome) -> bool| self.hosts.iter().filter(|h| f(&h.outcome)).count();
        let done = count(|o| matches!(o, Outcome::Done));
        let unchanged = count(|o| matches!(o, Outcome::Unchanged));
        let failed = count(|o| matches!(o, Outcome::Failed { .. }));
        let missed = count(|o| matches!(o, Outcome::NotContacted { .. }));
        let skipped = count(|o| matches!(o, Outcome::Skipped { .. }));
        let _ = writeln!(s, "\n{} summary, per host:", self.verb);
        for h in &self.hosts {
            match &h.outcome {
                Outcome::Done => {
                    let _ = writeln!(
                        s,
                        "  {}: done in {:.1}s ({} steps: {})",
                        h.host,
                        h.seconds,
                        h.done.len(),
                        h.done.join("; ")
                    );
                }
                Outcome::Unchanged => {
                    let _ = writeln!(s, "  {}: nothing to do, not touched", h.host);
                }
                Outcome::Failed { step, error } => {
                    let _ = writeln!(s, "  {}: FAILED at \"{step}\": {error}", h.host);
                    let _ = writeln!(
                        s,
                        "    done: {}",
                        if h.done.is_empty() {
                            "nothing".to_string()
                        } else {
                            h.done.join("; ")
                        }
                    );
                    let _ = writeln!(
                        s,
                        "    not done: {}",
                        if h.not_done.is_empty() {
                            "nothing else".to_string()
                        } else {
                            h.not_done.join("; ")
                        }
                    );
                }
                Outcome::NotContacted { step, error } => {
                    let _ = writeln!(
                        s,
                        "  {}: NOT CHANGED — failed at \"{step}\": {error}",
                        h.host
                    );
                }
                Outcome::Skipped { reason } => {
                    let _ = writeln!(s, "  {}: LEFT OUT, not touched — {reason}", h.host);
                    let _ = writeln!(s, "    not done: {}", h.not_done.join("; "));
                }
            }
        }
        if !self.ok() {
            let _ = writeln!(
                s,
                "Every step is idempotent: fix the cause and run {} again to converge.",
                self.verb
            );
        }
        // The closing line, Terraform's "Apply complete!" in our words.
        let mut verb = self.verb.clone();
        if let Some(f) = verb.get_mut(..1) {
            f.make_ascii_uppercase();
        }
        let left_out = if skipped > 0 {
            format!(", {skipped} left out")
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "{verb} {}: {done} changed, {unchanged} unchanged, {failed} failed, {missed} not contacted{left_out}.",
            if self.ok() { "complete" } else { "incomplete" }
        );
        // errors quote host output: untrusted
        terminal_safe(&s)
    }
}

/// Where the runner reports progress: one line per host with its current
/// step. The command line supplies it (`crate::cmd`: indicatif on a
/// terminal, plain lines otherwise), so this module never writes to the
/// terminal itself; [`NoProgress`] reports nothing.
pub trait Progress: Sync {
    /// A line for `host`, shown from now on.
    fn host(&self, host: &str) -> Box<dyn HostProgress>;
    /// Every host is done: take the lines away (before the report is printed).
    fn clear(&self) {}
}

/// One host's progress line.
pub trait HostProgress: Send + Sync {
    /// Step `i` of `n` (1-based) starts.
    fn step(&self, i: usize, n: usize, what: &str);
    /// The host is done (or failed): its last word.
    fn finish(&self, msg: String);
}

/// Reports nothing (tests, library callers without a terminal).
pub struct NoProgress;

impl Progress for NoProgress {
    fn host(&self, _: &str) -> Box<dyn HostProgress> {
        Box::new(NoProgress)
    }
}

impl HostProgress for NoProgress {
    fn step(&self, _: usize, _: usize, _: &str) {}
    fn finish(&self, _: String) {}
}

/// What steps may need besides the connection.
#[derive(Clone)]
pub struct StepCtx {
    /// The director binary, when a step uploads it.
    pub binary: Option<Arc<Vec<u8>>>,
    pub cluster: String,
    /// Per-step time limit.
    pub limit: Duration,
}

/// Run `steps` on `conn` in order; stop at the first failure. Consecutive
/// script steps go in one round trip ([`steps::batches`]); each step is still
/// shown and reported on its own.
pub async fn run_steps(
    conn: &Host,
    host: &str,
    steps: &[Step],
    line: &dyn HostProgress,
    ctx: &StepCtx,
) -> HostReport {
    let start = Instant::now();
    let mut done = Vec::new();
    for range in steps::batches(steps) {
        let first = &steps[range.start];
        line.step(range.start + 1, steps.len(), &first.what);
        let batch_start = Instant::now();
        let r = if range.len() == 1 {
            run_one(conn, first, ctx)
                .await
                .map_err(|e| (range.start, e))
        } else {
            run_batch(conn, steps, &range, ctx).await
        };
        tracing::debug!(
            host,
            steps = ?range,
            first = first.what,
            ms = batch_start.elapsed().as_millis(),
            ok = r.is_ok(),
            "steps"
        );
        match r {
            Ok(()) => done.extend(steps[range].iter().map(|s| s.what.clone())),
            Err((i, e)) => {
                let e = last_lines(&e, 4);
                let st = &steps[i];
                done.extend(steps[range.start..i].iter().map(|s| s.what.clone()));
                line.finish(format!("FAILED at \"{}\": {e}", st.what));
                return HostReport {
                    host: host.to_string(),
                    outcome: Outcome::Failed {
                        step: st.what.clone(),
                        error: e,
                    },
                    done,
                    not_done: steps[i + 1..].iter().map(|s| s.what.clone()).collect(),
                    seconds: start.elapsed().as_secs_f64(),
                };
            }
        }
    }
    line.finish(format!("done ({} steps)", steps.len()));
    HostReport {
        host: host.to_string(),
        outcome: Outcome::Done,
        done,
        not_done: vec![],
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// The script steps `range` of `steps` in one round trip; on failure, the
/// index of the step that failed (from the batch's markers) and its error.
async fn run_batch(
    conn: &Host,
    steps: &[Step],
    range: &std::ops::Range<usize>,
    ctx: &StepCtx,
) -> Result<(), (usize, String)> {
    let scripts: Vec<(usize, &str)> = range
        .clone()
        .filter_map(|i| match &steps[i].action {
            StepAction::Script { script } => Some((i, script.as_str())),
            _ => None,
        })
        .collect();
    let script = steps::batch_script(&scripts);
    // Each step keeps its own limit: the batch may take their sum.
    let limit = ctx.limit * range.len() as u32;
    let (r, stderr) = conn.run_script_partial(&script, limit).await;
    match r {
        Ok(_) => Ok(()),
        Err(RemoteError::Failed { code, stderr }) => {
            let (i, said) = steps::failed_in_batch(&stderr, range);
            let stderr = if said.is_empty() {
                "(no message)".to_string()
            } else {
                said
            };
            Err((i, RemoteError::Failed { code, stderr }.to_string()))
        }
        // Timed out or the connection went: the step that was running is
        // the last one whose marker arrived.
        Err(e) => Err((steps::failed_in_batch(&stderr, range).0, e.to_string())),
    }
}

/// The last `n` non-empty lines of a (multi-line) error, joined: what went
/// wrong is at the end of a command's stderr.
fn last_lines(e: &str, n: usize) -> String {
    let lines: Vec<&str> = e.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let skip = lines.len().saturating_sub(n);
    let mut s = lines[skip..].join(" | ");
    if skip > 0 {
        s.insert_str(0, "… ");
    }
    s
}

async fn run_one(conn: &Host, st: &Step, ctx: &StepCtx) -> Result<(), String> {
    let limit = ctx.limit;
    match &st.action {
        StepAction::Script { script } => conn
            .run_script(script, limit)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        StepAction::UploadBinary { path } => {
            let data = ctx.binary.as_ref().ok_or("no binary to upload")?;
            // Slow links: allow 1 s per MB on top of the step limit.
            let limit = limit + Duration::from_secs((data.len() / 1_000_000) as u64);
            let sha = crate::contract::sha256_hex(data.as_slice());
            conn.run_with_stdin(
                &steps::upload_script(&ctx.cluster, path, data.len(), &sha),
                data,
                limit,
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
        }
        StepAction::RecordSysctls { keys, known } => {
            let out = conn
                .run_script(&steps::read_sysctls_script(keys), limit)
                .await
                .map_err(|e| e.to_string())?;
            let mut merged = known.clone();
            for l in String::from_utf8_lossy(&out.stdout).lines() {
                let (k, v) = match l.split_once('=') {
                    Some((k, v)) => (k.trim(), Some(v.trim().to_string())),
                    None => (l.trim(), None),
                };
                if !k.is_empty() {
                    merged.entry(k.to_string()).or_insert(v);
                }
            }
            conn.run_script(
                &steps::write_file_script(
                    &previous_sysctl_path(&ctx.cluster),
                    0o644,
                    &steps::record_json(&merged),
                ),
                limit,
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
        }
    }
}

/// The apply groups, in the order they run: real servers first (a director
/// must never forward to a real server that is not ready for it), then the
/// backup directors, then the master (its restart is the one that moves the
/// VIP, so it comes last, after the backups that take the VIP over run the
/// new version).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    RealServers,
    Backups,
    Master,
}

impl Group {
    pub fn of(role: &Role) -> Group {
        match role {
            Role::RealServer => Group::RealServers,
            Role::Director { master: false, .. } => Group::Backups,
            Role::Director { master: true, .. } => Group::Master,
        }
    }

    /// One host of the group, in words.
    fn member(self) -> &'static str {
        match self {
            Group::RealServers => "real server",
            Group::Backups => "backup director",
            Group::Master => "master director",
        }
    }
}

/// What the scheduler says runs next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Work on these hosts (in parallel), then [`Scheduler::record`] each result.
    Run { group: Group, hosts: Vec<String> },
    /// Leave these hosts as they are: an earlier group did not converge.
    Skip {
        group: Group,
        hosts: Vec<String>,
        reason: String,
    },
}

/// The order and the stop rule of apply (pure, no I/O): groups run one after
/// the other; when any host of a group fails or could not be reached, the
/// hosts of the later groups are not touched (in DR mode a director would
/// otherwise put a real server without the VIP on `lo` into IPVS: its TCP
/// check passes and its share of the traffic is lost). Within a group every
/// host still finishes: hosts of one group do not depend on each other.
#[derive(Debug, Default)]
pub struct Scheduler {
    /// Hosts with work, by group; popped lowest group first.
    pending: BTreeMap<Group, Vec<String>>,
    /// Hosts that failed or could not be reached: (group, host, what happened).
    failed: Vec<(Group, String, String)>,
}

impl Scheduler {
    /// `hosts`: every host that has steps to run, with its group.
    pub fn new(hosts: impl IntoIterator<Item = (String, Group)>) -> Scheduler {
        let mut pending: BTreeMap<Group, Vec<String>> = BTreeMap::new();
        for (h, g) in hosts {
            pending.entry(g).or_default().push(h);
        }
        Scheduler {
            pending,
            failed: Vec::new(),
        }
    }

    /// The result of a host (one that ran, or one that was never contacted:
    /// record those before the first [`Scheduler::next_group`]).
    pub fn record(&mut self, group: Group, report: &HostReport) {
        let what = match &report.outcome {
            Outcome::Failed { step, .. } => format!("failed at \"{step}\""),
            Outcome::NotContacted { step, .. } => {
                format!("could not be reached or checked (\"{step}\")")
            }
            Outcome::Skipped { .. } => "was left out".to_string(),
            Outcome::Done | Outcome::Unchanged => return,
        };
        self.failed.push((group, report.host.clone(), what));
    }

    /// The next group to run or to skip; `None` when every group is through.
    pub fn next_group(&mut self) -> Option<Next> {
        let (group, hosts) = self.pending.pop_first()?;
        let blockers: Vec<String> = self
            .failed
            .iter()
            .filter(|(g, _, _)| *g < group)
            .map(|(g, h, what)| format!("{} {h} {what}", g.member()))
            .collect();
        if blockers.is_empty() {
            return Some(Next::Run { group, hosts });
        }
        let reason = format!(
            "{}; apply stops before the next group (order: real servers, backup directors, master)",
            blockers.join(", ")
        );
        Some(Next::Skip {
            group,
            hosts,
            reason,
        })
    }
}

pub fn not_contacted(e: &HostError) -> HostReport {
    HostReport {
        host: e.host.clone(),
        outcome: Outcome::NotContacted {
            step: e.step.clone(),
            error: e.message.clone(),
        },
        done: vec![],
        not_done: vec![],
        seconds: 0.0,
    }
}

/// Converge every host of `plan` that could be planned.
pub async fn apply(
    live: &Live,
    plan: &Plan,
    binary: &BinarySource,
    progress: &dyn Progress,
) -> Report {
    let needs_binary = plan.hosts.iter().any(|h| {
        h.changes
            .iter()
            .any(|c| matches!(c.item, crate::plan::Item::Binary { .. }))
    });
    let data: Option<Arc<Vec<u8>>> = if needs_binary {
        std::fs::read(&binary.path).ok().map(Arc::new)
    } else {
        None
    };
    let mut reports: BTreeMap<String, HostReport> = BTreeMap::new();
    // Work per host: unreachable and unchanged hosts get their report now.
    let mut work: BTreeMap<String, (Vec<Step>, Arc<Host>, StepCtx)> = BTreeMap::new();
    let mut scheduler_hosts = Vec::new();
    let mut unreachable = Vec::new();
    for lh in &live.hosts {
        let name = lh.want.name.clone();
        let group = Group::of(&lh.want.role);
        let (facts, conn) = match (&lh.facts, &lh.conn) {
            (Ok(f), Some(c)) => (f, c.clone()),
            (Err(e), _) => {
                let rep = not_contacted(e);
                unreachable.push((group, rep.clone()));
                reports.insert(name, rep);
                continue;
            }
            (Ok(_), None) => continue,
        };
        let Some(hp) = plan.hosts.iter().find(|h| h.host == name) else {
            continue;
        };
        let steps = steps::steps_for(&live.spec, &lh.want, hp, facts);
        if steps.is_empty() {
            reports.insert(name.clone(), HostReport::unchanged(name));
            continue;
        }
        let ctx = StepCtx {
            binary: data.clone(),
            cluster: live.spec.name.clone(),
            limit: live.step_timeout,
        };
        scheduler_hosts.push((name.clone(), group));
        work.insert(name, (steps, conn, ctx));
    }
    let mut scheduler = Scheduler::new(scheduler_hosts);
    for (g, rep) in &unreachable {
        scheduler.record(*g, rep);
    }
    while let Some(next) = scheduler.next_group() {
        match next {
            Next::Skip { hosts, reason, .. } => {
                for name in hosts {
                    let not_done = work
                        .get(&name)
                        .map(|(steps, _, _)| steps.iter().map(|s| s.what.clone()).collect())
                        .unwrap_or_default();
                    reports.insert(name.clone(), HostReport::skipped(name, &reason, not_done));
                }
            }
            Next::Run { group, hosts } => {
                let mut tasks = tokio::task::JoinSet::new();
                let mut names = BTreeMap::new();
                for name in hosts {
                    let Some((steps, conn, ctx)) = work.remove(&name) else {
                        continue;
                    };
                    let line = progress.host(&name);
                    let parallel = live.parallel.clone();
                    let host = name.clone();
                    let task = tasks.spawn(async move {
                        let _permit = parallel.acquire_owned().await;
                        run_steps(&conn, &host, &steps, line.as_ref(), &ctx).await
                    });
                    names.insert(task.id(), name);
                }
                while let Some(r) = tasks.join_next_with_id().await {
                    // A task that panicked failed: the group did not converge.
                    let rep = r.map(|(_, rep)| rep).unwrap_or_else(|e| HostReport {
                        host: names.get(&e.id()).cloned().unwrap_or_default(),
                        outcome: Outcome::Failed {
                            step: "run steps".into(),
                            error: e.to_string(),
                        },
                        done: vec![],
                        not_done: vec![],
                        seconds: 0.0,
                    });
                    scheduler.record(group, &rep);
                    reports.insert(rep.host.clone(), rep);
                }
            }
        }
    }
    progress.clear();
    Report {
        verb: "apply".into(),
        hosts: live
            .hosts
            .iter()
            .filter_map(|h| reports.remove(&h.want.name))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(host: &str, outcome: Outcome) -> HostReport {
        HostReport {
            host: host.into(),
            outcome,
            done: vec![],
            not_done: vec![],
            seconds: 0.0,
        }
    }

    fn failed(host: &str) -> HostReport {
        report(
            host,
            Outcome::Failed {
                step: "write /etc/x".into(),
                error: "disk full".into(),
            },
        )
    }

    fn hosts(v: &[(&str, Group)]) -> Vec<(String, Group)> {
        v.iter().map(|(h, g)| (h.to_string(), *g)).collect()
    }

    fn run(group: Group, hosts: &[&str]) -> Option<Next> {
        Some(Next::Run {
            group,
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
        })
    }

    #[test]
    fn groups_run_in_order_when_every_host_converges() {
        // given in any order, run real servers → backups → master
        let mut s = Scheduler::new(hosts(&[
            ("d1", Group::Master),
            ("rs1", Group::RealServers),
            ("d2", Group::Backups),
            ("rs2", Group::RealServers),
        ]));
        assert_eq!(s.next_group(), run(Group::RealServers, &["rs1", "rs2"]));
        s.record(Group::RealServers, &report("rs1", Outcome::Done));
        s.record(Group::RealServers, &report("rs2", Outcome::Done));
        assert_eq!(s.next_group(), run(Group::Backups, &["d2"]));
        s.record(Group::Backups, &report("d2", Outcome::Done));
        assert_eq!(s.next_group(), run(Group::Master, &["d1"]));
        s.record(Group::Master, &report("d1", Outcome::Done));
        assert_eq!(s.next_group(), None);
    }

    #[test]
    fn a_failed_real_server_leaves_every_director_untouched() {
        let mut s = Scheduler::new(hosts(&[
            ("rs1", Group::RealServers),
            ("rs2", Group::RealServers),
            ("d2", Group::Backups),
            ("d1", Group::Master),
        ]));
        // both real servers still run: hosts of one group finish
        assert_eq!(s.next_group(), run(Group::RealServers, &["rs1", "rs2"]));
        s.record(Group::RealServers, &failed("rs2"));
        s.record(Group::RealServers, &report("rs1", Outcome::Done));
        for (group, host) in [(Group::Backups, "d2"), (Group::Master, "d1")] {
            match s.next_group() {
                Some(Next::Skip {
                    group: g,
                    hosts,
                    reason,
                }) => {
                    assert_eq!(g, group);
                    assert_eq!(hosts, vec![host.to_string()]);
                    assert!(
                        reason.starts_with("real server rs2 failed at \"write /etc/x\""),
                        "{reason}"
                    );
                    assert!(!reason.contains("rs1"), "{reason}");
                }
                other => panic!("expected a skip of {host}, got {other:?}"),
            }
        }
        assert_eq!(s.next_group(), None);
    }

    #[test]
    fn an_unreachable_host_blocks_only_the_groups_after_its_own() {
        // the master could not be reached: real servers and backups still run
        let mut s = Scheduler::new(hosts(&[
            ("rs1", Group::RealServers),
            ("d2", Group::Backups),
        ]));
        let unreachable = report(
            "d1",
            Outcome::NotContacted {
                step: "connect".into(),
                error: "timeout".into(),
            },
        );
        s.record(Group::Master, &unreachable);
        assert_eq!(s.next_group(), run(Group::RealServers, &["rs1"]));
        s.record(Group::RealServers, &report("rs1", Outcome::Done));
        assert_eq!(s.next_group(), run(Group::Backups, &["d2"]));
        s.record(Group::Backups, &report("d2", Outcome::Unchanged));
        assert_eq!(s.next_group(), None);

        // an unreachable real server: the backups are left out, naming it
        let mut s = Scheduler::new(hosts(&[("d2", Group::Backups)]));
        s.record(
            Group::RealServers,
            &report(
                "rs3",
                Outcome::NotContacted {
                    step: "connect".into(),
                    error: "timeout".into(),
                },
            ),
        );
        match s.next_group() {
            Some(Next::Skip { reason, .. }) => assert!(
                reason.contains("real server rs3 could not be reached or checked (\"connect\")"),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
    }

    fn report_of(outcomes: Vec<Outcome>) -> Report {
        Report {
            verb: "apply".into(),
            hosts: outcomes
                .into_iter()
                .enumerate()
                .map(|(i, outcome)| HostReport {
                    host: format!("h{i}"),
                    outcome,
                    done: vec!["x".into()],
                    not_done: vec![],
                    seconds: 1.0,
                })
                .collect(),
        }
    }

    #[test]
    fn a_report_ends_with_its_summary_line() {
        let ok = report_of(vec![Outcome::Done, Outcome::Unchanged]).render();
        assert!(ok.starts_with("\napply summary, per host:\n"), "{ok}");
        assert_eq!(
            ok.lines().last(),
            Some("Apply complete: 1 changed, 1 unchanged, 0 failed, 0 not contacted.")
        );
        let failed = report_of(vec![
            Outcome::Done,
            Outcome::Failed {
                step: "s".into(),
                error: "e".into(),
            },
            Outcome::NotContacted {
                step: "connect".into(),
                error: "refused".into(),
            },
        ]);
        let mut destroy = failed.clone();
        destroy.verb = "destroy".into();
        let text = failed.render();
        assert_eq!(
            text.lines().last(),
            Some("Apply incomplete: 1 changed, 0 unchanged, 1 failed, 1 not contacted."),
            "{text}"
        );
        assert!(text.contains("run apply again"), "{text}");
        assert!(
            destroy.render().ends_with(
                "Destroy incomplete: 1 changed, 0 unchanged, 1 failed, 1 not contacted.\n"
            )
        );
    }

    #[test]
    fn a_failed_backup_leaves_the_master_untouched() {
        let mut s = Scheduler::new(hosts(&[("d2", Group::Backups), ("d1", Group::Master)]));
        assert_eq!(s.next_group(), run(Group::Backups, &["d2"]));
        s.record(Group::Backups, &failed("d2"));
        assert!(
            matches!(s.next_group(), Some(Next::Skip { group: Group::Master, ref reason, .. }) if reason.contains("backup director d2 failed")),
        );
    }

    #[test]
    fn the_summary_names_the_hosts_left_out_and_why() {
        let r = Report {
            verb: "apply".into(),
            hosts: vec![
                failed("rs2"),
                HostReport::skipped(
                    "d1".into(),
                    "real server rs2 failed at \"write /etc/x\"",
                    vec!["write /etc/lvsup/c/director.toml".into()],
                ),
            ],
        };
        assert!(!r.ok());
        let text = r.render();
        assert!(
            text.contains("0 changed, 0 unchanged, 1 failed, 0 not contacted, 1 left out."),
            "{text}"
        );
        assert!(
            text.contains("  d1: LEFT OUT, not touched — real server rs2 failed at \"write /etc/x\"\n    not done: write /etc/lvsup/c/director.toml"),
            "{text}"
        );
        let json = serde_json::to_value(&r).expect("json");
        assert_eq!(json["hosts"][1]["outcome"], "skipped");
    }

    #[test]
    fn host_output_in_the_summary_is_printed_escaped() {
        let r = Report {
            verb: "apply".into(),
            hosts: vec![report(
                "rs1",
                Outcome::Failed {
                    step: "write /etc/x".into(),
                    error: "exit status 1: \u{1b}[2Jgone".into(),
                },
            )],
        };
        let text = r.render();
        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert!(text.contains("exit status 1: \\u{1b}[2Jgone"), "{text}");
    }
}
