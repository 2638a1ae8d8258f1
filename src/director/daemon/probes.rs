//! Health checks: one task per checked (service, real server), each
//! looping on its own timer.
//!
//! A task per destination is what tokio schedules best here: each timer is
//! re-armed an interval ahead, never the runtime's earliest deadline, so the
//! runtime sleeps on its timer wheel undisturbed. One scheduler task with a
//! queue of due times was tried (2026-12-03): its single timer, re-armed to
//! the next due check after each one, was always the earliest deadline, and
//! tokio woke its own driver (an eventfd write and an extra epoll_wait) on
//! 1.4 of every check: 24 % more user-space instructions per check
//! (`benches/check_cost.sh`) and ~10 % more CPU at 1,000 × 10 under the lab
//! VM. What a task costs is its future: it holds only what the loop needs
//! between checks (the probe shared per service, the timer, the channel);
//! the check itself, with its socket and buffers, is boxed for as long as
//! it runs. At 10,000 destinations the idle tasks had been 10 MB of the
//! daemon's 13 MB of heap (heaptrack), a check's whole state in each.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::Semaphore;
use tokio::sync::mpsc::error::TrySendError;

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
        // one probe per service, shared by its real servers' tasks
        let probes: Vec<Option<Arc<Probe>>> = services
            .iter()
            .map(|s| probe_of(&s.health).map(Arc::new))
            .collect();
        let slots = first_check_slots(&self.core.health_matrix(), |i| {
            probes.get(i).is_some_and(Option::is_some)
        });
        let total: usize = slots.iter().map(Vec::len).sum();
        let demand = checks_demand(
            services
                .iter()
                .zip(&probes)
                .filter(|(_, p)| p.is_some())
                .map(|(s, _)| (s.real_servers.len(), s.health.timeout, s.health.interval)),
        );
        let in_flight = Arc::new(Semaphore::new(max_in_flight(self.nofile, demand)));
        let now = tokio::time::Instant::now();
        for (i, s) in services.iter().enumerate() {
            let Some(Some(probe)) = probes.get(i) else {
                continue;
            };
            for (j, r) in s.real_servers.iter().enumerate() {
                let addr = SocketAddr::from((r.address, s.health.port.unwrap_or(r.port)));
                let (interval, timeout) = (s.health.interval, s.health.timeout);
                let tx = self.probe_tx.clone();
                let k = slots.get(i).and_then(|v| v.get(j)).copied().unwrap_or(0);
                let first = now + first_check_offset(k, total, interval);
                let check = Check {
                    probe: probe.clone(),
                    addr,
                    timeout,
                    svc: i,
                    rs: j,
                };
                let task = probe_task(check, first, interval, in_flight.clone(), tx, generation);
                self.probes.push(tokio::spawn(task));
            }
        }
    }
}

/// What one probe task checks.
struct Check {
    probe: Arc<Probe>,
    addr: SocketAddr,
    timeout: Duration,
    svc: usize,
    rs: usize,
}

/// One (service, real server)'s probe task: a check at `first`, then every
/// `interval` ([`Schedule`]), at most as many at once across tasks as
/// `in_flight` allows, each result to the main loop.
///
/// The task reads the clock once per check, when its timer fires: that read
/// starts the check's timeout and places the next check; the check's end is
/// the other read ([`probe::run_from`]). A `tokio::time::Interval` read the
/// clock once more per tick, and the result's wall-clock time once more:
/// each is a system call where the clock source has no vDSO path (the lab
/// VM's emulated HPET).
// An async block, not an `async fn`: the async fn's future kept its
// arguments apart from the body's copies of them (384 bytes against 288).
#[allow(clippy::manual_async_fn)]
fn probe_task(
    c: Check,
    first: tokio::time::Instant,
    interval: Duration,
    in_flight: Arc<Semaphore>,
    tx: tokio::sync::mpsc::Sender<ProbeEvent>,
    generation: u64,
) -> impl Future<Output = ()> + Send + 'static {
    async move {
        let mut schedule = Schedule::new(first, interval);
        // boxed, as an Interval's timer is: the idle task stays small
        let mut timer = Box::pin(tokio::time::sleep_until(first));
        loop {
            timer.as_mut().await;
            let woke = Instant::now();
            timer.as_mut().reset(schedule.next(woke));
            // The waits that are rare (a place among the checks in flight,
            // room in the channel) are boxed too, behind a first try: their
            // futures are as large as the check's.
            let (permit, start) = match in_flight.try_acquire() {
                Ok(p) => (p, woke),
                // never closed: the semaphore lives as long as the task;
                // the timeout starts when the check gets its place
                Err(_) => match Box::pin(in_flight.acquire()).await {
                    Ok(p) => (p, Instant::now()),
                    Err(_) => return,
                },
            };
            // boxed: the task keeps none of a check's state between checks
            let result = Box::pin(probe::run_from(
                &c.probe,
                c.addr,
                c.timeout,
                start.into_std(),
            ))
            .await;
            drop(permit);
            let ev = ProbeEvent {
                generation,
                svc: c.svc,
                rs: c.rs,
                result,
            };
            match tx.try_send(ev) {
                Ok(()) => {}
                Err(TrySendError::Full(ev)) => {
                    if Box::pin(tx.send(ev)).await.is_err() {
                        return;
                    }
                }
                Err(TrySendError::Closed(_)) => return,
            }
        }
    }
}

