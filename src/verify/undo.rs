//! Durable undo records (pure): what `lvsup verify` writes on a host before
//! it disrupts it, and what the next `verify`, `apply` or `destroy` decides
//! about the records an interrupted verify left there.
//!
//! One file per disruption under [`crate::layout::verify_undo_dir`], written
//! (to a temporary name, then renamed) *before* the disruption and removed
//! once it is undone. The record is one line of JSON (serde): what was done,
//! when, by whom (user@machine, pid) and the exact shell command that undoes
//! it. Records are read back from hosts, so they are untrusted: bounded in
//! size, checked field by field, and anything else is an error, never a
//! panic. The shell commands are templates/scripts/verify-undo-*.sh.j2,
//! every value quoted by their `sh` filter.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use minijinja::context;

use crate::layout::{VERIFY_UNDO_MAX_BYTES, verify_undo_dir};
use crate::script;

/// The record format's version; a record of another version is refused.
pub const VERSION: u32 = 1;

/// One disruption verify made on `host`, and how to undo it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    pub cluster: String,
    /// The host (its name in the cluster file) the disruption is on.
    pub host: String,
    /// What verify did, in a few words (`lvsup-director-web.service stopped on node1`).
    pub what: String,
    /// The shell command, run on `host` as root, that undoes it.
    pub undo: String,
    /// When, in seconds since the Unix epoch.
    pub at: u64,
    /// Who: the operator's login name, the machine and pid of that verify.
    pub user: String,
    pub machine: String,
    pub pid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("{0} bytes, more than the {max} an undo record can be", max = VERIFY_UNDO_MAX_BYTES)]
    TooLarge(usize),
    #[error("not an undo record of lvsup verify: {0}")]
    Malformed(String),
    #[error("undo record version {0} (this lvsup reads version {VERSION})")]
    Version(u32),
}

impl Record {
    /// The record's file content: one line of JSON.
    pub fn render(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Read a record back (see the module comment: untrusted input).
    pub fn parse(text: &str, cluster: &str) -> Result<Record, RecordError> {
        if text.len() > VERIFY_UNDO_MAX_BYTES {
            return Err(RecordError::TooLarge(text.len()));
        }
        let r: Record =
            serde_json::from_str(text.trim()).map_err(|e| RecordError::Malformed(e.to_string()))?;
        if r.version != VERSION {
            return Err(RecordError::Version(r.version));
        }
        if r.cluster != cluster {
            return Err(RecordError::Malformed(format!(
                "written for cluster {:?}, not {cluster:?}",
                r.cluster
            )));
        }
        for (name, v) in [("undo", &r.undo), ("what", &r.what), ("host", &r.host)] {
            if v.trim().is_empty() {
                return Err(RecordError::Malformed(format!("empty {name}")));
            }
        }
        if r.undo.contains('\0') {
            return Err(RecordError::Malformed("a NUL in the undo command".into()));
        }
        Ok(r)
    }

    /// When, RFC 3339 UTC (`2026-12-01T19:09:52Z`).
    pub fn when(&self) -> String {
        // humantime formats years up to 9999 only (a host's record may say anything)
        const YEAR_9999_END: u64 = 253_402_300_799;
        let secs = if self.at > YEAR_9999_END { 0 } else { self.at };
        let t = UNIX_EPOCH
            .checked_add(Duration::from_secs(secs))
            .unwrap_or(UNIX_EPOCH);
        humantime::format_rfc3339_seconds(t).to_string()
    }

    /// Who: `user@machine (pid N)`.
    pub fn who(&self) -> String {
        format!("{}@{} (pid {})", self.user, self.machine, self.pid)
    }

    /// The file name of the record: unique per verify run and step.
    pub fn file_name(&self, seq: u64) -> String {
        format!("{}-{}-{seq}", self.at, self.pid)
    }
}

/// Seconds since the epoch now (0 if the clock is before it).
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The path of record `name` of `cluster` on its host.
pub fn path(cluster: &str, name: &str) -> String {
    format!("{}/{name}", verify_undo_dir(cluster))
}

/// Shell: write `rec` at `path` (templates/scripts/verify-undo-write.sh.j2:
/// a temporary dot-file renamed into place, so a cut connection leaves no
/// half record for the listing).
pub fn write_command(rec: &Record, path: &str) -> String {
    let (dir, name) = path.rsplit_once('/').unwrap_or((".", path));
    script::render_line(
        "verify-undo-write.sh.j2",
        context! {
            dir,
            record => rec.render(),
            tmp => format!("{dir}/.{name}.tmp"),
            path,
        },
    )
}

/// Shell: remove the record at `path` (the change is undone).
pub fn remove_command(path: &str) -> String {
    script::render_line("verify-undo-remove.sh.j2", context! { path })
}

/// Shell: run `undo`, and only when it succeeds remove its record at `path`.
pub fn replay_command(undo: &str, path: &str) -> String {
    script::render_line("verify-undo-replay.sh.j2", context! { undo, path })
}

/// A record found on a host: where, and what it says (or why it cannot be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    pub path: String,
    pub record: Result<Record, RecordError>,
}

