//! `lvsup director run`: the daemon, a thin driver around the sans-IO
//! [`Director`] core. One tokio task loop reads the world (VRRP socket,
//! probe results, rtnetlink, signals, timers), feeds the core events with
//! the current time and carries out the actions it returns; everything slow
//! or blocking runs in its own task and talks to the loop over a channel:
//!
//! ```text
//!  VRRP socket reader ──Advert/Bad──┐
//!  control socket ──Status request──┤ events       ┌──▶ rtnetlink (VIP add/remove), GARP, adverts
//!  signals, rtnetlink, timers ──────┼──────▶ main loop ─┤
//!  reconcile task ──Reconciled──────┘  (first)  ▲  │    └──▶ reconcile task (watch): kernel IPVS table
//!  probe tasks, ≤ 16 servers each ──Probe───────┘  │         (start, health, reload, every 30 s)
//!                                   (a channel of its own, taken last)
//!                              Director::handle(now, event)
//! ```
//!
//! The probes' results come on a channel of their own, which the loop takes
//! only when no other event and no timer is due: at 10,000 checked real
//! servers the probes can keep the loop busy for seconds (a storm of
//! flips, a slow emulated CPU), and on one shared channel a VRRP advert, a
//! signal or the reconcile task's report waited behind every queued result
//! (a SIGHUP was seen 32 s late, reconciles ran every ~10 s instead of
//! back to back: benches/scale_bench.sh at 1,000 × 10, 2026-12-03).
//!
//! The IPVS table is reconciled in its own task so a slow netlink answer
//! never delays an advert; it always reads the **kernel** before deciding
//! (what keepalived's reload gets wrong: it diffs old config vs new config).

mod act;
mod hooks;
mod ipvs;
mod load;
mod notify;
mod probes;
mod report;
mod setup;
mod tcp_checks;
mod wire;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Interval;
use tracing::{error, info, warn};

use crate::contract::status::{self, ReconcileStatus, Status, VrrpCounters};
use crate::director::addr::{Addrs, Change, Changes, Link};
use crate::director::core::{self as core, Action, Director, Phase};
use crate::director::net::VrrpSocket;
use crate::director::probe::ProbeResult;
use crate::ipvs::IpvsClient;
use crate::vrrp::packet::{self, Advert, PacketError};

pub use self::ipvs::PERIODIC_RECONCILE;
use self::ipvs::ReconInput;
pub use self::load::load;
use self::setup::Inputs;

/// How often the floating addresses are compared with what the VRRP state
/// says (someone ran `ip addr del` on the Master, or a failed add): repaired.
/// The kernel's address announcements trigger the same check at once
/// ([`crate::director::addr::Changes`]), so this poll only backs them up; a
/// lost announcement (the socket's buffer overflowed) is reported as
/// [`Change::Lost`] and triggers it too.
pub const ADDRESS_CHECK: Duration = Duration::from_secs(30);

/// How often the VRRP interface's state is read (keepalived's FAULT state:
/// link down → release and stop advertising; link up → start over). The
/// daemon acts on the kernel's link announcements as they come; this poll
/// only backs them up, like [`ADDRESS_CHECK`]. Each poll parses the whole
/// link message: at 5 s the two polls were ~40 % of an idle daemon's
/// user-space instructions (callgrind, 2026-12-02).
pub const LINK_CHECK: Duration = Duration::from_secs(30);

/// The most probe results the main loop takes in one turn ([`main_loop`]).
const PROBE_DRAIN: usize = 32;

/// Both polls' period once the announcements stopped (the netlink socket
/// failed): then they are all the daemon has.
pub const POLL_WITHOUT_ANNOUNCEMENTS: Duration = Duration::from_secs(5);

/// How long the main loop gathers reconcile requests while probe results
/// are queued: each request sends the whole health matrix to the reconcile
/// task, and a storm of flips (10,000 first results at start) sent one per
/// flip, a quadratic cost. Idle, a request goes out at once.
pub const RECONCILE_GATHER: Duration = Duration::from_millis(50);

