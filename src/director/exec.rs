//! Running programs for the daemon: `check = "script"` health checks and the
//! `[cluster] notify` hooks (keepalived's MISC_CHECK and notify scripts, with
//! its `enable_script_security`), one way for both.
//!
//! What a program gets:
//!
//! * **No privileges.** The daemon runs as a transient user with the ambient
//!   capabilities CAP_NET_ADMIN and CAP_NET_RAW (the unit's
//!   `AmbientCapabilities=`); a child would inherit them across `execve`.
//!   Before the exec the child clears its ambient set (`PR_CAP_AMBIENT_CLEAR_ALL`,
//!   the one step that matters: ambient capabilities are the only ones a
//!   non-root user keeps over `execve`), drops what it can of the bounding
//!   set (`PR_CAPBSET_DROP`, needs CAP_SETPCAP: only when run as root; under
//!   the unit the bounding set is already just the two) and clears its
//!   inheritable set (`capset`; the unit's syscall filter refuses it with
//!   EPERM, so there the two stay inheritable, which grants nothing: no
//!   permitted capability to raise into the ambient set, and with
//!   `NoNewPrivileges=yes` no file capabilities). The program starts with
//!   empty permitted, effective and ambient sets (`tests/script_checks.rs`
//!   checks it under the same filter). A daemon run as root (by hand, in
//!   tests) runs programs as `nobody` (65534): `setgroups`/`setgid`/`setuid`,
//!   which also empties the permitted and effective sets.
//! * **None of the daemon's descriptors.** Rust opens everything with
//!   `O_CLOEXEC`; on top, every descriptor above 2 is marked close-on-exec
//!   (`close_range(3, ~0, CLOSE_RANGE_CLOEXEC)`, a loop of `fcntl` on older
//!   kernels), so a socket a crate opened without the flag does not leak.
//! * **A minimal environment**: `PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
//!   the `LVSUP_*` variables the caller sets, nothing of the daemon's. Stdin
//!   is /dev/null, the working directory `/`.
//! * **Its own process group, and a timeout.** On timeout the whole group
//!   gets SIGKILL (a shell script's children too); after a normal exit the
//!   group is killed as well, so nothing a check started outlives it.
//! * **Bounded output**: the first [`MAX_OUTPUT`] bytes of stdout and of
//!   stderr are kept (for the log and the check's detail), the rest read
//!   and dropped.
//!
//! The program itself must be an absolute path (validated with the file),
//! and — keepalived's script security — neither it nor a directory above it
//! may be writable by a user other than root or the daemon's own (group or
//! other write bits; a sticky directory such as /tmp is allowed): otherwise
//! any local user could run code with the daemon's network access.
//!
//! Under systemd the unit's sandbox applies to the programs too: read-only
//! file system (`ProtectSystem=strict`: no writes outside /tmp, which is
//! private), `NoNewPrivileges` (setuid programs such as `sudo` or `ping`
//! from a setuid binary fail), `PrivateDevices`, the address families and
//! the syscall filter (`@system-service` minus `@privileged @resources`;
//! fork, execve, wait and kill are in `@process`/`@signal`, allowed).

use std::io;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};

/// System calls a run makes, in the daemon and in the child before the
/// exec: the director unit's `SystemCallFilter=` must allow every one (a
/// test in `desired` checks it with `systemd-analyze syscall-filter`).
/// `capset` and the set*id calls are best effort or root-only: not listed.
pub const SYSCALLS: &[&str] = &[
    "clone",
    "clone3",
    "vfork",
    "execve",
    "wait4",
    "waitid",
    "kill",
    "setpgid",
    "prctl",
    "capget",
    "close_range",
    "fcntl",
    "pipe2",
    "dup3",
    "chdir",
    "prlimit64",
    "pidfd_open",
    "rt_sigprocmask",
    "openat",
    "newfstatat",
];

/// Bytes of stdout (and of stderr) kept from one run.
pub const MAX_OUTPUT: usize = 4096;

/// `PATH` of the programs run.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The user programs run as when the daemon itself is root: `nobody`.
pub const NOBODY: u32 = 65534;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Exited with this code.
    Exited(i32),
    /// Killed by this signal (not ours).
    Signaled(i32),
    /// Still running at the timeout: its process group was killed.
    TimedOut,
    /// Not started: why. `local` when the director lacked a resource
    /// (descriptors, memory, processes) rather than the program being wrong.
    NotStarted { why: String, local: bool },
}

