//! The benches' lvsup command lines against lvsup's command line.
//!
//! `benches/apply_bench.sh` ran `lvsup -f FILE plan` for a whole round after
//! the CLI redesign put the subcommand first: every lvsup run exited 64 and
//! nothing failed. This test reads every `"$LVSUP" …` line of the bench
//! scripts (arrays they pass, `"${name[@]}"`, expanded from the script's own
//! `name=(…)` and `name+=(…)`), and checks that the literal words before
//! the first option name a subcommand (`lvsup WORDS --help` exits 0) and
//! that every literal option is one that subcommand's help lists.

use std::path::Path;
use std::process::Command;

/// One lvsup invocation found in a script.
#[derive(Debug)]
struct Call {
    file: String,
    line: usize,
    words: Vec<String>,
}

/// The words after `"$LVSUP"` on `line`, up to the end of the command (a
/// pipe, a redirection, `;`, `&&`, `||`, a closing `)` of `$(…)`).
fn command_after(line: &str) -> Option<String> {
    let at = line.find("\"$LVSUP\"")?;
    // the binary handed to a program as an argument, not run here
    if line[..at].contains("python3") {
        return None;
    }
    let rest = &line[at + "\"$LVSUP\"".len()..];
    let mut end = rest.len();
    let mut quoted = false;
    for (i, c) in rest.char_indices() {
        match c {
            '"' | '\'' => quoted = !quoted,
            '|' | '>' | '<' | ';' | '&' | ')' | '#' if !quoted => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    // a trailing "2" of "2>&1" belongs to the redirection
    let cmd = rest[..end].trim_end();
    let cmd = cmd.strip_suffix(" 2").unwrap_or(cmd);
    Some(cmd.to_string())
}

/// Every `name=(…)` and `name+=(…)` of `script`, concatenated (also
/// inside a loop: `do name+=(…); done`), arrays in them expanded too.
fn array(script: &str, name: &str) -> Vec<String> {
    expand_array(script, name, 0)
}

fn expand_array(script: &str, name: &str, depth: usize) -> Vec<String> {
    let mut out = Vec::new();
    for l in script.lines() {
        for op in ["=(", "+=("] {
            let pat = format!("{name}{op}");
            let mut rest = l;
            while let Some(at) = rest.find(&pat) {
                let before = rest[..at].chars().last();
                let body = &rest[at + pat.len()..];
                rest = body;
                if before.is_some_and(|c| !c.is_whitespace() && c != ';') {
                    continue;
                }
                let Some(body) = body.split(')').next() else {
                    continue;
                };
                for w in shlex::split(body).unwrap_or_default() {
                    match w.strip_prefix("${").and_then(|w| w.strip_suffix("[@]}")) {
                        Some(inner) if depth < 4 => {
                            out.extend(expand_array(script, inner, depth + 1))
                        }
                        _ => out.push(w),
                    }
                }
            }
        }
    }
    out
}

/// The script's lines with their continuations (`\` at the end) joined,
/// each with the number of its first line.
fn logical_lines(script: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut open = false;
    for (i, l) in script.lines().enumerate() {
        let (text, cont) = match l.strip_suffix('\\') {
            Some(t) => (t, true),
            None => (l, false),
        };
        match out.last_mut() {
            Some((_, last)) if open => {
                last.push(' ');
                last.push_str(text);
            }
            _ => out.push((i + 1, text.to_string())),
        }
        open = cont;
    }
    out
}

fn calls() -> Vec<Call> {
    let mut out = Vec::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("benches/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sh"))
        .collect();
    files.sort();
    for f in files {
        let script = std::fs::read_to_string(&f).expect("bench script");
        for (i, l) in logical_lines(&script) {
            if l.trim_start().starts_with('#') {
                continue;
            }
            let Some(cmd) = command_after(&l) else {
                continue;
            };
            let mut words = Vec::new();
            for w in shlex::split(&cmd).unwrap_or_else(|| panic!("{f:?}:{}: {cmd}", i + 1)) {
                match w.strip_prefix("${").and_then(|w| w.strip_suffix("[@]}")) {
                    Some(name) => words.extend(array(&script, name)),
                    None => words.push(w),
                }
            }
            out.push(Call {
                file: f.file_name().expect("name").to_string_lossy().into(),
                line: i,
                words,
            });
        }
    }
    out
}

#[test]
fn every_lvsup_command_line_of_the_benches_parses() {
    let bin = env!("CARGO_BIN_EXE_lvsup");
    let calls = calls();
    // apply_bench (plan, apply, destroy, lab up/down), lib.sh (plan),
    // scale/failover (director run), failover (lab exec, up, down)
    assert!(calls.len() >= 12, "{calls:#?}");
    let mut bad = Vec::new();
    for c in &calls {
        if c.words.first().map(String::as_str) == Some("--version") {
            continue;
        }
        let sub: Vec<&str> = c
            .words
            .iter()
            .take_while(|w| !w.starts_with('-') && !w.contains('$'))
            .map(String::as_str)
            .collect();
        if sub.is_empty() {
            bad.push(format!(
                "{}:{}: no subcommand first: lvsup {}",
                c.file,
                c.line,
                c.words.join(" ")
            ));
            continue;
        }
        let o = Command::new(bin)
            .args(&sub)
            .arg("--help")
            .output()
            .expect("run lvsup");
        if !o.status.success() {
            bad.push(format!(
                "{}:{}: `lvsup {} --help` failed: {}",
                c.file,
                c.line,
                sub.join(" "),
                String::from_utf8_lossy(&o.stderr)
            ));
            continue;
        }
        let help = String::from_utf8_lossy(&o.stdout);
        // after `--` the words are another program's (`lab exec HOST -- CMD`)
        let options = c.words.iter().take_while(|w| *w != "--");
        for w in options.filter(|w| w.starts_with('-')) {
            let flag = w.split('=').next().unwrap_or(w);
            let listed = if flag.starts_with("--") {
                help.split(|c: char| !(c.is_alphanumeric() || c == '-'))
                    .any(|t| t == flag)
            } else {
                help.contains(&format!("{flag},")) || help.contains(&format!("{flag} "))
            };
            // a hidden option (`lab up --no-kernel-check`): clap takes it
            // before `--help`, and refuses one it does not know
            let listed = listed
                || Command::new(bin)
                    .args(&sub)
                    .args([flag, "--help"])
                    .output()
                    .is_ok_and(|o| o.status.success());
            if !listed {
                bad.push(format!(
                    "{}:{}: `lvsup {}` has no option {flag}",
                    c.file,
                    c.line,
                    sub.join(" ")
                ));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// The check above fails on the command line that broke the apply bench,
/// and on an option lvsup does not have.
#[test]
fn the_check_catches_the_old_apply_bench_line() {
    let words = shlex::split(
        &command_after(r#"timed "$work/plan.log" "$LVSUP" -f "$f" plan --detailed-exitcode"#)
            .expect("found"),
    )
    .expect("words");
    assert_eq!(words, ["-f", "$f", "plan", "--detailed-exitcode"]);
    assert!(words[0].starts_with('-'), "no subcommand first");
    let o = Command::new(env!("CARGO_BIN_EXE_lvsup"))
        .args(["plan", "--help"])
        .output()
        .expect("run lvsup");
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(help.contains("--detailed-exitcode"));
    assert!(!help.contains("--no-such-option"));
    let up = array("up=(lab up -f \"$f\")\nup+=(--no-kernel-check)\n", "up");
    assert_eq!(up, ["lab", "up", "-f", "$f", "--no-kernel-check"]);
}
