//! `lvsup verify`: prove a running cluster works — VIP, scheduling, director
//! and real-server failover — and measure it, from the operator's machine.
//!
//! Shape: observe (I/O: [`exec::HostExec`] for hosts, [`probe`] for the VIP)
//! → decide (pure: [`analysis`]) → render ([`report`]). Every change verify
//! makes to the cluster (a stopped daemon, a prohibit route) is recorded in an
//! [`UndoLog`] *before* it is made; the log is replayed when verify ends,
//! fails, is interrupted (Ctrl-C) or panics, so the cluster is left as verify
//! found it.

pub mod analysis;
pub mod commands;
pub mod exec;
pub mod facts;
pub mod probe;
pub mod report;
pub mod undo;

mod checks;
mod context;
mod failover;
mod rollback;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{Check, ClusterSpec, Protocol, Service};
use crate::observe::live::{self, RealServerFacts};
use analysis::{
    Batch, DestSample, DirectorFacts, DirectorFailover, FailoverMode, RealServerFailover,
};
use checks::*;
use context::*;
use exec::{ExecError, ExecOutput, HostExec};
use failover::*;
use probe::{ProbeKind, Prober, ProberLimits};
use report::{CheckRow, Report};
use rollback::*;

pub use commands::failover_commands;
pub use context::{failover_service, probe_kind, rs_failover_service};
pub use rollback::{UndoLog, local_pid_alive};

/// What the user asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub skip_failover: bool,
    /// Why the failover checks are skipped, shown in their SKIP rows (default
    /// "--skip-failover"); e.g. not confirmed at the prompt.
    pub skip_failover_why: Option<String>,
    /// Instead of prohibit routes: a command run on the real server to make it
    /// fail its health checks, and one to recover it.
    pub rs_fail_cmd: Option<String>,
    pub rs_recover_cmd: Option<String>,
    /// Connections per scheduling batch (default: 100, wrr: whole weight cycles).
    pub batch: Option<u32>,
    /// Also fail the master over by crashing it (its daemon frozen with
    /// SIGSTOP, then resumed), after the planned stop: a second
    /// `director-failover` row, bounded by the backup's Master_Down_Interval.
    pub crash_failover: bool,
    /// Who runs verify (written into the undo records): the login name and
    /// the machine's name; empty: "unknown".
    pub user: String,
    pub machine: String,
    /// Client addresses of this machine to connect from, one batch each
    /// (`--source`): for sh/mh, whose property depends on the source
    /// address. Empty: one address, the spread is SKIP.
    pub sources: Vec<std::net::IpAddr>,
}

pub use crate::layout::director_unit;

/// What the failover checks will do to the cluster, one sentence each with an
/// upper bound of how long it lasts (from the same limits the checks wait
/// for): what `lvsup verify` lists before it asks. Empty with `skip_failover`.
pub fn disruptions(spec: &ClusterSpec, opts: &Options) -> Vec<String> {
    if opts.skip_failover {
        return Vec::new();
    }
    let secs = |d: Duration| d.as_secs_f64().ceil() as u64;
    let unit = director_unit(&spec.name);
    let advert = spec.advert_interval;
    let mut out = Vec::new();
    let svc = failover_service(spec);
    let health_known = svc
        .map(|s| s.health.interval * s.health.rise.max(s.health.fall) + s.health.timeout)
        .unwrap_or_default();
    let takeover = advert * 3 + Duration::from_secs(10);
    let back = advert * 3 + health_known + Duration::from_secs(10);
    out.push(format!(
        "stop {unit} on the director holding the VIP (the VIP moves to a backup; connections \
         through it may break), then start it again: up to ~{} s",
        secs(takeover + back)
    ));
    if opts.crash_failover {
        out.push(format!(
            "freeze the daemon of the director holding the VIP (SIGSTOP, as if it hung), then \
             resume it: up to ~{} s",
            secs(takeover + back)
        ));
    }
    if let Some(s) = rs_failover_service(spec) {
        let h = &s.health;
        let out_limit = h.interval * (h.fall + 1) + h.timeout + Duration::from_secs(5);
        let back_limit = h.interval * (h.rise + 1) + h.timeout + Duration::from_secs(5);
        let how = match &opts.rs_fail_cmd {
            Some(cmd) => format!("by running `{cmd}`"),
            None => "with prohibit routes to the directors".to_string(),
        };
        out.push(format!(
            "make one real server fail its health checks {how} (it leaves the pool), then undo \
             it: up to ~{} s",
            secs(out_limit + back_limit)
        ));
    }
    out
}

