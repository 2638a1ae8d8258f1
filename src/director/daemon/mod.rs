//! `lvsup director run`: the daemon, a thin driver around the sans-IO
//! [`Director`] core. One tokio task loop reads the world (VRRP socket,
//! probe results, rtnetlink, signals, timers), feeds the core events with
//! the current time and carries out the actions it returns; everything slow
//! or blocking runs in its own task and talks to the loop over a channel:
//!
//! ```text
//!  VRRP socket reader ──Advert/Bad──┐
//!  probe task per (service, server) ─Probe─┐      ┌──▶ rtnetlink (VIP add/remove), GARP, adverts
//!  control socket ──Status request──┼──▶ main loop ─┤
//!  signals, rtnetlink, timers ──────┘      │      └──▶ reconcile task (watch): kernel IPVS table
//!                              Director::handle(now, event)  (start, health, reload, every 30 s)
//! ```
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
mod wire;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Interval;
use tracing::{error, info, warn};

use crate::contract::status::{self, CheckRecord, ReconcileStatus, Status, VrrpCounters};
use crate::director::addr::{Addrs, Change, Link};
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

/// Both polls' period once the announcements stopped (the netlink socket
/// failed): then they are all the daemon has.
pub const POLL_WITHOUT_ANNOUNCEMENTS: Duration = Duration::from_secs(5);

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
    // A LocalSet: the reconcile task holds `ipvs::apply`'s future, which is
    // not `Send`; everything runs on this one thread anyway.
    let local = tokio::task::LocalSet::new();
    local.block_on(rt, async move {
        match main_loop(opts).await {
            Ok(()) => Ok(()),
            Err(e) => {
                error!("director stopped with an error: {e:#}");
                Err(e)
            }
        }
    })
}

/// What the tasks tell the main loop.
pub(crate) enum Event {
    Packet(Result<(packet::Ipv4Header, Advert), PacketError>),
    RecvError(std::io::Error),
    Probe {
        generation: u64,
        svc: usize,
        rs: usize,
        result: ProbeResult,
        at: SystemTime,
    },
    Status(oneshot::Sender<Status>),
    /// The reconcile task finished a run: why it failed, and the counters
    /// of the draining destinations it read.
    Reconciled {
        error: Option<String>,
        conns: Vec<crate::director::core::drain::DestConns>,
    },
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
    probes: Vec<JoinHandle<()>>,
    tx: mpsc::Sender<Event>,
    counters: VrrpCounters,
    transitions: VecDeque<status::TransitionRecord>,
    ipvs: Option<IpvsClient>,
    recon_tx: Option<watch::Sender<Option<ReconInput>>>,
    recon_status: Arc<Mutex<Option<ReconcileStatus>>>,
    sync_state: Arc<Mutex<Option<String>>>,
    /// Sync-daemon switches under way (awaited before exit).
    sync_tasks: Vec<JoinHandle<()>>,
    notify: notify::Notify,
    /// `[cluster] notify` programs, run in order in their own task.
    hooks: hooks::Hooks,
    exit: bool,
}

async fn main_loop(opts: RunOptions) -> anyhow::Result<()> {
    let (mut d, inputs) = Driver::start(&opts).await?;
    let Inputs {
        mut rx,
        mut changes,
    } = inputs;
    let found = d
        .host_addresses()
        .await
        .context("reading the host's addresses")?;
    d.handle(core::Event::Start { found }).await;
    if d.ipvs.is_none() {
        notify::send(&d.notify.started_without_ipvs());
    }
    let mut w = Wakers::new()?;
    while !d.exit {
        let wake = d.core.poll_timeout().map(tokio::time::Instant::from_std);
        let stopping = matches!(d.core.phase(), Phase::ShuttingDown { .. });
        tokio::select! {
            ev = rx.recv() => d.on_event(ev.context("internal channel closed")?).await,
            _ = async { tokio::time::sleep_until(wake.unwrap_or_else(tokio::time::Instant::now)).await }, if wake.is_some() => {
                d.handle(core::Event::Timeout).await;
            }
            _ = w.addr_check.tick() => d.check_addresses().await,
            ch = changes.next(), if w.changes_open => {
                w.changes_open = d.on_change(ch, stopping).await;
                if !w.changes_open {
                    w.poll_often();
                }
            }
            _ = w.link_check.tick(), if !stopping => d.check_link().await,
            _ = w.hup.recv() => d.reload().await,
            _ = w.term.recv() => d.shutdown("SIGTERM").await,
            _ = w.int.recv() => d.shutdown("SIGINT").await,
            _ = w.wd_tick.tick(), if w.watchdog => notify::send(&[notify::Msg::Watchdog]),
        }
    }
    d.finish().await;
    Ok(())
}

