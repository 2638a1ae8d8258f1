//! `lvsup import keepalived`: one keepalived.conf per director → one
//! cluster.toml ([`crate::import::keepalived`] converts; stdout, or `-o FILE`
//! which is never overwritten). Warnings (what was dropped or defaulted) go to
//! stderr.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

use super::{exit, print};

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// One keepalived.conf per director → one cluster.toml (stdout, or -o FILE)
    Keepalived {
        /// Write the cluster file here (never overwrites an existing file)
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// Convert even what lvsup cannot express, dropping it (a warning each)
        #[arg(long)]
        lossy: bool,
        /// A director's keepalived.conf; @ADDRESS when it has no unicast_src_ip/mcast_src_ip,
        /// ,INTERNAL (NAT) its address on the real servers' subnet
        #[arg(required = true, value_name = "CONF[@ADDRESS[,INTERNAL]]")]
        confs: Vec<crate::import::keepalived::ConfArg>,
    },
}

pub fn run(c: ImportCommand) -> Result<u8> {
    let ImportCommand::Keepalived {
        output,
        lossy,
        confs,
    } = c;
    let imported = crate::import::keepalived::import(&confs, lossy)?;
    let mut stderr = std::io::stderr().lock();
    for w in &imported.warnings {
        writeln!(stderr, "warning: {w}")?;
    }
    match output {
        None => print(&imported.toml)?,
        Some(path) => {
            crate::config::init::write_new(&path, &imported.toml)?;
            writeln!(stderr, "wrote {}", path.display())?;
        }
    }
    Ok(exit::OK)
}
