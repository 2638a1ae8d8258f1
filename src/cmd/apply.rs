//! `lvsup apply`: show the live plan, ask, converge, print the report.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::plan::{plan_exit, print_plan};
use super::{FileArg, LiveArgs, TermProgress, confirm, exit, live_options, runtime};
use crate::apply::{BinarySource, gather, live_plan, run as runner};
use crate::config;

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
}

pub fn run(a: ApplyArgs) -> Result<u8> {
    let file = &a.file.file;
    let spec = config::load(file)?;
    let opts = live_options(&spec, file, &a.live)?;
    runtime()?.block_on(async {
        let binary = BinarySource::resolve(a.director_binary.as_deref())?;
        let live = gather(&spec, file, &opts, Some(&binary), true).await?;
        let p = live_plan(&live);
        print_plan(&p, false)?;
        if !p.has_changes() {
            println!("Nothing to apply: no host was touched.");
            let code = plan_exit(&p, false);
            live.close().await;
            return Ok(code);
        }
        if !confirm("Apply these changes?", a.yes)? {
            println!("Apply cancelled: no host was touched.");
            live.close().await;
            return Ok(exit::ERROR);
        }
        let report = runner::apply(&live, &p, &binary, &TermProgress::new()).await;
        print!("{}", report.render());
        let ok = report.ok() && p.errors.is_empty();
        live.close().await;
        Ok(if ok { exit::OK } else { exit::ERROR })
    })
}
