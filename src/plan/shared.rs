//! Hosts shared by several lvsup clusters (pure). A real server may serve
//! two clusters, a director may direct two; each cluster's files are its own
//! (named after the cluster, see `crate::layout`), but the kernel settings
//! they make are the host's. What lvsup knows of the *other* clusters comes
//! from the host itself, never from other cluster files on the operator's
//! machine: the facts script (templates/scripts/facts.sh.j2, [`own_files`]) sends the other clusters'
//!
//! - `/etc/sysctl.d/90-lvsup-OTHER.conf`: the sysctls OTHER sets (and needs);
//! - `/var/lib/lvsup/OTHER/previous-sysctl.json`: the values OTHER recorded
//!   before it changed them (the host's original values);
//! - `/etc/lvsup/OTHER/director.toml`: OTHER's VIP, interface, VRID, sync
//!   daemon and NAT gateway on a director;
//! - `/etc/systemd/system/lvsup-realserver-OTHER.service`: the VIP OTHER's
//!   unit puts on `lo`/`tunl0` of a real server;
//!
//! as ordinary `### file` sections, and [`others`] reads them back. From
//! them:
//!
//! - `destroy` restores a sysctl only when no other cluster still sets it,
//!   and otherwise leaves it as the other cluster sets it ([`sysctl_fates`]);
//! - `apply` records, for a key another cluster already set, the value that
//!   cluster recorded (the host's original), not the other cluster's value,
//!   so whichever cluster is destroyed last restores the original
//!   ([`inherited_previous`]);
//! - `plan` and `apply` refuse clusters that would share a host in
//!   conflicting ways ([`conflicts`]): the kernel's one IPVS sync daemon, the
//!   same VIP (or NAT gateway), the same VRID on one interface, different
//!   kernel-wide IPVS settings (`ipvs_timeouts`, `expire_nodest_conn`,
//!   `expire_quiescent_template`: one value per host, each cluster would set
//!   its own in turn).
//!
//! What one host cannot show is not checked: two clusters whose directors
//! are different hosts on one segment with the same VRID are not seen here
//! (the daemon drops adverts from non-peers and counts them, see
//! `vrrp_accept_foreign`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::config::{ClusterSpec, IpvsTimeouts};
use crate::desired::{HostState, Role};
use crate::layout;

/// The `HostError` step of a conflict with another cluster: `apply` refuses
/// to start when any host has one (`cmd::apply`).
pub const CONFLICT_STEP: &str = "check other lvsup clusters on the host";

/// This cluster's own files among the ones the facts script
/// (templates/scripts/facts.sh.j2) sends for every lvsup cluster on the
/// host: those are sent already, as this cluster's.
pub fn own_files(cluster: &str) -> Vec<String> {
    vec![
        layout::sysctl_path(cluster),
        layout::director_config_path(cluster),
        layout::previous_sysctl_path(cluster),
        layout::realserver_unit_path(cluster),
    ]
}

/// Another lvsup cluster on the host, as its files there show it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OtherCluster {
    pub name: String,
    /// Key → value from its sysctl.d file.
    pub sysctls: BTreeMap<String, String>,
    /// What it recorded before changing sysctls (`None` value: the key did
    /// not exist).
    pub previous: BTreeMap<String, Option<String>>,
    /// Present when the host is one of its directors.
    pub director: Option<OtherDirector>,
    /// The VIPs its real-server unit puts on `lo` or `tunl0`.
    pub realserver_vips: Vec<Ipv4Addr>,
}

/// What a director.toml of another cluster says that can conflict. Read
/// leniently (a `toml::Value`, not `DirectorConfig`): a file written by
/// another lvsup version must still be understood.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OtherDirector {
    pub vip: Option<Ipv4Addr>,
    /// Its services' own VIPs (`[[services]] vip`), floating with `vip`.
    pub service_vips: Vec<Ipv4Addr>,
    pub interface: Option<String>,
    pub vrid: Option<u8>,
    pub sync_daemon: bool,
    pub gateway: Option<Ipv4Addr>,
    pub gateway_interface: Option<String>,
    /// `ipvs_timeouts` its daemon sets (kernel-wide); None when it sets none
    /// or the table does not read.
    pub ipvs_timeouts: Option<IpvsTimeouts>,
}