async fn all_checks(cx: &Ctx<'_>) {
    let dirs = check_static(cx).await;
    let mut holder = match analysis::holders(&dirs, cx.spec.vip).as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    };
    // Right after apply the preferred director may not have taken over yet
    // (its health gate opens after `rise` checks): wait for it, so every
    // later check sees the cluster in its steady state.
    let by_prio = cx.spec.directors_by_priority();
    if cx.spec.preempt
        && by_prio.len() >= 2
        && let (Some(h), Some(top)) = (holder.clone(), by_prio.first())
    {
        let t0 = Instant::now();
        let (now, settled) = if h == top.name {
            (Some(h), true)
        } else {
            let hl = cx.spec.services.first().map_or(Duration::ZERO, |s| {
                s.health.interval * s.health.rise.max(s.health.fall) + s.health.timeout
            });
            let limit = cx.spec.advert_interval * 3 + hl + Duration::from_secs(10);
            wait_holder(cx, limit, |x| x == Some(top.name.as_str())).await
        };
        cx.add(CheckRow::from_verdict(
            "vip-preempt",
            &top.name,
            analysis::check_preempt_owner(&top.name, now.as_deref(), ms_since(t0), settled),
        ));
        holder = now;
    }
    check_scheduling(cx, holder.as_deref()).await;
    let probed = failover_service(cx.spec);
    if cx.opts.skip_failover {
        let why = cx
            .opts
            .skip_failover_why
            .clone()
            .unwrap_or_else(|| "--skip-failover".to_string());
        cx.add(CheckRow::skipped("director-failover", "-", why.clone()));
        cx.add(CheckRow::skipped("real-server-failover", "-", why));
        return;
    }
    let (Some(holder), Some(svc)) = (holder, probed) else {
        let why = if probed.is_none() {
            "no service to probe"
        } else {
            "no single active director (see vip-holder)"
        };
        cx.add(CheckRow::skipped("director-failover", "-", why));
        cx.add(CheckRow::skipped("real-server-failover", "-", why));
        return;
    };
    if cx.directors().len() >= 2 {
        check_director_failover(cx, &holder, svc, FailoverMode::PlannedStop).await;
        if cx.opts.crash_failover {
            // Whoever holds the VIP now is the master to crash.
            let master = cx.vip_holder().await.unwrap_or_else(|| holder.clone());
            check_director_failover(cx, &master, svc, FailoverMode::Crash).await;
        }
    } else {
        cx.add(CheckRow::skipped(
            "director-failover",
            &holder,
            "one director: nothing to fail over to",
        ));
    }
    // The active director may have changed back (preempt) or been handed back.
    let active = cx.vip_holder().await.unwrap_or(holder);
    match rs_failover_service(cx.spec) {
        Some(svc) => check_rs_failover(cx, &active, svc).await,
        None => cx.add(CheckRow::skipped(
            "real-server-failover",
            "-",
            "no service with a health check (check = \"none\" keeps a failed server in the pool)",
        )),
    }
}

/// Run every check and put the cluster back; the report says what was found.
/// `rt`: the runtime the checks run on (the command line builds it: a
/// current-thread one); it is dropped once the cluster is put back.
pub fn run(
    spec: &ClusterSpec,
    exec: Arc<dyn HostExec>,
    opts: &Options,
    rt: tokio::runtime::Runtime,
) -> anyhow::Result<Report> {
    let undo = UndoLog::default();
    let _guard = UndoGuard {
        log: undo.clone(),
        exec: exec.clone(),
    };
    // First what an interrupted verify left on the hosts: the checks need
    // the cluster whole, and the report says what was undone.
    let replayed = replay_all(exec.as_ref(), spec, &or_unknown(&opts.machine));
    let mut opts = opts.clone();
    if !replayed.failures.is_empty() && !opts.skip_failover {
        opts.skip_failover = true;
        opts.skip_failover_why =
            Some("an interrupted verify's change could not be undone (see UNDO FAILED)".into());
    }
    let opts = &opts;
    let cx = Ctx {
        spec,
        exec: exec.clone(),
        undo: undo.clone(),
        opts,
        rows: Arc::default(),
        counters_from: Arc::default(),
        inflight: Arc::default(),
        last_traffic: Arc::default(),
    };
    let interrupted = rt.block_on(async {
        tokio::select! {
            _ = all_checks(&cx) => false,
            _ = interrupt() => true,
        }
    });
    if interrupted {
        tracing::warn!(
            "lvsup verify: interrupted; putting the cluster back ({})",
            undo.pending().join(", ")
        );
        // Let host commands already running finish, so a `systemctl stop`
        // in flight cannot land after the undo's `systemctl start`.
        let end = Instant::now() + Duration::from_secs(60);
        while cx.inflight.load(Ordering::SeqCst) > 0 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let mut undo_failures = replayed.failures;
    undo_failures.extend(undo.run_all(exec.as_ref()));
    let rows = cx.rows.lock().map(|r| r.clone()).unwrap_or_default();
    let mut report = Report::new(&spec.name, rows);
    report.counters_from = cx.counters_from.lock().ok().and_then(|c| c.clone());
    report.interrupted = interrupted;
    report.undo_failures = undo_failures;
    report.undone = replayed.undone;
    report.settle();
    drop(rt);
    Ok(report)
}
