//! Finding a running daemon's control socket from its director.toml (used by
//! `lvsup director status`; the command itself is in `crate::cmd::director`).

use std::path::{Path, PathBuf};

use crate::layout;

/// The socket of the daemon configured by `config`, or of the only
/// director.toml under [`layout::CONFIG_ROOT`].
pub fn socket_for(config: Option<&Path>) -> anyhow::Result<PathBuf> {
    let config = match config {
        Some(c) => c.to_path_buf(),
        None => {
            let mut found: Vec<PathBuf> = std::fs::read_dir(layout::CONFIG_ROOT)
                .map(|rd| {
                    rd.filter_map(Result::ok)
                        .filter_map(|e| {
                            let name = e.file_name();
                            name.to_str().map(layout::director_config_path)
                        })
                        .map(PathBuf::from)
                        .filter(|p| p.is_file())
                        .collect()
                })
                .unwrap_or_default();
            found.sort();
            match found.len() {
                1 => found.remove(0),
                0 => anyhow::bail!(
                    "no {} on this host: give --config or --socket",
                    layout::director_config_path(layout::ANY_CLUSTER)
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
    Ok(PathBuf::from(layout::director_socket_path(&cluster)))
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
