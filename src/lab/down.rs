//! `lvsup lab down`: stop the containers, remove cgroups, mounts, links and state.

use super::*;

// ---------------------------------------------------------------- down

/// Processes whose command line contains `needle` (as one argument).
pub(super) fn pids_with_arg(needle: &str) -> Vec<u32> {
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

pub(super) fn children(pid: u32) -> Vec<u32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn kill(pid: u32, sig: &str) {
    let _ = run_quiet(&["kill", sig, &pid.to_string()]);
}

/// Stop the lab's containers. A lab host keeps nothing worth a clean
/// shutdown (its root is a throwaway overlay and its network namespace goes
/// next), and a clean poweroff of every host's systemd took ~20 s under the
/// VM lab's emulation, once per lab. So everything is killed at once: the
/// host's whole cgroup where there is one (cgroup v2 `cgroup.kill`: launcher,
/// nspawn and every process of the container), else launcher, nspawn and the
/// container's init by pid (killing a PID namespace's init kills the namespace).
pub(super) fn stop_containers(t: &Topology) {
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
        for cg in cgroup_dirs(&h.machine) {
            remove_cgroup(&cg);
        }
    }
    for cg in cgroup_dirs("x") {
        if let Some(parent) = cg.parent() {
            let _ = fs::remove_dir(parent);
        }
    }
}

/// Remove a cgroup and the ones nspawn and the container's systemd made
/// under it, deepest first (a cgroup directory goes with rmdir once it has no
/// processes and no children). Retries while the killed processes exit.
pub(super) fn remove_cgroup(cg: &Path) {
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

pub(super) fn is_mounted(path: &Path) -> bool {
    let p = path.display().to_string();
    fs::read_to_string("/proc/self/mounts").is_ok_and(|m| {
        m.lines()
            .any(|l| l.split_whitespace().nth(1) == Some(p.as_str()))
    })
}

pub(super) fn unmount(path: &Path) {
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

pub(super) fn down_topology(t: &Topology) -> Result<DownReport> {
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
