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

const EXAMPLES: &[&str] = &["dr", "tun", "nat", "minimal", "two-vips"];

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

const WARNS: &str = "tests/fixtures/warnings/single-director.toml";

#[test]
fn validate_prints_warnings_on_stderr_and_still_exits_0() {
    let r = Run::new(&["validate", "-f", WARNS]).code(0);
    assert_eq!(
        r.stdout(),
        "solo: DR, 1 service, 1 director, 2 real servers\n"
    );
    let err = r.stderr();
    for want in [
        "warning: tests/fixtures/warnings/single-director.toml:9:15: `cluster.sync_daemon`: sync_daemon = true with a single director",
        "warning: tests/fixtures/warnings/single-director.toml:15:1: `directors[0]`: a single director (d1): no failover",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert_eq!(err.lines().count(), 2, "{err}");
}

#[test]
fn validate_deny_warnings_makes_them_errors() {
    let r = Run::new(&["validate", "-f", WARNS, "--deny-warnings"]).code(1);
    assert!(r.stdout().is_empty(), "{}", r.stdout());
    let err = r.stderr();
    assert!(
        err.contains("error: tests/fixtures/warnings/single-director.toml:15:1: `directors[0]`"),
        "{err}"
    );
    assert!(err.contains("has 2 warnings (--deny-warnings)"), "{err}");
    // No warnings: --deny-warnings changes nothing.
    let r = Run::new(&["validate", "-f", "examples/minimal.toml", "--deny-warnings"]).code(0);
    assert_eq!(
        r.stdout(),
        "web: DR, 1 service, 2 directors, 2 real servers\n"
    );
    assert!(r.stderr().is_empty(), "{}", r.stderr());
}

/// Every example validates silently: `--deny-warnings` passes on each. The
/// tutorials' health timers (delay_loop 6, 3 retries, 3s timeout: 21s to notice
/// a dead real server next to a 3.6s director failover) do warn: dr.toml with
/// them put back is the case that must.
#[test]
fn examples_validate_without_warnings_and_tutorial_timers_warn() {
    for ex in ["minimal", "nat", "tun", "dr"] {
        let r = Run::new(&[
            "validate",
            "-f",
            &format!("examples/{ex}.toml"),
            "--deny-warnings",
        ])
        .code(0);
        assert!(r.stderr().is_empty(), "{ex}: {}", r.stderr());
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string("examples/dr.toml").expect("dr.toml");
    let text = text
        .replace("interval = \"2s\"", "interval = \"6s\"")
        .replace("timeout = \"1s\"", "timeout = \"3s\"");
    let path = dir.path().join("tutorial.toml");
    std::fs::write(&path, text).expect("write");
    let path = path.display().to_string();
    let err = Run::new(&["validate", "-f", &path]).code(0).stderr();
    assert!(
        err.contains(
            ":32:12: `services[0].health.interval`: a dead real server goes unnoticed for up to 21s"
        ),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

fn json(r: &Run) -> serde_json::Value {
    serde_json::from_str(&r.stdout()).expect("valid JSON on stdout")
}

#[test]
fn validate_json_reports_warnings_and_errors() {
    let r = Run::new(&["validate", "-f", WARNS, "--json"]).code(0);
    assert!(r.stderr().is_empty(), "{}", r.stderr());
    let v = json(&r);
    assert_eq!(v["format_version"], 1);
    assert_eq!(v["valid"], true);
    assert_eq!(
        v["summary"],
        "solo: DR, 1 service, 1 director, 2 real servers"
    );
    assert_eq!(v["counts"]["warnings"], 2);
    assert_eq!(v["errors"], serde_json::json!([]));
    let w = &v["warnings"][1];
    assert_eq!(w["code"], "single-director");
    assert_eq!(w["key"], "directors[0]");
    assert_eq!((w["line"].clone(), w["col"].clone()), (15.into(), 1.into()));

    // Denied: same document, exit 1.
    let r = Run::new(&["validate", "-f", WARNS, "--json", "--deny-warnings"]).code(1);
    assert_eq!(json(&r)["deny_warnings"], true);

    let r = Run::new(&[
        "validate",
        "-f",
        "tests/fixtures/invalid/many-problems-at-once.toml",
        "--json",
    ])
    .code(1);
    assert!(r.stderr().is_empty(), "{}", r.stderr());
    let v = json(&r);
    assert_eq!(v["valid"], false);
    assert_eq!(v["summary"], serde_json::Value::Null);
    assert_eq!(v["counts"]["errors"], 3);
    let e = &v["errors"][0];
    assert_eq!(e["key"], "services[0].scheduler");
    assert_eq!((e["line"].clone(), e["col"].clone()), (8.into(), 13.into()));

    // A file that cannot be read: an error without a place.
    let v = json(&Run::new(&["validate", "-f", "does/not/exist.toml", "--json"]).code(1));
    assert_eq!(v["errors"][0]["line"], serde_json::Value::Null);
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("cannot read does/not/exist.toml")),
        "{v}"
    );
}

/// `init` for every mode: stdout and `-o` give the same file, which validates
/// without a warning (the binary checks what the binary wrote).
#[test]
fn init_output_validates_for_every_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    for mode in ["dr", "tun", "nat"] {
        let text = Run::new(&["init", "--mode", mode]).code(0).stdout();
        assert!(text.contains(&format!("mode = \"{mode}\"")), "{text}");
        let piped = dir.path().join(format!("{mode}-stdout.toml"));
        std::fs::write(&piped, &text).expect("write");
        let file = dir.path().join(format!("{mode}.toml"));
        let f = file.to_string_lossy().into_owned();
        let r = Run::new(&["init", "--mode", mode, "-o", &f]).code(0);
        assert!(r.stdout().is_empty(), "{}", r.stdout());
        assert!(r.stderr().contains(&format!("wrote {f}")), "{}", r.stderr());
        assert_eq!(std::fs::read_to_string(&file).ok(), Some(text));
        for p in [&piped, &file] {
            let r = Run::new(&["validate", "-f", &p.to_string_lossy(), "--deny-warnings"]).code(0);
            let want = format!(
                "web: {}, 1 service, 2 directors, 2 real servers\n",
                mode.to_uppercase()
            );
            assert_eq!(r.stdout(), want);
            assert!(r.stderr().is_empty(), "{mode}: {}", r.stderr());
        }
    }
    // The default mode is DR.
    let text = Run::new(&["init"]).code(0).stdout();
    assert!(text.contains("mode = \"dr\""));
}

#[test]
fn init_never_overwrites_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("cluster.toml");
    std::fs::write(&file, "# mine\n").expect("write");
    let f = file.to_string_lossy().into_owned();
    let r = Run::new(&["init", "--mode", "tun", "-o", &f]).code(1);
    let err = r.stderr();
    assert!(
        err.contains(&format!("error: {f} already exists")) && err.contains("does not overwrite"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).ok().as_deref(),
        Some("# mine\n")
    );
    // A directory that does not exist: an error naming the file, nothing created.
    let missing = dir.path().join("no/such/dir/cluster.toml");
    let m = missing.to_string_lossy().into_owned();
    let err = Run::new(&["init", "-o", &m]).code(1).stderr();
    assert!(err.contains(&format!("cannot create {m}")), "{err}");
}

