//! Carrying out the core's actions, and the reads the core is fed (link
//! state, the host's addresses).

use tracing::{error, info, warn};

use crate::director::addr::{self, Link};
use crate::director::core::found::HostAddress;
use crate::director::core::{self as core, Action, Floating, Removal};

use super::ipvs::ReconInput;
use super::{Driver, ipvs};

impl Driver {
    pub(super) async fn execute(&mut self, a: Action) -> Option<core::Event> {
        match a {
            Action::SendAdvert { priority } => self.send_advert(priority),
            Action::AddAddress(f) => {
                let link = self.link_for(&f)?.clone();
                let vrid = self.core.config().vrrp.vrid;
                let ours = match self.addrs.add(&link, f.net, vrid).await {
                    Ok(true) => {
                        info!(address = %f.net, interface = %link.name, "address added");
                        true
                    }
                    Ok(false) => {
                        warn!(
                            address = %f.net,
                            interface = %link.name,
                            "address already present (not lvsup's): not taking ownership"
                        );
                        false
                    }
                    Err(e) => {
                        error!(address = %f.net, interface = %link.name, "adding address: {e}");
                        false
                    }
                };
                return Some(core::Event::AddressAdded { net: f.net, ours });
            }
            Action::RemoveAddress { addr: f, why } => {
                let index = self.link_for(&f)?.index;
                let r = self.addrs.remove(index, f.net).await;
                match (why, r) {
                    (Removal::Release, Ok(_)) => {
                        info!(address = %f.net, interface = %f.interface, "address removed")
                    }
                    (Removal::Release, Err(e)) => {
                        error!(address = %f.net, interface = %f.interface, "removing address: {e}")
                    }
                    (Removal::Drift, Ok(_)) => {}
                    (Removal::Drift, Err(e)) => error!(address = %f.net, "removing address: {e}"),
                    (Removal::Stale(why), r) => warn!(
                        address = %f.net,
                        interface = %f.interface,
                        removed = r.is_ok(),
                        "removed a stale lvsup address left by an earlier run ({why})"
                    ),
                }
            }
            Action::SendGarp { count } => self.send_garp(count),
            Action::StateChanged { from, to, reason } => {
                info!(%from, %to, %reason, "vrrp state");
                self.record(from.to_string(), to.to_string(), reason.to_string());
            }
            Action::SyncDaemon { stop, start } => {
                if let Some(client) = self.ipvs.clone() {
                    let slot = self.sync_state.clone();
                    self.sync_tasks.retain(|t| !t.is_finished());
                    self.sync_tasks
                        .push(ipvs::switch_sync(client, stop, start, slot));
                }
            }
            Action::Note { state, what } => {
                self.record(state.to_string(), state.to_string(), what.into())
            }
            Action::StartProbes => self.start_probes(),
            Action::Reconcile { trigger, dropped } => {
                if self.recon_tx.is_some() {
                    // A reload's deletions stay asked for until a reconcile
                    // carried them out: the watch keeps the latest input
                    // only, and a health change right after the reload would
                    // replace it. A service the config has again is kept.
                    let cfg = self.core.config_shared();
                    crate::director::table::keep_dropped(&mut self.dropped, dropped, &cfg);
                    // Sent by the main loop once the queued probe results
                    // are in (or after RECONCILE_GATHER): one input for a
                    // storm of flips, not one health matrix per flip.
                    self.recon_pending = Some(match self.recon_pending {
                        Some((was, since)) => (merge_trigger(was, trigger), since),
                        None => (trigger, tokio::time::Instant::now()),
                    });
                }
            }
            Action::RunHook { hook, argv, env } => {
                info!(hook = hook.as_str(), program = %argv.first().map(String::as_str).unwrap_or_default(), "notify hook");
                self.hooks.run(hook, argv, env);
            }
            Action::Exit => self.exit = true,
        }
        None
    }

    /// The reconcile asked for since the last one, to the reconcile task.
    pub(super) fn send_reconcile(&mut self) {
        let (Some((trigger, _)), Some(tx)) = (self.recon_pending.take(), &self.recon_tx) else {
            return;
        };
        tx.send_replace(Some(ReconInput {
            cfg: self.core.config_shared(),
            health: self.core.health_matrix(),
            trigger,
            dropped: self.dropped.clone(),
            draining: self
                .core
                .draining()
                .iter()
                .map(|d| crate::director::table::Draining {
                    service: d.service,
                    addr: d.addr,
                    forward: d.forward,
                })
                .collect(),
        }));
    }

    /// The link a floating address goes on (interfaces are fixed at start).
    pub(super) fn link_for(&self, f: &Floating) -> Option<&Link> {
        std::iter::once(&self.link)
            .chain(self.nat_link.as_ref())
            .find(|l| l.name == f.interface)
    }

    /// The VRRP interface's state, for the core's fault handling.
    pub(super) async fn check_link(&mut self) {
        if let Ok(l) = self.addrs.link_by_index(self.link.index).await {
            self.handle(core::Event::Link { up: l.up }).await;
        }
    }

    /// The host's IPv4 addresses, each with the name of its interface when
    /// it is one of ours (for the core's start-up and drift repair).
    pub(super) async fn host_addresses(&self) -> Result<Vec<HostAddress>, addr::AddrError> {
        let links: Vec<&Link> = std::iter::once(&self.link)
            .chain(self.nat_link.as_ref())
            .collect();
        Ok(self
            .addrs
            .dump()
            .await?
            .into_iter()
            .map(|a| HostAddress {
                interface: links
                    .iter()
                    .find(|l| l.index == a.index)
                    .map(|l| l.name.clone()),
                net: a.net,
                label: a.label,
            })
            .collect())
    }

    /// Address check, for drift repair.
    pub(super) async fn check_addresses(&mut self) {
        if let Ok(found) = self.host_addresses().await {
            self.handle(core::Event::AddressesPresent(found)).await;
        }
    }
}

/// Two reconcile triggers gathered into one run: any other wins over
/// "health" (it must read the kernel: a start, a reload, a drain check),
/// else the later one.
pub(super) fn merge_trigger(was: &'static str, new: &'static str) -> &'static str {
    if new == "health" && was != "health" {
        was
    } else {
        new
    }
}

#[cfg(test)]
mod tests {
    use super::merge_trigger;

    /// A drain check or a reload gathered with health changes keeps its
    /// name, so the run reads the kernel (the health fast path is for
    /// "health" alone).
    #[test]
    fn gathered_triggers_keep_the_one_that_reads_the_kernel() {
        assert_eq!(merge_trigger("health", "health"), "health");
        assert_eq!(merge_trigger("health", "drain"), "drain");
        assert_eq!(merge_trigger("reload", "health"), "reload");
        assert_eq!(merge_trigger("drain", "reload"), "reload");
    }
}
