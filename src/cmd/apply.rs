//! `lvsup apply`: show the live plan, ask, converge, print the report
//! (or, with `--json --yes`, one JSON document: the plan and the report).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use super::plan::{plan_exit, print_plan};
use super::{
    FileArg, LiveArgs, TermProgress, check_locks, confirm, exit, live_options, lock_request, print,
    print_json, print_report, runtime,
};
use crate::apply::run::Report;
use crate::apply::{BinarySource, gather, live_plan, run as runner};
use crate::config;
use crate::plan::Plan;

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub file: FileArg,
    #[command(flatten)]
    pub live: LiveArgs,
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// The binary to install on directors (default: this lvsup, when the
    /// directors' OS, arch and glibc can run it)
    #[arg(long, value_name = "PATH")]
    pub director_binary: Option<PathBuf>,
    /// Print the plan and the report as one JSON document (needs --yes: there is no
    /// plan on the terminal to confirm)
    #[arg(long, requires = "yes")]
    pub json: bool,
    /// Seconds to wait for the cluster lock when another lvsup apply or
    /// destroy holds it on a host (0: fail at once); the error names the holder
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub lock_timeout: u64,
}

/// `apply --json`.
#[derive(Serialize)]
struct ApplyDoc<'a> {
    plan: &'a Plan,
    /// `applied`, or `nothing_to_apply` (no host was touched)
    result: &'a str,
    report: Option<&'a Report>,
    ok: bool,
}

pub fn run(a: ApplyArgs) -> Result<u8> {
    let file = &a.file.file;
    let spec = config::load(file)?;
    let mut opts = live_options(&spec, file, &a.live)?;
    opts.lock = Some(lock_request("apply", a.lock_timeout, false));
    runtime()?.block_on(async {
        let binary = BinarySource::resolve(a.director_binary.as_deref())?;
        let live = gather(&spec, file, &opts, Some(&binary), true).await?;
        let live = check_locks(live, "apply").await?;
        let p = live_plan(&live);
        if !a.json {
            print_plan(&p, false)?;
        }
        if !p.has_changes() {
            let code = plan_exit(&p, false);
            live.close().await;
            if a.json {
                print_json(&ApplyDoc {
                    plan: &p,
                    result: "nothing_to_apply",
                    report: None,
                    ok: code == exit::OK,
                })?;
            } else {
                print("Nothing to apply: no host was touched.\n")?;
            }
            return Ok(code);
        }
        if let Some(w) = crate::apply::debug_upload_warning(&binary, &p) {
            eprintln!("warning: {w}");
        }
        if !confirm("Apply these changes?", a.yes)? {
            print("Apply cancelled: no host was touched.\n")?;
            live.close().await;
            return Ok(exit::ERROR);
        }
        let report = runner::apply(&live, &p, &binary, &TermProgress::new()).await;
        let ok = report.ok() && p.errors.is_empty();
        live.close().await;
        if a.json {
            print_json(&ApplyDoc {
                plan: &p,
                result: "applied",
                report: Some(&report),
                ok,
            })?;
        } else {
            print_report(&report)?;
        }
        Ok(if ok { exit::OK } else { exit::ERROR })
    })
}