/// Options of `lvsup director run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config: PathBuf,
    /// Run without IPVS (labs on kernels without ip_vs): VRRP, addresses,
    /// ARP and health checks only.
    pub no_ipvs: bool,
    /// Control socket path; default [`crate::layout::director_socket_path`].
    pub socket: Option<PathBuf>,
}

/// Run the daemon until SIGTERM/SIGINT; the process exit code follows.
/// Logging is set up by the caller (`crate::cmd::init_logging`: stderr,
/// RUST_LOG/LVSUP_LOG, info by default), and so is `rt`, a current-thread
/// runtime (`crate::cmd::current_thread_runtime`).
pub fn run(opts: RunOptions, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    // before the heap grows: what trims give back stays given back
    load::no_huge_pages();
    // The main loop is a task of the runtime, not the future `block_on`
    // polls. The probe tasks wake it with every result; a task woken by
    // another runs in the same turn of the scheduler, while a woken
    // `block_on` future made the runtime poll its driver once more first
    // (`park_yield`: an epoll_wait and four clock reads, per check). That was
    // a third of the runtime's parks at 200 checks a second
    // (`benches/check_cost.sh`, 2026-12-04). Every task is `Send`: no
    // LocalSet (the reconcile task once needed one).
    rt.block_on(async move {
        let main = tokio::spawn(async move {
            match main_loop(opts).await {
                Ok(()) => Ok(()),
                Err(e) => {
                    error!("director stopped with an error: {e:#}");
                    Err(e)
                }
            }
        });
        match main.await {
            Ok(r) => r,
            // a panic stays a panic, as when the loop was polled here
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(anyhow::anyhow!(
                "the director's main loop was cancelled: {e}"
            )),
        }
    })
}

/// What the tasks tell the main loop.
pub(crate) enum Event {
    Packet(Result<(packet::Ipv4Header, Advert), PacketError>),
    RecvError(std::io::Error),
    Status(oneshot::Sender<Status>),
    /// A signal, a poll's tick, a kernel announcement: [`spawn_wakers`].
    Wake(Wake),
    /// The reconcile task finished a run: why it failed, and the counters
    /// of the draining destinations it read.
    Reconciled {
        error: Option<String>,
        /// The dropped services it deleted (or found gone).
        deleted: Vec<crate::ipvs::ServiceId>,
        conns: Vec<crate::director::core::drain::DestConns>,
    },
}

/// A check's result, on the probes' own channel.
pub(crate) struct ProbeEvent {
    /// The [`Driver::start_probes`] run it belongs to: older ones are dropped.
    pub generation: u64,
    pub svc: usize,
    pub rs: usize,
    /// `result.at` is its time: the main loop does not read the clock for it.
    pub result: ProbeResult,
}

