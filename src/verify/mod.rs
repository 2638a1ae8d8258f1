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
pub mod exec;
pub mod facts;
pub mod probe;
pub mod report;
pub mod undo;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{Check, ClusterSpec, Protocol, Service};
use analysis::{
    Batch, DestSample, DirectorFacts, DirectorFailover, FailoverMode, RealServerFacts,
    RealServerFailover,
};
use exec::{ExecError, ExecOutput, HostExec};
use probe::{ProbeKind, Prober, ProberLimits};
use report::{CheckRow, Report};

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

// ------------------------------------------------------------ undo

#[derive(Debug, Clone)]
struct UndoStep {
    id: u64,
    host: String,
    cmd: String,
    what: String,
    /// Its record on `host` ([`undo`]), removed once the step has run.
    record: Option<String>,
}

/// Steps that put the cluster back; replayed newest first. Verify also
/// writes each step to its host ([`Ctx::record_undo`]) so that a verify that
/// cannot replay it (SIGKILL, a lost connection) leaves it for the next
/// `verify`, `apply` or `destroy`.
#[derive(Clone, Default)]
pub struct UndoLog {
    steps: Arc<Mutex<(u64, Vec<UndoStep>)>>,
}

impl UndoLog {
    /// Record an undo step before making the change it undoes.
    pub fn push(&self, host: &str, cmd: &str, what: &str) -> u64 {
        let Ok(mut g) = self.steps.lock() else {
            return 0;
        };
        g.0 += 1;
        let id = g.0;
        g.1.push(UndoStep {
            id,
            host: host.into(),
            cmd: cmd.into(),
            what: what.into(),
            record: None,
        });
        id
    }

    /// Step `id` has a record on its host at `path`.
    pub fn set_record(&self, id: u64, path: &str) {
        if let Ok(mut g) = self.steps.lock()
            && let Some(s) = g.1.iter_mut().find(|s| s.id == id)
        {
            s.record = Some(path.into());
        }
    }

    /// The change was undone by the check itself: the step goes; returns
    /// (host, record path) when it has a record to remove.
    pub fn done(&self, id: u64) -> Option<(String, String)> {
        let Ok(mut g) = self.steps.lock() else {
            return None;
        };
        let i = g.1.iter().position(|s| s.id == id)?;
        let s = g.1.remove(i);
        s.record.map(|r| (s.host, r))
    }

    pub fn pending(&self) -> Vec<String> {
        self.steps
            .lock()
            .map(|g| g.1.iter().map(|s| s.what.clone()).collect())
            .unwrap_or_default()
    }

    /// Run every pending step (newest first); returns the ones that failed.
    /// A step whose connection is lost is retried ([`undo::RETRY_BACKOFF`]);
    /// a step that ran removes its record from the host, one that failed
    /// leaves it there for the next run (and says so).
    pub fn run_all(&self, exec: &dyn HostExec) -> Vec<String> {
        let steps: Vec<UndoStep> = match self.steps.lock() {
            Ok(mut g) => std::mem::take(&mut g.1),
            Err(_) => return vec!["undo log poisoned".into()],
        };
        let mut failed = Vec::new();
        for s in steps.iter().rev() {
            let kept = s
                .record
                .as_deref()
                .map(|p| format!("; {}", undo::kept_note(p)))
                .unwrap_or_default();
            match run_retrying(exec, &s.host, &s.cmd) {
                Ok(o) if o.success() => {
                    if let Some(p) = &s.record
                        && let Err(e) = run_ok(exec, &s.host, &undo::remove_command(p))
                    {
                        tracing::warn!(
                            "lvsup verify: {}: cannot remove the undo record {p} ({e}); \
                             the next run undoes it again (harmless)",
                            s.host
                        );
                    }
                }
                Ok(o) => failed.push(format!(
                    "{} ({} on {}: exit {:?}: {}){kept}",
                    s.what,
                    s.cmd,
                    s.host,
                    o.code,
                    o.stderr.trim()
                )),
                Err(e) => failed.push(format!(
                    "{} ({} on {}: {e}, tried {} times){kept}",
                    s.what,
                    s.cmd,
                    s.host,
                    undo::RETRY_BACKOFF.len() + 1
                )),
            }
        }
        failed
    }
}

/// Run `cmd` on `host`; when ssh itself fails (a lost connection), try
/// again after each of [`undo::RETRY_BACKOFF`]. A command that ran and
/// failed is not retried.
fn run_retrying(exec: &dyn HostExec, host: &str, cmd: &str) -> Result<ExecOutput, ExecError> {
    let mut r = exec.run(host, cmd);
    for wait in undo::RETRY_BACKOFF {
        match &r {
            Err(ExecError::UnknownHost(_)) | Ok(_) => break,
            Err(e) => {
                tracing::warn!("lvsup verify: {host}: {e}; trying again in {wait:?}");
                std::thread::sleep(wait);
                r = exec.run(host, cmd);
            }
        }
    }
    r
}

/// [`run_retrying`], a non-zero exit as an error.
fn run_ok(exec: &dyn HostExec, host: &str, cmd: &str) -> Result<(), String> {
    match run_retrying(exec, host, cmd) {
        Ok(o) if o.success() => Ok(()),
        Ok(o) => Err(format!("exit {:?}: {}", o.code, o.stderr.trim())),
        Err(e) => Err(e.to_string()),
    }
}

fn or_unknown(s: &str) -> String {
    if s.is_empty() { "unknown" } else { s }.to_string()
}

