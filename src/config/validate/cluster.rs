//! `[cluster]`: the cluster's own settings.

use std::ops::Range;
use std::time::Duration;

use super::check::V;
use super::metrics::cluster_metrics;
use super::{ADVERT_MAX, ADVERT_MIN};
use crate::config::diag::Problem;
use crate::config::model::*;
use crate::config::raw::*;

/// What `[cluster]` yields; `None` where a value was invalid (or missing),
/// with spans kept for rules checked later against other sections.
pub(super) struct ClusterPart {
    pub(super) name: Option<String>,
    pub(super) vip: Option<(std::net::Ipv4Addr, Range<usize>)>,
    pub(super) mode: Option<(Mode, Range<usize>)>,
    pub(super) interface: Option<String>,
    pub(super) vrid: Option<u8>,
    pub(super) advert_interval: Option<Duration>,
    pub(super) preempt: bool,
    pub(super) vrrp_unicast: Option<(bool, Range<usize>)>,
    pub(super) sync_daemon: bool,
    pub(super) vrrp_accept_foreign: Option<(bool, Range<usize>)>,
    pub(super) metrics: Option<MetricsListen>,
    pub(super) kernel: KernelPart,
    pub(super) hooks: HooksPart,
}

/// `[cluster] preempt_delay` and `notify`.
pub(super) struct HooksPart {
    pub(super) preempt_delay: Option<Duration>,
    pub(super) notify: Option<Notify>,
}

/// The IPVS kernel settings of `[cluster]`.
pub(super) struct KernelPart {
    pub(super) ipvs_timeouts: Option<IpvsTimeouts>,
    pub(super) expire_nodest_conn: bool,
    pub(super) expire_quiescent_template: bool,
    pub(super) drain_timeout: Option<Duration>,
}

/// `[cluster]`, in the order its problems are reported.
pub(super) fn cluster(v: &mut V<'_>, raw: &RawFile) -> ClusterPart {
    let whole = 0..0;
    let mut name = None;
    let mut vip = None;
    let mut mode = None;
    let mut interface = None;
    let mut vrid = None;
    let mut advert_interval = Some(Duration::from_secs(1));
    let mut preempt = true;
    let mut vrrp_unicast = None;
    let mut sync_daemon = false;
    let mut vrrp_accept_foreign = None;
    let mut metrics = None;
    match &raw.cluster {
        None if v.poisoned.contains("cluster") => {}
        None => {
            v.problems.push(
                Problem::new("cluster", "missing required section `[cluster]`")
                    .at(whole.clone())
                    .hint("add a [cluster] section with name, vip and mode"),
            );
        }
        Some(Elem { value: None, .. }) => {}
        Some(Elem {
            span,
            value: Some(c),
        }) => {
            if let Some(n) = v.required("cluster", "name", &c.name, span) {
                let s = n.get_ref();
                let ok = s.len() <= 32
                    && s.starts_with(|ch: char| ch.is_ascii_lowercase())
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if ok {
                    name = Some(s.clone());
                } else {
                    v.err("cluster.name", n.span(), format!("\"{s}\" is not a valid cluster name"))
                        .hint = Some("[a-z][a-z0-9-]{0,31}: it names units, the VRRP instance and state directories".into());
                }
            }
            if let Some(a) = v.required("cluster", "vip", &c.vip, span) {
                vip = v.ipv4("cluster.vip", a).map(|ip| (ip, a.span()));
            }
            if let Some(m) = v.required("cluster", "mode", &c.mode, span) {
                mode = v
                    .one_of("cluster.mode", m, Mode::ALL)
                    .and_then(Mode::parse)
                    .map(|md| (md, m.span()));
            }
            if let Some(i) = &c.interface {
                interface = v.ifname("cluster.interface", i);
            }
            if let Some(r) = &c.vrid {
                vrid = v.int("cluster.vrid", r, 1, 255, "vrid").map(|n| n as u8);
            }
            if let Some(a) = &c.advert_interval {
                advert_interval = v.duration("cluster.advert_interval", a);
                if let Some(d) = advert_interval {
                    if d < ADVERT_MIN || d > ADVERT_MAX {
                        v.err(
                            "cluster.advert_interval",
                            a.span(),
                            format!(
                                "advert_interval must be 10ms..=40s, got \"{}\"",
                                a.get_ref()
                            ),
                        );
                        advert_interval = None;
                    } else if d.as_millis() % 10 != 0 {
                        v.err(
                            "cluster.advert_interval",
                            a.span(),
                            format!("advert_interval \"{}\" is not a whole number of centiseconds", a.get_ref()),
                        )
                        .hint = Some("VRRPv3 carries the interval in units of 10ms; lvsup does not round it silently: use a multiple of 10ms".into());
                        advert_interval = None;
                    }
                }
            }
            if let Some(p) = &c.preempt {
                preempt = *p.get_ref();
            }
            if let Some(u) = &c.vrrp_unicast {
                vrrp_unicast = Some((*u.get_ref(), u.span()));
            }
            if let Some(a) = &c.vrrp_accept_foreign {
                vrrp_accept_foreign = Some((*a.get_ref(), a.span()));
            }
            if let Some(s) = &c.sync_daemon {
                sync_daemon = *s.get_ref();
            }
            if let Some(m) = &c.metrics {
                metrics = cluster_metrics(v, m, vip.as_ref().map(|(ip, _)| *ip));
            }
        }
    }

    ClusterPart {
        name,
        vip,
        mode,
        interface,
        vrid,
        advert_interval,
        preempt,
        vrrp_unicast,
        sync_daemon,
        vrrp_accept_foreign,
        metrics,
        kernel: kernel(v, raw),
        hooks: hooks(v, raw, preempt),
    }
}