/// The most records read from one host; more is someone else's doing.
pub const MAX_RECORDS: usize = 64;

/// Parse the output of [`crate::observe::verify_undo_list_command`].
pub fn parse_listing(text: &str, cluster: &str) -> Vec<Leftover> {
    let dir = format!("{}/", verify_undo_dir(cluster));
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if out.len() == MAX_RECORDS {
            out.push(Leftover {
                path: dir.clone(),
                record: Err(RecordError::Malformed(format!(
                    "more than {MAX_RECORDS} undo records"
                ))),
            });
            break;
        }
        let (path, body) = line.split_once('\t').unwrap_or((line, ""));
        let record = if !path.starts_with(&dir) || path.len() == dir.len() {
            Err(RecordError::Malformed(format!(
                "listed as {path:?}, not a file in {dir}"
            )))
        } else {
            Record::parse(body, cluster)
        };
        out.push(Leftover {
            path: path.to_string(),
            record,
        });
    }
    out
}

/// Put leftovers in the order to replay them: newest first (records are
/// named `AT-PID-SEQ`; the undo of a later change may depend on the earlier
/// one being still in place, as in the in-memory log), unreadable ones last.
pub fn replay_order(l: &mut [Leftover]) {
    let key = |l: &Leftover| {
        let seq = l
            .path
            .rsplit('-')
            .next()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
        match &l.record {
            Ok(r) => (1, r.at, seq),
            Err(_) => (0, 0, 0),
        }
    };
    l.sort_by_key(|x| std::cmp::Reverse(key(x)));
}

/// What to do about one leftover record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Its verify is gone: run the undo, then remove the record.
    Undo(Record),
    /// Its verify still runs on this machine: leave it alone (that verify
    /// undoes it); the host must not be changed meanwhile.
    Running(Record),
    /// Not a record lvsup can act on: say so; nothing is run.
    Unreadable(String),
}

/// Decide about `l`, found while running on machine `here`; `alive(pid)`:
/// whether a process with that pid runs on this machine.
pub fn decide(l: &Leftover, here: &str, alive: &dyn Fn(u32) -> bool) -> Decision {
    match &l.record {
        Err(e) => Decision::Unreadable(format!("{}: {e}", l.path)),
        Ok(r) if r.machine == here && r.pid != 0 && alive(r.pid) => Decision::Running(r.clone()),
        Ok(r) => Decision::Undo(r.clone()),
    }
}

/// What a replay says: `HOST: undid an interrupted verify from WHEN by WHO: WHAT`.
pub fn undone_message(host: &str, r: &Record) -> String {
    format!(
        "{host}: undid an interrupted verify from {} by {}: {}",
        r.when(),
        r.who(),
        r.what
    )
}

