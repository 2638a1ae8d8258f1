//! `lvsup director ...`: the subcommands run on a director.

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum DirectorCommand {
    /// Run the director daemon in the foreground (systemd starts it): VRRP,
    /// health checks, IPVS reconcile, control socket
    Run {
        /// The daemon's configuration (rendered by `lvsup apply`)
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Control socket (default /run/lvsup/<cluster>/director.sock)
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        /// Run without IPVS: VRRP, addresses, ARP and health checks only (labs
        /// on kernels without ip_vs)
        #[arg(long, hide = true)]
        no_ipvs: bool,
    },
    /// Ask the running daemon for its status (VRRP state, health, IPVS counters)
    Status {
        /// The daemon's configuration, to find its socket (default: the only
        /// /etc/lvsup/*/director.toml)
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Control socket, instead of finding it from the config
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        /// Print the daemon's JSON (schema: lvsup::contract::status::Status)
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: DirectorCommand) -> anyhow::Result<u8> {
    match cmd {
        #[cfg(target_os = "linux")]
        DirectorCommand::Run {
            config,
            socket,
            no_ipvs,
        } => {
            crate::director::daemon::run(
                crate::director::daemon::RunOptions {
                    config,
                    no_ipvs,
                    socket,
                },
                &super::current_thread_runtime()?,
            )?;
            Ok(super::exit::OK)
        }
        #[cfg(target_os = "linux")]
        DirectorCommand::Status {
            config,
            socket,
            json,
        } => {
            let path = match socket {
                Some(p) => p,
                None => crate::director::socket::socket_for(config.as_deref())?,
            };
            let st = super::runtime()?.block_on(crate::director::control::query(&path))?;
            if json {
                super::print_json(&st)?;
            } else {
                super::print(&st.render_text())?;
            }
            Ok(super::exit::OK)
        }
        #[cfg(not(target_os = "linux"))]
        _ => anyhow::bail!("the director daemon runs on Linux only"),
    }
}
