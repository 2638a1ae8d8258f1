//! Health probes: one task per checked (service, real server).

use std::net::SocketAddr;
use std::time::SystemTime;

use crate::director::probe::{self, Probe};

use super::{Driver, Event};

impl Driver {
    /// One probe task per checked (service, real server) of the config in
    /// force; results of earlier generations are dropped.
    pub(super) fn start_probes(&mut self) {
        for p in self.probes.drain(..) {
            p.abort();
        }
        self.generation += 1;
        let generation = self.generation;
        for (i, s) in self.core.config().services.iter().enumerate() {
            let probe = match s.health.check.as_str() {
                "tcp" => Probe::Tcp,
                "http" => Probe::Http {
                    path: s.health.path.clone().unwrap_or_else(|| "/".into()),
                    expect_status: s.health.expect_status.unwrap_or(200),
                },
                _ => continue,
            };
            for (j, r) in s.real_servers.iter().enumerate() {
                let addr = SocketAddr::from((r.address, s.health.port.unwrap_or(r.port)));
                let (interval, timeout) = (s.health.interval, s.health.timeout);
                let tx = self.tx.clone();
                let probe = probe.clone();
                self.probes.push(tokio::spawn(async move {
                    let mut tick = tokio::time::interval(interval);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tick.tick().await;
                        let result = probe::run(&probe, addr, timeout).await;
                        let (svc, rs, at) = (i, j, SystemTime::now());
                        let ev = Event::Probe {
                            generation,
                            svc,
                            rs,
                            result,
                            at,
                        };
                        if tx.send(ev).await.is_err() {
                            return;
                        }
                    }
                }));
            }
        }
    }
}