#[test]
fn init_unknown_mode_is_a_usage_error() {
    let r = Run::new(&["init", "--mode", "dsr"]).code(64);
    assert!(r.stdout().is_empty());
    assert!(
        r.stderr().contains("possible values: dr, tun, nat"),
        "{}",
        r.stderr()
    );
}

#[test]
fn completions_for_bash_zsh_fish_know_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = Run::new(&["completions", shell]).code(0).stdout();
        for sub in ["validate", "plan", "apply", "init", "verify"] {
            assert!(out.contains(sub), "{shell}: no {sub}");
        }
    }
    let bash = Run::new(&["completions", "bash"]).code(0).stdout();
    assert!(bash.contains("complete -F _lvsup"), "{bash}");
    assert!(bash.contains("--deny-warnings"), "flags of subcommands too");
    Run::new(&["completions", "tcsh"]).code(64);
}

#[test]
fn manpages_writes_one_page_per_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("man1");
    let o = out.to_string_lossy().into_owned();
    Run::new(&["manpages", &o]).code(0);
    for page in [
        "lvsup.1",
        "lvsup-init.1",
        "lvsup-validate.1",
        "lvsup-plan.1",
        "lvsup-apply.1",
        "lvsup-lab.1",
        "lvsup-lab-up.1",
        "lvsup-completions.1",
    ] {
        let text =
            std::fs::read_to_string(out.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page}: {text}");
    }
    let main = std::fs::read_to_string(out.join("lvsup.1")).expect("lvsup.1");
    assert!(main.contains("lvsup\\-validate(1)"), "{main}");
    let validate = std::fs::read_to_string(out.join("lvsup-validate.1")).expect("page");
    assert!(validate.contains("deny\\-warnings"), "{validate}");
    // Hidden commands get no page; the command is not in --help either.
    assert!(!out.join("lvsup-manpages.1").exists());
    assert!(!out.join("lvsup-ipvs.1").exists());
    assert!(!Run::new(&["--help"]).code(0).stdout().contains("manpages"));
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