/// The other clusters whose files are among `files` (path → content, from
/// the facts), by name; `cluster` (this one) left out.
pub fn others(cluster: &str, files: &BTreeMap<String, String>) -> Vec<OtherCluster> {
    let mut by_name: BTreeMap<String, OtherCluster> = BTreeMap::new();
    for (path, text) in files {
        let Some((name, kind)) = owner(path) else {
            continue;
        };
        if name == cluster {
            continue;
        }
        let o = by_name
            .entry(name.to_string())
            .or_insert_with(|| OtherCluster {
                name: name.to_string(),
                ..OtherCluster::default()
            });
        match kind {
            Kind::Sysctl => o.sysctls = parse_sysctl_conf(text),
            Kind::Previous => o.previous = serde_json::from_str(text).unwrap_or_default(),
            Kind::Director => o.director = Some(parse_director(text)),
            Kind::RealServerUnit => o.realserver_vips = unit_vips(text),
        }
    }
    by_name.into_values().collect()
}

enum Kind {
    Sysctl,
    Previous,
    Director,
    RealServerUnit,
}

/// Which cluster's file `path` is, and what file, when it is one of lvsup's.
fn owner(path: &str) -> Option<(&str, Kind)> {
    let valid = |n: &str| {
        n.starts_with(|c: char| c.is_ascii_lowercase())
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    let (name, kind) = if let Some(n) = layout::cluster_in(path, layout::sysctl_path) {
        (n, Kind::Sysctl)
    } else if let Some(n) = layout::cluster_in(path, layout::previous_sysctl_path) {
        (n, Kind::Previous)
    } else if let Some(n) = layout::cluster_in(path, layout::director_config_path) {
        (n, Kind::Director)
    } else if let Some(n) = layout::cluster_in(path, layout::realserver_unit_path) {
        (n, Kind::RealServerUnit)
    } else {
        return None;
    };
    valid(name).then_some((name, kind))
}

/// `key = value` lines of a sysctl.d file (comments and blanks skipped).
fn parse_sysctl_conf(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().trim_start_matches('-').to_string(),
                v.trim().to_string(),
            )
        })
        .collect()
}

fn parse_director(text: &str) -> OtherDirector {
    let Ok(v) = toml::from_str::<toml::Table>(text) else {
        return OtherDirector::default();
    };
    let s = |t: Option<&toml::Value>| t.and_then(|x| x.as_str()).map(str::to_string);
    let ip = |t: Option<&toml::Value>| t.and_then(|x| x.as_str()).and_then(|x| x.parse().ok());
    let vrrp = v.get("vrrp").and_then(|x| x.as_table());
    let nat = v.get("nat").and_then(|x| x.as_table());
    OtherDirector {
        vip: ip(v.get("vip")),
        service_vips: v
            .get("services")
            .and_then(|x| x.as_array())
            .into_iter()
            .flatten()
            .filter_map(|x| ip(x.get("vip")))
            .collect(),
        interface: s(v.get("interface")),
        vrid: vrrp
            .and_then(|t| t.get("vrid"))
            .and_then(|x| x.as_integer())
            .and_then(|x| u8::try_from(x).ok()),
        sync_daemon: vrrp
            .and_then(|t| t.get("sync_daemon"))
            .and_then(|x| x.as_bool())
            .unwrap_or(false),
        gateway: nat
            .and_then(|t| t.get("gateway"))
            .and_then(|x| x.as_str())
            // `10.0.0.1/24`
            .and_then(|x| x.split('/').next())
            .and_then(|x| x.parse().ok()),
        gateway_interface: s(nat.and_then(|t| t.get("internal_interface"))),
        ipvs_timeouts: v
            .get("ipvs_timeouts")
            .and_then(|t| t.clone().try_into::<IpvsTimeouts>().ok()),
    }
}

