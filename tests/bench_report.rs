//! `tools/bench-report`: every table of docs/benchmarks.md that comes from
//! committed raw data (issue 18: "the tables regenerated from the raw data by
//! one command") equals what the data gives, and the check fails on a table
//! that was edited by hand or on data that changed.

use std::path::Path;
use std::process::{Command, Output};

fn report(args: &[&str]) -> Output {
    Command::new("python3")
        .arg("tools/bench-report")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run python3 tools/bench-report (python3 must be installed)")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_documented_tables_match_their_raw_data() {
    let o = report(&["--check", "docs/benchmarks.md"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("tables match their raw data"),
        "{}",
        text(&o)
    );
}

/// A copy of the document and its data in a temp dir, so the check can be
/// shown to fail without touching the repository.
fn copy(dir: &Path) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    std::fs::create_dir_all(dir.join("benchmarks")).expect("mkdir");
    for e in std::fs::read_dir(root.join("benchmarks")).expect("docs/benchmarks") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), dir.join("benchmarks").join(e.file_name())).expect("copy");
    }
    let doc = dir.join("benchmarks.md");
    std::fs::copy(root.join("benchmarks.md"), &doc).expect("copy doc");
    doc
}

#[test]
fn a_figure_edited_by_hand_or_changed_data_fails_the_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let doc = copy(dir.path());
    let d = doc.to_string_lossy().into_owned();
    let original = std::fs::read_to_string(&doc).expect("doc");

    // A flattering figure typed into the table.
    let edited = original.replacen("| 0.70 |", "| 0.50 |", 1);
    assert_ne!(edited, original, "the failover table has a 0.70 ratio");
    std::fs::write(&doc, &edited).expect("write");
    let o = report(&["--check", &d]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("-| Pss"),
        "the diff shows the line: {}",
        text(&o)
    );

    // The data changed under an unchanged table.
    std::fs::write(&doc, &original).expect("restore");
    let data = dir
        .path()
        .join("benchmarks/2026-12-02-failover-resources.jsonl");
    let raw = std::fs::read_to_string(&data).expect("data");
    std::fs::write(&data, raw.replace("\"pss_kb\": 2583", "\"pss_kb\": 9999")).expect("write");
    let o = report(&["--check", &d]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // Regenerating makes it pass again, with the new figure.
    let o = report(&[&d]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        std::fs::read_to_string(&doc)
            .expect("doc")
            .contains("9999 kB"),
        "regenerated"
    );
    let o = report(&["--check", &d]);
    assert!(o.status.success(), "{}", text(&o));
}

/// Raw `data` as benchmarks/t.jsonl beside a document `doc` in `dir`, and
/// bench-report run on it: its output and the document it left.
fn report_doc(dir: &Path, data: &str, doc: &str) -> (Output, String) {
    std::fs::create_dir_all(dir.join("benchmarks")).expect("mkdir");
    std::fs::write(dir.join("benchmarks/t.jsonl"), data).expect("data");
    let path = dir.join("t.md");
    std::fs::write(&path, doc).expect("doc");
    let o = report(&[&path.to_string_lossy()]);
    (o, std::fs::read_to_string(&path).expect("doc"))
}

/// The table bench-report writes for raw `data` into a document in `dir`.
fn table_of(dir: &Path, data: &str) -> String {
    let (o, doc) = report_doc(
        dir,
        data,
        "x\n<!-- bench-report benchmarks/t.jsonl -->\n<!-- /bench-report -->\n",
    );
    assert!(o.status.success(), "{}", text(&o));
    doc
}

/// A scale bench's line: `daemon`'s `case` at 100 × 10 in `s` seconds, with
/// `extra` fields (`, "key": value`).
fn scale_line(daemon: &str, case: &str, s: f64, extra: &str) -> String {
    format!(
        "{{\"bench\": \"scale\", \"daemon\": \"{daemon}\", \"services\": 100, \"real_servers\": 10, \"case\": \"{case}\", \"s\": {s:.1}, \"ok\": true{extra}, \"rep\": 1}}\n"
    )
}