#[test]
fn saved_plans_need_a_live_plan_and_a_real_plan_file() {
    // an offline plan has no facts to check: -o refuses it
    let r = Run::new(&[
        "plan",
        "-f",
        "examples/dr.toml",
        "--offline",
        "-o",
        "x.plan",
    ])
    .code(64);
    assert!(r.stderr().contains("--offline"), "{}", r.stderr());
    assert!(
        !Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("x.plan")
            .exists()
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let not_a_plan = dir.path().join("bad.plan");
    std::fs::write(&not_a_plan, "{\"format_version\": 1}").expect("write");
    let p = not_a_plan.to_string_lossy();
    let r = Run::new(&["apply", "-f", "examples/dr.toml", &p]).code(1);
    assert!(
        r.stderr()
            .contains("is not a plan saved by `lvsup plan -o`"),
        "{}",
        r.stderr()
    );
    let missing = dir.path().join("missing.plan");
    let r = Run::new(&[
        "apply",
        "-f",
        "examples/dr.toml",
        &missing.to_string_lossy(),
    ])
    .code(1);
    assert!(
        r.stderr().contains("reading the saved plan"),
        "{}",
        r.stderr()
    );
    // a saved plan applies its own hosts
    let r = Run::new(&["apply", "-f", "examples/dr.toml", "--target", "rs1", &p]).code(1);
    assert!(
        r.stderr().contains("--target with a saved plan"),
        "{}",
        r.stderr()
    );
}

#[test]
fn apply_and_destroy_document_the_lock_timeout() {
    for cmd in ["apply", "destroy"] {
        let r = Run::new(&[cmd, "--help"]).code(0);
        assert!(
            r.stdout().contains("--lock-timeout <SECS>"),
            "{}",
            r.stdout()
        );
        assert!(r.stdout().contains("names the holder"), "{}", r.stdout());
    }
    let r = Run::new(&["apply", "--help"]).code(0);
    assert!(r.stdout().contains("[PLANFILE]"), "{}", r.stdout());
    let r = Run::new(&["plan", "--help"]).code(0);
    assert!(
        r.stdout().contains("-o, --out <PLANFILE>"),
        "{}",
        r.stdout()
    );
}

/// A cluster file whose `[ssh] config` runs a local command (ProxyCommand)
/// as soon as ssh reads it. `--no-ssh-config-from-file` (or
/// LVSUP_NO_SSH_CONFIG_FROM_FILE=1) refuses the file before ssh starts,
/// naming the key and its line; without it the command runs (the risk the
/// flag is for). The ProxyCommand exits at once: no traffic anywhere.
#[test]
fn no_ssh_config_from_file_refuses_a_file_that_names_an_ssh_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("proxycommand-ran");
    std::fs::write(
        dir.path().join("evil_config"),
        format!(
            "Host *\n  ProxyCommand touch {} ; exit 1\n  ConnectTimeout 5\n",
            marker.display()
        ),
    )
    .expect("write");
    std::fs::write(
        dir.path().join("cluster.toml"),
        "[cluster]\nname = \"web\"\nvip = \"192.0.2.100\"\nmode = \"dr\"\n\n\
         [ssh]\nuser = \"root\"\nconfig = \"evil_config\"\n\n\
         [[services]]\nport = 80\n\n\
         [[directors]]\nname = \"lvs1\"\naddress = \"192.0.2.10\"\n\n\
         [[real_servers]]\nname = \"rs1\"\naddress = \"192.0.2.21\"\n",
    )
    .expect("write");
    let lvsup = |args: &[&str], env: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_lvsup"));
        c.args(args)
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .env_remove("LVSUP_NO_SSH_CONFIG_FROM_FILE");
        if let Some(v) = env {
            c.env("LVSUP_NO_SSH_CONFIG_FROM_FILE", v);
        }
        c.output().expect("run lvsup")
    };
    for (args, env) in [
        (&["--no-ssh-config-from-file", "plan"][..], None),
        (&["plan", "--no-ssh-config-from-file"][..], None),
        (&["status"][..], Some("1")),
        (&["destroy", "--yes"][..], Some("true")),
        (&["verify", "--skip-failover"][..], Some("1")),
    ] {
        let out = lvsup(args, env);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?} {env:?}: {err}");
        assert!(
            err.contains("ssh.config")
                && err.contains("cluster.toml:8:10")
                && err.contains("--no-ssh-config-from-file")
                && err.contains("ProxyCommand"),
            "{args:?} {env:?}: {err}"
        );
        assert!(!marker.exists(), "{args:?} {env:?}: the ProxyCommand ran");
    }
    // --ssh-config replaces the file's: not refused (the hosts are then
    // unreachable through the trusted config's closed loopback port)
    std::fs::write(
        dir.path().join("trusted_config"),
        "Host *\n  HostName 127.0.0.1\n  Port 1\n  UserKnownHostsFile /dev/null\n  ConnectTimeout 5\n",
    )
    .expect("write");
    let out = lvsup(&["plan", "--ssh-config", "trusted_config"], Some("1"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ERROR at step \"connect\""), "{text}");
    assert!(!marker.exists(), "the file's ProxyCommand ran");
    // the variable set to 0 and no flag: the file's config is read, and its
    // ProxyCommand runs here, which is what the flag prevents
    let out = lvsup(&["plan"], Some("0"));
    assert_eq!(out.status.code(), Some(1));
    assert!(marker.exists(), "the file's ssh config was not used");
}

