//! `lvsup verify`: prove a running cluster works; print the report.

use std::path::PathBuf;

use clap::Args;

use std::io::{BufRead, IsTerminal, Write};

use super::{exit, print, print_json, ssh_options};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The cluster file
    #[arg(
        short = 'f',
        long = "file",
        default_value = "cluster.toml",
        value_name = "FILE"
    )]
    file: PathBuf,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
    /// Only reachability and scheduling: stop no daemon, fail no real server
    #[arg(long)]
    skip_failover: bool,
    /// ssh_config for the hosts (default: the lab's when a lab is up, else the file's [ssh])
    #[arg(long, value_name = "FILE")]
    ssh_config: Option<PathBuf>,
    /// Command run on a real server to make it fail its health checks
    /// (default: prohibit routes to the directors, removed afterwards)
    #[arg(long, value_name = "CMD", requires = "rs_recover_cmd")]
    rs_fail_cmd: Option<String>,
    /// Command that undoes --rs-fail-cmd
    #[arg(long, value_name = "CMD", requires = "rs_fail_cmd")]
    rs_recover_cmd: Option<String>,
    /// Connections per scheduling batch (default 100; wrr: whole weight cycles)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch: Option<u32>,
    /// Run the disruptive checks (director and real-server failover) without asking
    #[arg(long, short = 'y')]
    yes: bool,
    /// Also crash the master (freeze its daemon with SIGSTOP, then resume
    /// it): the outage must stay within the backup's Master_Down_Interval + 1 s
    #[arg(long, conflicts_with = "skip_failover")]
    crash: bool,
    /// A local address to connect from (repeat it): for sh/mh, each address's
    /// connections must land on one server and the addresses spread by
    /// weight (2 equal servers: 14 addresses or more to judge the spread)
    #[arg(long, value_name = "ADDR")]
    source: Vec<std::net::IpAddr>,
}

pub fn run(a: VerifyArgs) -> anyhow::Result<u8> {
    let spec = crate::config::load(&a.file)?;
    let opts = ssh_options(&spec, &a.file, a.ssh_config)?;
    let ssh = crate::verify::exec::RemoteExec::new(&spec, opts, super::runtime()?)?;
    let mut opts = crate::verify::Options {
        skip_failover: a.skip_failover,
        skip_failover_why: None,
        rs_fail_cmd: a.rs_fail_cmd,
        rs_recover_cmd: a.rs_recover_cmd,
        batch: a.batch,
        crash_failover: a.crash,
        user: super::operator().0,
        machine: super::operator().1,
        sources: a.source,
    };
    // The failover checks disrupt a live cluster: like apply, ask first (a
    // terminal prompt, or --yes); without either they are skipped, said in
    // their SKIP rows, and everything else still runs.
    let disruptions = crate::verify::disruptions(&spec, &opts);
    if !disruptions.is_empty() && !a.yes {
        let refused = if std::io::stdin().is_terminal() {
            let mut err = std::io::stderr().lock();
            writeln!(err, "verify will disrupt cluster \"{}\":", spec.name)?;
            for d in &disruptions {
                writeln!(err, "  - {d}")?;
            }
            write!(err, "Run these failover checks? Only 'yes' is accepted: ")?;
            err.flush()?;
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            (line.trim() != "yes").then_some("not confirmed at the prompt (run with --yes)")
        } else {
            Some("not confirmed: no terminal to ask on (run with --yes to include them)")
        };
        if let Some(why) = refused {
            eprintln!(
                "verify: the failover checks were not confirmed: running the others only \
                 (lvsup verify --yes runs them; --skip-failover silences this)"
            );
            opts.skip_failover = true;
            opts.skip_failover_why = Some(why.to_string());
        }
    }
    eprintln!("verify \"{}\" over {}", spec.name, ssh.describe());
    let report = crate::verify::run(
        &spec,
        std::sync::Arc::new(ssh),
        &opts,
        super::current_thread_runtime()?,
    )?;
    if a.json {
        print_json(&report)?;
    } else {
        print(&report.render_text())?;
    }
    Ok(if report.passed { exit::OK } else { exit::ERROR })
}
