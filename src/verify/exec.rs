//! Host access for verify: run a shell command on a named host as root.
//!
//! Kept behind [`HostExec`] so the SSH transport of `src/remote/` (openssh
//! crate) can take over at merge; [`SystemSsh`] shells out to the system
//! `ssh` meanwhile.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::config::ClusterSpec;

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
}

/// Run `cmd` (a shell command line) on `host` (a director or real server
/// name from the file) as root.
pub trait HostExec: Send + Sync {
    fn run(&self, host: &str, cmd: &str) -> Result<ExecOutput, ExecError>;
}

/// The system `ssh`: `ssh [-F CONFIG] [options] TARGET -- CMD`.
#[derive(Debug, Clone)]
pub struct SystemSsh {
    config: Option<PathBuf>,
    /// host name → ssh destination.
    targets: Vec<(String, String)>,
    opts: Vec<String>,
    sudo: bool,
}

impl SystemSsh {
    /// The lab's ssh_config when a lab is up for the cluster (its Host entries
    /// are the host names), else `ssh_config` given, else the file's `[ssh]`
    /// settings with `ssh_host` or the address as the destination.
    pub fn for_cluster(
        spec: &ClusterSpec,
        ssh_config: Option<PathBuf>,
        base_dir: &std::path::Path,
    ) -> Self {
        let lab = crate::lab::ssh_config_for(&spec.name);
        let names = spec
            .directors
            .iter()
            .map(|d| (d.name.clone(), d.ssh_host.clone(), d.address.addr()))
            .chain(
                spec.real_servers
                    .iter()
                    .map(|r| (r.name.clone(), r.ssh_host.clone(), r.address.addr())),
            );
        if let (None, Some(cfg)) = (&ssh_config, lab) {
            return SystemSsh {
                config: Some(cfg),
                targets: names.map(|(n, _, _)| (n.clone(), n)).collect(),
                opts: vec![],
                sudo: false,
            };
        }
        let s = &spec.ssh;
        let mut opts = vec!["-o".to_string(), "BatchMode=yes".to_string()];
        if let Some(u) = &s.user {
            opts.extend(["-l".into(), u.clone()]);
        }
        if let Some(p) = s.port {
            opts.extend(["-p".into(), p.to_string()]);
        }
        if let Some(i) = &s.identity_file {
            opts.extend(["-i".into(), base_dir.join(i).display().to_string()]);
        }
        if s.host_key_checking == crate::config::HostKeyChecking::AcceptNew {
            opts.extend(["-o".into(), "StrictHostKeyChecking=accept-new".into()]);
        }
        let config = ssh_config.or_else(|| s.config.as_ref().map(|c| base_dir.join(c)));
        SystemSsh {
            config,
            targets: names
                .map(|(n, h, a)| (n, h.unwrap_or_else(|| a.to_string())))
                .collect(),
            opts,
            sudo: s.become_sudo,
        }
    }

    pub fn describe(&self) -> String {
        match &self.config {
            Some(c) => format!("ssh -F {}", c.display()),
            None => "ssh".into(),
        }
    }
}

impl HostExec for SystemSsh {
    fn run(&self, host: &str, cmd: &str) -> Result<ExecOutput, ExecError> {
        let target = self
            .targets
            .iter()
            .find(|(n, _)| n == host)
            .map(|(_, t)| t.clone())
            .ok_or_else(|| ExecError::UnknownHost(host.into()))?;
        let mut c = Command::new("ssh");
        if let Some(cfg) = &self.config {
            c.arg("-F").arg(cfg);
        }
        c.args(&self.opts).arg(target).arg("--");
        if self.sudo {
            c.arg(format!("sudo -n sh -c {}", quote(cmd)));
        } else {
            c.arg(cmd);
        }
        let out = c.stdin(Stdio::null()).output()?;
        Ok(ExecOutput {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            code: out.status.code(),
        })
    }
}

/// Single-quote for a POSIX shell.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
