//! The live commands: `plan` (against the hosts), `apply`, `status`,
//! `destroy`. Observe (SSH, one facts round trip per host, in parallel) →
//! diff (pure, [`crate::plan`]) → steps (pure, [`steps`]) → run (SSH, hosts
//! in parallel within each apply group: real servers, then backup directors,
//! then the master; steps in order within a host, stopping at the first
//! failure; when a host of a group fails or cannot be reached, the later
//! groups are left out: [`run::Scheduler`]). The command line (`crate::cmd`)
//! loads the file, resolves the options, asks, prints and chooses exit codes;
//! this module returns plans and reports.

pub mod destroy;
pub mod elf;
pub mod lock;
pub mod run;
pub mod saved;
pub mod status;
pub mod steps;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::Semaphore;

use crate::config::{self, ClusterSpec};
use crate::desired::{self, DesiredCluster, HostState, Role};
use crate::observe::{self, Facts};
use crate::plan::{self, HostError, Plan};
use crate::remote::{Held, Hold, Host, SshOptions, Transport};
use crate::verify::undo;

/// How the live commands reach and work on the hosts (the command line's
/// `--ssh-config`, `--target`, `--parallel`, timeouts, resolved by `crate::cmd`).
#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub ssh: SshOptions,
    /// Only these hosts (empty: every host); names checked by [`check_targets`].
    pub targets: Vec<String>,
    /// How many hosts are worked on at once.
    pub parallel: usize,
    /// How long one step on one host may take.
    pub step_timeout: Duration,
    /// Take the cluster lock on every targeted host, right after connecting
    /// and before its facts are gathered (apply, destroy; not plan/status).
    pub lock: Option<LockRequest>,
    /// `Some(this machine's name)`: undo what an interrupted `lvsup verify`
    /// left on each host ([`crate::verify::undo`]) before anything else on
    /// it (apply, destroy); `plan` and `status` only show it.
    pub undo_interrupted_verify: Option<String>,
}

/// The cluster lock a live command takes ([`lock`]).
#[derive(Debug, Clone)]
pub struct LockRequest {
    /// Who takes it (written to `lock.owner`).
    pub owner: lock::Owner,
    /// How long to wait for a lock another session holds (`--lock-timeout`).
    pub wait_secs: u64,
    /// Remove the lock file when releasing (destroy: nothing of the cluster stays).
    pub remove: bool,
}

/// The step name of a host whose lock could not be taken.
pub const LOCK_STEP: &str = "take the cluster lock";

/// `--target NAME` that names no host of the cluster file.
#[derive(Debug, thiserror::Error)]
#[error(
    "--target {target}: no such host in {file}{hint}; its hosts: {hosts}",
    hint = .suggestion.as_ref().map(|s| format!(" (did you mean \"{s}\"?)")).unwrap_or_default()
)]
pub struct UnknownTarget {
    pub target: String,
    pub file: String,
    pub suggestion: Option<String>,
    pub hosts: String,
}

/// Every `targets` entry must name a director or real server of `spec`
/// (pure; `file` names the cluster file in the message).
pub fn check_targets(
    spec: &ClusterSpec,
    file: &Path,
    targets: &[String],
) -> Result<(), UnknownTarget> {
    let names: Vec<&str> = spec
        .directors
        .iter()
        .map(|d| d.name.as_str())
        .chain(spec.real_servers.iter().map(|r| r.name.as_str()))
        .collect();
    match targets.iter().find(|t| !names.contains(&t.as_str())) {
        None => Ok(()),
        Some(t) => Err(UnknownTarget {
            target: t.clone(),
            file: file.display().to_string(),
            suggestion: config::diag::suggest(t, &names).map(str::to_string),
            hosts: names.join(", "),
        }),
    }
}

