//! Health checks: the checked (service, real server)s in groups of at most
//! [`GROUP`], one task per group; each member checked on its own schedule.
//!
//! Why groups, and why these: at 10,000 checked real servers a task per
//! destination cost 624 bytes each (heaptrack, 2026-12-04: tokio's task
//! cell, 512 bytes at its 128-byte alignment, and the timer boxed beside
//! it), 6.2 MB of the daemon's 10 MB of heap; a member of a group costs
//! what it needs (its probe, address, timeout, indexes and schedule: under
//! 100 bytes) and a sixteenth of its task. A group's members are the
//! destinations `M` places apart in the first checks' spread
//! ([`first_check_slots`], [`group_of`]), `M` the number of groups, so a
//! group's timer is re-armed `M` places ahead, never the runtime's earliest
//! deadline while there are other groups: one scheduler task for every
//! check was tried (2026-12-03), and its timer, always the earliest, made
//! tokio wake its own driver (an eventfd write and an extra epoll_wait) on
//! 1.4 of every check, 24 % more user-space instructions per check
//! (`benches/check_cost.sh`). A check in flight (its socket, buffers,
//! place among the checks in flight and its result's way to the main loop)
//! is a future of its own in its group's `FuturesUnordered` for as long as
//! it runs; the group keeps none of it between checks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use tokio::sync::Semaphore;
use tokio::sync::mpsc::Sender;
use tokio::sync::mpsc::error::TrySendError;
use tokio::time::Instant;

use crate::contract::director_config::HealthConfig;
use crate::director::probe::{self, HttpProbe, Probe};
use crate::health::damping::Health;

use super::tcp_checks::{self, TcpMember};
use super::{Driver, ProbeEvent};

/// The most checked destinations one probe task checks.
pub(super) const GROUP: usize = 16;

impl Driver {
    /// The probe tasks of the config in force, each with its group of
    /// checked (service, real server)s; results of earlier generations are
    /// dropped.
    pub(super) fn start_probes(&mut self) {
        for p in self.probes.drain(..) {
            p.abort();
        }
        self.tcp_checks = None;
        self.generation += 1;
        let generation = self.generation;
        let services = &self.core.config().services;
        // one probe per service, shared by its real servers' checks
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
        let shortest = services
            .iter()
            .zip(&probes)
            .filter(|(_, p)| p.is_some())
            .map(|(s, _)| s.health.interval)
            .min();
        // TCP checks go to their own task (tcp_checks), the others to
        // groups of the runtime's tasks
        let is_tcp = |p: &Probe| matches!(p, Probe::Tcp);
        let runtime_checks: usize = services
            .iter()
            .zip(&probes)
            .filter(|(_, p)| p.as_deref().is_some_and(|p| !is_tcp(p)))
            .map(|(s, _)| s.real_servers.len())
            .sum();
        let mut tcp = Vec::new();
        // the runtime's checks with their places in the spread
        let mut runtime: Vec<(usize, Member, Schedule)> = Vec::with_capacity(runtime_checks);
        let now = Instant::now();
        let grid = Grid::new(now, shortest.unwrap_or(CHECK_TICK));
        for (i, s) in services.iter().enumerate() {
            let Some(Some(probe)) = probes.get(i) else {
                continue;
            };
            for (j, r) in s.real_servers.iter().enumerate() {
                let k = slots.get(i).and_then(|v| v.get(j)).copied().unwrap_or(0);
                let first = now + first_check_offset(k, total, s.health.interval);
                let addr = SocketAddr::from((r.address, s.health.port.unwrap_or(r.port)));
                let (svc, rs) = (
                    u32::try_from(i).unwrap_or(u32::MAX),
                    u32::try_from(j).unwrap_or(u32::MAX),
                );
                let schedule = Schedule::new(first, s.health.interval);
                if is_tcp(probe) {
                    tcp.push(TcpMember {
                        addr,
                        timeout: s.health.timeout,
                        svc,
                        rs,
                        schedule,
                    });
                } else {
                    let member = Member {
                        probe: probe.clone(),
                        addr,
                        timeout: s.health.timeout,
                        svc,
                        rs,
                    };
                    runtime.push((k, member, schedule));
                }
            }
        }
        // groups by the runtime's checks' ranks in the spread: a group's
        // members `groups` ranks apart
        runtime.sort_by_key(|(k, _, _)| *k);
        let groups = runtime.len().div_ceil(GROUP);
        let mut members: Vec<Vec<(Member, Schedule)>> = (0..groups)
            .map(|g| Vec::with_capacity(runtime.len().saturating_sub(g).div_ceil(groups.max(1))))
            .collect();
        for (rank, (_, member, schedule)) in runtime.into_iter().enumerate() {
            if let Some(g) = members.get_mut(group_of(rank, groups)) {
                g.push((member, schedule));
            }
        }
        for g in members {
            let (m, sched): (Vec<Member>, Vec<Schedule>) = g.into_iter().unzip();
            let task = probe_group(
                m,
                sched,
                in_flight.clone(),
                self.probe_tx.clone(),
                generation,
                self.checks_skipped.clone(),
                grid,
            );
            self.probes.push(tokio::spawn(task));
        }
        if !tcp.is_empty() {
            let n = tcp.len();
            let wiring = tcp_checks::Wiring {
                in_flight,
                tx: self.probe_tx.clone(),
                generation,
                skipped: self.checks_skipped.clone(),
                grid,
            };
            match tcp_checks::spawn(tcp, wiring) {
                Ok(t) => self.tcp_checks = Some(t),
                // no epoll instance or descriptor: the director's own
                // resources; the real servers keep their health and the
                // log says why their checks stopped
                Err(e) => tracing::error!(
                    checks = n,
                    "health checks: cannot start the TCP checks: {e}; their real servers \
                     keep the health they had"
                ),
            }
        }
    }
}

