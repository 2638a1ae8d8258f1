//! `[cluster] notify` hooks: the core says which program to run
//! ([`Action::RunHook`](crate::director::core::Action::RunHook)); here they
//! run through [`crate::director::exec`] (no capabilities, no inherited
//! descriptors, minimal environment), one at a time in the order of the
//! state changes, in a task of their own so the VRRP loop never waits for
//! one. What a program prints is logged.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::contract::status::{self, HookRecord, MAX_HOOKS};
use crate::director::core::Hook;
use crate::director::exec;

/// How long one hook may run before its process group is killed.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// Hooks waiting to run at most; more (a flapping link) are dropped and logged.
const QUEUE: usize = 16;

struct Job {
    hook: Hook,
    argv: Vec<String>,
    env: Vec<(String, String)>,
}

pub(super) struct Hooks {
    tx: Option<mpsc::Sender<Job>>,
    task: Option<JoinHandle<()>>,
    /// The last runs, for status (most recent last).
    pub(super) runs: Runs,
}

pub(super) type Runs = Arc<Mutex<VecDeque<HookRecord>>>;

impl Hooks {
    /// The runner task; it ends when [`Hooks::finish`] closes the queue.
    pub(super) fn start() -> Hooks {
        let (tx, mut rx) = mpsc::channel::<Job>(QUEUE);
        let runs: Runs = Arc::default();
        let record = runs.clone();
        let task = tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                let r = run_one(job).await;
                if let Ok(mut v) = record.lock() {
                    if v.len() >= MAX_HOOKS {
                        v.pop_front();
                    }
                    v.push_back(r);
                }
            }
        });
        Hooks {
            tx: Some(tx),
            task: Some(task),
            runs,
        }
    }

    /// Queue `argv` for `hook`; `env` comes on top of `PATH`.
    pub(super) fn run(&self, hook: Hook, argv: Vec<String>, env: Vec<(String, String)>) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send(Job { hook, argv, env }).is_err() {
            warn!(
                hook = hook.as_str(),
                "notify hook not run: {QUEUE} hooks are already waiting"
            );
        }
    }

    /// Let the queued hooks finish (the `stop` hook is usually last), at most
    /// `within`: the unit's stop timeout is short.
    pub(super) async fn finish(&mut self, within: Duration) {
        self.tx = None;
        if let Some(task) = self.task.take()
            && tokio::time::timeout(within, task).await.is_err()
        {
            warn!("notify hooks still running at exit: left to systemd's stop");
        }
    }
}

async fn run_one(job: Job) -> HookRecord {
    let hook = job.hook.as_str();
    let program = job.argv.first().cloned().unwrap_or_default();
    let o = exec::run(&job.argv, &job.env, HOOK_TIMEOUT).await;
    let took_ms = o.took.as_millis() as u64;
    let how = o.describe(HOOK_TIMEOUT);
    if o.success() {
        info!(hook, program = %program, took_ms, "notify hook: {how}");
    } else {
        warn!(hook, program = %program, took_ms, "notify hook failed: {how}");
    }
    for line in o.output.lines().filter(|l| !l.trim().is_empty()) {
        info!(hook, program = %program, "notify hook output: {line}");
    }
    HookRecord {
        at: status::timestamp(SystemTime::now()),
        hook: hook.to_string(),
        program,
        ok: o.success(),
        detail: how,
        duration_ms: took_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &std::path::Path, name: &str, body: &str) -> String {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let p = dir.join(name);
        // not written from this process: see write_test_script (ETXTBSY)
        crate::director::exec::write_test_script(&p, body).expect("write script");
        p.display().to_string()
    }

    /// Hooks run in the order queued, with their state in the environment,
    /// and every run is recorded for status; `finish` waits for them.
    #[tokio::test]
    async fn hooks_run_in_order_with_their_state_and_are_recorded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = script(
            dir.path(),
            "hook",
            r#"[ "$LVSUP_STATE" = "$1" ] || { echo "state $LVSUP_STATE, expected $1"; exit 1; }
sleep 0.2; echo "ran $1""#,
        );
        let env = |state: &str| vec![("LVSUP_STATE".to_string(), state.to_string())];
        let mut h = Hooks::start();
        h.run(
            Hook::Master,
            vec![s.clone(), "master".into()],
            env("master"),
        );
        // Wrong state in the environment: the program says so and fails.
        h.run(Hook::Fault, vec![s.clone(), "stop".into()], env("fault"));
        h.run(Hook::Stop, vec![s, "stop".into()], env("stop"));
        let runs = h.runs.clone();
        h.finish(Duration::from_secs(10)).await;
        let v: Vec<HookRecord> = runs.lock().expect("lock").iter().cloned().collect();
        let got: Vec<(&str, bool, &str)> = v
            .iter()
            .map(|r| (r.hook.as_str(), r.ok, r.detail.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("master", true, "exit 0"),
                ("fault", false, "exit 1"),
                ("stop", true, "exit 0")
            ]
        );
        // In order: each ended after the one before.
        assert!(v[0].at <= v[1].at && v[1].at <= v[2].at, "{v:?}");
        assert!(
            v.iter().filter(|r| r.ok).all(|r| r.duration_ms >= 200),
            "{v:?}"
        );
        // One at a time: the last ended a whole run (200 ms) after the first.
        let end = |r: &HookRecord| humantime::parse_rfc3339(&r.at).expect("timestamp");
        let gap = end(&v[2]).duration_since(end(&v[0])).expect("in order");
        assert!(gap >= Duration::from_millis(200), "{gap:?}");
        // Queued after finish: not run.
        h.run(Hook::Master, vec!["/bin/true".into()], vec![]);
        assert_eq!(runs.lock().expect("lock").len(), 3);
    }
}
