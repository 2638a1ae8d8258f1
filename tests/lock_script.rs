//! The cluster lock script (templates/scripts/lock.sh) run here, on a
//! temporary directory instead of /var/lib/lvsup/NAME: a second session
//! fails naming the holder, a clean release removes the owner file, a
//! session that ends without releasing leaves it and the next one reports
//! it, a waiting session gets the lock when the holder releases it.
//! Needs `flock` (util-linux) and `stat` (coreutils), as on the hosts.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lvsup::apply::lock::{self, Answer, Owner};

fn owner(user: &str) -> Owner {
    lock::owner(user, "laptop", 4242, "apply", "2026-12-01T16:42:35Z")
}

/// Start the script; return it and its output once locked (or at its end).
fn start(dir: &Path, secs: u64, who: &Owner) -> (Child, String) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(lock::script())
        .arg("lvsup-lock")
        .arg(dir)
        .arg(secs.to_string())
        .arg(who.render())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sh");
    let mut out = String::new();
    let mut lines = BufReader::new(child.stdout.take().expect("stdout"));
    // complete: locked (it goes on running) or the end of its output
    while !matches!(lock::parse_answer(&out), Some(Answer::Locked { .. })) {
        let mut l = String::new();
        if lines.read_line(&mut l).expect("read") == 0 {
            break;
        }
        out.push_str(&l);
    }
    (child, out)
}

fn end(mut child: Child, word: Option<&str>) {
    let mut stdin = child.stdin.take().expect("stdin");
    if let Some(w) = word {
        stdin.write_all(w.as_bytes()).expect("write");
    }
    drop(stdin);
    assert!(child.wait().expect("wait").success());
}

#[test]
fn a_second_session_waits_then_fails_naming_the_holder() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("web");
    let (a, out) = start(&dir, 0, &owner("alice"));
    assert_eq!(
        lock::parse_answer(&out),
        Some(Answer::Locked {
            waited: false,
            stale: None
        }),
        "{out}"
    );
    let (mut b, out) = start(&dir, 1, &owner("bob"));
    assert_eq!(
        lock::parse_answer(&out),
        Some(Answer::Busy {
            holder: Some(owner("alice"))
        }),
        "{out}"
    );
    assert_eq!(b.wait().expect("wait").code(), Some(3));
    // 0 = fail at once, also naming the holder
    let (_, out) = start(&dir, 0, &owner("bob"));
    assert!(
        matches!(lock::parse_answer(&out), Some(Answer::Busy { holder: Some(o) }) if o.user == "alice")
    );
    end(a, Some(lock::release_word(false)));
    assert!(
        !dir.join("lock.owner").exists(),
        "a clean release removes the owner file"
    );
    // alice's session created the cluster's directory and nothing else was
    // put there (a refused or no-op apply): it goes, the host is as before
    assert!(!dir.exists(), "the session's own empty directory stays");
    assert!(tmp.path().exists(), "the parent existed before: kept");
}

#[test]
fn a_release_keeps_a_directory_that_holds_state_or_was_there_before() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // created by this session, but apply put state there
    let dir = tmp.path().join("lvsup/web");
    let (a, _) = start(&dir, 0, &owner("alice"));
    std::fs::write(dir.join("previous-sysctl.json"), "{}").expect("state");
    end(a, Some(lock::release_word(false)));
    assert!(dir.join("lock").exists() && dir.join("previous-sysctl.json").exists());
    assert!(!dir.join("lock.owner").exists());
    // there before this session (an earlier apply's): kept as it was
    std::fs::remove_file(dir.join("previous-sysctl.json")).expect("rm");
    let (b, _) = start(&dir, 0, &owner("bob"));
    end(b, Some(lock::release_word(false)));
    assert!(
        dir.join("lock").exists(),
        "an earlier session's directory stays"
    );
    // created with its parent, nothing else put there: both go
    let fresh = tmp.path().join("fresh/web");
    let (c, _) = start(&fresh, 0, &owner("carol"));
    end(c, Some(lock::release_word(false)));
    assert!(!tmp.path().join("fresh").exists());
}

#[test]
fn a_session_that_ends_without_releasing_is_reported_by_the_next() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("web");
    let (a, _) = start(&dir, 0, &owner("alice"));
    end(a, None); // its stdin closed: a killed lvsup, a lost connection
    let left = std::fs::read_to_string(dir.join("lock.owner")).expect("owner left");
    assert!(Owner::parse(&left).ended_unreleased, "{left}");
    let (b, out) = start(&dir, 0, &owner("bob"));
    match lock::parse_answer(&out) {
        Some(Answer::Locked {
            stale: Some(prev), ..
        }) => {
            assert_eq!(prev.user, "alice");
            assert!(prev.ended_unreleased);
        }
        other => panic!("{other:?}\n{out}"),
    }
    assert_eq!(
        Owner::parse(&std::fs::read_to_string(dir.join("lock.owner")).expect("owner")),
        owner("bob")
    );
    // destroy's release removes the lock and the cluster's directory
    end(b, Some(lock::release_word(true)));
    assert!(!dir.exists());
}

#[test]
fn a_waiting_session_gets_the_lock_when_the_holder_releases() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("web");
    let (a, _) = start(&dir, 0, &owner("alice"));
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        end(a, Some(lock::release_word(false)));
    });
    let (b, out) = start(&dir, 20, &owner("bob"));
    releaser.join().expect("join");
    assert_eq!(
        lock::parse_answer(&out),
        Some(Answer::Locked {
            waited: true,
            stale: None
        }),
        "{out}"
    );
    end(b, Some(lock::release_word(false)));
}
