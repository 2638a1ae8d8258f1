//! lvsup end to end against hosts played by a script, hermetically: `plan`
//! against hosts that answer badly (a compromised or broken host must cost
//! the operator an error naming it, never a panic, a hang or their memory;
//! issue 14), and `destroy` replaying what an interrupted `verify` left.
//! The hosts are played by
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
    run_lvsup(
        dir.path(),
        &["plan", "--target", "node1", "--target", "node2"],
        &format!(
            "cat >/dev/null\n\
             case \"$1\" in\n\
             192.168.0.172) {node2} ;;\n\
             192.168.0.171) cat '{f}/node1.facts' ;;\n\
             *) echo \"no such host $1\" >&2; exit 255 ;;\n\
             esac\n",
            f = facts.display()
        ),
    )
}

/// `lvsup ARGS -f examples/dr.toml` with the hosts played by `host` (a
/// shell script's body: `$1` the destination, `$2` the command, stdin
/// and stdout the command's), files in `dir`.
fn run_lvsup(dir: &Path, args: &[&str], host: &str) -> Output {
    run_lvsup_with(dir, args, host, &root().join("examples/dr.toml"), &[])
}

/// [`run_lvsup`] on cluster file `file`, with more environment `env`.
fn run_lvsup_with(
    dir: &Path,
    args: &[&str],
    host: &str,
    file: &Path,
    env: &[(&str, &Path)],
) -> Output {
    let handler = dir.join("host");
    std::fs::write(&handler, format!("#!/bin/sh\n{host}")).expect("handler");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&handler, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let cfg = dir.join("ssh_config");
    std::fs::write(&cfg, "Host *\n  ProxyCommand false\n").expect("ssh_config");
    let path = format!(
        "{}:{}",
        root().join("tests/fake-ssh").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new(env!("CARGO_BIN_EXE_lvsup"))
        .args(args)
        .arg("--ssh-config")
        .arg(&cfg)
        .arg("-f")
        .arg(file)
        .env("PATH", path)
        .env("FAKE_SSH_HANDLER", &handler)
        .env("FAKE_SSH_IDLE", "5")
        .env("NO_COLOR", "1")
        .env_remove("LVSUP_DIRECTOR_BINARY")
        .envs(env.iter().map(|(k, v)| (k, v.as_os_str())))
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

/// `[ssh] control_persist`: a second `plan` reuses the masters the first
/// one kept (the same master process serves both runs' commands: the host
/// script logs its parent, the fake master), and without the key each run
/// has masters of its own. The kept masters live under `$XDG_RUNTIME_DIR`
/// (here a directory of the test's own, mode 700 as lvsup makes it).
#[test]
fn control_persist_reuses_the_masters_of_the_run_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let facts = root().join("tests/fixtures/facts/dr-converged");
    let log = dir.path().join("sessions");
    let host = format!(
        "cat >/dev/null\n\
         echo \"$1 $PPID\" >> '{log}'\n\
         case \"$1\" in\n\
         192.168.0.171) cat '{f}/node1.facts' ;;\n\
         192.168.0.172) cat '{f}/node2.facts' ;;\n\
         *) exit 255 ;;\n\
         esac\n",
        log = log.display(),
        f = facts.display()
    );
    let base = std::fs::read_to_string(root().join("examples/dr.toml")).expect("dr.toml");
    let runtime = dir.path().join("runtime");
    std::fs::create_dir(&runtime).expect("runtime dir");
    let masters = |persist: &str| -> Vec<Vec<String>> {
        let file = dir.path().join(format!("c{persist}.toml"));
        std::fs::write(
            &file,
            format!("[ssh]\ncontrol_persist = \"{persist}\"\n\n{base}"),
        )
        .expect("cluster file");
        let _ = std::fs::remove_file(&log);
        let mut runs = Vec::new();
        for _ in 0..2 {
            let o = run_lvsup_with(
                dir.path(),
                &["plan", "--target", "node1", "--target", "node2"],
                &host,
                &file,
                &[("XDG_RUNTIME_DIR", &runtime)],
            );
            let (out, err) = text(&o);
            assert!(
                matches!(o.status.code(), Some(0 | 2)) && out.contains("\nnode2 ("),
                "{:?}\n{out}\n{err}",
                o.status
            );
            let mut seen: Vec<String> = std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .map(String::from)
                .collect();
            seen.sort();
            seen.dedup();
            runs.push(seen);
            let _ = std::fs::remove_file(&log);
        }
        runs
    };
    let kept = masters("30s");
    assert_eq!(kept[0].len(), 2, "one master per host: {kept:?}");
    assert_eq!(
        kept[0], kept[1],
        "the second run used the first one's masters"
    );
    let mode = std::fs::metadata(runtime.join("lvsup-ssh"))
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .expect("the kept masters' directory");
    assert_eq!(mode, 0o700);
    let fresh = masters("0s");
    assert_eq!(fresh[0].len(), 2, "{fresh:?}");
    for m in &fresh[1] {
        assert!(
            !fresh[0].contains(m) && !kept[0].contains(m),
            "without control_persist every run has its own masters: {fresh:?} {kept:?}"
        );
    }
    // A kept directory others could write to is never used: a warning, and
    // each run's masters are its own again.
    std::fs::set_permissions(
        runtime.join("lvsup-ssh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let open = masters("30s");
    for m in &open[1] {
        assert!(!open[0].contains(m), "{open:?}");
    }
    let o = run_lvsup_with(
        dir.path(),
        &["plan", "--target", "node1"],
        &host,
        &dir.path().join("c30s.toml"),
        &[("XDG_RUNTIME_DIR", &runtime)],
    );
    let (_, err) = text(&o);
    assert!(
        err.contains("not keeping SSH connections") && err.contains("must be 700"),
        "{err}"
    );
}

/// Issue 14 item 5: a facts file size of 2^64-1 bytes panicked the parser
/// (overflow, slice index). Now: an error naming node2 and the step,
/// the other host still planned, exit 1 (a host could not be planned).
#[test]
fn a_crafted_facts_header_is_an_error_naming_the_host() {
    let o = plan_with_node2(
        "printf '### os\\nLinux\\n### file-sizes\\n18446744073709551615 /x\\n### file-contents\\nabc\\n'",
    );
    node2_failed_gathering_facts(&o, "bad file size line \"18446744073709551615 /x\"");
}

/// `plan` exited 1 without a panic, node2's facts failed with `why` named
/// with the host and step, and node1 was still planned.
fn node2_failed_gathering_facts(o: &std::process::Output, why: &str) {
    let (out, err) = text(o);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(
        out.contains("node2: ERROR at step \"gather facts\": ") && out.contains(why),
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
    node2_failed_gathering_facts(&o, "printed more than 65 MiB on stdout");
}

/// A verify killed mid-check left a prohibit route and its undo record on
/// node1. `destroy` undoes it first (the undo command, then the record
/// removed, then the facts gathered again), says so on stderr and in its
/// JSON (`verify_undone`), and only then destroys. The host records every
/// script it is sent, in order.
#[test]
fn destroy_undoes_what_an_interrupted_verify_left_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let record = lvsup::verify::undo::Record {
        version: 1,
        cluster: "web".into(),
        host: "node1".into(),
        what: "node1 failing its health checks".into(),
        undo: "ip route del prohibit 192.168.0.191/32".into(),
        at: 1_796_152_192,
        user: "ci".into(),
        machine: "elsewhere".into(),
        pid: 1,
    }
    .render();
    let path = format!("{}/1796152192-1-0", lvsup::layout::verify_undo_dir("web"));
    let clean =
        std::fs::read_to_string(root().join("tests/fixtures/facts/dr-converged/node1.facts"))
            .expect("facts");
    assert!(clean.ends_with("### end\n") && !clean.contains("### verify-undo"));
    let left = clean.replace(
        "### end\n",
        &format!("### verify-undo\n{path}\t{record}\n### end\n"),
    );
    std::fs::write(d.join("clean.facts"), &clean).expect("clean");
    std::fs::write(d.join("left.facts"), &left).expect("left");
    let o = run_lvsup(
        d,
        &["destroy", "--yes", "--json", "--target", "node1"],
        &format!(
            "d='{d}'\n\
             case \"$2\" in *lvsup-lock*) echo locked; cat >/dev/null; exit 0 ;; esac\n\
             in=$(mktemp \"$d/in.XXXXXX\")\n\
             cat > \"$in\"\n\
             {{ cat \"$in\"; echo; echo '@@ end of script'; }} >> \"$d/log\"\n\
             if grep -q \"^echo '### verify-undo'\" \"$in\"; then\n\
               echo '@@ facts' >> \"$d/log\"\n\
               if [ -e \"$d/removed\" ]; then cat \"$d/clean.facts\"; else cat \"$d/left.facts\"; fi\n\
               exit 0\n\
             fi\n\
             if grep -q \"^rm -f -- '/var/lib/lvsup/web/verify-undo/\" \"$in\"; then touch \"$d/removed\"; fi\n\
             exit 0\n",
            d = d.display()
        ),
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    let line = "node1: undid an interrupted verify from 2026-12-01T19:09:52Z by ci@elsewhere";
    assert!(err.contains(line), "{err}");
    let doc: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(doc["result"], "destroyed", "{doc}");
    let undone = doc["verify_undone"].as_array().expect("verify_undone");
    assert_eq!(undone.len(), 1, "{doc}");
    assert!(
        undone[0].as_str().is_some_and(|u| u.starts_with(line)),
        "{doc}"
    );
    // the order on the host: facts, the undo, the record removed, facts
    // again, and only then destroy's own steps
    let log = std::fs::read_to_string(d.join("log")).expect("log");
    let scripts: Vec<&str> = log.split("@@ end of script\n").collect();
    let at = |what: &str| {
        scripts
            .iter()
            .position(|s| s.contains(what))
            .unwrap_or_else(|| panic!("no script with {what:?} in\n{log}"))
    };
    let undo = at("ip route del prohibit 192.168.0.191/32");
    let removed = at(&format!("rm -f -- '{path}'"));
    assert_eq!(at("### verify-undo"), 0, "{log}");
    assert!(undo < removed, "{log}");
    assert!(
        scripts[removed + 1].contains("### verify-undo"),
        "facts again: {log}"
    );
    let destroy_steps = scripts.len() - 1 - (removed + 2);
    assert!(destroy_steps > 0, "no destroy step after the undo:\n{log}");
}