/// `preempt_delay` (0s..=1000s, only with preempt) and `notify` hooks.
fn hooks(v: &mut V<'_>, raw: &RawFile, preempt: bool) -> HooksPart {
    let mut preempt_delay = Some(Duration::ZERO);
    let mut notify = Some(Notify::default());
    let Some(Elem { value: Some(c), .. }) = &raw.cluster else {
        return HooksPart {
            preempt_delay,
            notify,
        };
    };
    if let Some(d) = &c.preempt_delay {
        let key = "cluster.preempt_delay";
        preempt_delay = v.duration(key, d);
        if preempt_delay.is_some_and(|t| t > MAX_PREEMPT_DELAY) {
            v.err(
                key,
                d.span(),
                format!("preempt_delay must be 0s..=1000s, got \"{}\"", d.get_ref()),
            );
            preempt_delay = None;
        } else if preempt_delay.is_some_and(|t| !t.is_zero()) && !preempt {
            let line = c.preempt.as_ref().map(|p| v.line(&p.span()));
            v.err(
                key,
                d.span(),
                format!(
                    "preempt_delay \"{}\" has no effect with preempt = false{}",
                    d.get_ref(),
                    line.map(|l| format!(" (line {l})")).unwrap_or_default()
                ),
            )
            .hint = Some("remove preempt_delay, or set preempt = true".into());
            preempt_delay = None;
        }
    }
    if let Some(n) = &c.notify {
        let n = n.get_ref();
        let mut one = |name: &str, a: &S<Vec<String>>| -> Result<Option<Vec<String>>, ()> {
            match a {
                None => Ok(None),
                Some(a) => super::services::argv(v, &format!("cluster.notify.{name}"), a)
                    .map(Some)
                    .ok_or(()),
            }
        };
        let (master, backup, fault, stop) = (
            one("master", &n.master),
            one("backup", &n.backup),
            one("fault", &n.fault),
            one("stop", &n.stop),
        );
        notify = match (master, backup, fault, stop) {
            (Ok(master), Ok(backup), Ok(fault), Ok(stop)) => Some(Notify {
                master,
                backup,
                fault,
                stop,
            }),
            _ => None,
        };
    }
    HooksPart {
        preempt_delay,
        notify,
    }
}

/// `[cluster]`'s IPVS kernel settings: timeouts, expiry flags, drain timeout.
fn kernel(v: &mut V<'_>, raw: &RawFile) -> KernelPart {
    let mut ipvs_timeouts = None;
    let mut expire_nodest_conn = true;
    let mut expire_quiescent_template = true;
    let mut drain_timeout = Some(DEFAULT_DRAIN_TIMEOUT);
    if let Some(Elem { value: Some(c), .. }) = &raw.cluster {
        if let Some(t) = &c.ipvs_timeouts {
            ipvs_timeouts = Some(timeouts(v, t.get_ref()));
        }
        if let Some(b) = &c.expire_nodest_conn {
            expire_nodest_conn = *b.get_ref();
        }
        if let Some(b) = &c.expire_quiescent_template {
            expire_quiescent_template = *b.get_ref();
        }
        if let Some(d) = &c.drain_timeout {
            drain_timeout = v.duration("cluster.drain_timeout", d);
            if drain_timeout.is_some_and(|t| t > MAX_DRAIN_TIMEOUT) {
                v.err(
                    "cluster.drain_timeout",
                    d.span(),
                    format!("drain_timeout must be 0s..=7d, got \"{}\"", d.get_ref()),
                )
                .hint = Some(
                    "a removed real server stays at weight 0 at most this long; \"0s\" deletes \
                     it at once. Default \"5m\""
                        .into(),
                );
                drain_timeout = None;
            }
        }
    }
    KernelPart {
        ipvs_timeouts,
        expire_nodest_conn,
        expire_quiescent_template,
        drain_timeout,
    }
}

/// `[cluster] ipvs_timeouts`: whole seconds, 1s..=24d each.
fn timeouts(v: &mut V<'_>, t: &RawIpvsTimeouts) -> IpvsTimeouts {
    let mut one = |name: &str, d: &S<String>| {
        let d = d.as_ref()?;
        let key = format!("cluster.ipvs_timeouts.{name}");
        let got = v.duration(&key, d)?;
        if got.subsec_nanos() != 0 || got < Duration::from_secs(1) || got > IpvsTimeouts::MAX {
            v.err(
                &key,
                d.span(),
                format!(
                    "ipvs_timeouts.{name} must be whole seconds from 1s to 24d, got \"{}\"",
                    d.get_ref()
                ),
            )
            .hint = Some(
                "the kernel counts these timeouts in seconds; leave the key out to keep the \
                 kernel's value (tcp 900s, tcpfin 120s, udp 300s)"
                    .into(),
            );
            return None;
        }
        Some(got)
    };
    IpvsTimeouts {
        tcp: one("tcp", &t.tcp),
        tcpfin: one("tcpfin", &t.tcpfin),
        udp: one("udp", &t.udp),
    }
}
