//! Host access for verify: run a shell command on a named host as root.
//!
//! [`HostExec`] is the seam (tests script it); [`RemoteExec`] is the real one:
//! the project's SSH transport ([`crate::remote`]: OpenSSH through the
//! `openssh` crate, one ControlMaster per host with commands multiplexed over
//! it, `[ssh]` of the cluster file, `--ssh-config`, a running lab's
//! ssh_config, `become = "sudo"`), the same way `apply` and `status` reach
//! the hosts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::ClusterSpec;
use crate::remote::{Host, RemoteError, SshOptions, Transport};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    /// Exit status of the remote command (None: killed / ssh did not report one).
    pub code: Option<i32>,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("no host \"{0}\" in the cluster file")]
    UnknownHost(String),
    #[error("cannot run ssh: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("{0}")]
    Remote(String),
}

/// Run `cmd` (a shell command line) on `host` (a director or real server
/// name from the file) as root.
pub trait HostExec: Send + Sync {
    fn run(&self, host: &str, cmd: &str) -> Result<ExecOutput, ExecError>;
}

/// Host name → SSH destination (the name itself with a lab's ssh_config,
/// else `ssh_host` or the address).
pub fn destinations(spec: &ClusterSpec, use_names: bool) -> Vec<(String, String)> {
    let dest = |name: &str, ssh_host: &Option<String>, addr: std::net::Ipv4Addr| {
        if use_names {
            name.to_string()
        } else {
            ssh_host.clone().unwrap_or_else(|| addr.to_string())
        }
    };
    spec.directors
        .iter()
        .map(|d| (d.name.clone(), dest(&d.name, &d.ssh_host, d.address.addr())))
        .chain(
            spec.real_servers
                .iter()
                .map(|r| (r.name.clone(), dest(&r.name, &r.ssh_host, r.address.addr()))),
        )
        .collect()
}

/// Longest a single verify command may take (a `systemctl stop` of a daemon
/// that hands over its addresses, on a slow lab VM, is the long one).
const COMMAND_LIMIT: Duration = Duration::from_secs(120);

/// [`HostExec`] over [`crate::remote::Transport`]. It owns a runtime of its
/// own (the command line builds it: multi-thread, 2 workers) because verify
/// calls [`HostExec::run`] from blocking threads (and from the undo log when
/// the checks' runtime is gone); one connection per host is made on first
/// use and closed when this is dropped.
pub struct RemoteExec {
    rt: tokio::runtime::Runtime,
    transport: Transport,
    targets: Vec<(String, String)>,
    hosts: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Host>>>>,
}

impl RemoteExec {
    pub fn new(
        spec: &ClusterSpec,
        opts: SshOptions,
        rt: tokio::runtime::Runtime,
    ) -> Result<RemoteExec, ExecError> {
        let targets = destinations(spec, opts.use_names);
        let transport = Transport::new(opts).map_err(|e| ExecError::Remote(e.to_string()))?;
        Ok(RemoteExec {
            rt,
            transport,
            targets,
            hosts: Mutex::default(),
        })
    }

    pub fn describe(&self) -> String {
        match &self.transport.options().config_file {
            Some(c) => format!("ssh -F {}", c.display()),
            None => "ssh".into(),
        }
    }
}

impl HostExec for RemoteExec {
    fn run(&self, host: &str, cmd: &str) -> Result<ExecOutput, ExecError> {
        let target = self
            .targets
            .iter()
            .find(|(n, _)| n == host)
            .map(|(_, t)| t.clone())
            .ok_or_else(|| ExecError::UnknownHost(host.into()))?;
        let cell = self
            .hosts
            .lock()
            .map_err(|_| ExecError::Remote("connection table poisoned".into()))?
            .entry(host.to_string())
            .or_default()
            .clone();
        let r = self.rt.block_on(async {
            let h = cell
                .get_or_try_init(|| self.transport.connect(&target))
                .await
                .map_err(|e| ExecError::Remote(format!("{target}: {e}")))?;
            match h.run_script(cmd, COMMAND_LIMIT).await {
                Ok(o) => Ok(ExecOutput {
                    stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
                    stderr: o.stderr,
                    code: Some(0),
                }),
                Err(RemoteError::Failed { code, stderr }) => Ok(ExecOutput {
                    stdout: String::new(),
                    stderr,
                    code: Some(code),
                }),
                Err(e) => Err(ExecError::Remote(e.to_string())),
            }
        });
        // ssh itself failed (a lost connection, a dead ControlMaster): the
        // next command to this host connects afresh (verify's undo retries).
        if r.is_err()
            && let Ok(mut m) = self.hosts.lock()
            && m.get(host).is_some_and(|c| Arc::ptr_eq(c, &cell))
        {
            m.remove(host);
        }
        r
    }
}

impl Drop for RemoteExec {
    fn drop(&mut self) {
        let cells: Vec<_> = self
            .hosts
            .lock()
            .map(|mut m| m.drain().map(|(_, c)| c).collect())
            .unwrap_or_default();
        // Closing needs the runtime; from inside another one it cannot block
        // (the masters then exit on their own after ControlPersist).
        if tokio::runtime::Handle::try_current().is_ok() {
            return;
        }
        for c in cells {
            if let Some(h) = Arc::try_unwrap(c).ok().and_then(|c| c.into_inner()) {
                self.rt.block_on(h.close());
            }
        }
    }
}
