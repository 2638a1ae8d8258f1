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
    out
}
