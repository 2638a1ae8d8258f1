//! The daemon's IPVS side: the reconcile task (kernel table vs config ×
//! health, on a trigger and every [`PERIODIC_RECONCILE`]) and the kernel's
//! connection-sync daemon, switched on VRRP state changes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::contract::director_config::DirectorConfig;
use crate::contract::status::{self, ReconcileStatus};
use crate::director::core::drain::{DestConns, drain_counters};
use crate::director::table;
use crate::health::damping::Health;
use crate::ipvs::{DaemonState, IpvsClient, ReconcileOptions, ServiceId, SyncDaemon};

/// How often the IPVS table is compared with the kernel without a trigger
/// (repairs drift: someone ran `ipvsadm -C`, a module reload...).
pub const PERIODIC_RECONCILE: Duration = Duration::from_secs(30);

/// What the reconcile task works from.
#[derive(Debug, Clone)]
pub(super) struct ReconInput {
    pub cfg: Arc<DirectorConfig>,
    pub health: Vec<Vec<Health>>,
    pub trigger: &'static str,
    /// Services a reload removed from the config: delete them.
    pub dropped: Vec<ServiceId>,
    /// Removed real servers the core keeps draining at weight 0.
    pub draining: Vec<table::Draining>,
}

/// Carry out the core's [`Action::SyncDaemon`](crate::director::core::Action):
/// stop the daemons of `stop`, then (re)start `start`, in a task of its own
/// (netlink must not hold the main loop); `slot` gets the running state for
/// status. The driver waits for these tasks before it exits.
pub(super) fn switch_sync(
    client: IpvsClient,
    stop: Vec<DaemonState>,
    start: Option<SyncDaemon>,
    slot: Arc<Mutex<Option<String>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut c = client;
        for state in stop {
            if let Err(e) = c.stop_daemon(state).await {
                debug!("stopping the {state:?} sync daemon: {e}");
            }
        }
        let now = match start {
            Some(d) => {
                let (st, sync_id) = (d.state, d.sync_id);
                let _ = c.stop_daemon(st).await;
                match c.start_daemon(&d).await {
                    Ok(()) => {
                        info!(state = ?st, interface = %d.mcast_ifn, sync_id, "ipvs sync daemon started");
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
    })
}

pub(super) async fn reconcile_task(
    mut client: IpvsClient,
    mut rx: watch::Receiver<Option<ReconInput>>,
    status: Arc<Mutex<Option<ReconcileStatus>>>,
    done: tokio::sync::mpsc::Sender<super::Event>,
) {
    // The config whose timeouts were last enforced: set again at start, on a
    // reload, and whenever the configured ones change.
    let mut timeouts_of: Option<Option<crate::config::IpvsTimeouts>> = None;
    // The weights the last successful reconcile left in the kernel: a
    // different one found later was set by someone else.
    let mut written = std::collections::BTreeMap::new();
    // What the last successful reconcile wrote; `None` after a failure.
    let mut applied: Option<table::Applied> = None;
    let mut tick = tokio::time::interval(PERIODIC_RECONCILE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    // A periodic reconcile given way to a new input, to run again at once
    // after it; how many times in a row it did.
    let mut periodic_pending = false;
    let mut gave_way = 0u32;
    loop {
        let periodic = if periodic_pending && matches!(rx.has_changed(), Ok(false)) {
            true
        } else {
            tokio::select! {
                r = rx.changed() => {
                    if r.is_err() {
                        return;
                    }
                    false
                }
                _ = tick.tick() => true,
            }
        };
        let Some(input) = rx.borrow_and_update().clone() else {
            continue;
        };
        let trigger = if periodic { "periodic" } else { input.trigger };
        let want = input.cfg.ipvs_timeouts;
        if timeouts_of != Some(want) || (!periodic && matches!(trigger, "start" | "reload")) {
            timeouts_of = Some(want);
            if let Some(w) = want {
                enforce_timeouts(&mut client, &w).await;
            }
        }
        // A change of health alone is carried out from what the last
        // reconcile wrote (`table::Applied`), without reading the kernel.
        let step = match &applied {
            Some(a) if health_only(periodic, input.trigger, &input.dropped, &input.draining) => {
                a.health_step(&input.cfg, &input.health, &input.draining)
            }
            _ => None,
        };
        let whole = step.is_none();
        // the periodic one gives way to a new input (a health change waits
        // for no sweep of 1,000 services), up to MAX_GIVE_WAY times in a row
        let yielding = (periodic && gave_way < MAX_GIVE_WAY).then_some(&rx);
        let started = std::time::Instant::now();
        let r = match step {
            Some(step) => match health_step(&mut client, &step, &mut written).await {
                Ok(n) => {
                    if let Some(a) = applied.as_mut() {
                        a.applied(input.health.clone(), step);
                    }
                    Ok((n, Vec::new()))
                }
                Err(e) => {
                    warn!("ipvs: {e:#}: reading the kernel's table and reconciling all of it");
                    applied = None;
                    match reconcile_once(&mut client, &input, &mut written, &mut applied, None)
                        .await
                    {
                        Ok(Swept::Done(n, conns)) => Ok((n, conns)),
                        Ok(Swept::GaveWay) => Ok((0, Vec::new())),
                        Err(e) => Err(e),
                    }
                }
            },
            None => {
                match reconcile_once(&mut client, &input, &mut written, &mut applied, yielding)
                    .await
                {
                    Ok(Swept::GaveWay) => {
                        debug!(trigger, "ipvs: periodic reconcile gave way to a new input");
                        periodic_pending = true;
                        gave_way += 1;
                        continue;
                    }
                    Ok(Swept::Done(n, conns)) => Ok((n, conns)),
                    Err(e) => Err(e),
                }
            }
        };
        if whole {
            periodic_pending = false;
            gave_way = 0;
            // the scratch memory of a whole-table reconcile (the services
            // read, the operations: 11,000 at a start at 1,000 × 10) back
            // to the kernel
            super::load::trim_heap(trigger);
        }
        let conns = r.as_ref().map(|(_, c)| c.clone()).unwrap_or_default();
        let r = r.map(|(n, _)| n);
        let rec = ReconcileStatus {
            at: status::timestamp(SystemTime::now()),
            trigger: trigger.into(),
            ok: r.is_ok(),
            ops: *r.as_ref().unwrap_or(&0),
            error: r.as_ref().err().map(|e| format!("{e:#}")),
        };
        // how long it took, the kernel's table read included: logged at info
        // when a whole-table reconcile that changed nothing took over a
        // second (health changes wait behind it)
        let took_ms = (started.elapsed().as_secs_f64() * 1e3).round();
        match &r {
            Ok(0) if whole && took_ms > 1000.0 => {
                info!(trigger, took_ms, "ipvs: kernel table matches (slow)")
            }
            Ok(0) => debug!(trigger, took_ms, "ipvs: kernel table matches"),
            Ok(n) => info!(trigger, ops = n, took_ms, "ipvs: reconciled"),
            Err(e) => error!(trigger, took_ms, "ipvs reconcile failed: {e:#}"),
        }
        let error = rec.error.clone();
        let deleted = if rec.ok {
            input.dropped.clone()
        } else {
            Vec::new()
        };
        if let Ok(mut s) = status.lock() {
            *s = Some(rec);
        }
        // The main loop says READY=1 to systemd after the first one, and
        // feeds the draining destinations' counters to the core.
        if done
            .send(super::Event::Reconciled {
                error,
                deleted,
                conns,
            })
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Whether a reconcile may be carried out from what the last one wrote,
/// without reading the kernel: only a health change, with no service to
/// delete and nothing draining. Everything else reads it; while a drain
/// runs every reconcile also reads the draining destinations' connection
/// counters, which the core waits for to end the drain (a "drain" run that
/// took this path found nothing changed and reported no counters: the
/// drain then never ended before its timeout).
fn health_only(
    periodic: bool,
    trigger: &str,
    dropped: &[ServiceId],
    draining: &[table::Draining],
) -> bool {
    !periodic && trigger == "health" && dropped.is_empty() && draining.is_empty()
}

/// `ipvsadm --set` from the config when the kernel differs; logged either way.
async fn enforce_timeouts(client: &mut IpvsClient, want: &crate::config::IpvsTimeouts) {
    let kernel = match client.timeouts().await {
        Ok(k) => k,
        Err(e) => {
            error!("reading the IPVS timeouts: {e}");
            return;
        }
    };
    let Some(set) = table::timeouts_to_set(want, kernel) else {
        debug!(?kernel, "ipvs timeouts already as configured");
        return;
    };
    match client.set_timeouts(&set).await {
        Ok(()) => info!(
            tcp = set.tcp,
            tcpfin = set.tcp_fin,
            udp = set.udp,
            "ipvs timeouts set from the config (seconds; 0 = unchanged), were tcp {} tcpfin {} udp {}",
            kernel.tcp,
            kernel.tcp_fin,
            kernel.udp
        ),
        Err(e) => error!("setting the IPVS timeouts: {e}"),
    }
}

/// Services read ahead of the sweep at most (each with its destinations).
const READ_AHEAD: usize = 8;

/// How many times in a row a periodic reconcile gives way to a new input
/// before it runs to its end whatever comes (a storm of health changes
/// must not put off the repair of the table for ever).
const MAX_GIVE_WAY: u32 = 5;

/// How a whole-table reconcile ended.
enum Swept {
    /// Applied: the operations, and the draining destinations' counters.
    Done(usize, Vec<DestConns>),
    /// Given up for a newer input before anything was applied; the record
    /// is as it was.
    GaveWay,
}

/// Read the kernel's table and bring it to config × health; `applied` is
/// what it wrote on success, `None` on failure.
///
/// The table is read and compared one service at a time ([`table::Sweep`]
/// over [`IpvsClient::services_streamed`]): what is held meanwhile is a few
/// services and the operations, not the kernel's table, the desired one and
/// their comparison (megabytes at 1,000 × 10, for the seconds a reconcile
/// runs under the lab VM). The record (`applied`'s table, `written`)
/// is the last one's, changed where a service changed. Between services the
/// task yields, so the checks on the same thread keep their schedule.
///
/// With `give_way`, a new input there (a health change, a reload) ends the
/// sweep before anything is applied ([`Swept::GaveWay`]): under TCG a sweep
/// of 1,000 × 10 took 2-6 s, and the health changes of that time waited
/// for it (a real server's removal and return were late by as much).
async fn reconcile_once(
    client: &mut IpvsClient,
    input: &ReconInput,
    written: &mut std::collections::BTreeMap<(ServiceId, std::net::SocketAddr), u32>,
    applied: &mut Option<table::Applied>,
    give_way: Option<&watch::Receiver<Option<ReconInput>>>,
) -> anyhow::Result<Swept> {
    // `None` until this one succeeds (or gives way: then put back as it was)
    let before = applied.take();
    let (kept, kept_table) = match before {
        Some(b) => (Some((b.cfg, b.health, b.draining)), b.table),
        None => (None, Default::default()),
    };
    let mut sweep = table::Sweep::new(
        &input.cfg,
        &input.health,
        &input.draining,
        &input.dropped,
        written,
        kept_table,
    );
    let mut conns = drain_counters(&input.draining, &[]);
    let mut rx = client.services_streamed(READ_AHEAD);
    let mut n = 0usize;
    while let Some(k) = rx.recv().await {
        let k = k?;
        if input.draining.iter().any(|d| d.service == k.id) {
            let found = drain_counters(&input.draining, std::slice::from_ref(&k));
            for (c, f) in conns.iter_mut().zip(found) {
                if f.conns.is_some() {
                    c.conns = f.conns;
                }
            }
        }
        sweep.kernel_service(&k);
        n += 1;
        if n % READ_AHEAD == 0 {
            tokio::task::yield_now().await;
            if give_way.is_some_and(|w| !matches!(w.has_changed(), Ok(false))) {
                // dropping the stream stops the reading at its next service
                drop(rx);
                let table = sweep.abandon();
                *applied = kept.map(|(cfg, health, draining)| table::Applied {
                    cfg,
                    health,
                    draining,
                    table,
                });
                return Ok(Swept::GaveWay);
            }
        }
    }
    let out = sweep.finish();
    for f in &out.foreign {
        warn!(
            service = %f.service,
            destination = %f.addr,
            "weight changed outside lvsup (ipvsadm -e?) from {} to {}: restoring weight {} from \
             the config (to drain a real server, set drain = true on it in cluster.toml)",
            f.ours,
            f.found,
            f.restore
        );
    }
    for op in &out.ops {
        info!("ipvs: {op}");
    }
    let n = crate::ipvs::apply(client, &out.ops).await?;
    for (key, w) in out.written {
        match w {
            Some(w) => written.insert(key, w),
            None => written.remove(&key),
        };
    }
    let health = match kept {
        Some((_, h, _)) if h == input.health => h,
        _ => input.health.clone(),
    };
    *applied = Some(table::Applied {
        cfg: input.cfg.clone(),
        health,
        draining: input.draining.clone(),
        table: out.table,
    });
    Ok(Swept::Done(n, conns))
}

/// Carry out a change of health from what the last reconcile wrote: the
/// changed services' operations only, no read of the kernel. An operation
/// the kernel refuses (someone deleted the service meanwhile) fails the
/// step, and the caller reads the kernel.
async fn health_step(
    client: &mut IpvsClient,
    step: &table::HealthStep,
    written: &mut std::collections::BTreeMap<(ServiceId, std::net::SocketAddr), u32>,
) -> anyhow::Result<usize> {
    let plan = crate::ipvs::reconcile(
        &step.desired,
        &step.known,
        &ReconcileOptions {
            prune: false,
            drain: false,
        },
    );
    for op in &plan.ops {
        info!("ipvs: {op}");
    }
    let n = crate::ipvs::apply(client, &plan.ops).await?;
    written.extend(table::weights(&step.desired));
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a health change skips the kernel's table; a drain check, a
    /// start, a reload, the periodic run, a drain under way or services to
    /// delete read it.
    #[test]
    fn only_a_health_change_skips_reading_the_kernel() {
        assert!(health_only(false, "health", &[], &[]));
        assert!(!health_only(true, "health", &[], &[]));
        for t in ["drain", "start", "reload"] {
            assert!(!health_only(false, t, &[], &[]), "{t}");
        }
        let service = ServiceId::tcp("192.0.2.100:80".parse().expect("addr"));
        let draining = table::Draining {
            service,
            addr: "192.0.2.12:80".parse().expect("addr"),
            forward: crate::config::Forward::Route,
        };
        assert!(!health_only(false, "health", &[], &[draining]));
        assert!(!health_only(false, "health", &[service], &[]));
    }
}
