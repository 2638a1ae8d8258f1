//! The raw serde schema of `cluster.toml`: exactly the keys of the contract
//! (`docs/reference/cluster-toml.md`), every leaf wrapped in [`Spanned`] so that
//! validation can point at the offending value. Unknown keys are errors
//! (`deny_unknown_fields`), and the key lists used for "did you mean" hints are
//! read back from these types (see [`fields`]), so the schema lives in one place.
//!
//! Integers are read as `i64` and enumerations as strings on purpose: range and
//! spelling errors are then ours to word ("vrid must be 1..=255, got 300"; "did
//! you mean `rr`?") instead of serde's generic "invalid value".

use serde::Deserialize;
use toml::Spanned;

pub type S<T> = Option<Spanned<T>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub name: S<String>,
    pub vip: S<String>,
    pub mode: S<String>,
    pub interface: S<String>,
    pub vrid: S<i64>,
    pub advert_interval: S<String>,
    pub preempt: S<bool>,
    pub vrrp_unicast: S<bool>,
    pub vrrp_accept_foreign: S<bool>,
    pub sync_daemon: S<bool>,
    pub metrics: S<String>,
    pub ipvs_timeouts: Option<Spanned<RawIpvsTimeouts>>,
    pub expire_nodest_conn: S<bool>,
    pub expire_quiescent_template: S<bool>,
    pub drain_timeout: S<String>,
    pub preempt_delay: S<String>,
    pub notify: Option<Spanned<RawNotify>>,
}

/// `[cluster] notify = { master = ["/path", "arg"], backup = [...], ... }`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    pub master: S<Vec<String>>,
    pub backup: S<Vec<String>>,
    pub fault: S<Vec<String>>,
    pub stop: S<Vec<String>>,
}

/// `[cluster] ipvs_timeouts = { tcp = "900s", tcpfin = "120s", udp = "300s" }`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIpvsTimeouts {
    pub tcp: S<String>,
    pub tcpfin: S<String>,
    pub udp: S<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSsh {
    pub user: S<String>,
    pub port: S<i64>,
    pub identity_file: S<String>,
    pub config: S<String>,
    #[serde(rename = "become")]
    pub become_: S<String>,
    pub host_key_checking: S<String>,
    pub control_persist: S<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub name: S<String>,
    pub vip: S<String>,
    pub port: S<i64>,
    pub protocol: S<String>,
    pub scheduler: S<String>,
    pub persistence: S<String>,
    pub persistence_netmask: S<String>,
    pub fwmark: S<i64>,
    pub ports: S<Vec<Spanned<i64>>>,
    pub sorry_server: S<String>,
    pub health: Option<Spanned<RawHealth>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub check: S<String>,
    pub interval: S<String>,
    pub timeout: S<String>,
    pub fall: S<i64>,
    pub rise: S<i64>,
    pub port: S<i64>,
    pub path: S<String>,
    pub expect_status: S<i64>,
    pub expect_body: S<String>,
    pub expect_digest: S<String>,
    pub tls_verify: S<bool>,
    pub sni: S<String>,
    pub script: S<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDirector {
    pub name: S<String>,
    pub metrics: S<String>,
    pub address: S<String>,
    pub priority: S<i64>,
    pub ssh_host: S<String>,
    pub internal_address: S<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRealServer {
    pub name: S<String>,
    pub address: S<String>,
    pub weight: S<i64>,
    pub port: S<i64>,
    pub ssh_host: S<String>,
    pub drain: S<bool>,
    pub services: S<Vec<Spanned<String>>>,
    pub weights: S<std::collections::BTreeMap<String, Spanned<i64>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNat {
    pub gateway: S<String>,
    pub internal_interface: S<String>,
}

/// One `[[section]]` element (or a plain `[section]` table) as it was parsed:
/// the span of its table, and the element, absent when it could not be read.
#[derive(Debug)]
pub struct Elem<T> {
    pub span: std::ops::Range<usize>,
    pub value: Option<T>,
}

/// The whole file in raw form. Sections are `None` when absent from the file.
#[derive(Debug, Default)]
pub struct RawFile {
    pub cluster: Option<Elem<RawCluster>>,
    pub ssh: Option<Elem<RawSsh>>,
    pub services: Option<Vec<Elem<RawService>>>,
    pub directors: Option<Vec<Elem<RawDirector>>>,
    pub real_servers: Option<Vec<Elem<RawRealServer>>>,
    pub nat: Option<Elem<RawNat>>,
    /// Keys (full paths) that were present but unreadable (unknown or of the
    /// wrong type): already reported, and not to be called "missing".
    pub poisoned: std::collections::BTreeSet<String>,
    /// The text is not valid TOML: nothing else was checked.
    pub syntax_failed: bool,
}

/// Top-level sections of the file: (name, is an array of tables).
pub const SECTIONS: &[(&str, bool)] = &[
    ("cluster", false),
    ("ssh", false),
    ("services", true),
    ("directors", true),
    ("real_servers", true),
    ("nat", false),
];

/// The keys a raw table accepts, read from its serde definition.
pub fn fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    serde_aux::serde_introspection::serde_introspect::<T>()
}
