//! `lvsup lab up`: base image, network, per-host overlay, provisioning, launch, SSH wait.

use super::*;

// ---------------------------------------------------------------- up

/// Find or prepare the base root filesystem; returns (path, mounted by us).
pub(super) fn resolve_base(opt: Option<&Path>) -> Result<(PathBuf, bool)> {
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
pub(super) fn raise_inotify_limit(hosts: usize) -> Result<()> {
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

pub(super) fn build(t: &Topology, file: &Path, opts: &UpOptions) -> Result<LabState> {
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

pub(super) fn keygen(path: &Path, comment: &str) -> Result<()> {
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

/// The lab's `ssh -F` file. Key exchange: `curve25519-sha256` first. OpenSSH
/// 9.2's default (Debian 12), the post-quantum hybrid `sntrup761x25519`, cost
/// ~0.1 s of CPU per connection on each side here (measured: 10 fresh
/// connections 1.07 s of client CPU against 0.10 s), and in the lab both sides
/// share this machine's cores: a plan of 50 lab hosts spent 4.2 s of CPU in
/// ssh, under the VM's emulation a connection took seconds. The lab's traffic
/// never leaves the machine, so the classic curve is enough here; on real
/// hosts lvsup never chooses ciphers (docs/guide/live.md, "Many hosts").
pub(super) fn ssh_config_text(t: &Topology, dir: &Path) -> String {
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
         KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org\n  \
         ServerAliveInterval 10\n  ControlMaster auto\n  ControlPath {d}/cm-%C\n  \
         ControlPersist 300\n  LogLevel ERROR\n"
    );
    s
}

pub(super) fn network_up(t: &Topology) -> Result<()> {
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

pub(super) fn host_dir(t: &Topology, h: &LabHost) -> PathBuf {
    Path::new(&t.state_dir()).join("hosts").join(&h.name)
}

/// Mount the host's overlay (base below, a tmpfs directory above).
pub(super) fn host_root(t: &Topology, h: &LabHost, base: &Path) -> Result<PathBuf> {
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
pub(super) const MASKED: &[&str] = &[
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

pub(super) fn write(root: &Path, rel: &str, content: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let p = root.join(rel.trim_start_matches('/'));
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(&p, content).with_context(|| format!("writing {}", p.display()))?;
    fs::set_permissions(&p, fs::Permissions::from_mode(mode))?;
    Ok(())
}

pub(super) fn symlink(root: &Path, rel: &str, target: &str) -> Result<()> {
    let p = root.join(rel.trim_start_matches('/'));
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent)?;
    }
    let _ = fs::remove_file(&p);
    std::os::unix::fs::symlink(target, &p).with_context(|| format!("linking {}", p.display()))
}

pub(super) fn provision(
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
pub(super) const UDP_RESPONDER_PATH: &str = "/srv/lvsup-lab/udp-responder.py";

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
pub(super) fn launcher_tag(machine: &str) -> String {
    format!("lvsup-lab-launcher:{machine}")
}

pub(super) fn cgroup_dir(machine: &str) -> Option<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    root.join("cgroup.controllers")
        .exists()
        .then(|| root.join("lvsup-lab").join(machine))
}

/// The cgroups a host's container runs in, one per hierarchy: on cgroup v2
/// [`cgroup_dir`]; on a cgroup v1 (or hybrid) host, `lvsup-lab/MACHINE` in
/// the `name=systemd` hierarchy and in the `unified` one where it is
/// mounted. Without them every container's systemd starts in the same
/// cgroup and they create and prune the same unit cgroups
/// (`system.slice/ssh.service`...) under each other: units then failed with
/// `status=219/CGROUP` on some hosts of every 50- and 200-host lab
/// (benches/apply_bench.sh, 2026-12-02/03).
pub(super) fn cgroup_dirs(machine: &str) -> Vec<PathBuf> {
    if let Some(d) = cgroup_dir(machine) {
        return vec![d];
    }
    ["systemd", "unified"]
        .iter()
        .map(|h| Path::new("/sys/fs/cgroup").join(h))
        .filter(|h| h.join("cgroup.procs").exists())
        .map(|h| h.join("lvsup-lab").join(machine))
        .collect()
}

/// The launcher of a host's container (run by `setsid sh -c`, `$0` the
/// launcher tag): joins the host's cgroups ([`cgroup_dirs`]), then runs
/// systemd-nspawn with `args` again whenever the container reboots (exit 133).
pub fn launcher_script(args: &[String], cgroups: &[PathBuf]) -> String {
    let cgroups: Vec<String> = cgroups.iter().map(|c| c.display().to_string()).collect();
    script::render_line(
        "lab-launch.sh.j2",
        context! { args => args.to_vec(), cgroups },
    )
}

/// Start the host's container, detached, restarted when it reboots (exit 133).
pub(super) fn launch(t: &Topology, h: &LabHost, root: &Path) -> Result<()> {
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

    // Each container in its own cgroup, or their systemd instances fight over one.
    if let Some(cg) = cgroup_dir(&h.machine) {
        let parent = cg.parent().unwrap_or(Path::new("/sys/fs/cgroup"));
        fs::create_dir_all(&cg).with_context(|| format!("creating cgroup {}", cg.display()))?;
        for ctl in [Path::new("/sys/fs/cgroup"), parent] {
            let _ = fs::write(ctl.join("cgroup.subtree_control"), "+memory +pids");
        }
    }
    let cgs = cgroup_dirs(&h.machine);
    for cg in &cgs {
        fs::create_dir_all(cg).with_context(|| format!("creating cgroup {}", cg.display()))?;
    }
    let script = launcher_script(&args, &cgs);
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

pub(super) fn ssh_true(ssh_config: &Path, host: &str) -> bool {
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
pub(super) fn wait_for_ssh(t: &Topology, ssh_config: &Path, timeout: Duration) -> Result<()> {
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
