//! Output conventions of the `lvsup` binary: color only on a terminal (or
//! when forced) and never with NO_COLOR, a closing summary line, JSON with
//! `format_version`, `--target` typos, a closed stdout pipe, and logs on
//! stderr with -v / RUST_LOG. No host is contacted: live commands are pointed
//! at a closed port on loopback.

use std::collections::HashMap;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Output, Stdio};

const ESC: u8 = 0x1b;

/// Run lvsup in the crate's directory with a clean color/log environment
/// plus `env`.
fn lvsup(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lvsup"));
    c.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for k in [
        "NO_COLOR",
        "CLICOLOR",
        "CLICOLOR_FORCE",
        "RUST_LOG",
        "LVSUP_LOG",
    ] {
        c.env_remove(k);
    }
    c.envs(env.iter().copied());
    c.output().expect("run lvsup")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn code(o: &Output, want: i32) {
    assert_eq!(
        o.status.code(),
        Some(want),
        "stdout:\n{}\nstderr:\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
}

/// An ssh_config that sends every host to a closed port on loopback.
fn closed_port_ssh_config() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("ssh_config");
    std::fs::write(
        &cfg,
        "Host *\n  HostName 127.0.0.1\n  Port 1\n  UserKnownHostsFile /dev/null\n  ConnectTimeout 5\n",
    )
    .expect("write");
    let cfg = cfg.to_string_lossy().into_owned();
    (dir, cfg)
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}):\n{}\nstderr:\n{}",
            text(&o.stdout),
            text(&o.stderr)
        )
    })
}

/// The first key of a JSON document as printed is `format_version`, 1.
fn assert_versioned(o: &Output) -> serde_json::Value {
    let v = json(o);
    assert_eq!(v["format_version"], 1, "{}", text(&o.stdout));
    assert!(
        text(&o.stdout).starts_with("{\n  \"format_version\": 1,"),
        "format_version first: {}",
        text(&o.stdout)
    );
    v
}

// ------------------------------------------------------------------- color

const PLAN: &[&str] = &["plan", "--offline", "-f", "examples/dr.toml"];

#[test]
fn piped_output_has_no_color() {
    let o = lvsup(PLAN, &[]);
    code(&o, 0);
    assert!(!o.stdout.contains(&ESC), "{}", text(&o.stdout));
}

#[test]
fn forced_color_shows_terraform_colors() {
    for (args, env) in [
        (&["--color", "always"][..], &[][..]),
        (&[][..], &[("CLICOLOR_FORCE", "1")][..]),
        // the flag beats NO_COLOR: it is the user's explicit word
        (&["--color=always"][..], &[("NO_COLOR", "1")][..]),
    ] {
        let all: Vec<&str> = PLAN.iter().chain(args).copied().collect();
        let o = lvsup(&all, env);
        code(&o, 0);
        let out = text(&o.stdout);
        assert!(
            out.contains("\x1b[32m  + create file /etc/sysctl.d/90-lvsup-web.conf"),
            "{args:?} {env:?}: {out}"
        );
        assert!(out.contains("\x1b[32m      +ip_vs"), "{out}");
    }
}