/// One run of a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub end: End,
    /// Stdout then stderr, each cut at [`MAX_OUTPUT`] bytes, lossy UTF-8.
    pub output: String,
    pub took: Duration,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.end == End::Exited(0)
    }

    /// "exit 0", "exit 2", "killed by signal 9", "timeout after 1s", ...
    pub fn describe(&self, timeout: Duration) -> String {
        match &self.end {
            End::Exited(c) => format!("exit {c}"),
            End::Signaled(s) => format!("killed by signal {s}"),
            End::TimedOut => format!(
                "timeout after {}: process group killed",
                crate::config::format_duration(timeout)
            ),
            End::NotStarted { why, .. } => format!("not started: {why}"),
        }
    }
}

/// Writes an executable shell script (`#!/bin/sh`, mode 0755) for tests,
/// through a child process rather than from this one. A test binary runs
/// its tests on parallel threads of one process: a descriptor this process
/// held open on the file for writing is copied into any child another
/// thread forks at that moment, and until that child execs, running the
/// script fails with ETXTBSY ("Text file busy"; seen in a CI run of
/// tests/script_checks.rs). Not used by the daemon.
#[doc(hidden)]
pub fn write_test_script(path: &Path, body: &str) -> io::Result<()> {
    use std::io::Write;
    let mut child = std::process::Command::new("/bin/sh")
        .args(["-c", r#"cat > "$1" && chmod 0755 "$1""#, "sh"])
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(format!("#!/bin/sh\n{body}\n").as_bytes())?;
    }
    let status = child.wait()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "writing {}: sh {status}",
            path.display()
        )))
    }
}

/// Why `program` may not be run: an ancestor or itself writable by someone
/// other than root or us (see the module docs). `None` = fine.
pub fn insecure(program: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    // Through symbolic links: what runs is the target, and its directories
    // are the ones that must be safe.
    let real = match std::fs::canonicalize(program) {
        Ok(r) => r,
        Err(e) => return Some(format!("{}: {e}", program.display())),
    };
    let mut p = Some(real.as_path());
    while let Some(path) = p {
        let m = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => return Some(format!("{}: {e}", path.display())),
        };
        let sticky_dir = m.is_dir() && m.mode() & 0o1000 != 0;
        if m.mode() & 0o022 != 0 && !sticky_dir {
            return Some(format!(
                "{} is writable by group or others (mode {:o}): refused, as keepalived's \
                 script security does",
                path.display(),
                m.mode() & 0o7777
            ));
        }
        if m.uid() != 0 && m.uid() != me {
            return Some(format!(
                "{} belongs to uid {}, not root: refused (its owner could change what runs)",
                path.display(),
                m.uid()
            ));
        }
        p = path.parent();
    }
    None
}

/// Run `argv` with `env` (on top of `PATH`), bounded by `timeout`.
pub async fn run(argv: &[String], env: &[(String, String)], timeout: Duration) -> Outcome {
    let start = Instant::now();
    let not_started = |why: String, local: bool| Outcome {
        end: End::NotStarted { why, local },
        output: String::new(),
        took: start.elapsed(),
    };
    let Some(program) = argv.first() else {
        return not_started("empty command".into(), false);
    };
    if !program.starts_with('/') {
        return not_started(format!("{program}: not an absolute path"), false);
    }
    if let Some(why) = insecure(Path::new(program)) {
        return not_started(why, false);
    }
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(&argv[1..])
        .env_clear()
        .env("PATH", PATH)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: the closure only makes raw system calls (prctl, capget/capset,
    // setgroups/setgid/setuid, close_range/fcntl, getrlimit) on values on its
    // own stack: async-signal-safe, no allocation, no lock.
    unsafe {
        cmd.pre_exec(drop_privileges);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            // The director's own resources (descriptors, memory,
            // processes), not the program's fault.
            let local = matches!(
                e.raw_os_error(),
                Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::EAGAIN)
            );
            return not_started(format!("{program}: {e}"), local);
        }
    };
    let pgid = child.id().map(|p| p as i32);
    // Dropped before the end (the probe task aborted by a reload, the daemon
    // stopping): the group goes too, not only the child (kill_on_drop).
    let mut guard = GroupGuard(pgid);
    // The pipes are read while the program runs (a full pipe would block it).
    let out = tokio::spawn(bounded(child.stdout.take()));
    let err = tokio::spawn(bounded(child.stderr.take()));
    let status = tokio::time::timeout(timeout, child.wait()).await;
    // The whole group goes, whether the program ended or not: a check's
    // leftovers (a background `sleep`, a hung curl) must not pile up, nor
    // hold the pipes open.
    guard.kill();
    use std::os::unix::process::ExitStatusExt;
    let end = match status {
        Ok(Ok(status)) => match (status.code(), status.signal()) {
            (Some(c), _) => End::Exited(c),
            (None, Some(s)) => End::Signaled(s),
            (None, None) => End::Signaled(0),
        },
        Ok(Err(e)) => End::NotStarted {
            why: format!("waiting for {program}: {e}"),
            local: true,
        },
        Err(_) => {
            // Reap it (SIGKILL was sent to the group).
            let _ = child.wait().await;
            End::TimedOut
        }
    };
    // A process that left the group (setsid) may still hold a pipe: wait
    // for the output a little, not forever.
    let grace = Duration::from_millis(500);
    let o = tokio::time::timeout(grace, out).await;
    let e = tokio::time::timeout(grace, err).await;
    let o = o.ok().and_then(Result::ok).unwrap_or_default();
    let e = e.ok().and_then(Result::ok).unwrap_or_default();
    Outcome {
        end,
        output: join_output(&o, &e),
        took: start.elapsed(),
    }
}

