//! Health checks: one scheduler task runs every check of the config in
//! force.
//!
//! The scheduler keeps each checked (service, real server)'s next due time
//! in one queue ([`CheckQueue`]) and runs the checks that fall due side by
//! side, each for as long as it takes. Until 2026-12-03 every destination
//! had a task of its own, looping over an interval timer: at 10,000
//! destinations those idle tasks (their futures and timers) were 10 MB of
//! the daemon's 13 MB heap (heaptrack, `benches/scale_bench.sh` at 1,000 ×
//! 10), against about 100 bytes each now. A check in flight still costs its
//! future, for as long as it runs: normally a millisecond.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::contract::director_config::HealthConfig;
use crate::director::probe::{self, HttpProbe, Probe, ProbeResult};
use crate::health::damping::Health;

use super::{Driver, ProbeEvent};

impl Driver {
    /// Starts the checks of the config in force, replacing the scheduler of
    /// the previous one (its checks in flight are dropped with it); results
    /// of earlier generations are dropped by the main loop.
    pub(super) fn start_probes(&mut self) {
        if let Some(p) = self.probes.take() {
            p.abort();
        }
        self.generation += 1;
        let services = &self.core.config().services;
        let checks: Vec<Option<ServiceCheck>> = services
            .iter()
            .map(|s| {
                probe_of(&s.health).map(|probe| ServiceCheck {
                    probe: Arc::new(probe),
                    interval: s.health.interval,
                    timeout: s.health.timeout,
                })
            })
            .collect();
        let slots = first_check_slots(&self.core.health_matrix(), |i| {
            checks.get(i).is_some_and(Option::is_some)
        });
        let total: usize = slots.iter().map(Vec::len).sum();
        let now = Instant::now();
        let mut targets = Vec::with_capacity(total);
        let mut queue = CheckQueue::default();
        for (i, s) in services.iter().enumerate() {
            let Some(Some(c)) = checks.get(i) else {
                continue;
            };
            for (j, r) in s.real_servers.iter().enumerate() {
                let k = slots.get(i).and_then(|v| v.get(j)).copied().unwrap_or(0);
                queue.push(
                    now + first_check_offset(k, total, c.interval),
                    targets.len(),
                );
                targets.push(Target {
                    svc: i,
                    rs: j,
                    addr: SocketAddr::from((r.address, s.health.port.unwrap_or(r.port))),
                });
            }
        }
        let scheduler = Scheduler {
            checks,
            targets,
            queue,
            generation: self.generation,
            cap: max_in_flight(self.nofile),
            tx: self.probe_tx.clone(),
        };
        self.probes = Some(tokio::spawn(scheduler.run()));
    }
}

/// What every check of one service shares.
struct ServiceCheck {
    probe: Arc<Probe>,
    interval: Duration,
    timeout: Duration,
}

/// One checked (service, real server): indexes into the config in force.
struct Target {
    svc: usize,
    rs: usize,
    addr: SocketAddr,
}

/// A finished check: which target, when it was due, its result and when
/// it ended.
type Done = (usize, Instant, ProbeResult, SystemTime);

/// The scheduler task's state: the targets of one config, their due times
/// and the channel to the main loop.
struct Scheduler {
    /// By service index: `None` for an unchecked service.
    checks: Vec<Option<ServiceCheck>>,
    targets: Vec<Target>,
    queue: CheckQueue,
    generation: u64,
    /// At most this many checks in flight ([`max_in_flight`]).
    cap: usize,
    tx: mpsc::Sender<ProbeEvent>,
}

impl Scheduler {
    /// Runs until aborted (a new config's scheduler replaces it) or the
    /// main loop is gone.
    async fn run(mut self) {
        let mut running = FuturesUnordered::new();
        // Results not yet taken by the main loop. While the loop is busy the
        // checks in flight go on (a result waiting for room in the channel
        // must not stall the others' timeouts), but no new check starts
        // once a cap's worth of results waits.
        let mut outbox: VecDeque<Done> = VecDeque::new();
        let tx = self.tx.clone();
        // One timer for the next due check, moved only when that changes: a
        // new timer each turn cost a registration and a removal per check.
        let timer = tokio::time::sleep_until(Instant::now());
        tokio::pin!(timer);
        loop {
            let now = Instant::now();
            while running.len() < self.cap && outbox.len() < self.cap {
                let Some((due, t)) = self.queue.pop_due(now) else {
                    break;
                };
                if let Some(check) = self.start(t, due) {
                    running.push(check);
                }
            }
            // Results go out at once while the channel has room; only a
            // full channel makes them wait (below).
            while let Some(done) = outbox.pop_front() {
                match tx.try_reserve() {
                    Ok(permit) => {
                        if let Some(ev) = self.event(done) {
                            permit.send(ev);
                        }
                    }
                    Err(mpsc::error::TrySendError::Full(())) => {
                        outbox.push_front(done);
                        break;
                    }
                    Err(mpsc::error::TrySendError::Closed(())) => return,
                }
            }
            let next_due = if running.len() < self.cap && outbox.len() < self.cap {
                self.queue.next_due()
            } else {
                None
            };
            if let Some(d) = next_due
                && timer.deadline() != d
            {
                timer.as_mut().reset(d);
            }
            tokio::select! {
                biased;
                Some(done) = running.next(), if !running.is_empty() => {
                    self.reschedule(done.0, done.1);
                    outbox.push_back(done);
                }
                permit = tx.reserve(), if !outbox.is_empty() => {
                    let Ok(permit) = permit else {
                        return; // the main loop is gone
                    };
                    if let Some(ev) = outbox.pop_front().and_then(|d| self.event(d)) {
                        permit.send(ev);
                    }
                }
                () = &mut timer, if next_due.is_some() => {}
                else => {
                    // nothing checked, nothing in flight: wait to be aborted
                    std::future::pending::<()>().await;
                }
            }
        }
    }

