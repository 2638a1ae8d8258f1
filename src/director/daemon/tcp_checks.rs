//! TCP health checks outside the runtime's task machinery: one task holds
//! an epoll instance of its own (mio), registered in the runtime's as one
//! descriptor; a check is a non-blocking `connect` registered there, the
//! socket's first event, its `SO_ERROR`, a reset close. HTTP, HTTPS and
//! script checks stay futures of the runtime ([`super::probes`]); a TCP
//! check needs none of what the runtime gives them.
//!
//! Why: at 1,000 services × 10 real servers checked every 10 s, lvsup's
//! user-space CPU per check was 3.25× keepalived's in the lab VM (0.070
//! against 0.021 ms, 2026-12-04), and callgrind (`benches/check_cost.sh`,
//! 11.1k instructions per check) found the check itself cheap and the
//! runtime's machinery around it dear: a task's poll and wake, a group's
//! `FuturesUnordered`, a timer entry per check in the timer wheel, the I/O
//! driver's registration (an `Arc`'d slot per socket), the select of the
//! group, the runtime's park between them. Here a check is a slot in a
//! vector and an entry in two queues ([`Timeline`]: its schedule and its
//! deadline), the socket is registered with the task's epoll under the
//! slot's index, and the task wakes when that epoll has events or at the
//! next step of the grid ([`Grid`]: the checks due within one step start
//! together and their answers come back in one wake, as in the groups). mio
//! is tokio's own layer over epoll; what is written here is the
//! scheduling, which the groups had too.
//!
//! Not a thread of its own: that was built first (11f26b2) and halved the
//! instructions per check natively, but in the lab VM it cost more CPU than
//! it saved: the kernel's share rose by a quarter (two threads waking each
//! other at every step of the grid), 1.16× the single thread's CPU in
//! all in an A/B of the same hour (docs/benchmarks.md, (s2)).
//!
//! Behaviour is that of the groups ([`super::probes`]): each member on its
//! [`Schedule`], one check in flight per member at most (a check due while
//! the last still runs is skipped and counted), a place among the checks in
//! flight from the daemon's one [`Semaphore`] before the connect (the
//! check's timeout starts when it gets one; a check waiting for a place is
//! tried again on the grid's next step), results to the main loop on the
//! probes' channel with the same details ("connected", "connect: …",
//! "timeout after …", inconclusive "no probe socket on the director: …").
//! The task ends when its [`TcpChecks`] handle is dropped (a reload starts
//! another) or the main loop's channel closes.

