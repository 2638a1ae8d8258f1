//! Command line: parse arguments, run one command, map the outcome to an exit code.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, ConfigError};
use crate::{desired, lab, plan};

/// Exit codes, as documented in `docs/reference/cli.md`. Terraform's conventions for `plan`.
pub mod exit {
    /// Success (for `plan --detailed-exitcode`: success and no changes).
    pub const OK: u8 = 0;
    /// An error: invalid configuration, a host or step that failed.
    pub const ERROR: u8 = 1;
    /// `plan --detailed-exitcode` only: success, and there are changes to apply.
    pub const CHANGES: u8 = 2;
    /// The command line itself is wrong (unknown flag, missing argument).
    pub const USAGE: u8 = 64;
}

#[derive(Debug, Parser)]
#[command(
    name = "lvsup",
    version,
    about = "Build whole LVS/IPVS load-balancing clusters from one cluster.toml",
    long_about = None,
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a cluster file and print a one-line summary
    Validate(FileArg),
    /// Show what apply would change on every host
    Plan(PlanArgs),
    /// Converge every host to the cluster file over SSH (shows the plan, asks)
    Apply(crate::apply::ApplyArgs),
    /// The live cluster: master director, real servers' health, weights, connections
    Status(crate::apply::StatusArgs),
    /// Remove everything lvsup added on every host, restore sysctls
    Destroy(crate::apply::DestroyArgs),
    /// Build the cluster's hosts on this machine (root): containers, networks, sshd
    #[command(subcommand)]
    Lab(LabCommand),
    /// On a director: run the daemon, or ask it for its status
    #[command(subcommand)]
    Director(crate::director::cmd::DirectorCommand),
    /// Debugging aid: the kernel's IPVS table as lvsup reads it over netlink
    #[command(subcommand, hide = true)]
    Ipvs(IpvsCommand),
    /// Prove a running cluster works: VIP, scheduling, director and real-server failover, timed
    Verify(crate::verify::cli::VerifyArgs),
}

#[derive(Debug, Subcommand)]
enum IpvsCommand {
    /// Print the table in the `ipvsadm -Ln` layout (or as JSON)
    List {
        /// Print JSON instead
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum LabCommand {
    /// Create a host for every director and real server of the file, plus a client
    Up {
        #[command(flatten)]
        file: FileArg,
        /// Base root filesystem: a directory or an ext4 image (default: $LVSUP_LAB_BASE,
        /// /run/lvsup-lab/base, /var/cache/lvsup/lab-base.img)
        #[arg(long, value_name = "PATH")]
        base: Option<PathBuf>,
        /// Seconds to wait for every host's sshd
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// Do not require ip_vs/ipip in the kernel (to work on the lab itself)
        #[arg(long, hide = true)]
        no_kernel_check: bool,
    },
    /// Remove everything the lab created (also after a failed `up`)
    Down(FileArg),
    /// Show the lab's hosts, whether they run and answer SSH
    Status(FileArg),
    /// Print the lab's topology as JSON (hosts, links, addresses, segments): what
    /// `lab up` builds, and what vagrant/Vagrantfile reads to build the same with VMs
    Topology(FileArg),
    /// Run a command on a lab host (or `client`)
    Exec {
        #[command(flatten)]
        file: FileArg,
        /// A host name from the file, or `client`
        host: String,
        /// The command and its arguments
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
}

/// `-f FILE`, shared by every command that reads a cluster file.
#[derive(Debug, Args)]
pub struct FileArg {
    /// The cluster file
    #[arg(
        short = 'f',
        long = "file",
        default_value = "cluster.toml",
        value_name = "FILE"
    )]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
struct PlanArgs {
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
    live: crate::apply::LiveArgs,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            report(&e);
            ExitCode::from(exit::ERROR)
        }
    }
}

fn report(e: &anyhow::Error) {
    let mut stderr = std::io::stderr().lock();
    if let Some(ce) = e.downcast_ref::<ConfigError>() {
        let _ = write!(stderr, "{}", ce.render(color_stderr()));
    } else {
        let _ = writeln!(stderr, "error: {e:#}");
    }
}

