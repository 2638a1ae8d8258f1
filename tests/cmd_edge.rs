//! The command line is the one edge: no library module imports `crate::cmd`
//! (code, not comments), none prints to the terminal itself, and none
//! builds a tokio runtime (`cmd::runtime` and `cmd::current_thread_runtime`
//! do; library code takes one).

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn library_modules_import_nothing_from_cmd_and_do_not_print() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let library: Vec<&PathBuf> = files
        .iter()
        .filter(|p| !p.starts_with(src.join("cmd")) && !p.ends_with("main.rs"))
        .collect();
    assert!(library.len() > 20, "found {} files", library.len());
    let mut bad = Vec::new();
    for f in library {
        let text = std::fs::read_to_string(f).expect("read");
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in [
                "crate::cmd",
                "println!",
                "print!(",
                "eprintln!",
                "eprint!(",
                "runtime::Builder",
            ] {
                if code.contains(word) {
                    bad.push(format!("{}:{}: {}", f.display(), i + 1, line.trim()));
                }
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