/// A failed run (`"ok": false`) is counted and shown, never a figure.
#[test]
fn failed_runs_are_shown_and_not_averaged_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rows = [
        (r#""tool": "lvsup", "phase": "apply_cold", "s": 1.0, "ok": true"#),
        (r#""tool": "lvsup", "phase": "apply_cold", "s": 2.0, "ok": true"#),
        (r#""tool": "lvsup", "phase": "apply_cold", "s": 3.0, "ok": true"#),
        (r#""tool": "ansible", "phase": "apply_cold", "s": 10.0, "ok": true"#),
        (r#""tool": "ansible", "phase": "apply_cold", "s": 1.0, "ok": false"#),
    ];
    let data: String = rows
        .iter()
        .map(|r| format!("{{\"bench\": \"apply\", \"n\": 10, \"rep\": 1, {r}}}\n"))
        .collect();
    let table = table_of(dir.path(), &data);
    assert!(
        table.contains(
            "| 10 | apply cold | 2.00 s (1.00–3.00) | 10.00 s (1 run) | 5.0× | one run: no verdict | lvsup 3/3 / ansible 1/2 |"
        ),
        "{table}"
    );
}

/// The table bench-report writes for raw `data` has every one of `rows` (a
/// row or a part of one).
fn assert_rows(data: &str, rows: &[&str]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let table = table_of(dir.path(), data);
    for row in rows {
        assert!(table.contains(row), "no {row:?} in\n{table}");
    }
}

/// With CPU times in the data, the apply table shows each tool's median CPU
/// of the runs that passed.
#[test]
fn cpu_times_get_their_column() {
    let data = "\
{\"bench\": \"apply\", \"tool\": \"lvsup\", \"n\": 5, \"rep\": 1, \"phase\": \"apply_cold\", \"s\": 1.0, \"ok\": true, \"cpu_s\": 0.25}
{\"bench\": \"apply\", \"tool\": \"ansible\", \"n\": 5, \"rep\": 1, \"phase\": \"apply_cold\", \"s\": 9.0, \"ok\": true, \"cpu_s\": 7.5}
{\"bench\": \"apply\", \"tool\": \"ansible\", \"n\": 5, \"rep\": 2, \"phase\": \"apply_cold\", \"s\": 9.0, \"ok\": false, \"cpu_s\": 99}
";
    assert_rows(
        data,
        &["| CPU here, lvsup / Ansible |", "| 0.25 s / 7.50 s |"],
    );
}

/// check_cost: builds side by side against the first, each figure a row,
/// the wakes of the runtime per check among them.
#[test]
fn check_cost_builds_are_compared_with_the_first() {
    let line = |label: &str, fig: &str, v: f64| {
        format!(
            "{{\"bench\": \"check_cost\", \"figure\": \"{fig}\", \"rep\": 1, \"value\": {v}, \"label\": \"{label}\"}}\n"
        )
    };
    let data = [
        line("a", "instructions_per_check", 12000.0),
        line("b", "instructions_per_check", 9000.0),
        line("a", "parks_per_check", 2.05),
        line("b", "parks_per_check", 1.06),
    ]
    .concat();
    assert_rows(
        &data,
        &[
            "| measure | a | b | b ÷ a |",
            "| user-space instructions per TCP check | 12,000 (1 run) | 9,000 (1 run) | 0.75 |",
            "| wakes of the runtime (epoll_wait) per TCP check | 2.05 (1 run) | 1.06 (1 run) | 0.52 |",
        ],
    );
}

/// Scale runs at another check interval (SCALE_INTERVAL) get rows of their
/// own, named by the interval: never averaged with the 1 s runs.
#[test]
fn scale_runs_at_another_interval_are_kept_apart() {
    let run = |daemon: &str, s: f64, interval: &str| scale_line(daemon, "ready", s, interval);
    let ten = ", \"interval_s\": 10";
    let data = [
        run("lvsup", 4.0, ""),
        run("keepalived", 2.0, ""),
        run("lvsup", 40.0, ten),
        run("keepalived", 20.0, ten),
    ]
    .concat();
    assert_rows(
        &data,
        &[
            "| 100 × 10 | start → every destination up (keepalived: added unchecked) | 4.0 s (1 run) | 2.0 s (1 run) |",
            "| 100 × 10, every 10 s | start → every destination up (keepalived: added unchecked) | 40.0 s (1 run) | 20.0 s (1 run) |",
        ],
    );
}

/// keepalived's start with `alpha` (each real server down until checked)
/// is compared with lvsup's start in a row of its own, never mixed into
/// its default start (servers added unchecked).
#[test]
fn keepalived_alpha_start_is_compared_with_lvsup_start_apart() {
    let run = |daemon: &str, case: &str, s: f64| scale_line(daemon, case, s, "");
    let data = [
        run("lvsup", "ready", 4.0),
        run("keepalived", "ready", 2.0),
        run("keepalived", "ready_alpha", 16.0),
    ]
    .concat();
    assert_rows(
        &data,
        &[
            "| 100 × 10 | start → every destination up (keepalived: added unchecked) | 4.0 s (1 run) | 2.0 s (1 run) | 2.00 |",
            "| 100 × 10 | start → every destination up, each once checked (keepalived with `alpha`) | 4.0 s (1 run) | 16.0 s (1 run) | 0.25 |",
        ],
    );
}

/// Runs with the directors (in the lab VM) and runs of the real servers
/// alone are different work: rows of their own, never one median; the
/// machine's CPU gets its column when the data has it.
#[test]
fn fleet_runs_with_directors_are_kept_apart() {
    let run = |directors: bool, s: f64, cpu: f64, machine: f64| {
        format!(
            "{{\"bench\": \"apply\", \"tool\": \"lvsup\", \"n\": 10, \"directors\": {directors}, \"rep\": 1, \"phase\": \"apply_cold\", \"s\": {s:.1}, \"ok\": true, \"cpu_s\": {cpu:.1}, \"machine_cpu_s\": {machine:.1}}}\n"
        )
    };
    let data = [run(false, 1.0, 0.5, 2.0), run(true, 5.0, 1.5, 8.0)].concat();
    assert_rows(
        &data,
        &[
            "| the machine's CPU (hosts included), lvsup / Ansible |",
            "| 10 | apply cold | 1.00 s (1 run) |",
            "| 10 + 2 directors | apply cold | 5.00 s (1 run) |",
            "| 1.50 s / — | 8.00 s / — |",
        ],
    );
}

/// `tools/callgrind-calls` (benches/check_cost.sh's clock reads per check):
/// the calls to the functions a pattern names, summed over their call sites,
/// with callgrind's compressed names resolved; other functions' calls and
/// costs are not counted; a missing file is an error.
#[test]
fn callgrind_calls_sums_the_calls_to_the_named_functions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("callgrind.out.1");
    // two call sites of clock_gettime (the second by its compressed id),
    // one of epoll_wait; cost lines between them
    std::fs::write(
        &out,
        "events: Ir\nfn=(1) main\n0 10\ncfn=(2) clock_gettime@@GLIBC_2.17\ncalls=7 0\n0 70\n\
         cfn=(3) epoll_wait\ncalls=5 0\n0 50\nfn=(4) tokio::park\n0 3\ncfn=(2)\ncalls=4 0\n0 40\n\
         fn=(2)\n0 110\n",
    )
    .expect("write");
    let run = |pattern: &str| {
        Command::new("python3")
            .arg("tools/callgrind-calls")
            .arg(&out)
            .arg(pattern)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("run python3 tools/callgrind-calls")
    };
    let o = run("^(__)?clock_gettime");
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert_eq!(t.lines().next(), Some("11"), "{t}");
    assert!(t.contains("11 clock_gettime@@GLIBC_2.17"), "{t}");
    let o = run("epoll_wait|clock_gettime");
    assert_eq!(text(&o).lines().next(), Some("16"), "{}", text(&o));
    let o = run("nothing_by_this_name");
    assert_eq!(text(&o).lines().next(), Some("0"), "{}", text(&o));
    std::fs::remove_file(&out).expect("rm");
    let o = run("clock_gettime");
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("callgrind-calls:"), "{}", text(&o));
}

/// Failover gaps: a difference under the probes' 10 ms step gets no verdict
/// of better or worse even when the ranges do not overlap; a larger one
/// does; counts of failed probes are shown without a unit, 0 against 0 as
/// "both 0".
#[test]
fn failover_times_closer_than_the_bench_can_tell_get_no_verdict() {
    let mut data = String::new();
    for (d, gap, stop_gap, failed) in [("lvsup", 405, 0, 0), ("keepalived", 406, 200, 0)] {
        for rep in 1..=3 {
            data += &format!(
                "{{\"bench\": \"failover\", \"daemon\": \"{d}\", \"advert_ms\": 100, \"case\": \"crash\", \"rep\": {rep}, \"gap_ms\": {gap}, \"failed\": 2, \"failback_failed\": {failed}}}\n\
                 {{\"bench\": \"failover\", \"daemon\": \"{d}\", \"advert_ms\": 100, \"case\": \"stop\", \"rep\": {rep}, \"gap_ms\": {}, \"failed\": 1, \"failback_failed\": 1}}\n",
                stop_gap + rep
            );
        }
    }
    assert_rows(
        &data,
        &[
            "| host crash: longest gap | 100 ms | 405 ms (405–405) | 406 ms (406–406) | 1.00 | same within the bench's resolution (10 ms) |",
            "| planned stop: longest gap | 100 ms | 2 ms (1–3) | 202 ms (201–203) | 0.01 | better |",
            "| host crash (link down + `kill -9`): failed probes | 100 ms | 2 (2–2) | 2 (2–2) | 1.00 | same within spread |",
            "| … back, master again: failed probes | 100 ms | 0 (0–0) | 0 (0–0) | both 0 | same within spread |",
        ],
    );
}

/// `FILE?KEY=A,B` takes only the lines whose KEY is A or B: two builds of
/// lvsup beside one keepalived in one file give one table per build, never
/// one median of both builds.
#[test]
fn a_section_can_take_the_lines_of_some_builds() {
    let run = |daemon: &str, build: &str, s: f64| {
        scale_line(daemon, "ready", s, &format!(", \"build\": \"{build}\""))
    };
    let data = [
        run("lvsup", "old", 8.0),
        run("lvsup", "new", 4.0),
        run("keepalived", "keepalived", 2.0),
    ]
    .concat();
    let dir = tempfile::tempdir().expect("tempdir");
    let (o, t) = report_doc(
        dir.path(),
        &data,
        "<!-- bench-report benchmarks/t.jsonl?build=new,keepalived -->\n<!-- /bench-report -->\n\
         <!-- bench-report benchmarks/t.jsonl?build=old,keepalived -->\n<!-- /bench-report -->\n",
    );
    assert!(o.status.success(), "{}", text(&o));
    for row in [
        "| 100 × 10 | start → every destination up (keepalived: added unchecked) | 4.0 s (1 run) | 2.0 s (1 run) | 2.00 |",
        "| 100 × 10 | start → every destination up (keepalived: added unchecked) | 8.0 s (1 run) | 2.0 s (1 run) | 4.00 |",
    ] {
        assert!(t.contains(row), "{row} in\n{t}");
    }
    assert!(!t.contains("6.0 s"), "the builds were mixed:\n{t}");
    // a filter that keeps nothing is an error, not an empty table
    let (o, _) = report_doc(
        dir.path(),
        &data,
        "<!-- bench-report benchmarks/t.jsonl?build=none -->\n<!-- /bench-report -->\n",
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("no data"), "{}", text(&o));
}
