//! `lvsup lab`: the topology of a cluster.toml on one Linux machine, with a
//! real kernel, real systemd and real sshd — for tutorials, tests and CI.
//!
//! Every director and real server becomes a systemd-nspawn container booting
//! systemd from one shared read-only base image (a Debian bookworm minbase
//! with systemd, sshd and the usual tools, built by `tests/lab/base-image`)
//! with a per-host overlay on a tmpfs, so each host has its own `/etc`,
//! `/usr/local`, `/var`, `/run`. Each lives in its own network namespace,
//! prepared from outside before it boots (veth into the lab bridges, its
//! addresses from the file), and runs sshd with its own ed25519 host key,
//! generated here and pinned in the lab's `known_hosts`. Real servers run a
//! demo web server (busybox httpd) on every TCP service port and a demo UDP
//! responder on every UDP service port, both answering with the host's name.
//! The machine running lvsup is the operator: it has addresses on the lab bridges and reaches every host over SSH with the lab
//! key; a separate client namespace reaches the VIP as a client would.
//!
//! This module drives `ip`, `mount`, `ssh-keygen`, `ssh` and `systemd-nspawn`
//! as commands: it is test infrastructure that sets up hosts, and the same
//! commands are what an operator would type to reproduce a step by hand.
//! (The product's own kernel work — IPVS, addresses — goes over netlink.)

pub mod topology;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use minijinja::context;
use serde::{Deserialize, Serialize};

pub use topology::{HostRole, LabHost, Topology, topology};

use crate::config::{ClusterSpec, Mode};
use crate::script::{self, shell_quote};

/// Where `tests/lab/in-vm` mounts the base image, and where `lab up` mounts
/// a base image file it is given.
pub const BASE_MOUNT: &str = "/run/lvsup-lab/base";
/// The base image `tests/lab/base-image` builds.
pub const BASE_IMAGE: &str = "/var/cache/lvsup/lab-base.img";

#[derive(Debug, Clone)]
pub struct UpOptions {
    /// A base root filesystem: a directory, or an ext4 image file.
    pub base: Option<PathBuf>,
    /// Skip the ip_vs/ipip check (a lab for everything but IPVS on a kernel
    /// without it; used to develop the lab itself).
    pub skip_kernel_check: bool,
    /// How long to wait for every host's sshd.
    pub timeout: Duration,
}

impl Default for UpOptions {
    fn default() -> Self {
        UpOptions {
            base: None,
            skip_kernel_check: false,
            timeout: Duration::from_secs(300),
        }
    }
}

/// What a running lab recorded about itself (`STATE/lab.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    pub cluster: String,
    pub file: String,
    pub base: String,
    /// lab up mounted the base image itself (and lab down unmounts it).
    pub mounted_base: bool,
    pub ssh_config: String,
    pub hosts: Vec<LabStateHost>,
    pub client_netns: String,
    pub client_address: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabStateHost {
    pub name: String,
    pub role: String,
    pub address: String,
    pub machine: String,
    pub netns: String,
}

fn state_file(t: &Topology) -> PathBuf {
    Path::new(&t.state_dir()).join("lab.json")
}

/// The SSH client configuration of the running lab of `cluster`, if one is up.
pub fn ssh_config_for(cluster: &str) -> Option<PathBuf> {
    let p = Path::new(topology::STATE_ROOT)
        .join(cluster)
        .join("ssh_config");
    p.is_file().then_some(p)
}

pub fn read_state(t: &Topology) -> Option<LabState> {
    let text = fs::read_to_string(state_file(t)).ok()?;
    serde_json::from_str(&text).ok()
}

// ---------------------------------------------------------------- commands

/// Run a command, fail with its stderr when it fails.
fn run(args: &[&str]) -> Result<String> {
    let (prog, rest) = args.split_first().ok_or_else(|| anyhow!("empty command"))?;
    let out = Command::new(prog)
        .args(rest)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {prog} (is it installed?)"))?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Run a command whose failure only means "already gone".
fn run_quiet(args: &[&str]) -> bool {
    let Some((prog, rest)) = args.split_first() else {
        return false;
    };
    Command::new(prog)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

fn have(prog: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(prog).is_file()))
}

fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// What the lab needs of the kernel and of this machine, checked before
/// anything is created.
pub fn preflight(spec: &ClusterSpec, check_kernel: bool) -> Result<()> {
    if !is_root() {
        bail!("lvsup lab needs root (network namespaces, mounts, containers): run it with sudo");
    }
    let missing: Vec<&str> = [
        ("systemd-nspawn", "systemd-container"),
        ("ip", "iproute2"),
        ("ssh", "openssh-client"),
        ("ssh-keygen", "openssh-client"),
        ("mount", "mount"),
        ("setsid", "util-linux"),
    ]
    .iter()
    .filter(|(p, _)| !have(p))
    .map(|(_, pkg)| *pkg)
    .collect();
    if !missing.is_empty() {
        bail!(
            "lvsup lab needs these packages on this machine: apt-get install {}",
            missing.join(" ")
        );
    }
    let _ = run_quiet(&["modprobe", "-a", "ip_vs", "bridge", "veth", "overlay"]);
    if !check_kernel {
        return Ok(());
    }
    let release = kernel_release();
    let how = "Run the lab in a VM with a stock kernel instead: \
               tests/lab/in-vm lvsup lab up -f FILE (see docs/guide/lab.md), \
               or on a distribution kernel, which ships ip_vs and ipip as modules";
    if !Path::new("/proc/net/ip_vs").exists() {
        bail!(
            "this kernel ({release}) has no ip_vs (IPVS) module, which every LVS director needs. {how}"
        );
    }
    if spec.mode == Mode::Tun {
        let _ = run_quiet(&["modprobe", "ipip"]);
        if !Path::new("/sys/module/ipip").exists() {
            bail!("this kernel ({release}) has no ipip module, which TUN real servers need. {how}");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- up

/// Find or prepare the base root filesystem; returns (path, mounted by us).
fn resolve_base(opt: Option<&Path>) -> Result<(PathBuf, bool)> {
    let candidates: Vec<PathBuf> = match opt {
        Some(p) => vec![p.to_path_buf()],
        None => std::env::var_os("LVSUP_LAB_BASE")
            .map(PathBuf::from)
            .into_iter()
            .chain([PathBuf::from(BASE_MOUNT), PathBuf::from(BASE_IMAGE)])
            .collect(),
    };
    for c in &candidates {
        if c.is_dir() && c.join("usr/lib/systemd/systemd").exists() {
            return Ok((c.clone(), false));
        }
        if c.is_file() {
            fs::create_dir_all(BASE_MOUNT)?;
            if !Path::new(BASE_MOUNT)
                .join("usr/lib/systemd/systemd")
                .exists()
            {
                let img = c.to_string_lossy();
                run(&["mount", "-o", "loop,ro,noload", &img, BASE_MOUNT])
                    .with_context(|| format!("mounting the lab base image {img}"))?;
                return Ok((PathBuf::from(BASE_MOUNT), true));
            }
            return Ok((PathBuf::from(BASE_MOUNT), false));
        }
    }
    bail!(
        "no lab base image (looked at {}). Build it once with `tests/lab/base-image` \
         (debootstrap of Debian bookworm with systemd and sshd, ~2 min), or pass --base DIR",
        candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Build the lab of `spec`. On failure everything created so far is removed.
pub fn up(spec: &ClusterSpec, file: &Path, opts: &UpOptions) -> Result<LabState> {
    preflight(spec, !opts.skip_kernel_check)?;
    let t = topology(spec)?;
    if state_file(&t).exists() {
        bail!(
            "a lab for cluster \"{}\" is already up (lvsup lab status -f {}); run `lvsup lab down -f {}` first",
            t.cluster,
            file.display(),
            file.display()
        );
    }
    let result = build(&t, file, opts);
    if result.is_err() {
        let _ = down_topology(&t);
    }
    result
}

/// `fs.inotify.max_user_instances` a lab of `hosts` containers needs: each
/// container's systemd and its services hold a few inotify instances, all
/// counted against root; at the kernel default (128) the 30-odd-th container's
/// systemd dies at boot with "Failed to allocate manager object: Too many open
/// files". 16 per host leaves room for the host's own users.
pub fn inotify_instances_needed(hosts: usize) -> u64 {
    128 + 16 * hosts as u64
}

/// Raise (never lower) the inotify instance limit for a lab of `hosts`
/// containers; says so on stderr when it changes it. The raised value stays
/// after `lab down` (it is a limit, not a resource).
fn raise_inotify_limit(hosts: usize) -> Result<()> {
    const KEY: &str = "/proc/sys/fs/inotify/max_user_instances";
    let need = inotify_instances_needed(hosts);
    let now: u64 = fs::read_to_string(KEY)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    if now < need {
        fs::write(KEY, need.to_string())
            .with_context(|| format!("raising fs.inotify.max_user_instances to {need}"))?;
        tracing::info!(
            "lab: raised fs.inotify.max_user_instances from {now} to {need} for {hosts} containers"
        );
    }
    Ok(())
}

fn build(t: &Topology, file: &Path, opts: &UpOptions) -> Result<LabState> {
    raise_inotify_limit(t.hosts.len())?;
    let (base, mounted_base) = resolve_base(opts.base.as_deref())?;
    let dir = PathBuf::from(t.state_dir());
    fs::create_dir_all(&dir)?;
    run(&[
        "mount",
        "-t",
        "tmpfs",
        "-o",
        "mode=0700,size=2g",
        "lvsup-lab",
        &dir.to_string_lossy(),
    ])
    .context("mounting the lab's tmpfs")?;

    // Keys: the operator's lab key and one host key per host.
    let key = dir.join("id_ed25519");
    keygen(&key, "lvsup-lab-operator")?;
    let mut known_hosts = String::new();
    let mut host_keys = BTreeMap::new();
    for h in &t.hosts {
        let k = dir.join(format!("hostkey-{}", h.name));
        keygen(&k, &h.name)?;
        let public = fs::read_to_string(k.with_extension("pub"))?;
        let _ = writeln!(known_hosts, "{},{} {}", h.name, h.address, public.trim());
        host_keys.insert(h.name.clone(), k);
    }
    fs::write(dir.join("known_hosts"), &known_hosts)?;
    let ssh_config = dir.join("ssh_config");
    fs::write(&ssh_config, ssh_config_text(t, &dir))?;

    network_up(t)?;

    let etc_hosts = t
        .hosts
        .iter()
        .fold(String::from("127.0.0.1 localhost\n"), |mut s, h| {
            let _ = writeln!(s, "{} {}", h.address, h.name);
            s
        });
    let operator_pub = fs::read_to_string(key.with_extension("pub"))?;
    for h in &t.hosts {
        let root = host_root(t, h, &base)?;
        provision(&root, h, &etc_hosts, &operator_pub, &host_keys[&h.name])?;
        launch(t, h, &root)?;
    }

    wait_for_ssh(t, &ssh_config, opts.timeout)?;

    let state = LabState {
        cluster: t.cluster.clone(),
        file: file.display().to_string(),
        base: base.display().to_string(),
        mounted_base,
        ssh_config: ssh_config.display().to_string(),
        hosts: t
            .hosts
            .iter()
            .map(|h| LabStateHost {
                name: h.name.clone(),
                role: match h.role {
                    HostRole::Director => "director".into(),
                    HostRole::RealServer => "real server".into(),
                },
                address: h.address.to_string(),
                machine: h.machine.clone(),
                netns: h.node.netns.clone(),
            })
            .collect(),
        client_netns: t.client.netns.clone(),
        client_address: t.client.links[0].address.addr().to_string(),
    };
    fs::write(state_file(t), serde_json::to_string_pretty(&state)?)?;
    Ok(state)
}

fn keygen(path: &Path, comment: &str) -> Result<()> {
    let p = path.to_string_lossy();
    run(&[
        "ssh-keygen",
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        comment,
        "-f",
        &p,
    ])?;
    Ok(())
}

fn ssh_config_text(t: &Topology, dir: &Path) -> String {
    let d = dir.display();
    let mut s = format!(
        "# lvsup lab \"{}\": written by `lvsup lab up`, removed by `lvsup lab down`.\n\
         # Use: ssh -F {d}/ssh_config HOST\n",
        t.cluster
    );
    for h in &t.hosts {
        let _ = write!(s, "\nHost {}\n  HostName {}\n", h.name, h.address);
    }
    let _ = write!(
        s,
        "\nHost *\n  User root\n  IdentityFile {d}/id_ed25519\n  IdentitiesOnly yes\n  \
         UserKnownHostsFile {d}/known_hosts\n  GlobalKnownHostsFile /dev/null\n  \
         StrictHostKeyChecking yes\n  BatchMode yes\n  ConnectTimeout 30\n  \
         ServerAliveInterval 10\n  ControlMaster auto\n  ControlPath {d}/cm-%C\n  \
         ControlPersist 300\n  LogLevel ERROR\n"
    );
    s
}

fn network_up(t: &Topology) -> Result<()> {
    for seg in &t.segments {
        run(&["ip", "link", "add", &seg.bridge, "type", "bridge"])?;
        run(&["ip", "link", "set", &seg.bridge, "up"])?;
        for a in &seg.operator {
            run(&["ip", "addr", "add", &a.to_string(), "dev", &seg.bridge])?;
        }
    }
    let nodes = t.hosts.iter().map(|h| &h.node).chain([&t.client]);
    for n in nodes {
        run(&["ip", "netns", "add", &n.netns])?;
        run(&["ip", "-n", &n.netns, "link", "set", "lo", "up"])?;
        for l in &n.links {
            run(&[
                "ip", "link", "add", &l.peer, "type", "veth", "peer", "name", &l.ifname, "netns",
                &n.netns,
            ])?;
            run(&["ip", "link", "set", &l.peer, "master", &l.bridge, "up"])?;
            run(&[
                "ip",
                "-n",
                &n.netns,
                "addr",
                "add",
                &l.address.to_string(),
                "dev",
                &l.ifname,
            ])?;
            run(&["ip", "-n", &n.netns, "link", "set", &l.ifname, "up"])?;
            for r in &l.onlink {
                run(&[
                    "ip",
                    "-n",
                    &n.netns,
                    "route",
                    "add",
                    &r.to_string(),
                    "dev",
                    &l.ifname,
                ])?;
            }
        }
    }
    Ok(())
}

fn host_dir(t: &Topology, h: &LabHost) -> PathBuf {
    Path::new(&t.state_dir()).join("hosts").join(&h.name)
}

/// Mount the host's overlay (base below, a tmpfs directory above).
fn host_root(t: &Topology, h: &LabHost, base: &Path) -> Result<PathBuf> {
    let d = host_dir(t, h);
    let (upper, work, root) = (d.join("upper"), d.join("work"), d.join("root"));
    for p in [&upper, &work, &root] {
        fs::create_dir_all(p)?;
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        base.display(),
        upper.display(),
        work.display()
    );
    run(&[
        "mount",
        "-t",
        "overlay",
        "overlay",
        "-o",
        &opts,
        &root.to_string_lossy(),
    ])
    .with_context(|| format!("mounting the filesystem of {}", h.name))?;
    Ok(root)
}

/// Units a lab host does not need; each costs about a second under emulation.
const MASKED: &[&str] = &[
    "console-getty.service",
    "container-getty@.service",
    "getty@.service",
    "systemd-timesyncd.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "dpkg-db-backup.timer",
    "fstrim.timer",
    "systemd-tmpfiles-clean.timer",
    "systemd-update-utmp.service",
    "systemd-update-utmp-runlevel.service",
    "systemd-journal-flush.service",
];

fn write(root: &Path, rel: &str, content: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let p = root.join(rel.trim_start_matches('/'));
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(&p, content).with_context(|| format!("writing {}", p.display()))?;
    fs::set_permissions(&p, fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn symlink(root: &Path, rel: &str, target: &str) -> Result<()> {
    let p = root.join(rel.trim_start_matches('/'));
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent)?;
    }
    let _ = fs::remove_file(&p);
    std::os::unix::fs::symlink(target, &p).with_context(|| format!("linking {}", p.display()))
}

fn provision(
    root: &Path,
    h: &LabHost,
    etc_hosts: &str,
    operator_pub: &str,
    hostkey: &Path,
) -> Result<()> {
    write(root, "/etc/hostname", &format!("{}\n", h.name), 0o644)?;
    write(root, "/etc/hosts", etc_hosts, 0o644)?;
    write(root, "/root/.ssh/authorized_keys", operator_pub, 0o600)?;
    // The same key for every user (the image has "lvs", a sudoer): sshd reads
    // this second file as the user, so it must be world-readable and root's.
    write(
        root,
        "/etc/ssh/lvsup-lab-authorized_keys",
        operator_pub,
        0o644,
    )?;
    write(
        root,
        "/etc/ssh/ssh_host_ed25519_key",
        &fs::read_to_string(hostkey)?,
        0o600,
    )?;
    write(
        root,
        "/etc/ssh/ssh_host_ed25519_key.pub",
        &fs::read_to_string(hostkey.with_extension("pub"))?,
        0o644,
    )?;
    write(
        root,
        "/etc/ssh/sshd_config.d/lvsup-lab.conf",
        "# lvsup lab: key-only root login, no PAM/DNS (fast logins under emulation)\n\
         HostKey /etc/ssh/ssh_host_ed25519_key\nPermitRootLogin prohibit-password\n\
         AuthorizedKeysFile .ssh/authorized_keys /etc/ssh/lvsup-lab-authorized_keys\n\
         PasswordAuthentication no\nUsePAM no\nUseDNS no\nMaxStartups 100\nMaxSessions 64\n",
        0o644,
    )?;
    symlink(
        root,
        "/etc/systemd/system/multi-user.target.wants/ssh.service",
        "/lib/systemd/system/ssh.service",
    )?;
    for unit in MASKED {
        symlink(root, &format!("/etc/systemd/system/{unit}"), "/dev/null")?;
    }
    if !h.demo_ports.is_empty() || !h.demo_udp_ports.is_empty() {
        write(
            root,
            "/srv/lvsup-lab/index.html",
            &format!("{}\n", h.name),
            0o644,
        )?;
    }
    if !h.demo_ports.is_empty() {
        write(
            root,
            "/etc/systemd/system/lvsup-lab-demo@.service",
            "[Unit]\nDescription=lvsup lab demo web server on port %i (answers with the host name)\n\
             After=network.target\n\n[Service]\nExecStart=/bin/busybox httpd -f -p %i -h /srv/lvsup-lab\n\
             Restart=always\n\n[Install]\nWantedBy=multi-user.target\n",
            0o644,
        )?;
        for p in &h.demo_ports {
            symlink(
                root,
                &format!("/etc/systemd/system/multi-user.target.wants/lvsup-lab-demo@{p}.service"),
                "/etc/systemd/system/lvsup-lab-demo@.service",
            )?;
        }
    }
    if !h.demo_udp_ports.is_empty() {
        write(root, UDP_RESPONDER_PATH, UDP_RESPONDER, 0o644)?;
        write(
            root,
            "/etc/systemd/system/lvsup-lab-udp@.service",
            &format!(
                "[Unit]\nDescription=lvsup lab demo UDP responder on port %i (answers with the host name)\n\
                 After=network.target\n\n[Service]\nExecStart=/usr/bin/python3 {UDP_RESPONDER_PATH} %i\n\
                 Restart=always\n\n[Install]\nWantedBy=multi-user.target\n"
            ),
            0o644,
        )?;
        for p in &h.demo_udp_ports {
            symlink(
                root,
                &format!("/etc/systemd/system/multi-user.target.wants/lvsup-lab-udp@{p}.service"),
                "/etc/systemd/system/lvsup-lab-udp@.service",
            )?;
        }
    }
    Ok(())
}

/// Where the lab puts [`UDP_RESPONDER`] on a real server.
const UDP_RESPONDER_PATH: &str = "/srv/lvsup-lab/udp-responder.py";

/// The demo UDP responder of the lab's real servers: every datagram is
/// answered with the host's name (the file busybox httpd serves). Busybox has
/// no UDP server applet that answers (its `nc -u -l` serves one peer and
/// exits), and the base image has python3-minimal, so a few lines of Python
/// it is. The reply leaves from the address the datagram was sent to
/// (IP_PKTINFO): a DR or TUN real server must answer from the VIP, not from
/// the address the kernel would pick for a socket bound to 0.0.0.0.
pub const UDP_RESPONDER: &str = r#"# lvsup lab demo UDP responder: answers every datagram with this host's name.
import socket, struct, sys
port = int(sys.argv[1])
with open("/srv/lvsup-lab/index.html", "rb") as f:
    name = f.read()
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
s.bind(("0.0.0.0", port))
while True:
    data, anc, flags, peer = s.recvmsg(2048, socket.CMSG_SPACE(12))
    src = []
    for level, kind, d in anc:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(d) >= 12:
            _, _, dst = struct.unpack("=i4s4s", d[:12])
            src = [(socket.IPPROTO_IP, IP_PKTINFO, struct.pack("=i4s4s", 0, dst, bytes(4)))]
    try:
        s.sendmsg([name], src, 0, peer)
    except OSError:
        pass
"#;

/// The name a launcher process carries as `$0`, so `lab down` finds it by scanning /proc.
fn launcher_tag(machine: &str) -> String {
    format!("lvsup-lab-launcher:{machine}")
}

fn cgroup_dir(machine: &str) -> Option<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    root.join("cgroup.controllers")
        .exists()
        .then(|| root.join("lvsup-lab").join(machine))
}

/// The launcher of a host's container (run by `setsid sh -c`, `$0` the
/// launcher tag): joins the host's cgroup when there is one, then runs
/// systemd-nspawn with `args` again whenever the container reboots (exit 133).
pub fn launcher_script(args: &[String], cgroup: Option<&Path>) -> String {
    let cgroup = cgroup.map(|c| c.display().to_string());
    let s = script::render(
        "lab-launch.sh.j2",
        context! { args => args.to_vec(), cgroup },
    );
    s.trim_end_matches('\n').to_string()
}

/// Start the host's container, detached, restarted when it reboots (exit 133).
fn launch(t: &Topology, h: &LabHost, root: &Path) -> Result<()> {
    let mut args = vec![
        "systemd-nspawn".to_string(),
        "-q".into(),
        "--register=no".into(),
        "--keep-unit".into(),
        "-D".into(),
        root.display().to_string(),
        "-M".into(),
        h.machine.clone(),
        "-b".into(),
        format!("--network-namespace-path=/run/netns/{}", h.node.netns),
        "--console=passive".into(),
        // A joined namespace (unlike --private-network) does not give the
        // container CAP_NET_ADMIN; root on a real host has it, and the director
        // daemon (addresses, IPVS) and apply (VIP on lo) need it.
        "--capability=CAP_NET_ADMIN".into(),
    ];
    // Modules are loaded by the lab's kernel; modprobe inside a host must find
    // them (a no-op then), so the resolved module directory and /sys/module are
    // visible read-only.
    let modules = Path::new("/lib/modules").join(kernel_release());
    if let Ok(real) = fs::canonicalize(&modules) {
        args.push(format!(
            "--bind-ro={}:{}",
            real.display(),
            modules.display()
        ));
    }
    args.push("--bind-ro=/sys/module".into());

    let cg = cgroup_dir(&h.machine);
    if let Some(cg) = &cg {
        // Each container in its own cgroup, or their systemd instances fight over one.
        let parent = cg.parent().unwrap_or(Path::new("/sys/fs/cgroup"));
        fs::create_dir_all(cg).with_context(|| format!("creating cgroup {}", cg.display()))?;
        for ctl in [Path::new("/sys/fs/cgroup"), parent] {
            let _ = fs::write(ctl.join("cgroup.subtree_control"), "+memory +pids");
        }
    }
    let script = launcher_script(&args, cg.as_deref());
    let log = fs::File::create(host_dir(t, h).join("console.log"))?;
    Command::new("setsid")
        .args(["sh", "-c", &script, &launcher_tag(&h.machine)])
        // /proc/sys/net writable, as with --private-network (a joined namespace
        // leaves it read-only): real servers set arp_ignore/arp_announce, NAT
        // directors ip_forward, every director net.ipv4.vs.*.
        .env("SYSTEMD_NSPAWN_API_VFS_WRITABLE", "network")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting the container of {}", h.name))?;
    Ok(())
}

fn ssh_true(ssh_config: &Path, host: &str) -> bool {
    Command::new("ssh")
        .arg("-F")
        .arg(ssh_config)
        .args([host, "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Wait, in parallel, until every host accepts SSH with its pinned host key.
fn wait_for_ssh(t: &Topology, ssh_config: &Path, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let failed: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = t
            .hosts
            .iter()
            .map(|h| {
                s.spawn(move || {
                    while Instant::now() < deadline {
                        if ssh_true(ssh_config, &h.name) {
                            return None;
                        }
                        std::thread::sleep(Duration::from_millis(500));
                    }
                    Some(h.name.clone())
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|j| j.join().unwrap_or_else(|_| Some("?".into())))
            .collect()
    });
    if !failed.is_empty() {
        let logs: Vec<String> = failed
            .iter()
            .filter_map(|n| t.host(n))
            .map(|h| host_dir(t, h).join("console.log").display().to_string())
            .collect();
        bail!(
            "no SSH from {} within {}s (console logs: {})",
            failed.join(", "),
            timeout.as_secs(),
            logs.join(", ")
        );
    }
    Ok(())
}

// ---------------------------------------------------------------- down

/// Processes whose command line contains `needle` (as one argument).
fn pids_with_arg(needle: &str) -> Vec<u32> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return vec![];
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == needle.as_bytes()))
        })
        .collect()
}

fn children(pid: u32) -> Vec<u32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn kill(pid: u32, sig: &str) {
    let _ = run_quiet(&["kill", sig, &pid.to_string()]);
}

/// Stop the lab's containers. A lab host keeps nothing worth a clean
/// shutdown (its root is a throwaway overlay and its network namespace goes
/// next), and a clean poweroff of every host's systemd took ~20 s under the
/// VM lab's emulation, once per lab. So everything is killed at once: the
/// host's whole cgroup where there is one (cgroup v2 `cgroup.kill`: launcher,
/// nspawn and every process of the container), else launcher, nspawn and the
/// container's init by pid (killing a PID namespace's init kills the namespace).
fn stop_containers(t: &Topology) {
    let mut pids: Vec<u32> = Vec::new();
    for h in &t.hosts {
        if let Some(cg) = cgroup_dir(&h.machine).filter(|c| c.exists()) {
            let _ = fs::write(cg.join("cgroup.kill"), "1");
        }
        for pid in pids_with_arg(&launcher_tag(&h.machine)) {
            kill(pid, "-KILL");
        }
        for pid in pids_with_arg(&h.machine) {
            if fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "systemd-nspawn")
            {
                for k in children(pid) {
                    kill(k, "-KILL");
                }
                kill(pid, "-KILL");
                pids.push(pid);
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && pids
            .iter()
            .any(|p| Path::new(&format!("/proc/{p}")).exists())
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    for h in &t.hosts {
        if let Some(cg) = cgroup_dir(&h.machine) {
            remove_cgroup(&cg);
        }
    }
    if let Some(parent) = cgroup_dir("x").and_then(|p| p.parent().map(Path::to_path_buf)) {
        let _ = fs::remove_dir(parent);
    }
}

/// Remove a cgroup and the ones nspawn and the container's systemd made
/// under it, deepest first (a cgroup directory goes with rmdir once it has no
/// processes and no children). Retries while the killed processes exit.
fn remove_cgroup(cg: &Path) {
    if let Ok(rd) = fs::read_dir(cg) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup(&e.path());
            }
        }
    }
    for _ in 0..50 {
        if fs::remove_dir(cg).is_ok() || !cg.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn is_mounted(path: &Path) -> bool {
    let p = path.display().to_string();
    fs::read_to_string("/proc/self/mounts").is_ok_and(|m| {
        m.lines()
            .any(|l| l.split_whitespace().nth(1) == Some(p.as_str()))
    })
}

fn unmount(path: &Path) {
    for _ in 0..3 {
        if !is_mounted(path) {
            return;
        }
        let p = path.display().to_string();
        if !run_quiet(&["umount", &p]) {
            std::thread::sleep(Duration::from_millis(300));
            let _ = run_quiet(&["umount", "-l", &p]);
        }
    }
}

/// What `lab down` found and removed.
#[derive(Debug, Default)]
pub struct DownReport {
    pub removed: Vec<String>,
}

/// Remove everything the lab of `spec` created; safe to run at any time.
pub fn down(spec: &ClusterSpec) -> Result<DownReport> {
    if !is_root() {
        bail!("lvsup lab down needs root: run it with sudo");
    }
    let t = topology(spec)?;
    down_topology(&t)
}

fn down_topology(t: &Topology) -> Result<DownReport> {
    let mut report = DownReport::default();
    let state = read_state(t);
    stop_containers(t);

    let dir = PathBuf::from(t.state_dir());
    // ssh ControlMasters of the lab
    if let Ok(rd) = fs::read_dir(&dir) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with("cm-") {
                let cfg = dir.join("ssh_config");
                // All at once: each is a short local round trip to a socket.
                let exits: Vec<_> = t
                    .hosts
                    .iter()
                    .filter_map(|h| {
                        Command::new("ssh")
                            .arg("-F")
                            .arg(&cfg)
                            .args(["-O", "exit", &h.name])
                            .stdin(Stdio::null())
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .spawn()
                            .ok()
                    })
                    .collect();
                for mut c in exits {
                    let _ = c.wait();
                }
                break;
            }
        }
    }
    for h in &t.hosts {
        let root = host_dir(t, h).join("root");
        if is_mounted(&root) {
            unmount(&root);
            report.removed.push(format!("filesystem of {}", h.name));
        }
    }
    for ns in t.namespaces() {
        if run_quiet(&["ip", "netns", "del", ns]) {
            report.removed.push(format!("network namespace {ns}"));
        }
    }
    for h in t.hosts.iter().map(|h| &h.node).chain([&t.client]) {
        for l in &h.links {
            if run_quiet(&["ip", "link", "del", &l.peer]) {
                report.removed.push(format!("link {}", l.peer));
            }
        }
    }
    for seg in &t.segments {
        if run_quiet(&["ip", "link", "del", &seg.bridge]) {
            report.removed.push(format!("bridge {}", seg.bridge));
        }
    }
    if is_mounted(&dir) {
        unmount(&dir);
        report.removed.push(format!("state {}", dir.display()));
    }
    let _ = fs::remove_dir_all(&dir);
    if state.is_some_and(|s| s.mounted_base) {
        let others = fs::read_dir(topology::STATE_ROOT)
            .map(|rd| rd.flatten().any(|e| e.file_name() != "base"))
            .unwrap_or(false);
        if !others {
            unmount(Path::new(BASE_MOUNT));
            let _ = fs::remove_dir(BASE_MOUNT);
            report
                .removed
                .push(format!("base image mount {BASE_MOUNT}"));
        }
    }
    let _ = fs::remove_dir(topology::STATE_ROOT);
    Ok(report)
}

// ---------------------------------------------------------------- status, exec

/// One line per host: role, address, container running, SSH answering.
pub fn status(spec: &ClusterSpec) -> Result<String> {
    let t = topology(spec)?;
    let Some(state) = read_state(&t) else {
        return Ok(format!("no lab is up for cluster \"{}\"\n", t.cluster));
    };
    let cfg = PathBuf::from(&state.ssh_config);
    let mut out = format!(
        "lab \"{}\" (from {}); ssh -F {} HOST\n",
        state.cluster, state.file, state.ssh_config
    );
    for h in &t.hosts {
        let running = pids_with_arg(&h.machine).iter().any(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "systemd-nspawn")
        });
        let ssh = running && ssh_true(&cfg, &h.name);
        let _ = writeln!(
            out,
            "  {:<16} {:<12} {:<16} container {:<8} ssh {}",
            h.name,
            match h.role {
                HostRole::Director => "director",
                HostRole::RealServer => "real server",
            },
            h.address,
            if running { "running" } else { "stopped" },
            if ssh { "ok" } else { "no answer" }
        );
    }
    let _ = writeln!(
        out,
        "  {:<16} {:<12} {:<16} (ip netns exec {} ...)",
        "client", "client", state.client_address, state.client_netns
    );
    Ok(out)
}