/// The group of the `k`th place of the first checks' spread, among
/// `groups`: places `groups` apart share one, so that a group's next check
/// is `groups` places after the one it just ran.
pub(super) fn group_of(k: usize, groups: usize) -> usize {
    k.checked_rem(groups).unwrap_or(0)
}

/// One checked (service, real server): what its checks need.
struct Member {
    probe: Arc<Probe>,
    addr: SocketAddr,
    timeout: Duration,
    /// Indexes in the config (u32: 4 bytes less each, 10,000 times).
    svc: u32,
    rs: u32,
}

/// One group's probe task: each member checked at its schedule's times
/// ([`Schedule`]), at most as many checks at once across tasks as
/// `in_flight` allows, each result to the main loop. A member has at most
/// one check in flight: one that falls due while the last is still running
/// (a timeout longer than the interval, a wait for a place among the checks
/// in flight) is skipped, and the next runs at its usual time, as when each
/// destination had its own task. Otherwise a server that swallows SYNs would
/// have timeout ÷ interval checks in flight, and checks waiting for a place
/// would pile up for as long as the places stayed taken. A skipped check is
/// counted (`skipped`, the status's `checks.skipped`): checks that cannot
/// keep up show there, not as a silence in the real server's logs.
///
/// The task reads the clock once per wake of its timer: that read starts
/// the timeout of the checks then due and places their next checks; a
/// check's end is its other read ([`probe::run_from`]). Each read is a
/// system call where the clock source has no vDSO path (the lab VM's
/// emulated HPET), and a `tokio::time::Interval` per destination read the
/// clock once more per check.
// An async block, not an `async fn`: the async fn's future kept its
// arguments apart from the body's copies of them.
#[allow(clippy::manual_async_fn)]
fn probe_group(
    members: Vec<Member>,
    mut schedules: Vec<Schedule>,
    in_flight: Arc<Semaphore>,
    tx: Sender<ProbeEvent>,
    generation: u64,
    skipped: Arc<AtomicU64>,
    grid: Grid,
) -> impl Future<Output = ()> + Send + 'static {
    async move {
        let Some(first) = schedules.iter().map(|s| s.due).min() else {
            return;
        };
        let timer = tokio::time::sleep_until(grid.at_or_after(first));
        tokio::pin!(timer);
        let mut running = FuturesUnordered::new();
        // the members with a check in flight
        let mut busy = vec![false; members.len()];
        loop {
            tokio::select! {
                biased;
                done = running.next(), if !running.is_empty() => {
                    let Some((i, delivered)): Option<(usize, bool)> = done else { continue };
                    if let Some(b) = busy.get_mut(i) {
                        *b = false;
                    }
                    // the main loop is gone: the daemon is stopping
                    if !delivered {
                        return;
                    }
                }
                () = &mut timer => {
                    let woke = Instant::now();
                    for (i, (m, s)) in members.iter().zip(schedules.iter_mut()).enumerate() {
                        if s.due > woke {
                            continue;
                        }
                        s.next(woke);
                        match busy.get_mut(i) {
                            Some(b) if !*b => {
                                *b = true;
                                running.push(check(i, m, &in_flight, &tx, generation, woke));
                            }
                            _ => {
                                skipped.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    if let Some(next) = schedules.iter().map(|s| s.due).min() {
                        timer.as_mut().reset(grid.at_or_after(next));
                    }
                }
            }
        }
    }
}

/// One check of member `i`, `m`, due when its group's timer woke at
/// `woke`: a place among the checks in flight (its timeout starts when it
/// gets one), the probe, the result to the main loop. Returns `i`, and
/// false when the main loop is gone.
async fn check(
    i: usize,
    m: &Member,
    in_flight: &Semaphore,
    tx: &Sender<ProbeEvent>,
    generation: u64,
    woke: Instant,
) -> (usize, bool) {
    let (permit, start) = match in_flight.try_acquire() {
        Ok(p) => (p, woke),
        Err(_) => match in_flight.acquire().await {
            Ok(p) => (p, Instant::now()),
            // never closed: the semaphore lives as long as the tasks
            Err(_) => return (i, true),
        },
    };
    let result = probe::run_from(&m.probe, m.addr, m.timeout, start.into_std()).await;
    drop(permit);
    let ev = ProbeEvent {
        generation,
        svc: m.svc as usize,
        rs: m.rs as usize,
        result,
    };
    let delivered = match tx.try_send(ev) {
        Ok(()) => true,
        Err(TrySendError::Full(ev)) => tx.send(ev).await.is_ok(),
        Err(TrySendError::Closed(_)) => false,
    };
    (i, delivered)
}

/// How far apart the probe tasks' timers fire at most: checks fall due on
/// a grid of this step ([`Grid`]), so those due within one step run on one
/// wake of the runtime, and their connections' answers come back in one
/// `epoll_wait`, instead of a wake of the runtime (an `epoll_wait`, four
/// clock reads, the timer wheel's turn) for each check's start and another
/// for its end: 2.05 wakes per check at 200 checks a second before the grid
/// (`benches/check_cost.sh`, `parks_per_check`). 10 ms late at most is
/// nothing next to the interval of a health check (a second or more; the
/// grid is finer for shorter ones), and the checks keep their phase: a
/// member's schedule is exact, only its timer is put on the grid.
pub(super) const CHECK_TICK: Duration = Duration::from_millis(10);

/// The instants the probe tasks' timers fire at: `epoch`, then every
/// `step` ([`CHECK_TICK`], or an eighth of the shortest interval checked
/// when that is less, 1 ms at least). One grid for every group, so groups
/// whose checks fall due within one step share one firing of the timer
/// wheel.
#[derive(Debug, Clone, Copy)]
pub(super) struct Grid {
    epoch: Instant,
    step: Duration,
}

impl Grid {
    pub(super) fn new(epoch: Instant, shortest_interval: Duration) -> Self {
        let step = (shortest_interval / 8).clamp(Duration::from_millis(1), CHECK_TICK);
        Grid { epoch, step }
    }

    /// The first instant of the grid at or after `t`.
    pub(super) fn at_or_after(&self, t: Instant) -> Instant {
        let since =
            u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        self.epoch + Duration::from_nanos(self.nanos_at_or_after(since))
    }

    /// [`Grid::at_or_after`] in nanoseconds since the grid's epoch (the
    /// TCP checks' task keeps its times so: [`super::tcp_checks`]).
    pub(super) fn nanos_at_or_after(&self, since_epoch: u64) -> u64 {
        let step = u64::try_from(self.step.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        since_epoch.div_ceil(step).saturating_mul(step)
    }

    /// The grid's first instant.
    pub(super) fn epoch(&self) -> Instant {
        self.epoch
    }
}

/// A checked destination's schedule: `first`, then every `interval` after it. A check
/// that fell due while the thread was busy (a reconcile of thousands of
/// operations, a slow CPU) runs at once, and the next one at its usual time;
/// a stall longer than an interval skips the checks it missed instead of
/// running them in a burst (tokio's `MissedTickBehavior::Skip`, which this
/// replaced). With `Delay` (the next an interval after the late one) every
/// check that fell due in a stall kept the stall's end as its phase for
/// good, and those checks ran in one burst every interval from then on.
#[derive(Debug, Clone, Copy)]
pub(super) struct Schedule {
    pub(super) due: Instant,
    interval: Duration,
}

impl Schedule {
    pub(super) fn new(first: Instant, interval: Duration) -> Self {
        Schedule {
            due: first,
            interval: interval.max(Duration::from_millis(1)),
        }
    }

    pub(super) fn interval(&self) -> Duration {
        self.interval
    }

    /// The check due at `self.due` started at `woke` (at or after it): when
    /// the next one is due, the first time on this schedule's phase after
    /// `woke`.
    pub(super) fn next(&mut self, woke: Instant) -> Instant {
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

    fn member(port: u16, svc: u32, rs: u32) -> Member {
        Member {
            probe: Arc::new(Probe::Tcp),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            timeout: Duration::from_secs(1),
            svc,
            rs,
        }
    }

    /// A local port whose listener accepts every connection and closes it.
    async fn answering_port() -> u16 {
        let open = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = open.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((s, _)) = open.accept().await {
                drop(s);
            }
        });
        port
    }

    /// What a checked destination costs between checks stays small: its
    /// member and schedule, 96 bytes, and a sixteenth of its group's task,
    /// whose future (256 bytes, debug build) holds no check's state (checks
    /// in flight are futures of their own). A task per destination had cost
    /// 624 bytes each (heaptrack at 1,000 × 10: 6.2 MB of 10 MB of heap).
    #[tokio::test]
    async fn a_checked_destination_costs_little_between_checks() {
        let per_member = std::mem::size_of::<Member>() + std::mem::size_of::<Schedule>();
        assert!(
            per_member <= 96,
            "a member and its schedule: {per_member} bytes"
        );
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let now = Instant::now();
        let task = probe_group(
            vec![member(80, 0, 0)],
            vec![Schedule::new(now, Duration::from_secs(1))],
            Arc::new(Semaphore::new(1)),
            tx,
            1,
            Default::default(),
            Grid::new(Instant::now(), Duration::from_millis(1)),
        );
        let size = std::mem::size_of_val(&task);
        assert!(size <= 320, "a probe group's future is {size} bytes");
    }

    /// Groups: every place of the spread in exactly one group, at most
    /// GROUP in each, a group's places `groups` apart (so its timer is
    /// re-armed behind the other groups'); no groups for no checks.
    #[test]
    fn checked_destinations_are_grouped_by_their_places_in_the_spread() {
        for total in [1usize, 2, 15, 16, 17, 200, 10_000, 10_001] {
            let groups = total.div_ceil(GROUP);
            let mut members = vec![Vec::new(); groups];
            for k in 0..total {
                members[group_of(k, groups)].push(k);
            }
            assert_eq!(members.iter().map(Vec::len).sum::<usize>(), total);
            for g in &members {
                assert!(!g.is_empty() && g.len() <= GROUP, "{total}: {g:?}");
                assert!(
                    g.windows(2).all(|w| w[1] - w[0] == groups),
                    "{total}: {g:?}"
                );
            }
        }
        assert_eq!(group_of(5, 0), 0);
    }

    /// A group checks each member on its own schedule and sends each
    /// result as its member's (service, real server): one member on a port
    /// that answers, one on a port that refuses, each checked every 50 ms,
    /// the first at once and the second 25 ms later.
    #[tokio::test]
    async fn a_group_checks_each_member_on_its_schedule() {
        let open_port = answering_port().await;
        // bound and dropped: refused
        let closed_port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let now = Instant::now();
        let every = Duration::from_millis(50);
        let task = tokio::spawn(probe_group(
            vec![member(open_port, 3, 1), member(closed_port, 4, 0)],
            vec![
                Schedule::new(now, every),
                Schedule::new(now + every / 2, every),
            ],
            Arc::new(Semaphore::new(4)),
            tx,
            7,
            Default::default(),
            Grid::new(Instant::now(), Duration::from_millis(1)),
        ));
        let mut seen = std::collections::BTreeMap::<(usize, usize), Vec<bool>>::new();
        while seen.values().filter(|v| v.len() >= 3).count() < 2 {
            let ev = tokio::time::timeout(Duration::from_secs(20), rx.recv())
                .await
                .expect("a result within 20 s")
                .expect("channel open");
            assert_eq!(ev.generation, 7);
            seen.entry((ev.svc, ev.rs)).or_default().push(ev.result.ok);
        }
        task.abort();
        assert_eq!(seen.keys().copied().collect::<Vec<_>>(), [(3, 1), (4, 0)]);
        assert!(seen[&(3, 1)].iter().all(|ok| *ok), "{seen:?}");
        assert!(seen[&(4, 0)].iter().all(|ok| !ok), "{seen:?}");
    }

    /// Checks that fall due within one step of the grid start on one wake
    /// of their group's timer, at the grid's instant, never before they are
    /// due: two members due 21 and 25 ms after the start, on a 10 ms grid,
    /// both start at 30 ms (without the grid, 4 ms apart).
    #[tokio::test]
    async fn checks_due_within_a_step_of_the_grid_start_together() {
        let port = answering_port().await;
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let now = Instant::now();
        let every = Duration::from_secs(10);
        let ms = Duration::from_millis;
        let grid = Grid::new(now, ms(80));
        let task = tokio::spawn(probe_group(
            vec![member(port, 0, 0), member(port, 0, 1)],
            vec![
                Schedule::new(now + ms(21), every),
                Schedule::new(now + ms(25), every),
            ],
            Arc::new(Semaphore::new(4)),
            tx,
            1,
            Default::default(),
            grid,
        ));
        let mut starts = Vec::new();
        for _ in 0..2 {
            let ev = tokio::time::timeout(Duration::from_secs(20), rx.recv())
                .await
                .expect("a result within 20 s")
                .expect("channel open");
            assert!(ev.result.ok, "{:?}", ev.result);
            starts.push(ev.result.at - ev.result.took);
        }
        task.abort();
        assert_eq!(starts[0], starts[1], "one wake for both checks");
        assert!(starts[0] >= (now + ms(30)).into_std(), "{starts:?}");
    }

    /// The grid: its instants `step` apart from the epoch, the step an
    /// eighth of the shortest interval within 1 ms ..= CHECK_TICK.
    #[test]
    fn the_timers_grid() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let g = Grid::new(t0, Duration::from_secs(1));
        assert_eq!(g.step, CHECK_TICK);
        assert_eq!(g.at_or_after(t0), t0);
        assert_eq!(g.at_or_after(t0 + ms(10)), t0 + ms(10));
        assert_eq!(
            g.at_or_after(t0 + ms(10) + Duration::from_nanos(1)),
            t0 + ms(20)
        );
        assert_eq!(g.at_or_after(t0 + ms(1)), t0 + ms(10));
        // before the epoch: the epoch
        assert_eq!(Grid::new(t0 + ms(5), ms(80)).at_or_after(t0), t0 + ms(5));
        assert_eq!(Grid::new(t0, ms(40)).step, ms(5));
        assert_eq!(Grid::new(t0, ms(2)).step, ms(1));
        assert_eq!(Grid::new(t0, Duration::ZERO).step, ms(1));
        // far instants do not overflow
        let far = t0 + Duration::from_secs(100 * 365 * 86_400);
        assert!(g.at_or_after(far) >= far);
    }

    /// A member has one check in flight at most: with a timeout (300 ms)
    /// six times its interval (50 ms), against a server that accepts and
    /// never answers, the checks that fall due while one runs are skipped.
    /// Each check is one connection: at most one per timeout (and one more
    /// for the edges) instead of one per interval.
    #[tokio::test]
    async fn a_member_has_one_check_in_flight_at_most() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = silent.local_addr().expect("addr").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = silent.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                held.push(s);
            }
        });
        let timeout = Duration::from_millis(300);
        let slow = Member {
            probe: Arc::new(Probe::Http(HttpProbe {
                path: "/".into(),
                expect_status: 200,
                expect_body: None,
                expect_digest: None,
            })),
            timeout,
            ..member(port, 0, 0)
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let t0 = Instant::now();
        let skipped = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(probe_group(
            vec![slow],
            vec![Schedule::new(t0, Duration::from_millis(50))],
            Arc::new(Semaphore::new(64)),
            tx,
            1,
            skipped.clone(),
            Grid::new(Instant::now(), Duration::from_millis(1)),
        ));
        for _ in 0..3 {
            let ev = tokio::time::timeout(Duration::from_secs(20), rx.recv())
                .await
                .expect("a result within 20 s")
                .expect("channel open");
            assert!(!ev.result.ok, "{:?}", ev.result);
            assert!(ev.result.detail.contains("timeout"), "{:?}", ev.result);
        }
        task.abort();
        let elapsed = t0.elapsed();
        let most = elapsed.as_millis() / timeout.as_millis() + 2;
        let seen = accepted.load(Ordering::SeqCst) as u128;
        assert!(
            seen <= most,
            "{seen} checks in {elapsed:?}: more than one in flight at a time"
        );
        // and the checks left out are counted: five or so per check run
        // (due every 50 ms, each running 300 ms)
        let left_out = skipped.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            left_out >= 3 * 3,
            "{left_out} checks counted as skipped for {seen} run in {elapsed:?}"
        );
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
