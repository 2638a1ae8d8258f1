//! The `lvsup validate --json` document (`format_version` 1):
//!
//! ```json
//! {
//!   "format_version": 1,
//!   "file": "cluster.toml",
//!   "valid": true,
//!   "deny_warnings": false,
//!   "summary": "web: DR, 1 service, 2 directors, 2 real servers",
//!   "counts": {"services": 1, "directors": 2, "real_servers": 2, "errors": 0, "warnings": 1},
//!   "errors": [],
//!   "warnings": [{"code": "slow-health-check", "key": "services[0].health.interval",
//!                 "message": "...", "hint": "...", "line": 31, "col": 12}]
//! }
//! ```
//!
//! `valid` says whether the file obeys every rule of the contract (errors is
//! empty); warnings never change it. `summary` and the host counts are `null`
//! for an invalid file. `line`/`col` are `null` for a problem that is not
//! about a place in the file (it cannot be read) and `hint` is left out when
//! there is none. The exit code is 1 when `valid` is false, or when
//! `deny_warnings` is true and there are warnings.

use serde::Serialize;

use super::{Checked, ConfigError};

pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct ValidateReport {
    pub format_version: u32,
    pub file: String,
    pub valid: bool,
    pub deny_warnings: bool,
    pub summary: Option<String>,
    pub counts: Counts,
    pub errors: Vec<Entry>,
    pub warnings: Vec<Entry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Counts {
    pub services: Option<usize>,
    pub directors: Option<usize>,
    pub real_servers: Option<usize>,
    pub errors: usize,
    pub warnings: usize,
}

/// One error or warning.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Warnings only: the rule's stable code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    pub key: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    pub line: Option<usize>,
    pub col: Option<usize>,
}

fn place(line: usize, col: usize) -> (Option<usize>, Option<usize>) {
    if line == 0 {
        (None, None)
    } else {
        (Some(line), Some(col))
    }
}

impl ValidateReport {
    /// The report of one file: `file` names it, `result` is [`super::check_file`]'s.
    pub fn new(file: &str, result: &Result<Checked, ConfigError>, deny_warnings: bool) -> Self {
        match result {
            Ok(c) => {
                let warnings: Vec<Entry> = c
                    .warnings
                    .iter()
                    .map(|w| {
                        let (line, col) = place(w.line, w.col);
                        Entry {
                            code: Some(w.code),
                            key: w.key.clone(),
                            message: w.message.clone(),
                            hint: w.hint.clone(),
                            line,
                            col,
                        }
                    })
                    .collect();
                ValidateReport {
                    format_version: FORMAT_VERSION,
                    file: file.to_string(),
                    valid: true,
                    deny_warnings,
                    summary: Some(c.spec.summary()),
                    counts: Counts {
                        services: Some(c.spec.services.len()),
                        directors: Some(c.spec.directors.len()),
                        real_servers: Some(c.spec.real_servers.len()),
                        errors: 0,
                        warnings: warnings.len(),
                    },
                    errors: Vec::new(),
                    warnings,
                }
            }
            Err(e) => {
                let errors: Vec<Entry> = e
                    .problems
                    .iter()
                    .map(|p| {
                        let (line, col) = if p.span.is_some() {
                            place(p.line, p.col)
                        } else {
                            (None, None)
                        };
                        Entry {
                            code: None,
                            key: p.key.clone(),
                            message: p.message.clone(),
                            hint: p.hint.clone(),
                            line,
                            col,
                        }
                    })
                    .collect();
                ValidateReport {
                    format_version: FORMAT_VERSION,
                    file: file.to_string(),
                    valid: false,
                    deny_warnings,
                    summary: None,
                    counts: Counts {
                        services: None,
                        directors: None,
                        real_servers: None,
                        errors: errors.len(),
                        warnings: 0,
                    },
                    errors,
                    warnings: Vec::new(),
                }
            }
        }
    }

    /// Whether the command succeeds: valid, and no warnings if they are denied.
    pub fn passed(&self) -> bool {
        self.valid && (self.warnings.is_empty() || !self.deny_warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::check_str;

    const ONE_DIRECTOR: &str = "[cluster]\nname = \"web\"\nvip = \"192.0.2.100\"\nmode = \"dr\"\n\n[[services]]\nport = 80\n\n[[directors]]\nname = \"d1\"\naddress = \"192.0.2.11\"\n\n[[real_servers]]\nname = \"r1\"\naddress = \"192.0.2.21\"\n\n[[real_servers]]\nname = \"r2\"\naddress = \"192.0.2.22\"\n";

    #[test]
    fn valid_file_with_a_warning() {
        let r = ValidateReport::new("t.toml", &check_str("t.toml", ONE_DIRECTOR), false);
        assert!(r.valid && r.passed());
        assert_eq!(r.counts.warnings, 1);
        assert_eq!(r.warnings[0].code, Some("single-director"));
        assert_eq!(r.warnings[0].line, Some(9));
        let denied = ValidateReport::new("t.toml", &check_str("t.toml", ONE_DIRECTOR), true);
        assert!(denied.valid && !denied.passed());
        let v = serde_json::to_value(&denied).expect("json");
        assert_eq!(v["format_version"], 1);
        assert_eq!(v["counts"]["directors"], 1);
        assert!(v["warnings"][0].get("hint").is_some());
    }

    #[test]
    fn invalid_file() {
        let text = ONE_DIRECTOR.replace("port = 80", "port = 0");
        let r = ValidateReport::new("t.toml", &check_str("t.toml", &text), false);
        assert!(!r.valid && !r.passed());
        assert_eq!(r.summary, None);
        assert_eq!(r.errors.len(), 1);
        assert_eq!(r.errors[0].key, "services[0].port");
        assert_eq!((r.errors[0].line, r.errors[0].col), (Some(7), Some(8)));
        let v = serde_json::to_value(&r).expect("json");
        assert!(v["errors"][0].get("code").is_none());
        assert_eq!(v["counts"]["services"], serde_json::Value::Null);
    }
}