/// Run a command on a lab host over SSH; returns its exit status.
pub fn exec(spec: &ClusterSpec, host: &str, cmd: &[String]) -> Result<i32> {
    let t = topology(spec)?;
    let cfg = ssh_config_for(&t.cluster).ok_or_else(|| {
        anyhow!(
            "no lab is up for cluster \"{}\": run lvsup lab up first",
            t.cluster
        )
    })?;
    if host == "client" {
        let status = Command::new("ip")
            .args(["netns", "exec", &t.client.netns])
            .args(cmd)
            .status()
            .context("running in the client namespace")?;
        return Ok(status.code().unwrap_or(1));
    }
    if t.host(host).is_none() {
        let names: Vec<&str> = t.hosts.iter().map(|h| h.name.as_str()).collect();
        bail!(
            "no host \"{host}\" in the lab; hosts: {}, client",
            names.join(", ")
        );
    }
    // ssh joins its arguments with spaces for the remote shell: quote each one
    // so the host runs exactly the argv given (`lab exec HOST -- sh -c 'a; b'`).
    let remote: Vec<String> = cmd.iter().map(|a| shell_quote(a)).collect();
    let status = Command::new("ssh")
        .arg("-F")
        .arg(&cfg)
        .arg(host)
        .arg("--")
        .arg(remote.join(" "))
        .status()
        .context("running ssh")?;
    Ok(status.code().unwrap_or(1))
}

