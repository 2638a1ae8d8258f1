//! `lvsup verify` on the command line: flags, usage errors, a missing file.
//! (No host is contacted here.)

mod common;
use common::lvsup;

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
        "--yes",
        "--crash",
        "--source",
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
    // --source takes an address
    let out = lvsup(&["verify", "-f", "examples/dr.toml", "--source", "eth0"]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("eth0"),
        "{out:?}"
    );
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

/// What verify lists before it asks: one line per disruptive check, each with
/// a bound; nothing with --skip-failover.
#[test]
fn the_disruptions_listed_before_asking_name_the_unit_and_a_bound() {
    let spec = lvsup::config::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/dr.toml"
    )))
    .expect("dr.toml");
    let mut opts = lvsup::verify::Options::default();
    let d = lvsup::verify::disruptions(&spec, &opts);
    assert_eq!(d.len(), 2, "{d:?}");
    assert!(d[0].starts_with("stop lvsup-director-web.service"), "{d:?}");
    assert!(d[1].contains("prohibit routes"), "{d:?}");
    // dr.toml: advert 1 s; health interval 2 s, rise 2, fall 3, timeout 1 s.
    // Director: (3 + 10) + (3 + 2*3 + 1 + 10) = 33 s; real server:
    // (2*4 + 1 + 5) + (2*3 + 1 + 5) = 26 s.
    assert!(d[0].ends_with("up to ~33 s"), "{d:?}");
    assert!(d[1].ends_with("up to ~26 s"), "{d:?}");
    opts.crash_failover = true;
    assert_eq!(lvsup::verify::disruptions(&spec, &opts).len(), 3);
    opts.skip_failover = true;
    assert!(lvsup::verify::disruptions(&spec, &opts).is_empty());
}

/// The lab tests' bound on one command (common::output_within): a command
/// that hangs is killed with the processes it started and the test fails
/// with what it printed; one that ends is returned whole.
#[test]
fn a_command_past_its_limit_is_killed_with_its_children() {
    use std::process::Command;
    use std::time::Duration;
    let mut ok = Command::new("sh");
    ok.args(["-c", "echo out; echo err >&2; exit 3"]);
    let o = common::output_within(ok, "sh ok", Duration::from_secs(10));
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(o.stdout, b"out\n");
    assert_eq!(o.stderr, b"err\n");

    let marker = tempfile::NamedTempFile::new().expect("tempfile");
    let path = marker.path().to_string_lossy().into_owned();
    let mut hang = Command::new("sh");
    // A child in the background that would write the marker after 3 s,
    // then the shell waits forever.
    hang.args([
        "-c",
        &format!("echo started; (sleep 3; echo late > {path}) & sleep 1000"),
    ]);
    let msg = panic_of(hang, "sh hang");
    assert!(msg.contains("`sh hang` still running after 1s"), "{msg}");
    assert!(msg.contains("stdout so far:\nstarted\n"), "{msg}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        std::fs::read_to_string(marker.path()).expect("marker"),
        "",
        "the background child was killed too"
    );

    let mut leaves = Command::new("sh");
    leaves.args(["-c", "sleep 1000 & echo gone"]);
    let msg = panic_of(leaves, "sh leaves");
    assert!(msg.contains("its stdout stayed open"), "{msg}");
}

/// What `output_within(cmd, what, 1 s)` panicked with; the test fails if
/// it returned.
fn panic_of(cmd: std::process::Command, what: &str) -> String {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        common::output_within(cmd, what, std::time::Duration::from_secs(1))
    }));
    r.err()
        .and_then(|e| e.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| panic!("`{what}` returned instead of failing the test"))
}
