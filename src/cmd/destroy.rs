//! `lvsup destroy`: show what would be removed, ask, remove, print the
//! report (or, with `--json --yes`, one JSON document).

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use super::plan::plan_tone;
use super::{
    FileArg, LiveArgs, Stream, TermProgress, check_locks, color, confirm, exit, live_options,
    lock_request, paint, print, print_json, print_report, runtime,
};
use crate::apply::run::Report;
use crate::apply::{destroy, gather};
use crate::config;
use crate::plan::HostError;

#[derive(Debug, Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub file: FileArg,
    #[command(flatten)]
    pub live: LiveArgs,
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print what is removed and the report as one JSON document (needs --yes)
    #[arg(long, requires = "yes")]
    pub json: bool,
    /// Seconds to wait for the cluster lock when another lvsup apply or
    /// destroy holds it on a host (0: fail at once); the error names the holder
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub lock_timeout: u64,
}

/// `destroy --json`.
#[derive(Serialize)]
struct DestroyDoc<'a> {
    cluster: &'a str,
    /// Per host whose facts were gathered: the steps that remove lvsup's traces.
    hosts: Vec<HostSteps<'a>>,
    /// Hosts that could not be worked on, with the step that failed.
    errors: Vec<&'a HostError>,
    /// `destroyed`, or `nothing_to_destroy` (no host was touched)
    result: &'a str,
    report: Option<&'a Report>,
    ok: bool,
    /// What an interrupted `lvsup verify` had left, undone first:
    /// `HOST: undid an interrupted verify from WHEN by WHO: WHAT`.
    verify_undone: &'a [String],
}

#[derive(Serialize)]
struct HostSteps<'a> {
    host: &'a str,
    steps: Vec<&'a str>,
}

pub fn run(a: DestroyArgs) -> Result<u8> {
    let file = &a.file.file;
    let spec = config::load(file)?;
    let mut opts = live_options(&spec, file, &a.live)?;
    opts.lock = Some(lock_request("destroy", a.lock_timeout, true));
    opts.undo_interrupted_verify = Some(super::operator().1);
    runtime()?.block_on(async {
        let live = gather(&spec, file, &opts, None, false).await?;
        let live = check_locks(live, "destroy").await?;
        // whatever happens now, the locks are released and the connections closed
        let r = destroy_locked(&a, &live).await;
        live.close().await;
        r
    })
}

async fn destroy_locked(a: &DestroyArgs, live: &crate::apply::Live) -> Result<u8> {
    let plans = destroy::plan(live);
    if !a.json {
        print(&paint(
            &destroy::render_plan(live, &plans),
            color(Stream::Stdout),
            plan_tone,
        ))?;
    }
    let any = plans.iter().any(|(_, st)| !st.is_empty());
    let errors = live.hosts.iter().any(|h| h.facts.is_err());
    let doc = |result, report, ok| DestroyDoc {
        cluster: &live.spec.name,
        hosts: plans
            .iter()
            .map(|(i, st)| HostSteps {
                host: &live.hosts[*i].want.name,
                steps: st.iter().map(|s| s.what.as_str()).collect(),
            })
            .collect(),
        errors: live
            .hosts
            .iter()
            .filter_map(|h| h.facts.as_ref().err())
            .collect(),
        result,
        report,
        ok,
        verify_undone: &live.verify_undone,
    };
    if !any {
        if a.json {
            print_json(&doc("nothing_to_destroy", None, !errors))?;
        } else {
            print("\nNothing to destroy: no host was touched.\n")?;
        }
        return Ok(if errors { exit::ERROR } else { exit::OK });
    }
    if !confirm("\nDestroy these?", a.yes)? {
        print("Destroy cancelled: no host was touched.\n")?;
        return Ok(exit::ERROR);
    }
    let report = destroy::run(live, plans.clone(), &TermProgress::new()).await;
    let ok = report.ok();
    if a.json {
        print_json(&doc("destroyed", Some(&report), ok))?;
    } else {
        print_report(&report)?;
    }
    Ok(if ok { exit::OK } else { exit::ERROR })
}
