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
use crate::desired::Role;
use crate::plan::{HostError, Plan};
use crate::remote::Host;
use crate::remote::facts::previous_sysctl_path;
use crate::remote::shell_quote;

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
        let _ = writeln!(
            s,
            "{verb} {}: {done} changed, {unchanged} unchanged, {failed} failed, {missed} not contacted.",
            if self.ok() { "complete" } else { "incomplete" }
        );
        s
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
    /// Sysctl values recorded before lvsup changed them.
    pub previous: BTreeMap<String, Option<String>>,
    pub cluster: String,
    /// Per-step time limit.
    pub limit: Duration,
}

/// Run `steps` on `conn` in order; stop at the first failure.
pub async fn run_steps(
    conn: &Host,
    host: &str,
    steps: &[Step],
    line: &dyn HostProgress,
    ctx: &StepCtx,
) -> HostReport {
    let start = Instant::now();
    let mut done = Vec::new();
    for (i, st) in steps.iter().enumerate() {
        line.step(i + 1, steps.len(), &st.what);
        let r = run_one(conn, st, ctx).await.map_err(|e| last_lines(&e, 4));
        if let Err(e) = r {
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
        done.push(st.what.clone());
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
            conn.run_with_stdin(&steps::upload_script(path), data, limit)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        StepAction::RecordSysctls { keys } => {
            let list: Vec<String> = keys.iter().map(|k| shell_quote(k)).collect();
            let read = format!(
                "for k in {}; do f=/proc/sys/$(echo \"$k\" | tr . /); \
                 if [ -r \"$f\" ]; then echo \"$k=$(cat \"$f\")\"; else echo \"$k\"; fi; done\n",
                list.join(" ")
            );
            let out = conn
                .run_script(&read, limit)
                .await
                .map_err(|e| e.to_string())?;
            let mut merged = ctx.previous.clone();
            for l in String::from_utf8_lossy(&out.stdout).lines() {
                let (k, v) = match l.split_once('=') {
                    Some((k, v)) => (k.trim(), Some(v.trim().to_string())),
                    None => (l.trim(), None),
                };
                if !k.is_empty() {
                    merged.entry(k.to_string()).or_insert(v);
                }
            }
            let json = serde_json::to_string_pretty(&merged).map_err(|e| e.to_string())? + "\n";
            conn.run_script(
                &steps::write_file_script(&previous_sysctl_path(&ctx.cluster), 0o644, &json),
                limit,
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
        }
    }
}

/// Which apply group a host is in: 0 real servers, 1 backups, 2 master.
fn group(role: &Role) -> u8 {
    match role {
        Role::RealServer => 0,
        Role::Director { master: false, .. } => 1,
        Role::Director { master: true, .. } => 2,
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
    for g in 0..=2u8 {
        let mut tasks = tokio::task::JoinSet::new();
        for lh in &live.hosts {
            if group(&lh.want.role) != g {
                continue;
            }
            let name = lh.want.name.clone();
            let (facts, conn) = match (&lh.facts, &lh.conn) {
                (Ok(f), Some(c)) => (f, c.clone()),
                (Err(e), _) => {
                    reports.insert(name, not_contacted(e));
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
            let line = progress.host(&name);
            let ctx = StepCtx {
                binary: data.clone(),
                previous: facts.previous_sysctls.clone().unwrap_or_default(),
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

    fn report(outcomes: Vec<Outcome>) -> Report {
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
        let ok = report(vec![Outcome::Done, Outcome::Unchanged]).render();
        assert!(ok.starts_with("\napply summary, per host:\n"), "{ok}");
        assert_eq!(
            ok.lines().last(),
            Some("Apply complete: 1 changed, 1 unchanged, 0 failed, 0 not contacted.")
        );
        let failed = report(vec![
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
}