/// Whether a process `pid` other than this one runs on this machine (an
/// undo record's verify that still runs is left alone).
pub fn local_pid_alive(pid: u32) -> bool {
    pid != std::process::id() && std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// What replaying the records an interrupted verify left on hosts did.
#[derive(Debug, Default)]
struct Replayed {
    /// `HOST: undid an interrupted verify from … by …: …`
    undone: Vec<String>,
    /// Records that could not be replayed (the host is not whole).
    failures: Vec<String>,
}

/// Find and replay the undo records an interrupted verify left on `host`
/// (`here`: this machine's name). A host whose records cannot be listed is
/// left to the checks (they report it unreachable; no retries here: an
/// unreachable host would only delay them).
fn replay_host(exec: &dyn HostExec, spec: &ClusterSpec, here: &str, host: &str) -> Replayed {
    let mut r = Replayed::default();
    let listing = match exec.run(host, &crate::layout::verify_undo_list_command(&spec.name)) {
        Ok(o) if o.success() => o.stdout,
        _ => return r,
    };
    let mut left = undo::parse_listing(&listing, &spec.name);
    undo::replay_order(&mut left);
    for l in &left {
        let d = undo::decide(l, here, &local_pid_alive);
        if let Some(why) = undo::refusal(host, &d) {
            r.failures.push(why);
            continue;
        }
        let undo::Decision::Undo(rec) = d else {
            continue;
        };
        match run_ok(exec, host, &rec.undo) {
            Ok(()) => {
                if let Err(e) = run_ok(exec, host, &undo::remove_command(&l.path)) {
                    tracing::warn!("lvsup verify: {host}: cannot remove {} ({e})", l.path);
                }
                r.undone.push(undo::undone_message(host, &rec));
            }
            Err(e) => r.failures.push(format!(
                "{host}: undoing an interrupted verify's change ({}) failed: {e}; {}",
                rec.what,
                undo::kept_note(&l.path)
            )),
        }
    }
    r
}

/// [`replay_host`] on every host of the file, in parallel.
fn replay_all(exec: &dyn HostExec, spec: &ClusterSpec, here: &str) -> Replayed {
    let hosts: Vec<&str> = spec
        .directors
        .iter()
        .map(|d| d.name.as_str())
        .chain(spec.real_servers.iter().map(|r| r.name.as_str()))
        .collect();
    let each: Vec<Replayed> = std::thread::scope(|s| {
        let t: Vec<_> = hosts
            .iter()
            .map(|h| s.spawn(move || replay_host(exec, spec, here, h)))
            .collect();
        t.into_iter().filter_map(|t| t.join().ok()).collect()
    });
    let mut all = Replayed::default();
    for r in each {
        all.undone.extend(r.undone);
        all.failures.extend(r.failures);
    }
    all
}

/// Resolves when the process gets SIGINT (Ctrl-C), SIGTERM (a CI cancel,
/// `kill`) or SIGHUP (the terminal or ssh session went away): verify then
/// puts the cluster back, as on Ctrl-C. SIGKILL cannot be caught: the undo
/// records on the hosts cover it.
async fn interrupt() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (term, hup) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        );
        if let (Ok(mut term), Ok(mut hup)) = (term, hup) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Replays the undo log when dropped (panic path); the normal path replays it
/// explicitly first, so this then finds nothing left.
struct UndoGuard {
    log: UndoLog,
    exec: Arc<dyn HostExec>,
}

impl Drop for UndoGuard {
    fn drop(&mut self) {
        for f in self.log.run_all(self.exec.as_ref()) {
            tracing::error!("lvsup verify: UNDO FAILED: {f}");
        }
    }
}

// ------------------------------------------------------------ context

struct Ctx<'a> {
    spec: &'a ClusterSpec,
    exec: Arc<dyn HostExec>,
    undo: UndoLog,
    opts: &'a Options,
    rows: Arc<Mutex<Vec<CheckRow>>>,
    counters_from: Arc<Mutex<Option<String>>>,
    inflight: Arc<AtomicUsize>,
    /// When verify last sent connections to the VIP (see [`COUNTER_PERIOD`]).
    last_traffic: Arc<Mutex<Option<Instant>>>,
}

impl Ctx<'_> {
    fn add(&self, row: CheckRow) {
        if let Ok(mut r) = self.rows.lock() {
            r.push(row);
        }
    }

    /// Run a command on a host (blocking ssh off the runtime). Err: ssh failed or exit ≠ 0.
    async fn sh(&self, host: &str, cmd: &str) -> Result<String, String> {
        let o = self.sh_raw(host, cmd).await?;
        if o.success() {
            Ok(o.stdout)
        } else {
            // Long scripts (the table command) are not worth repeating; the
            // first lines of stderr say what went wrong.
            let what = if cmd.len() <= 60 {
                format!("`{cmd}`")
            } else {
                "the command".into()
            };
            let err: Vec<&str> = o.stderr.trim().lines().take(2).collect();
            Err(format!(
                "{what} on {host} exited {}: {}",
                o.code.map_or("by signal".into(), |c| c.to_string()),
                err.join(" / ")
            ))
        }
    }

    /// Write the undo step of a change to the host it is on, before the
    /// change ([`undo`]): Err (with why) means verify must not make it.
    /// `what`: the undo step (in failure messages); `left`: the change,
    /// as a later run describes what this one left (`… stopped on dr1`).
    async fn record_undo(
        &self,
        host: &str,
        cmd: &str,
        what: &str,
        left: &str,
    ) -> Result<u64, String> {
        let id = self.undo.push(host, cmd, what);
        let rec = undo::Record {
            version: undo::VERSION,
            cluster: self.spec.name.clone(),
            host: host.into(),
            what: left.into(),
            undo: cmd.into(),
            at: undo::now_secs(),
            user: or_unknown(&self.opts.user),
            machine: or_unknown(&self.opts.machine),
            pid: std::process::id(),
        };
        let path = undo::path(&self.spec.name, &rec.file_name(id));
        // Known before the write: an interrupt during it still removes it.
        self.undo.set_record(id, &path);
        match self.sh(host, &undo::write_command(&rec, &path)).await {
            Ok(_) => Ok(id),
            Err(e) => {
                self.undone(id).await;
                Err(format!(
                    "cannot write the undo record on {host}, so verify does not make the \
                     change ({what}): {e}"
                ))
            }
        }
    }

    /// The change of step `id` was undone: its step and record go.
    async fn undone(&self, id: u64) {
        if let Some((host, path)) = self.undo.done(id)
            && let Err(e) = self.sh(&host, &undo::remove_command(&path)).await
        {
            tracing::warn!(
                "lvsup verify: cannot remove the undo record {path} on {host} ({e}); \
                 the next run undoes it again (harmless)"
            );
        }
    }

    async fn sh_raw(&self, host: &str, cmd: &str) -> Result<ExecOutput, String> {
        let exec = self.exec.clone();
        let (h, c) = (host.to_string(), cmd.to_string());
        let inflight = self.inflight.clone();
        inflight.fetch_add(1, Ordering::SeqCst);
        let r = tokio::task::spawn_blocking(move || {
            let r = exec.run(&h, &c);
            inflight.fetch_sub(1, Ordering::SeqCst);
            r
        })
        .await;
        match r {
            Ok(Ok(o)) => Ok(o),
            Ok(Err(e)) => Err(format!("{host}: {e}")),
            Err(e) => Err(format!("{host}: {e}")),
        }
    }

    /// Note that verify has just sent connections to the VIP.
    fn traffic_sent(&self) {
        if let Ok(mut t) = self.last_traffic.lock() {
            *t = Some(Instant::now());
        }
    }

    /// Wait until the IPVS counters include every connection verify has
    /// sent so far (one [`COUNTER_SETTLE`] after the last of them).
    async fn counters_settled(&self) {
        let last = self.last_traffic.lock().ok().and_then(|t| *t);
        if let Some(wait) = last.and_then(|t| COUNTER_SETTLE.checked_sub(t.elapsed())) {
            tokio::time::sleep(wait).await;
        }
    }

    fn directors(&self) -> Vec<String> {
        self.spec.directors.iter().map(|d| d.name.clone()).collect()
    }

    async fn director_facts(&self) -> Vec<DirectorFacts> {
        let futs = self.spec.directors.iter().map(|d| async move {
            match self.sh(&d.name, "ip -j addr show").await {
                Ok(out) => match facts::parse_ip_addr(&out) {
                    Ok(addrs) => DirectorFacts {
                        name: d.name.clone(),
                        addrs,
                        error: None,
                    },
                    Err(e) => DirectorFacts {
                        name: d.name.clone(),
                        addrs: vec![],
                        error: Some(e.to_string()),
                    },
                },
                Err(e) => DirectorFacts {
                    name: d.name.clone(),
                    addrs: vec![],
                    error: Some(e),
                },
            }
        });
        futures::future::join_all(futs).await
    }

    /// The single director holding the VIP, if exactly one does.
    async fn vip_holder(&self) -> Option<String> {
        let f = self.director_facts().await;
        match analysis::holders(&f, self.spec.vip).as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        }
    }

    async fn table(&self, director: &str) -> Result<Vec<facts::SvcSnap>, String> {
        let out = self.sh(director, &facts::table_command()).await?;
        let (t, from) = facts::parse_table_output(&out).map_err(|e| format!("{director}: {e}"))?;
        if let Ok(mut c) = self.counters_from.lock() {
            *c = Some(from.to_string());
        }
        Ok(t)
    }
}