/// The I/O around the core.
struct Driver {
    core: Director,
    path: PathBuf,
    /// The control socket's path.
    socket: PathBuf,
    started_at: SystemTime,
    addrs: Addrs,
    link: Link,
    nat_link: Option<Link>,
    sock: Arc<VrrpSocket>,
    ip_id: u16,
    generation: u64,
    /// The probe tasks, each with a group of checked (service, real
    /// server)s ([`Driver::start_probes`]).
    probes: Vec<JoinHandle<()>>,
    /// The TCP checks' task ([`tcp_checks`]), when there are TCP checks.
    tcp_checks: Option<tcp_checks::TcpChecks>,
    tx: mpsc::Sender<Event>,
    /// The probes' channel ([`ProbeEvent`]): taken after every other event.
    probe_tx: mpsc::Sender<ProbeEvent>,
    /// The soft open-files limit after start-up: it caps the checks in flight.
    nofile: u64,
    /// Checks whose result reached the main loop, since the start.
    checks_completed: u64,
    /// Checks the probe tasks left out ([`probes`]: the last one of the
    /// same real server still running), since the start.
    checks_skipped: Arc<std::sync::atomic::AtomicU64>,
    counters: VrrpCounters,
    transitions: VecDeque<status::TransitionRecord>,
    ipvs: Option<IpvsClient>,
    recon_tx: Option<watch::Sender<Option<ReconInput>>>,
    /// A reconcile the core asked for, not yet sent: its trigger and since
    /// when ([`Driver::send_reconcile`]).
    recon_pending: Option<(&'static str, tokio::time::Instant)>,
    recon_status: Arc<Mutex<Option<ReconcileStatus>>>,
    /// Services reloads removed that no reconcile has deleted yet.
    dropped: Vec<crate::ipvs::ServiceId>,
    sync_state: Arc<Mutex<Option<String>>>,
    /// Sync-daemon switches under way (awaited before exit).
    sync_tasks: Vec<JoinHandle<()>>,
    notify: notify::Notify,
    /// `[cluster] notify` programs, run in order in their own task.
    hooks: hooks::Hooks,
    exit: bool,
    /// The latest time handed to the core: a probe result's time (its
    /// check's end) is raised to it.
    core_now: Instant,
}

async fn main_loop(opts: RunOptions) -> anyhow::Result<()> {
    let (mut d, inputs) = Driver::start(&opts).await?;
    let Inputs {
        mut rx,
        mut probe_rx,
        changes,
    } = inputs;
    let found = d
        .host_addresses()
        .await
        .context("reading the host's addresses")?;
    d.handle(core::Event::Start { found }).await;
    if d.ipvs.is_none() {
        notify::send(&d.notify.started_without_ipvs());
    }
    spawn_wakers(d.tx.clone(), changes)?;
    // One timer for the core's deadlines, reset only when the deadline moves.
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    while !d.exit {
        // The reconcile asked for goes out once the queued probe results are
        // in, or RECONCILE_GATHER after it was asked for, whichever is first.
        if d.recon_pending
            .is_some_and(|(_, since)| probe_rx.is_empty() || since.elapsed() >= RECONCILE_GATHER)
        {
            d.send_reconcile();
        }
        let wake = d.core.poll_timeout().map(tokio::time::Instant::from_std);
        if let Some(w) = wake
            && timer.deadline() != w
        {
            timer.as_mut().reset(w);
        }
        match next(&mut rx, timer.as_mut(), wake.is_some(), &mut probe_rx).await {
            Next::Event(ev) => d.on_event(ev.context("internal channel closed")?).await,
            Next::Timeout => d.handle(core::Event::Timeout).await,
            Next::Probe(p) => {
                d.on_probe(p.context("probe channel closed")?).await;
                // The results queued behind it, while no other event is:
                // taken in this turn, up to PROBE_DRAIN. Checks that fall
                // due together (probes::CHECK_TICK) end together, and one
                // more turn of the select (its three futures polled, its
                // wakers registered again) cost about three times a
                // result's handling (benches/check_cost.sh). The core's
                // timer waits for PROBE_DRAIN results' handling at most.
                for _ in 1..PROBE_DRAIN {
                    if d.exit {
                        break;
                    }
                    let Some(p) = queued_probe(&rx, &mut probe_rx) else {
                        break;
                    };
                    d.on_probe(p).await;
                }
            }
        }
    }
    d.finish().await;
    Ok(())
}

/// What the main loop takes next.
enum Next {
    Event(Option<Event>),
    Timeout,
    Probe(Option<ProbeEvent>),
}

/// The main loop's next input, in this order: an event (VRRP, a signal,
/// the reconcile's report, a status request), the core's deadline (adverts,
/// master down) when `armed`, then a probe result. Probe results wait while
/// anything else is ready (see the module's doc).
async fn next(
    rx: &mut mpsc::Receiver<Event>,
    timer: std::pin::Pin<&mut tokio::time::Sleep>,
    armed: bool,
    probe_rx: &mut mpsc::Receiver<ProbeEvent>,
) -> Next {
    tokio::select! {
        biased;
        ev = rx.recv() => Next::Event(ev),
        () = timer, if armed => Next::Timeout,
        p = probe_rx.recv() => Next::Probe(p),
    }
}

/// A probe result already queued, when no event is (events go first, as
/// in [`next`]); `None` when either says to wait for the next turn.
fn queued_probe(
    rx: &mpsc::Receiver<Event>,
    probe_rx: &mut mpsc::Receiver<ProbeEvent>,
) -> Option<ProbeEvent> {
    if !rx.is_empty() {
        return None;
    }
    probe_rx.try_recv().ok()
}

/// What the wakers task ([`spawn_wakers`]) forwards to the main loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    Hup,
    Term,
    Int,
    /// [`ADDRESS_CHECK`]'s poll.
    CheckAddresses,
    /// [`LINK_CHECK`]'s poll.
    CheckLink,
    /// systemd's watchdog (WatchdogSec= in the unit): pinged when the main
    /// loop handles this, so a loop stuck in a handler stops pinging and is
    /// restarted.
    Watchdog,
    /// A kernel link or address announcement.
    Change(Change),
    /// The announcements stopped (the netlink socket failed).
    ChangesEnded,
}

