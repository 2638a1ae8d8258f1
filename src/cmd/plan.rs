//! `lvsup plan`: offline (fresh hosts, no SSH) or against the hosts.

use std::io::Write;

use anyhow::Result;
use clap::Args;

use super::{FileArg, LiveArgs, exit, live_options, runtime};
use crate::apply::{BinarySource, gather, live_plan};
use crate::plan::Plan;
use crate::{config, desired, plan};

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    file: FileArg,
    /// Do not contact any host: plan against fresh hosts
    #[arg(long)]
    offline: bool,
    /// Print the plan as JSON
    #[arg(long)]
    json: bool,
    /// Exit 0 when there are no changes, 2 when there are, 1 on error
    #[arg(long)]
    detailed_exitcode: bool,
    #[command(flatten)]
    live: LiveArgs,
}

pub fn run(a: PlanArgs) -> Result<u8> {
    let file = &a.file.file;
    let spec = config::load(file)?;
    if a.offline {
        let desired = desired::desired_cluster(&spec)?;
        let plan = plan::offline(&spec, &desired);
        print_plan(&plan, a.json)?;
        return Ok(if a.detailed_exitcode && plan.has_changes() {
            exit::CHANGES
        } else {
            exit::OK
        });
    }
    let opts = live_options(&spec, file, &a.live)?;
    runtime()?.block_on(async {
        let binary = BinarySource::resolve(None)?;
        let live = gather(&spec, file, &opts, Some(&binary), true).await?;
        let p = live_plan(&live);
        print_plan(&p, a.json)?;
        if p.hosts.is_empty() && !p.errors.is_empty() {
            eprintln!(
                "no host could be planned; `lvsup plan -f {} --offline` plans against fresh hosts",
                file.display()
            );
        }
        live.close().await;
        Ok(plan_exit(&p, a.detailed_exitcode))
    })
}

/// The plan on stdout, as text or JSON.
pub fn print_plan(p: &Plan, json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, p)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", p.render_text())?;
    }
    out.flush()?;
    Ok(())
}

/// A live plan's exit code: hosts that could not be planned are an error.
pub fn plan_exit(p: &Plan, detailed: bool) -> u8 {
    if !p.errors.is_empty() {
        exit::ERROR
    } else if detailed && p.has_changes() {
        exit::CHANGES
    } else {
        exit::OK
    }
}
