//! SSH transport: the system's OpenSSH through the `openssh` crate (one
//! ControlMaster per host, commands multiplexed over it natively), so
//! `~/.ssh/config`, the agent and ProxyJump work as they do for `ssh`.
//!
//! Every remote step is a shell script sent on stdin to `sh -s` (or
//! `sudo -n sh -s` with `become = "sudo"`): one round trip, no quoting of
//! arguments through ssh's command line, and the same text an operator can
//! read in `--debug` output or run by hand.
//!
//! Host keys are checked strictly unless the cluster file opts into
//! `accept-new`. The control directory is a short `/tmp/lvsup-XXXXXX`
//! (socket paths must fit 108 bytes), removed when the [`Transport`] drops;
//! with `[ssh] control_persist` the masters are kept for the next run instead
//! ([`kept`]).

pub mod kept;

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;

use openssh::{ChildStdin, ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::{ClusterSpec, HostKeyChecking};
use crate::script::shell_quote;

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("cannot connect over SSH: {0}")]
    Connect(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("ssh: {0}")]
    Ssh(String),
    #[error("exit status {code}: {stderr}")]
    Failed { code: i32, stderr: String },
    #[error(
        "it printed more than {} MiB on {stream}, more than any lvsup step prints: \
         stopped reading and closed the channel (a broken or hostile host?)",
        limit >> 20
    )]
    TooMuchOutput { stream: &'static str, limit: usize },
    #[error("control directory: {0}")]
    Io(#[from] std::io::Error),
}

/// How to reach the hosts: from `[ssh]` of the cluster file, the CLI and the lab.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// Like `ssh -F`.
    pub config_file: Option<PathBuf>,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_file: Option<PathBuf>,
    pub host_key_checking: HostKeyChecking,
    /// Run scripts through `sudo -n`.
    pub become_sudo: bool,
    pub connect_timeout: Duration,
    /// Give ssh host names (the lab's ssh_config knows them) instead of addresses.
    pub use_names: bool,
    /// Keep the masters this long after the run for the next one (`[ssh]
    /// control_persist`); `None`: closed at the end of the run.
    pub control_persist: Option<Duration>,
}

impl SshOptions {
    /// From the cluster file; `cluster_dir` resolves a relative `[ssh] config`.
    pub fn from_spec(spec: &ClusterSpec, cluster_dir: &Path) -> SshOptions {
        SshOptions {
            config_file: spec.ssh.config.as_deref().map(|c| {
                let p = expand_tilde(c);
                if p.is_relative() {
                    cluster_dir.join(p)
                } else {
                    p
                }
            }),
            user: spec.ssh.user.clone(),
            port: spec.ssh.port,
            identity_file: spec.ssh.identity_file.as_deref().map(expand_tilde),
            host_key_checking: spec.ssh.host_key_checking,
            become_sudo: spec.ssh.become_sudo,
            connect_timeout: Duration::from_secs(20),
            use_names: false,
            control_persist: spec.ssh.control_persist,
        }
    }

    /// How the commands reach `spec`'s hosts: the file's `[ssh]`, replaced by
    /// `ssh_config` when given (`--ssh-config`), else by a running lab's
    /// ssh_config `lab` (whose Host entries are the host names). Pure.
    pub fn for_cluster(
        spec: &ClusterSpec,
        cluster_dir: &Path,
        ssh_config: Option<PathBuf>,
        lab: Option<PathBuf>,
    ) -> SshOptions {
        let mut o = SshOptions::from_spec(spec, cluster_dir);
        if let Some(c) = ssh_config {
            o.config_file = Some(c);
        } else if let Some(lab) = lab {
            o.config_file = Some(lab);
            o.user = None;
            o.port = None;
            o.identity_file = None;
            o.use_names = true;
        }
        o
    }
}

