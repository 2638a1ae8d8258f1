//! Start-up of the driver: the config file, the interfaces, IPVS, the VRRP
//! socket, the control socket and metrics listener, the reconcile task.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use anyhow::Context;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info, warn};

use crate::contract::director_config::DirectorConfig;
use crate::contract::status::{Status, VrrpCounters};
use crate::director::addr::{Addrs, Changes, Link};
use crate::director::core::{Director, Interfaces};
use crate::director::net::VrrpSocket;
use crate::ipvs::IpvsClient;

use super::{Driver, Event, RunOptions, hooks, ipvs, load, notify, wire};

/// What the main loop listens to besides timers and signals.
pub(super) struct Inputs {
    /// The tasks' messages.
    pub rx: mpsc::Receiver<Event>,
    /// The probes' results.
    pub probe_rx: mpsc::Receiver<super::ProbeEvent>,
    /// The kernel's link and address announcements.
    pub changes: Changes,
}

impl Driver {
    /// Everything up to the core's start event.
    pub(super) async fn start(opts: &RunOptions) -> anyhow::Result<(Driver, Inputs)> {
        let loaded = load(&opts.config)?;
        // the parse's scratch memory back to the kernel, before VRRP starts
        super::load::trim_heap("load");
        let cfg = loaded.cfg.clone();
        info!(
            cluster = %cfg.cluster,
            director = %cfg.director,
            config = %opts.config.display(),
            sha256 = %loaded.sha256,
            "lvsup director {} starting",
            env!("CARGO_PKG_VERSION")
        );
        let nofile = raise_nofile_limit();
        let (addrs, changes) = Addrs::connect()?;
        let (link, nat_link) = links(&addrs, &cfg).await?;
        let ipvs = connect_ipvs(opts.no_ipvs).await?;
        let sock = Arc::new(
            VrrpSocket::open(&link.name, link.index)
                .with_context(|| format!("opening the VRRP socket on {}", link.name))?,
        );
        let (tx, rx) = mpsc::channel::<Event>(1024);
        let (probe_tx, probe_rx) = mpsc::channel::<super::ProbeEvent>(1024);
        tokio::spawn(wire::receive(sock.clone(), tx.clone()));
        let socket = serve_status(opts, &cfg, ipvs.as_ref(), &tx).await?;
        let recon_status = Arc::new(Mutex::new(None));
        let recon_tx = ipvs.as_ref().map(|c| {
            let (wtx, wrx) = watch::channel(None);
            tokio::spawn(ipvs::reconcile_task(
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
        let d = Driver {
            core: Director::new(loaded, ifaces),
            path: opts.config.clone(),
            socket,
            started_at: SystemTime::now(),
            addrs,
            link,
            nat_link,
            sock,
            ip_id: 0,
            generation: 0,
            probes: Vec::new(),
            tcp_checks: None,
            tx,
            probe_tx,
            nofile,
            checks_completed: 0,
            checks_skipped: Default::default(),
            counters: VrrpCounters::default(),
            transitions: VecDeque::new(),
            ipvs,
            recon_tx,
            recon_pending: None,
            recon_status,
            dropped: Vec::new(),
            sync_state: Arc::new(Mutex::new(None)),
            sync_tasks: Vec::new(),
            notify: notify::Notify::default(),
            hooks: hooks::Hooks::start(),
            exit: false,
            core_now: Instant::now(),
        };
        Ok((
            d,
            Inputs {
                rx,
                probe_rx,
                changes,
            },
        ))
    }
}

/// The soft limit on open files raised to the hard one. The unit sets
/// `LimitNOFILE` from the number of checks (`desired::director_nofile`);
/// started another way (by hand, a bench, another supervisor) the daemon
/// would otherwise get the usual soft 1,024, and at thousands of checked
/// real servers a burst of probes in flight runs out of descriptors: each
/// such check fails as "could not run" and the real server's health waits
/// another interval (seen at 1,000 × 10 under the lab VM). keepalived
/// raises its limit at start for the same reason. Two libc calls: no crate
/// needed.
/// Returns the soft limit in force afterwards (1,024 if it cannot be read).
fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    let was = lim.rlim_cur;
    if was >= lim.rlim_max {
        return was;
    }
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0 {
        info!(
            from = was,
            to = lim.rlim_cur,
            "open files limit raised to the hard limit"
        );
        lim.rlim_cur
    } else {
        warn!(
            limit = was,
            "could not raise the open files limit: {}",
            std::io::Error::last_os_error()
        );
        was
    }
}

/// The VRRP interface, and the NAT internal one.
async fn links(addrs: &Addrs, cfg: &DirectorConfig) -> anyhow::Result<(Link, Option<Link>)> {
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
    Ok((link, nat_link))
}

async fn connect_ipvs(no_ipvs: bool) -> anyhow::Result<Option<IpvsClient>> {
    if no_ipvs {
        warn!(
            "running WITHOUT IPVS (--no-ipvs): VRRP, addresses and health checks only, \
             no virtual services are programmed. For labs on kernels without ip_vs."
        );
        return Ok(None);
    }
    let c = IpvsClient::connect()
        .await
        .context("connecting to IPVS (is the ip_vs module loaded? `modprobe ip_vs`)")?;
    Ok(Some(c))
}

/// The control socket (its path returned) and the metrics listener.
async fn serve_status(
    opts: &RunOptions,
    cfg: &DirectorConfig,
    ipvs: Option<&IpvsClient>,
    tx: &mpsc::Sender<Event>,
) -> anyhow::Result<PathBuf> {
    // The control socket and metrics ask for the status on a channel of their
    // own (they know nothing of `Event`); forwarded into the loop here.
    let (status_tx, mut status_rx) = mpsc::channel::<oneshot::Sender<Status>>(64);
    let fwd = tx.clone();
    tokio::spawn(async move {
        while let Some(reply) = status_rx.recv().await {
            if fwd.send(Event::Status(reply)).await.is_err() {
                break;
            }
        }
    });
    let path = opts
        .socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(crate::layout::director_socket_path(&cfg.cluster)));
    crate::director::control::serve(&path, status_tx.clone(), ipvs.cloned())
        .with_context(|| format!("control socket {}", path.display()))?;
    info!(socket = %path.display(), "control socket listening");
    // The metrics listener is an extra: if it cannot bind, say so and run on
    // (the VIP matters more than the scrape).
    if let Some(addr) = cfg.metrics {
        match crate::director::metrics::serve(addr, status_tx, ipvs.cloned()).await {
            Ok((bound, _task)) => {
                info!(address = %bound, "Prometheus metrics listening (GET /metrics)")
            }
            Err(e) => {
                error!(address = %addr, "metrics listener NOT started, running without it: {e}")
            }
        }
    }
    Ok(path)
}
