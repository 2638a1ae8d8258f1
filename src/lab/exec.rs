//! `lvsup lab status` and `lvsup lab exec`, and the summary `lab up` prints.

use super::*;

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
