//! `lvsup lab ...`: the cluster's hosts as containers on this machine.

use std::path::PathBuf;

use clap::Subcommand;

use super::{FileArg, exit, print, print_json};
use crate::{config, lab};

#[derive(Debug, Subcommand)]
pub enum LabCommand {
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

pub fn run(cmd: LabCommand) -> anyhow::Result<u8> {
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
            print(&lab::describe(&state, start.elapsed()))?;
            Ok(exit::OK)
        }
        LabCommand::Down(file) => {
            let spec = config::load(&file.file)?;
            let report = lab::down(&spec)?;
            if report.removed.is_empty() {
                print(&format!("lab \"{}\": nothing to remove\n", spec.name))?;
            } else {
                print(&format!(
                    "lab \"{}\": removed {}\n",
                    spec.name,
                    report.removed.join(", ")
                ))?;
            }
            Ok(exit::OK)
        }
        LabCommand::Status(file) => {
            let spec = config::load(&file.file)?;
            print(&lab::status(&spec)?)?;
            Ok(exit::OK)
        }
        LabCommand::Topology(file) => {
            let spec = config::load(&file.file)?;
            print_json(&lab::topology(&spec)?)?;
            Ok(exit::OK)
        }
        LabCommand::Exec { file, host, cmd } => {
            let spec = config::load(&file.file)?;
            let code = lab::exec(&spec, &host, &cmd)?;
            Ok(u8::try_from(code).unwrap_or(exit::ERROR))
        }
    }
}
