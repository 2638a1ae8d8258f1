//! `lvsup director run`: the daemon. One tokio task loop owns the VRRP
//! [`Machine`] and carries out its outputs; everything slow or blocking runs
//! in its own task and talks to the loop over a channel:
//!
//! ```text
//!  VRRP socket reader ──Advert/Bad──┐
//!  probe task per (service, server) ─Probe─┐      ┌──▶ rtnetlink (VIP add/remove), GARP, adverts
//!  control socket ──Status request──┼──▶ main loop ─┤
//!  signals (HUP, TERM, INT) ────────┘      │      └──▶ reconcile task (watch): kernel IPVS table
//!                                 Machine::handle(now, input)  (start, health, reload, every 30 s)
//! ```
//!
//! The IPVS table is reconciled in its own task so a slow netlink answer
//! never delays an advert; it always reads the **kernel** before deciding
//! (what keepalived's reload gets wrong: it diffs old config vs new config).

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, anyhow, bail};
use ipnet::Ipv4Net;
use sha2::{Digest, Sha256};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::director::addr::{self, Addrs, Change, Found, Link};
use crate::director::config::{DirectorConfig, check, restart_needed};
use crate::director::net::{self, VrrpSocket};
use crate::director::probe::{self, Probe, ProbeResult};
use crate::director::status::{self, *};
use crate::director::table;
use crate::health::damping::{Damper, Health};
use crate::ipvs::{DaemonState, IpvsClient, ReconcileOptions, Service, ServiceId, SyncDaemon};
use crate::vrrp::machine::{self, Input, Machine, Output, State};
use crate::vrrp::packet::{self, Advert, PacketError, VRRP_MULTICAST_V4};

/// How often the IPVS table is compared with the kernel without a trigger
/// (repairs drift: someone ran `ipvsadm -C`, a module reload...).
pub const PERIODIC_RECONCILE: Duration = Duration::from_secs(30);

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
pub fn run(opts: RunOptions) -> anyhow::Result<()> {
    init_tracing();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // A LocalSet: the reconcile task holds `ipvs::apply`'s future, which is
    // not `Send`; everything runs on this one thread anyway.
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        match main_loop(opts).await {
            Ok(()) => Ok(()),
            Err(e) => {
                error!("director stopped with an error: {e:#}");
                Err(e)
            }
        }
    })
}

fn init_tracing() {
    use std::io::IsTerminal;
    let level = match std::env::var("LVSUP_LOG").as_deref() {
        Ok("trace") => tracing::Level::TRACE,
        Ok("debug") => tracing::Level::DEBUG,
        Ok("warn") => tracing::Level::WARN,
        Ok("error") => tracing::Level::ERROR,
        _ => tracing::Level::INFO,
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal())
        .with_writer(std::io::stdout)
        .try_init();
}

/// A config file as loaded.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub cfg: DirectorConfig,
    pub sha256: String,
    pub loaded_at: SystemTime,
}

/// Read, parse and check a director.toml.
pub fn load(path: &Path) -> anyhow::Result<Loaded> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text =
        String::from_utf8(bytes.clone()).map_err(|_| anyhow!("{} is not UTF-8", path.display()))?;
    let cfg = DirectorConfig::parse(&text).map_err(|e| {
        // One line (journald splits multi-line messages): message + position.
        let pos = e.span().map_or(String::new(), |sp| {
            let before = text.get(..sp.start).unwrap_or(&text);
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!(" at line {line}, column {col}")
        });
        anyhow!("{}{pos}: {}", path.display(), e.message().trim())
    })?;
    check(&cfg).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok(Loaded {
        cfg,
        sha256: hex(&Sha256::digest(&bytes)),
        loaded_at: SystemTime::now(),
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Key under which a real server's health survives a reload: same service,
/// same address and port, same check.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RsKey {
    proto: crate::config::Protocol,
    svc_port: u16,
    addr: SocketAddr,
    check: String,
    check_port: Option<u16>,
    path: Option<String>,
}

struct RsState {
    key: RsKey,
    damper: Damper,
    last: Option<CheckRecord>,
    flips: u64,
}

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
}

/// What the reconcile task works from.
#[derive(Debug, Clone)]
struct ReconInput {
    cfg: DirectorConfig,
    health: Vec<Vec<Health>>,
    trigger: &'static str,
    /// Services a reload removed from the config: delete them.
    dropped: Vec<ServiceId>,
}