fn every(period: Duration) -> Interval {
    let mut i = tokio::time::interval(period);
    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    i
}

/// Signals, the polls' and the watchdog's ticks and the kernel's link and
/// address announcements, forwarded to the main loop's channel by a task of
/// their own: the main loop then waits on that channel and one timer, not on
/// ten futures it would poll again for every event. At 1,000 health checks a
/// second that re-polling (three signal futures, three intervals, a new
/// timer per turn) was over half of the main loop's user-space instructions
/// per check (callgrind, 2026-12-02). The polls run every
/// [`POLL_WITHOUT_ANNOUNCEMENTS`] once the announcements stop.
fn spawn_wakers(tx: mpsc::Sender<Event>, mut changes: Changes) -> anyhow::Result<()> {
    let watchdog = notify::watchdog();
    if let Some(w) = watchdog {
        info!(timeout = ?w, "systemd watchdog: pinging every {:?}", notify::ping_period(w));
    }
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        let mut link_check = every(LINK_CHECK);
        let mut addr_check = every(ADDRESS_CHECK);
        let mut wd_tick = every(notify::ping_period(
            watchdog.unwrap_or(Duration::from_secs(3600)),
        ));
        let mut changes_open = true;
        loop {
            let w = tokio::select! {
                _ = hup.recv() => Wake::Hup,
                _ = term.recv() => Wake::Term,
                _ = int.recv() => Wake::Int,
                _ = addr_check.tick() => Wake::CheckAddresses,
                _ = link_check.tick() => Wake::CheckLink,
                _ = wd_tick.tick(), if watchdog.is_some() => Wake::Watchdog,
                ch = changes.next(), if changes_open => match ch {
                    Some(c) => Wake::Change(c),
                    None => {
                        changes_open = false;
                        link_check = every(POLL_WITHOUT_ANNOUNCEMENTS);
                        addr_check = every(POLL_WITHOUT_ANNOUNCEMENTS);
                        Wake::ChangesEnded
                    }
                },
            };
            if tx.send(Event::Wake(w)).await.is_err() {
                return;
            }
        }
    });
    Ok(())
}

impl Driver {
    async fn shutdown(&mut self, why: &'static str) {
        notify::send(&self.notify.stopping());
        self.handle(core::Event::Shutdown { why }).await
    }

    /// SIGHUP: the file read again, for the core to take or refuse.
    async fn reload(&mut self) {
        info!(config = %self.path.display(), "SIGHUP: reloading");
        let at = status::timestamp(SystemTime::now());
        let result = load(&self.path).map(Box::new).map_err(|e| format!("{e:#}"));
        self.handle(core::Event::Reload { at, result }).await;
    }