fn expand_tilde(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

/// The most a host's command may print on stdout: above the facts parser's
/// own bound on a host's facts (`observe::parse::MAX_OUTPUT_BYTES`, 64 MiB),
/// which then says what is wrong, with a margin. A host that prints more
/// (broken or hostile) must not exhaust the operator's memory.
pub const MAX_STDOUT_BYTES: usize = (64 << 20) + (1 << 20);

/// The most a host's command may print on stderr (error messages).
pub const MAX_STDERR_BYTES: usize = 1 << 20;

/// Read `r` to its end into `buf`, but no more than `limit` bytes:
/// `Err(TooMuchOutput)` as soon as it has more (the rest is not read).
pub async fn read_capped<R: tokio::io::AsyncRead + Unpin>(
    r: R,
    buf: &mut Vec<u8>,
    limit: usize,
    stream: &'static str,
) -> Result<(), RemoteError> {
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    r.take(cap).read_to_end(buf).await?;
    if buf.len() > limit {
        return Err(RemoteError::TooMuchOutput { stream, limit });
    }
    Ok(())
}

/// Where a run's masters live.
enum ControlDir {
    /// A short directory of this run's own, removed with the [`Transport`];
    /// its masters are closed at the end.
    Run(tempfile::TempDir),
    /// The kept-masters directory ([`kept`]): masters found there are
    /// reused, new ones recorded and left open for `persist`.
    Kept {
        dir: PathBuf,
        persist: Duration,
        /// The ssh_config's bytes, read once (part of every master's key).
        config: Vec<u8>,
    },
}

/// The control directory of a run's masters, and how to connect.
pub struct Transport {
    opts: SshOptions,
    control_dir: ControlDir,
}

impl Transport {
    pub fn new(opts: SshOptions) -> Result<Transport, RemoteError> {
        if let Some(persist) = opts.control_persist {
            let dir = kept::dir();
            match kept::prepare(&dir) {
                Ok(()) => {
                    kept::sweep(&dir, std::time::SystemTime::now());
                    let config = match &opts.config_file {
                        Some(c) => std::fs::read(c).unwrap_or_default(),
                        None => Vec::new(),
                    };
                    return Ok(Transport {
                        opts,
                        control_dir: ControlDir::Kept {
                            dir,
                            persist,
                            config,
                        },
                    });
                }
                // Never a socket from a place others can write: this run's
                // masters are its own, closed at the end.
                Err(why) => tracing::warn!(
                    "[ssh] control_persist: not keeping SSH connections, {why} (remove it, or \
                     fix its owner and mode 700)"
                ),
            }
        }
        // /tmp/lvsup-XXXXXX/.ssh-connectionXXXXXX/master: well under 108 bytes.
        let control_dir = tempfile::Builder::new()
            .prefix("lvsup-")
            .tempdir_in("/tmp")?;
        Ok(Transport {
            opts,
            control_dir: ControlDir::Run(control_dir),
        })
    }

    pub fn options(&self) -> &SshOptions {
        &self.opts
    }

    /// Open the master connection to `destination` (host name or address),
    /// or reuse the one an earlier run kept.
    pub async fn connect(&self, destination: &str) -> Result<Host, RemoteError> {
        let (dir, persist, key) = match &self.control_dir {
            ControlDir::Run(d) => (d.path(), None, None),
            ControlDir::Kept {
                dir,
                persist,
                config,
            } => (
                dir.as_path(),
                Some(*persist),
                Some(kept::key(&self.opts, config, destination)),
            ),
        };
        if let Some(key) = &key
            && let Some(host) = self.reuse(dir, key, destination).await
        {
            return Ok(host);
        }
        let mut b = SessionBuilder::default();
        b.control_directory(dir)
            .known_hosts_check(match self.opts.host_key_checking {
                HostKeyChecking::Strict => KnownHosts::Strict,
                HostKeyChecking::AcceptNew => KnownHosts::Add,
            })
            .connect_timeout(self.opts.connect_timeout)
            .server_alive_interval(Duration::from_secs(10))
            // A master we could not close (a killed lvsup) goes away on its own,
            // but only after an hour: a director's master sits idle while the real
            // servers and the other directors are applied (a 120 s limit killed
            // it mid-apply in the VM lab, where every step is slow). A kept one
            // goes after `persist` idle; this run's pin keeps it open meanwhile.
            .control_persist(ControlPersist::IdleFor(
                std::num::NonZeroUsize::new(persist.map_or(3600, kept::persist_secs))
                    .unwrap_or(std::num::NonZeroUsize::MIN),
            ));
        if let Some(c) = &self.opts.config_file {
            b.config_file(c);
        }
        if let Some(u) = &self.opts.user {
            b.user(u.clone());
        }
        if let Some(p) = self.opts.port {
            b.port(p);
        }
        if let Some(k) = &self.opts.identity_file {
            b.keyfile(k);
        }
        // One more second than ssh's own ConnectTimeout: ssh reports first.
        let limit = self.opts.connect_timeout + Duration::from_secs(5);
        tracing::debug!(
            destination,
            config = ?self.opts.config_file,
            user = ?self.opts.user,
            port = ?self.opts.port,
            "ssh: connecting"
        );
        let session = tokio::time::timeout(limit, b.connect_mux(destination))
            .await
            .map_err(|_| RemoteError::Timeout(limit))?
            .map_err(|e| RemoteError::Connect(error_chain(&e)))
            .inspect_err(|e| tracing::debug!(destination, "ssh: {e}"))?;
        tracing::debug!(destination, "ssh: connected");
        let pin = match &key {
            Some(key) => {
                if let Err(e) = kept::record(dir, key, session.control_socket()) {
                    tracing::warn!(destination, "ssh: cannot record the kept connection: {e}");
                }
                pin(session.control_socket()).await
            }
            None => None,
        };
        Ok(Host {
            session: Arc::new(session),
            become_sudo: self.opts.become_sudo,
            pin,
        })
    }

    /// The master an earlier run kept for `key`, if it still answers; a
    /// dead one is forgotten.
    async fn reuse(&self, dir: &Path, key: &str, destination: &str) -> Option<Host> {
        let (ctl, log) = kept::lookup(dir, key)?;
        if !ctl.exists() {
            kept::forget(dir, key);
            return None;
        }
        let session = Session::resume_mux(ctl.into_boxed_path(), Some(log.into_boxed_path()));
        // The pin first: it holds the master from here on (an idle one could
        // reach its ControlPersist end between the check and the first command).
        let pin = pin(session.control_socket()).await;
        let alive = pin.is_some()
            && matches!(
                tokio::time::timeout(Duration::from_secs(5), session.check()).await,
                Ok(Ok(()))
            );
        if !alive {
            tracing::debug!(destination, "ssh: the kept connection does not answer");
            kept::forget(dir, key);
            return None;
        }
        tracing::debug!(
            destination,
            "ssh: reusing the connection an earlier run kept"
        );
        Some(Host {
            session: Arc::new(session),
            become_sudo: self.opts.become_sudo,
            pin,
        })
    }
}

/// A connection to the master's control socket, held for the run: OpenSSH
/// counts every open multiplexing client as activity, so a kept master's
/// `ControlPersist` clock does not run while this run may still need it
/// (a director's connection sits idle while the real servers are applied).
/// Closed with the [`Host`], or by the kernel when this lvsup exits however
/// it exits; the clock starts then.
async fn pin(ctl: &Path) -> Option<tokio::net::UnixStream> {
    tokio::net::UnixStream::connect(ctl)
        .await
        .inspect_err(|e| tracing::debug!("ssh: pinning {}: {e}", ctl.display()))
        .ok()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(t.trim());
        }
        cur = c.source();
    }
    s
}

