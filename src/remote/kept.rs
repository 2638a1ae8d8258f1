//! Master connections kept between runs (`[ssh] control_persist`), like
//! Ansible's `ControlPersist`: a run leaves each host's SSH master open for
//! the configured time, and the next run with the same SSH settings for that
//! host reuses it, skipping the key exchange and the login (on 200 hosts,
//! most of a no-op `plan`: docs/guide/live.md, "Many hosts").
//!
//! Where: `$XDG_RUNTIME_DIR/lvsup-ssh` when that is set, else
//! `/tmp/lvsup-ssh-UID`; a directory of the user's own, mode 0700, checked
//! before every use (anyone who could write there could hand lvsup a socket
//! to a master of their own). One record per master, `m-KEY`, holds the name
//! of the openssh crate's directory with the socket (`.ssh-connectionXXXXXX`);
//! KEY hashes everything that picks the connection: the destination, user,
//! port, identity file, host key checking, and the ssh_config's path and
//! bytes. A different setting is another key, so another master.
//!
//! Hand-written: no crate keeps openssh masters across processes.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::SshOptions;
use crate::config::HostKeyChecking;

/// The longest `$XDG_RUNTIME_DIR` used: a socket's path must fit 108 bytes,
/// and the rest of it is `/lvsup-ssh/.ssh-connectionXXXXXX/master` (39).
pub const MAX_RUNTIME_DIR_LEN: usize = 64;

/// Prefix of the openssh crate's per-master directories.
pub const CRATE_PREFIX: &str = ".ssh-connection";

/// A master directory with no socket that is older than this is left over
/// (its master ended): removed. Younger ones may be a master still starting
/// in a concurrent run (ssh's ConnectTimeout is 20 s here).
pub const LEFTOVER_AGE: Duration = Duration::from_secs(300);

/// Where kept masters live for `euid`: `$XDG_RUNTIME_DIR/lvsup-ssh` (an
/// absolute `runtime_dir` short enough for the sockets in it), else
/// `/tmp/lvsup-ssh-UID`. Pure.
pub fn dir_for(runtime_dir: Option<&str>, euid: u32) -> PathBuf {
    match runtime_dir.filter(|d| d.starts_with('/') && d.len() <= MAX_RUNTIME_DIR_LEN) {
        Some(d) => Path::new(d).join("lvsup-ssh"),
        None => PathBuf::from(format!("/tmp/lvsup-ssh-{euid}")),
    }
}

/// This process's effective uid.
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The kept-masters directory of this process: [`dir_for`] its
/// `$XDG_RUNTIME_DIR` and effective uid.
pub fn dir() -> PathBuf {
    dir_for(std::env::var("XDG_RUNTIME_DIR").ok().as_deref(), euid())
}

/// Why a kept-masters directory must not be used (None: it may). Pure:
/// from what `lstat` says about it.
pub fn unsafe_because(
    is_dir: bool,
    is_symlink: bool,
    uid: u32,
    mode: u32,
    euid: u32,
) -> Option<String> {
    if is_symlink {
        return Some("is a symbolic link".into());
    }
    if !is_dir {
        return Some("is not a directory".into());
    }
    if uid != euid {
        return Some(format!("belongs to uid {uid}, not to this user ({euid})"));
    }
    if mode & 0o077 != 0 {
        return Some(format!(
            "is open to others (mode {:o}; must be 700)",
            mode & 0o7777
        ));
    }
    None
}

/// Create (mode 0700) or check the kept-masters directory `dir`.
pub fn prepare(dir: &Path) -> Result<(), String> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
    }
    let m = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    match unsafe_because(
        m.is_dir(),
        m.file_type().is_symlink(),
        m.uid(),
        m.permissions().mode(),
        euid(),
    ) {
        Some(why) => Err(format!("{} {why}", dir.display())),
        None => Ok(()),
    }
}

/// The record name for a master to `destination` with `opts`, `config`
/// being the bytes of `opts.config_file` (empty without one). Pure.
pub fn key(opts: &SshOptions, config: &[u8], destination: &str) -> String {
    let mut h = Sha256::new();
    let field = |h: &mut Sha256, name: &str, v: &[u8]| {
        h.update(name.as_bytes());
        h.update((v.len() as u64).to_le_bytes());
        h.update(v);
    };
    field(&mut h, "destination", destination.as_bytes());
    field(
        &mut h,
        "user",
        opts.user.as_deref().unwrap_or_default().as_bytes(),
    );
    field(
        &mut h,
        "port",
        opts.port
            .map(|p| p.to_string())
            .unwrap_or_default()
            .as_bytes(),
    );
    let path = |p: &Option<PathBuf>| {
        p.as_ref()
            .map(|p| p.as_os_str().as_encoded_bytes().to_vec())
            .unwrap_or_default()
    };
    field(&mut h, "identity", &path(&opts.identity_file));
    field(&mut h, "config", &path(&opts.config_file));
    field(&mut h, "config-bytes", config);
    field(
        &mut h,
        "host-keys",
        match opts.host_key_checking {
            HostKeyChecking::Strict => b"strict",
            HostKeyChecking::AcceptNew => b"accept-new",
        },
    );
    let d = h.finalize();
    let hex: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("m-{hex}")
}