#[test]
fn no_color_wins_over_forced_auto_and_never_wins_over_everything() {
    for (args, env) in [
        (&[][..], &[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")][..]),
        (&["--color", "never"][..], &[("CLICOLOR_FORCE", "1")][..]),
    ] {
        let all: Vec<&str> = PLAN.iter().chain(args).copied().collect();
        let o = lvsup(&all, env);
        code(&o, 0);
        assert!(!o.stdout.contains(&ESC), "{args:?} {env:?}");
    }
    // an empty NO_COLOR does not count (no-color.org)
    let o = lvsup(PLAN, &[("NO_COLOR", ""), ("CLICOLOR_FORCE", "1")]);
    assert!(o.stdout.contains(&ESC));
}

#[test]
fn color_flag_rejects_other_values() {
    code(&lvsup(&["--color", "sometimes", "validate"], &[]), 64);
}

#[test]
fn status_colors_unreachable_directors_red_and_ends_with_a_summary() {
    let (_d, cfg) = closed_port_ssh_config();
    let args = [
        "status",
        "-f",
        "examples/dr.toml",
        "--ssh-config",
        &cfg,
        "--color",
        "always",
    ];
    let o = lvsup(&args, &[]);
    code(&o, 1);
    let out = text(&o.stdout);
    assert!(out.contains("\x1b[31m  lvs191 "), "{out}");
    let o = lvsup(&args[..5], &[]);
    code(&o, 1);
    let out = text(&o.stdout);
    assert!(!o.stdout.contains(&ESC));
    assert_eq!(
        out.lines().last(),
        Some("Status: master none, 0 of 2 directors reachable, no IPVS table."),
        "{out}"
    );
}

// ------------------------------------------------------------ summary line

#[test]
fn every_mode_ends_with_a_summary_line() {
    let last = |o: &Output| text(&o.stdout).lines().last().unwrap_or("").to_string();
    let o = lvsup(&["validate", "-f", "examples/dr.toml"], &[]);
    code(&o, 0);
    assert_eq!(last(&o), "web: DR, 1 service, 2 directors, 2 real servers");
    let o = lvsup(PLAN, &[]);
    assert!(last(&o).starts_with("Plan: 42 to create, 0 to update, 0 to delete on 4 of 4 hosts."));
    let (_d, cfg) = closed_port_ssh_config();
    for (verb, want) in [
        ("apply", "Nothing to apply: no host was touched."),
        ("destroy", "Nothing to destroy: no host was touched."),
    ] {
        let o = lvsup(
            &[
                verb,
                "-f",
                "examples/dr.toml",
                "--ssh-config",
                &cfg,
                "--yes",
            ],
            &[],
        );
        code(&o, 1);
        assert_eq!(last(&o), want, "{}", text(&o.stdout));
    }
}

// --------------------------------------------------------------------- JSON

#[test]
fn validate_json_says_valid_or_lists_the_problems() {
    let o = lvsup(&["validate", "--json", "-f", "examples/nat.toml"], &[]);
    code(&o, 0);
    let v = assert_versioned(&o);
    assert_eq!(v["valid"], true);
    assert_eq!(v["file"], "examples/nat.toml");
    assert_eq!(v["counts"]["real_servers"], 2);
    let o = lvsup(
        &[
            "validate",
            "--json",
            "-f",
            "tests/fixtures/invalid/many-problems-at-once.toml",
        ],
        &[],
    );
    code(&o, 1);
    let v = assert_versioned(&o);
    assert_eq!(v["valid"], false);
    let problems = v["errors"].as_array().expect("errors");
    assert_eq!(problems.len(), 3, "{v}");
    assert!(
        problems
            .iter()
            .any(|p| p["key"] == "directors[1].colour" && p["line"] == 16 && p["col"] == 1),
        "{v}"
    );
    let o = lvsup(&["validate", "--json", "-f", "no/such.toml"], &[]);
    code(&o, 1);
    assert_eq!(assert_versioned(&o)["valid"], false);
}

#[test]
fn offline_plan_and_lab_topology_json_carry_format_version() {
    let o = lvsup(
        &["plan", "--offline", "--json", "-f", "examples/tun.toml"],
        &[],
    );
    code(&o, 0);
    let v = assert_versioned(&o);
    assert_eq!(v["cluster"], "tunnel");
    let o = lvsup(&["lab", "topology", "-f", "examples/tun.toml"], &[]);
    code(&o, 0);
    assert_versioned(&o);
}

#[test]
fn apply_destroy_status_json_with_unreachable_hosts() {
    let (_d, cfg) = closed_port_ssh_config();
    let live = ["-f", "examples/dr.toml", "--ssh-config", &cfg, "--json"];
    let run = |verb: &str, yes: bool| {
        let mut a = vec![verb];
        a.extend(live);
        if yes {
            a.push("--yes");
        }
        lvsup(&a, &[])
    };
    let o = run("apply", true);
    code(&o, 1);
    let v = assert_versioned(&o);
    assert_eq!(v["result"], "nothing_to_apply");
    assert_eq!(v["ok"], false);
    assert_eq!(v["plan"]["errors"].as_array().map(Vec::len), Some(4), "{v}");
    let o = run("destroy", true);
    code(&o, 1);
    let v = assert_versioned(&o);
    assert_eq!(v["result"], "nothing_to_destroy");
    assert_eq!(v["errors"].as_array().map(Vec::len), Some(4), "{v}");
    let o = run("status", false);
    code(&o, 1);
    let v = assert_versioned(&o);
    assert_eq!(v["directors"][0]["reachable"], false);
    // JSON has no terminal to confirm on: --yes is required
    for verb in ["apply", "destroy"] {
        let o = run(verb, false);
        code(&o, 64);
        assert!(text(&o.stderr).contains("--yes"), "{}", text(&o.stderr));
    }
}

// ------------------------------------------------------------------ --target

#[test]
fn unknown_target_is_an_error_naming_it_before_any_ssh() {
    // `--ssh-config` names a file that does not exist: any SSH attempt would
    // print per-host errors on stdout; the typo must stop lvsup first.
    for verb in ["plan", "apply", "destroy", "status"] {
        let o = lvsup(
            &[
                verb,
                "-f",
                "examples/dr.toml",
                "--ssh-config",
                "/nonexistent/ssh_config",
                "--target",
                "lvs191x",
            ],
            &[],
        );
        code(&o, 1);
        assert!(o.stdout.is_empty(), "{verb}: {}", text(&o.stdout));
        let err = text(&o.stderr);
        assert!(
            err.contains(
                "--target lvs191x: no such host in examples/dr.toml (did you mean \"lvs191\"?)"
            ),
            "{verb}: {err}"
        );
        assert!(err.contains("lvs191, lvs192, node1, node2"), "{err}");
    }
    let o = lvsup(
        &[
            "plan",
            "--offline",
            "-f",
            "examples/dr.toml",
            "--target",
            "zzz",
        ],
        &[],
    );
    code(&o, 1);
    let err = text(&o.stderr);
    assert!(err.contains("--target zzz: no such host"), "{err}");
    assert!(!err.contains("did you mean"), "nothing close: {err}");
}

#[test]
fn offline_plan_with_a_target_plans_that_host_only() {
    let o = lvsup(
        &[
            "plan",
            "--offline",
            "-f",
            "examples/dr.toml",
            "--target",
            "node2",
        ],
        &[],
    );
    code(&o, 0);
    let out = text(&o.stdout);
    assert!(out.contains("\nnode2 (real server"), "{out}");
    assert!(
        !out.contains("\nnode1 (") && !out.contains("\nlvs191 ("),
        "{out}"
    );
}

// ------------------------------------------------------------- broken pipe

/// Run lvsup with stdout a pipe whose reading end is already closed: the
/// first write fails with EPIPE, every time.
fn closed_stdout(args: &[&str]) -> Output {
    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills two fresh descriptors we then own.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors are fresh and owned here only.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    let mut child = Command::new(env!("CARGO_BIN_EXE_lvsup"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stderr = Vec::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_end(&mut stderr)
        .expect("read stderr");
    let status = child.wait().expect("wait");
    Output {
        status,
        stdout: vec![],
        stderr,
    }
}

#[test]
fn a_closed_stdout_pipe_ends_quietly_with_exit_0() {
    for args in [
        PLAN,
        &["plan", "--offline", "--json", "-f", "examples/dr.toml"],
        &["validate", "-f", "examples/dr.toml"],
        &["lab", "topology", "-f", "examples/dr.toml"],
    ] {
        let o = closed_stdout(args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{args:?}: {:?} {}",
            o.status,
            text(&o.stderr)
        );
        assert!(o.stderr.is_empty(), "{args:?}: {}", text(&o.stderr));
    }
}

#[test]
fn reading_a_few_bytes_then_closing_the_pipe_ends_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lvsup"))
        .args(PLAN)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut first = [0u8; 16];
    child
        .stdout
        .take()
        .expect("stdout")
        .read_exact(&mut first)
        .expect("read");
    // the reader is dropped here, like `head -c 16`
    let o = child.wait_with_output().expect("wait");
    assert_eq!(&first[..4], b"Plan");
    assert_eq!(o.status.code(), Some(0), "{:?}", o.status);
    assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
}

// -------------------------------------------------------------------- logs

#[test]
fn verbose_and_rust_log_turn_on_debug_logs_on_stderr() {
    let args = ["validate", "-f", "examples/dr.toml"];
    let quiet = lvsup(&args, &[]);
    code(&quiet, 0);
    assert!(quiet.stderr.is_empty(), "{}", text(&quiet.stderr));
    let mut runs: HashMap<&str, Output> = HashMap::new();
    runs.insert(
        "-vv",
        lvsup(&["-vv", "validate", "-f", "examples/dr.toml"], &[]),
    );
    runs.insert(
        "trailing -v -v",
        lvsup(&["validate", "-f", "examples/dr.toml", "-v", "-v"], &[]),
    );
    runs.insert("RUST_LOG", lvsup(&args, &[("RUST_LOG", "lvsup=debug")]));
    for (how, o) in &runs {
        code(o, 0);
        let err = text(&o.stderr);
        assert!(err.contains("DEBUG"), "{how}: {err}");
        assert!(
            err.contains("reading cluster file examples/dr.toml"),
            "{how}: {err}"
        );
        // stdout stays the command's output
        assert_eq!(
            text(&o.stdout),
            "web: DR, 1 service, 2 directors, 2 real servers\n"
        );
    }
    // -v alone is info: no debug lines
    let o = lvsup(&["-v", "validate", "-f", "examples/dr.toml"], &[]);
    assert!(!text(&o.stderr).contains("DEBUG"), "{}", text(&o.stderr));
    // RUST_LOG wins over -v
    let o = lvsup(
        &["-vv", "validate", "-f", "examples/dr.toml"],
        &[("RUST_LOG", "off")],
    );
    assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
}

#[test]
fn the_daemon_logs_through_the_same_filter_on_stderr() {
    let o = lvsup(
        &["director", "run", "--config", "/nonexistent/director.toml"],
        &[],
    );
    code(&o, 1);
    assert!(o.stdout.is_empty(), "{}", text(&o.stdout));
    let err = text(&o.stderr);
    assert!(
        err.contains("ERROR") && err.contains("director stopped with an error"),
        "{err}"
    );
    let o = lvsup(
        &["director", "run", "--config", "/nonexistent/director.toml"],
        &[("RUST_LOG", "off")],
    );
    code(&o, 1);
    assert!(
        !text(&o.stderr).contains("director stopped"),
        "{}",
        text(&o.stderr)
    );
}
