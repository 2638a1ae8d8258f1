//! `[ssh]`: how lvsup reaches the hosts.

use super::check::V;
use crate::config::model::{HostKeyChecking, SshSettings};
use crate::config::raw::RawSsh;

pub(super) fn ssh_settings(v: &mut V<'_>, s: &RawSsh) -> SshSettings {
    let mut out = SshSettings::default();
    if let Some(u) = &s.user {
        out.user = v.word("ssh.user", u, "user name");
    }
    if let Some(p) = &s.port {
        out.port = v.int("ssh.port", p, 1, 65535, "port").map(|n| n as u16);
    }
    if let Some(f) = &s.identity_file {
        out.identity_file = v.word("ssh.identity_file", f, "path");
    }
    if let Some(c) = &s.config {
        out.config = v.word("ssh.config", c, "path");
    }
    if let Some(b) = &s.become_ {
        out.become_sudo = v.one_of("ssh.become", b, &["sudo"]).is_some();
    }
    if let Some(h) = &s.host_key_checking {
        if let Some(o) = v.one_of("ssh.host_key_checking", h, &["strict", "accept-new"]) {
            out.host_key_checking = if o == "strict" {
                HostKeyChecking::Strict
            } else {
                HostKeyChecking::AcceptNew
            };
        }
    }
    if let Some(d) = &s.control_persist {
        out.control_persist = v.duration("ssh.control_persist", d);
        if out.control_persist.is_some_and(|t| t > MAX_CONTROL_PERSIST) {
            v.err(
                "ssh.control_persist",
                d.span(),
                format!("control_persist must be 0s..=1h, got \"{}\"", d.get_ref()),
            )
            .hint = Some(
                "how long each host's SSH connection stays open after a run for the next one \
                 to reuse; \"0s\" (the default) closes it at the end of every run"
                    .into(),
            );
            out.control_persist = None;
        }
        out.control_persist = out.control_persist.filter(|t| !t.is_zero());
    }
    out
}

/// The longest `[ssh] control_persist`: an hour, the bound lvsup already
/// gives the masters of a run it could not close (a killed lvsup).
pub const MAX_CONTROL_PERSIST: std::time::Duration = std::time::Duration::from_secs(3600);
