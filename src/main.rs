//! The `portsyncd` binary: parses the command line, hands over to the library and turns the
//! crate's one error type into a named exit code. Everything else lives in the library.
#![forbid(unsafe_code)]

use clap::Parser;
use portsyncd::cli::Cli;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match portsyncd::run(cli) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("portsyncd: {e}");
            std::process::ExitCode::from(e.exit_code())
        }
    }
}
