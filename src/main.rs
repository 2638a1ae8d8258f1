//! The `lvsup` binary: `main → run → ExitCode`. Exit codes are documented in
//! [`lvsup::cmd::exit`] and `docs/reference/cli.md`.

use std::process::ExitCode;

fn main() -> ExitCode {
    lvsup::cmd::main()
}