use std::collections::{BinaryHeap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mio::{Events, Interest, Poll, Token};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc::Sender;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::director::probe::{ProbeResult, is_local_exhaustion};

use super::ProbeEvent;
use super::probes::{Grid, Schedule};

/// The clock, read from std: one read per wake of the task, the end of
/// every check it then reports and the start of those then due (tokio's
/// `Instant::now` is the same read, through the runtime's clock). Instants
/// are tokio's, the type the schedules and the grid share with the
/// runtime's checks.
fn clock() -> Instant {
    Instant::from_std(std::time::Instant::now())
}

/// Events taken per `epoll_wait`.
const EVENTS: usize = 256;

/// One checked (service, real server) of a TCP check.
#[derive(Debug, Clone)]
pub(super) struct TcpMember {
    pub addr: SocketAddr,
    pub timeout: Duration,
    pub svc: u32,
    pub rs: u32,
    pub schedule: Schedule,
}

/// The running task: dropping this ends it, its checks in flight closed;
/// results it sent before belong to an older generation and the main loop
/// drops them.
pub(super) struct TcpChecks {
    task: JoinHandle<()>,
}

impl Drop for TcpChecks {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the task shares with the rest of the daemon.
pub(super) struct Wiring {
    /// The places among the checks in flight (the runtime's checks take
    /// theirs from the same one).
    pub in_flight: Arc<Semaphore>,
    /// The probes' channel to the main loop.
    pub tx: Sender<ProbeEvent>,
    /// The [`super::Driver::start_probes`] run the results belong to.
    pub generation: u64,
    /// Checks left out, counted with the runtime's.
    pub skipped: Arc<AtomicU64>,
    /// The runtime's checks' grid, shared so that both wake together.
    pub grid: Grid,
}

/// Start the task checking `members`, on the runtime this is called on.
pub(super) fn spawn(members: Vec<TcpMember>, wiring: Wiring) -> io::Result<TcpChecks> {
    let poll = Poll::new()?;
    // The runtime watches a duplicate of the epoll descriptor (the same
    // epoll instance), owned by the `AsyncFd`, so each of the two closes
    // its own.
    // SAFETY: `poll` is alive and holds its descriptor open for this call.
    let dup = unsafe { BorrowedFd::borrow_raw(poll.as_raw_fd()) }.try_clone_to_owned()?;
    // SAFETY: `dup` is an open descriptor the `AsyncFd` owns for its life.
    let fd = unsafe { AsyncFd::register_with_interest(dup, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)?;
    let engine = Engine::new(members, poll, wiring);
    Ok(TcpChecks {
        task: tokio::spawn(engine.run(fd)),
    })
}

/// A check in flight.
struct Flight {
    member: u32,
    /// Which check of the task this is: a deadline names it, so one left
    /// from an earlier check in the same slot ends nothing.
    seq: u64,
    socket: mio::net::TcpStream,
    /// Nanoseconds since the grid's epoch, as every time of the task.
    start: u64,
    /// Held until the check ends: a place among the checks in flight.
    _place: OwnedSemaphorePermit,
}

/// How a check ended.
enum Outcome {
    Connected,
    /// The real server's answer (refused, unreachable…).
    Refused(io::Error),
    /// No socket or no registration on the director: says nothing of the
    /// real server.
    Local(io::Error),
    Timeout,
}

/// Times are nanoseconds since the grid's epoch (`u64`: 584 years): they
/// are compared on every push and pop of the due times and deadlines, and
/// `Instant`s (a `timespec`'s two fields) cost the binary heaps that first
/// held them half their instructions per check (callgrind,
/// `benches/check_cost.sh`).
struct Engine {
    members: Vec<TcpMember>,
    /// Members with a check in flight or waiting for a place.
    busy: Vec<bool>,
    /// Members by due time, in queues by interval ([`Timeline`]).
    due: Timeline<u32>,
    /// Each member's queue in `due` (its interval's) and in `deadlines`
    /// (its timeout's).
    queues: Vec<(usize, usize)>,
    /// Members due, waiting for a place among the checks in flight.
    waiting: VecDeque<u32>,
    /// Checks in flight by slot (the socket's epoll token).
    flights: Vec<Option<Flight>>,
    free: Vec<usize>,
    /// (check, slot) by deadline, in queues by timeout ([`Timeline`]);
    /// stale entries (the check ended) are skipped when they come up.
    deadlines: Timeline<(u64, usize)>,
    /// The last check's number ([`Flight::seq`]).
    seq: u64,
    poll: Poll,
    w: Wiring,
    /// Results of this turn, sent when it ends.
    out: Vec<ProbeEvent>,
}

impl Engine {
    fn new(members: Vec<TcpMember>, poll: Poll, w: Wiring) -> Self {
        let mut intervals = Vec::new();
        let mut timeouts = Vec::new();
        let class = |classes: &mut Vec<Duration>, d: Duration| {
            classes.iter().position(|c| *c == d).unwrap_or_else(|| {
                classes.push(d);
                classes.len() - 1
            })
        };
        let queues: Vec<(usize, usize)> = members
            .iter()
            .map(|m| {
                (
                    class(&mut intervals, m.schedule.interval()),
                    class(&mut timeouts, m.timeout),
                )
            })
            .collect();
        let mut due = Timeline::new(intervals.len());
        for (i, (m, (q, _))) in members.iter().zip(&queues).enumerate() {
            due.push(*q, since(w.grid.epoch(), m.schedule.due), index(i));
        }
        Engine {
            busy: vec![false; members.len()],
            members,
            due,
            queues,
            waiting: VecDeque::new(),
            flights: Vec::new(),
            free: Vec::new(),
            deadlines: Timeline::new(timeouts.len()),
            seq: 0,
            poll,
            w,
            out: Vec::new(),
        }
    }

    /// The task's loop: start what is due, end what timed out, send the
    /// results, wait for the task's epoll to have events or the next wake;
    /// until the task is aborted or the main loop's channel closes.
    async fn run(mut self, fd: AsyncFd<OwnedFd>) {
        let mut events = Events::with_capacity(EVENTS);
        let epoch = self.w.grid.epoch();
        let timer = tokio::time::sleep_until(epoch);
        tokio::pin!(timer);
        let mut now = clock();
        loop {
            let ns = since(epoch, now);
            self.start_due(now, ns);
            self.time_out(now, ns);
            if !self.send().await {
                break;
            }
            let wake = self.next_wake(ns).map(|t| epoch + Duration::from_nanos(t));
            // the timer is moved only when the wake does: each move costs
            // the timer wheel, and one to before the driver's planned wake
            // an extra turn of the driver
            let ready = match wake {
                Some(w) => {
                    if timer.deadline() != w {
                        timer.as_mut().reset(w);
                    }
                    tokio::select! {
                        biased;
                        r = fd.readable() => Some(r),
                        () = &mut timer => None,
                    }
                }
                None => Some(fd.readable().await),
            };
            now = clock();
            let ns = since(epoch, now);
            let guard = match ready {
                Some(Ok(g)) => Some(g),
                Some(Err(e)) => {
                    // the runtime could not watch the descriptor: nothing
                    // to go on with
                    tracing::error!("health checks: TCP checks' epoll: {e}; TCP checks stop");
                    break;
                }
                None => None,
            };
            // Every answer the kernel holds is taken, on a timer's wake too,
            // before any check is timed out: a check answered in time must
            // not fail because this task was late to read it (a slow CPU, a
            // burst of due checks, a full buffer of events).
            loop {
                if let Err(e) = self.poll.poll(&mut events, Some(Duration::ZERO))
                    && e.kind() != io::ErrorKind::Interrupted
                {
                    tracing::error!("health checks: TCP checks' epoll_wait: {e}; TCP checks stop");
                    return;
                }
                let mut n = 0;
                for ev in events.iter() {
                    n += 1;
                    let slot = ev.token().0;
                    if let Some(outcome) = self.connect_outcome(slot) {
                        self.end(slot, outcome, now, ns);
                    }
                }
                if n < EVENTS {
                    break;
                }
            }
            // Drained: the next event makes the descriptor ready again (the
            // runtime reads its readiness only between this task's turns).
            if let Some(mut g) = guard {
                g.clear_ready();
            }
        }
        drop(fd);
    }

    /// Members due at `now` go to the queue for a place (or are skipped:
    /// their last check still runs); the queue's head gets places while
    /// there are some.
    fn start_due(&mut self, now: Instant, ns: u64) {
        let epoch = self.w.grid.epoch();
        while let Some((_, i)) = self.due.pop_due(ns) {
            let (Some(m), Some(&(q, _))) = (
                self.members.get_mut(i as usize),
                self.queues.get(i as usize),
            ) else {
                continue;
            };
            let next = m.schedule.next(now);
            self.due.push(q, since(epoch, next), i);
            match self.busy.get_mut(i as usize) {
                Some(b) if !*b => {
                    *b = true;
                    self.waiting.push_back(i);
                }
                _ => {
                    self.w.skipped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        while let Some(&i) = self.waiting.front() {
            let Ok(place) = self.w.in_flight.clone().try_acquire_owned() else {
                break;
            };
            self.waiting.pop_front();
            self.connect(i, place, now, ns);
        }
    }

    /// Start member `i`'s check: a non-blocking connect, registered for
    /// its first writable (or error) event.
    fn connect(&mut self, i: u32, place: OwnedSemaphorePermit, now: Instant, ns: u64) {
        let Some(m) = self.members.get(i as usize) else {
            return;
        };
        let (addr, timeout) = (m.addr, m.timeout);
        let mut socket = match mio::net::TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => {
                let outcome = if is_local_exhaustion(&e) {
                    Outcome::Local(e)
                } else {
                    Outcome::Refused(e)
                };
                self.report(i, outcome, ns, now, ns);
                return;
            }
        };
        let slot = self.free.pop().unwrap_or(self.flights.len());
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut socket, Token(slot), Interest::WRITABLE)
        {
            // ENOMEM, or epoll's max_user_watches: the director's limit
            self.free.push(slot);
            self.report(i, Outcome::Local(e), ns, now, ns);
            return;
        }
        self.seq += 1;
        let flight = Flight {
            member: i,
            seq: self.seq,
            socket,
            start: ns,
            _place: place,
        };
        match self.flights.get_mut(slot) {
            Some(f) => *f = Some(flight),
            None => self.flights.push(Some(flight)),
        }
        let q = self.queues.get(i as usize).map_or(0, |&(_, q)| q);
        self.deadlines
            .push(q, ns.saturating_add(nanos(timeout)), (self.seq, slot));
    }

    /// What the event on `slot` says of its connect: `None` when it is still
    /// under way (a spurious wake) or the slot holds no check.
    fn connect_outcome(&self, slot: usize) -> Option<Outcome> {
        let f = self.flights.get(slot)?.as_ref()?;
        match f.socket.take_error() {
            Ok(Some(e)) | Err(e) => Some(Outcome::Refused(e)),
            Ok(None) => match f.socket.peer_addr() {
                Ok(_) => Some(Outcome::Connected),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => None,
                Err(e) => Some(Outcome::Refused(e)),
            },
        }
    }

    /// End the checks whose deadline is past at `now`.
    fn time_out(&mut self, now: Instant, ns: u64) {
        while let Some((_, (seq, slot))) = self.deadlines.pop_due(ns) {
            let live = self
                .flights
                .get(slot)
                .and_then(Option::as_ref)
                .is_some_and(|f| f.seq == seq);
            if live {
                self.end(slot, Outcome::Timeout, now, ns);
            }
        }
    }

    /// End the check in `slot`: its socket closed (a reset when it
    /// connected, as the runtime's checks: no TIME_WAIT on the director),
    /// its place given back, its result queued.
    fn end(&mut self, slot: usize, outcome: Outcome, now: Instant, ns: u64) {
        let Some(f) = self.flights.get_mut(slot).and_then(Option::take) else {
            return;
        };
        self.free.push(slot);
        if matches!(outcome, Outcome::Connected) {
            // Not being able to set it does not fail the check: the close
            // is then a FIN (see probe::attempt).
            let _ = socket2::SockRef::from(&f.socket).set_linger(Some(Duration::ZERO));
        }
        // Closing the socket's only descriptor takes it out of the epoll
        // set (epoll(7)): no deregister call needed on Linux.
        drop(f.socket);
        drop(f._place);
        self.report(f.member, outcome, f.start, now, ns);
    }

    /// Queue member `i`'s result: `start` to `now` (`ns`).
    fn report(&mut self, i: u32, outcome: Outcome, start: u64, now: Instant, ns: u64) {
        if let Some(b) = self.busy.get_mut(i as usize) {
            *b = false;
        }
        let Some(m) = self.members.get(i as usize) else {
            return;
        };
        let (ok, inconclusive, detail) = match outcome {
            Outcome::Connected => (true, false, "connected".into()),
            Outcome::Refused(e) => (false, false, format!("connect: {e}").into()),
            Outcome::Local(e) => (
                false,
                true,
                format!("no probe socket on the director: {e}").into(),
            ),
            Outcome::Timeout => (
                false,
                false,
                format!(
                    "timeout after {}",
                    crate::config::format_duration(m.timeout)
                )
                .into(),
            ),
        };
        self.out.push(ProbeEvent {
            generation: self.w.generation,
            svc: m.svc as usize,
            rs: m.rs as usize,
            result: ProbeResult {
                ok,
                inconclusive,
                detail,
                took: Duration::from_nanos(ns.saturating_sub(start)),
                at: now.into_std(),
            },
        });
    }

    /// Send this turn's results; false when the main loop is gone.
    async fn send(&mut self) -> bool {
        for ev in std::mem::take(&mut self.out) {
            match self.w.tx.try_send(ev) {
                Ok(()) => {}
                // the main loop is behind: wait for it
                Err(TrySendError::Full(ev)) => {
                    if self.w.tx.send(ev).await.is_err() {
                        return false;
                    }
                }
                Err(TrySendError::Closed(_)) => return false,
            }
        }
        true
    }

    /// When to wake next: the grid step of the next check due, or the
    /// earliest deadline of a check in flight, or the next step when checks
    /// wait for a place; `None` (until an event) when there is none of them.
    fn next_wake(&mut self, ns: u64) -> Option<u64> {
        let due = self.due.peek().map(|t| self.w.grid.nanos_at_or_after(t));
        let deadline = self
            .deadlines
            .peek()
            .map(|d| self.w.grid.nanos_at_or_after(d));
        let place =
            (!self.waiting.is_empty()).then(|| self.w.grid.nanos_at_or_after(ns.saturating_add(1)));
        [due, deadline, place].into_iter().flatten().min()
    }
}

/// Times with a value each, taken earliest first, in queues the caller
/// chooses: the members' due times by interval, the checks' deadlines by
/// timeout. Within a queue the times come nearly always in order (a
/// deadline is its check's start plus the queue's timeout, and starts only
/// move forward; a next check is its last plus the queue's interval), so
/// each queue is a `VecDeque` appended at its back, and a small heap of the
/// queues' fronts picks the earliest: O(1) per entry for the few intervals
/// and timeouts a config has, where one binary heap of every entry cost
/// O(log n), 400 instructions per check at 200 members (callgrind,
/// `benches/check_cost.sh`) and more at 10,000. An entry out of order (a
/// check due again after a stall longer than its interval) is inserted at
/// its place.
#[derive(Debug)]
struct Timeline<T> {
    queues: Vec<VecDeque<(u64, T)>>,
    /// (front time, queue) of the queues' fronts, earliest first; an entry
    /// whose queue's front has another time is stale and dropped when seen.
    heads: BinaryHeap<std::cmp::Reverse<(u64, usize)>>,
}

impl<T: Copy> Timeline<T> {
    fn new(queues: usize) -> Self {
        Timeline {
            queues: (0..queues.max(1)).map(|_| VecDeque::new()).collect(),
            heads: BinaryHeap::new(),
        }
    }

    /// Add `v` at time `at` to queue `q` (the last queue if there is no
    /// `q`: a caller's mistake costs order, not an entry).
    fn push(&mut self, q: usize, at: u64, v: T) {
        let q = q.min(self.queues.len() - 1);
        let Some(queue) = self.queues.get_mut(q) else {
            return;
        };
        let new_front = queue.front().is_none_or(|f| at < f.0);
        if queue.back().is_none_or(|b| b.0 <= at) {
            queue.push_back((at, v));
        } else {
            let place = queue.partition_point(|e| e.0 <= at);
            queue.insert(place, (at, v));
        }
        if new_front {
            self.heads.push(std::cmp::Reverse((at, q)));
        }
    }

    /// The earliest time.
    fn peek(&mut self) -> Option<u64> {
        while let Some(&std::cmp::Reverse((t, q))) = self.heads.peek() {
            if self
                .queues
                .get(q)
                .and_then(VecDeque::front)
                .is_some_and(|f| f.0 == t)
            {
                return Some(t);
            }
            self.heads.pop();
        }
        None
    }

    /// The earliest entry if its time is at or before `now`.
    fn pop_due(&mut self, now: u64) -> Option<(u64, T)> {
        let t = self.peek()?;
        if t > now {
            return None;
        }
        let std::cmp::Reverse((_, q)) = self.heads.pop()?;
        let queue = self.queues.get_mut(q)?;
        let e = queue.pop_front();
        if let Some(f) = queue.front() {
            self.heads.push(std::cmp::Reverse((f.0, q)));
        }
        e
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.queues.iter().all(VecDeque::is_empty)
    }
}

/// `t` in nanoseconds since `epoch` (0 before it).
fn since(epoch: Instant, t: Instant) -> u64 {
    nanos(t.saturating_duration_since(epoch))
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A member's index as the heaps keep it (the daemon has fewer than 2^32
/// checked destinations: [`super::probes`] keeps config indexes as u32 too).
fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A local port whose listener accepts every connection and closes it.
    fn answering_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            for s in l.incoming() {
                drop(s);
            }
        });
        port
    }

    /// A local port that refuses: bound and dropped.
    fn refusing_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    }

    /// A local port whose SYNs go unanswered: a listener with a backlog of
    /// 0, its accept queue filled by one connection nobody accepts (Linux
    /// drops a SYN to a listener whose queue is full). The listener and
    /// the filler are returned to be kept.
    fn silent_port() -> (u16, socket2::Socket, std::net::TcpStream) {
        use socket2::{Domain, Socket, Type};
        let l = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        l.bind(&any.into()).expect("bind");
        l.listen(0).expect("listen");
        let addr = l
            .local_addr()
            .expect("addr")
            .as_socket()
            .expect("an inet address");
        let filler = std::net::TcpStream::connect(addr).expect("the queue's one place");
        (addr.port(), l, filler)
    }

    fn member(port: u16, svc: u32, rs: u32, first: Instant, every: Duration) -> TcpMember {
        TcpMember {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            timeout: Duration::from_secs(2),
            svc,
            rs,
            schedule: Schedule::new(first, every),
        }
    }

    /// The tests' wiring: 4 places, generation 1, a 1 ms grid from `now`.
    fn wiring(tx: Sender<ProbeEvent>, now: Instant) -> Wiring {
        Wiring {
            in_flight: Arc::new(Semaphore::new(4)),
            tx,
            generation: 1,
            skipped: Default::default(),
            grid: Grid::new(now, Duration::from_millis(1)),
        }
    }

    async fn next(rx: &mut tokio::sync::mpsc::Receiver<ProbeEvent>) -> ProbeEvent {
        tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("a result within 20 s")
            .expect("the task's channel open")
    }

    /// Each member checked on its own schedule, each result as its
    /// member's (service, real server) and generation: one on a port that
    /// answers (connected), one on a port that refuses (the kernel's
    /// error, not inconclusive), every 50 ms, the second 25 ms after the
    /// first.
    #[tokio::test]
    async fn each_member_is_checked_on_its_schedule() {
        let (open, closed) = (answering_port(), refusing_port());
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let now = clock();
        let every = Duration::from_millis(50);
        let checks = spawn(
            vec![
                member(open, 3, 1, now, every),
                member(closed, 4, 0, now + every / 2, every),
            ],
            Wiring {
                generation: 7,
                ..wiring(tx, now)
            },
        )
        .expect("task");
        let mut seen = BTreeMap::<(usize, usize), Vec<ProbeResult>>::new();
        while seen.values().filter(|v| v.len() >= 3).count() < 2 {
            let ev = next(&mut rx).await;
            assert_eq!(ev.generation, 7);
            seen.entry((ev.svc, ev.rs)).or_default().push(ev.result);
        }
        drop(checks);
        assert_eq!(seen.keys().copied().collect::<Vec<_>>(), [(3, 1), (4, 0)]);
        for r in &seen[&(3, 1)] {
            assert!(r.ok && r.detail == "connected", "{r:?}");
        }
        for r in &seen[&(4, 0)] {
            assert!(!r.ok && !r.inconclusive, "{r:?}");
            assert!(
                r.detail.starts_with("connect: ") && r.detail.contains("refused"),
                "{r:?}"
            );
        }
        // each result's time is its check's end, after its start
        let r = &seen[&(3, 1)][1];
        assert!(r.at >= now.into_std() + every, "{r:?}");
    }

    /// A check whose SYN goes unanswered ends at its timeout ("timeout
    /// after …", not inconclusive), and a member has one check in flight at
    /// most: due every 50 ms with a timeout of 300 ms, the checks due while
    /// one runs are skipped and counted.
    #[tokio::test]
    async fn an_unanswered_connect_times_out_and_overlapping_checks_are_skipped() {
        let (port, _listener, _filler) = silent_port();
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let now = clock();
        let skipped = Arc::new(AtomicU64::new(0));
        let timeout = Duration::from_millis(300);
        let checks = spawn(
            vec![TcpMember {
                timeout,
                ..member(port, 0, 0, now, Duration::from_millis(50))
            }],
            Wiring {
                skipped: skipped.clone(),
                ..wiring(tx, now)
            },
        )
        .expect("task");
        for _ in 0..3 {
            let r = next(&mut rx).await.result;
            assert!(!r.ok && !r.inconclusive, "{r:?}");
            assert_eq!(r.detail, "timeout after 300ms");
            assert!(r.took >= timeout, "{r:?}");
        }
        drop(checks);
        // five or so left out per check run (due every 50 ms, each 300 ms)
        let left_out = skipped.load(Ordering::Relaxed);
        assert!(left_out >= 3 * 3, "{left_out} skipped for 3 checks run");
    }

    /// A check waits for a place among the checks in flight (the daemon's
    /// one semaphore, shared with the runtime's checks) and its timeout
    /// starts when it gets one: none runs while there is no place; with
    /// one, the results come.
    #[tokio::test]
    async fn a_check_waits_for_a_place_among_the_checks_in_flight() {
        let port = answering_port();
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let now = clock();
        let places = Arc::new(Semaphore::new(0));
        let checks = spawn(
            vec![member(port, 0, 0, now, Duration::from_millis(20))],
            Wiring {
                in_flight: places.clone(),
                ..wiring(tx, now)
            },
        )
        .expect("task");
        let none = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await;
        assert!(
            none.is_err(),
            "a check ran without a place: {:?}",
            none.map(|e| e.map(|e| e.result))
        );
        places.add_permits(1);
        let r = next(&mut rx).await.result;
        assert!(r.ok, "{r:?}");
        drop(checks);
        // and the place is given back when the check ends
        let back = tokio::time::timeout(Duration::from_secs(20), places.acquire())
            .await
            .expect("the place back within 20 s");
        drop(back);
    }

    /// Dropping the handle ends the task: its sender goes with it, so the
    /// channel closes (a reload's new task does not run beside the old
    /// one), even while its one member's next check is an hour away.
    #[tokio::test]
    async fn the_task_ends_with_its_handle() {
        let port = answering_port();
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let now = clock();
        let checks = spawn(
            vec![member(port, 0, 0, now, Duration::from_secs(3600))],
            Wiring {
                grid: Grid::new(now, Duration::from_secs(3600)),
                ..wiring(tx, now)
            },
        )
        .expect("task");
        assert!(next(&mut rx).await.result.ok);
        drop(checks);
        let end = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("the channel closed within 20 s");
        assert!(end.is_none(), "a result after the drop");
    }

    /// The timeline gives its entries earliest first across its queues,
    /// each at or after its time only: in order within a queue, one out of
    /// order (after a stall) at its place, equal times all, a queue whose
    /// front moved ahead (a stale head) not before its new front.
    #[test]
    fn the_timeline_gives_entries_earliest_first() {
        let mut t = Timeline::new(3);
        assert_eq!(t.peek(), None);
        assert_eq!(t.pop_due(u64::MAX), None);
        for (q, at, v) in [
            (0, 10, 'a'),
            (0, 30, 'b'),
            (1, 20, 'c'),
            (1, 40, 'd'),
            (2, 20, 'e'),
        ] {
            t.push(q, at, v);
        }
        // out of order in queue 0: before 'b', after 'a'
        t.push(0, 25, 'f');
        // a new front for queue 1, ahead of its old one
        t.push(1, 5, 'g');
        assert_eq!(t.peek(), Some(5));
        assert_eq!(t.pop_due(4), None);
        let mut got = Vec::new();
        while let Some((at, v)) = t.pop_due(30) {
            got.push((at, v));
        }
        assert_eq!(got[..2], [(5, 'g'), (10, 'a')]);
        // 20: 'c' and 'e' in either order
        let mut twenty: Vec<char> = got[2..4].iter().map(|e| e.1).collect();
        twenty.sort_unstable();
        assert_eq!((got[2].0, got[3].0, twenty), (20, 20, vec!['c', 'e']));
        assert_eq!(got[4..], [(25, 'f'), (30, 'b')]);
        assert_eq!(t.peek(), Some(40));
        assert_eq!(t.pop_due(u64::MAX), Some((40, 'd')));
        assert!(t.is_empty() && t.peek().is_none());
        // a queue out of range goes to the last one
        t.push(9, 1, 'h');
        assert_eq!(t.pop_due(1), Some((1, 'h')));
    }

    /// The next wake: the grid step of the next check due, the earliest
    /// deadline, or the next step while checks wait for a place.
    #[test]
    fn the_task_wakes_for_the_next_check_deadline_or_place() {
        let now = clock();
        let ms = Duration::from_millis;
        let poll = Poll::new().expect("epoll");
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let mut e = Engine::new(
            vec![member(1, 0, 0, now + ms(21), ms(1000))],
            poll,
            Wiring {
                in_flight: Arc::new(Semaphore::new(0)),
                grid: Grid::new(now, ms(1000)),
                ..wiring(tx, now)
            },
        );
        let n = nanos;
        assert_eq!(e.next_wake(0), Some(n(ms(30))));
        e.deadlines.push(0, n(ms(12)), (1, 0));
        assert_eq!(e.next_wake(0), Some(n(ms(20))));
        e.waiting.push_back(0);
        assert_eq!(e.next_wake(0), Some(n(ms(10))));
        assert_eq!(e.next_wake(n(ms(10))), Some(n(ms(20))));
        // a stale deadline (no such check) is dropped when it comes up
        e.time_out(now + ms(12), n(ms(12)));
        assert!(e.deadlines.is_empty() && e.out.is_empty());
    }
}