struct Daemon {
    path: PathBuf,
    loaded: Loaded,
    started_at: SystemTime,
    machine: Machine,
    addrs: Addrs,
    link: Link,
    nat_link: Option<Link>,
    sock: Arc<VrrpSocket>,
    ip_id: u16,
    /// Addresses this daemon added and holds: (interface, address).
    held: Vec<(Link, Ipv4Net)>,
    rs: Vec<Vec<RsState>>,
    generation: u64,
    probes: Vec<JoinHandle<()>>,
    tx: mpsc::Sender<Event>,
    counters: VrrpCounters,
    transitions: VecDeque<TransitionRecord>,
    last_reload: Option<ReloadStatus>,
    gate_open: bool,
    ipvs: Option<IpvsClient>,
    recon_tx: Option<watch::Sender<Option<ReconInput>>>,
    recon_status: Arc<Mutex<Option<ReconcileStatus>>>,
    sync_state: Arc<Mutex<Option<String>>>,
    stopped: bool,
    /// Addresses of a crashed earlier run, kept until a master is heard.
    stale: Vec<(Link, Ipv4Net)>,
    stale_deadline: Option<tokio::time::Instant>,
    last_reannounce: Option<Instant>,
    /// A Shutdown fed to step down or for a fault: its Stopped does not end
    /// the daemon; with `restart_vrrp` the machine starts again at once.
    swallow_stop: bool,
    restart_vrrp: bool,
    pending_startup: bool,
    /// The VRRP interface is down: the machine is held in Initialize.
    fault: bool,
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

    // Stale addresses from an earlier run (kill -9, crash): ours by label.
    let floating = floating(&cfg);
    let mut wanted = vec![(link.clone(), Ipv4Net::from(cfg.vip))];
    if let (Some(n), Some(l)) = (&cfg.nat, &nat_link) {
        wanted.push((l.clone(), n.gateway));
    }
    // Our own addresses of a run that died (kill -9, crash) while Master. If
    // they are still the ones we would hold, keep them until another master
    // is heard (or Master_Down_Interval passes): with the unit's restart
    // after 1 s, the old VIP keeps forwarding (the IPVS table survives the
    // process) until the backup takes over, so a crash leaves no gap. Any
    // other address of ours goes at once.
    let mut stale = Vec::new();
    for a in addrs.dump().await? {
        match addr::classify(&a, cfg.vrrp.vrid, &floating) {
            Found::Stale => {
                if let Some((l, n)) = wanted
                    .iter()
                    .find(|(l, n)| l.index == a.index && *n == a.net)
                {
                    warn!(
                        address = %a.net,
                        label = a.label.as_deref().unwrap_or(""),
                        "found a stale lvsup address left by an earlier run: kept until a master \
                         is heard or Master_Down_Interval passes"
                    );
                    stale.push((l.clone(), *n));
                    continue;
                }
                let removed = addrs.remove(a.index, a.net).await?;
                warn!(
                    address = %a.net,
                    label = a.label.as_deref().unwrap_or(""),
                    removed,
                    "removed a stale lvsup address left by an earlier run"
                );
            }
            Found::Foreign => warn!(
                address = %a.net,
                label = a.label.as_deref().unwrap_or(""),
                "the VIP is already on this host without lvsup's label: leaving it alone \
                 (remove it by hand, or this director answers for the VIP while backup)"
            ),
            Found::Other => {}
        }
    }

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
    // VRRP receiver.
    {
        let sock = sock.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            loop {
                let ev = match sock.recv(&mut buf).await {
                    Ok(n) => Event::Packet(packet::decode_ipv4(&buf[..n])),
                    Err(e) => Event::RecvError(e),
                };
                let was_err = matches!(ev, Event::RecvError(_));
                if tx.send(ev).await.is_err() {
                    return;
                }
                if was_err {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
    }

    let socket_path = opts
        .socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(crate::director::socket_path(&cfg.cluster)));
    let _control = crate::director::control::serve(&socket_path, tx.clone(), ipvs.clone())
        .with_context(|| format!("control socket {}", socket_path.display()))?;
    info!(socket = %socket_path.display(), "control socket listening");
    // The metrics listener is an extra: if it cannot bind, say so and run on
    // (the VIP matters more than the scrape).
    let _metrics = match cfg.metrics {
        Some(addr) => match crate::director::metrics::serve(addr, tx.clone(), ipvs.clone()).await {
            Ok((bound, task)) => {
                info!(address = %bound, "Prometheus metrics listening (GET /metrics)");
                Some(task)
            }
            Err(e) => {
                error!(address = %addr, "metrics listener NOT started, running without it: {e}");
                None
            }
        },
        None => None,
    };

    let recon_status = Arc::new(Mutex::new(None));
    let recon_tx = ipvs.as_ref().map(|c| {
        let (wtx, wrx) = watch::channel(None);
        tokio::task::spawn_local(reconcile_task(c.clone(), wrx, recon_status.clone()));
        wtx
    });

    let mut mcfg = cfg.vrrp.machine_config();
    mcfg.wait_for_health = true;
    let machine = Machine::new(mcfg);

    let mut d = Daemon {
        path: opts.config.clone(),
        loaded,
        started_at: SystemTime::now(),
        machine,
        addrs,
        link,
        nat_link,
        sock,
        ip_id: 0,
        held: Vec::new(),
        rs: Vec::new(),
        generation: 0,
        probes: Vec::new(),
        tx,
        counters: VrrpCounters::default(),
        transitions: VecDeque::new(),
        last_reload: None,
        gate_open: false,
        ipvs,
        recon_tx,
        recon_status,
        sync_state: Arc::new(Mutex::new(None)),
        stopped: false,
        stale_deadline: (!stale.is_empty()).then(|| {
            let mdi = machine::master_down_interval(
                cfg.vrrp.priority.max(1),
                machine::duration_to_centis(cfg.vrrp.advert_interval),
            );
            tokio::time::Instant::now() + Duration::from_millis(u64::from(mdi) * 10)
        }),
        stale,
        last_reannounce: None,
        swallow_stop: false,
        restart_vrrp: false,
        pending_startup: false,
        fault: false,
    };
    d.rs = d.fresh_health(&[]);
    d.start_probes();
    d.trigger_reconcile("start", Vec::new());
    d.check_gate().await;
    d.feed(Input::Startup).await;

    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut shutdown_deadline: Option<tokio::time::Instant> = None;
    let mut link_check = tokio::time::interval(LINK_CHECK);
    link_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut addr_check = tokio::time::interval(ADDRESS_CHECK);
    addr_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut changes_open = true;

    while !d.stopped {
        let timer = d.machine.poll_timeout();
        let sleep_to = timer.map(|(at, _)| tokio::time::Instant::from_std(at));
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(ev) => {
                    d.on_event(ev).await;
                    if d.pending_startup {
                        d.pending_startup = false;
                        d.feed(Input::Startup).await;
                    }
                }
                None => bail!("internal channel closed"),
            },
            _ = async { tokio::time::sleep_until(sleep_to.unwrap_or_else(tokio::time::Instant::now)).await }, if sleep_to.is_some() => {
                if let Some((_, kind)) = timer {
                    d.feed(Input::Timer(kind)).await;
                }
            }
            _ = addr_check.tick() => d.check_addresses().await,
            ch = changes.next(), if changes_open => match ch {
                Some(Change::Address) => d.check_addresses().await,
                Some(Change::Link) if shutdown_deadline.is_none() => {
                    d.check_link().await;
                    if d.pending_startup {
                        d.pending_startup = false;
                        d.feed(Input::Startup).await;
                    }
                }
                Some(Change::Link) => {}
                None => {
                    warn!("rtnetlink announcements stopped: polling the link every {LINK_CHECK:?} only");
                    changes_open = false;
                }
            },
            _ = link_check.tick(), if shutdown_deadline.is_none() => {
                d.check_link().await;
                if d.pending_startup {
                    d.pending_startup = false;
                    d.feed(Input::Startup).await;
                }
            }
            _ = async { tokio::time::sleep_until(d.stale_deadline.unwrap_or_else(tokio::time::Instant::now)).await }, if d.stale_deadline.is_some() => {
                d.drop_stale("no master heard within Master_Down_Interval").await;
            }
            _ = hup.recv() => d.reload().await,
            _ = term.recv() => d.begin_shutdown("SIGTERM", &mut shutdown_deadline).await,
            _ = int.recv() => d.begin_shutdown("SIGINT", &mut shutdown_deadline).await,
            _ = async { tokio::time::sleep_until(shutdown_deadline.unwrap_or_else(tokio::time::Instant::now)).await }, if shutdown_deadline.is_some() => {
                warn!("graceful handover took too long: releasing now");
                shutdown_deadline = None;
                d.feed(Input::Shutdown).await;
                d.stopped = true;
            }
        }
    }

    // Whatever is left: release it.
    d.release_all().await;
    if !d.stale.is_empty() {
        d.drop_stale("shutting down").await;
    }
    for p in d.probes.drain(..) {
        p.abort();
    }
    if d.loaded.cfg.vrrp.sync_daemon
        && let Some(c) = d.ipvs.clone()
    {
        stop_sync(c.clone(), DaemonState::Master).await;
        stop_sync(c, DaemonState::Backup).await;
    }
    let _ = std::fs::remove_file(&socket_path);
    info!("director stopped");
    Ok(())
}

