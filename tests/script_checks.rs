//! `check = "script"` and the notify hooks run programs through
//! `lvsup::director::exec`: exit 0 = up, anything else down; the process
//! group killed at the timeout; no capabilities, no inherited descriptors,
//! a minimal environment; insecure programs refused.
//!
//! The daemon runs as a transient user holding CAP_NET_ADMIN and CAP_NET_RAW
//! as *ambient* capabilities (the unit's `AmbientCapabilities=`).
//! `ambient_capabilities_do_not_reach_the_program` puts a copy of this test
//! binary in exactly that situation (uid 65534, both capabilities ambient)
//! and has it run a program through the same code path: it needs root to
//! set that up, as CI has.
#![cfg(target_os = "linux")]

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lvsup::director::exec::{self, End};
use lvsup::director::probe::{self, Probe};

const RS: &str = "192.0.2.11:8080";

/// A script file in a fresh directory that `nobody` can reach (mode 0755),
/// written by a child process: this binary's tests run on parallel threads,
/// and a write descriptor held here could reach a child another test forks
/// at that moment, making the script's exec fail with "Text file busy"
/// (`exec::write_test_script`).
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    let p = dir.join(name);
    exec::write_test_script(&p, body).expect("write script");
    p
}

fn argv(p: &Path, args: &[&str]) -> Vec<String> {
    std::iter::once(p.display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .collect()
}

async fn check(argv: Vec<String>, timeout: Duration) -> probe::ProbeResult {
    let addr: SocketAddr = RS.parse().expect("addr");
    probe::run(&Probe::Script { argv }, addr, timeout).await
}

#[tokio::test]
async fn exit_zero_is_up_anything_else_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let up = script(dir.path(), "up", "echo all good; exit 0");
    let down = script(dir.path(), "down", "echo 'db unreachable' >&2; exit 1");
    let two = script(dir.path(), "two", "exit 2");
    let r = check(argv(&up, &[]), Duration::from_secs(5)).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.detail, "exit 0: all good");
    let r = check(argv(&down, &[]), Duration::from_secs(5)).await;
    assert!(!r.ok && !r.inconclusive, "{r:?}");
    assert_eq!(r.detail, "exit 1: db unreachable");
    let r = check(argv(&two, &[]), Duration::from_secs(5)).await;
    assert_eq!((r.ok, &*r.detail), (false, "exit 2"));
}

#[tokio::test]
async fn placeholders_and_environment_name_the_real_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = script(
        dir.path(),
        "args",
        r#"[ "$1" = 192.0.2.11 ] && [ "$2" = 8080 ] && [ "$3" = x192.0.2.11:8080y ] || { echo "args: $*"; exit 3; }
[ "$LVSUP_RS_ADDRESS" = 192.0.2.11 ] && [ "$LVSUP_RS_PORT" = 8080 ] || { echo "env: $LVSUP_RS_ADDRESS $LVSUP_RS_PORT"; exit 4; }
echo ok"#,
    );
    // "{address}" alone and inside a word are both replaced.
    let r = check(
        argv(&s, &["{address}", "{port}", "x{address}:{port}y"]),
        Duration::from_secs(5),
    )
    .await;
    assert!(r.ok, "{r:?}");
    // The script can fail: unreplaced arguments.
    let r = check(argv(&s, &["address", "port", "-"]), Duration::from_secs(5)).await;
    assert_eq!(r.detail, "exit 3: args: address port -");
}

#[tokio::test]
async fn minimal_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = script(dir.path(), "env", "/usr/bin/env");
    let o = exec::run(
        &argv(&s, &[]),
        &[("LVSUP_STATE".into(), "master".into())],
        Duration::from_secs(5),
    )
    .await;
    assert!(o.success(), "{o:?}");
    let mut vars: Vec<&str> = o
        .output
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    vars.sort_unstable();
    // sh may add PWD; nothing of the test's own environment (CARGO_*, HOME…).
    vars.retain(|v| *v != "PWD");
    assert_eq!(vars, ["LVSUP_STATE", "PATH"], "{}", o.output);
    assert!(o.output.contains(&format!("PATH={}\n", exec::PATH)));
}

