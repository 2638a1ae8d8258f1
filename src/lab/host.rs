//! The commands the lab drives (`ip`, `mount`, `systemd-nspawn`, ...) and the preflight checks.

use super::*;

// ---------------------------------------------------------------- commands

/// Run a command, fail with its stderr when it fails.
pub(super) fn run(args: &[&str]) -> Result<String> {
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
pub(super) fn run_quiet(args: &[&str]) -> bool {
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

pub(super) fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

pub(super) fn have(prog: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(prog).is_file()))
}

pub(super) fn kernel_release() -> String {
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
