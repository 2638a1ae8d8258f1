//! The cluster lock on each host (pure parts): `apply` and `destroy` hold
//! `flock(2)` on `/var/lib/lvsup/NAME/lock` ([`crate::layout::state_dir`]) on every host they work on, for
//! the whole session, through a remote shell (templates/scripts/lock.sh.j2) that
//! lives as long as its SSH channel: a killed lvsup or a lost connection ends
//! it and the kernel releases the lock. Who holds it is written to
//! `lock.owner` next to it; a clean release removes that file, so a
//! `lock.owner` found by the next session that takes the lock is the trace
//! of a session that did not end cleanly, and is reported, never silently
//! taken over.
//!
//! This module has the owner file format, the script and its arguments, and
//! the reading of the script's answer; [`crate::remote::Host::hold`] runs it.

use std::fmt;

use crate::config::diag::terminal_safe;
use crate::layout;
use crate::script::{self, shell_quote};

/// The script that takes and holds the lock (templates/scripts/lock.sh.j2;
/// its inputs are arguments, the cluster's [`layout::state_dir`] first).
pub fn script() -> String {
    script::render(
        "lock.sh.j2",
        minijinja::context! {
            root => layout::STATE_ROOT,
            undo => layout::VERIFY_UNDO_SUBDIR,
        },
    )
}

/// Who holds (or held) a lock: the contents of `lock.owner`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Owner {
    /// The operator's login name.
    pub user: String,
    /// The machine lvsup ran on.
    pub host: String,
    pub pid: u32,
    /// `apply` or `destroy`.
    pub command: String,
    /// When it took the lock, RFC 3339 UTC (`2026-12-01T16:42:35Z`).
    pub started: String,
    /// The session ended without releasing the lock (set by the script).
    pub ended_unreleased: bool,
}

impl Owner {
    /// The owner file: `key=value` lines. Values lose control characters
    /// (a line break in `$USER` must not forge a line).
    pub fn render(&self) -> String {
        let clean = |s: &str| -> String {
            s.chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect()
        };
        format!(
            "user={}\nhost={}\npid={}\ncommand={}\nstarted={}",
            clean(&self.user),
            clean(&self.host),
            self.pid,
            clean(&self.command),
            clean(&self.started)
        )
    }

    /// Read an owner file (lenient: unknown keys are skipped, missing ones
    /// stay empty; host output is untrusted, so never a panic).
    pub fn parse(text: &str) -> Owner {
        let mut o = Owner::default();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with("ended:") {
                o.ended_unreleased = true;
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim().to_string();
            match k.trim() {
                "user" => o.user = v,
                "host" => o.host = v,
                "pid" => o.pid = v.parse().unwrap_or(0),
                "command" => o.command = v,
                "started" => o.started = v,
                _ => {}
            }
        }
        o
    }
}

impl fmt::Display for Owner {
    /// `lvsup apply by alice@laptop (pid 4242) since 2026-12-01T16:42:35Z`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or = |s: &str| {
            if s.is_empty() {
                "?".to_string()
            } else {
                terminal_safe(s)
            }
        };
        write!(
            f,
            "lvsup {} by {}@{} (pid {}) since {}",
            or(&self.command),
            or(&self.user),
            or(&self.host),
            self.pid,
            or(&self.started)
        )
    }
}

/// The remote command line (`sh -c SCRIPT lvsup-lock DIR SECS OWNER`), each
/// word quoted for the remote shell.
pub fn argv(cluster: &str, wait_secs: u64, owner: &Owner) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        shell_quote(&script()),
        "lvsup-lock".into(),
        shell_quote(&layout::state_dir(cluster)),
        wait_secs.to_string(),
        shell_quote(&owner.render()),
    ]
}

/// The word that ends a held lock cleanly: `release` keeps the lock file,
/// `remove` (after destroy) removes it and the cluster's directory.
pub fn release_word(remove: bool) -> &'static str {
    if remove { "remove\n" } else { "release\n" }
}

/// What the script answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Taken. `waited`: another session held it first; `stale`: the previous
    /// session's owner file was still there (it did not release the lock).
    Locked { waited: bool, stale: Option<Owner> },
    /// Still held by another session after the wait.
    Busy { holder: Option<Owner> },
}

/// Read the script's stdout (pure): `Locked` as soon as `locked` came (the
/// script goes on running); `Busy` once `busy` came, complete only when the
/// script ended (the holder's lines follow it). `None`: neither (yet).
pub fn parse_answer(out: &str) -> Option<Answer> {
    let mut waited = false;
    let mut section: Option<&str> = None;
    let mut owner = String::new();
    let mut stale = None;
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("  ") {
            owner.push_str(rest);
            owner.push('\n');
            continue;
        }
        // a section ends at the next word
        if section == Some("stale") {
            stale = Some(Owner::parse(&owner));
        }
        owner.clear();
        match line.trim() {
            "waited" => waited = true,
            "locked" => return Some(Answer::Locked { waited, stale }),
            w @ ("busy" | "stale") => section = Some(w),
            _ => section = None,
        }
    }
    (section == Some("busy")).then(|| Answer::Busy {
        holder: (!owner.is_empty()).then(|| Owner::parse(&owner)),
    })
}

