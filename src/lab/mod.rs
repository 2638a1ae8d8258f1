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

mod down;
mod exec;
mod host;
pub mod topology;
mod up;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use minijinja::context;
use serde::{Deserialize, Serialize};

use down::*;
pub use down::{DownReport, down};
pub use exec::{describe, exec, status};
pub use host::preflight;
use host::*;
pub use topology::{HostRole, LabHost, Topology, topology};
use up::*;
pub use up::{UDP_RESPONDER, inotify_instances_needed, launcher_script, up};

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