/// The state column of /proc/PID/stat, `None` once the process is gone.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(") ")?.1;
    after.chars().next()
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The shell and a background child both sleep far past the timeout.
    let s = script(
        dir.path(),
        "hang",
        "echo $$; sleep 300 & echo $!; sleep 300",
    );
    let started = std::time::Instant::now();
    let t = Duration::from_millis(500);
    let o = exec::run(&argv(&s, &[]), &[], t).await;
    assert_eq!(o.end, End::TimedOut, "{o:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(o.describe(t), "timeout after 500ms: process group killed");
    let pids: Vec<u32> = o
        .output
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert_eq!(pids.len(), 2, "{:?}", o.output);
    // Both are gone (or dead, waiting for init to reap the orphan).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    for pid in pids {
        loop {
            match proc_state(pid) {
                None | Some('Z') | Some('X') => break,
                Some(s) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "process {pid} still alive (state {s})"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
    // Through the probe: a timeout is "down", not inconclusive.
    let r = check(argv(&s, &[]), t).await;
    assert!(!r.ok && !r.inconclusive, "{r:?}");
    assert!(r.detail.starts_with("timeout after 500ms"), "{}", r.detail);
}

#[tokio::test]
async fn refused_programs_are_down_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = script(dir.path(), "open", "exit 0");
    std::fs::set_permissions(&s, std::fs::Permissions::from_mode(0o757)).expect("chmod");
    let r = check(argv(&s, &[]), Duration::from_secs(5)).await;
    assert!(!r.ok, "{r:?}");
    assert!(
        r.detail.contains("writable by group or others (mode 757)"),
        "{}",
        r.detail
    );
    // A directory above it, writable by others (not sticky).
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).expect("mkdir");
    let s = script(&sub, "ok", "exit 0");
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let r = check(argv(&s, &[]), Duration::from_secs(5)).await;
    assert!(
        r.detail.contains("sub is writable by group or others"),
        "{}",
        r.detail
    );
    // A safe-looking link to a program in an open directory: the target's
    // directories count.
    let safe = dir.path().join("safe");
    std::fs::create_dir(&safe).expect("mkdir");
    std::fs::set_permissions(&safe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let link = safe.join("check");
    std::os::unix::fs::symlink(&s, &link).expect("symlink");
    let r = check(argv(&link, &[]), Duration::from_secs(5)).await;
    assert!(!r.ok, "{r:?}");
    assert!(
        r.detail.contains("sub is writable by group or others"),
        "{}",
        r.detail
    );
    // Relative path, missing program.
    let r = check(vec!["check.sh".into()], Duration::from_secs(5)).await;
    assert_eq!(r.detail, "not started: check.sh: not an absolute path");
    let r = check(vec!["/nonexistent/check".into()], Duration::from_secs(5)).await;
    assert!(!r.ok && !r.inconclusive, "{r:?}");
    assert!(
        r.detail.starts_with("not started: /nonexistent"),
        "{}",
        r.detail
    );
}

/// `CapEff` etc. of the program, as /proc/PID/status shows them.
const CAPS_SCRIPT: &str =
    r#"while read -r k v; do case "$k" in Uid:|Cap*) echo "$k $v";; esac; done < /proc/$$/status"#;

fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in {out}"))
}

