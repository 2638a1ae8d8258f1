//! The `lvsup` binary: `main → run → ExitCode`. Exit codes are documented in
//! [`lvsup::cli::exit`] and the README.

use std::process::ExitCode;

fn main() -> ExitCode {
    lvsup::cli::main()
}
