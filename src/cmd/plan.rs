//! `lvsup plan`: offline (fresh hosts, no SSH) or against the hosts.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::{
    FileArg, LiveArgs, Stream, Tone, color, exit, live_options, paint, print, print_json, runtime,
};
use crate::apply::{BinarySource, check_targets, gather, live_plan};
use crate::plan::Plan;
use crate::{config, desired, plan};

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    file: FileArg,
    /// Do not contact any host: plan against fresh hosts
    #[arg(long)]
    offline: bool,
    /// Print the plan as JSON
    #[arg(long)]
    json: bool,
    /// Exit 0 when there are no changes, 2 when there are, 1 on error
    #[arg(long)]
    detailed_exitcode: bool,
    #[command(flatten)]
    live: LiveArgs,
    /// Save the plan to PLANFILE (JSON, with the cluster file's and each
    /// host's facts digest) for `lvsup apply PLANFILE`; overwritten if there.
    /// Not with --offline: an offline plan has no facts to check
    #[arg(
        short = 'o',
        long = "out",
        value_name = "PLANFILE",
        conflicts_with = "offline"
    )]
    out: Option<PathBuf>,
    /// The binary apply will install on directors (default:
    /// $LVSUP_DIRECTOR_BINARY, else this lvsup); a saved plan records it
    #[arg(long, value_name = "PATH")]
    director_binary: Option<PathBuf>,
}

pub fn run(a: PlanArgs) -> Result<u8> {
    let file = &a.file.file;
    let spec = config::load(file)?;
    if a.offline {
        check_targets(&spec, file, &a.live.targets)?;
        let desired = desired::desired_cluster(&spec)?;
        let mut plan = plan::offline(&spec, &desired);
        if !a.live.targets.is_empty() {
            plan.hosts.retain(|h| a.live.targets.contains(&h.host));
        }
        print_plan(&plan, a.json)?;
        return Ok(if a.detailed_exitcode && plan.has_changes() {
            exit::CHANGES
        } else {
            exit::OK
        });
    }
    let opts = live_options(&spec, file, &a.live)?;
    runtime()?.block_on(async {
        let path = a
            .director_binary
            .clone()
            .or_else(super::director_binary_from_env);
        let binary = BinarySource::resolve(path.as_deref())?;
        let live = gather(&spec, file, &opts, Some(&binary), true).await?;
        let p = live_plan(&live);
        print_plan(&p, a.json)?;
        if let Some(out) = &a.out {
            if let Err(e) = save(&a, out, &live, &p, &binary) {
                live.close().await;
                return Err(e);
            }
        }
        if p.hosts.is_empty() && !p.errors.is_empty() {
            eprintln!(
                "no host could be planned; `lvsup plan -f {} --offline` plans against fresh hosts",
                file.display()
            );
        }
        live.close().await;
        Ok(plan_exit(&p, a.detailed_exitcode))
    })
}

/// `plan -o PLANFILE`: write the saved plan (not when a host could not be
/// planned: applying it would skip that host silently).
fn save(
    a: &PlanArgs,
    out: &std::path::Path,
    live: &crate::apply::Live,
    p: &Plan,
    binary: &BinarySource,
) -> Result<()> {
    if !p.errors.is_empty() {
        anyhow::bail!(
            "the plan was not saved to {}: {} host(s) could not be planned",
            out.display(),
            p.errors.len()
        );
    }
    let file = &a.file.file;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let s = crate::apply::saved::of(
        live,
        p,
        &file.display().to_string(),
        &bytes,
        binary,
        &a.live.targets,
    );
    let text = serde_json::to_string_pretty(&s)? + "\n";
    std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "Saved the plan to {}: `lvsup apply -f {} {}` applies exactly it (refused if a host or the file changed).",
        out.display(),
        file.display(),
        out.display()
    );
    Ok(())
}

/// The plan on stdout, as text (colored on a terminal) or JSON.
pub fn print_plan(p: &Plan, json: bool) -> Result<()> {
    if json {
        print_json(p)
    } else {
        print(&paint(&p.render_text(), color(Stream::Stdout), plan_tone))
    }
}

/// Terraform's colors for the lines of a plan (and of destroy's list):
/// `+` green, `-` red, `~` yellow, diff lines alike, errors red, the closing
/// line bold.
pub fn plan_tone(line: &str) -> Option<Tone> {
    if let Some(d) = line.strip_prefix("      ") {
        // a file's unified diff, indented by six
        return if d.starts_with("+++ ") || d.starts_with("--- ") || d.starts_with("@@") {
            Some(Tone::Bold)
        } else if d.starts_with('+') {
            Some(Tone::Add)
        } else if d.starts_with('-') {
            Some(Tone::Remove)
        } else {
            None
        };
    }
    if let Some(c) = line.strip_prefix("  ") {
        return match c.get(..2) {
            Some("+ ") => Some(Tone::Add),
            Some("- ") => Some(Tone::Remove),
            Some("~ ") => Some(Tone::Change),
            _ => None,
        };
    }
    if line.contains(": ERROR at step ") {
        Some(Tone::Remove)
    } else if line.starts_with("Plan:")
        || line.starts_with("No changes")
        || line.contains("could not be planned")
    {
        Some(Tone::Bold)
    } else {
        None
    }
}

/// A live plan's exit code: hosts that could not be planned are an error.
pub fn plan_exit(p: &Plan, detailed: bool) -> u8 {
    if !p.errors.is_empty() {
        exit::ERROR
    } else if detailed && p.has_changes() {
        exit::CHANGES
    } else {
        exit::OK
    }
}

#[cfg(test)]
mod tests {
    use super::{Tone, plan_tone};

    #[test]
    fn plan_lines_get_terraform_colors() {
        assert_eq!(plan_tone("  + create file /x"), Some(Tone::Add));
        assert_eq!(plan_tone("  - remove unit x"), Some(Tone::Remove));
        assert_eq!(plan_tone("  ~ update file /x"), Some(Tone::Change));
        assert_eq!(plan_tone("      +new line"), Some(Tone::Add));
        assert_eq!(plan_tone("      -old line"), Some(Tone::Remove));
        assert_eq!(plan_tone("      --- /dev/null"), Some(Tone::Bold));
        assert_eq!(plan_tone("       context"), None);
        assert_eq!(plan_tone("  = a note"), None);
        assert_eq!(plan_tone("node1 (real server, 10.0.0.1): 8 changes"), None);
        assert_eq!(
            plan_tone("lvs1: ERROR at step \"connect\": refused"),
            Some(Tone::Remove)
        );
        assert_eq!(
            plan_tone("Plan: 1 to create, 0 to update"),
            Some(Tone::Bold)
        );
    }
}