/// The floating addresses of a config: the VIP, and the NAT gateway.
fn floating(cfg: &DirectorConfig) -> Vec<Ipv4Addr> {
    let mut v = vec![cfg.vip];
    if let Some(n) = &cfg.nat {
        v.push(n.gateway.addr());
    }
    v
}

async fn stop_sync(mut c: IpvsClient, state: DaemonState) {
    if let Err(e) = c.stop_daemon(state).await {
        debug!("stopping the {state:?} sync daemon: {e}");
    }
}

async fn reconcile_task(
    mut client: IpvsClient,
    mut rx: watch::Receiver<Option<ReconInput>>,
    status: Arc<Mutex<Option<ReconcileStatus>>>,
) {
    let mut tick = tokio::time::interval(PERIODIC_RECONCILE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        let periodic = tokio::select! {
            r = rx.changed() => {
                if r.is_err() {
                    return;
                }
                false
            }
            _ = tick.tick() => true,
        };
        let Some(input) = rx.borrow_and_update().clone() else {
            continue;
        };
        let trigger = if periodic { "periodic" } else { input.trigger };
        let r = reconcile_once(&mut client, &input).await;
        let rec = ReconcileStatus {
            at: status::timestamp(SystemTime::now()),
            trigger: trigger.into(),
            ok: r.is_ok(),
            ops: *r.as_ref().unwrap_or(&0),
            error: r.as_ref().err().map(|e| format!("{e:#}")),
        };
        match &r {
            Ok(0) => debug!(trigger, "ipvs: kernel table matches"),
            Ok(n) => info!(trigger, ops = n, "ipvs: reconciled"),
            Err(e) => error!(trigger, "ipvs reconcile failed: {e:#}"),
        }
        if let Ok(mut s) = status.lock() {
            *s = Some(rec);
        }
    }
}

