//! The `lvsup` binary: `main → run → ExitCode`. Exit codes are documented in
//! [`lvsup::cmd::exit`] and the README.

use std::process::ExitCode;

fn main() -> ExitCode {
    lvsup::cmd::main()
}
