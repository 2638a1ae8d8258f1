//! `lvsup verify` on the command line: flags, usage errors, a missing file.
//! (No host is contacted here.)

use std::process::{Command, Output};

fn lvsup(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lvsup"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .expect("run lvsup")
}

#[test]
fn help_lists_the_flags() {
    let out = lvsup(&["verify", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--file",
        "--json",
        "--skip-failover",
        "--ssh-config",
        "--rs-fail-cmd",
        "--rs-recover-cmd",
        "--batch",
    ] {
        assert!(text.contains(flag), "{flag} missing in\n{text}");
    }
    let top = lvsup(&["--help"]);
    assert!(String::from_utf8_lossy(&top.stdout).contains("verify"));
}

#[test]
fn fail_command_needs_its_recover_command() {
    let out = lvsup(&[
        "verify",
        "-f",
        "examples/dr.toml",
        "--rs-fail-cmd",
        "systemctl stop nginx",
    ]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rs-recover-cmd"));
    let out = lvsup(&["verify", "-f", "examples/dr.toml", "--batch", "0"]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
}

#[test]
fn missing_or_invalid_file_is_an_error_before_any_host_is_touched() {
    let out = lvsup(&["verify", "-f", "no/such/cluster.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).is_empty());
    let out = lvsup(&[
        "verify",
        "-f",
        "tests/fixtures/invalid/unknown-section.toml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("verify \""));
}
