//! Health probes: one task per checked (service, real server).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Semaphore;

use crate::contract::director_config::HealthConfig;
use crate::director::probe::{self, HttpProbe, Probe};
use crate::health::damping::Health;

use super::{Driver, ProbeEvent};

impl Driver {
    /// One probe task per checked (service, real server) of the config in
    /// force; results of earlier generations are dropped.
    pub(super) fn start_probes(&mut self) {
        for p in self.probes.drain(..) {
            p.abort();
        }
        self.generation += 1;
        let generation = self.generation;
        let services = &self.core.config().services;
        let slots = first_check_slots(&self.core.health_matrix(), |i| {
            services
                .get(i)
                .is_some_and(|s| probe_of(&s.health).is_some())
        });
        let total: usize = slots.iter().map(Vec::len).sum();
        let in_flight = Arc::new(Semaphore::new(max_in_flight(self.nofile)));
        let now = tokio::time::Instant::now();
        for (i, s) in self.core.config().services.iter().enumerate() {
            let Some(probe) = probe_of(&s.health) else {
                continue;
            };
            for (j, r) in s.real_servers.iter().enumerate() {
                let addr = SocketAddr::from((r.address, s.health.port.unwrap_or(r.port)));
                let (interval, timeout) = (s.health.interval, s.health.timeout);
                let tx = self.probe_tx.clone();
                let probe = probe.clone();
                let k = slots.get(i).and_then(|v| v.get(j)).copied().unwrap_or(0);
                let first = now + first_check_offset(k, total, interval);
                let in_flight = in_flight.clone();
                self.probes.push(tokio::spawn(async move {
                    let mut tick = tokio::time::interval_at(first, interval);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tick.tick().await;
                        // never closed: the semaphore lives as long as the task
                        let Ok(_permit) = in_flight.acquire().await else {
                            return;
                        };
                        let result = probe::run(&probe, addr, timeout).await;
                        drop(_permit);
                        let (svc, rs, at) = (i, j, SystemTime::now());
                        let ev = ProbeEvent {
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

/// Each checked real server's place in the first checks' spread
/// ([`first_check_offset`]), `[service][real server]`: those whose health is
/// unknown first (every one at start; after a reload, the new ones), then the
/// others, each group in config order. A reload starts every probe again;
/// this way the new destinations are checked, and get their weight, at once
/// instead of at their turn in the interval (keepalived adds them unchecked).
/// Services that are not checked (`checked(i)` false) get no places.
pub(super) fn first_check_slots(
    health: &[Vec<Health>],
    checked: impl Fn(usize) -> bool,
) -> Vec<Vec<usize>> {
    let mut slots: Vec<Vec<usize>> = health
        .iter()
        .enumerate()
        .map(|(i, h)| {
            if checked(i) {
                vec![0; h.len()]
            } else {
                Vec::new()
            }
        })
        .collect();
    let mut k = 0;
    for unknown_pass in [true, false] {
        for (i, h) in health.iter().enumerate() {
            for (j, x) in h.iter().enumerate() {
                if (*x == Health::Unknown) == unknown_pass
                    && let Some(slot) = slots[i].get_mut(j)
                {
                    *slot = k;
                    k += 1;
                }
            }
        }
    }
    slots
}

/// How many checks may be in flight at once, for a soft open-files limit of
/// `nofile`: half of what is left after 256 descriptors kept for the rest
/// of the daemon (netlink, VRRP, the control socket and its clients,
/// metrics, a script check's pipes), at least 16. Each check holds a socket
/// while it runs, normally for a millisecond; after a stall (a slow CPU, a
/// reconcile of thousands of operations) every check that fell due in it
/// starts at once, and at 10,000 checked real servers that was over 4,096
/// sockets: the checks beyond the limit failed with EMFILE ("could not
/// run", health unchanged for another interval), and so would the control
/// socket's and the metrics listener's next accept. Over the cap a check
/// waits for a place instead.
pub(super) fn max_in_flight(nofile: u64) -> usize {
    let usable = nofile.saturating_sub(256) / 2;
    usize::try_from(usable).unwrap_or(usize::MAX).max(16)
}

/// When the `k`th of `n` probes runs its first check, after the start: the
/// probes' first checks spread evenly over one interval, and so every check
/// after them. All at once, 10,000 probes would connect in one burst every
/// interval, queue behind each other on the one thread, and be late by the
/// burst's length (keepalived starts each checker after a random part of
/// its `delay_loop` for the same reason). The first of them runs at once.
pub(super) fn first_check_offset(k: usize, n: usize, interval: Duration) -> Duration {
    if n == 0 {
        return Duration::ZERO;
    }
    // k < n, so the fraction is below 1: u128 keeps k × interval exact
    let nanos = interval.as_nanos() * (k.min(n - 1) as u128) / (n as u128);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
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

    /// Checks in flight stay under the open-files limit with room for the
    /// rest of the daemon; a tiny limit still lets a few run.
    #[test]
    fn checks_in_flight_leave_descriptors_for_the_daemon() {
        assert_eq!(max_in_flight(4096), 1920);
        assert_eq!(max_in_flight(1024), 384);
        assert_eq!(max_in_flight(100), 16);
        assert_eq!(max_in_flight(0), 16);
        assert!(max_in_flight(u64::MAX) > 1 << 30);
        for n in [1024u64, 4096, 8192, 524_288] {
            assert!((max_in_flight(n) as u64) + 256 < n, "{n}");
        }
    }

    /// First checks spread over one interval: the first at once, none as
    /// late as a whole interval, evenly apart; none past the interval for an
    /// index out of range.
    #[test]
    fn first_checks_spread_over_one_interval() {
        let i = Duration::from_secs(1);
        let offsets: Vec<Duration> = (0..4).map(|k| first_check_offset(k, 4, i)).collect();
        assert_eq!(
            offsets,
            [0, 250, 500, 750].map(Duration::from_millis).to_vec()
        );
        assert_eq!(first_check_offset(0, 1, i), Duration::ZERO);
        assert_eq!(first_check_offset(0, 0, i), Duration::ZERO);
        assert!(first_check_offset(9, 4, i) < i);
        let n = 10_000;
        let last = first_check_offset(n - 1, n, Duration::from_secs(3600));
        assert!(last < Duration::from_secs(3600) && last > Duration::from_secs(3599));
    }

    /// After a reload the new real servers (health unknown) get the first
    /// places of the spread; unchecked services get none; at start (all
    /// unknown) it is config order.
    #[test]
    fn unknown_real_servers_are_checked_first() {
        use Health::{Down, Unknown, Up};
        let h = vec![vec![Up, Down], vec![Up], vec![Unknown, Unknown]];
        assert_eq!(
            first_check_slots(&h, |_| true),
            vec![vec![2, 3], vec![4], vec![0, 1]]
        );
        assert_eq!(
            first_check_slots(&h, |i| i != 1),
            vec![vec![2, 3], vec![], vec![0, 1]]
        );
        let start = vec![vec![Unknown; 2], vec![Unknown; 2]];
        assert_eq!(
            first_check_slots(&start, |_| true),
            vec![vec![0, 1], vec![2, 3]]
        );
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
