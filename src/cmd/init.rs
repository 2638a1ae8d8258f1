//! `lvsup init`: an annotated cluster.toml to start from
//! ([`crate::config::init`] renders it); `-o` never overwrites.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

use super::{exit, print};
use crate::config;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Forwarding mode of the cluster: direct routing, IP tunnelling or NAT
    #[arg(long, default_value = "dr", value_parser = ["dr", "tun", "nat"])]
    mode: String,
    /// Write the file here instead of stdout; never overwrites an existing file
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
}

pub fn run(a: InitArgs) -> Result<u8> {
    let mode =
        config::Mode::parse(&a.mode).ok_or_else(|| anyhow::anyhow!("unknown mode {:?}", a.mode))?;
    let text = config::init::render(mode)?;
    match &a.output {
        Some(path) => {
            config::init::write_new(path, &text)?;
            eprintln!(
                "wrote {}: replace its placeholder addresses, then `lvsup validate -f {0}`",
                path.display()
            );
        }
        None => print(&text)?,
    }
    Ok(exit::OK)
}
