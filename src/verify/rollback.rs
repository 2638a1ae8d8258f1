//! The undo log of one verify run and the replay of records earlier runs left
//! on the hosts (their format: [`super::undo`]); Ctrl-C, SIGTERM, SIGHUP.

use super::*;

#[derive(Debug, Clone)]
pub(super) struct UndoStep {
    pub(super) id: u64,
    pub(super) host: String,
    pub(super) cmd: String,
    pub(super) what: String,
    /// Its record on `host` ([`undo`]), removed once the step has run.
    pub(super) record: Option<String>,
}

/// Steps that put the cluster back; replayed newest first. Verify also
/// writes each step to its host ([`Ctx::record_undo`]) so that a verify that
/// cannot replay it (SIGKILL, a lost connection) leaves it for the next
/// `verify`, `apply` or `destroy`.
#[derive(Clone, Default)]
pub struct UndoLog {
    pub(super) steps: Arc<Mutex<(u64, Vec<UndoStep>)>>,
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
pub(super) fn run_retrying(
    exec: &dyn HostExec,
    host: &str,
    cmd: &str,
) -> Result<ExecOutput, ExecError> {
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
pub(super) fn run_ok(exec: &dyn HostExec, host: &str, cmd: &str) -> Result<(), String> {
    match run_retrying(exec, host, cmd) {
        Ok(o) if o.success() => Ok(()),
        Ok(o) => Err(format!("exit {:?}: {}", o.code, o.stderr.trim())),
        Err(e) => Err(e.to_string()),
    }
}

pub(super) fn or_unknown(s: &str) -> String {
    if s.is_empty() { "unknown" } else { s }.to_string()
}

/// Whether a process `pid` other than this one runs on this machine (an
/// undo record's verify that still runs is left alone).
pub fn local_pid_alive(pid: u32) -> bool {
    pid != std::process::id() && std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// What replaying the records an interrupted verify left on hosts did.
#[derive(Debug, Default)]
pub(super) struct Replayed {
    /// `HOST: undid an interrupted verify from … by …: …`
    pub(super) undone: Vec<String>,
    /// Records that could not be replayed (the host is not whole).
    pub(super) failures: Vec<String>,
}

/// Find and replay the undo records an interrupted verify left on `host`
/// (`here`: this machine's name). A host whose records cannot be listed is
/// left to the checks (they report it unreachable; no retries here: an
/// unreachable host would only delay them).
pub(super) fn replay_host(
    exec: &dyn HostExec,
    spec: &ClusterSpec,
    here: &str,
    host: &str,
) -> Replayed {
    let mut r = Replayed::default();
    let listing = match exec.run(host, &crate::observe::verify_undo_list_command(&spec.name)) {
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
pub(super) fn replay_all(exec: &dyn HostExec, spec: &ClusterSpec, here: &str) -> Replayed {
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
pub(super) async fn interrupt() {
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
pub(super) struct UndoGuard {
    pub(super) log: UndoLog,
    pub(super) exec: Arc<dyn HostExec>,
}

impl Drop for UndoGuard {
    fn drop(&mut self) {
        for f in self.log.run_all(self.exec.as_ref()) {
            tracing::error!("lvsup verify: UNDO FAILED: {f}");
        }
    }
}
