//! `lvsup plan` end to end against hosts that answer badly: a compromised or
//! broken host must cost the operator an error naming it, never a panic, a
//! hang or their memory (issue 14). The hosts are played by
//! `tests/fake-ssh/ssh`, first in PATH: a stand-in for ssh's multiplexing
//! master that runs a handler script of the test for each command, with no
//! network at all. The other hosts answer with facts recorded from lab hosts
//! (`tests/fixtures/facts/dr-converged`). Hermetic (python3, as
//! `tools/modgraph` needs).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `lvsup plan examples/dr.toml --target node1 --target node2` where node2
/// (192.168.0.172) runs `node2` (shell) in place of the facts script and
/// node1 answers with its recorded facts (the real servers: the recorded
/// directors come from a kernel without ip_vs). An ssh_config whose
/// ProxyCommand is `false` is passed too: were the real ssh ever found
/// first, it would contact nobody.
fn plan_with_node2(node2: &str) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let facts = root().join("tests/fixtures/facts/dr-converged");
    let handler = dir.path().join("host");
    std::fs::write(
        &handler,
        format!(
            "#!/bin/sh\n\
             cat >/dev/null\n\
             case \"$1\" in\n\
             192.168.0.172) {node2} ;;\n\
             192.168.0.191) cat '{f}/lvs191.facts' ;;\n\
             192.168.0.192) cat '{f}/lvs192.facts' ;;\n\
             192.168.0.171) cat '{f}/node1.facts' ;;\n\
             *) echo \"no such host $1\" >&2; exit 255 ;;\n\
             esac\n",
            f = facts.display()
        ),
    )
    .expect("handler");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&handler, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let cfg = dir.path().join("ssh_config");
    std::fs::write(&cfg, "Host *\n  ProxyCommand false\n").expect("ssh_config");
    let path = format!(
        "{}:{}",
        root().join("tests/fake-ssh").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new(env!("CARGO_BIN_EXE_lvsup"))
        .args([
            "plan",
            "--target",
            "node1",
            "--target",
            "node2",
            "--ssh-config",
        ])
        .arg(&cfg)
        .arg("-f")
        .arg(root().join("examples/dr.toml"))
        .env("PATH", path)
        .env("FAKE_SSH_HANDLER", &handler)
        .env("FAKE_SSH_IDLE", "5")
        .env("NO_COLOR", "1")
        .env_remove("LVSUP_DIRECTOR_BINARY")
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .output()
        .expect("lvsup runs")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The stand-in works: the hosts that answer with recorded facts are
/// planned (the other tests' errors are node2's own, not the harness's).
#[test]
fn recorded_hosts_are_planned_through_the_fake_ssh() {
    let o = plan_with_node2(&format!(
        "cat '{}/tests/fixtures/facts/dr-converged/node2.facts'",
        root().display()
    ));
    let (out, err) = text(&o);
    assert!(!out.contains("ERROR at step"), "{out}\n{err}");
    for host in ["node1", "node2"] {
        assert!(out.contains(&format!("\n{host} (")), "{host}: {out}\n{err}");
    }
    assert!(
        matches!(o.status.code(), Some(0 | 2)),
        "{:?}\n{out}\n{err}",
        o.status
    );
}

/// Issue 14 item 5: a facts header announcing 2^64-1 bytes panicked the
/// parser (overflow, slice index). Now: an error naming node2 and the step,
/// the other host still planned, exit 1 (a host could not be planned).
#[test]
fn a_crafted_facts_header_is_an_error_naming_the_host() {
    let o = plan_with_node2("printf '### os\\nLinux\\n### file 18446744073709551615 /x\\nabc\\n'");
    let (out, err) = text(&o);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(
        out.contains("node2: ERROR at step \"gather facts\": ")
            && out.contains("bad file header \"### file 18446744073709551615 /x\""),
        "{out}\n{err}"
    );
    assert!(out.contains("1 of 2 hosts could not be planned"), "{out}");
    assert!(
        out.contains("\nnode1 (real server, 192.168.0.171): "),
        "{out}"
    );
}

/// A host that never stops printing: lvsup stops reading at its bound (not
/// when the operator's memory runs out) with an error naming the host and
/// the step, and the other host is still planned.
#[test]
fn endless_output_is_an_error_naming_the_host() {
    let o = plan_with_node2("exec yes");
    let (out, err) = text(&o);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(
        out.contains("node2: ERROR at step \"gather facts\": ")
            && out.contains("printed more than 65 MiB on stdout"),
        "{out}\n{err}"
    );
    assert!(out.contains("1 of 2 hosts could not be planned"), "{out}");
    assert!(
        out.contains("\nnode1 (real server, 192.168.0.171): "),
        "{out}"
    );
}
