//! The verify report: one row per check, a readable table and JSON.

use std::fmt::Write as _;

use serde::Serialize;

use super::analysis::Verdict;
use crate::config::diag::terminal_safe;

/// A table cell: text from hosts (host names, measured values) escaped,
/// newlines and tabs too, so one cell stays one cell on one line.
fn cell(s: &str) -> String {
    terminal_safe(s).replace('\n', "\\n").replace('\t', "\\t")
}

/// A line under a row (reasons, failed undo steps, which quote host
/// stderr): escaped, its own further lines indented as `indent`.
fn lines(s: &str, indent: &str) -> String {
    terminal_safe(s).replace('\n', &format!("\n{indent}"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Skip,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "SKIP",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckRow {
    /// "reachability", "vip-holder", "real-server", "scheduling",
    /// "director-failover", "real-server-failover".
    pub check: String,
    /// What it was about: a service label, a host name.
    pub subject: String,
    pub result: Outcome,
    pub property: String,
    pub measured: String,
    pub expected: String,
    /// Why it failed (or was skipped).
    pub reasons: Vec<String>,
    /// Measured figures for CI (milliseconds, counts), sorted by name.
    pub figures: std::collections::BTreeMap<String, u64>,
}

impl CheckRow {
    pub fn from_verdict(check: &str, subject: &str, v: Verdict) -> Self {
        CheckRow {
            check: check.into(),
            subject: subject.into(),
            result: if v.skipped {
                Outcome::Skip
            } else if v.passed {
                Outcome::Pass
            } else {
                Outcome::Fail
            },
            property: v.property,
            measured: v.measured,
            expected: v.expected,
            reasons: v.reasons,
            figures: Default::default(),
        }
    }

    pub fn skipped(check: &str, subject: &str, why: impl Into<String>) -> Self {
        CheckRow {
            check: check.into(),
            subject: subject.into(),
            result: Outcome::Skip,
            property: String::new(),
            measured: "-".into(),
            expected: "-".into(),
            reasons: vec![why.into()],
            figures: Default::default(),
        }
    }

    pub fn figure(mut self, name: &str, v: u64) -> Self {
        self.figures.insert(name.into(), v);
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub cluster: String,
    /// Where the scheduling counters came from ("lvsup ipvs list --json" or "ipvsadm -Ln --stats").
    pub counters_from: Option<String>,
    pub passed: bool,
    pub interrupted: bool,
    pub checks: Vec<CheckRow>,
    /// Undo steps that failed: the cluster is NOT as verify found it.
    pub undo_failures: Vec<String>,
    /// Changes an earlier, interrupted verify left on the hosts, undone
    /// before the checks: `HOST: undid an interrupted verify from WHEN by WHO: WHAT`.
    pub undone: Vec<String>,
}

impl Report {
    pub fn new(cluster: &str, checks: Vec<CheckRow>) -> Self {
        let mut r = Report {
            cluster: cluster.into(),
            counters_from: None,
            passed: false,
            interrupted: false,
            checks,
            undo_failures: vec![],
            undone: vec![],
        };
        r.settle();
        r
    }

    /// Recompute `passed`: every check passed or was skipped, not interrupted, undo clean.
    pub fn settle(&mut self) {
        self.passed = !self.interrupted
            && self.undo_failures.is_empty()
            && !self.checks.is_empty()
            && self.checks.iter().all(|c| c.result != Outcome::Fail);
    }

    /// The table: CHECK, SUBJECT, RESULT, MEASURED, EXPECTED; reasons under
    /// failures. Every text that can come from a host (its stderr in
    /// reasons, measured values, undo records) is escaped
    /// ([`terminal_safe`]): a host cannot drive the operator's terminal.
    pub fn render_text(&self) -> String {
        let head = ["CHECK", "SUBJECT", "RESULT", "MEASURED", "EXPECTED"];
        let rows: Vec<[String; 5]> = self
            .checks
            .iter()
            .map(|c| {
                [
                    cell(&c.check),
                    cell(&c.subject),
                    c.result.as_str().to_string(),
                    cell(&c.measured),
                    cell(&c.expected),
                ]
            })
            .collect();
        let mut w = [0usize; 5];
        for r in std::iter::once(&head.map(String::from)).chain(rows.iter()) {
            for (i, cell) in r.iter().enumerate() {
                w[i] = w[i].max(cell.chars().count());
            }
        }
        let mut s = format!("verify \"{}\"\n", cell(&self.cluster));
        // the records' text came from the hosts
        for u in &self.undone {
            let _ = writeln!(s, "{}", lines(u, "  "));
        }
        let line = |s: &mut String, r: &[String; 5]| {
            let mut l = String::new();
            for (i, cell) in r.iter().enumerate() {
                if i + 1 == r.len() {
                    l.push_str(cell);
                } else {
                    let pad = w[i] - cell.chars().count();
                    let _ = write!(l, "{cell}{}  ", " ".repeat(pad));
                }
            }
            let _ = writeln!(s, "{}", l.trim_end());
        };
        line(&mut s, &head.map(String::from));
        for (c, r) in self.checks.iter().zip(&rows) {
            line(&mut s, r);
            if (c.check.starts_with("scheduling") || c.result == Outcome::Skip)
                && !c.property.is_empty()
            {
                let _ = writeln!(s, "    = {}", lines(&c.property, "      "));
            }
            if c.result != Outcome::Pass {
                for reason in &c.reasons {
                    let _ = writeln!(s, "    - {}", lines(reason, "      "));
                }
            }
        }
        if let Some(src) = &self.counters_from {
            let _ = writeln!(s, "counters: {}", cell(src));
        }
        for u in &self.undo_failures {
            let _ = writeln!(s, "UNDO FAILED: {}", lines(u, "  "));
        }
        if self.interrupted {
            let _ = writeln!(
                s,
                "interrupted: the cluster was put back as verify found it"
            );
        }
        let failed = self
            .checks
            .iter()
            .filter(|c| c.result == Outcome::Fail)
            .count();
        let skipped = self
            .checks
            .iter()
            .filter(|c| c.result == Outcome::Skip)
            .count();
        let _ = writeln!(
            s,
            "{}: {} checks, {} failed, {} skipped",
            if self.passed { "PASS" } else { "FAIL" },
            self.checks.len(),
            failed,
            skipped
        );
        s
    }
}