/// The binary apply installs on directors.
#[derive(Debug, Clone)]
pub struct BinarySource {
    pub path: PathBuf,
    pub sha256: String,
    /// Set for the running binary: (arch, highest GLIBC_2.x symbol version it
    /// needs; `None` for a statically linked one, which needs no glibc).
    pub needs: Option<(String, Option<(u32, u32)>)>,
    pub explicit: bool,
    /// Size in bytes.
    pub size: usize,
    /// A debug build: the running lvsup built without `--release`, or a
    /// binary with DWARF sections (tens of MB to send to every director).
    pub debug: bool,
}

impl BinarySource {
    pub fn resolve(explicit: Option<&Path>) -> Result<BinarySource> {
        let (path, explicit) = match explicit {
            Some(p) => (p.to_path_buf(), true),
            None => (
                std::env::current_exe().context("finding the running lvsup binary")?,
                false,
            ),
        };
        let started = std::time::Instant::now();
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let read_ms = started.elapsed().as_millis();
        let source = BinarySource::from_bytes(path, &bytes, explicit);
        tracing::debug!(
            path = %source.path.display(),
            size = source.size,
            read_ms,
            hash_ms = started.elapsed().as_millis() - read_ms,
            "director binary read and hashed"
        );
        Ok(source)
    }

    /// What apply knows of the binary at `path` with content `bytes` (pure).
    pub fn from_bytes(path: PathBuf, bytes: &[u8], explicit: bool) -> BinarySource {
        let sha256 = crate::contract::sha256_hex(bytes);
        let elf = elf::inspect(bytes);
        // statically linked: no glibc needed on the director, whatever
        // GLIBC_2.x strings the linked-in libc carries
        let is_static = elf.is_some_and(|e| !e.interpreter);
        let needs = (!explicit).then(|| {
            let glibc = if is_static { None } else { max_glibc(bytes) };
            (std::env::consts::ARCH.to_string(), glibc)
        });
        let debug = (!explicit && cfg!(debug_assertions)) || elf.is_some_and(|e| e.debug_sections);
        BinarySource {
            path,
            sha256,
            needs,
            explicit,
            size: bytes.len(),
            debug,
        }
    }

    /// What to say before uploading this binary, if it is a debug build.
    pub fn upload_warning(&self) -> Option<String> {
        self.debug.then(|| {
            format!(
                "{} is a debug build ({} MB) and every director that needs it downloads it; \
                 a static, stripped release build is a few MB and runs on any x86_64 Linux: \
                 tools/build-release, then apply with \
                 --director-binary target/x86_64-unknown-linux-gnu/release/lvsup",
                self.path.display(),
                self.size.div_ceil(1_000_000)
            )
        })
    }

    /// Why this binary cannot run on a host with `facts`, if it cannot.
    pub fn incompatible(&self, f: &Facts) -> Option<String> {
        let (arch, glibc) = self.needs.as_ref()?;
        let ver = |s: &str| -> Option<(u32, u32)> {
            let (a, b) = s.split_once('.')?;
            Some((a.parse().ok()?, b.split('.').next()?.parse().ok()?))
        };
        let host_glibc = f.glibc.as_deref().and_then(ver);
        let problem = if f.os != "Linux" || &f.arch != arch {
            Some(format!("the host is {} {}", f.os, f.arch))
        } else {
            match (glibc, host_glibc) {
                (Some(need), Some(have)) if have < *need => Some(format!(
                    "it needs glibc ≥ {}.{}, the host has {}.{}",
                    need.0, need.1, have.0, have.1
                )),
                (Some(_), None) => Some("the host has no glibc".to_string()),
                _ => None,
            }
        };
        problem.map(|p| {
            format!(
                "the running lvsup ({} Linux, glibc) cannot run on this director: {p}; \
                 pass --director-binary PATH with a static build (tools/build-release)",
                arch
            )
        })
    }
}

