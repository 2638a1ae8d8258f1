//! `lvsup validate`: check a cluster file; errors rendered with their place
//! (exit 1), warnings on stderr, the one-line summary on stdout (which is also
//! its closing summary line). `--json`: the [`config::report`] document on
//! stdout only. `--deny-warnings`: warnings fail the run (for CI).

use std::io::Write;

use anyhow::Result;
use clap::Args;

use super::{FileArg, exit, print};
use crate::config;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub file: FileArg,
    /// Print the result as JSON on stdout: errors and warnings with key, line and column
    #[arg(long)]
    pub json: bool,
    /// Treat warnings as errors: exit 1 when there is any (for CI)
    #[arg(long)]
    pub deny_warnings: bool,
}

pub fn run(a: ValidateArgs) -> Result<u8> {
    let result = config::check_file(&a.file.file);
    let file = a.file.file.display().to_string();
    if a.json {
        // The report carries its own `format_version` (it is a library type).
        let report = config::report::ValidateReport::new(&file, &result, a.deny_warnings);
        print(&(serde_json::to_string_pretty(&report)? + "\n"))?;
        return Ok(if report.passed() {
            exit::OK
        } else {
            exit::ERROR
        });
    }
    let checked = result?;
    let level = if a.deny_warnings { "error" } else { "warning" };
    let mut err = std::io::stderr().lock();
    for w in &checked.warnings {
        writeln!(err, "{level}: {}", w.display_in(&file))?;
    }
    let n = checked.warnings.len();
    if a.deny_warnings && n > 0 {
        let s = if n == 1 { "" } else { "s" };
        writeln!(err, "error: {file} has {n} warning{s} (--deny-warnings)")?;
        return Ok(exit::ERROR);
    }
    print(&format!("{}\n", checked.spec.summary()))?;
    Ok(exit::OK)
}
