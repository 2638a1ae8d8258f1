//! `cluster.toml`: parsing into the raw serde schema ([`raw`]), validation into
//! the typed model ([`model`]), and problems that name key, value and line ([`diag`]).

pub mod diag;
pub mod model;
pub mod parse;
pub mod raw;
pub mod validate;

use std::path::Path;

pub use diag::{ConfigError, Problem};
pub use model::*;

/// Parse and validate a cluster file's text. `file` names it in messages.
pub fn parse_str(file: &str, text: &str) -> Result<ClusterSpec, ConfigError> {
    let (raw, problems) = parse::parse_raw(text);
    validate::validate(text, &raw, problems).map_err(|p| ConfigError::new(file, text, p))
}

/// Read, parse and validate a cluster file.
pub fn load(path: &Path) -> Result<ClusterSpec, ConfigError> {
    let file = path.display().to_string();
    tracing::debug!("reading cluster file {file}");
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::whole_file(&file, "(file)", format!("cannot read {file}: {e}"))
    })?;
    parse_str(&file, &text)
}