/// Where apply installs lvsup on a director.
const LVSUP_PATH: &str = "PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/sbin:$PATH";

const SEP: &str = "#lvsup-verify:section";

fn rs_facts_command() -> String {
    format!(
        "ip -j addr show; echo '{SEP}'; ip -j route show default; echo '{SEP}'; \
         grep -H . /proc/sys/net/ipv4/conf/*/arp_ignore /proc/sys/net/ipv4/conf/*/arp_announce \
         /proc/sys/net/ipv4/conf/*/rp_filter 2>/dev/null; true"
    )
}

fn parse_rs_facts(name: &str, out: &str) -> RealServerFacts {
    let parts = facts::sections(out, SEP);
    let mut f = RealServerFacts {
        name: name.into(),
        ..Default::default()
    };
    match parts.as_slice() {
        [addr, route, sysctls] => {
            match facts::parse_ip_addr(addr) {
                Ok(a) => f.addrs = a,
                Err(e) => f.error = Some(e.to_string()),
            }
            f.default_gateway = facts::parse_default_gateway(route).ok().flatten();
            f.sysctls = facts::parse_sysctls(sysctls);
        }
        _ => f.error = Some("unexpected output of the fact commands".into()),
    }
    f
}

pub fn probe_kind(svc: &Service) -> ProbeKind {
    if svc.protocol == Protocol::Udp {
        return ProbeKind::Udp;
    }
    match &svc.health.check {
        Check::Http {
            path,
            expect_status,
        } => ProbeKind::Http {
            path: path.clone(),
            expect_status: *expect_status,
        },
        _ => ProbeKind::Tcp,
    }
}

/// The service the director failover timeline probes: the first TCP service,
/// else the first UDP one (a datagram answered is as good a sign of the VIP
/// working as a connect; TCP first, as it was before UDP was probed).
pub fn failover_service(spec: &ClusterSpec) -> Option<&Service> {
    spec.services
        .iter()
        .find(|s| s.protocol == Protocol::Tcp)
        .or_else(|| spec.services.iter().find(|s| s.protocol == Protocol::Udp))
}

/// The service whose pool the real-server failover watches: the first TCP
/// service, else the first UDP service with a health check (with `check =
/// "none"` nothing takes a failed server out of the pool).
pub fn rs_failover_service(spec: &ClusterSpec) -> Option<&Service> {
    spec.services
        .iter()
        .find(|s| s.protocol == Protocol::Tcp)
        .or_else(|| {
            spec.services
                .iter()
                .find(|s| s.protocol == Protocol::Udp && s.health.check != Check::None)
        })
}

fn vip_addr(spec: &ClusterSpec, svc: &Service) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(spec.vip), svc.port)
}

/// Timeout of one connection of the reachability and scheduling batches.
/// These ask whether and where a connection lands, not how fast: 3 s lets a
/// connection survive one lost SYN (Linux retransmits it after 1 s) and a
/// stall of a slow host, such as the lab under emulation, where 1 s failed
/// one connection of a hundred now and then. The failover timelines measure
/// gaps with their own, short timeout ([`ProberLimits`]).
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// How often the kernel publishes the IPVS counters verify reads.
///
/// The scheduling check compares each destination's cumulative `conns`
/// counter (IPVS_DEST_ATTR_STATS(64) → IPVS_STATS_ATTR_CONNS over netlink,
/// `lvsup ipvs list --json`; the Conns column of `ipvsadm -Ln --stats`)
/// before and after a batch. Those are totals, not the current-entry counts
/// of /proc/net/ip_vs (ActiveConn/InActConn, which drop as entries expire),
/// but they are not live. In net/netfilter/ipvs/ip_vs_core.c
/// `ip_vs_conn_stats()` increments only per-CPU counters (`cpustats`) when a
/// connection is scheduled; ip_vs_ctl.c `ip_vs_copy_stats()`, which every
/// reader goes through, reports `kstats - kstats0`, and `kstats` is written
/// only by the rate estimator in ip_vs_est.c, which sums the per-CPU counters
/// into it once every 2 s (`estimation_timer`, re-armed at `jiffies + 2*HZ`,
/// up to 6.1; since 6.2 estimation kthreads that visit each estimator once
/// per 2 s as well). So a read right after a batch sees only the connections
/// made before the estimator's last pass: 23 of 100, or none. That was the
/// "under-count" in the VM lab; it is not lost traffic. (With
/// `net.ipv4.vs.run_estimation = 0`, kernel ≥ 5.16, the estimator does not
/// run and the counters do not move at all.)
///
/// Hence both reads are made only once the estimator has run since verify's
/// last connection to the VIP: [`COUNTER_SETTLE`] after it, and the read
/// after the batch is repeated until it accounts for every accepted
/// connection or [`COUNTER_WAIT_MAX`] has passed (a late timer or kthread on
/// a loaded director).
const COUNTER_PERIOD: Duration = Duration::from_secs(2);
const COUNTER_SETTLE: Duration = COUNTER_PERIOD.saturating_add(Duration::from_millis(500));
const COUNTER_WAIT_MAX: Duration = Duration::from_secs(4 * 2);

