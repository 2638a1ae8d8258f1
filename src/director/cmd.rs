//! `lvsup director ...`: the subcommands run on a director. Kept here so the
//! top-level CLI only names them.

use std::io::Write as _;
use std::path::{Path, PathBuf};

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
        /// Print the daemon's JSON (schema: lvsup::director::status::Status)
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
            super::daemon::run(super::daemon::RunOptions {
                config,
                no_ipvs,
                socket,
            })?;
            Ok(0)
        }
        #[cfg(target_os = "linux")]
        DirectorCommand::Status {
            config,
            socket,
            json,
        } => {
            let path = match socket {
                Some(p) => p,
                None => socket_for(config.as_deref())?,
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let st = rt.block_on(super::control::query(&path))?;
            let mut out = std::io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut out, &st)?;
                writeln!(out)?;
            } else {
                write!(out, "{}", st.render_text())?;
            }
            Ok(0)
        }
        #[cfg(not(target_os = "linux"))]
        _ => anyhow::bail!("the director daemon runs on Linux only"),
    }
}

/// The socket of the daemon configured by `config`, or of the only
/// director.toml under /etc/lvsup.
pub fn socket_for(config: Option<&Path>) -> anyhow::Result<PathBuf> {
    let config = match config {
        Some(c) => c.to_path_buf(),
        None => {
            let mut found: Vec<PathBuf> = std::fs::read_dir("/etc/lvsup")
                .map(|rd| {
                    rd.filter_map(Result::ok)
                        .map(|e| e.path().join("director.toml"))
                        .filter(|p| p.is_file())
                        .collect()
                })
                .unwrap_or_default();
            found.sort();
            match found.len() {
                1 => found.remove(0),
                0 => anyhow::bail!(
                    "no /etc/lvsup/*/director.toml on this host: give --config or --socket"
                ),
                _ => anyhow::bail!(
                    "several clusters on this host ({}): give --config",
                    found
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
    };
    let text = std::fs::read_to_string(&config)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", config.display()))?;
    let cluster = cluster_of(&text)
        .ok_or_else(|| anyhow::anyhow!("{}: no `cluster = \"...\"` line", config.display()))?;
    Ok(PathBuf::from(super::socket_path(&cluster)))
}

/// The `cluster = "name"` of a director.toml, read line by line rather than
/// parsed: status must work while the file on disk is broken (that is when
/// an operator asks whether the daemon refused it).
pub fn cluster_of(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("cluster")?.trim_start();
        let v = rest.strip_prefix('=')?.trim();
        let v = v.strip_prefix('"')?;
        let end = v.find('"')?;
        Some(v[..end].to_string())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn cluster_of_a_broken_file() {
        assert_eq!(
            super::cluster_of("# x\ncluster = \"web\"\nbogus = [\n").as_deref(),
            Some("web")
        );
        assert_eq!(super::cluster_of("clusters = 1\n"), None);
    }
}