/// The IPVS sysctls every director of a cluster sets (`[cluster]` keys of
/// the same name): kernel-wide, so two clusters on one director must agree.
const IPVS_SYSCTLS: [&str; 2] = [
    "net.ipv4.vs.expire_nodest_conn",
    "net.ipv4.vs.expire_quiescent_template",
];

/// The `ipvs_timeouts` on which `mine` and `theirs` differ, both set:
/// `tcp = 900s (theirs 600s)`. One unset leaves the kernel's value to the
/// other, which is no conflict.
fn timeout_differences(mine: &IpvsTimeouts, theirs: &IpvsTimeouts) -> Vec<String> {
    let f = |d: std::time::Duration| humantime::format_duration(d).to_string();
    [
        ("tcp", mine.tcp, theirs.tcp),
        ("tcpfin", mine.tcpfin, theirs.tcpfin),
        ("udp", mine.udp, theirs.udp),
    ]
    .into_iter()
    .filter_map(|(k, a, b)| match (a, b) {
        (Some(a), Some(b)) if a != b => Some(format!("{k} = {} (theirs {})", f(a), f(b))),
        _ => None,
    })
    .collect()
}

/// The VIPs of a real-server unit: `ExecStart=ip addr replace VIP/32 dev lo`.
fn unit_vips(text: &str) -> Vec<Ipv4Addr> {
    text.lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("ExecStart=ip addr replace ")?;
            rest.split('/').next()?.parse().ok()
        })
        .collect()
}

/// What destroy does with one sysctl it recorded before apply changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SysctlFate {
    /// No other cluster sets it: back to the value it had before lvsup.
    Restore { key: String, value: String },
    /// Another cluster still sets it: left (or put back) at that cluster's
    /// value.
    Keep {
        key: String,
        value: String,
        cluster: String,
    },
}

impl SysctlFate {
    pub fn key(&self) -> &str {
        match self {
            SysctlFate::Restore { key, .. } | SysctlFate::Keep { key, .. } => key,
        }
    }
    pub fn value(&self) -> &str {
        match self {
            SysctlFate::Restore { value, .. } | SysctlFate::Keep { value, .. } => value,
        }
    }
}

/// For each sysctl this cluster `recorded` (keys that did not exist are
/// left alone), whether destroy restores it or keeps it for another
/// cluster. Several others setting a key: the first by name decides (they
/// set the same value, or [`conflicts`] would have stopped their apply for
/// the IPVS keys; the ARP keys every cluster sets alike).
pub fn sysctl_fates(
    recorded: &BTreeMap<String, Option<String>>,
    others: &[OtherCluster],
) -> Vec<SysctlFate> {
    recorded
        .iter()
        .filter_map(|(k, v)| {
            let v = v.as_ref()?;
            Some(
                match others
                    .iter()
                    .find_map(|o| o.sysctls.get(k).map(|ov| (o, ov)))
                {
                    Some((o, ov)) => SysctlFate::Keep {
                        key: k.clone(),
                        value: ov.clone(),
                        cluster: o.name.clone(),
                    },
                    None => SysctlFate::Restore {
                        key: k.clone(),
                        value: v.clone(),
                    },
                },
            )
        })
        .collect()
}

/// The sentence destroy shows for a kept sysctl.
pub fn kept_message(key: &str, value: &str, cluster: &str) -> String {
    format!("kept {key}={value}: cluster {cluster} still sets it")
}

