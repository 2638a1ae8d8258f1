//! `lvsup apply`: show the live plan, ask, converge, print the report
//! (or, with `--json --yes`, one JSON document: the plan and the report).
//! `lvsup apply PLANFILE` applies a saved plan (`plan -o`) without asking,
//! after checking that nothing it was made from changed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;

use super::plan::{plan_exit, print_plan};
use super::{
    FileArg, LiveArgs, TermProgress, check_locks, confirm, exit, live_options, lock_request, print,
    print_json, print_report, runtime,
};
use crate::apply::run::Report;
use crate::apply::saved::{self, SavedPlan};
use crate::apply::{BinarySource, Live, gather, live_plan, run as runner};
use crate::config;
use crate::plan::Plan;

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved by `lvsup plan -o PLANFILE`: apply exactly it, without
    /// asking; refused when the cluster file or any host changed since
    #[arg(value_name = "PLANFILE")]
    pub planfile: Option<PathBuf>,
    #[command(flatten)]
    pub file: FileArg,
    #[command(flatten)]
    pub live: LiveArgs,
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// The binary to install on directors (default: $LVSUP_DIRECTOR_BINARY,
    /// else this lvsup, when the directors' OS, arch and glibc can run it; a
    /// saved plan's own)
    #[arg(long, value_name = "PATH")]
    pub director_binary: Option<PathBuf>,
    /// Print the plan and the report as one JSON document (needs --yes: there is no
    /// plan on the terminal to confirm)
    #[arg(long, requires = "yes")]
    pub json: bool,
    /// Seconds to wait for the cluster lock when another lvsup apply or
    /// destroy holds it on a host (0: fail at once); the error names the holder
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub lock_timeout: u64,
}

/// `apply --json`.
#[derive(Serialize)]
struct ApplyDoc<'a> {
    plan: &'a Plan,
    /// `applied`, or `nothing_to_apply` (no host was touched)
    result: &'a str,
    report: Option<&'a Report>,
    ok: bool,
    /// What an interrupted `lvsup verify` had left, undone before the plan:
    /// `HOST: undid an interrupted verify from WHEN by WHO: WHAT`.
    verify_undone: &'a [String],
}

/// Read a saved plan.
fn read_saved(path: &Path) -> Result<SavedPlan> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the saved plan {}", path.display()))?;
    let s: SavedPlan = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a plan saved by `lvsup plan -o`", path.display()))?;
    if s.format_version != 1 {
        bail!(
            "{}: saved plan format_version {} is not supported (1 is)",
            path.display(),
            s.format_version
        );
    }
    Ok(s)
}

pub fn run(mut a: ApplyArgs) -> Result<u8> {
    let file = a.file.file.clone();
    let saved = match &a.planfile {
        None => None,
        Some(p) => {
            if !a.live.targets.is_empty() {
                bail!("--target with a saved plan: the plan's own hosts are applied");
            }
            let s = read_saved(p)?;
            a.live.targets = s.targets.clone();
            if a.director_binary.is_none() {
                a.director_binary = s.director_binary.as_ref().map(PathBuf::from);
            }
            // a saved plan was seen when it was made: apply asks no more
            a.yes = true;
            Some(s)
        }
    };
    // Without a saved plan: LVSUP_DIRECTOR_BINARY, like --director-binary (a CI
    // job sets it once for every plan and apply). A saved plan keeps the binary
    // it was made with.
    if saved.is_none() && a.director_binary.is_none() {
        a.director_binary = super::director_binary_from_env();
    }
    let cluster_bytes =
        std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let spec = config::load(&file)?;
    let mut opts = live_options(&spec, &file, &a.live)?;
    opts.lock = Some(lock_request("apply", a.lock_timeout, false));
    opts.undo_interrupted_verify = Some(super::operator().1);
    runtime()?.block_on(async {
        let binary = BinarySource::resolve(a.director_binary.as_deref())?;
        let live = gather(&spec, &file, &opts, Some(&binary), true).await?;
        let live = check_locks(live, "apply").await?;
        // whatever happens now, the locks are released and the connections closed
        let r = apply_locked(&a, &live, &binary, saved.as_ref(), &file, &cluster_bytes).await;
        live.close().await;
        r
    })
}

async fn apply_locked(
    a: &ApplyArgs,
    live: &Live,
    binary: &BinarySource,
    saved: Option<&SavedPlan>,
    file: &Path,
    cluster_bytes: &[u8],
) -> Result<u8> {
    let p = live_plan(live);
    if let (Some(s), Some(path)) = (saved, &a.planfile) {
        let now = saved::of(
            live,
            &p,
            &file.display().to_string(),
            cluster_bytes,
            binary,
            &a.live.targets,
        );
        let why = saved::stale_reasons(s, &now);
        if !why.is_empty() {
            bail!(
                "the saved plan {} is stale: {}; no host was touched. \
                 Make a new one with `lvsup plan -f {} -o {}`",
                path.display(),
                why.join("; "),
                file.display(),
                path.display()
            );
        }
    }
    if !a.json {
        print_plan(&p, false)?;
    }
    // Another lvsup cluster on a host conflicts with this one: nothing is
    // applied anywhere (a real server changed first would serve a cluster
    // whose directors cannot run).
    let shared: Vec<String> = p
        .errors
        .iter()
        .filter(|e| e.step == crate::plan::shared::CONFLICT_STEP)
        .map(|e| e.message.clone())
        .collect();
    if !shared.is_empty() {
        bail!("apply refused, no host was touched: {}", shared.join("; "));
    }
    if !p.has_changes() {
        let code = plan_exit(&p, false);
        if a.json {
            print_json(&ApplyDoc {
                plan: &p,
                result: "nothing_to_apply",
                report: None,
                ok: code == exit::OK,
                verify_undone: &live.verify_undone,
            })?;
        } else {
            print("Nothing to apply: no host was touched.\n")?;
        }
        return Ok(code);
    }
    if let Some(w) = crate::apply::debug_upload_warning(binary, &p) {
        eprintln!("warning: {w}");
    }
    if !confirm("Apply these changes?", a.yes)? {
        print("Apply cancelled: no host was touched.\n")?;
        return Ok(exit::ERROR);
    }
    let report = runner::apply(live, &p, binary, &TermProgress::new()).await;
    let ok = report.ok() && p.errors.is_empty();
    if a.json {
        print_json(&ApplyDoc {
            plan: &p,
            result: "applied",
            report: Some(&report),
            ok,
            verify_undone: &live.verify_undone,
        })?;
    } else {
        print_report(&report)?;
    }
    Ok(if ok { exit::OK } else { exit::ERROR })
}
