//! Where lvsup puts things on a host: unit names and file paths, in one place
//! (pure; imports nothing). `desired` renders them, facts gathering reads them
//! back, `destroy` removes them, the director core names its unit in messages,
//! the daemon listens on its socket, `apply` and `destroy` lock the cluster's
//! state directory and `verify` stops and starts the unit.
//! docs/reference/hosts.md lists them all.
//!
//! Every per-cluster name takes the validated cluster name
//! (`[a-z][a-z0-9-]*`); given [`ANY_CLUSTER`] it is the shell glob of every
//! cluster's (the facts script sends the other clusters' files so), and
//! [`cluster_in`] reads the name back out of a path.

/// Where lvsup installs its own binary on directors.
pub const BINARY_PATH: &str = "/usr/local/bin/lvsup";

/// The cluster name that makes a per-cluster path the shell glob of every
/// cluster's.
pub const ANY_CLUSTER: &str = "*";

/// The cluster a path of `path_of` names (`cluster_in(p, sysctl_path)`),
/// when `path` is such a path; the name is not checked here.
pub fn cluster_in(path: &str, path_of: fn(&str) -> String) -> Option<&str> {
    let any = path_of(ANY_CLUSTER);
    let (prefix, suffix) = any.split_once(ANY_CLUSTER)?;
    path.strip_prefix(prefix)?.strip_suffix(suffix)
}

pub fn director_unit(cluster: &str) -> String {
    format!("lvsup-director-{cluster}.service")
}
pub fn realserver_unit(cluster: &str) -> String {
    format!("lvsup-realserver-{cluster}.service")
}

/// lvsup's configuration on a host: one directory per cluster under it.
pub const CONFIG_ROOT: &str = "/etc/lvsup";
pub fn config_dir(cluster: &str) -> String {
    format!("{CONFIG_ROOT}/{cluster}")
}
pub fn director_config_path(cluster: &str) -> String {
    format!("{}/director.toml", config_dir(cluster))
}
/// The nftables ruleset marking the packets of a cluster's fwmark services
/// (directors with a fwmark service only; loaded by the director unit).
pub fn fwmark_rules_path(cluster: &str) -> String {
    format!("{}/fwmark.nft", config_dir(cluster))
}
/// The nftables table lvsup owns for a cluster's fwmark marks (family ip).
pub fn fwmark_table(cluster: &str) -> String {
    format!("lvsup_{cluster}")
}
/// Where nft is on directors (Debian, Fedora, SUSE; /sbin with merged /usr).
pub const NFT_PATH: &str = "/usr/sbin/nft";

/// lvsup's state on a host: one directory per cluster under it.
pub const STATE_ROOT: &str = "/var/lib/lvsup";
/// A cluster's state directory, which also holds the cluster lock (`lock`,
/// `lock.owner`: `crate::apply::lock`).
pub fn state_dir(cluster: &str) -> String {
    format!("{STATE_ROOT}/{cluster}")
}
/// Where apply records the values sysctls had before lvsup changed them
/// (JSON: key → value, or null when the key did not exist).
pub fn previous_sysctl_path(cluster: &str) -> String {
    format!("{}/previous-sysctl.json", state_dir(cluster))
}
/// Where a NAT real server's unit records the default route(s) it replaced.
pub fn previous_route_path(cluster: &str) -> String {
    format!("{}/previous-default-route", state_dir(cluster))
}

/// The director unit's `RuntimeDirectory=` (under /run; systemd creates it,
/// mode 0700, and removes it when the unit stops).
pub fn director_runtime_directory(cluster: &str) -> String {
    format!("lvsup/{cluster}")
}
/// The daemon's control socket: `/run/lvsup/<cluster>/director.sock` (in
/// the unit's [`director_runtime_directory`]; the socket 0600).
pub fn director_socket_path(cluster: &str) -> String {
    format!("/run/{}/director.sock", director_runtime_directory(cluster))
}

pub fn sysctl_path(cluster: &str) -> String {
    format!("/etc/sysctl.d/90-lvsup-{cluster}.conf")
}
pub fn modules_path(cluster: &str) -> String {
    format!("/etc/modules-load.d/lvsup-{cluster}.conf")
}
pub fn unit_path(unit: &str) -> String {
    format!("/etc/systemd/system/{unit}")
}
/// The unit file of a cluster's real-server unit.
pub fn realserver_unit_path(cluster: &str) -> String {
    unit_path(&realserver_unit(cluster))
}

/// Where `lvsup verify` writes the undo record of each disruption it makes on
/// a host (one file per disruption, removed once it is undone): the next
/// `verify`, `apply` or `destroy` replays what an interrupted verify left.
pub fn verify_undo_dir(cluster: &str) -> String {
    format!("{}/{VERIFY_UNDO_SUBDIR}", state_dir(cluster))
}
/// The name of [`verify_undo_dir`] in the cluster's [`state_dir`].
pub const VERIFY_UNDO_SUBDIR: &str = "verify-undo";

/// The largest undo record read back (lvsup's are a few hundred bytes).
pub const VERIFY_UNDO_MAX_BYTES: usize = 16 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_cluster_and_read_it_back() {
        assert_eq!(director_config_path("web"), "/etc/lvsup/web/director.toml");
        assert_eq!(
            previous_sysctl_path("web"),
            "/var/lib/lvsup/web/previous-sysctl.json"
        );
        assert_eq!(verify_undo_dir("web"), "/var/lib/lvsup/web/verify-undo");
        assert_eq!(director_socket_path("web"), "/run/lvsup/web/director.sock");
        assert_eq!(sysctl_path(ANY_CLUSTER), "/etc/sysctl.d/90-lvsup-*.conf");
        let p = realserver_unit_path("api-2");
        assert_eq!(p, "/etc/systemd/system/lvsup-realserver-api-2.service");
        assert_eq!(cluster_in(&p, realserver_unit_path), Some("api-2"));
        assert_eq!(
            cluster_in("/etc/lvsup/db/director.toml", director_config_path),
            Some("db")
        );
        assert_eq!(
            cluster_in("/etc/lvsup/db/fwmark.nft", director_config_path),
            None
        );
        assert_eq!(
            cluster_in("/etc/sysctl.d/90-lvsup-.conf", sysctl_path),
            Some("")
        );
    }
}