    /// A finished check as the main loop takes it (`None` for a target
    /// not of this config: none is).
    fn event(&self, (t, _, result, at): Done) -> Option<ProbeEvent> {
        let target = self.targets.get(t)?;
        Some(ProbeEvent {
            generation: self.generation,
            svc: target.svc,
            rs: target.rs,
            result,
            at,
        })
    }

    /// The check of target `t`, due at `due`, as a future of its result.
    fn start(&self, t: usize, due: Instant) -> Option<impl Future<Output = Done> + use<>> {
        let target = self.targets.get(t)?;
        let check = self.checks.get(target.svc)?.as_ref()?;
        let (probe, addr, timeout) = (check.probe.clone(), target.addr, check.timeout);
        Some(async move {
            let result = probe::run(&probe, addr, timeout).await;
            (t, due, result, SystemTime::now())
        })
    }

    /// Target `t`'s next check, after the one due at `due` ended now.
    fn reschedule(&mut self, t: usize, due: Instant) {
        let interval = self
            .targets
            .get(t)
            .and_then(|x| self.checks.get(x.svc))
            .and_then(Option::as_ref)
            .map(|c| c.interval);
        if let Some(interval) = interval {
            self.queue.push(next_due(due, interval, Instant::now()), t);
        }
    }
}

/// When a check due at `due` runs next, once it ended at `now`: one interval
/// after `due`, so the checks keep their places in the spread whatever each
/// one takes; if that time has passed already (a check as long as its
/// interval, a stall), at once, and the next ones an interval apart from
/// then (tokio's `MissedTickBehavior::Delay`, what the per-task timers did).
pub(super) fn next_due(due: Instant, interval: Duration, now: Instant) -> Instant {
    (due + interval).max(now)
}

/// Due times of the targets, earliest first: a binary heap of
/// (due, target) pairs, one per target not in flight.
#[derive(Debug, Default)]
pub(super) struct CheckQueue {
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
}

impl CheckQueue {
    pub(super) fn push(&mut self, due: Instant, target: usize) {
        self.heap.push(Reverse((due, target)));
    }

    /// The earliest target due at or before `now`, and its due time.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<(Instant, usize)> {
        let Reverse((due, _)) = self.heap.peek()?;
        if *due > now {
            return None;
        }
        self.heap.pop().map(|Reverse(x)| x)
    }

    /// When the next target falls due.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((due, _))| *due)
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

    /// The queue gives targets back earliest first, only once due; the
    /// next check keeps its place in the spread unless it is already late.
    #[test]
    fn checks_fall_due_in_order_and_keep_their_places() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut q = CheckQueue::default();
        q.push(t0 + ms(30), 2);
        q.push(t0 + ms(10), 0);
        q.push(t0 + ms(20), 1);
        assert_eq!(q.next_due(), Some(t0 + ms(10)));
        assert_eq!(q.pop_due(t0), None);
        assert_eq!(q.pop_due(t0 + ms(25)), Some((t0 + ms(10), 0)));
        assert_eq!(q.pop_due(t0 + ms(25)), Some((t0 + ms(20), 1)));
        assert_eq!(q.pop_due(t0 + ms(25)), None);
        assert_eq!(q.next_due(), Some(t0 + ms(30)));
        // a 3 ms check due at 10 ms runs again at 1,010 ms, not 1,013
        assert_eq!(next_due(t0 + ms(10), ms(1000), t0 + ms(13)), t0 + ms(1010));
        // one that ended after its next due time runs again at once
        assert_eq!(next_due(t0, ms(100), t0 + ms(250)), t0 + ms(250));
    }

    /// The scheduler checks every target again and again, each result
    /// under its own (service, real server) and generation, whatever the
    /// main loop's pace (nothing is read for a while here) and with one
    /// check in flight at a time.
    #[tokio::test]
    async fn the_scheduler_checks_every_target_in_turn() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let up = listener.local_addr().expect("addr");
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        let check = |ms| ServiceCheck {
            probe: Arc::new(Probe::Tcp),
            interval: Duration::from_millis(ms),
            timeout: Duration::from_secs(1),
        };
        let (tx, mut rx) = mpsc::channel(1);
        let mut queue = CheckQueue::default();
        let now = Instant::now();
        queue.push(now, 0);
        queue.push(now, 1);
        let s = Scheduler {
            checks: vec![None, Some(check(20)), Some(check(30))],
            targets: vec![
                Target {
                    svc: 1,
                    rs: 3,
                    addr: up,
                },
                Target {
                    svc: 2,
                    rs: 0,
                    addr: closed,
                },
            ],
            queue,
            generation: 7,
            cap: 1, // one check at a time: the cap holds the rest back

            tx,
        };
        let task = tokio::spawn(s.run());
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut seen = std::collections::BTreeMap::<(usize, usize), Vec<bool>>::new();
        while seen.values().map(Vec::len).min().unwrap_or(0) < 3 || seen.len() < 2 {
            // a guard against a hang, not a time limit: 20 and 30 ms apart
            let ev = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .unwrap_or_else(|_| panic!("checks stopped: {seen:?}"))
                .expect("results");
            assert_eq!(ev.generation, 7);
            seen.entry((ev.svc, ev.rs)).or_default().push(ev.result.ok);
        }
        task.abort();
        assert_eq!(seen.keys().copied().collect::<Vec<_>>(), [(1, 3), (2, 0)]);
        assert!(seen[&(1, 3)].iter().all(|ok| *ok), "{seen:?}");
        assert!(seen[&(2, 0)].iter().all(|ok| !ok), "{seen:?}");
        drop(listener);
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
