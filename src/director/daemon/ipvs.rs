//! The daemon's IPVS side: the reconcile task (kernel table vs config ×
//! health, on a trigger and every [`PERIODIC_RECONCILE`]) and the kernel's
//! connection-sync daemon, switched on VRRP state changes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
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
    // A client with a batch socket of its own, for the health changes
    // carried out while a periodic sweep reads the table (the reading holds
    // the other one's): without it they wait for the sweep's end.
    let mut steps = match client.with_own_batch_socket() {
        Ok(c) => Some(c),
        Err(e) => {
            warn!(
                "ipvs: no second netlink socket ({e}): health changes wait for periodic reconciles"
            );
            None
        }
    };
    let mut tick = tokio::time::interval(PERIODIC_RECONCILE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    // A sweep of the whole table to run next, whatever comes meanwhile (it
    // carries out health changes itself and gives way to anything else),
    // under its label: "periodic", put off for an input that was waiting
    // when the tick came (so inputs never put it off twice in a row), or
    // "reload", the repair of drift after a reload carried out from the
    // record (the reload's own change goes in first, without waiting for
    // a read of the table).
    let mut due: Option<&'static str> = None;
    loop {
        let (periodic, label) = if let Some(label) = due.take() {
            (true, label)
        } else {
            let ticked = tokio::select! {
                r = rx.changed() => {
                    if r.is_err() {
                        return;
                    }
                    false
                }
                _ = tick.tick() => true,
            };
            // both ready (select! picks at random): the input first, under
            // its own trigger (it ran as "periodic" before, under the wrong
            // label and without its own path)
            if ticked && matches!(rx.has_changed(), Ok(true)) {
                due = Some("periodic");
                (false, "")
            } else {
                (ticked, "periodic")
            }
        };
        let Some(input) = rx.borrow_and_update().clone() else {
            continue;
        };
        let trigger = if periodic { label } else { input.trigger };
        let want = input.cfg.ipvs_timeouts;
        if timeouts_of != Some(want) || (!periodic && matches!(trigger, "start" | "reload")) {
            timeouts_of = Some(want);
            if let Some(w) = want {
                enforce_timeouts(&mut client, &w).await;
            }
        }
        // A change of health alone, and a reload without drains, are
        // carried out from what the last reconcile wrote (`table::Applied`),
        // without reading the kernel.
        let step = match &applied {
            Some(a) if health_only(periodic, input.trigger, &input.dropped, &input.draining) => a
                .health_step(&input.cfg, &input.health, &input.draining)
                .map(|s| (s, false)),
            Some(a) if reload_only(periodic, input.trigger, &input.draining) => a
                .reload_step(&input.cfg, &input.health, &input.dropped)
                .map(|s| (s, true)),
            _ => None,
        };
        let whole = step.is_none();
        if periodic {
            health_before_sweep(&mut client, &input, &mut written, &mut applied, trigger).await;
        }
        // The periodic one carries out a health change at once, going on
        // with it, and gives way to any other input (that one reads the
        // kernel's table itself): see reconcile_once.
        let sweeping = periodic.then_some(Sweeping {
            rx: &mut rx,
            steps: steps.as_mut(),
            label: trigger,
        });
        let started = std::time::Instant::now();
        let r = match step {
            Some((step, reload)) => match from_record(&mut client, &step, &mut written).await {
                Ok(n) => {
                    if let Some(a) = applied.as_mut() {
                        if reload {
                            a.reloaded(input.cfg.clone(), input.health.clone(), step);
                            due = Some("reload");
                        } else {
                            a.applied(input.health.clone(), step);
                        }
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
                match reconcile_once(&mut client, &input, &mut written, &mut applied, sweeping)
                    .await
                {
                    Ok(Swept::GaveWay) => {
                        debug!(trigger, "ipvs: periodic reconcile gave way to a new input");
                        continue;
                    }
                    Ok(Swept::Done(n, conns)) => Ok((n, conns)),
                    Err(e) => Err(e),
                }
            }
        };
        if whole {
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
        // `read`: whether the kernel's table was read (else the change was
        // carried out from the record)
        let read = whole;
        match &r {
            Ok(0) if whole && took_ms > 1000.0 => {
                info!(trigger, took_ms, "ipvs: kernel table matches (slow)")
            }
            Ok(0) => debug!(trigger, took_ms, read, "ipvs: kernel table matches"),
            Ok(n) => info!(trigger, ops = n, took_ms, read, "ipvs: reconciled"),
            Err(e) => error!(trigger, took_ms, read, "ipvs reconcile failed: {e:#}"),
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

/// Whether a reload may be carried out from what the last reconcile wrote
/// ([`table::Applied::reload_step`]): one with no drain under way (a reload
/// that removes a real server starts one; its counters are read from the
/// kernel). Drift by hand is repaired by the sweep of the whole table that
/// runs right after it.
fn reload_only(periodic: bool, trigger: &str, draining: &[table::Draining]) -> bool {
    !periodic && trigger == "reload" && draining.is_empty()
}

/// A sweep's input that differs from the record in health alone (it came
/// while the step before the sweep ran: the reload's, or the input that
/// put the periodic sweep off): its health step carried out first, from the
/// record, as during the sweep. Without it the sweep compared against that
/// health from the start and wrote it only at its end: in run (p) the
/// reloaded service's real servers, up 0.01 s after the reload's step, went
/// in ~1.2 s later, when the sweep after it ended. A step that fails drops
/// the record: the sweep then reads and repairs everything.
async fn health_before_sweep(
    client: &mut IpvsClient,
    input: &ReconInput,
    written: &mut std::collections::BTreeMap<(ServiceId, std::net::SocketAddr), u32>,
    applied: &mut Option<table::Applied>,
    during: &'static str,
) {
    let Some(a) = applied.as_mut() else { return };
    if a.health == input.health || !input.dropped.is_empty() || !input.draining.is_empty() {
        return;
    }
    let Some(step) = a.health_step(&input.cfg, &input.health, &input.draining) else {
        return;
    };
    let t = std::time::Instant::now();
    match from_record(client, &step, written).await {
        Ok(ops) => {
            a.applied(input.health.clone(), step);
            let took_ms = (t.elapsed().as_secs_f64() * 1e3).round();
            info!(trigger = "health", ops, took_ms, during, "ipvs: reconciled");
        }
        Err(e) => {
            warn!("ipvs: {e:#}: the sweep reads the kernel's table and reconciles all of it");
            *applied = None;
        }
    }
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

/// A periodic sweep's ways to the newer inputs: the watch they come on,
/// and the client that carries out a health change meanwhile (`None`: none
/// could be opened; health changes then wait for the sweep's end).
struct Sweeping<'a> {
    rx: &'a mut watch::Receiver<Option<ReconInput>>,
    steps: Option<&'a mut IpvsClient>,
    /// the sweep's trigger, for the log: "periodic", or "reload" (the one
    /// right after a reload)
    label: &'static str,
}

/// Whether `new` differs from `input` in health alone (the same config,
/// no drain, no service to delete): a sweep of `input` can carry it out.
fn health_alone(input: &ReconInput, new: &ReconInput) -> bool {
    health_only(false, new.trigger, &new.dropped, &new.draining)
        && input.dropped.is_empty()
        && input.draining.is_empty()
        && Arc::ptr_eq(&input.cfg, &new.cfg)
}

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
/// With `sweeping` (the periodic sweep), a newer input is looked at
/// between services. A change of health alone is carried out at once, from
/// the record, on a socket of its own ([`table::Sweep::health_change`]),
/// and the sweep goes on with the new health: in the lab VM at 1,000 × 10
/// checked 1,000 times a second a sweep took 25-42 s, and the health
/// changes of that time waited for it (a real server's last destination
/// out 68 s after it failed, against ~30 s; keepalived, which never reads
/// its table back, 33 s). Any other input (a reload, a drain) ends the
/// sweep before anything is applied ([`Swept::GaveWay`]): it reads the
/// kernel's table itself, so the repair is done by it.
async fn reconcile_once(
    client: &mut IpvsClient,
    input: &ReconInput,
    written: &mut std::collections::BTreeMap<(ServiceId, std::net::SocketAddr), u32>,
    applied: &mut Option<table::Applied>,
    mut sweeping: Option<Sweeping<'_>>,
) -> anyhow::Result<Swept> {
    // `None` until this one succeeds (or gives way: then put back as it was)
    let before = applied.take();
    let (kept, kept_table) = match before {
        Some(b) => (Some((b.cfg, b.health, b.draining)), b.table),
        None => (None, Default::default()),
    };
    // Health changes are carried out from the record only when it is of
    // this input's config, drains and health.
    let steps_allowed = kept.as_ref().is_some_and(|(cfg, health, draining)| {
        Arc::ptr_eq(cfg, &input.cfg) && *draining == input.draining && *health == input.health
    });
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
    // The health changes carried out meanwhile: their operations, the
    // weights they wrote, the newest health.
    let mut stepped = 0usize;
    let mut step_weights = Vec::new();
    let mut stepped_health: Option<Vec<Vec<Health>>> = None;
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
        if n % READ_AHEAD != 0 {
            continue;
        }
        tokio::task::yield_now().await;
        let Some(sw) = sweeping.as_mut() else {
            continue;
        };
        if matches!(sw.rx.has_changed(), Ok(false)) {
            continue;
        }
        let newer = sw.rx.borrow().clone();
        // a change of health alone, with a second socket and a record to
        // step from: carried out now; without them it waits for the
        // sweep's end; anything else (or a step the record cannot give)
        // ends the sweep
        let step = match newer {
            Some(new) if health_alone(input, &new) => {
                let Some(c) = sw.steps.as_deref_mut().filter(|_| steps_allowed) else {
                    continue;
                };
                sweep
                    .health_change(new.health.clone())
                    .map(|step| (c, step, new.health))
            }
            _ => None,
        };
        let Some((c, step, health)) = step else {
            // dropping the stream stops the reading at its next service
            drop(rx);
            let table = sweep.abandon();
            *applied = kept.map(|(cfg, health, draining)| table::Applied {
                cfg,
                health: stepped_health.unwrap_or(health),
                draining,
                table,
            });
            written.extend(step_weights);
            return Ok(Swept::GaveWay);
        };
        sw.rx.borrow_and_update();
        if !step.desired.is_empty() {
            let t = std::time::Instant::now();
            let ops = carry_out(c, &step)
                .await
                .context("a health change during the periodic reconcile")?;
            let took_ms = (t.elapsed().as_secs_f64() * 1e3).round();
            info!(
                trigger = "health",
                ops,
                took_ms,
                during = sw.label,
                "ipvs: reconciled"
            );
            stepped += ops;
            step_weights.extend(table::weights(&step.desired));
        }
        stepped_health = Some(health);
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
    // the steps' weights after the sweep's: the sweep forgot what it had
    // found for their services, and what it found after them agrees
    written.extend(step_weights);
    let health = match (stepped_health, kept) {
        (Some(h), _) => h,
        (None, Some((_, h, _))) if h == input.health => h,
        _ => input.health.clone(),
    };
    *applied = Some(table::Applied {
        cfg: input.cfg.clone(),
        health,
        draining: input.draining.clone(),
        table: out.table,
    });
    Ok(Swept::Done(n + stepped, conns))
}

/// Carry out a change of health, or a reload, from what the last reconcile
/// wrote: the changed services' operations only, no read of the kernel. An
/// operation the kernel refuses (someone deleted the service meanwhile)
/// fails the step, and the caller reads the kernel.
async fn from_record(
    client: &mut IpvsClient,
    step: &table::Step,
    written: &mut std::collections::BTreeMap<(ServiceId, std::net::SocketAddr), u32>,
) -> anyhow::Result<usize> {
    let n = carry_out(client, step).await?;
    table::written_after(written, step);
    Ok(n)
}

/// A step's operations, applied: how many. `prune`: the step's known
/// services are all the daemon's (from its record), and one not wanted is
/// a service a reload deleted.
async fn carry_out(client: &mut IpvsClient, step: &table::Step) -> anyhow::Result<usize> {
    let plan = crate::ipvs::reconcile(
        &step.desired,
        &step.known,
        &ReconcileOptions {
            prune: true,
            drain: false,
        },
    );
    for op in &plan.ops {
        info!("ipvs: {op}");
    }
    Ok(crate::ipvs::apply(client, &plan.ops).await?)
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

    /// A reload is carried out from the record unless a drain is under way
    /// (or it is the periodic run).
    #[test]
    fn a_reload_skips_reading_the_kernel_unless_a_drain_runs() {
        assert!(reload_only(false, "reload", &[]));
        assert!(!reload_only(true, "reload", &[]));
        for t in ["drain", "start", "health"] {
            assert!(!reload_only(false, t, &[]), "{t}");
        }
        let draining = table::Draining {
            service: ServiceId::tcp("192.0.2.100:80".parse().expect("addr")),
            addr: "192.0.2.12:80".parse().expect("addr"),
            forward: crate::config::Forward::Route,
        };
        assert!(!reload_only(false, "reload", &[draining]));
    }
}