/// A short report of a lab that just came up.
pub fn describe(state: &LabState, elapsed: Duration) -> String {
    let mut s = format!(
        "lab \"{}\" is up in {:.1}s: {} hosts and a client\n",
        state.cluster,
        elapsed.as_secs_f64(),
        state.hosts.len()
    );
    for h in &state.hosts {
        let _ = writeln!(s, "  {:<16} {:<12} {}", h.name, h.role, h.address);
    }
    let _ = writeln!(
        s,
        "  {:<16} {:<12} {} (lvsup lab exec -f {} client -- CMD)",
        "client", "client", state.client_address, state.file
    );
    let _ = writeln!(s, "ssh: ssh -F {} HOST", state.ssh_config);
    s
}

#[cfg(test)]
mod tests {
    /// A real server of the TUN example (a TCP and a UDP service) gets the
    /// web server on 80 and the UDP responder on 53, enabled; a director
    /// neither.
    #[test]
    fn real_servers_get_the_demo_web_server_and_udp_responder() {
        let path = format!("{}/examples/tun.toml", env!("CARGO_MANIFEST_DIR"));
        let spec = crate::config::load(std::path::Path::new(&path)).expect("example");
        let t = super::topology::topology(&spec).expect("topology");
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("hostkey");
        std::fs::write(&key, "k").expect("key");
        std::fs::write(key.with_extension("pub"), "k.pub").expect("key.pub");
        for h in &t.hosts {
            let root = dir.path().join(&h.name);
            super::provision(&root, h, "", "", &key).expect("provision");
            let wants = root.join("etc/systemd/system/multi-user.target.wants");
            let rs = h.name.starts_with("rs");
            assert_eq!(wants.join("lvsup-lab-demo@80.service").is_symlink(), rs);
            assert_eq!(wants.join("lvsup-lab-udp@53.service").is_symlink(), rs);
            if rs {
                let unit =
                    std::fs::read_to_string(root.join("etc/systemd/system/lvsup-lab-udp@.service"))
                        .expect("unit");
                assert!(
                    unit.contains("ExecStart=/usr/bin/python3 /srv/lvsup-lab/udp-responder.py %i"),
                    "{unit}"
                );
                let script = std::fs::read_to_string(root.join("srv/lvsup-lab/udp-responder.py"))
                    .expect("script");
                assert_eq!(script, super::UDP_RESPONDER);
                let name =
                    std::fs::read_to_string(root.join("srv/lvsup-lab/index.html")).expect("name");
                assert_eq!(name, format!("{}\n", h.name));
            }
        }
    }
}
