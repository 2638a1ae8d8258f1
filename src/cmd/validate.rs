//! `lvsup validate`: check a cluster file, print its one-line summary (which
//! is also its closing summary line), or with `--json` one document saying
//! whether it is valid and, if not, every problem.

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use super::{FileArg, exit, print, print_json};
use crate::config::{self, Mode};

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub file: FileArg,
    /// Print the result as JSON (problems included; exit 1 when invalid)
    #[arg(long)]
    pub json: bool,
}

/// `validate --json`.
#[derive(Debug, Serialize)]
struct Validation {
    file: String,
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<Summary>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    problems: Vec<ProblemView>,
}

#[derive(Debug, Serialize)]
struct Summary {
    name: String,
    mode: Mode,
    services: usize,
    directors: usize,
    real_servers: usize,
    summary: String,
}

#[derive(Debug, Serialize)]
struct ProblemView {
    key: String,
    message: String,
    /// 1-based; 0 when the problem is about the whole file.
    line: usize,
    col: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
}

pub fn run(a: ValidateArgs) -> Result<u8> {
    let loaded = config::load(&a.file.file);
    if !a.json {
        print(&format!("{}\n", loaded?.summary()))?;
        return Ok(exit::OK);
    }
    let file = a.file.file.display().to_string();
    let (doc, code) = match loaded {
        Ok(spec) => (
            Validation {
                file,
                valid: true,
                cluster: Some(Summary {
                    name: spec.name.clone(),
                    mode: spec.mode,
                    services: spec.services.len(),
                    directors: spec.directors.len(),
                    real_servers: spec.real_servers.len(),
                    summary: spec.summary(),
                }),
                problems: vec![],
            },
            exit::OK,
        ),
        Err(e) => (
            Validation {
                file,
                valid: false,
                cluster: None,
                problems: e
                    .problems
                    .iter()
                    .map(|p| ProblemView {
                        key: p.key.clone(),
                        message: p.message.clone(),
                        line: p.line,
                        col: p.col,
                        hint: p.hint.clone(),
                    })
                    .collect(),
            },
            exit::ERROR,
        ),
    };
    print_json(&doc)?;
    Ok(code)
}