/// SIGKILL to a process group, once: by [`GroupGuard::kill`] or on drop.
struct GroupGuard(Option<i32>);

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            // SAFETY: kill has no memory preconditions; a negative pid names
            // the group.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

fn join_output(o: &[u8], e: &[u8]) -> String {
    let mut s = String::from_utf8_lossy(o).into_owned();
    if !e.is_empty() {
        if !s.is_empty() && !s.ends_with('\n') {
            s.push('\n');
        }
        s.push_str(&String::from_utf8_lossy(e));
    }
    s
}

/// Read a pipe to its end, keeping the first [`MAX_OUTPUT`] bytes.
async fn bounded<R: AsyncRead + Unpin>(r: Option<R>) -> Vec<u8> {
    let Some(mut r) = r else { return Vec::new() };
    let mut kept = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// In the child, between fork and exec (see the module docs).
fn drop_privileges() -> io::Result<()> {
    // SAFETY (whole function): raw system calls on stack values only.
    unsafe {
        // Ambient capabilities: the ones that survive execve for a non-root
        // user. EINVAL: a kernel before 4.3 has none.
        if libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        ) != 0
        {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(e);
            }
        }
        // Bounding set: only with CAP_SETPCAP (root); EPERM otherwise, and
        // EINVAL past the kernel's last capability.
        for cap in 0..64 {
            libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
        }
        if libc::geteuid() == 0 {
            // Root: become nobody. setuid from 0 empties the permitted and
            // effective sets (no SECBIT_KEEP_CAPS).
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(NOBODY) != 0
                || libc::setuid(NOBODY) != 0
            {
                return Err(io::Error::last_os_error());
            }
        }
        clear_inheritable();
        mark_cloexec_from(3);
    }
    Ok(())
}

/// `struct __user_cap_header_struct` / `__user_cap_data_struct`
/// (linux/capability.h); libc has no capget/capset wrappers.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Empty the inheritable set, keep the others (best effort: the unit's
/// syscall filter answers capset with EPERM).
unsafe fn clear_inheritable() {
    let mut h = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut d = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: header and two data structs, as the v3 ABI wants.
    unsafe {
        if libc::syscall(libc::SYS_capget, &mut h as *mut CapHeader, d.as_mut_ptr()) != 0 {
            return;
        }
        d[0].inheritable = 0;
        d[1].inheritable = 0;
        libc::syscall(libc::SYS_capset, &mut h as *mut CapHeader, d.as_ptr());
    }
}

/// Every descriptor from `first` on: close-on-exec.
unsafe fn mark_cloexec_from(first: u32) {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: plain system calls on integers.
    unsafe {
        if libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) == 0 {
            return;
        }
        // Before Linux 5.11 (or filtered): one fcntl per possible descriptor.
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur.min(1 << 20) as i32
        } else {
            1024
        };
        for fd in first as i32..max {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}