/// Why `host` could not be locked: who holds it (for the error).
pub fn busy_message(cluster: &str, wait_secs: u64, holder: Option<&Owner>) -> String {
    let who = holder.map_or_else(
        || "another session (its owner file is missing)".to_string(),
        |o| o.to_string(),
    );
    format!(
        "cluster \"{cluster}\" is locked by {who}; waited {wait_secs}s (--lock-timeout); \
         run again when it is done"
    )
}

/// What to tell about a previous session's leftover owner file.
pub fn stale_message(host: &str, previous: &Owner) -> String {
    format!(
        "{host}: the previous {previous} did not finish (its session ended without \
         releasing the lock); taking the lock. Check what it left with `lvsup plan`"
    )
}

/// This lvsup's owner record (`user`/`host` from the caller: I/O).
pub fn owner(user: &str, host: &str, pid: u32, command: &str, started: &str) -> Owner {
    Owner {
        user: user.into(),
        host: host.into(),
        pid,
        command: command.into(),
        started: started.into(),
        ended_unreleased: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Owner {
        owner("alice", "laptop", 4242, "apply", "2026-12-01T16:42:35Z")
    }

    #[test]
    fn owner_file_round_trips_and_forged_lines_are_defused() {
        let o = alice();
        assert_eq!(
            o.render(),
            "user=alice\nhost=laptop\npid=4242\ncommand=apply\nstarted=2026-12-01T16:42:35Z"
        );
        assert_eq!(Owner::parse(&o.render()), o);
        let evil = owner("eve\ncommand=destroy", "h", 1, "apply", "t");
        let back = Owner::parse(&evil.render());
        assert_eq!(back.command, "apply");
        assert_eq!(back.user, "eve?command=destroy");
        // garbage never panics, unknown keys are skipped
        let g = Owner::parse("pid=notanumber\nx\n=\nfoo=bar\nended: without release\n");
        assert_eq!(g.pid, 0);
        assert!(g.ended_unreleased);
        assert_eq!(
            alice().to_string(),
            "lvsup apply by alice@laptop (pid 4242) since 2026-12-01T16:42:35Z"
        );
    }

    fn indented(o: &Owner) -> String {
        o.render().lines().map(|l| format!("  {l}\n")).collect()
    }

    #[test]
    fn answers_of_the_script() {
        assert_eq!(
            parse_answer("locked\n"),
            Some(Answer::Locked {
                waited: false,
                stale: None
            })
        );
        assert_eq!(
            parse_answer(&format!("waited\nstale\n{}locked\n", indented(&alice()))),
            Some(Answer::Locked {
                waited: true,
                stale: Some(alice())
            })
        );
        assert_eq!(
            parse_answer(&format!("waited\nbusy\n{}", indented(&alice()))),
            Some(Answer::Busy {
                holder: Some(alice())
            })
        );
        assert_eq!(parse_answer("busy\n"), Some(Answer::Busy { holder: None }));
        // not complete: the marker has not come yet
        assert_eq!(parse_answer(""), None);
        assert_eq!(parse_answer("waited\n"), None);
        assert_eq!(
            parse_answer(&format!("stale\n{}", indented(&alice()))),
            None
        );
    }

    #[test]
    fn messages_name_the_holder() {
        let m = busy_message("web", 1, Some(&alice()));
        assert_eq!(
            m,
            "cluster \"web\" is locked by lvsup apply by alice@laptop (pid 4242) since \
             2026-12-01T16:42:35Z; waited 1s (--lock-timeout); run again when it is done"
        );
        assert!(busy_message("web", 0, None).contains("owner file is missing"));
        let s = stale_message("rs1", &alice());
        assert!(
            s.starts_with(
                "rs1: the previous lvsup apply by alice@laptop (pid 4242) since \
                 2026-12-01T16:42:35Z did not finish (its session ended without releasing"
            ),
            "{s}"
        );
    }

    #[test]
    fn the_arguments_are_quoted_for_the_remote_shell() {
        let a = argv("web", 30, &alice());
        assert_eq!(a[0], "sh");
        assert_eq!(a[4], "'/var/lib/lvsup/web'");
        assert_eq!(a[5], "30");
        assert!(a[6].starts_with("'user=alice\n"), "{}", a[6]);
        assert!(a[2].starts_with("'#!/bin/sh"));
    }
}
