//! `lvsup status`: the live cluster in one view.

use anyhow::Result;
use clap::Args;

use super::{FileArg, LiveArgs, exit, live_options, runtime};
use crate::apply::status::{collect, render};
use crate::config;

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub file: FileArg,
    #[command(flatten)]
    pub live: LiveArgs,
    /// Print JSON instead
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: StatusArgs) -> Result<u8> {
    let file = &a.file.file;
    let spec = config::load(file)?;
    let opts = live_options(&spec, file, &a.live)?;
    runtime()?.block_on(async {
        let s = collect(&spec, file, &opts).await?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&s)?);
        } else {
            print!("{}", render(&s));
        }
        let ok = s.directors.iter().all(|d| d.reachable);
        Ok(if ok { exit::OK } else { exit::ERROR })
    })
}
