//! `lvsup validate`: check a cluster file, print its one-line summary.

use anyhow::Result;

use super::{FileArg, exit};
use crate::config;

pub fn run(a: FileArg) -> Result<u8> {
    let spec = config::load(&a.file)?;
    println!("{}", spec.summary());
    Ok(exit::OK)
}