/// A probe task's schedule: `first`, then every `interval` after it. A check
/// that fell due while the thread was busy (a reconcile of thousands of
/// operations, a slow CPU) runs at once, and the next one at its usual time;
/// a stall longer than an interval skips the checks it missed instead of
/// running them in a burst (tokio's `MissedTickBehavior::Skip`, which this
/// replaced). With `Delay` (the next an interval after the late one) every
/// check that fell due in a stall kept the stall's end as its phase for
/// good, and those checks ran in one burst every interval from then on.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    due: Instant,
    interval: Duration,
}

impl Schedule {
    fn new(first: Instant, interval: Duration) -> Self {
        Schedule {
            due: first,
            interval: interval.max(Duration::from_millis(1)),
        }
    }

    /// The check due at `self.due` started at `woke` (at or after it): when
    /// the next one is due, the first time on this schedule's phase after
    /// `woke`.
    fn next(&mut self, woke: Instant) -> Instant {
        let mut next = self.due + self.interval;
        if next <= woke {
            let late = woke.saturating_duration_since(self.due).as_nanos();
            let missed = late / self.interval.as_nanos();
            // missed ≥ 1 intervals; u32 covers 136 years of 1 s intervals
            let k = u32::try_from(missed + 1).unwrap_or(u32::MAX);
            next = self.due + self.interval.saturating_mul(k);
        }
        self.due = next;
        next
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

/// How many checks may be in flight at once: what the checks need
/// (`demand`, [`checks_demand`]) with a floor of [`MIN_IN_FLIGHT`], and
/// never more than half of what the soft open-files limit `nofile` leaves
/// after 256 descriptors kept for the rest of the daemon (netlink, VRRP, the
/// control socket and its clients, metrics, a script check's pipes).
///
/// Each check holds a socket while it runs, normally for a millisecond;
/// after a stall (a slow CPU, a reconcile of thousands of operations) every
/// check that fell due in it starts at once. Without a bound on descriptors,
/// at 10,000 checked real servers that was over 4,096 sockets: the checks
/// beyond the limit failed with EMFILE ("could not run"), and so would the
/// control socket's next accept. Bounded by the descriptors alone, the
/// places were too many for the one thread: at 1,000 × 10 under the lab VM
/// (4,096 open files, 1,920 places) the checks in flight at start filled
/// them all, and from there the thread handled ~640 first checks a second
/// against the 1,000 falling due, each real server known later than the one
/// before and the health gate open 21 s after the start; with 500 places
/// (the demand), ~880 a second and the gate at 13 s (docs/benchmarks.md).
/// Over the cap a check waits for a place, and its timeout starts when it
/// gets one.
pub(super) fn max_in_flight(nofile: u64, demand: usize) -> usize {
    let usable = nofile.saturating_sub(256) / 2;
    let by_files = usize::try_from(usable).unwrap_or(usize::MAX).max(16);
    demand.max(MIN_IN_FLIGHT).min(by_files)
}

/// The fewest places for checks in flight, however few the checks.
pub(super) const MIN_IN_FLIGHT: usize = 64;

/// How many checks are in flight at once if every one ran for its whole
/// timeout, each on schedule: the sum of timeout ÷ interval over the checked
/// real servers, rounded up. `checks`: (real servers, timeout, interval) per
/// checked service.
pub(super) fn checks_demand(checks: impl Iterator<Item = (usize, Duration, Duration)>) -> usize {
    // in units of 2^-20 of a check: exact enough, and no overflow in u128
    let mut sum: u128 = 0;
    for (n, timeout, interval) in checks {
        let share = (timeout.as_nanos() << 20) / interval.as_nanos().max(1);
        sum = sum.saturating_add((n as u128).saturating_mul(share));
    }
    usize::try_from(sum.div_ceil(1 << 20)).unwrap_or(usize::MAX)
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

    /// A probe task's future (what each of 10,000 idle tasks holds) stays
    /// small: the check's own state and the rare waits are boxed while they
    /// last. 288 bytes (debug build); with the check inline 672, with the
    /// waits inline 496. At 1,000 × 10 the idle tasks had been 10 MB of the
    /// daemon's 13 MB of heap.
    #[tokio::test]
    async fn a_probe_task_keeps_no_check_state_between_checks() {
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let c = Check {
            probe: Arc::new(Probe::Tcp),
            addr: SocketAddr::from(([127, 0, 0, 1], 80)),
            timeout: Duration::from_secs(1),
            svc: 0,
            rs: 0,
        };
        let task = probe_task(
            c,
            tokio::time::Instant::now(),
            Duration::from_secs(1),
            Arc::new(Semaphore::new(1)),
            tx,
            1,
        );
        let size = std::mem::size_of_val(&task);
        assert!(size <= 320, "a probe task's future is {size} bytes");
    }

    /// Checks in flight stay under the open-files limit with room for the
    /// rest of the daemon; a tiny limit still lets a few run.
    #[test]
    fn checks_in_flight_leave_descriptors_for_the_daemon() {
        let all = usize::MAX;
        assert_eq!(max_in_flight(4096, all), 1920);
        assert_eq!(max_in_flight(1024, all), 384);
        assert_eq!(max_in_flight(100, all), 16);
        assert_eq!(max_in_flight(0, all), 16);
        assert!(max_in_flight(u64::MAX, all) > 1 << 30);
        for n in [1024u64, 4096, 8192, 524_288] {
            assert!((max_in_flight(n, all) as u64) + 256 < n, "{n}");
        }
    }

    /// Within the open-files bound, the cap is what the checks need if each
    /// ran its whole timeout on schedule, at least MIN_IN_FLIGHT: 1,000 × 10
    /// at 10 s with 500 ms timeouts need 500 places, not the 1,920 (or
    /// 500,000) an open-files limit of 4,096 (or 1,048,576) would allow.
    #[test]
    fn checks_in_flight_are_what_the_checks_need() {
        let ms = Duration::from_millis;
        let bench = checks_demand(std::iter::repeat_n((10, ms(500), ms(10_000)), 1000));
        assert_eq!(bench, 500);
        assert_eq!(max_in_flight(1 << 20, bench), 500);
        // a small cluster gets the floor
        let small = checks_demand([(2, ms(1000), ms(2000)), (3, ms(2000), ms(5000))].into_iter());
        assert_eq!(small, 3); // 1 + 1.2, rounded up
        assert_eq!(max_in_flight(1 << 20, small), MIN_IN_FLIGHT);
        // the open-files bound wins over the demand
        assert_eq!(max_in_flight(4096, 100_000), 1920);
        // nothing checked, or a zero interval (refused by validation), does not panic
        assert_eq!(checks_demand(std::iter::empty()), 0);
        assert_eq!(
            checks_demand([(5, ms(1), Duration::ZERO)].into_iter()),
            5_000_000
        );
        assert_eq!(
            checks_demand(std::iter::repeat_n((usize::MAX, ms(u64::MAX), ms(1)), 3)),
            usize::MAX
        );
    }

    /// A check late by a stall runs at once, and the next at its usual
    /// time: the stall does not become the check's phase (with
    /// `MissedTickBehavior::Delay` the next came an interval after the late
    /// one, 10.25 s here, and every check that fell due in a stall ran in one
    /// burst every interval from then on). Longer stalls skip what they
    /// missed instead of running them in a burst.
    #[test]
    fn a_stall_does_not_move_the_checks_after_it() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        let mut schedule = Schedule::new(t0 + s(1), s(10));
        // on time, or a little late: the next an interval after the due time
        assert_eq!(schedule.next(t0 + s(1)), t0 + s(11));
        // the thread busy until 11.25 s: the check due at 11 s runs late,
        // the next at 21 s
        assert_eq!(schedule.next(t0 + ms(11_250)), t0 + s(21));
        assert_eq!(schedule.next(t0 + s(21)), t0 + s(31));
        // a stall of 2.5 intervals: one late check at 56 s, then back on
        // its phase, none of the missed ones in a burst
        assert_eq!(schedule.next(t0 + s(56)), t0 + s(61));
        // woken exactly as the next would fall due: that one is skipped too
        assert_eq!(schedule.next(t0 + s(71)), t0 + s(81));
        // a zero interval (refused by validation) does not spin or panic
        let mut z = Schedule::new(t0, Duration::ZERO);
        assert_eq!(z.next(t0 + ms(5)), t0 + ms(6));
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