fn find_service<'a>(
    t: &'a [facts::SvcSnap],
    spec: &ClusterSpec,
    svc: &Service,
) -> Option<&'a facts::SvcSnap> {
    t.iter()
        .find(|s| s.addr == Some(vip_addr(spec, svc)) && s.protocol == svc.protocol.as_str())
}

/// Join a table's destinations with the file's real servers.
fn samples(
    spec: &ClusterSpec,
    svc: &Service,
    before: Option<&facts::SvcSnap>,
    after: Option<&facts::SvcSnap>,
) -> Vec<DestSample> {
    let conns = |s: Option<&facts::SvcSnap>, a: IpAddr, p: u16| {
        s.and_then(|s| s.dests.iter().find(|d| d.addr == a && d.port == p))
            .map(|d| (d.weight, d.conns))
    };
    let load = |s: Option<&facts::SvcSnap>, a: IpAddr, p: u16| {
        s.and_then(|s| s.dests.iter().find(|d| d.addr == a && d.port == p))
            .and_then(|d| d.load)
    };
    // The kernel's list order (the order the table lists them in); servers
    // not in the table last.
    let rank = |a: IpAddr, p: u16| {
        after
            .and_then(|s| s.dests.iter().position(|d| d.addr == a && d.port == p))
            .unwrap_or(usize::MAX)
    };
    let mut out: Vec<(usize, DestSample)> = spec
        .real_servers
        .iter()
        .map(|r| {
            let a = IpAddr::V4(r.address.addr());
            let p = r.port_for(svc);
            let b = conns(before, a, p);
            let af = conns(after, a, p);
            let d = DestSample {
                name: r.name.clone(),
                configured_weight: Some(r.weight),
                kernel_weight: af.map(|x| x.0),
                delta: match (b, af) {
                    (Some(b), Some(a)) => a.1.saturating_sub(b.1),
                    (None, Some(a)) => a.1,
                    _ => 0,
                },
                load_before: load(before, a, p),
                load_after: load(after, a, p),
            };
            (rank(a, p), d)
        })
        .collect();
    if let Some(after) = after {
        for d in &after.dests {
            let known = spec
                .real_servers
                .iter()
                .any(|r| IpAddr::V4(r.address.addr()) == d.addr && r.port_for(svc) == d.port);
            if !known {
                let b = conns(before, d.addr, d.port).map_or(0, |x| x.1);
                out.push((
                    rank(d.addr, d.port),
                    DestSample {
                        name: format!("{}:{}", d.addr, d.port),
                        configured_weight: None,
                        kernel_weight: Some(d.weight),
                        delta: d.conns.saturating_sub(b),
                        load_before: load(before, d.addr, d.port),
                        load_after: d.load,
                    },
                ));
            }
        }
    }
    // Stable: servers not in the table keep the file's order.
    out.sort_by_key(|(r, _)| *r);
    out.into_iter().map(|(_, d)| d).collect()
}

// ------------------------------------------------------------ checks

async fn check_static(cx: &Ctx<'_>) -> Vec<DirectorFacts> {
    let spec = cx.spec;
    let dirs = cx.director_facts().await;
    cx.add(CheckRow::from_verdict(
        "vip-holder",
        &spec.vip.to_string(),
        analysis::check_vip_holder(spec, &dirs),
    ));
    let rs_futs = spec.real_servers.iter().map(|r| async move {
        match cx.sh(&r.name, &rs_facts_command()).await {
            Ok(out) => parse_rs_facts(&r.name, &out),
            Err(e) => RealServerFacts {
                name: r.name.clone(),
                error: Some(e),
                ..Default::default()
            },
        }
    });
    for f in futures::future::join_all(rs_futs).await {
        cx.add(CheckRow::from_verdict(
            "real-server",
            &f.name,
            analysis::check_real_server(spec, &f),
        ));
    }
    for svc in &spec.services {
        let label = svc.label(spec.vip);
        let kind = probe_kind(svc);
        let b = probe::batch(vip_addr(spec, svc), &kind, 10, PROBE_TIMEOUT).await;
        cx.traffic_sent();
        let mut row = CheckRow::from_verdict(
            "reachability",
            &label,
            analysis::check_answers(
                &label,
                b.sent,
                b.ok,
                kind.describe(),
                b.first_error.as_deref(),
            ),
        )
        .figure("answered", u64::from(b.ok));
        if !b.replies.is_empty() {
            row.measured.push_str(&format!(
                "; replies: {}",
                analysis::describe_replies(&b.replies)
            ));
        }
        cx.add(row);
    }
    dirs
}

