//! Health probes: one task per checked (service, real server).

use std::net::SocketAddr;
use std::time::SystemTime;

use crate::contract::director_config::HealthConfig;
use crate::director::probe::{self, HttpProbe, Probe};

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
            let Some(probe) = probe_of(&s.health) else {
                continue;
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

/// The probe of a service's `[services.health]`; `None` for "none" (and
/// for a kind `config::check` refused).
pub(super) fn probe_of(h: &HealthConfig) -> Option<Probe> {
    let http = || HttpProbe {
        path: h.path.clone().unwrap_or_else(|| "/".into()),
        expect_status: h.expect_status.unwrap_or(200),
        expect_body: h.expect_body.clone(),
        expect_digest: h.expect_digest.as_ref().map(|d| d.to_ascii_lowercase()),
    };
    Some(match h.check.as_str() {
        "tcp" => Probe::Tcp,
        "http" => Probe::Http(http()),
        "https" => Probe::Https {
            http: http(),
            tls: probe::tls_config(h.tls_verify.unwrap_or(true)),
            // config::check refuses a name rustls cannot take.
            sni: h
                .sni
                .as_ref()
                .and_then(|n| rustls::pki_types::ServerName::try_from(n.clone()).ok()),
        },
        "script" => Probe::Script {
            argv: h.script.clone().unwrap_or_default(),
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn health(check: &str) -> HealthConfig {
        HealthConfig {
            check: check.into(),
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            fall: 3,
            rise: 2,
            port: None,
            path: None,
            expect_status: None,
            expect_body: None,
            expect_digest: None,
            tls_verify: None,
            sni: None,
            script: None,
        }
    }

    /// director.toml's `[services.health]` → the probe the task runs.
    #[test]
    fn probes_from_the_health_settings() {
        assert!(matches!(probe_of(&health("tcp")), Some(Probe::Tcp)));
        assert!(probe_of(&health("none")).is_none());
        let mut h = health("https");
        h.path = Some("/status".into());
        h.expect_digest = Some("9A0364B9E99BB480DD25E1F0284C8555".into());
        h.sni = Some("www.example.com".into());
        match probe_of(&h) {
            Some(Probe::Https { http, sni, .. }) => {
                assert_eq!(http.path, "/status");
                assert_eq!(http.expect_status, 200);
                assert_eq!(
                    http.expect_digest.as_deref(),
                    Some("9a0364b9e99bb480dd25e1f0284c8555")
                );
                assert_eq!(
                    sni,
                    Some(rustls::pki_types::ServerName::try_from("www.example.com").expect("name"))
                );
            }
            other => panic!("{other:?}"),
        }
        let mut h = health("script");
        h.script = Some(vec!["/bin/check".into(), "{address}".into()]);
        match probe_of(&h) {
            Some(Probe::Script { argv }) => assert_eq!(argv, ["/bin/check", "{address}"]),
            other => panic!("{other:?}"),
        }
    }
}
