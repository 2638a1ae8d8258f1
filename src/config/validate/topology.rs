//! Topology rules per forwarding mode: which subnet each host must be on.

use std::net::Ipv4Addr;
use std::ops::Range;

use super::check::V;
use super::hosts::Placed;
use crate::config::model::{Director, Mode, Nat, RealServer};

/// `vip`: the cluster's; `other_vips`: the services' own (NAT: none of
/// them may be on the internal subnet either).
pub(super) fn topology(
    v: &mut V<'_>,
    vip: Ipv4Addr,
    other_vips: &[Ipv4Addr],
    mode: Mode,
    directors: &[Placed<Director>],
    real_servers: &[Placed<RealServer>],
    nat: Option<&(Nat, Range<usize>)>,
) {
    match mode {
        Mode::Dr => {
            let hosts = directors
                .iter()
                .map(|d| (&d.path, d.item.address, &d.addr_span))
                .chain(
                    real_servers
                        .iter()
                        .map(|r| (&r.path, r.item.address, &r.addr_span)),
                );
            for (path, addr, span) in hosts {
                if !addr.contains(&vip) {
                    v.err(&format!("{path}.address"), span.clone(), format!("{addr} is not on the VIP's subnet ({vip} is outside {})", addr.trunc()))
                        .hint = Some("in DR mode directors and real servers share the VIP's layer-2 segment; put them on one subnet, or use mode = \"tun\"".into());
                }
            }
        }
        Mode::Tun => {}
        Mode::Nat => {
            let Some(first) = directors.first() else {
                return;
            };
            let Some(internal) = first.item.internal_address.map(|a| a.trunc()) else {
                return;
            };
            for d in directors {
                if let (Some(ia), Some(ispan)) = (d.item.internal_address, &d.internal_span) {
                    let key = format!("{}.internal_address", d.path);
                    if ia.trunc() != internal {
                        v.err(
                            &key,
                            ispan.clone(),
                            format!(
                                "{ia} is not on the internal subnet {internal} of {}",
                                first.item.name
                            ),
                        )
                        .hint = Some(
                            "all directors need an address on the real servers' subnet".into(),
                        );
                    }
                    if ia.contains(&vip) {
                        v.err(&key, ispan.clone(), format!("{ia} is on the VIP's subnet; in NAT mode the internal subnet is a different one"));
                    } else if let Some(o) = other_vips.iter().find(|o| ia.contains(*o)) {
                        v.err(&key, ispan.clone(), format!("{ia} is on the subnet of the VIP {o} (a service's vip); in NAT mode the internal subnet is a different one"));
                    }
                }
            }
            for r in real_servers {
                let key = format!("{}.address", r.path);
                if !internal.contains(&r.item.address.addr()) {
                    v.err(&key, r.addr_span.clone(), format!("{} is not on the internal subnet {internal}", r.item.address.addr()))
                        .hint = Some("in NAT mode real servers sit on the internal subnet and route through nat.gateway".into());
                } else if r.item.address.contains(&vip) {
                    v.err(&key, r.addr_span.clone(), format!("{} is on the VIP's subnet; in NAT mode real servers are on the internal subnet, not the VIP's", r.item.address));
                } else if let Some(o) = other_vips.iter().find(|o| r.item.address.contains(*o)) {
                    v.err(&key, r.addr_span.clone(), format!("{} is on the subnet of the VIP {o} (a service's vip); in NAT mode real servers are on the internal subnet, not a VIP's", r.item.address));
                }
            }
            if let Some((n, gspan)) = nat {
                if !internal.contains(&n.gateway.addr()) {
                    v.err("nat.gateway", gspan.clone(), format!("{} is not on the internal subnet {internal}", n.gateway.addr()))
                        .hint = Some("the gateway is the floating address the real servers route through: it lives on their subnet".into());
                }
            }
        }
    }
}
