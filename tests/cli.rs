//! The `lvsup` binary as a user runs it: exit codes, messages, and golden
//! snapshots of `plan --offline` (text and JSON) for every example.

use std::path::Path;
use std::process::{Command, Output};

/// A small fluent runner: `Run::new(&["validate"]).code(0).stdout()`.
struct Run {
    out: Output,
    args: String,
}

impl Run {
    fn new(args: &[&str]) -> Run {
        Run::in_dir(env!("CARGO_MANIFEST_DIR"), args)
    }

    fn in_dir(dir: impl AsRef<Path>, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_lvsup"))
            .args(args)
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .output()
            .expect("run lvsup");
        Run {
            out,
            args: args.join(" "),
        }
    }

    fn code(self, want: i32) -> Run {
        assert_eq!(
            self.out.status.code(),
            Some(want),
            "lvsup {}\nstdout:\n{}\nstderr:\n{}",
            self.args,
            self.stdout(),
            self.stderr()
        );
        self
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
}

const EXAMPLES: &[&str] = &["dr", "tun", "nat", "minimal"];

#[test]
fn validate_prints_a_one_line_summary() {
    let out = Run::new(&["validate", "-f", "examples/dr.toml"])
        .code(0)
        .stdout();
    assert_eq!(out, "web: DR, 1 service, 2 directors, 2 real servers\n");
    let out = Run::new(&["validate", "--file", "examples/nat.toml"])
        .code(0)
        .stdout();
    assert_eq!(out, "natweb: NAT, 1 service, 2 directors, 2 real servers\n");
}

#[test]
fn validate_reads_cluster_toml_in_the_current_directory_by_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tun.toml");
    std::fs::copy(src, dir.path().join("cluster.toml")).expect("copy");
    let out = Run::in_dir(dir.path(), &["validate"]).code(0).stdout();
    assert!(out.starts_with("tunnel: TUN"), "{out}");
}

