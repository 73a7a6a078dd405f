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
            // Under systemd stderr is the journal: `<3>` files the reason at priority err, so
            // `journalctl -u portsyncd -p err` shows why the unit failed.
            let prio = if std::env::var_os("JOURNAL_STREAM").is_some() {
                "<3>"
            } else {
                ""
            };
            eprintln!("{prio}portsyncd: {e}");
            std::process::ExitCode::from(e.exit_code())
        }
    }
}