async fn check_scheduling(cx: &Ctx<'_>, active: Option<&str>) {
    let spec = cx.spec;
    for svc in spec.services.iter() {
        let label = svc.label(spec.vip);
        let Some(active) = active else {
            cx.add(CheckRow::skipped(
                "scheduling",
                &label,
                "no single active director (see vip-holder)",
            ));
            continue;
        };
        let weights: Vec<u32> = spec.real_servers.iter().map(|r| r.weight).collect();
        let n = cx
            .opts
            .batch
            .unwrap_or_else(|| analysis::batch_size(&svc.scheduler, &weights));
        // Counters that already include every earlier connection (the
        // reachability batch, the previous service's batch).
        cx.counters_settled().await;
        let before = match cx.table(active).await {
            Ok(t) => t,
            Err(e) => {
                cx.add(CheckRow::from_verdict(
                    "scheduling",
                    &label,
                    analysis::Verdict::failed(
                        "read the active director's IPVS counters",
                        format!("cannot read the IPVS table of {active}: {e}"),
                    ),
                ));
                continue;
            }
        };
        let kind = probe_kind(svc);
        // Client ports the director still has an entry for would not be
        // counted as new connections (see probe::batch_avoiding). UDP the
        // same: a datagram from a port with an entry (300 s by default)
        // follows it; each new port is a new entry, scheduled and counted.
        let avoid = cx
            .sh(
                active,
                &facts::conn_ports_command(svc.protocol.as_str(), vip_addr(spec, svc)),
            )
            .await
            .map(|o| facts::parse_conn_ports(&o))
            .unwrap_or_default();
        let b = probe::batch_avoiding(vip_addr(spec, svc), &kind, n, PROBE_TIMEOUT, &avoid).await;
        cx.traffic_sent();
        let t_batch = Instant::now();
        let sb = find_service(&before, spec, svc);
        // Read again until the counters account for the batch (see COUNTER_PERIOD).
        let mut after;
        loop {
            sleep_ms(if t_batch.elapsed() < COUNTER_SETTLE {
                u64::try_from(COUNTER_SETTLE.as_millis()).unwrap_or(2500)
            } else {
                500
            })
            .await;
            after = cx.table(active).await.unwrap_or_default();
            let counted: u64 = samples(spec, svc, sb, find_service(&after, spec, svc))
                .iter()
                .map(|d| d.delta)
                .sum();
            if counted >= u64::from(b.ok) || t_batch.elapsed() >= COUNTER_WAIT_MAX {
                break;
            }
        }
        let counters_ms = ms_since(t_batch);
        let sa = find_service(&after, spec, svc);
        let dests = samples(spec, svc, sb, sa);
        let counted: u64 = dests.iter().map(|d| d.delta).sum();
        let batch = Batch {
            scheduler: svc.scheduler.clone(),
            persistent: svc.persistence.is_some(),
            sent: b.sent,
            accepted: b.ok,
            one_source: true,
            dests,
        };
        let mut v = analysis::analyse_batch(&batch);
        if let (true, Some(e)) = (b.ok < b.sent, &b.first_error) {
            v.reasons.push(format!("the first failed connection: {e}"));
        }
        // UDP: the replies name the servers that answered; where they name
        // real servers they must agree with the counters.
        let agree = analysis::replies_vs_counters(&b.replies, &batch.dests);
        if let Some(reasons) = &agree {
            for r in reasons {
                v.fail_with(r.clone());
            }
        }
        if !b.replies.is_empty() {
            v.measured.push_str(&format!(
                "; replies: {}{}",
                analysis::describe_replies(&b.replies),
                match &agree {
                    Some(r) if r.is_empty() => " (agree with the counters)",
                    Some(_) => " (disagree with the counters)",
                    None => " (not server names: not compared)",
                }
            ));
        }
        if sa.is_none() {
            v.fail_with(format!(
                "the active director {active} has no virtual service {label}"
            ));
        } else if counted < u64::from(b.ok)
            && cx
                .sh(active, "cat /proc/sys/net/ipv4/vs/run_estimation")
                .await
                .is_ok_and(|o| o.trim() == "0")
        {
            v.reasons.push(format!(
                "net.ipv4.vs.run_estimation is 0 on {active}: the kernel does not update \
                 the IPVS connection counters verify reads (set it to 1)"
            ));
        }
        cx.add(
            CheckRow::from_verdict("scheduling", &label, v)
                .figure("sent", u64::from(b.sent))
                .figure("accepted", u64::from(b.ok))
                .figure("counted", counted)
                .figure("counters_read_after_ms", counters_ms),
        );
        let by_source = matches!(svc.scheduler.as_str(), "sh" | "mh")
            && svc.persistence.is_none()
            && cx.opts.sources.len() >= 2;
        if by_source {
            check_source_spread(cx, active, svc, &kind).await;
        } else if let Some(spread) = analysis::spread_verdict(&batch) {
            cx.add(CheckRow::from_verdict("scheduling-spread", &label, spread));
        }
    }
}

/// Connections per client address in the source-spread check: enough to
/// see that they all land on one server.
const PER_SOURCE: u32 = 4;

/// sh/mh with `--source`: a small batch from each client address, the
/// director's counters read after each, then [`analysis::analyse_source_spread`].
async fn check_source_spread(cx: &Ctx<'_>, active: &str, svc: &Service, kind: &ProbeKind) {
    let spec = cx.spec;
    let label = svc.label(spec.vip);
    let mut per_source = Vec::new();
    for src in &cx.opts.sources {
        cx.counters_settled().await;
        let Ok(before) = cx.table(active).await else {
            continue;
        };
        let b = probe::batch_from(vip_addr(spec, svc), kind, PER_SOURCE, PROBE_TIMEOUT, *src).await;
        cx.traffic_sent();
        let t = Instant::now();
        let sb = find_service(&before, spec, svc);
        let mut after;
        loop {
            sleep_ms(if t.elapsed() < COUNTER_SETTLE {
                u64::try_from(COUNTER_SETTLE.as_millis()).unwrap_or(2500)
            } else {
                500
            })
            .await;
            after = cx.table(active).await.unwrap_or_default();
            let counted: u64 = samples(spec, svc, sb, find_service(&after, spec, svc))
                .iter()
                .map(|d| d.delta)
                .sum();
            if counted >= u64::from(b.ok) || t.elapsed() >= COUNTER_WAIT_MAX {
                break;
            }
        }
        let got = samples(spec, svc, sb, find_service(&after, spec, svc))
            .into_iter()
            .map(|d| (d.name, d.delta))
            .collect();
        per_source.push((src.to_string(), got));
    }
    let s = analysis::SourceSpread {
        scheduler: svc.scheduler.clone(),
        servers: spec
            .real_servers
            .iter()
            .map(|r| (r.name.clone(), if r.drain { 0 } else { r.weight }))
            .collect(),
        per_source,
    };
    let sources = s.per_source.len() as u64;
    cx.add(
        CheckRow::from_verdict(
            "scheduling-spread",
            &label,
            analysis::analyse_source_spread(&s),
        )
        .figure("sources", sources),
    );
}

/// Connections held open across the planned-stop failover (connection sync).
const HELD_CONNECTIONS: u32 = 5;