fn color_stderr() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}

/// Run one parsed command; the returned number is the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Validate(a) => {
            let spec = config::load(&a.file)?;
            println!("{}", spec.summary());
            Ok(exit::OK)
        }
        Command::Plan(a) => {
            let spec = config::load(&a.file.file)?;
            if !a.offline {
                return crate::apply::cli_plan(&a.file.file, &a.live, a.json, a.detailed_exitcode);
            }
            let desired = desired::desired_cluster(&spec)?;
            let plan = plan::offline(&spec, &desired);
            let mut out = std::io::stdout().lock();
            if a.json {
                serde_json::to_writer_pretty(&mut out, &plan)?;
                writeln!(out)?;
            } else {
                write!(out, "{}", plan.render_text())?;
            }
            Ok(if a.detailed_exitcode && plan.has_changes() {
                exit::CHANGES
            } else {
                exit::OK
            })
        }
        Command::Apply(a) => crate::apply::cli_apply(a),
        Command::Status(a) => crate::apply::status::cli_status(a),
        Command::Destroy(a) => crate::apply::destroy::cli_destroy(a),
        Command::Lab(cmd) => run_lab(cmd),
        Command::Director(cmd) => crate::director::cmd::run(cmd),
        Command::Ipvs(IpvsCommand::List { json }) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (table, info) = rt.block_on(async {
                let mut c = crate::ipvs::IpvsClient::connect().await?;
                let info = c.info().await?;
                let table = c.services().await?;
                Ok::<_, crate::ipvs::IpvsError>((table, info))
            })?;
            let mut out = std::io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(
                    &mut out,
                    &serde_json::json!({
                        "version": info.version,
                        "conn_tab_size": info.conn_tab_size,
                        "services": table,
                    }),
                )?;
                writeln!(out)?;
            } else {
                write!(out, "{}", crate::ipvs::render_ipvsadm_ln(&table, &info))?;
            }
            Ok(exit::OK)
        }
        Command::Verify(a) => crate::verify::cli::run(a),
    }
}

fn run_lab(cmd: LabCommand) -> anyhow::Result<u8> {
    match cmd {
        LabCommand::Up {
            file,
            base,
            timeout,
            no_kernel_check,
        } => {
            let spec = config::load(&file.file)?;
            let opts = lab::UpOptions {
                base,
                skip_kernel_check: no_kernel_check,
                timeout: std::time::Duration::from_secs(timeout),
            };
            let start = std::time::Instant::now();
            eprintln!(
                "lab \"{}\": starting {} hosts...",
                spec.name,
                spec.directors.len() + spec.real_servers.len()
            );
            let state = lab::up(&spec, &file.file, &opts)?;
            print!("{}", lab::describe(&state, start.elapsed()));
            Ok(exit::OK)
        }
        LabCommand::Down(file) => {
            let spec = config::load(&file.file)?;
            let report = lab::down(&spec)?;
            if report.removed.is_empty() {
                println!("lab \"{}\": nothing to remove", spec.name);
            } else {
                println!(
                    "lab \"{}\": removed {}",
                    spec.name,
                    report.removed.join(", ")
                );
            }
            Ok(exit::OK)
        }
        LabCommand::Status(file) => {
            let spec = config::load(&file.file)?;
            print!("{}", lab::status(&spec)?);
            Ok(exit::OK)
        }
        LabCommand::Topology(file) => {
            let spec = config::load(&file.file)?;
            let t = lab::topology(&spec)?;
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &t)?;
            writeln!(out)?;
            Ok(exit::OK)
        }
        LabCommand::Exec { file, host, cmd } => {
            let spec = config::load(&file.file)?;
            let code = lab::exec(&spec, &host, &cmd)?;
            Ok(u8::try_from(code).unwrap_or(exit::ERROR))
        }
    }
}