/// The highest `GLIBC_2.N` symbol version named in an ELF binary.
/// (memchr's substring search: a byte-by-byte loop over a tens-of-MB debug
/// binary took seconds of every plan under the VM lab's emulation.)
pub fn max_glibc(bytes: &[u8]) -> Option<(u32, u32)> {
    let pat = b"GLIBC_2.";
    memchr::memmem::find_iter(bytes, pat)
        .filter_map(|i| {
            let digits: Vec<u8> = bytes[i + pat.len()..]
                .iter()
                .take(3)
                .take_while(|b| b.is_ascii_digit())
                .copied()
                .collect();
            let minor = std::str::from_utf8(&digits).ok()?.parse::<u32>().ok()?;
            Some((2, minor))
        })
        .max()
}

/// A host as the live commands see it after gathering facts.
pub struct LiveHost {
    pub want: HostState,
    pub conn: Option<Arc<Host>>,
    pub facts: Result<Facts, HostError>,
}

/// Everything a live command works with.
pub struct Live {
    pub spec: ClusterSpec,
    pub desired: DesiredCluster,
    pub transport: Arc<Transport>,
    /// In apply order, targeted hosts only.
    pub hosts: Vec<LiveHost>,
    pub parallel: Arc<Semaphore>,
    pub step_timeout: Duration,
    /// The locks held (host, lock), released by [`Live::close`].
    pub locks: Vec<(String, Held)>,
    /// Release words remove the lock file (destroy).
    pub remove_locks: bool,
    /// What taking the locks found worth telling: previous sessions that did
    /// not release theirs, waits.
    pub lock_notes: Vec<String>,
    /// What an interrupted `lvsup verify` had left and was undone first:
    /// `HOST: undid an interrupted verify from WHEN by WHO: WHAT`.
    pub verify_undone: Vec<String>,
}

impl Live {
    /// Hosts whose lock is held by another session: their errors.
    pub fn lock_errors(&self) -> Vec<&HostError> {
        self.hosts
            .iter()
            .filter_map(|h| h.facts.as_ref().err())
            .filter(|e| e.step == LOCK_STEP)
            .collect()
    }