/// One connected host.
pub struct Host {
    /// Shared with the processes [`Host::hold`] keeps running.
    session: Arc<Session>,
    become_sudo: bool,
    /// Kept masters: the run's hold on it ([`pin`]).
    pin: Option<tokio::net::UnixStream>,
}

/// What a script printed.
#[derive(Debug, Clone)]
pub struct ScriptOutput {
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Host {
    /// Run `script` with `sh -s` (privileged via `sudo -n` when configured),
    /// `input` following the script on stdin is not supported: use
    /// [`Host::run_with_stdin`] for data. Fails on a non-zero exit status.
    pub async fn run_script(
        &self,
        script: &str,
        limit: Duration,
    ) -> Result<ScriptOutput, RemoteError> {
        self.run(&["sh", "-s"], script.as_bytes(), limit).await
    }

    /// [`Host::run_script`], and what the script printed on stderr until it
    /// ended, failed or timed out (a batch's progress markers survive a
    /// timeout or a lost connection this way).
    pub async fn run_script_partial(
        &self,
        script: &str,
        limit: Duration,
    ) -> (Result<ScriptOutput, RemoteError>, String) {
        self.run_partial(&["sh", "-s"], script.as_bytes(), limit)
            .await
    }

    /// Run `sh -c SCRIPT` with `data` on its stdin (uploads).
    pub async fn run_with_stdin(
        &self,
        script: &str,
        data: &[u8],
        limit: Duration,
    ) -> Result<ScriptOutput, RemoteError> {
        self.run(&["sh", "-c", &shell_quote(script)], data, limit)
            .await
    }

    async fn run(
        &self,
        argv: &[&str],
        stdin: &[u8],
        limit: Duration,
    ) -> Result<ScriptOutput, RemoteError> {
        self.run_partial(argv, stdin, limit).await.0
    }

    /// Run `argv` with `stdin`; the result, and the stderr read so far (all
    /// of it unless the limit cut the run short).
    async fn run_partial(
        &self,
        argv: &[&str],
        stdin: &[u8],
        limit: Duration,
    ) -> (Result<ScriptOutput, RemoteError>, String) {
        tracing::debug!(
            argv = argv.join(" "),
            stdin_bytes = stdin.len(),
            sudo = self.become_sudo,
            "ssh: run"
        );
        // Scripts, not uploads (a director binary is tens of MB).
        if let Ok(script) = std::str::from_utf8(stdin)
            && stdin.len() <= 64 * 1024
        {
            tracing::trace!("ssh: script:\n{script}");
        }
        let mut out_buf = Vec::new();
        let mut err_buf = Vec::new();
        let fut = async {
            let mut cmd = if self.become_sudo {
                let mut c = self.session.raw_command("sudo");
                c.raw_arg("-n");
                c.raw_args(argv);
                c
            } else {
                let mut c = self.session.raw_command(argv[0]);
                c.raw_args(&argv[1..]);
                c
            };
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = cmd
                .spawn()
                .await
                .map_err(|e| RemoteError::Ssh(error_chain(&e)))?;
            if let Some(mut input) = child.stdin().take() {
                input.write_all(stdin).await?;
                input.shutdown().await?;
                drop(input);
            }
            let mut so = child
                .stdout()
                .take()
                .ok_or_else(|| RemoteError::Ssh("no stdout".into()))?;
            let mut se = child
                .stderr()
                .take()
                .ok_or_else(|| RemoteError::Ssh("no stderr".into()))?;
            // host output is untrusted: bounded, and the first stream over
            // its bound ends the run (the child and its pipes are dropped,
            // which closes the channel)
            tokio::try_join!(
                read_capped(&mut so, &mut out_buf, MAX_STDOUT_BYTES, "stdout"),
                read_capped(&mut se, &mut err_buf, MAX_STDERR_BYTES, "stderr"),
            )?;
            child
                .wait()
                .await
                .map_err(|e| RemoteError::Ssh(error_chain(&e)))
        };
        let r = tokio::time::timeout(limit, fut).await;
        let stderr = String::from_utf8_lossy(&err_buf).trim().to_string();
        let r = match r {
            Err(_) => Err(RemoteError::Timeout(limit)),
            Ok(Err(e)) => Err(e),
            Ok(Ok(status)) if !status.success() => Err(RemoteError::Failed {
                code: status.code().unwrap_or(-1),
                stderr: if stderr.is_empty() {
                    "(no message)".into()
                } else {
                    stderr.clone()
                },
            }),
            Ok(Ok(_)) => Ok(ScriptOutput {
                stdout: out_buf,
                stderr: stderr.clone(),
            }),
        };
        (r, stderr)
    }

    /// Start `argv` (quoted words, through `sudo -n` when configured) and
    /// keep it running: read its stdout until `ready` says it is complete
    /// (then the process goes on, held by the returned [`Held`] until
    /// [`Held::release`], or until this lvsup or its SSH connection ends),
    /// or until it exits. `limit` bounds the wait for either.
    pub async fn hold(
        &self,
        argv: &[String],
        ready: impl Fn(&str) -> bool,
        limit: Duration,
    ) -> Result<Hold, RemoteError> {
        let mut cmd = if self.become_sudo {
            let mut c = Session::to_raw_command(self.session.clone(), "sudo");
            c.raw_arg("-n");
            c.raw_args(argv);
            c
        } else {
            let mut c = Session::to_raw_command(self.session.clone(), &argv[0]);
            c.raw_args(&argv[1..]);
            c
        };
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        tracing::debug!(argv = argv.join(" "), "ssh: hold");
        let fut = async {
            let mut child = cmd
                .spawn()
                .await
                .map_err(|e| RemoteError::Ssh(error_chain(&e)))?;
            let mut out = child
                .stdout()
                .take()
                .ok_or_else(|| RemoteError::Ssh("no stdout".into()))?;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = out.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                // host output is untrusted: a flood is an error, not memory
                if buf.len() > 64 * 1024 {
                    return Err(RemoteError::Ssh("too much output".into()));
                }
                let text = String::from_utf8_lossy(&buf);
                if ready(&text) {
                    let stdin = child.stdin().take();
                    return Ok(Hold::Running(
                        Box::new(Held { child, stdin }),
                        text.into_owned(),
                    ));
                }
            }
            let stdout = String::from_utf8_lossy(&buf).into_owned();
            let mut err_buf = Vec::new();
            if let Some(mut se) = child.stderr().take() {
                read_capped(&mut se, &mut err_buf, MAX_STDERR_BYTES, "stderr").await?;
            }
            let status = child
                .wait()
                .await
                .map_err(|e| RemoteError::Ssh(error_chain(&e)))?;
            Ok(Hold::Exited {
                code: status.code().unwrap_or(-1),
                stdout,
                stderr: String::from_utf8_lossy(&err_buf).trim().to_string(),
            })
        };
        tokio::time::timeout(limit, fut)
            .await
            .map_err(|_| RemoteError::Timeout(limit))?
    }

