//! `lvsup completions SHELL` and the hidden packaging step `lvsup manpages DIR`:
//! both generated from the clap definitions ([`super::Cli`]).

use std::path::Path;

use anyhow::Result;
use clap::CommandFactory;

use super::{Cli, exit, print};

pub fn completions(shell: clap_complete::Shell) -> Result<u8> {
    let mut cmd = Cli::command();
    // Into memory first: clap_complete panics when its writer fails
    // (`lvsup completions bash | head`); ours returns the error.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "lvsup", &mut script);
    print(&String::from_utf8_lossy(&script))?;
    Ok(exit::OK)
}

pub fn manpages(dir: &Path) -> Result<u8> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(Cli::command(), dir)?;
    eprintln!("wrote the man pages into {}", dir.display());
    Ok(exit::OK)
}