#[tokio::test]
async fn no_capabilities_and_no_descriptors_reach_the_program() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = script(dir.path(), "caps", CAPS_SCRIPT);
    let o = exec::run(&argv(&s, &[]), &[], Duration::from_secs(5)).await;
    assert!(o.success(), "{o:?}");
    for key in ["CapInh:", "CapPrm:", "CapEff:", "CapAmb:"] {
        assert_eq!(
            field(&o.output, key),
            "0000000000000000",
            "{key}\n{}",
            o.output
        );
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // A root daemon runs programs as nobody, bounding set emptied too.
        assert!(
            field(&o.output, "Uid:").starts_with("65534"),
            "{}",
            o.output
        );
        assert_eq!(field(&o.output, "CapBnd:"), "0000000000000000");
    }

    // A socket opened without CLOEXEC (as a careless crate might) does not
    // reach the program. The program lists what each of its descriptors
    // points at: the socket would show as `socket:[INODE]`. (Descriptor
    // numbers alone do not tell: the shell's glob over /proc/$$/fd opens that
    // directory as the lowest free descriptor, often the socket's number.)
    // SAFETY: plain socket/fcntl/fstat calls; the descriptors are closed below.
    let (sock, leaked, inode) = unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(sock >= 0);
        let leaked = libc::fcntl(sock, libc::F_DUPFD, 200);
        assert!(leaked >= 200);
        assert_eq!(libc::fcntl(leaked, libc::F_GETFD) & libc::FD_CLOEXEC, 0);
        let mut st: libc::stat = std::mem::zeroed();
        assert_eq!(libc::fstat(sock, &mut st), 0);
        (sock, leaked, st.st_ino)
    };
    let fds = script(
        dir.path(),
        "fds",
        "for f in /proc/$$/fd/*; do echo \"${f##*/} $(readlink \"$f\")\"; done",
    );
    let o = exec::run(&argv(&fds, &[]), &[], Duration::from_secs(5)).await;
    // SAFETY: our own descriptors.
    unsafe {
        libc::close(leaked);
        libc::close(sock);
    }
    assert!(o.success(), "{o:?}");
    let open: Vec<(i32, &str)> = o
        .output
        .lines()
        .filter_map(|l| {
            let (n, target) = l.split_once(' ')?;
            Some((n.parse().ok()?, target))
        })
        .collect();
    assert!(
        open.iter().any(|(n, _)| *n == 0) && open.iter().any(|(n, _)| *n == 1),
        "{open:?}"
    );
    let socket = format!("socket:[{inode}]");
    assert!(
        !open.iter().any(|(n, t)| *n == leaked || *t == socket),
        "the socket ({socket}, descriptors {sock} and {leaked}) leaked: {open:?}"
    );
}

const INNER: &str = "LVSUP_TEST_AMBIENT_INNER";

/// The daemon's situation under systemd: uid 65534 with CAP_NET_ADMIN and
/// CAP_NET_RAW in the ambient set, `capset` filtered. The test starts a copy
/// of this binary so (with `INNER` set, running only this test), and that
/// copy checks it really holds the capabilities and that a program it runs
/// through `exec::run` does not. One test with two roles rather than an
/// ignored inner test: ignored tests are the VM lab's.
#[test]
fn ambient_capabilities_do_not_reach_the_program() {
    if std::env::var_os(INNER).is_some() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(under_ambient_capabilities());
        return;
    }
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test sets up the daemon's capabilities and needs root (CI runs as root)"
    );
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "--exact",
        "ambient_capabilities_do_not_reach_the_program",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(INNER, "1");
    use std::os::unix::process::CommandExt;
    // SAFETY: raw system calls on stack values between fork and exec.
    unsafe {
        cmd.pre_exec(become_daemon_like);
    }
    let out = cmd.output().expect("run the copy");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}