/// The plan's drift line for a leftover record.
pub fn drift_summary(r: &Record) -> String {
    format!(
        "interrupted verify left {} (from {} by {}; apply or verify will undo it)",
        r.what,
        r.when(),
        r.who()
    )
}

/// Why a record stops apply or destroy on `host`.
pub fn refusal(host: &str, d: &Decision) -> Option<String> {
    match d {
        Decision::Undo(_) => None,
        Decision::Running(r) => Some(format!(
            "{host}: verify (pid {}) is running and has disrupted this host ({}): \
             wait for it to end or stop it",
            r.pid, r.what
        )),
        Decision::Unreadable(why) => Some(format!(
            "{host}: an unreadable verify undo record: {why}; look at it and remove it"
        )),
    }
}

/// The sentence that follows a failed undo: the record stays for the next run.
pub fn kept_note(path: &str) -> String {
    format!(
        "its record {path} stays on the host: the next lvsup verify, apply or destroy undoes it"
    )
}

/// The backoff before each retry of an undo whose connection was lost.
pub const RETRY_BACKOFF: [Duration; 3] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> Record {
        Record {
            version: VERSION,
            cluster: "web".into(),
            host: "node1".into(),
            what: "systemctl start lvsup-director-web.service on node1".into(),
            undo: "systemctl start lvsup-director-web.service".into(),
            at: 1_796_152_192,
            user: "alice".into(),
            machine: "laptop".into(),
            pid: 4242,
        }
    }

    #[test]
    fn a_record_renders_to_one_line_and_parses_back() {
        let mut r = rec();
        r.undo = "a\nb\tc 'quoted' $(x)".into();
        let text = r.render();
        assert!(!text.contains('\n') && !text.contains('\t'), "{text}");
        assert_eq!(Record::parse(&text, "web"), Ok(r.clone()));
        // as the listing reads it: trailing newline gone
        assert_eq!(Record::parse(&format!("{text}\n"), "web"), Ok(r));
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        let good = rec().render();
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "not an undo record"),
            ("{".into(), "not an undo record"),
            ("\u{1b}[2J\0\u{7f}".into(), "not an undo record"),
            ("[1,2,3]".into(), "not an undo record"),
            (good.replace("\"pid\":4242", "\"pid\":-1"), "not an undo"),
            (
                good.replace("\"pid\":4242", "\"pid\":99999999999"),
                "not an undo",
            ),
            (good.replace("\"version\":1", "\"version\":2"), "version 2"),
            (
                good.replace("\"cluster\":\"web\"", "\"cluster\":\"db\""),
                "cluster \"db\"",
            ),
            (
                good.replace(
                    "\"undo\":\"systemctl start lvsup-director-web.service\"",
                    "\"undo\":\" \"",
                ),
                "empty undo",
            ),
            (
                good.replace(
                    "\"undo\":\"systemctl start lvsup-director-web.service\"",
                    "\"undo\":\"x\\u0000\"",
                ),
                "NUL",
            ),
            ("x".repeat(VERIFY_UNDO_MAX_BYTES + 1), "more than"),
        ];
        for (text, want) in cases {
            let e = Record::parse(&text, "web").expect_err(&text);
            assert!(e.to_string().contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn when_and_who_read_like_the_lock_owner() {
        let r = rec();
        assert_eq!(r.when(), "2026-12-01T19:09:52Z");
        assert_eq!(r.who(), "alice@laptop (pid 4242)");
        let mut far = r.clone();
        far.at = u64::MAX;
        assert_eq!(far.when(), "1970-01-01T00:00:00Z"); // no panic on any value
        far.at = 300_000_000_000;
        assert_eq!(far.when(), "1970-01-01T00:00:00Z");
        assert_eq!(r.file_name(3), "1796152192-4242-3");
    }

    #[test]
    fn the_listing_yields_records_and_unreadable_entries() {
        let dir = verify_undo_dir("web");
        let good = rec().render();
        let text =
            format!("{dir}/1-2-1\t{good}\n{dir}/1-2-2\tgarbage\n/etc/passwd\t{good}\n{dir}/x\n\n");
        let l = parse_listing(&text, "web");
        assert_eq!(l.len(), 4);
        assert_eq!(l[0].path, format!("{dir}/1-2-1"));
        assert_eq!(l[0].record, Ok(rec()));
        assert!(l[1].record.is_err());
        assert!(l[2].record.is_err(), "a path outside the directory");
        assert!(l[3].record.is_err(), "no content");
        assert!(parse_listing("", "web").is_empty());
        let many: String = (0..100).map(|i| format!("{dir}/{i}\t{good}\n")).collect();
        let l = parse_listing(&many, "web");
        assert_eq!(l.len(), MAX_RECORDS + 1);
        assert!(l[MAX_RECORDS].record.is_err());
    }

    #[test]
    fn leftovers_replay_newest_first() {
        let at = |at: u64, seq: u64| {
            let mut r = rec();
            r.at = at;
            Leftover {
                path: format!("/d/{at}-1-{seq}"),
                record: Ok(r),
            }
        };
        let bad = Leftover {
            path: "/d/zzz".into(),
            record: Err(RecordError::Malformed("x".into())),
        };
        let mut l = vec![bad.clone(), at(10, 1), at(20, 3), at(20, 12), at(5, 9)];
        replay_order(&mut l);
        let paths: Vec<&str> = l.iter().map(|l| l.path.as_str()).collect();
        assert_eq!(
            paths,
            ["/d/20-1-12", "/d/20-1-3", "/d/10-1-1", "/d/5-1-9", "/d/zzz"]
        );
    }

    #[test]
    fn replay_decisions() {
        let l = Leftover {
            path: "/p".into(),
            record: Ok(rec()),
        };
        let dead = |_: u32| false;
        let alive = |_: u32| true;
        // a dead verify on this machine, any verify elsewhere: undo
        assert_eq!(decide(&l, "laptop", &dead), Decision::Undo(rec()));
        assert_eq!(decide(&l, "ci-runner", &alive), Decision::Undo(rec()));
        // a verify still running here: leave it to that verify
        let d = decide(&l, "laptop", &alive);
        assert_eq!(d, Decision::Running(rec()));
        assert!(refusal("node1", &d).is_some_and(|m| m.contains("pid 4242")));
        let bad = Leftover {
            path: "/p".into(),
            record: Err(RecordError::Malformed("x".into())),
        };
        let d = decide(&bad, "laptop", &dead);
        assert!(matches!(&d, Decision::Unreadable(m) if m.starts_with("/p: ")));
        assert!(refusal("node1", &d).is_some_and(|m| m.contains("unreadable")));
        assert_eq!(refusal("node1", &Decision::Undo(rec())), None);
    }

    #[test]
    fn messages_name_host_time_operator_and_change() {
        assert_eq!(
            undone_message("node1", &rec()),
            "node1: undid an interrupted verify from 2026-12-01T19:09:52Z by alice@laptop \
             (pid 4242): systemctl start lvsup-director-web.service on node1"
        );
        assert!(drift_summary(&rec()).starts_with("interrupted verify left systemctl start"));
    }

    #[test]
    fn shell_commands_quote_the_record_and_remove_it_only_after_the_undo() {
        let mut r = rec();
        r.what = "it's $(reboot)".into();
        let w = write_command(&r, "/var/lib/lvsup/web/verify-undo/1-2-3");
        assert!(
            w.contains("> '/var/lib/lvsup/web/verify-undo/.1-2-3.tmp'"),
            "{w}"
        );
        assert!(w.ends_with("mv -f '/var/lib/lvsup/web/verify-undo/.1-2-3.tmp' '/var/lib/lvsup/web/verify-undo/1-2-3'"), "{w}");
        assert!(w.contains(r"it'\''s $(reboot)"), "{w}");
        assert_eq!(
            replay_command("systemctl start x", "/d/1"),
            "(\nsystemctl start x\n) && rm -f -- '/d/1'"
        );
    }
}