    /// An rtnetlink announcement; false when they stopped coming.
    async fn on_wake(&mut self, w: Wake) {
        let stopping = matches!(self.core.phase(), Phase::ShuttingDown { .. });
        match w {
            Wake::Hup => self.reload().await,
            Wake::Term => self.shutdown("SIGTERM").await,
            Wake::Int => self.shutdown("SIGINT").await,
            Wake::CheckAddresses => self.check_addresses().await,
            Wake::CheckLink | Wake::Change(Change::Link) if !stopping => self.check_link().await,
            Wake::CheckLink | Wake::Change(Change::Link) => {}
            Wake::Watchdog => notify::send(&[notify::Msg::Watchdog]),
            Wake::Change(Change::Address) => self.check_addresses().await,
            Wake::Change(Change::Lost) => {
                warn!(
                    "rtnetlink announcements were lost (socket buffer full): reading the link and addresses"
                );
                if !stopping {
                    self.check_link().await;
                }
                self.check_addresses().await;
            }
            Wake::ChangesEnded => warn!(
                "rtnetlink announcements stopped: polling the link and addresses every {POLL_WITHOUT_ANNOUNCEMENTS:?} only"
            ),
        }
    }

    /// After Exit (the core released every address): probes stop, the sync
    /// daemons' last switch and the hooks run finish, the socket goes.
    async fn finish(mut self) {
        for p in self.probes.drain(..) {
            p.abort();
        }
        self.tcp_checks = None;
        for t in self.sync_tasks.drain(..) {
            let _ = t.await;
        }
        self.hooks.finish(hooks::HOOK_TIMEOUT).await;
        let _ = std::fs::remove_file(&self.socket);
        info!("director stopped");
    }

    /// Feed the core and carry out its actions in order; an action's
    /// outcome the core asked for is fed back before the next one.
    async fn handle(&mut self, ev: core::Event) {
        self.handle_at(Instant::now(), ev).await;
    }

    /// [`Self::handle`] with the time already read.
    async fn handle_at(&mut self, now: Instant, ev: core::Event) {
        self.core_now = self.core_now.max(now);
        let mut todo: VecDeque<Action> = self.core.handle(now, ev).into();
        while let Some(a) = todo.pop_front() {
            if let Some(back) = self.execute(a).await {
                for (i, a) in self
                    .core
                    .handle(Instant::now(), back)
                    .into_iter()
                    .enumerate()
                {
                    todo.insert(i, a);
                }
            }
        }
    }

    /// Count a dropped VRRP packet by reason; log the first of each kind,
    /// then every 100th: a flood cannot flood the log.
    fn bad_packet(&mut self, e: PacketError) {
        let key = e.key();
        let n = self
            .counters
            .bad_packets
            .entry(key.to_string())
            .or_insert(0);
        *n += 1;
        if *n == 1 || *n % 100 == 0 {
            warn!(reason = key, count = *n, "bad VRRP packet dropped: {e}");
        }
    }

