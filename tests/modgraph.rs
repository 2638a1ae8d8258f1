//! `tools/modgraph`: the crate's import graph (issue 16: "shows no cycles"),
//! run on the crate itself and on small planted trees that show the tool
//! finds what it claims to find.

use std::path::Path;
use std::process::{Command, Output};

/// `python3 tools/modgraph ARGS…` from the repository root.
fn modgraph(args: &[&str]) -> Output {
    Command::new("python3")
        .arg("tools/modgraph")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run python3 tools/modgraph (python3 must be installed)")
}

/// The failed checks, one short line each: `cycle A, B` for a cycle among
/// top-level modules, `A imports B` for a pure core importing an I/O module.
fn findings(stderr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for l in stderr.lines() {
        if let Some(rest) = l.strip_prefix("modgraph: import cycle among top-level modules ") {
            out.push(format!("cycle {}", rest.trim_end_matches(':')));
        } else if let Some(rest) = l.strip_prefix("modgraph: pure core ") {
            out.push(rest.split(" (").next().unwrap_or(rest).to_string());
        }
    }
    out.sort();
    out
}

/// What the tool reports on lvsup's own `src/` today: nothing (issue 16: "the
/// import graph shows no cycles"). The list may only shrink: a new cycle or
/// upward import fails this test. The last three (`desired ⇄ director` through
/// the unit name, `ipvs::batch` and `ipvs::message` importing the client) went
/// with `crate::layout` and `ipvs::error`.
const KNOWN: &[&str] = &[];

#[test]
fn the_crate_has_no_import_cycles_and_pure_cores_import_no_io_beyond_the_known_ones() {
    let out = modgraph(&["--strict"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The graph itself was read: the edges every build has.
    for edge in [
        "cmd -> apply ",
        "apply -> plan ",
        "director::daemon -> director::core ",
    ] {
        assert!(stdout.contains(edge), "no `{edge}` in:\n{stdout}");
    }
    let found = findings(&stderr);
    let known: Vec<String> = KNOWN.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        found, known,
        "tools/modgraph's findings changed (remove fixed ones from KNOWN; never add):\n{stderr}"
    );
    assert_eq!(
        out.status.code(),
        Some(if KNOWN.is_empty() { 0 } else { 1 }),
        "{stderr}"
    );
}

fn write(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
}

/// A small crate: `a` (with child `x`) and `b`, the pure core `vrrp`, the
/// edge `cmd` and the I/O module `lab`. Comments, strings and test modules name modules too; none of
/// those may count.
const CLEAN: &[(&str, &str)] = &[
    (
        "src/lib.rs",
        "pub mod a;\npub mod b;\npub mod cmd;\npub mod lab;\npub mod vrrp;\n",
    ),
    ("src/lab.rs", "pub struct Lab;\n"),
    (
        "src/a/mod.rs",
        "pub mod x;\npub use x::X;\n// crate::b::B is named in a comment only\n",
    ),
    (
        "src/a/x.rs",
        "use crate::vrrp::Machine;\npub struct X(Machine);\nconst S: &str = \"crate::b::B\";\n",
    ),
    ("src/b.rs", "pub struct B(pub super::a::X);\n"),
    ("src/cmd/mod.rs", "use crate::b::B;\npub struct Cli(B);\n"),
    (
        "src/vrrp/mod.rs",
        "pub struct Machine;\n#[cfg(test)]\nmod tests {\n    use crate::cmd::Cli;\n}\n",
    ),
];

#[test]
fn modgraph_passes_a_tree_without_cycles_and_ignores_comments_strings_and_tests() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), CLEAN);
    let out = modgraph(&[dir.path().to_str().expect("utf-8 path")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    // `b` names `a::X`, a re-export of `a::x`: followed to the defining module.
    assert!(stdout.contains("b -> a::x    src/b.rs:1"), "{stdout}");
    assert!(stdout.contains("a::x -> vrrp    src/a/x.rs:1"), "{stdout}");
    let edges: Vec<&str> = stdout.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(
        !edges.iter().any(|l| l.starts_with("a -> b ")),
        "comment or string counted:\n{stdout}"
    );
    assert!(
        !edges.iter().any(|l| l.starts_with("vrrp -> ")),
        "test module counted:\n{stdout}"
    );
}

#[test]
fn modgraph_fails_on_a_planted_cycle_and_a_pure_core_importing_the_edge() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), CLEAN);
    write(
        dir.path(),
        &[
            // a → b (a::x names b) closes a cycle with b → a.
            (
                "src/a/x.rs",
                "use crate::vrrp::Machine;\npub struct X(Machine);\n\nfn f() -> crate::b::B { todo!() }\n",
            ),
            // the pure core vrrp names an I/O module.
            (
                "src/vrrp/mod.rs",
                "pub struct Machine;\nfn g(_: &super::lab::Lab) {}\n",
            ),
        ],
    );
    let out = modgraph(&[dir.path().to_str().expect("utf-8 path")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        findings(&stderr),
        ["cycle a, b", "vrrp imports lab"],
        "{stderr}"
    );
    // Each finding says where.
    assert!(stderr.contains("a -> b: src/a/x.rs:4"), "{stderr}");
    assert!(stderr.contains("b -> a: src/b.rs:1"), "{stderr}");
    assert!(
        stderr.contains("pure core vrrp imports lab (edge or I/O): src/vrrp/mod.rs:2"),
        "{stderr}"
    );
}

#[test]
fn modgraph_draws_the_graph_for_the_docs() {
    let dot = modgraph(&["--dot"]);
    let text = String::from_utf8_lossy(&dot.stdout);
    assert!(text.starts_with("digraph lvsup {"), "{text}");
    assert!(text.contains("\"cmd\" -> \"apply\";"), "{text}");
    let mermaid = modgraph(&["--mermaid", "--level", "2"]);
    let text = String::from_utf8_lossy(&mermaid.stdout);
    assert!(text.starts_with("graph TD\n"), "{text}");
    assert!(
        text.contains("director__daemon --> director__core"),
        "{text}"
    );
    // A wrong argument is a usage error, not a graph.
    assert_eq!(modgraph(&["--nonsense"]).status.code(), Some(2));
}

#[test]
fn the_architecture_doc_draws_the_graph_as_it_is() {
    let out = modgraph(&["--mermaid"]);
    let graph = String::from_utf8_lossy(&out.stdout);
    assert!(graph.starts_with("graph TD\n"), "{graph}");
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/design/architecture.md");
    let doc = std::fs::read_to_string(&doc_path).expect("read docs/design/architecture.md");
    assert!(
        doc.contains(&format!("```mermaid\n{graph}```\n")),
        "docs/design/architecture.md does not draw the import graph as it is now: replace its \
         first mermaid block with the output of `tools/modgraph --mermaid`:\n{graph}"
    );
}
