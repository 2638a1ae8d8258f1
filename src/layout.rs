//! Where lvsup puts things on a host: unit names and file paths, in one place
//! (pure; imports nothing). `desired` renders them, facts gathering reads them
//! back, `destroy` removes them, the director core names its unit in messages
//! and `verify` stops and starts it. docs/reference/hosts.md lists them all.

/// Where lvsup installs its own binary on directors.
pub const BINARY_PATH: &str = "/usr/local/bin/lvsup";

pub fn director_unit(cluster: &str) -> String {
    format!("lvsup-director-{cluster}.service")
}
pub fn realserver_unit(cluster: &str) -> String {
    format!("lvsup-realserver-{cluster}.service")
}
pub fn director_config_path(cluster: &str) -> String {
    format!("/etc/lvsup/{cluster}/director.toml")
}
/// The nftables ruleset marking the packets of a cluster's fwmark services
/// (directors with a fwmark service only; loaded by the director unit).
pub fn fwmark_rules_path(cluster: &str) -> String {
    format!("/etc/lvsup/{cluster}/fwmark.nft")
}
/// The nftables table lvsup owns for a cluster's fwmark marks (family ip).
pub fn fwmark_table(cluster: &str) -> String {
    format!("lvsup_{cluster}")
}
/// Where nft is on directors (Debian, Fedora, SUSE; /sbin with merged /usr).
pub const NFT_PATH: &str = "/usr/sbin/nft";
/// Where apply records the values sysctls had before lvsup changed them
/// (JSON: key → value, or null when the key did not exist).
pub fn previous_sysctl_path(cluster: &str) -> String {
    format!("/var/lib/lvsup/{cluster}/previous-sysctl.json")
}
/// Where a NAT real server's unit records the default route(s) it replaced.
pub fn previous_route_path(cluster: &str) -> String {
    format!("/var/lib/lvsup/{cluster}/previous-default-route")
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

/// Where `lvsup verify` writes the undo record of each disruption it makes on
/// a host (one file per disruption, removed once it is undone): the next
/// `verify`, `apply` or `destroy` replays what an interrupted verify left.
pub fn verify_undo_dir(cluster: &str) -> String {
    format!("/var/lib/lvsup/{cluster}/verify-undo")
}

/// The largest undo record read back (lvsup's are a few hundred bytes).
pub const VERIFY_UNDO_MAX_BYTES: usize = 16 * 1024;