#[test]
fn validate_reports_every_problem_with_file_line_col_and_exits_1() {
    let r = Run::new(&[
        "validate",
        "-f",
        "tests/fixtures/invalid/many-problems-at-once.toml",
    ])
    .code(1);
    let err = r.stderr();
    assert!(r.stdout().is_empty());
    for want in [
        "many-problems-at-once.toml:8:13: `services[0].scheduler`: unknown scheduler \"round-robin\"",
        "many-problems-at-once.toml:16:1: `directors[1].colour`: unknown key `colour`",
        "many-problems-at-once.toml:26:10: `real_servers[1].weight`: weight must be 0..=65535, got -1",
        "has 3 problems",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn validate_hint_suggests_the_key_meant() {
    let err = Run::new(&[
        "validate",
        "-f",
        "tests/fixtures/invalid/unknown-key-service-did-you-mean.toml",
    ])
    .code(1)
    .stderr();
    assert!(err.contains("did you mean `scheduler`?"), "{err}");
}

#[test]
fn missing_file_is_an_error_naming_it() {
    let err = Run::new(&["validate", "-f", "does/not/exist.toml"])
        .code(1)
        .stderr();
    assert!(err.contains("cannot read does/not/exist.toml"), "{err}");
}

#[test]
fn usage_errors_exit_64_and_help_exits_0() {
    Run::new(&["validate", "--bogus"]).code(64);
    Run::new(&["frobnicate"]).code(64);
    let help = Run::new(&["--help"]).code(0).stdout();
    assert!(help.contains("validate") && help.contains("plan"), "{help}");
}

/// Live plan against hosts that refuse SSH (every name mapped to a closed
/// port on loopback): every host is an error naming the step, exit 1, and
/// the hint to plan offline. No traffic leaves the machine.
#[test]
fn live_plan_with_unreachable_hosts_names_each_host_and_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("ssh_config");
    std::fs::write(
        &cfg,
        "Host *\n  HostName 127.0.0.1\n  Port 1\n  UserKnownHostsFile /dev/null\n  ConnectTimeout 5\n",
    )
    .expect("write");
    let cfg = cfg.to_string_lossy().into_owned();
    let run = Run::new(&["plan", "-f", "examples/dr.toml", "--ssh-config", &cfg]).code(1);
    let out = run.stdout();
    for h in ["lvs191", "lvs192", "node1", "node2"] {
        assert!(
            out.contains(&format!("{h}: ERROR at step \"connect\"")),
            "{out}"
        );
    }
    assert!(out.contains("4 of 4 hosts could not be planned"), "{out}");
    assert!(run.stderr().contains("--offline"), "{}", run.stderr());
}

#[test]
fn plan_detailed_exitcode_is_2_when_there_are_changes() {
    Run::new(&[
        "plan",
        "-f",
        "examples/dr.toml",
        "--offline",
        "--detailed-exitcode",
    ])
    .code(2);
    Run::new(&["plan", "-f", "examples/dr.toml", "--offline"]).code(0);
}

#[test]
fn plan_of_an_invalid_file_fails_before_planning() {
    let r = Run::new(&[
        "plan",
        "-f",
        "tests/fixtures/invalid/dr-port-remap.toml",
        "--offline",
    ])
    .code(1);
    assert!(r.stdout().is_empty());
    assert!(
        r.stderr()
            .contains("DR cannot remap ports: real servers must listen on 80")
    );
}

#[test]
fn golden_offline_plan_text() {
    for ex in EXAMPLES {
        let out = Run::new(&["plan", "-f", &format!("examples/{ex}.toml"), "--offline"])
            .code(0)
            .stdout();
        insta::assert_snapshot!(format!("plan_offline_text_{ex}"), out);
    }
}

#[test]
fn golden_offline_plan_json() {
    for ex in EXAMPLES {
        let out = Run::new(&[
            "plan",
            "-f",
            &format!("examples/{ex}.toml"),
            "--offline",
            "--json",
        ])
        .code(0)
        .stdout();
        let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
        insta::assert_json_snapshot!(format!("plan_offline_json_{ex}"), v);
    }
}

#[test]
fn plan_output_is_stable_across_runs() {
    let a = Run::new(&["plan", "-f", "examples/tun.toml", "--offline", "--json"]).stdout();
    let b = Run::new(&["plan", "-f", "examples/tun.toml", "--offline", "--json"]).stdout();
    assert_eq!(a, b);
}

#[test]
fn lab_up_checks_the_kernel_before_creating_anything() {
    // On this project's machines the kernel has no ip_vs: `lab up` must say so
    // up front and say how to proceed. Where ip_vs is available the VM lab
    // tests cover `lab up` instead.
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    });
    let r = Run::new(&["lab", "up", "-f", "examples/dr.toml"]);
    if !root {
        assert!(r.code(1).stderr().contains("needs root"));
        return;
    }
    let _ = Command::new("modprobe").arg("ip_vs").output();
    if Path::new("/proc/net/ip_vs").exists() {
        eprintln!("this kernel has ip_vs: covered by tests/lab.rs in the VM lab");
        let _ = Run::new(&["lab", "down", "-f", "examples/dr.toml"]);
        return;
    }
    let err = r.code(1).stderr();
    assert!(err.contains("has no ip_vs"), "{err}");
    assert!(
        err.contains("tests/lab/in-vm"),
        "says how to proceed: {err}"
    );
    let netns = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip");
    assert!(
        !String::from_utf8_lossy(&netns.stdout).contains("lvsup-web-"),
        "nothing created"
    );
}

/// `lab topology` is what vagrant/Vagrantfile builds VMs from: the same hosts,
/// links, addresses and segments `lab up` builds containers from (no root).
#[test]
fn lab_topology_prints_what_lab_up_and_vagrant_build() {
    for ex in EXAMPLES {
        let out = Run::new(&["lab", "topology", "-f", &format!("examples/{ex}.toml")])
            .code(0)
            .stdout();
        let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
        insta::assert_json_snapshot!(format!("lab_topology_{ex}"), v);
    }
    // NAT: directors on both segments, real servers on the internal one only.
    let out = Run::new(&["lab", "topology", "-f", "examples/nat.toml"])
        .code(0)
        .stdout();
    let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    let links = |host: &str| {
        v["hosts"]
            .as_array()
            .expect("hosts")
            .iter()
            .find(|h| h["name"] == host)
            .map(|h| h["node"]["links"].as_array().map_or(0, Vec::len))
    };
    assert_eq!(links("nat1"), Some(2));
    assert_eq!(links("app1"), Some(1));
}

#[test]
fn control_characters_in_values_are_refused_and_shown_escaped() {
    let r = Run::new(&[
        "validate",
        "-f",
        "tests/fixtures/invalid/free-text-control-characters.toml",
    ])
    .code(1);
    let all = format!("{}{}", r.stdout(), r.stderr());
    // the values' ESC/NUL/BEL never reach the terminal raw
    for c in ['\u{1b}', '\0', '\u{7}', '\r'] {
        assert!(!all.contains(c), "raw {c:?} in output:\n{all:?}");
    }
    assert!(
        all.contains(r#"real_servers[1].ssh_host = "rs2\u{1b}]0;owned\u{7}""#),
        "{all}"
    );
    assert!(all.contains("contains control characters"), "{all}");
}
