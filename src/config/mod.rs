//! `cluster.toml`: parsing into the raw serde schema ([`raw`]), validation into
//! the typed model ([`model`]), problems that name key, value and line
//! ([`diag`]), warnings about valid but doubtful files ([`warnings`]) and the
//! `validate --json` document ([`report`]).

pub mod diag;
pub mod init;
pub mod model;
pub mod parse;
pub mod raw;
pub mod report;
pub mod validate;
pub mod warnings;

use std::path::Path;

pub use diag::{ConfigError, Problem};
pub use model::*;
pub use warnings::Warning;

/// A valid file and its warnings (placed: with line and column).
#[derive(Debug, Clone)]
pub struct Checked {
    pub spec: ClusterSpec,
    pub warnings: Vec<Warning>,
}

/// Parse and validate a cluster file's text. `file` names it in messages.
pub fn parse_str(file: &str, text: &str) -> Result<ClusterSpec, ConfigError> {
    let (raw, problems) = parse::parse_raw(text);
    validate::validate(text, &raw, problems).map_err(|p| ConfigError::new(file, text, p))
}

/// Parse and validate a cluster file's text, and find its warnings.
pub fn check_str(file: &str, text: &str) -> Result<Checked, ConfigError> {
    let spec = parse_str(file, text)?;
    let mut warnings = warnings::check(&spec);
    for w in &mut warnings {
        w.place(text);
    }
    Ok(Checked { spec, warnings })
}

/// Read, parse and validate a cluster file.
pub fn load(path: &Path) -> Result<ClusterSpec, ConfigError> {
    let (file, text) = read(path)?;
    parse_str(&file, &text)
}

/// Read, parse and validate a cluster file, and find its warnings.
pub fn check_file(path: &Path) -> Result<Checked, ConfigError> {
    let (file, text) = read(path)?;
    check_str(&file, &text)
}

fn read(path: &Path) -> Result<(String, String), ConfigError> {
    let file = path.display().to_string();
    tracing::debug!("reading cluster file {file}");
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::whole_file(&file, "(file)", format!("cannot read {file}: {e}"))
    })?;
    Ok((file, text))
}
