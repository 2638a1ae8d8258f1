//! Raw schema → [`ClusterSpec`]: every rule of the contract, all problems at once.
//!
//! Elements that could not be read at all (unknown keys, wrong types) are
//! skipped here; rules about counts ("at least one director") are then not
//! checked for their section, so a broken element does not also produce a
//! misleading "no directors" error.

mod addresses;
mod check;
mod cluster;
mod hosts;
mod metrics;
mod nat;
mod services;
mod ssh;
mod topology;

use std::time::Duration;

use super::diag::Problem;
use super::model::*;
use super::raw::*;
use addresses::AddrUse;
use check::V;

/// Default prefix of a management address written without one.
pub const DEFAULT_PREFIX: u8 = 24;
/// VRRPv3 advertisement interval bounds (RFC 5798 §5.2.7: 12 bits of centiseconds).
pub const ADVERT_MIN: Duration = Duration::from_millis(10);
pub const ADVERT_MAX: Duration = Duration::from_secs(40);
/// First director's default priority, and the step down for each next one.
pub const PRIORITY_FIRST: i64 = 150;
pub const PRIORITY_STEP: i64 = 10;

/// The VRRP virtual router id derived from the cluster name when `vrid` is not
/// set: 1 + (FNV-1a 32-bit hash of the name mod 255). Stable across versions:
/// changing it would split a running cluster's directors.
pub fn derived_vrid(name: &str) -> u8 {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (1 + h % 255) as u8
}

pub fn validate(
    text: &str,
    raw: &RawFile,
    problems: Vec<Problem>,
) -> Result<ClusterSpec, Vec<Problem>> {
    if raw.syntax_failed {
        return Err(problems);
    }
    let mut v = V {
        text,
        problems,
        poisoned: &raw.poisoned,
        services_complete: false,
    };
    let spec = build(&mut v, raw);
    match spec {
        Some(spec) if v.problems.is_empty() => Ok(spec),
        _ => Err(v.problems),
    }
}

/// Each service has at least one real server (checked when every real
/// server was read: a broken one might have served it).
fn every_service_served(
    v: &mut V<'_>,
    raw: &RawFile,
    places: &[(String, std::ops::Range<usize>)],
    services: &[Service],
    real_servers: &[hosts::Placed<RealServer>],
) {
    let all_read = raw
        .real_servers
        .as_ref()
        .is_some_and(|e| !e.is_empty() && e.len() == real_servers.len());
    if !all_read {
        return;
    }
    for (s, (path, span)) in services.iter().zip(places) {
        if !real_servers.iter().any(|r| r.item.serves(s)) {
            v.err(
                &format!("{path}.name"),
                span.clone(),
                format!(
                    "service \"{}\" ({}) has no real server: every [[real_servers]] lists `services` without it",
                    s.name,
                    s.label()
                ),
            )
            .hint = Some(format!(
                "add \"{}\" to a real server's `services`, or remove the service",
                s.name
            ));
        }
    }
}

fn build(v: &mut V<'_>, raw: &RawFile) -> Option<ClusterSpec> {
    let c = cluster::cluster(v, raw);
    let ssh = match &raw.ssh {
        Some(Elem { value: Some(s), .. }) => ssh::ssh_settings(v, s),
        _ => SshSettings::default(),
    };
    let mut addrs: Vec<AddrUse> = Vec::new();
    if let Some((ip, span)) = &c.vip {
        addrs.push(AddrUse {
            addr: *ip,
            key: "cluster.vip".into(),
            span: span.clone(),
        });
    }
    let cluster_vip = c.vip.as_ref().map(|(ip, _)| *ip);
    let sp = services::services(v, raw, cluster_vip, &mut addrs);
    v.services_complete = sp.complete;
    let services = sp.services;
    let nat = nat::nat(v, raw, c.mode.as_ref(), &mut addrs);
    let vip = c.vip.as_ref().map(|(ip, _)| *ip);
    let mode = c.mode.as_ref().map(|(m, _)| *m);
    let mut hosts = hosts::Hosts::new(vip, mode, addrs);
    let directors = hosts.directors(v, raw, &c.vrrp_unicast, &c.vrrp_accept_foreign);
    let real_servers = hosts.real_servers(v, raw, &services);
    every_service_served(v, raw, &sp.places, &services, &real_servers);
    metrics::not_on_service_vips(v, raw, &services, cluster_vip);
    addresses::unique(v, hosts.addrs);
    {
        // (address, what it is, the ports it serves: None = the whole address)
        let mut taken: Vec<services::Taken> = Vec::new();
        if let Some(vip) = vip {
            taken.push((vip, "the VIP".into(), None));
        }
        for s in services.iter().filter(|s| Some(s.vip) != vip) {
            if !taken.iter().any(|(a, _, _)| *a == s.vip) {
                taken.push((s.vip, format!("the VIP of service \"{}\"", s.name), None));
            }
        }
        for d in &directors {
            taken.push((
                d.item.address.addr(),
                format!("director {}", d.item.name),
                None,
            ));
        }
        for r in &real_servers {
            // NAT: a real server's other port may serve the sorry page (a
            // maintenance server on the same host is a common setup). Only
            // the ports of the services it serves are its.
            let ports: Vec<u16> = services
                .iter()
                .filter(|s| r.item.serves(s))
                .flat_map(|s| match &s.fwmark {
                    Some(f) => f.ports.clone(),
                    None => vec![r.item.port_for(s)],
                })
                .collect();
            taken.push((
                r.item.address.addr(),
                format!("real server {}: it is in the pool already", r.item.name),
                Some(ports),
            ));
        }
        if let Some((n, _)) = &nat {
            taken.push((n.gateway.addr(), "the NAT gateway".into(), None));
        }
        services::sorry_servers(v, raw, mode, &taken);
    }
    if let (Some(vip), Some(m)) = (vip, mode) {
        let mut other_vips: Vec<std::net::Ipv4Addr> = Vec::new();
        for s in services.iter().filter(|s| s.vip != vip) {
            if !other_vips.contains(&s.vip) {
                other_vips.push(s.vip);
            }
        }
        topology::topology(
            v,
            vip,
            &other_vips,
            m,
            &directors,
            &real_servers,
            nat.as_ref(),
        );
    }

    let (name, vip, mode, advert_interval) = (c.name?, vip?, mode?, c.advert_interval?);
    let drain_timeout = c.kernel.drain_timeout?;
    let (preempt_delay, notify) = (c.hooks.preempt_delay?, c.hooks.notify?);
    Some(ClusterSpec {
        vrid: c.vrid.unwrap_or_else(|| derived_vrid(&name)),
        name,
        vip,
        mode,
        interface: c.interface,
        advert_interval,
        preempt: c.preempt,
        preempt_delay,
        notify,
        vrrp_unicast: c.vrrp_unicast.is_some_and(|(u, _)| u),
        vrrp_accept_foreign: c.vrrp_accept_foreign.is_some_and(|(a, _)| a),
        sync_daemon: c.sync_daemon,
        metrics: c.metrics,
        ipvs_timeouts: c.kernel.ipvs_timeouts,
        expire_nodest_conn: c.kernel.expire_nodest_conn,
        expire_quiescent_template: c.kernel.expire_quiescent_template,
        drain_timeout,
        ssh,
        services,
        directors: directors.into_iter().map(|d| d.item).collect(),
        real_servers: real_servers.into_iter().map(|r| r.item).collect(),
        nat: nat.map(|(n, _)| n),
    })
}