/// `LVSUP_DIRECTOR_BINARY` is the binary plan and apply read, hash and would
/// upload when `--director-binary` is not given: before any host is
/// contacted, a path that does not exist is an error naming it. The option
/// wins over the variable; an empty value counts as unset.
#[test]
fn director_binary_comes_from_the_environment_unless_given() {
    let run = |env: &str, args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_lvsup"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("NO_COLOR", "1")
            .env("LVSUP_DIRECTOR_BINARY", env)
            .output()
            .expect("run lvsup");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // ssh fails at once, on this machine: no packet leaves it
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("ssh_config");
    std::fs::write(&cfg, "Host *\n  ProxyCommand false\n").expect("ssh_config");
    let cfg = cfg.to_string_lossy().into_owned();
    for cmd in [&["plan"][..], &["apply", "--yes"][..]] {
        let mut args = cmd.to_vec();
        args.extend([
            "-f",
            "examples/dr.toml",
            "--target",
            "node1",
            "--ssh-config",
            &cfg,
        ]);
        let (code, err) = run("/nonexistent/lvsup-env", &args);
        assert_eq!(code, Some(1), "{err}");
        assert!(
            err.contains("reading /nonexistent/lvsup-env"),
            "{cmd:?}: {err}"
        );
        // --director-binary wins
        let mut given = args.clone();
        given.extend(["--director-binary", "/nonexistent/lvsup-option"]);
        let (code, err) = run("/nonexistent/lvsup-env", &given);
        assert_eq!(code, Some(1), "{err}");
        assert!(
            err.contains("reading /nonexistent/lvsup-option"),
            "{cmd:?}: {err}"
        );
        // empty: unset, this lvsup is read; the run goes on to the host
        let (code, out) = run("", &args);
        assert_ne!(code, Some(0), "{out}");
        assert!(!out.contains("reading "), "{cmd:?}: {out}");
    }
}