/// Signals and the driver's own ticks.
struct Wakers {
    hup: Signal,
    term: Signal,
    int: Signal,
    link_check: Interval,
    addr_check: Interval,
    /// Whether rtnetlink still announces changes.
    changes_open: bool,
    /// systemd's watchdog (WatchdogSec= in the unit): pinged from the main
    /// loop's own tick, so a loop stuck in a handler stops pinging and is
    /// restarted.
    watchdog: bool,
    wd_tick: Interval,
}

fn every(period: Duration) -> Interval {
    let mut i = tokio::time::interval(period);
    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    i
}

impl Wakers {
    /// The announcements stopped: the polls become the only way to see a link
    /// or address change, every [`POLL_WITHOUT_ANNOUNCEMENTS`].
    fn poll_often(&mut self) {
        self.link_check = every(POLL_WITHOUT_ANNOUNCEMENTS);
        self.addr_check = every(POLL_WITHOUT_ANNOUNCEMENTS);
    }

    fn new() -> anyhow::Result<Wakers> {
        let watchdog = notify::watchdog();
        if let Some(w) = watchdog {
            info!(timeout = ?w, "systemd watchdog: pinging every {:?}", notify::ping_period(w));
        }
        Ok(Wakers {
            hup: signal(SignalKind::hangup())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            link_check: every(LINK_CHECK),
            addr_check: every(ADDRESS_CHECK),
            changes_open: true,
            watchdog: watchdog.is_some(),
            wd_tick: every(notify::ping_period(
                watchdog.unwrap_or(Duration::from_secs(3600)),
            )),
        })
    }
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
    async fn on_change(&mut self, ch: Option<Change>, stopping: bool) -> bool {
        match ch {
            Some(Change::Address) => self.check_addresses().await,
            Some(Change::Link) if !stopping => self.check_link().await,
            Some(Change::Link) => {}
            Some(Change::Lost) => {
                warn!(
                    "rtnetlink announcements were lost (socket buffer full): reading the link and addresses"
                );
                if !stopping {
                    self.check_link().await;
                }
                self.check_addresses().await;
            }
            None => {
                warn!(
                    "rtnetlink announcements stopped: polling the link and addresses every {POLL_WITHOUT_ANNOUNCEMENTS:?} only"
                );
                return false;
            }
        }
        true
    }

    /// After Exit (the core released every address): probes stop, the sync
    /// daemons' last switch and the hooks run finish, the socket goes.
    async fn finish(mut self) {
        for p in self.probes.drain(..) {
            p.abort();
        }
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
        let mut todo: VecDeque<Action> = self.core.handle(Instant::now(), ev).into();
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
            Event::Probe {
                generation,
                svc,
                rs,
                result: r,
                at,
            } if generation == self.generation => {
                let record = CheckRecord {
                    at: status::timestamp(at),
                    ok: r.ok,
                    detail: r.detail,
                    duration_ms: r.took.as_millis() as u64,
                    inconclusive: r.inconclusive,
                };
                self.handle(core::Event::Probe { svc, rs, record }).await
            }
            // A result of probes a reload or fault replaced.
            Event::Probe { .. } => {}
            Event::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Event::Reconciled { error, conns } => {
                notify::send(&self.notify.reconciled(error.as_deref()));
                if !conns.is_empty() {
                    self.handle(core::Event::Connections(conns)).await;
                }
            }
        }
    }
}