async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

fn ms_since(t0: Instant) -> u64 {
    u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Poll the VIP holder until `want(holder)` or the deadline; returns the last holder.
async fn wait_holder(
    cx: &Ctx<'_>,
    deadline: Duration,
    want: impl Fn(Option<&str>) -> bool,
) -> (Option<String>, bool) {
    let end = Instant::now() + deadline;
    loop {
        let h = cx.vip_holder().await;
        if want(h.as_deref()) {
            return (h, true);
        }
        if Instant::now() >= end {
            return (h, false);
        }
        sleep_ms(200).await;
    }
}

/// Whether `director` holds the VIP (read over ssh; false when unreadable).
async fn holds_vip(cx: &Ctx<'_>, director: &str) -> bool {
    match cx.sh(director, "ip -j addr show").await {
        Ok(out) => facts::parse_ip_addr(&out)
            .map(|a| a.iter().any(|(_, x)| *x == cx.spec.vip))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// How a failover mode makes the master fail and recover: (fail, recover)
/// commands for its daemon's unit. Crash: SIGSTOP to every process of the
/// unit (the daemon stops sending adverts but keeps its addresses, like a
/// hung host), SIGCONT to resume it.
pub fn failover_commands(mode: FailoverMode, unit: &str) -> (String, String) {
    match mode {
        FailoverMode::PlannedStop => (
            format!("systemctl stop {unit}"),
            format!("systemctl start {unit}"),
        ),
        FailoverMode::Crash => (
            format!("systemctl kill --signal=SIGSTOP {unit}"),
            format!("systemctl kill --signal=SIGCONT {unit}"),
        ),
    }
}

async fn check_director_failover(cx: &Ctx<'_>, master: &str, svc: &Service, mode: FailoverMode) {
    let spec = cx.spec;
    let unit = director_unit(&spec.name);
    let Some(backup_d) = spec
        .directors_by_priority()
        .into_iter()
        .find(|d| d.name != master)
    else {
        return;
    };
    let backup = backup_d.name.clone();
    let backup_priority = backup_d.priority;
    let subject = format!("{master} → {backup} ({})", mode.as_str());
    let fail = |why: String| {
        CheckRow::from_verdict(
            "director-failover",
            &subject,
            analysis::Verdict::failed(
                format!(
                    "the backup takes over when the master fails ({})",
                    mode.as_str()
                ),
                why,
            ),
        )
    };
    for d in [master, backup.as_str()] {
        if let Err(e) = cx
            .sh(d, &format!("systemctl is-active --quiet {unit}"))
            .await
        {
            cx.add(fail(format!(
                "the director daemon {unit} is not active on {d}: {e}"
            )));
            return;
        }
    }
    let advert = spec.advert_interval;
    let advert_ms = u64::try_from(advert.as_millis()).unwrap_or(u64::MAX);
    let takeover_limit = advert * 3 + Duration::from_secs(10);
    let addr = vip_addr(spec, svc);
    let kind = probe_kind(svc);
    // Preemption puts the VIP on the higher priority of the two.
    let preferred = spec
        .directors_by_priority()
        .into_iter()
        .find(|d| d.name == master || d.name == backup)
        .map_or_else(|| master.to_string(), |d| d.name.clone());
    let (fail_cmd, recover_cmd) = failover_commands(mode, &unit);

    // Connections that must survive the failover when sync_daemon is on:
    // opened with their first data before it, finished after the takeover.
    let held = if mode == FailoverMode::PlannedStop && svc.protocol == Protocol::Tcp {
        let path = match &kind {
            ProbeKind::Http { path, .. } => path.clone(),
            _ => "/".to_string(),
        };
        let h = probe::hold(addr, &path, HELD_CONNECTIONS, PROBE_TIMEOUT).await;
        // The kernel's sync daemon sends its buffer at least every 2 s.
        sleep_ms(2500).await;
        Some(h)
    } else {
        None
    };

    // Make the master fail (undo recorded first).
    let undo_id = match cx
        .record_undo(
            master,
            &recover_cmd,
            &format!("{recover_cmd} on {master}"),
            &format!(
                "{unit} {} on {master}",
                match mode {
                    FailoverMode::PlannedStop => "stopped",
                    FailoverMode::Crash => "frozen (SIGSTOP)",
                }
            ),
        )
        .await
    {
        Ok(id) => id,
        Err(e) => {
            cx.add(fail(e));
            return;
        }
    };
    let t0 = Instant::now();
    let prober = Prober::start(addr, kind.clone(), t0, ProberLimits::default());
    // The same failover seen by a UDP service's datagrams too, when the
    // timeline above is a TCP one (its own row: UDP needs no handshake and
    // has its own IPVS entries).
    let also_udp = spec
        .services
        .iter()
        .find(|s| s.protocol == Protocol::Udp && svc.protocol != Protocol::Udp);
    let uprober = also_udp.map(|u| {
        Prober::start(
            vip_addr(spec, u),
            ProbeKind::Udp,
            t0,
            ProberLimits::default(),
        )
    });
    sleep_ms(200).await;
    let t_stop = ms_since(t0);
    if let Err(e) = cx.sh(master, &fail_cmd).await {
        let _ = prober.finish().await;
        if let Some(u) = uprober {
            let _ = u.finish().await;
        }
        // Whatever happened, put it back now.
        if cx.sh(master, &recover_cmd).await.is_ok() {
            cx.undone(undo_id).await;
        }
        cx.add(fail(format!("cannot {fail_cmd} on {master}: {e}")));
        return;
    }
    let (after_stop, takeover_ms) = match mode {
        FailoverMode::PlannedStop => {
            let (h, _) = wait_holder(cx, takeover_limit, |h| h == Some(backup.as_str())).await;
            (h, None)
        }
        // The frozen master keeps the VIP on its interface: wait for the
        // backup to add it.
        FailoverMode::Crash => {
            let end = Instant::now() + takeover_limit;
            let mut seen = None;
            loop {
                if holds_vip(cx, &backup).await {
                    seen = Some(ms_since(t0).saturating_sub(t_stop));
                    break;
                }
                if Instant::now() >= end {
                    break;
                }
                sleep_ms(200).await;
            }
            (seen.map(|_| backup.clone()), seen)
        }
    };
    // The daemon's own view, where its status command exists (best effort).
    let backup_state = cx
        .sh(
            &backup,
            &format!("{LVSUP_PATH}; lvsup director status --json"),
        )
        .await
        .ok()
        .and_then(|o| facts::parse_vrrp_state(&o));
    sleep_ms(1000).await;
    let since_stop = |t: Vec<analysis::ProbeResult>| -> Vec<analysis::ProbeResult> {
        t.into_iter()
            .filter(|p| p.at_ms >= t_stop)
            .map(|p| analysis::ProbeResult {
                at_ms: p.at_ms - t_stop,
                ok: p.ok,
            })
            .collect()
    };
    let outage = analysis::outage(&since_stop(prober.finish().await));
    let uoutage = match uprober {
        Some(u) => Some(analysis::outage(&since_stop(u.finish().await))),
        None => None,
    };
    // Before the master comes back: the held connections now run through
    // the backup.
    let sync_row = match held {
        Some(h) => {
            let outcomes = probe::complete(h, Duration::from_secs(3)).await;
            let c = analysis::ConnectionSync {
                sync_daemon: spec.sync_daemon,
                wanted: HELD_CONNECTIONS,
                outcomes,
            };
            let kept = c
                .outcomes
                .iter()
                .filter(|o| !matches!(o, analysis::HeldOutcome::Broken(_)))
                .count() as u64;
            let opened = c.outcomes.len() as u64;
            Some(
                CheckRow::from_verdict(
                    "connection-sync",
                    &format!("{} ({master} → {backup})", svc.label(spec.vip)),
                    analysis::analyse_connection_sync(&c),
                )
                .figure("kept", kept)
                .figure("opened", opened),
            )
        }
        None => None,
    };

    // Start (resume) it again and watch where the VIP goes.
    let t1 = Instant::now();
    let prober2 = Prober::start(addr, kind.clone(), t1, ProberLimits::default());
    let uprober2 = also_udp.map(|u| {
        Prober::start(
            vip_addr(spec, u),
            ProbeKind::Udp,
            t1,
            ProberLimits::default(),
        )
    });
    let start_res = cx.sh(master, &recover_cmd).await;
    if start_res.is_ok() {
        cx.undone(undo_id).await;
    }
    let h = &svc.health;
    let health_known = h.interval * h.rise.max(h.fall) + h.timeout;
    let after_start = match (spec.preempt, mode) {
        (true, _) => {
            wait_holder(
                cx,
                advert * 3 + health_known + Duration::from_secs(10),
                |x| x == Some(preferred.as_str()),
            )
            .await
            .0
        }
        (false, FailoverMode::PlannedStop) => {
            // Preempt off: the VIP must stay on the backup for a while.
            let window = advert * 3 + health_known + Duration::from_secs(2);
            let (h, moved) = wait_holder(cx, window, |x| x != Some(backup.as_str())).await;
            if moved { h } else { Some(backup.clone()) }
        }
        // A resumed master: one of the two ends up alone with the VIP.
        (false, FailoverMode::Crash) => {
            wait_holder(cx, advert * 3 + Duration::from_secs(10), |x| x.is_some())
                .await
                .0
        }
    };
    sleep_ms(500).await;
    let failback = analysis::outage(&prober2.finish().await);
    let ufailback = match uprober2 {
        Some(u) => Some(analysis::outage(&u.finish().await)),
        None => None,
    };
    let make_row = |subject: &str, outage: analysis::Outage, failback: analysis::Outage| {
        let mut v = analysis::analyse_director_failover(&DirectorFailover {
            mode,
            master: master.into(),
            backup: backup.clone(),
            holder_after_stop: after_stop.clone(),
            outage,
            takeover_ms,
            advert_ms,
            backup_priority,
            holder_after_start: after_start.clone(),
            preempt: spec.preempt,
            preferred: preferred.clone(),
            backup_state: backup_state.clone(),
            nat: spec.mode == crate::config::Mode::Nat,
        });
        if let Err(e) = &start_res {
            v.fail_with(format!("cannot {recover_cmd} on {master} again: {e}"));
        }
        let mut row = CheckRow::from_verdict("director-failover", subject, v)
            .figure("gap_ms", outage.longest_gap_ms)
            .figure("failed_probes", u64::from(outage.failed))
            .figure("probes", u64::from(outage.probes))
            .figure("failback_gap_ms", failback.longest_gap_ms)
            .figure("failback_failed_probes", u64::from(failback.failed));
        if let Some(t) = takeover_ms {
            row = row.figure("takeover_ms", t);
        }
        if mode == FailoverMode::Crash {
            row = row.figure(
                "gap_limit_ms",
                analysis::crash_gap_limit_ms(advert_ms, backup_priority),
            );
        }
        row.measured
            .push_str(&format!("; failback {}", failback.describe()));
        row
    };
    let mut rows = vec![make_row(&subject, outage, failback)];
    if let (Some(u), Some(o), Some(f)) = (also_udp, uoutage, ufailback) {
        rows.push(make_row(
            &format!(
                "{master} → {backup} ({}, {})",
                mode.as_str(),
                u.label(spec.vip)
            ),
            o,
            f,
        ));
    }

    // The VIP left on the backup (preempt = false): hand it back so the
    // cluster is as verify found it (stop the backup's daemon until the
    // master holds the VIP, then start it again).
    if after_start.as_deref() == Some(backup.as_str()) && !spec.preempt {
        let start_cmd = format!("systemctl start {unit}");
        let id = cx
            .record_undo(
                &backup,
                &start_cmd,
                &format!("start {unit} on {backup}"),
                &format!("{unit} stopped on {backup} (to hand the VIP back to {master})"),
            )
            .await;
        let restored = match &id {
            Err(e) => {
                tracing::warn!("lvsup verify: {e}");
                false
            }
            Ok(_) => match cx.sh(&backup, &format!("systemctl stop {unit}")).await {
                Ok(_) => {
                    wait_holder(cx, takeover_limit, |x| x == Some(master))
                        .await
                        .1
                }
                Err(_) => false,
            },
        };
        let started = id.is_err() || cx.sh(&backup, &start_cmd).await.is_ok();
        if let (true, Ok(id)) = (started, id) {
            cx.undone(id).await;
        }
        for row in &mut rows {
            if !restored {
                row.result = report::Outcome::Fail;
                row.reasons.push(format!(
                    "could not hand the VIP back to {master} (preempt = false): it is on {backup} now"
                ));
            } else {
                row.measured
                    .push_str(&format!("; VIP handed back to {master}"));
            }
        }
    }
    rows.extend(sync_row);
    for row in rows {
        cx.add(row);
    }
}

async fn check_rs_failover(cx: &Ctx<'_>, active: &str, svc: &Service) {
    let spec = cx.spec;
    let table = cx.table(active).await.unwrap_or_default();
    let in_pool = |t: &[facts::SvcSnap], r: &crate::config::RealServer| {
        find_service(t, spec, svc).and_then(|s| {
            s.dests
                .iter()
                .find(|d| d.addr == IpAddr::V4(r.address.addr()) && d.port == r.port_for(svc))
                .map(|d| d.weight)
        })
    };
    let live: Vec<&crate::config::RealServer> = spec
        .real_servers
        .iter()
        .filter(|r| r.weight > 0 && in_pool(&table, r).unwrap_or(0) > 0)
        .collect();
    let Some(rs) = live.first().copied() else {
        cx.add(CheckRow::skipped(
            "real-server-failover",
            &svc.label(spec.vip),
            "no real server in the pool",
        ));
        return;
    };
    if live.len() < 2 {
        cx.add(CheckRow::skipped(
            "real-server-failover",
            &rs.name,
            "needs two real servers in the pool (the VIP must keep answering)",
        ));
        return;
    }
    // How to make it fail: prohibit routes to the directors' check sources.
    let (fail_cmd, recover_cmd, serving) = match (&cx.opts.rs_fail_cmd, &cx.opts.rs_recover_cmd) {
        (Some(f), Some(r)) => (f.clone(), r.clone(), false),
        _ => {
            let existing = cx
                .sh(&rs.name, "ip route show type prohibit")
                .await
                .unwrap_or_default();
            let srcs: Vec<Ipv4Addr> = spec
                .directors
                .iter()
                .flat_map(|d| [Some(d.address.addr()), d.internal_address.map(|i| i.addr())])
                .flatten()
                .filter(|a| {
                    !existing
                        .lines()
                        .any(|l| l.split_whitespace().nth(1) == Some(&a.to_string()))
                })
                .collect();
            if srcs.is_empty() {
                cx.add(CheckRow::skipped(
                    "real-server-failover",
                    &rs.name,
                    "the prohibit routes verify would add exist already; use --rs-fail-cmd",
                ));
                return;
            }
            let add: Vec<String> = srcs
                .iter()
                .map(|a| format!("ip route add prohibit {a}/32"))
                .collect();
            // Idempotent (it may be replayed by a later run, after a crash
            // before the routes were added): it fails only when a route stays.
            let del: Vec<String> = srcs
                .iter()
                .map(|a| format!("ip route del prohibit {a}/32 2>/dev/null"))
                .collect();
            let left: Vec<String> = srcs
                .iter()
                .map(|a| format!("ip route show type prohibit exact {a}/32"))
                .collect();
            let recover = format!("{}; [ -z \"$({})\" ]", del.join("; "), left.join("; "));
            (add.join(" && "), recover, true)
        }
    };
    let h = &svc.health;
    let out_limit = h.interval * (h.fall + 1) + h.timeout + Duration::from_secs(5);
    let back_limit = h.interval * (h.rise + 1) + h.timeout + Duration::from_secs(5);
    let undo_id = match cx
        .record_undo(
            &rs.name,
            &recover_cmd,
            &format!("recover {} ({recover_cmd})", rs.name),
            &format!("{} failing its health checks ({fail_cmd})", rs.name),
        )
        .await
    {
        Ok(id) => id,
        Err(e) => {
            cx.add(CheckRow::from_verdict(
                "real-server-failover",
                &rs.name,
                analysis::Verdict::failed("make one real server fail and recover it", e),
            ));
            return;
        }
    };
    let t0 = Instant::now();
    let prober = Prober::start(
        vip_addr(spec, svc),
        probe_kind(svc),
        t0,
        ProberLimits::default(),
    );
    sleep_ms(200).await;
    let t_fail = ms_since(t0);
    let mut errors = Vec::new();
    if let Err(e) = cx.sh(&rs.name, &fail_cmd).await {
        errors.push(format!("cannot make {} fail: {e}", rs.name));
    }
    let mut out_ms = None;
    while errors.is_empty() && ms_since(t0) - t_fail <= out_limit.as_millis() as u64 {
        if let Ok(t) = cx.table(active).await
            && in_pool(&t, rs).unwrap_or(0) == 0
        {
            out_ms = Some(ms_since(t0) - t_fail);
            break;
        }
        sleep_ms(250).await;
    }
    let t_rec = ms_since(t0);
    if let Err(e) = cx.sh(&rs.name, &recover_cmd).await {
        errors.push(format!("cannot recover {}: {e}", rs.name));
    } else {
        cx.undone(undo_id).await;
    }
    let mut back_ms = None;
    while ms_since(t0) - t_rec <= back_limit.as_millis() as u64 {
        if let Ok(t) = cx.table(active).await
            && in_pool(&t, rs) == Some(rs.weight)
        {
            back_ms = Some(ms_since(t0) - t_rec);
            break;
        }
        sleep_ms(250).await;
    }
    sleep_ms(500).await;
    let timeline = prober.finish().await;
    let out_at = out_ms.map(|o| o + t_fail);
    let failed_after_out = timeline
        .iter()
        .filter(|p| !p.ok && out_at.is_some_and(|o| p.at_ms >= o))
        .count();
    let outage = analysis::outage(&timeline);
    let mut v = analysis::analyse_rs_failover(&RealServerFailover {
        server: rs.name.clone(),
        out_ms,
        back_ms,
        out_limit_ms: out_limit.as_millis() as u64,
        back_limit_ms: back_limit.as_millis() as u64,
        outage,
        failed_after_out: u32::try_from(failed_after_out).unwrap_or(u32::MAX),
        serving_while_failed: serving,
    });
    if !errors.is_empty() {
        v.passed = false;
        v.reasons.splice(0..0, errors);
    }
    let mut row = CheckRow::from_verdict("real-server-failover", &rs.name, v)
        .figure("failed_probes", u64::from(outage.failed))
        .figure("probes", u64::from(outage.probes));
    if let Some(o) = out_ms {
        row = row.figure("out_ms", o);
    }
    if let Some(b) = back_ms {
        row = row.figure("back_ms", b);
    }
    cx.add(row);
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
