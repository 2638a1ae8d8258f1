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
mod wire;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::contract::status::{self, CheckRecord, ReconcileStatus, Status, VrrpCounters};
use crate::director::addr::{Addrs, Change, Link};
use crate::director::core::{self as core, Action, Director, Interfaces, Phase};
use crate::director::net::VrrpSocket;
use crate::director::probe::ProbeResult;
use crate::ipvs::IpvsClient;
use crate::vrrp::packet::{self, Advert, PacketError};

pub use self::ipvs::PERIODIC_RECONCILE;
use self::ipvs::ReconInput;
pub use self::load::load;

/// How often the floating addresses are compared with what the VRRP state
/// says (someone ran `ip addr del` on the Master, or a failed add): repaired.
pub const ADDRESS_CHECK: Duration = Duration::from_secs(5);

/// How often the VRRP interface's state is read (keepalived's FAULT state:
/// link down → release and stop advertising; link up → start over). The
/// daemon acts on the kernel's link and address announcements as they come
/// ([`crate::director::addr::Changes`]); this poll only backs them up (a
/// netlink socket whose buffer overflowed loses announcements).
pub const LINK_CHECK: Duration = Duration::from_secs(5);

/// Options of `lvsup director run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config: PathBuf,
    /// Run without IPVS (labs on kernels without ip_vs): VRRP, addresses,
    /// ARP and health checks only.
    pub no_ipvs: bool,
    /// Control socket path; default [`crate::director::socket_path`].
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
    let loaded = load(&opts.config)?;
    let cfg = loaded.cfg.clone();
    info!(
        cluster = %cfg.cluster,
        director = %cfg.director,
        config = %opts.config.display(),
        sha256 = %loaded.sha256,
        "lvsup director {} starting",
        env!("CARGO_PKG_VERSION")
    );

    let (addrs, mut changes) = Addrs::connect()?;
    let link = addrs
        .resolve(cfg.interface.as_deref(), cfg.vip, cfg.vrrp.vrid)
        .await
        .context("finding the VRRP interface")?;
    let nat_link = match &cfg.nat {
        Some(n) => Some(
            addrs
                .resolve(
                    n.internal_interface.as_deref(),
                    n.gateway.addr(),
                    cfg.vrrp.vrid,
                )
                .await
                .context("finding the NAT internal interface")?,
        ),
        None => None,
    };
    info!(interface = %link.name, index = link.index, "VRRP interface");

    let ipvs = if opts.no_ipvs {
        warn!(
            "running WITHOUT IPVS (--no-ipvs): VRRP, addresses and health checks only, \
             no virtual services are programmed. For labs on kernels without ip_vs."
        );
        None
    } else {
        Some(
            IpvsClient::connect()
                .await
                .context("connecting to IPVS (is the ip_vs module loaded? `modprobe ip_vs`)")?,
        )
    };

    let sock = Arc::new(
        VrrpSocket::open(&link.name, link.index)
            .with_context(|| format!("opening the VRRP socket on {}", link.name))?,
    );

    let (tx, mut rx) = mpsc::channel::<Event>(1024);
    tokio::spawn(wire::receive(sock.clone(), tx.clone()));

    // The control socket and metrics ask for the status on a channel of their
    // own (they know nothing of `Event`); forwarded into the loop here.
    let (status_tx, mut status_rx) = mpsc::channel::<oneshot::Sender<Status>>(64);
    {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(reply) = status_rx.recv().await {
                if tx.send(Event::Status(reply)).await.is_err() {
                    break;
                }
            }
        });
    }
    let socket_path = opts
        .socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(crate::director::socket_path(&cfg.cluster)));
    let _control = crate::director::control::serve(&socket_path, status_tx.clone(), ipvs.clone())
        .with_context(|| format!("control socket {}", socket_path.display()))?;
    info!(socket = %socket_path.display(), "control socket listening");
    // The metrics listener is an extra: if it cannot bind, say so and run on
    // (the VIP matters more than the scrape).
    let _metrics = match cfg.metrics {
        Some(addr) => {
            match crate::director::metrics::serve(addr, status_tx.clone(), ipvs.clone()).await {
                Ok((bound, task)) => {
                    info!(address = %bound, "Prometheus metrics listening (GET /metrics)");
                    Some(task)
                }
                Err(e) => {
                    error!(address = %addr, "metrics listener NOT started, running without it: {e}");
                    None
                }
            }
        }
        None => None,
    };

    let recon_status = Arc::new(Mutex::new(None));
    let recon_tx = ipvs.as_ref().map(|c| {
        let (wtx, wrx) = watch::channel(None);
        tokio::task::spawn_local(ipvs::reconcile_task(
            c.clone(),
            wrx,
            recon_status.clone(),
            tx.clone(),
        ));
        wtx
    });

    let ifaces = Interfaces {
        vrrp: link.name.clone(),
        nat: nat_link.as_ref().map(|l| l.name.clone()),
    };
    let mut d = Driver {
        core: Director::new(loaded, ifaces),
        path: opts.config.clone(),
        started_at: SystemTime::now(),
        addrs,
        link,
        nat_link,
        sock,
        ip_id: 0,
        generation: 0,
        probes: Vec::new(),
        tx,
        counters: VrrpCounters::default(),
        transitions: VecDeque::new(),
        ipvs,
        recon_tx,
        recon_status,
        sync_state: Arc::new(Mutex::new(None)),
        sync_tasks: Vec::new(),
        notify: notify::Notify::default(),
        hooks: hooks::Hooks::start(),
        exit: false,
    };
    let found = d
        .host_addresses()
        .await
        .context("reading the host's addresses")?;
    d.handle(core::Event::Start { found }).await;
    if d.ipvs.is_none() {
        notify::send(&d.notify.started_without_ipvs());
    }

    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut link_check = tokio::time::interval(LINK_CHECK);
    link_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut addr_check = tokio::time::interval(ADDRESS_CHECK);
    addr_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut changes_open = true;
    // systemd's watchdog (WatchdogSec= in the unit): pinged from this loop's
    // own tick, so a loop stuck in a handler stops pinging and is restarted.
    let watchdog = notify::watchdog();
    let mut wd_tick = tokio::time::interval(notify::ping_period(
        watchdog.unwrap_or(Duration::from_secs(3600)),
    ));
    wd_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    if let Some(w) = watchdog {
        info!(timeout = ?w, "systemd watchdog: pinging every {:?}", notify::ping_period(w));
    }

    while !d.exit {
        let wake = d.core.poll_timeout().map(tokio::time::Instant::from_std);
        let stopping = matches!(d.core.phase(), Phase::ShuttingDown { .. });
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(ev) => d.on_event(ev).await,
                None => bail!("internal channel closed"),
            },
            _ = async { tokio::time::sleep_until(wake.unwrap_or_else(tokio::time::Instant::now)).await }, if wake.is_some() => {
                d.handle(core::Event::Timeout).await;
            }
            _ = addr_check.tick() => d.check_addresses().await,
            ch = changes.next(), if changes_open => match ch {
                Some(Change::Address) => d.check_addresses().await,
                Some(Change::Link) if !stopping => d.check_link().await,
                Some(Change::Link) => {}
                None => {
                    warn!("rtnetlink announcements stopped: polling the link every {LINK_CHECK:?} only");
                    changes_open = false;
                }
            },
            _ = link_check.tick(), if !stopping => d.check_link().await,
            _ = hup.recv() => {
                info!(config = %d.path.display(), "SIGHUP: reloading");
                let at = status::timestamp(SystemTime::now());
                let result = load(&d.path).map(Box::new).map_err(|e| format!("{e:#}"));
                d.handle(core::Event::Reload { at, result }).await;
            }
            _ = term.recv() => d.shutdown("SIGTERM").await,
            _ = int.recv() => d.shutdown("SIGINT").await,
            _ = wd_tick.tick(), if watchdog.is_some() => notify::send(&[notify::Msg::Watchdog]),
        }
    }

    // The core released every address before Exit.
    for p in d.probes.drain(..) {
        p.abort();
    }
    // The sync daemons' last switch (the core stopped both before Exit).
    for t in d.sync_tasks.drain(..) {
        let _ = t.await;
    }
    d.hooks.finish(hooks::HOOK_TIMEOUT).await;
    let _ = std::fs::remove_file(&socket_path);
    info!("director stopped");
    Ok(())
}

impl Driver {
    async fn shutdown(&mut self, why: &'static str) {
        notify::send(&self.notify.stopping());
        self.handle(core::Event::Shutdown { why }).await
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
        let key = report::packet_error_key(&e);
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