/// uid/gid 65534 keeping CAP_NET_ADMIN (12) and CAP_NET_RAW (13), raised
/// into the ambient set so they survive the exec.
fn become_daemon_like() -> std::io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let caps: u32 = (1 << 12) | (1 << 13);
    let err = || Err(std::io::Error::last_os_error());
    // SAFETY: system calls on stack values.
    unsafe {
        if libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0
            || libc::setgroups(0, std::ptr::null()) != 0
            || libc::setgid(65534) != 0
            || libc::setuid(65534) != 0
        {
            return err();
        }
        let mut h = Header {
            version: 0x2008_0522,
            pid: 0,
        };
        let d = [
            Data {
                effective: caps,
                permitted: caps,
                inheritable: caps,
            },
            Data {
                effective: 0,
                permitted: 0,
                inheritable: 0,
            },
        ];
        if libc::syscall(libc::SYS_capset, &mut h as *mut Header, d.as_ptr()) != 0 {
            return err();
        }
        for cap in [12, 13] {
            if libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0 {
                return err();
            }
        }
        // The unit's NoNewPrivileges=yes, and its syscall filter's answer
        // to capset (in @privileged): EPERM. So the program is started the
        // way the daemon starts it under systemd, where clearing the
        // inheritable set fails and only PR_CAP_AMBIENT_CLEAR_ALL helps.
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return err();
        }
        // classic BPF: A = seccomp_data.nr; capset → ERRNO(EPERM); else allow.
        let filter = [
            libc::sock_filter {
                code: 0x20,
                jt: 0,
                jf: 0,
                k: 0,
            }, // BPF_LD|BPF_W|BPF_ABS
            libc::sock_filter {
                code: 0x15,
                jt: 0,
                jf: 1,
                k: libc::SYS_capset as u32,
            }, // BPF_JMP|BPF_JEQ|BPF_K
            libc::sock_filter {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: 0x0005_0000 | libc::EPERM as u32,
            }, // RET ERRNO
            libc::sock_filter {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: 0x7fff_0000,
            }, // RET ALLOW
        ];
        let prog = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr() as *mut libc::sock_filter,
        };
        if libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const libc::sock_fprog,
            0,
            0,
        ) != 0
        {
            return err();
        }
    }
    Ok(())
}

/// The copy's part of `ambient_capabilities_do_not_reach_the_program`.
async fn under_ambient_capabilities() {
    // We hold what the daemon holds: both capabilities, ambient.
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    assert_eq!(field(&status, "CapAmb:"), "0000000000003000", "{status}");
    assert_eq!(field(&status, "CapEff:"), "0000000000003000", "{status}");
    assert!(field(&status, "Uid:").starts_with("65534"), "{status}");
    // capset is filtered, as under the unit.
    // SAFETY: a null header pointer: capset fails before reading it (EPERM
    // from the filter, EFAULT without it).
    let r = unsafe {
        libc::syscall(
            libc::SYS_capset,
            std::ptr::null::<u8>(),
            std::ptr::null::<u8>(),
        )
    };
    assert_eq!(r, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EPERM)
    );
    // A plain child would inherit them: the check below can fail.
    let plain = std::process::Command::new("/bin/sh")
        .args(["-c", CAPS_SCRIPT])
        .output()
        .expect("sh");
    let plain = String::from_utf8_lossy(&plain.stdout);
    assert_eq!(field(&plain, "CapAmb:"), "0000000000003000", "{plain}");
    assert_eq!(field(&plain, "CapEff:"), "0000000000003000", "{plain}");
    // Through exec::run: nothing usable.
    let dir = tempfile::tempdir().expect("tempdir");
    let s = script(dir.path(), "caps", CAPS_SCRIPT);
    let o = exec::run(&argv(&s, &[]), &[], Duration::from_secs(5)).await;
    assert!(o.success(), "{o:?}");
    for key in ["CapPrm:", "CapEff:", "CapAmb:"] {
        assert_eq!(
            field(&o.output, key),
            "0000000000000000",
            "{key}\n{}",
            o.output
        );
    }
    // The inheritable set cannot be cleared where capset is filtered (the
    // unit's case): it grants nothing without permitted capabilities (no
    // ambient raise) and without file capabilities (NoNewPrivileges).
    assert!(
        ["0000000000003000", "0000000000000000"].contains(&field(&o.output, "CapInh:")),
        "{}",
        o.output
    );
}