/// The master directory a record names, if it is one of the crate's (a
/// plain name with its prefix: a record never points outside `dir`). Pure.
pub fn parse_record(text: &str) -> Option<&str> {
    let name = text.trim();
    (name.starts_with(CRATE_PREFIX)
        && !name.contains('/')
        && name != "."
        && name != ".."
        && name.len() < 64)
        .then_some(name)
}

/// The master's control socket and log named by record `key` in `dir`.
pub fn lookup(dir: &Path, key: &str) -> Option<(PathBuf, PathBuf)> {
    let text = std::fs::read_to_string(dir.join(key)).ok()?;
    let sub = dir.join(parse_record(&text)?);
    Some((sub.join("master"), sub.join("log")))
}

/// Record that `key`'s master has its socket at `ctl` (in a directory of
/// `dir`); written whole or not at all (a rename).
pub fn record(dir: &Path, key: &str, ctl: &Path) -> std::io::Result<()> {
    let sub = ctl
        .parent()
        .and_then(|p| p.file_name())
        .ok_or_else(|| std::io::Error::other("control socket without a directory"))?;
    let tmp = dir.join(format!("{key}.{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(sub.as_encoded_bytes())?;
    f.write_all(b"\n")?;
    drop(f);
    std::fs::rename(&tmp, dir.join(key))
}

/// Forget `key`'s master: its record and its directory (the master ended or
/// does not answer).
pub fn forget(dir: &Path, key: &str) {
    if let Some((ctl, _)) = lookup(dir, key)
        && let Some(sub) = ctl.parent()
    {
        let _ = std::fs::remove_dir_all(sub);
    }
    let _ = std::fs::remove_file(dir.join(key));
}

/// Remove what ended masters leave: a record whose socket is gone goes
/// with its directory (a record is written once its master answers, so the
/// master has ended); a directory of the crate's with no record and no
/// socket, once older than [`LEFTOVER_AGE`] (a master that never started,
/// or one of a run that was killed before recording it). Best effort.
pub fn sweep(dir: &Path, now: SystemTime) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut subs = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(CRATE_PREFIX) {
            subs.push(e);
        } else if name.starts_with("m-")
            && !name.contains('.')
            && lookup(dir, &name).is_none_or(|(ctl, _)| !ctl.exists())
        {
            forget(dir, &name);
        }
    }
    for e in subs {
        let path = e.path();
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > LEFTOVER_AGE);
        if old && path.exists() && !path.join("master").exists() {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// `ControlPersist=` seconds for `persist`: whole seconds, rounded up, at
/// least one. Pure.
pub fn persist_secs(persist: Duration) -> usize {
    let s = persist.as_secs() + u64::from(persist.subsec_nanos() > 0);
    usize::try_from(s.max(1)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> SshOptions {
        SshOptions {
            config_file: None,
            user: None,
            port: None,
            identity_file: None,
            host_key_checking: HostKeyChecking::Strict,
            become_sudo: false,
            connect_timeout: Duration::from_secs(20),
            use_names: false,
            control_persist: Some(Duration::from_secs(60)),
        }
    }

    #[test]
    fn the_directory_is_the_users_own() {
        assert_eq!(
            dir_for(Some("/run/user/1000"), 1000),
            PathBuf::from("/run/user/1000/lvsup-ssh")
        );
        assert_eq!(dir_for(None, 0), PathBuf::from("/tmp/lvsup-ssh-0"));
        // a relative runtime dir is no runtime dir
        assert_eq!(dir_for(Some("run"), 5), PathBuf::from("/tmp/lvsup-ssh-5"));
        // one too long for the sockets in it is not used either
        let long = format!("/{}", "r".repeat(MAX_RUNTIME_DIR_LEN));
        assert_eq!(dir_for(Some(&long), 5), PathBuf::from("/tmp/lvsup-ssh-5"));
        let fits = format!("/{}", "r".repeat(MAX_RUNTIME_DIR_LEN - 1));
        let socket = dir_for(Some(&fits), 5).join(".ssh-connectionXXXXXX/master");
        assert!(socket.as_os_str().len() < 108, "{}", socket.display());
        assert_eq!(unsafe_because(true, false, 1000, 0o40700, 1000), None);
        for (dir, link, uid, mode, why) in [
            (true, true, 1000, 0o700, "symbolic link"),
            (false, false, 1000, 0o700, "not a directory"),
            (true, false, 0, 0o700, "uid 0"),
            (true, false, 1000, 0o755, "open to others (mode 755"),
            (true, false, 1000, 0o1777, "open to others (mode 1777"),
        ] {
            let got = unsafe_because(dir, link, uid, mode, 1000).unwrap_or_default();
            assert!(got.contains(why), "{got}");
        }
    }

    #[test]
    fn every_setting_that_picks_the_connection_picks_the_master() {
        let base = key(&opts(), b"", "10.0.0.1");
        assert!(base.starts_with("m-") && base.len() == 34, "{base}");
        assert_eq!(base, key(&opts(), b"", "10.0.0.1"), "stable");
        let mut others = vec![
            key(&opts(), b"", "10.0.0.2"),
            key(&opts(), b"Host *\n  User x\n", "10.0.0.1"),
        ];
        let mut o = opts();
        o.user = Some("root".into());
        others.push(key(&o, b"", "10.0.0.1"));
        let mut o = opts();
        o.port = Some(2222);
        others.push(key(&o, b"", "10.0.0.1"));
        let mut o = opts();
        o.identity_file = Some("/k".into());
        others.push(key(&o, b"", "10.0.0.1"));
        let mut o = opts();
        o.config_file = Some("/c".into());
        others.push(key(&o, b"", "10.0.0.1"));
        let mut o = opts();
        o.host_key_checking = HostKeyChecking::AcceptNew;
        others.push(key(&o, b"", "10.0.0.1"));
        // field boundaries count: user "ab" + port none is not user "a" + …
        let mut o = opts();
        o.user = Some("10.0.0.1".into());
        others.push(key(&o, b"", ""));
        for k in &others {
            assert_ne!(*k, base);
        }
        others.sort();
        others.dedup();
        assert_eq!(others.len(), 8);
        // sudo is per command: the same master
        let mut o = opts();
        o.become_sudo = true;
        assert_eq!(key(&o, b"", "10.0.0.1"), base);
    }

    #[test]
    fn a_record_never_points_outside_the_directory() {
        assert_eq!(
            parse_record(".ssh-connectionAbC123\n"),
            Some(".ssh-connectionAbC123")
        );
        for bad in [
            "",
            "..",
            "/tmp/x",
            ".ssh-connection/../../etc",
            "master",
            "../.ssh-connectionX",
        ] {
            assert_eq!(parse_record(bad), None, "{bad}");
        }
    }

    #[test]
    fn records_are_written_whole_and_swept_when_their_master_is_gone() {
        let d = tempfile::tempdir().expect("tempdir");
        let dir = d.path();
        let sub = dir.join(".ssh-connectionAAAA");
        std::fs::create_dir(&sub).expect("mkdir");
        record(dir, "m-1", &sub.join("master")).expect("record");
        assert_eq!(
            lookup(dir, "m-1"),
            Some((sub.join("master"), sub.join("log")))
        );
        // recorded, no socket: the master ended; record and directory go
        sweep(dir, SystemTime::now());
        assert!(!dir.join("m-1").exists() && !sub.exists());
        // not recorded, no socket: only once old (a master may be starting)
        let sub = dir.join(".ssh-connectionCCCC");
        std::fs::create_dir(&sub).expect("mkdir");
        sweep(dir, SystemTime::now());
        assert!(sub.exists(), "a young directory may be a master starting");
        sweep(
            dir,
            SystemTime::now() + LEFTOVER_AGE + Duration::from_secs(1),
        );
        assert!(!sub.exists());
        // a socket that exists keeps both
        let sub = dir.join(".ssh-connectionBBBB");
        std::fs::create_dir(&sub).expect("mkdir");
        let _l = std::os::unix::net::UnixListener::bind(sub.join("master")).expect("bind");
        record(dir, "m-2", &sub.join("master")).expect("record");
        sweep(dir, SystemTime::now() + LEFTOVER_AGE * 2);
        assert!(dir.join("m-2").exists() && sub.join("master").exists());
        forget(dir, "m-2");
        assert!(!dir.join("m-2").exists() && !sub.exists());
        // no temporary file left by record
        let left: Vec<_> = std::fs::read_dir(dir)
            .expect("readdir")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_kept_directory_open_to_others_is_refused() {
        let d = tempfile::tempdir().expect("tempdir");
        let dir = d.path().join("lvsup-ssh");
        prepare(&dir).expect("created");
        let mode = std::fs::metadata(&dir).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        prepare(&dir).expect("again");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let e = prepare(&dir).expect_err("open to others");
        assert!(e.contains("must be 700"), "{e}");
        let link = d.path().join("link");
        std::os::unix::fs::symlink(d.path(), &link).expect("symlink");
        let e = prepare(&link).expect_err("a link");
        assert!(e.contains("symbolic link"), "{e}");
    }

    #[test]
    fn persist_is_whole_seconds_rounded_up() {
        assert_eq!(persist_secs(Duration::from_millis(1)), 1);
        assert_eq!(persist_secs(Duration::from_millis(1500)), 2);
        assert_eq!(persist_secs(Duration::from_secs(60)), 60);
    }
}