    async fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Packet(Ok((ip, advert))) => {
                // The TTL rule needs the peers of the config in force (the
                // reader task decodes without it): relaxed for unicast peers.
                let v = &self.core.config().vrrp;
                let unicast_peers: &[std::net::Ipv4Addr] = if v.unicast { &v.peers } else { &[] };
                match packet::check_ttl(&ip, unicast_peers) {
                    Ok(()) => {
                        let (src, dst) = (ip.src, ip.dst);
                        self.handle(core::Event::Advert { src, dst, advert }).await
                    }
                    Err(e) => self.bad_packet(e),
                }
            }
            Event::Packet(Err(e)) => self.bad_packet(e),
            Event::RecvError(e) => warn!("VRRP socket receive error: {e}"),
            Event::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Event::Wake(w) => self.on_wake(w).await,
            Event::Reconciled {
                error,
                deleted,
                conns,
            } => {
                self.dropped.retain(|id| !deleted.contains(id));
                notify::send(&self.notify.reconciled(error.as_deref()));
                if !conns.is_empty() {
                    self.handle(core::Event::Connections(conns)).await;
                }
            }
        }
    }

    async fn on_probe(&mut self, p: ProbeEvent) {
        self.checks_completed += 1;
        // A result of probes a reload or fault replaced: dropped.
        if p.generation != self.generation {
            return;
        }
        let r = p.result;
        let record = core::health::Check {
            at: r.at,
            ok: r.ok,
            detail: r.detail,
            duration_ms: u32::try_from(r.took.as_millis()).unwrap_or(u32::MAX),
            inconclusive: r.inconclusive,
        };
        // The check's end is the core's time for its result (no clock read
        // per check), never before a time the core has already been given:
        // results can be queued behind later events.
        let now = r.at.max(self.core_now);
        self.handle_at(
            now,
            core::Event::Probe {
                svc: p.svc,
                rs: p.rs,
                record,
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe() -> ProbeEvent {
        ProbeEvent {
            generation: 1,
            svc: 0,
            rs: 0,
            result: ProbeResult {
                ok: true,
                inconclusive: false,
                detail: "connected".into(),
                took: Duration::from_millis(1),
                at: Instant::now(),
            },
        }
    }

    /// The results queued behind one are taken in the same turn while no
    /// event is queued; an event stops that, and it is the next turn's.
    #[tokio::test]
    async fn queued_probe_results_are_taken_until_an_event_comes() {
        let (tx, mut rx) = mpsc::channel(16);
        let (ptx, mut prx) = mpsc::channel(64);
        assert!(queued_probe(&rx, &mut prx).is_none(), "nothing queued");
        for _ in 0..3 {
            ptx.try_send(probe()).expect("room");
        }
        assert!(queued_probe(&rx, &mut prx).is_some());
        tx.try_send(Event::Wake(Wake::Hup)).expect("room");
        assert!(queued_probe(&rx, &mut prx).is_none(), "an event waits");
        let timer = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(timer);
        assert!(matches!(
            next(&mut rx, timer.as_mut(), true, &mut prx).await,
            Next::Event(Some(Event::Wake(Wake::Hup)))
        ));
        assert!(queued_probe(&rx, &mut prx).is_some());
        assert!(queued_probe(&rx, &mut prx).is_some());
        assert!(queued_probe(&rx, &mut prx).is_none(), "all taken");
    }

    /// However many probe results are queued, a signal (any event) and a
    /// due deadline are taken first; probe results when nothing else is
    /// ready. (On one shared channel a SIGHUP waited behind every queued
    /// result.) Many turns: without `biased`, select! picks at random.
    #[tokio::test]
    async fn events_and_deadlines_go_before_probe_results() {
        let (tx, mut rx) = mpsc::channel(16);
        let (ptx, mut prx) = mpsc::channel(64);
        for _ in 0..64 {
            ptx.try_send(probe()).expect("room");
        }
        let timer = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(timer);
        for _ in 0..16 {
            tx.try_send(Event::Wake(Wake::Hup)).expect("room");
        }
        for _ in 0..16 {
            let n = next(&mut rx, timer.as_mut(), true, &mut prx).await;
            assert!(matches!(n, Next::Event(Some(Event::Wake(Wake::Hup)))));
        }
        // a deadline past (one just reached is taken at the timer's next
        // millisecond tick)
        let due = tokio::time::Instant::now();
        timer.as_mut().reset(due);
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(matches!(
            next(&mut rx, timer.as_mut(), true, &mut prx).await,
            Next::Timeout
        ));
        // not armed: the expired timer is not taken; the probes' turn
        for _ in 0..16 {
            assert!(matches!(
                next(&mut rx, timer.as_mut(), false, &mut prx).await,
                Next::Probe(Some(_))
            ));
        }
    }
}
