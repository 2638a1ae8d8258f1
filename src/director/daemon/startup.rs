//! Start-up: addresses a crashed earlier run left behind.

use ipnet::Ipv4Net;
use tracing::warn;

use crate::contract::director_config::DirectorConfig;
use crate::director::addr::{self, Addrs, Found, Link};

/// Our own addresses of a run that died (kill -9, crash) while Master: those
/// this config floats, on their interfaces, are returned for the core to keep
/// until another master is heard; the same address with another prefix goes
/// at once; nothing else is touched.
pub(super) async fn leftovers(
    addrs: &Addrs,
    cfg: &DirectorConfig,
    link: &Link,
    nat_link: Option<&Link>,
) -> anyhow::Result<Vec<Ipv4Net>> {
    // Our own addresses of a run that died (kill -9, crash) while Master. If
    // they are still the ones we would hold, the core keeps them until
    // another master is heard (or Master_Down_Interval passes): with the
    // unit's restart after 1 s, the old VIP keeps forwarding (the IPVS table
    // survives the process) until the backup takes over, so a crash leaves
    // no gap. Only this config's addresses on their configured interfaces
    // are touched (`addr::classify`): another cluster's VIP with the same
    // VRID on another NIC stays.
    let mut owned: Vec<(u32, Ipv4Net)> = cfg
        .vips()
        .into_iter()
        .map(|v| (link.index, Ipv4Net::from(v)))
        .collect();
    if let (Some(n), Some(l)) = (&cfg.nat, &nat_link) {
        owned.push((l.index, n.gateway));
    }
    let mut leftovers = Vec::new();
    for a in addrs.dump().await? {
        let label = a.label.as_deref().unwrap_or("");
        match addr::classify(&a, cfg.vrrp.vrid, &owned) {
            Found::Leftover => {
                warn!(
                    address = %a.net,
                    label,
                    "found a stale lvsup address left by an earlier run: kept until a master \
                     is heard or Master_Down_Interval passes"
                );
                leftovers.push(a.net);
            }
            Found::Stale => {
                let removed = addrs.remove(a.index, a.net).await?;
                warn!(address = %a.net, label, removed, "removed a stale lvsup address left by an earlier run");
            }
            Found::Foreign => warn!(
                address = %a.net,
                label,
                "the VIP is already on this host without lvsup's label: leaving it alone \
                 (remove it by hand, or this director answers for the VIP while backup)"
            ),
            Found::Other => {}
        }
    }
    Ok(leftovers)
}
