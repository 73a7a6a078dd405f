//! The `portsyncd` binary: parses the command line, hands over to the library and turns the
//! crate's one error type into a named exit code. Everything else lives in the library.
#![forbid(unsafe_code)]

use clap::Parser;
use portsyncd::cli::Cli;

fn main() -> std::process::ExitCode {
    // A bad command line exits 64 (EX_USAGE, ARCHITECTURE.md "Exit codes"), not clap's 2;
    // --help and --version still print to stdout and exit 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return std::process::ExitCode::from(if e.use_stderr() {
                portsyncd::error::EXIT_USAGE
            } else {
                0
            });
        }
    };
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
            // One write(2) for the whole line: stderr is unbuffered, and supervisord's
            // stderr_syslog makes a syslog line of every read, so piecewise writes arrived
            // as seven lines in the swss container.
            let line = format!("{prio}portsyncd: {e}\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
            std::process::ExitCode::from(e.exit_code())
        }
    }
}
