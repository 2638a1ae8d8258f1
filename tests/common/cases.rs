//! The case-folder conformance suites (tests/vrrp_conformance/,
//! tests/director_conformance/): each case is a folder with an `input` file run
//! through the suite's driver and an `expected` file with its output, re-blessed
//! with the suite's `*_BLESS` variable. Included by each suite with
//! `#[macro_use] #[path = "common/cases.rs"] mod cases;` next to a `SUITE`
//! (the folder), a `BLESS` (the variable) and its `run_case(input) -> String`.

use std::path::Path;

/// Run case `name` of `suite` through `run` and compare with its `expected`
/// (or write it, when the `bless` variable is set).
pub fn check_case(suite: &str, bless: &str, name: &str, run: fn(&str) -> String) {
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join(suite).join(name);
    let input = std::fs::read_to_string(case.join("input")).expect("input");
    let got = run(&input);
    let expected_path = case.join("expected");
    if std::env::var_os(bless).is_some() {
        std::fs::write(&expected_path, &got).expect("write expected");
        return;
    }
    let want = std::fs::read_to_string(&expected_path).unwrap_or_default();
    assert!(
        got == want,
        "{name}: outputs differ\n--- expected\n{want}\n+++ got\n{got}"
    );
}

/// Every case folder of `suite` is one of `listed` (in order), and back.
pub fn assert_all_listed(suite: &str, listed: &[&str]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(suite);
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .expect("the suite's folder")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .map(|p| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    found.sort();
    assert_eq!(found, listed);
}

/// One `#[test]` per case folder, and one that every folder is listed.
macro_rules! cases {
    ($($test:ident: $dir:literal,)*) => {
        $(
            #[test]
            fn $test() {
                cases::check_case(SUITE, BLESS, $dir, run_case);
            }
        )*

        /// Every case directory has its test above.
        #[test]
        fn every_case_directory_is_listed() {
            cases::assert_all_listed(SUITE, &[$($dir),*]);
        }
    };
}