async fn reconcile_once(client: &mut IpvsClient, input: &ReconInput) -> anyhow::Result<usize> {
    let kernel: Vec<Service> = client.services().await?;
    let desired = table::desired_services(&input.cfg, |i, j| input.health[i][j], &kernel);
    let mut plan = crate::ipvs::reconcile(
        &desired,
        &kernel,
        &ReconcileOptions {
            prune: false,
            drain: false,
        },
    );
    for id in &input.dropped {
        if kernel.iter().any(|k| k.id == *id) {
            plan.ops.push(crate::ipvs::Op::DeleteService { id: *id });
        }
    }
    for op in &plan.ops {
        info!("ipvs: {op}");
    }
    let n = crate::ipvs::apply(client, &plan.ops).await?;
    Ok(n)
}

fn packet_error_key(e: &PacketError) -> &'static str {
    match e {
        PacketError::TooShort(_) => "too_short",
        PacketError::Vrrpv2 => "vrrpv2",
        PacketError::Version(_) => "version",
        PacketError::Type(_) => "type",
        PacketError::Length { .. } => "length",
        PacketError::Checksum { .. } => "checksum",
        PacketError::ZeroInterval => "zero_interval",
        PacketError::Ipv4TooShort(_)
        | PacketError::Ipv4Version(_)
        | PacketError::Ipv4HeaderLength(_)
        | PacketError::Ipv4TotalLength { .. }
        | PacketError::Ipv4Checksum => "ipv4_header",
        PacketError::Fragment => "fragment",
        PacketError::NotVrrp(_) => "not_vrrp",
        PacketError::Ttl(_) => "ttl",
    }
}

impl Daemon {
    fn cfg(&self) -> &DirectorConfig {
        &self.loaded.cfg
    }

    /// Health state for the current config, carrying over dampers of `old`
    /// servers whose key is unchanged (a reload does not forget health).
    fn fresh_health(&self, old: &[Vec<RsState>]) -> Vec<Vec<RsState>> {
        let cfg = self.cfg();
        let mut carried: Vec<&RsState> = old.iter().flatten().collect();
        cfg.services
            .iter()
            .map(|s| {
                s.real_servers
                    .iter()
                    .map(|r| {
                        let key = RsKey {
                            proto: s.protocol,
                            svc_port: s.port,
                            addr: SocketAddr::from((r.address, r.port)),
                            check: s.health.check.clone(),
                            check_port: s.health.port,
                            path: s.health.path.clone(),
                        };
                        if let Some(pos) = carried.iter().position(|o| o.key == key) {
                            let o = carried.remove(pos);
                            // Same server and check: keep its health, new thresholds.
                            let mut damper = o.damper.clone();
                            damper.rise = s.health.rise.max(1);
                            damper.fall = s.health.fall.max(1);
                            return RsState {
                                key,
                                damper,
                                last: o.last.clone(),
                                flips: o.flips,
                            };
                        }
                        let mut damper = s.health.damper();
                        if s.health.check == "none" {
                            damper.observe(true);
                        }
                        RsState {
                            key,
                            damper,
                            last: None,
                            flips: 0,
                        }
                    })
                    .collect()
            })
            .collect()
    }