    /// Release the locks (cleanly: their owner files go), then close the connections.
    pub async fn close(self) {
        let word = lock::release_word(self.remove_locks);
        let mut tasks = tokio::task::JoinSet::new();
        for (host, held) in self.locks {
            tasks.spawn(async move {
                if let Err(e) = held.release(word, Duration::from_secs(30)).await {
                    tracing::warn!(host, "releasing the cluster lock: {e}");
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        // Every host's master connection at once: closing one runs `ssh -O
        // exit` (a process and a round trip), so one after the other their
        // cost grew with the number of hosts (not measured apart).
        let mut tasks = tokio::task::JoinSet::new();
        for h in self.hosts {
            if let Some(c) = h.conn.and_then(|c| Arc::try_unwrap(c).ok()) {
                tasks.spawn(c.close());
            }
        }
        while tasks.join_next().await.is_some() {}
    }
}

fn destination(o: &SshOptions, h: &HostState) -> String {
    if o.use_names {
        h.name.clone()
    } else {
        h.ssh_host.clone().unwrap_or_else(|| h.address.to_string())
    }
}

fn host_error(host: &str, step: &str, message: impl std::fmt::Display) -> HostError {
    HostError {
        host: host.to_string(),
        step: step.to_string(),
        message: message.to_string(),
    }
}

/// Parse a host's facts output and check its prerequisites (pure).
pub fn host_facts(
    spec: &ClusterSpec,
    want: &HostState,
    out: &[u8],
    local_sha: &str,
    binary: Option<&BinarySource>,
    check: bool,
) -> Result<Facts, HostError> {
    let mut f = observe::parse(spec, want, out, local_sha)
        .map_err(|e| host_error(&want.name, "gather facts", e))?;
    f.observed.verify_leftovers = verify_leftovers(&spec.name, &f.verify_undo);
    let mut problems = observe::prerequisites(spec, want, &f);
    if let (Some(b), Role::Director { .. }) = (binary, &want.role)
        && !f.observed.binary_current
        && let Some(p) = b.incompatible(&f)
    {
        problems.push(p);
    }
    if check && !problems.is_empty() {
        return Err(host_error(
            &want.name,
            "check prerequisites",
            problems.join("; "),
        ));
    }
    if check {
        let others = plan::shared::others(&spec.name, &f.observed.files);
        let iface_of = |a| f.interface_on_subnet_of(a).map(|i| i.name.clone());
        let conflicts = plan::shared::conflicts(spec, want, &others, &iface_of);
        if !conflicts.is_empty() {
            return Err(host_error(
                &want.name,
                plan::shared::CONFLICT_STEP,
                conflicts.join("; "),
            ));
        }
    }
    Ok(f)
}

/// The plan's drift lines for the undo records in a facts listing (pure):
/// path → what the interrupted verify left.
pub fn verify_leftovers(cluster: &str, listing: &str) -> BTreeMap<String, String> {
    undo::parse_listing(listing, cluster)
        .into_iter()
        .map(|l| {
            let what = match &l.record {
                Ok(r) => undo::drift_summary(r),
                Err(e) => format!(
                    "interrupted verify left an unreadable undo record {}: {e} (look at it and remove it)",
                    l.path
                ),
            };
            (l.path, what)
        })
        .collect()
}

/// The step name of a host error from replaying verify's undo records.
pub const UNDO_VERIFY_STEP: &str = "undo an interrupted verify";

/// Undo, on `conn` (host `host`), what an interrupted verify left (the
/// records in `listing`), newest first; `here`: this machine's name.
/// Returns what was undone, one message each, and Err with the first record
/// that is not undone (it stays on the host) and why: the host is not
/// worked on.
async fn undo_interrupted_verify(
    conn: &Host,
    cluster: &str,
    host: &str,
    listing: &str,
    here: &str,
    limit: Duration,
) -> (Vec<String>, Result<(), HostError>) {
    let mut left = undo::parse_listing(listing, cluster);
    undo::replay_order(&mut left);
    let mut done = Vec::new();
    for l in &left {
        let d = undo::decide(l, here, &crate::verify::local_pid_alive);
        if let Some(why) = undo::refusal(host, &d) {
            return (done, Err(host_error(host, UNDO_VERIFY_STEP, why)));
        }
        let undo::Decision::Undo(rec) = d else {
            continue;
        };
        if let Err(e) = conn.run_script(&rec.undo, limit).await {
            let e = host_error(
                host,
                UNDO_VERIFY_STEP,
                format!(
                    "{} (`{}`): {e}; {}",
                    rec.what,
                    rec.undo,
                    undo::kept_note(&l.path)
                ),
            );
            return (done, Err(e));
        }
        if let Err(e) = conn.run_script(&undo::remove_command(&l.path), limit).await {
            tracing::warn!(host, "removing the undone verify record {}: {e}", l.path);
        }
        done.push(undo::undone_message(host, &rec));
    }
    (done, Ok(()))
}

/// A host's connection (if one was made), facts (or why there are none),
/// its lock, what taking it found worth telling and what an interrupted
/// verify had left and was undone.
type Gathered = (
    Option<Arc<Host>>,
    Result<Facts, HostError>,
    Option<Held>,
    Vec<String>,
    Vec<String>,
);

/// Take `req`'s lock of `cluster` on `conn` (named `host`): the held lock and
/// notes, or why not.
async fn take_lock(
    conn: &Host,
    host: &str,
    cluster: &str,
    req: &LockRequest,
    limit: Duration,
) -> Result<(Held, Vec<String>), HostError> {
    let argv = lock::argv(cluster, req.wait_secs, &req.owner);
    let limit = limit + Duration::from_secs(req.wait_secs);
    let answer = conn
        .hold(
            &argv,
            // busy is complete only when the script ends: its owner lines follow
            |out| matches!(lock::parse_answer(out), Some(lock::Answer::Locked { .. })),
            limit,
        )
        .await
        .map_err(|e| host_error(host, LOCK_STEP, e))?;
    match answer {
        Hold::Running(held, out) => {
            let mut notes = Vec::new();
            if let Some(lock::Answer::Locked { waited, stale }) = lock::parse_answer(&out) {
                if waited {
                    notes.push(format!(
                        "{host}: waited for the cluster lock another session held"
                    ));
                }
                if let Some(prev) = stale {
                    notes.push(lock::stale_message(host, &prev));
                }
            }
            Ok((*held, notes))
        }
        Hold::Exited {
            stdout,
            stderr,
            code,
        } => Err(host_error(
            host,
            LOCK_STEP,
            match lock::parse_answer(&stdout) {
                Some(lock::Answer::Busy { holder }) => {
                    lock::busy_message(cluster, req.wait_secs, holder.as_ref())
                }
                _ => format!("exit status {code}: {stderr}"),
            },
        )),
    }
}

/// Render, connect to every targeted host in parallel and gather its
/// facts. `binary`: check director binary compatibility (apply and plan).
/// `check`: missing prerequisites make a host an error (plan, apply; not
/// status and destroy, which work on whatever is there).
pub async fn gather(
    spec: &ClusterSpec,
    file: &Path,
    opts: &LiveOptions,
    binary: Option<&BinarySource>,
    check: bool,
) -> Result<Live> {
    let spec = spec.clone();
    let desired = desired::desired_cluster(&spec)?;
    check_targets(&spec, file, &opts.targets)?;
    let transport =
        Arc::new(Transport::new(opts.ssh.clone()).context("creating the SSH control directory")?);
    let parallel = Arc::new(Semaphore::new(opts.parallel.max(1)));
    let step_timeout = opts.step_timeout.max(Duration::from_secs(1));
    let local_sha = binary.map(|b| b.sha256.clone()).unwrap_or_default();

    let wanted: Vec<HostState> = desired
        .hosts
        .iter()
        .filter(|h| opts.targets.is_empty() || opts.targets.contains(&h.name))
        .cloned()
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, want) in wanted.iter().enumerate() {
        let transport = transport.clone();
        let parallel = parallel.clone();
        let spec = spec.clone();
        let want = want.clone();
        let local_sha = local_sha.clone();
        let binary = binary.cloned();
        let lock_req = opts.lock.clone();
        let undo_verify = opts.undo_interrupted_verify.clone();
        tasks.spawn(async move {
            let _permit = parallel.acquire_owned().await;
            let dest = destination(transport.options(), &want);
            let conn = match transport.connect(&dest).await {
                Ok(c) => Arc::new(c),
                Err(e) => {
                    return (
                        i,
                        None,
                        Err(host_error(&want.name, "connect", format!("{dest}: {e}"))),
                        None,
                        vec![],
                        vec![],
                    );
                }
            };
            let (held, notes) = match &lock_req {
                None => (None, vec![]),
                Some(req) => {
                    match take_lock(&conn, &want.name, &spec.name, req, step_timeout).await {
                        Ok((h, n)) => (Some(h), n),
                        Err(e) => return (i, Some(conn), Err(e), None, vec![], vec![]),
                    }
                }
            };
            let script = observe::script(&spec, &want);
            let started = std::time::Instant::now();
            let mut out = match conn.run_script(&script, step_timeout).await {
                Ok(o) => o,
                Err(e) => {
                    return (
                        i,
                        Some(conn),
                        Err(host_error(&want.name, "gather facts", e)),
                        held,
                        notes,
                        vec![],
                    );
                }
            };
            // What an interrupted verify left goes first; then the facts
            // again, as the host is now.
            let mut undone = Vec::new();
            if let Some(here) = &undo_verify
                && let Ok(f) = observe::parse(&spec, &want, &out.stdout, &local_sha)
                && !f.verify_undo.trim().is_empty()
            {
                match undo_interrupted_verify(
                    &conn,
                    &spec.name,
                    &want.name,
                    &f.verify_undo,
                    here,
                    step_timeout,
                )
                .await
                {
                    (d, Ok(())) => undone = d,
                    (d, Err(e)) => return (i, Some(conn), Err(e), held, notes, d),
                }
                out = match conn.run_script(&script, step_timeout).await {
                    Ok(o) => o,
                    Err(e) => {
                        return (
                            i,
                            Some(conn),
                            Err(host_error(&want.name, "gather facts", e)),
                            held,
                            notes,
                            undone,
                        );
                    }
                };
            }
            tracing::debug!(
                host = want.name,
                ms = started.elapsed().as_millis(),
                bytes = out.stdout.len(),
                "facts gathered"
            );
            // Debugging and fixtures: LVSUP_FACTS_DUMP=DIR keeps each host's raw facts.
            if let Some(dir) = std::env::var_os("LVSUP_FACTS_DUMP") {
                let _ = std::fs::write(
                    Path::new(&dir).join(format!("{}.facts", want.name)),
                    &out.stdout,
                );
            }
            let f = host_facts(
                &spec,
                &want,
                &out.stdout,
                &local_sha,
                binary.as_ref(),
                check,
            );
            (i, Some(conn), f, held, notes, undone)
        });
    }
    let mut results: BTreeMap<usize, Gathered> = BTreeMap::new();
    while let Some(r) = tasks.join_next().await {
        let (i, conn, f, held, notes, undone) = r.context("a host task panicked")?;
        results.insert(i, (conn, f, held, notes, undone));
    }
    let mut locks = Vec::new();
    let mut lock_notes = Vec::new();
    let mut verify_undone = Vec::new();
    let hosts = wanted
        .into_iter()
        .enumerate()
        .map(|(i, want)| {
            let (conn, facts, held, notes, undone) = results.remove(&i).unwrap_or_else(|| {
                (
                    None,
                    Err(host_error(&want.name, "connect", "task lost")),
                    None,
                    vec![],
                    vec![],
                )
            });
            verify_undone.extend(undone);
            if let Some(h) = held {
                locks.push((want.name.clone(), h));
            }
            lock_notes.extend(notes);
            LiveHost { want, conn, facts }
        })
        .collect();
    Ok(Live {
        spec,
        desired,
        transport,
        hosts,
        parallel,
        step_timeout,
        locks,
        remove_locks: opts.lock.as_ref().is_some_and(|l| l.remove),
        lock_notes,
        verify_undone,
    })
}

/// The live plan of the gathered hosts: hosts with errors go to `errors`.
pub fn live_plan(live: &Live) -> Plan {
    let facts: Vec<(&str, &Result<Facts, HostError>)> = live
        .hosts
        .iter()
        .map(|h| (h.want.name.as_str(), &h.facts))
        .collect();
    plan_from_facts(&live.spec, &live.desired, &facts)
}

/// The plan for hosts with `facts` (pure: the golden tests call it on
/// recorded facts). Hosts not in `facts` are not planned; hosts whose facts
/// are an error are listed in `errors`.
pub fn plan_from_facts(
    spec: &ClusterSpec,
    desired: &DesiredCluster,
    facts: &[(&str, &Result<Facts, HostError>)],
) -> Plan {
    let obs: BTreeMap<&str, &plan::Observed> = facts
        .iter()
        .filter_map(|(n, f)| f.as_ref().ok().map(|f| (*n, &f.observed)))
        .collect();
    // "the interface on the VIP's subnet" becomes the one the host has
    let mut desired = desired.clone();
    for h in &mut desired.hosts {
        let Some((_, Ok(f))) = facts.iter().find(|(n, _)| *n == h.name) else {
            continue;
        };
        for a in &mut h.addresses {
            if let desired::Interface::HoldingSubnetOf(ip) = a.interface
                && let Some(i) = f.interface_on_subnet_of(ip)
            {
                a.interface = desired::Interface::Named(i.name.clone());
            }
        }
    }
    let desired = &desired;
    let mut p = plan::plan(spec, desired, |n| obs.get(n).copied(), false);
    p.hosts.retain(|h| obs.contains_key(h.host.as_str()));
    // errors in apply order, like the hosts
    p.errors = desired
        .hosts
        .iter()
        .filter_map(|h| {
            facts
                .iter()
                .find(|(n, _)| *n == h.name)
                .and_then(|(_, f)| f.as_ref().err().cloned())
        })
        .collect();
    p
}

/// What to say before the confirmation when the plan uploads a debug build
/// (tens of MB, and how to build the release one); `None` otherwise.
pub fn debug_upload_warning(binary: &BinarySource, p: &Plan) -> Option<String> {
    let uploads = p
        .hosts
        .iter()
        .flat_map(|h| &h.changes)
        .any(|c| matches!(c.item, crate::plan::Item::Binary { .. }));
    if uploads {
        binary.upload_warning()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_glibc_takes_the_highest_version_named() {
        let mut b =
            b"\x7fELF..GLIBC_2.2.5\0GLIBC_2.34\0xGLIBC_2.17\0GLIBC_PRIVATE\0GLIBC_2.".to_vec();
        assert_eq!(max_glibc(&b), Some((2, 34)));
        b.extend_from_slice(b"39\0");
        assert_eq!(max_glibc(&b), Some((2, 39)));
        assert_eq!(max_glibc(b"static musl binary"), None);
    }

    #[test]
    fn max_glibc_of_the_running_test_binary() {
        // This test binary is linked against the build machine's glibc.
        let exe = std::env::current_exe().expect("current exe");
        let bytes = std::fs::read(exe).expect("read");
        let (major, minor) = max_glibc(&bytes).expect("a GLIBC_2.x version");
        assert_eq!(major, 2);
        assert!(minor >= 2, "{minor}");
    }

    fn host(glibc: Option<&str>) -> Facts {
        Facts {
            os: "Linux".into(),
            arch: std::env::consts::ARCH.into(),
            glibc: glibc.map(String::from),
            ..Facts::default()
        }
    }

    #[test]
    fn a_static_binary_needs_no_glibc_on_the_director() {
        // static glibc carries GLIBC_2.x strings too: they must not count
        let mut bytes = elf::tests::elf64(false, &[".text"]);
        bytes.extend_from_slice(b"GLIBC_2.99\0");
        let b = BinarySource::from_bytes("lvsup".into(), &bytes, false);
        assert_eq!(b.needs, Some((std::env::consts::ARCH.to_string(), None)));
        assert_eq!(b.incompatible(&host(Some("2.17"))), None);
        assert_eq!(b.incompatible(&host(None)), None, "a musl host runs it too");
        // the same bytes dynamically linked need that glibc
        let mut bytes = elf::tests::elf64(true, &[".text"]);
        bytes.extend_from_slice(b"GLIBC_2.99\0");
        let b = BinarySource::from_bytes("lvsup".into(), &bytes, false);
        assert_eq!(
            b.needs,
            Some((std::env::consts::ARCH.to_string(), Some((2, 99))))
        );
        let why = b.incompatible(&host(Some("2.36"))).expect("incompatible");
        assert!(
            why.contains("glibc ≥ 2.99") && why.contains("tools/build-release"),
            "{why}"
        );
        assert!(b.incompatible(&host(None)).is_some());
    }

    #[test]
    fn a_debug_build_is_warned_about_with_how_to_build_the_release() {
        let debug = BinarySource::from_bytes(
            "/tmp/lvsup".into(),
            &elf::tests::elf64(true, &[".text", ".debug_info"]),
            true,
        );
        let w = debug.upload_warning().expect("a warning");
        assert!(w.starts_with("/tmp/lvsup is a debug build (1 MB)"), "{w}");
        assert!(w.contains("tools/build-release"), "{w}");
        let release = BinarySource::from_bytes(
            "/tmp/lvsup".into(),
            &elf::tests::elf64(false, &[".text"]),
            true,
        );
        assert_eq!(release.upload_warning(), None);
        // the running lvsup: its build profile decides
        let running =
            BinarySource::from_bytes("lvsup".into(), &elf::tests::elf64(false, &[".text"]), false);
        assert_eq!(running.debug, cfg!(debug_assertions));
    }
}