/// The previous values apply starts from when it records sysctls: this
/// cluster's own record, plus, for each of `keys` that another cluster sets
/// and recorded, that cluster's record (the host's value before any lvsup),
/// not the current value, which is the other cluster's doing.
pub fn inherited_previous(
    own: &BTreeMap<String, Option<String>>,
    keys: &[String],
    others: &[OtherCluster],
) -> BTreeMap<String, Option<String>> {
    let mut out = own.clone();
    for k in keys {
        if out.contains_key(k) {
            continue;
        }
        if let Some(v) = others
            .iter()
            .filter(|o| o.sysctls.contains_key(k))
            .find_map(|o| o.previous.get(k))
        {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// Why cluster `spec` cannot use host `want` alongside the other clusters
/// there: one sentence per conflict, naming both clusters. `iface_of` names
/// the interface holding an address's subnet on this host (for a VIP
/// without `interface`, as the daemon finds it).
pub fn conflicts(
    spec: &ClusterSpec,
    want: &HostState,
    others: &[OtherCluster],
    iface_of: &dyn Fn(Ipv4Addr) -> Option<String>,
) -> Vec<String> {
    let mut out = Vec::new();
    let me = &spec.name;
    let host = &want.name;
    match want.role {
        Role::Director { .. } => {
            let my_iface = spec.interface.clone().or_else(|| iface_of(spec.vip));
            let mut mine: Vec<(Ipv4Addr, &str)> =
                spec.vips().into_iter().map(|v| (v, "VIP")).collect();
            if let Some(n) = &spec.nat {
                mine.push((n.gateway.addr(), "NAT gateway"));
            }
            for o in others {
                let Some(d) = &o.director else { continue };
                let other = &o.name;
                if spec.sync_daemon && d.sync_daemon {
                    out.push(format!(
                        "director {host}: cluster \"{me}\" and cluster \"{other}\" both enable \
                         the IPVS sync daemon (the kernel has one per host): set \
                         sync_daemon = false in one of them"
                    ));
                }
                let mut theirs = vec![(d.vip, "VIP"), (d.gateway, "NAT gateway")];
                theirs.extend(d.service_vips.iter().map(|v| (Some(*v), "VIP")));
                for (a, what) in &mine {
                    for (b, their_what) in &theirs {
                        if Some(*a) == *b {
                            out.push(format!(
                                "director {host}: cluster \"{me}\" and cluster \"{other}\" both \
                                 use {a} (as {what} and {their_what}): one address can float \
                                 with one cluster only"
                            ));
                        }
                    }
                }
                if let (Some(mine), Some(theirs)) = (&spec.ipvs_timeouts, &d.ipvs_timeouts) {
                    let diff = timeout_differences(mine, theirs);
                    if !diff.is_empty() {
                        out.push(format!(
                            "director {host}: cluster \"{me}\" and cluster \"{other}\" set \
                             different ipvs_timeouts ({}; the kernel has one set per host): \
                             set the same in both, or leave them out of one",
                            diff.join(", ")
                        ));
                    }
                }
                let their_iface = d.interface.clone().or_else(|| d.vip.and_then(iface_of));
                if d.vrid == Some(spec.vrid)
                    && let (Some(mi), Some(ti)) = (&my_iface, &their_iface)
                    && mi == ti
                {
                    out.push(format!(
                        "director {host}: cluster \"{me}\" and cluster \"{other}\" both use \
                         VRID {} on {mi}: set a different [cluster] vrid in one of them",
                        spec.vrid
                    ));
                }
            }
            for key in IPVS_SYSCTLS {
                let Some(mine) = want.sysctls.iter().find(|s| s.key == key) else {
                    continue;
                };
                for o in others {
                    let Some(theirs) = o.sysctls.get(key) else {
                        continue;
                    };
                    if *theirs != mine.value {
                        let name = key.trim_start_matches("net.ipv4.vs.");
                        out.push(format!(
                            "director {host}: cluster \"{me}\" and cluster \"{}\" set {key} \
                             differently ({} and {theirs}; one value per host): set [cluster] \
                             {name} alike in both",
                            o.name, mine.value
                        ));
                    }
                }
            }
        }
        Role::RealServer => {
            for o in others {
                if spec.mode == crate::config::Mode::Nat {
                    break;
                }
                for vip in spec.vips() {
                    if o.realserver_vips.contains(&vip) {
                        out.push(format!(
                            "real server {host}: cluster \"{me}\" and cluster \"{}\" both use VIP {vip} \
                             (destroying one would take the VIP away from the other)",
                            o.name
                        ));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn other(name: &str, sysctls: &[(&str, &str)]) -> OtherCluster {
        OtherCluster {
            name: name.into(),
            sysctls: sysctls
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..OtherCluster::default()
        }
    }

    fn rec(pairs: &[(&str, Option<&str>)]) -> BTreeMap<String, Option<String>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect()
    }

    #[test]
    fn destroy_restores_only_what_no_other_cluster_sets() {
        let recorded = rec(&[
            ("net.ipv4.conf.all.arp_ignore", Some("0")),
            ("net.ipv4.conf.lo.arp_ignore", Some("0")),
            ("net.ipv4.vs.expire_nodest_conn", None),
        ]);
        let api = other("api", &[("net.ipv4.conf.all.arp_ignore", "1")]);
        let fates = sysctl_fates(&recorded, &[api]);
        assert_eq!(
            fates,
            vec![
                SysctlFate::Keep {
                    key: "net.ipv4.conf.all.arp_ignore".into(),
                    value: "1".into(),
                    cluster: "api".into(),
                },
                SysctlFate::Restore {
                    key: "net.ipv4.conf.lo.arp_ignore".into(),
                    value: "0".into(),
                },
            ]
        );
        // alone on the host: everything recorded is restored
        let alone = sysctl_fates(&recorded, &[]);
        assert!(
            alone
                .iter()
                .all(|f| matches!(f, SysctlFate::Restore { .. })),
            "{alone:?}"
        );
        assert_eq!(alone.len(), 2);
        assert_eq!(
            kept_message("net.ipv4.conf.all.arp_ignore", "1", "api"),
            "kept net.ipv4.conf.all.arp_ignore=1: cluster api still sets it"
        );
    }

    #[test]
    fn apply_records_the_original_value_another_cluster_recorded() {
        let mut api = other("api", &[("net.ipv4.conf.all.arp_ignore", "1")]);
        api.previous = rec(&[
            ("net.ipv4.conf.all.arp_ignore", Some("0")),
            ("net.ipv4.conf.lo.arp_ignore", Some("0")),
        ]);
        let keys: Vec<String> = [
            "net.ipv4.conf.all.arp_ignore",
            "net.ipv4.conf.lo.arp_ignore",
            "net.ipv4.conf.all.arp_announce",
        ]
        .map(String::from)
        .to_vec();
        let own = rec(&[("net.ipv4.conf.all.arp_announce", Some("0"))]);
        let got = inherited_previous(&own, &keys, &[api]);
        // all.arp_ignore: api sets it and recorded 0 → 0 (not api's 1);
        // lo.arp_ignore: api recorded it but no longer sets it → read live;
        // arp_announce: already our own record
        assert_eq!(
            got,
            rec(&[
                ("net.ipv4.conf.all.arp_announce", Some("0")),
                ("net.ipv4.conf.all.arp_ignore", Some("0")),
            ])
        );
    }

    fn files(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn others_are_read_from_their_files_on_the_host_and_our_own_left_out() {
        let f = files(&[
            (
                "/etc/sysctl.d/90-lvsup-api.conf",
                "# Managed by lvsup\n\n# why\nnet.ipv4.conf.all.arp_ignore = 1\n",
            ),
            (
                "/etc/sysctl.d/90-lvsup-web.conf",
                "net.ipv4.ip_forward = 1\n",
            ),
            (
                "/var/lib/lvsup/api/previous-sysctl.json",
                "{\"net.ipv4.conf.all.arp_ignore\": \"0\", \"x\": null}\n",
            ),
            (
                "/etc/lvsup/api/director.toml",
                "cluster = \"api\"\nvip = \"10.0.0.9\"\ninterface = \"eth1\"\n\
                 [vrrp]\nvrid = 51\nsync_daemon = true\n[nat]\ngateway = \"10.1.0.1/24\"\n",
            ),
            (
                "/etc/systemd/system/lvsup-realserver-db.service",
                "[Service]\nExecStart=ip addr replace 10.0.0.7/32 dev lo\n",
            ),
            ("/etc/lvsup/../x/director.toml", "vip = \"1.2.3.4\"\n"),
            ("/etc/lvsup/web/director.toml", "vip = \"10.0.0.1\"\n"),
        ]);
        let o = others("web", &f);
        let names: Vec<&str> = o.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["api", "db"]);
        assert_eq!(o[0].sysctls["net.ipv4.conf.all.arp_ignore"], "1");
        assert_eq!(o[0].previous["x"], None);
        let d = o[0].director.as_ref().expect("director");
        assert_eq!(d.vip, Some(Ipv4Addr::new(10, 0, 0, 9)));
        assert_eq!(d.interface.as_deref(), Some("eth1"));
        assert_eq!((d.vrid, d.sync_daemon), (Some(51), true));
        assert_eq!(d.gateway, Some(Ipv4Addr::new(10, 1, 0, 1)));
        assert_eq!(o[1].realserver_vips, [Ipv4Addr::new(10, 0, 0, 7)]);
        // a broken file of another version is not an error: nothing known from it
        let o = others("web", &files(&[("/etc/lvsup/api/director.toml", "[[[")]));
        assert_eq!(o[0].director, Some(OtherDirector::default()));
    }

    #[test]
    fn the_facts_script_skips_our_own_files() {
        let spec = spec("");
        let s = crate::observe::script(&spec, &host(&spec, "lvs1"));
        assert!(s.contains("/etc/lvsup/*/director.toml"), "{s}");
        assert!(s.contains("'/etc/lvsup/web/director.toml'|"), "{s}");
        assert!(s.contains("'/etc/sysctl.d/90-lvsup-web.conf'"), "{s}");
    }

    fn spec(extra: &str) -> ClusterSpec {
        let text = format!(
            "[cluster]\nname = \"web\"\nvip = \"10.0.0.100\"\nmode = \"dr\"\nvrid = 51\n{extra}\n\
             [[directors]]\nname = \"lvs1\"\naddress = \"10.0.0.2\"\n\
             [[directors]]\nname = \"lvs2\"\naddress = \"10.0.0.3\"\n\
             [[real_servers]]\nname = \"rs1\"\naddress = \"10.0.0.11\"\n\
             [[services]]\nport = 80\n"
        );
        crate::config::parse_str("web.toml", &text).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn host(spec: &ClusterSpec, name: &str) -> HostState {
        let d = crate::desired::desired_cluster(spec).expect("render");
        d.hosts.into_iter().find(|h| h.name == name).expect("host")
    }

    fn director(vip: &str, iface: Option<&str>, vrid: u8, sync: bool) -> OtherCluster {
        OtherCluster {
            name: "api".into(),
            director: Some(OtherDirector {
                vip: vip.parse().ok(),
                interface: iface.map(str::to_string),
                vrid: Some(vrid),
                sync_daemon: sync,
                ..OtherDirector::default()
            }),
            ..OtherCluster::default()
        }
    }

    #[test]
    fn conflicts_name_the_host_and_both_clusters() {
        let s = spec("");
        let lvs1 = host(&s, "lvs1");
        let eth0 = |a: Ipv4Addr| {
            "10.0.0.0/24"
                .parse::<ipnet::Ipv4Net>()
                .ok()
                .filter(|n| n.contains(&a))
                .map(|_| "eth0".to_string())
        };
        // same VRID, the other's interface found like ours: on the VIP's subnet
        let c = conflicts(&s, &lvs1, &[director("10.0.0.200", None, 51, false)], &eth0);
        assert_eq!(
            c,
            [
                "director lvs1: cluster \"web\" and cluster \"api\" both use VRID 51 on eth0: \
              set a different [cluster] vrid in one of them"
            ]
        );
        // same VRID on another interface, another VIP: fine
        let ok = conflicts(
            &s,
            &lvs1,
            &[director("10.9.0.1", Some("eth1"), 51, false)],
            &eth0,
        );
        assert!(ok.is_empty(), "{ok:?}");
        // the same VIP
        let c = conflicts(
            &s,
            &lvs1,
            &[director("10.0.0.100", Some("eth1"), 52, false)],
            &eth0,
        );
        assert_eq!(c.len(), 1, "{c:?}");
        assert!(
            c[0].contains("cluster \"web\" and cluster \"api\" both use 10.0.0.100"),
            "{c:?}"
        );
        // the sync daemon: only when both enable it
        let sync = [director("10.9.0.1", Some("eth1"), 52, true)];
        assert!(conflicts(&s, &lvs1, &sync, &eth0).is_empty());
        let s2 = spec("sync_daemon = true");
        let c = conflicts(&s2, &host(&s2, "lvs1"), &sync, &eth0);
        assert_eq!(c.len(), 1, "{c:?}");
        assert!(c[0].contains("both enable the IPVS sync daemon"), "{c:?}");
        // other clusters that are only on real servers of this host: nothing
        let rs_only = [other("api", &[("net.ipv4.conf.all.arp_ignore", "1")])];
        assert!(conflicts(&s2, &host(&s2, "lvs1"), &rs_only, &eth0).is_empty());
    }

    #[test]
    fn real_servers_shared_with_the_same_vip_conflict() {
        let s = spec("");
        let rs1 = host(&s, "rs1");
        let mut o = other("api", &[]);
        o.realserver_vips = vec![Ipv4Addr::new(10, 0, 0, 100)];
        let c = conflicts(&s, &rs1, std::slice::from_ref(&o), &|_| None);
        assert_eq!(c.len(), 1, "{c:?}");
        assert!(
            c[0].starts_with(
                "real server rs1: cluster \"web\" and cluster \"api\" both use VIP 10.0.0.100"
            ),
            "{c:?}"
        );
        o.realserver_vips = vec![Ipv4Addr::new(10, 0, 0, 101)];
        assert!(conflicts(&s, &rs1, &[o], &|_| None).is_empty());
    }

    /// Services' own VIPs (`[[services]] vip`) conflict like the cluster's,
    /// on both sides: ours against theirs, theirs from their director.toml.
    #[test]
    fn services_vips_conflict_like_the_cluster_vip() {
        let s = spec("");
        let s2 = crate::config::parse_str(
            "web.toml",
            &format!(
                "{}\n[[services]]\nvip = \"10.0.0.101\"\nport = 80\n",
                toml_of_spec()
            ),
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(s.vips().len(), 1);
        let lvs1 = host(&s2, "lvs1");
        let c = conflicts(
            &s2,
            &lvs1,
            &[director("10.0.0.101", Some("eth1"), 52, false)],
            &|_| None,
        );
        assert_eq!(c.len(), 1, "{c:?}");
        assert!(
            c[0].contains("both use 10.0.0.101 (as VIP and VIP)"),
            "{c:?}"
        );
        // theirs: a service VIP in their director.toml
        let o = others(
            "web",
            &files(&[(
                "/etc/lvsup/api/director.toml",
                "vip = \"10.0.0.9\"\n[[services]]\nvip = \"10.0.0.100\"\nport = 80\n",
            )]),
        );
        let d = o[0].director.as_ref().expect("director");
        assert_eq!(d.service_vips, [Ipv4Addr::new(10, 0, 0, 100)]);
        let c = conflicts(&s, &host(&s, "lvs1"), &o, &|_| None);
        assert!(c.iter().any(|c| c.contains("both use 10.0.0.100")), "{c:?}");
        // real servers: their unit's VIPs, every line
        let mut o = other("api", &[]);
        o.realserver_vips = vec![Ipv4Addr::new(10, 0, 0, 9), Ipv4Addr::new(10, 0, 0, 101)];
        let c = conflicts(&s2, &host(&s2, "rs1"), &[o], &|_| None);
        assert_eq!(c.len(), 1, "{c:?}");
        assert!(c[0].contains("both use VIP 10.0.0.101"), "{c:?}");
    }

    /// Kernel-wide IPVS settings (issue 12 item 7): two clusters on one
    /// director that set them differently would each set its own in turn;
    /// refused at plan time naming the host, both clusters and the values.
    /// The other cluster's values come from its files on the host, as the
    /// facts send them: its director.toml (timeouts) and sysctl.d file.
    #[test]
    fn different_kernel_wide_ipvs_settings_conflict() {
        let mine = spec("ipvs_timeouts = { tcp = \"15m\", udp = \"300s\" }");
        let lvs1 = host(&mine, "lvs1");
        let theirs_spec = crate::config::parse_str(
            "api.toml",
            &toml_of_spec().replace("\"web\"", "\"api\"").replace(
                "vrid = 51\n",
                "vrid = 52\nvip = \"10.0.0.200\"\nipvs_timeouts = { tcp = \"10m\", tcpfin = \"60s\", udp = \"300s\" }\nexpire_nodest_conn = false\n",
            ).replacen("vip = \"10.0.0.100\"\n", "", 1),
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        // their files as a shared director holds them
        let theirs = host(&theirs_spec, "lvs1");
        let text = |p: &str| {
            theirs
                .files
                .iter()
                .find(|f| f.path == p)
                .map(|f| f.content.clone())
                .unwrap_or_else(|| panic!("no {p}"))
        };
        let dir_toml = layout::director_config_path("api");
        let sysctl = layout::sysctl_path("api");
        let o = others(
            "web",
            &files(&[(&dir_toml, &text(&dir_toml)), (&sysctl, &text(&sysctl))]),
        );
        let c = conflicts(&mine, &lvs1, &o, &|_| None);
        assert_eq!(
            c,
            [
                "director lvs1: cluster \"web\" and cluster \"api\" set different \
                 ipvs_timeouts (tcp = 15m (theirs 10m); the kernel has one set per host): set \
                 the same in both, or leave them out of one",
                "director lvs1: cluster \"web\" and cluster \"api\" set \
                 net.ipv4.vs.expire_nodest_conn differently (1 and 0; one value per host): set \
                 [cluster] expire_nodest_conn alike in both",
            ]
        );
        // the same values (or one side leaving a timeout to the other): no conflict
        let alike = spec("ipvs_timeouts = { tcp = \"10m\" }\nexpire_nodest_conn = false");
        assert_eq!(
            conflicts(&alike, &host(&alike, "lvs1"), &o, &|_| None),
            Vec::<String>::new()
        );
        // a real server of ours on their director: not ours to set there
        assert!(conflicts(&mine, &host(&mine, "rs1"), &o, &|_| None).is_empty());
    }

    fn toml_of_spec() -> String {
        "[cluster]\nname = \"web\"\nvip = \"10.0.0.100\"\nmode = \"dr\"\nvrid = 51\n\
         [[directors]]\nname = \"lvs1\"\naddress = \"10.0.0.2\"\n\
         [[directors]]\nname = \"lvs2\"\naddress = \"10.0.0.3\"\n\
         [[real_servers]]\nname = \"rs1\"\naddress = \"10.0.0.11\"\n\
         [[services]]\nport = 80\n"
            .to_string()
    }
}