    pub async fn close(self) {
        // processes still held keep the session; they end with this lvsup
        let Ok(s) = Arc::try_unwrap(self.session) else {
            return;
        };
        if self.pin.is_some() {
            // kept for the next run: left running, its idle clock starts
            // when the pin closes (here)
            let _ = s.detach();
        } else {
            let _ = s.close().await;
        }
    }
}

/// What [`Host::hold`] got.
pub enum Hold {
    /// The process said it is ready and goes on running.
    Running(Box<Held>, String),
    /// The process ended before it was ready.
    Exited {
        code: i32,
        stdout: String,
        stderr: String,
    },
}

/// A remote process kept running (a lock held): it ends when
/// [`Held::release`] writes its last word and closes its stdin, or when the
/// SSH channel goes (this lvsup exits or is killed).
pub struct Held {
    child: openssh::Child<Arc<Session>>,
    stdin: Option<ChildStdin>,
}

impl Held {
    /// Write `word` to the process's stdin, close it and wait (up to
    /// `limit`) for the process to end.
    pub async fn release(mut self, word: &str, limit: Duration) -> Result<(), RemoteError> {
        let fut = async {
            if let Some(mut input) = self.stdin.take() {
                input.write_all(word.as_bytes()).await?;
                input.shutdown().await?;
            }
            let status = self
                .child
                .wait()
                .await
                .map_err(|e| RemoteError::Ssh(error_chain(&e)))?;
            if status.success() {
                Ok(())
            } else {
                Err(RemoteError::Failed {
                    code: status.code().unwrap_or(-1),
                    stderr: "(releasing)".into(),
                })
            }
        };
        tokio::time::timeout(limit, fut)
            .await
            .map_err(|_| RemoteError::Timeout(limit))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host that never stops printing (`yes`): reading ends at the bound
    /// with an error, holding no more than the bound (before, `read_to_end`
    /// read until the operator's memory ran out).
    #[tokio::test]
    async fn endless_output_is_cut_at_the_bound() {
        let mut buf = Vec::new();
        let r = tokio::time::timeout(
            Duration::from_secs(30),
            read_capped(tokio::io::repeat(b'y'), &mut buf, 3 << 20, "stdout"),
        )
        .await
        .expect("bounded: it ends");
        let e = r.expect_err("over the bound");
        assert!(matches!(
            e,
            RemoteError::TooMuchOutput {
                stream: "stdout",
                limit
            } if limit == 3 << 20
        ));
        assert!(e.to_string().contains("more than 3 MiB on stdout"), "{e}");
        assert_eq!(buf.len(), (3 << 20) + 1);
    }

    #[tokio::test]
    async fn output_up_to_the_bound_is_read_whole() {
        let data = vec![b'x'; 4096];
        let mut buf = Vec::new();
        read_capped(&data[..], &mut buf, 4096, "stderr")
            .await
            .expect("at the bound");
        assert_eq!(buf, data);
        let mut buf = Vec::new();
        let e = read_capped(&data[..], &mut buf, 4095, "stderr").await;
        assert!(matches!(
            e,
            Err(RemoteError::TooMuchOutput {
                stream: "stderr",
                ..
            })
        ));
    }

    /// The facts parser says what is wrong with too much output; the
    /// transport's bound only stops what is far beyond it.
    #[test]
    fn the_stdout_bound_is_above_the_facts_parsers() {
        let parser = crate::observe::parse::MAX_OUTPUT_BYTES;
        assert!(MAX_STDOUT_BYTES > parser, "{MAX_STDOUT_BYTES} <= {parser}");
    }
}
