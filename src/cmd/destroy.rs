//! `lvsup destroy`: show what would be removed, ask, remove, print the report.

use anyhow::Result;
use clap::Args;

use super::{FileArg, LiveArgs, TermProgress, confirm, exit, live_options, runtime};
use crate::apply::{destroy, gather};
use crate::config;

#[derive(Debug, Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub file: FileArg,
    #[command(flatten)]
    pub live: LiveArgs,
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
}

pub fn run(a: DestroyArgs) -> Result<u8> {
    let file = &a.file.file;
    let spec = config::load(file)?;
    let opts = live_options(&spec, file, &a.live)?;
    runtime()?.block_on(async {
        let live = gather(&spec, file, &opts, None, false).await?;
        let plans = destroy::plan(&live);
        print!("{}", destroy::render_plan(&live, &plans));
        let any = plans.iter().any(|(_, st)| !st.is_empty());
        let errors = live.hosts.iter().any(|h| h.facts.is_err());
        if !any {
            println!("\nNothing to destroy: no host was touched.");
            live.close().await;
            return Ok(if errors { exit::ERROR } else { exit::OK });
        }
        if !confirm("\nDestroy these?", a.yes)? {
            println!("Destroy cancelled: no host was touched.");
            live.close().await;
            return Ok(exit::ERROR);
        }
        let report = destroy::run(&live, plans, &TermProgress::new()).await;
        print!("{}", report.render());
        let ok = report.ok();
        live.close().await;
        Ok(if ok { exit::OK } else { exit::ERROR })
    })
}