    fn start_probes(&mut self) {
        for p in self.probes.drain(..) {
            p.abort();
        }
        self.generation += 1;
        let generation = self.generation;
        for (i, s) in self.loaded.cfg.services.iter().enumerate() {
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
                        let ev = Event::Probe {
                            generation,
                            svc: i,
                            rs: j,
                            result,
                            at: SystemTime::now(),
                        };
                        if tx.send(ev).await.is_err() {
                            return;
                        }
                    }
                }));
            }
        }
    }

    fn health_matrix(&self) -> Vec<Vec<Health>> {
        self.rs
            .iter()
            .map(|v| v.iter().map(|r| r.damper.state).collect())
            .collect()
    }

    fn trigger_reconcile(&self, trigger: &'static str, dropped: Vec<ServiceId>) {
        if let Some(tx) = &self.recon_tx {
            let input = ReconInput {
                cfg: self.cfg().clone(),
                health: self.health_matrix(),
                trigger,
                dropped,
            };
            tx.send_replace(Some(input));
        }
    }

    async fn check_gate(&mut self) {
        let known = self.rs.iter().flatten().all(|r| r.damper.is_known());
        if known != self.gate_open {
            self.gate_open = known;
            if known {
                info!("health of every real server known: VRRP health gate open");
            }
            self.feed(Input::HealthGate(known)).await;
        }
    }

    async fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Packet(Ok((ip, adv))) => self.on_advert(ip, adv).await,
            Event::Packet(Err(e)) => {
                let key = packet_error_key(&e);
                let n = self
                    .counters
                    .bad_packets
                    .entry(key.to_string())
                    .or_insert(0);
                *n += 1;
                // First of each kind, then every 100th: a flood cannot flood the log.
                if *n == 1 || *n % 100 == 0 {
                    warn!(reason = key, count = *n, "bad VRRP packet dropped: {e}");
                }
            }
            Event::RecvError(e) => warn!("VRRP socket receive error: {e}"),
            Event::Probe {
                generation,
                svc,
                rs,
                result,
                at,
            } => {
                if generation == self.generation {
                    self.on_probe(svc, rs, result, at).await;
                }
            }
            Event::Status(reply) => {
                let _ = reply.send(self.status());
            }
        }
    }

    async fn on_advert(&mut self, ip: packet::Ipv4Header, adv: Advert) {
        let v = &self.loaded.cfg.vrrp;
        if adv.vrid != v.vrid {
            self.counters.other_vrid += 1;
            return;
        }
        if ip.src == v.address {
            // Our own, looped back despite IP_MULTICAST_LOOP off.
            return;
        }
        if v.unicast && !v.peers.contains(&ip.src) {
            self.counters.unknown_peer += 1;
            if self.counters.unknown_peer == 1 || self.counters.unknown_peer % 100 == 0 {
                warn!(from = %ip.src, "VRRP advert from an address that is not a configured peer: ignored");
            }
            return;
        }
        if ip.dst != VRRP_MULTICAST_V4 && ip.dst != v.address {
            return;
        }
        debug!(from = %ip.src, priority = adv.priority, interval_cs = adv.max_adver_int, "advert");
        if adv.priority > 0 && !self.stale.is_empty() {
            self.drop_stale(&format!("{} is master", ip.src)).await;
        }
        let was_master = self.machine.state() == State::Master && !self.machine.is_leaving();
        self.feed(Input::Advert {
            from: ip.src,
            priority: adv.priority,
            max_adver_int: adv.max_adver_int,
        })
        .await;
        // Still Master after another router's advert (priority > 0): it
        // thinks it is master too — split brain after a partition (our link
        // was down, its master-down timer fired). It yields on our next
        // advert, but the clients' ARP caches point at it: re-announce the
        // VIP now (at most once a second) instead of leaving them to time out.
        let split_brain = was_master && adv.priority > 0 && self.machine.state() == State::Master;
        if split_brain && self.all_down() {
            // We were cut off (every probe failed: our link, not the real
            // servers) and the other router took over meanwhile. Taking the
            // VIP back now would point it at weight-0 destinations until our
            // probes rise again — keepalived's "failback onto an empty
            // service". Step down instead (graceful: the other router is
            // already advertising) and start over as Backup: we preempt back
            // after Master_Down_Interval, with health known by then.
            warn!(
                other = %ip.src,
                "another router took over while every real server looked down from here: \
                 stepping down, back as Backup"
            );
            self.swallow_stop = true;
            self.restart_vrrp = true;
            self.feed(Input::Shutdown).await;
            return;
        }
        if split_brain
            && self
                .last_reannounce
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            self.last_reannounce = Some(Instant::now());
            info!(other = %ip.src, priority = adv.priority, "another router advertises as master: re-announcing the VIP");
            self.send_garp(machine::DEFAULT_GARP_REPEAT);
        }
    }

    async fn on_probe(&mut self, i: usize, j: usize, r: ProbeResult, at: SystemTime) {
        let Some(st) = self.rs.get_mut(i).and_then(|v| v.get_mut(j)) else {
            return;
        };
        st.last = Some(CheckRecord {
            at: status::timestamp(at),
            ok: r.ok,
            detail: r.detail.clone(),
            duration_ms: r.took.as_millis() as u64,
        });
        if let Some(t) = st.damper.observe(r.ok) {
            st.flips += 1;
            let s = &self.loaded.cfg.services[i];
            let rsc = &s.real_servers[j];
            let level_warn = t.to != Health::Up;
            if level_warn {
                warn!(
                    service = %format!("{}/{}", s.protocol, s.port),
                    real_server = %rsc.name,
                    address = %st.key.addr,
                    from = %t.from,
                    to = %t.to,
                    detail = %r.detail,
                    "real server health: weight 0"
                );
            } else {
                info!(
                    service = %format!("{}/{}", s.protocol, s.port),
                    real_server = %rsc.name,
                    address = %st.key.addr,
                    from = %t.from,
                    to = %t.to,
                    detail = %r.detail,
                    "real server health: weight {}", rsc.weight
                );
            }
            self.trigger_reconcile("health", Vec::new());
            self.check_gate().await;
        }
    }

    /// Feed the machine and carry out what it says.
    async fn feed(&mut self, input: Input) {
        let outs = self.machine.handle(Instant::now(), input);
        for o in outs {
            if o == Output::Stopped && self.swallow_stop {
                // A step-down or fault, not the end of the daemon.
                self.swallow_stop = false;
                if std::mem::take(&mut self.restart_vrrp) {
                    self.pending_startup = true;
                }
                continue;
            }
            self.execute(o).await;
        }
    }

    async fn execute(&mut self, o: Output) {
        match o {
            Output::SendAdvert { priority } => self.send_advert(priority),
            Output::AddVip => self.add_vips().await,
            Output::RemoveVip => self.release_all().await,
            Output::SendGratuitousArp { count } => self.send_garp(count),
            Output::ArmTimer { .. } | Output::CancelTimer { .. } => {}
            Output::StateChanged { from, to, reason } => {
                info!(%from, %to, %reason, "vrrp state");
                self.transitions.push_back(TransitionRecord {
                    at: status::timestamp(SystemTime::now()),
                    from: from.to_string(),
                    to: to.to_string(),
                    reason: reason.to_string(),
                });
                while self.transitions.len() > MAX_TRANSITIONS {
                    self.transitions.pop_front();
                }
                self.switch_sync(to);
            }
            Output::Stopped => self.stopped = true,
        }
    }

    fn send_advert(&mut self, priority: u8) {
        let v = &self.loaded.cfg.vrrp;
        let adv = Advert {
            vrid: v.vrid,
            priority,
            max_adver_int: machine::duration_to_centis(v.advert_interval),
            addresses: floating(&self.loaded.cfg),
        };
        let dsts: Vec<Ipv4Addr> = if v.unicast {
            v.peers.clone()
        } else {
            vec![VRRP_MULTICAST_V4]
        };
        for dst in dsts {
            self.ip_id = self.ip_id.wrapping_add(1);
            let pkt = packet::encode_ipv4(&adv, v.address, dst, self.ip_id);
            match self.sock.send(&pkt, dst) {
                Ok(()) => self.counters.adverts_sent += 1,
                Err(e) => {
                    self.counters.send_errors += 1;
                    if self.counters.send_errors == 1 || self.counters.send_errors % 100 == 0 {
                        warn!(to = %dst, count = self.counters.send_errors, "sending VRRP advert: {e}");
                    }
                }
            }
        }
    }

    fn wanted(&self) -> Vec<(Link, Ipv4Net)> {
        let cfg = self.cfg();
        let mut v = vec![(self.link.clone(), Ipv4Net::from(cfg.vip))];
        if let (Some(n), Some(l)) = (&cfg.nat, &self.nat_link) {
            v.push((l.clone(), n.gateway));
        }
        v
    }

    /// FAULT handling. Interface down: release the addresses at once and
    /// hold the machine in Initialize (no adverts, no mastership). Interface
    /// up again: forget the health seen while cut off (every probe failed:
    /// that was our link, not the real servers), so the health gate closes
    /// until fresh results arrive, and start over as Backup — the director
    /// never takes the VIP back before its real servers answer again
    /// (keepalived's "failback onto an empty service").
    async fn check_link(&mut self) {
        let Ok(l) = self.addrs.link_by_index(self.link.index).await else {
            return;
        };
        if !l.up && !self.fault {
            warn!(interface = %l.name, state = %self.machine.state(), "interface down: VRRP fault, releasing the addresses");
            self.fault = true;
            self.swallow_stop = true;
            self.restart_vrrp = false;
            self.feed(Input::Shutdown).await;
            if self.machine.is_leaving() {
                // Nobody can hear us: no handover to wait for.
                self.swallow_stop = true;
                self.feed(Input::Shutdown).await;
            }
            self.transitions_note("fault: interface down");
        } else if l.up && self.fault {
            info!(interface = %l.name, "interface up: leaving fault, fresh health checks, Backup");
            self.fault = false;
            self.rs = self.fresh_health(&[]);
            self.start_probes();
            self.check_gate().await;
            self.pending_startup = true;
            self.transitions_note("fault cleared: interface up");
        }
    }

    fn transitions_note(&mut self, what: &str) {
        let st = self.machine.state().to_string();
        self.transitions.push_back(TransitionRecord {
            at: status::timestamp(SystemTime::now()),
            from: st.clone(),
            to: st,
            reason: what.into(),
        });
        while self.transitions.len() > MAX_TRANSITIONS {
            self.transitions.pop_front();
        }
    }

    /// Every real server of every checked service is down (none = false).
    fn all_down(&self) -> bool {
        let mut any = false;
        for st in self.rs.iter().flatten() {
            if st.key.check == "none" {
                continue;
            }
            any = true;
            if st.damper.state != Health::Down {
                return false;
            }
        }
        any
    }

    /// Remove the kept addresses of a crashed earlier run.
    async fn drop_stale(&mut self, why: &str) {
        self.stale_deadline = None;
        for (link, net) in std::mem::take(&mut self.stale) {
            let removed = self.addrs.remove(link.index, net).await;
            warn!(
                address = %net,
                interface = %link.name,
                removed = removed.is_ok(),
                "removed a stale lvsup address left by an earlier run ({why})"
            );
        }
    }

    async fn add_vips(&mut self) {
        for (link, net) in self.wanted() {
            if self.held.iter().any(|(_, n)| *n == net) {
                continue;
            }
            if let Some(pos) = self.stale.iter().position(|(_, n)| *n == net) {
                // Master again before anyone else: the address never left.
                let (l, n) = self.stale.remove(pos);
                info!(address = %n, interface = %l.name, "kept the address of the earlier run");
                self.held.push((l, n));
                if self.stale.is_empty() {
                    self.stale_deadline = None;
                }
                continue;
            }
            match self.addrs.add(&link, net, self.cfg().vrrp.vrid).await {
                Ok(true) => {
                    info!(address = %net, interface = %link.name, "address added");
                    self.held.push((link, net));
                }
                Ok(false) => warn!(
                    address = %net,
                    interface = %link.name,
                    "address already present (not lvsup's): not taking ownership"
                ),
                Err(e) => error!(address = %net, interface = %link.name, "adding address: {e}"),
            }
        }
    }

    async fn release_all(&mut self) {
        for (link, net) in std::mem::take(&mut self.held) {
            match self.addrs.remove(link.index, net).await {
                Ok(_) => info!(address = %net, interface = %link.name, "address removed"),
                Err(e) => error!(address = %net, interface = %link.name, "removing address: {e}"),
            }
        }
    }

    /// Address drift repair: Master (not leaving) must hold every floating
    /// address, anyone else none of ours.
    async fn check_addresses(&mut self) {
        let Ok(found) = self.addrs.dump().await else {
            return;
        };
        let vrid = self.cfg().vrrp.vrid;
        let master = self.machine.state() == State::Master && !self.machine.is_leaving();
        let mut repaired = false;
        for (link, net) in self.wanted() {
            let present = found.iter().any(|a| {
                a.index == link.index && a.net == net && addr::is_ours(a.label.as_deref(), vrid)
            });
            if master && !present {
                warn!(address = %net, interface = %link.name, "Master without its address: re-adding");
                self.held.retain(|(_, n)| *n != net);
                repaired = true;
            } else if !master
                && present
                && !self.machine.is_leaving()
                && !self.stale.iter().any(|(_, n)| *n == net)
            {
                warn!(address = %net, interface = %link.name, "not Master but holding the address: removing");
                if let Err(e) = self.addrs.remove(link.index, net).await {
                    error!(address = %net, "removing address: {e}");
                }
                self.held.retain(|(_, n)| *n != net);
            }
        }
        if repaired {
            self.add_vips().await;
            self.send_garp(machine::DEFAULT_GARP_REPEAT);
        }
    }

    fn send_garp(&mut self, count: u32) {
        for (link, net) in &self.held {
            let Some(mac) = link.mac else {
                continue;
            };
            let frames: Vec<[u8; 60]> = (0..count.max(1))
                .map(|_| net::garp_frame(mac, net.addr()))
                .collect();
            match net::send_frames(link.index, &frames) {
                Ok(n) => {
                    self.counters.gratuitous_arps_sent += n as u64;
                    debug!(address = %net.addr(), interface = %link.name, count = n, "gratuitous ARP sent");
                }
                Err(e) => {
                    warn!(address = %net.addr(), interface = %link.name, "gratuitous ARP: {e}")
                }
            }
        }
    }

    /// Connection-sync daemon follows the VRRP state: master on the Master,
    /// backup otherwise.
    fn switch_sync(&self, to: State) {
        if !self.cfg().vrrp.sync_daemon {
            return;
        }
        let Some(client) = self.ipvs.clone() else {
            return;
        };
        let ifname = self.link.name.clone();
        let sync_id = u32::from(self.cfg().vrrp.vrid);
        let slot = self.sync_state.clone();
        tokio::spawn(async move {
            let (stop, start) = match to {
                State::Master => (DaemonState::Backup, Some(DaemonState::Master)),
                State::Backup => (DaemonState::Master, Some(DaemonState::Backup)),
                State::Initialize => (DaemonState::Master, None),
            };
            stop_sync(client.clone(), stop).await;
            let mut c = client;
            let now = match start {
                Some(st) => {
                    let _ = c.stop_daemon(st).await;
                    match c
                        .start_daemon(&SyncDaemon::new(st, ifname.clone(), sync_id))
                        .await
                    {
                        Ok(()) => {
                            info!(state = ?st, interface = %ifname, sync_id, "ipvs sync daemon started");
                            Some(format!("{st:?}").to_lowercase())
                        }
                        Err(e) => {
                            error!(state = ?st, "starting the ipvs sync daemon: {e}");
                            None
                        }
                    }
                }
                None => None,
            };
            if let Ok(mut s) = slot.lock() {
                *s = now;
            }
        });
    }

    async fn reload(&mut self) {
        info!(config = %self.path.display(), "SIGHUP: reloading");
        let at = status::timestamp(SystemTime::now());
        let new = match load(&self.path) {
            Ok(l) => l,
            Err(e) => {
                error!(
                    running_sha256 = %self.loaded.sha256,
                    "reload REFUSED, the running config stays in force: {e:#}"
                );
                self.last_reload = Some(ReloadStatus {
                    at,
                    ok: false,
                    error: Some(format!("{e:#}")),
                });
                // Still repair the kernel from the running config.
                self.trigger_reconcile("reload", Vec::new());
                return;
            }
        };
        if let Some(what) = restart_needed(self.cfg(), &new.cfg) {
            let msg = format!(
                "{what} changed: a reload only changes services and health checks; restart \
                 the daemon to apply it (`systemctl restart {}`: it hands the VIP over first)",
                crate::desired::director_unit(&new.cfg.cluster)
            );
            error!(running_sha256 = %self.loaded.sha256, "reload REFUSED: {msg}");
            self.last_reload = Some(ReloadStatus {
                at,
                ok: false,
                error: Some(msg),
            });
            self.trigger_reconcile("reload", Vec::new());
            return;
        }
        let dropped = table::dropped_services(self.cfg(), &new.cfg);
        let old_rs = std::mem::take(&mut self.rs);
        info!(sha256 = %new.sha256, services = new.cfg.services.len(), "reload: new config in force");
        self.loaded = new;
        self.rs = self.fresh_health(&old_rs);
        self.start_probes();
        self.last_reload = Some(ReloadStatus {
            at,
            ok: true,
            error: None,
        });
        self.trigger_reconcile("reload", dropped);
        self.check_gate().await;
    }

    async fn begin_shutdown(&mut self, why: &str, deadline: &mut Option<tokio::time::Instant>) {
        info!(signal = why, state = %self.machine.state(), "shutting down");
        self.swallow_stop = false;
        self.restart_vrrp = false;
        self.pending_startup = false;
        if deadline.is_none() {
            let mdi = machine::master_down_interval(
                self.machine.config().priority.max(1),
                self.machine.config().advert_interval,
            );
            // The machine's own handover timer is Master_Down_Interval; this is the backstop.
            *deadline = Some(
                tokio::time::Instant::now()
                    + Duration::from_millis(u64::from(mdi) * 10)
                    + Duration::from_secs(2),
            );
        }
        self.feed(Input::Shutdown).await;
    }

    fn status(&self) -> Status {
        let cfg = self.cfg();
        let m = &self.machine;
        let st = m.stats();
        let mut counters = self.counters.clone();
        counters.adverts_received = st.adverts_received;
        counters.priority_zero_received = st.priority_zero_received;
        counters.adverts_discarded = st.adverts_discarded;
        counters.transitions = st.transitions;
        Status {
            schema: status::SCHEMA,
            version: env!("CARGO_PKG_VERSION").into(),
            pid: std::process::id(),
            cluster: cfg.cluster.clone(),
            director: cfg.director.clone(),
            started_at: status::timestamp(self.started_at),
            config: ConfigStatus {
                path: self.path.display().to_string(),
                sha256: self.loaded.sha256.clone(),
                loaded_at: status::timestamp(self.loaded.loaded_at),
                last_reload: self.last_reload.clone(),
            },
            vrrp: VrrpStatus {
                state: m.state().to_string(),
                vrid: cfg.vrrp.vrid,
                priority: cfg.vrrp.priority,
                interface: self.link.name.clone(),
                vip: cfg.vip,
                addresses_held: self.held.iter().map(|(_, n)| n.to_string()).collect(),
                master: m.master(),
                advert_interval_ms: cfg.vrrp.advert_interval.as_millis() as u64,
                master_advert_interval_ms: u64::from(m.master_adver_interval()) * 10,
                preempt: cfg.vrrp.preempt,
                unicast: cfg.vrrp.unicast,
                peers: cfg.vrrp.peers.clone(),
                health_gate_open: m.health_gate_open(),
                transitions: self.transitions.iter().cloned().collect(),
                counters,
            },
            ipvs: IpvsStatus {
                enabled: self.ipvs.is_some(),
                last_reconcile: self.recon_status.lock().ok().and_then(|s| s.clone()),
                sync_daemon: self.sync_state.lock().ok().and_then(|s| s.clone()),
                error: None,
            },
            services: cfg
                .services
                .iter()
                .enumerate()
                .map(|(i, s)| ServiceStatus {
                    protocol: match s.protocol {
                        crate::config::Protocol::Tcp => "tcp".into(),
                        crate::config::Protocol::Udp => "udp".into(),
                    },
                    vip: cfg.vip,
                    port: s.port,
                    scheduler: s.scheduler.clone(),
                    check: s.health.check.clone(),
                    kernel: None,
                    real_servers: s
                        .real_servers
                        .iter()
                        .enumerate()
                        .map(|(j, r)| {
                            let st = self.rs.get(i).and_then(|v| v.get(j));
                            let health = st.map_or(Health::Unknown, |x| x.damper.state);
                            RealServerStatus {
                                name: r.name.clone(),
                                address: r.address,
                                port: r.port,
                                health: health.to_string(),
                                weight: r.weight,
                                effective_weight: table::effective_weight(health, r.weight, None),
                                last_check: st.and_then(|x| x.last.clone()),
                                flips: st.map_or(0, |x| x.flips),
                                kernel: None,
                            }
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_reports_a_broken_file_on_one_line() {
        let dir = std::env::temp_dir().join(format!("lvsup-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join("director.toml");
        std::fs::write(&p, "cluster = \"web\"\nbogus = [\n").expect("write");
        let e = format!("{:#}", load(&p).expect_err("broken"));
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains("line 2"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn packet_errors_have_short_keys() {
        assert_eq!(packet_error_key(&PacketError::Ttl(64)), "ttl");
        assert_eq!(packet_error_key(&PacketError::Vrrpv2), "vrrpv2");
        assert_eq!(
            packet_error_key(&PacketError::Checksum {
                found: 1,
                computed: 2
            }),
            "checksum"
        );
    }
}
