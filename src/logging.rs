//! Logging: tracing to stderr, with SONiC's priority names mapped onto tracing levels and a
//! handle to change the level live (CONFIG_DB `LOGGER|portsyncd` LOGLEVEL, or SIGHUP).
//! SONiC has NOTICE between WARN and INFO, so the C++ NOTICE lines are logged at tracing INFO,
//! C++ INFO at DEBUG and C++ DEBUG at TRACE; the default threshold NOTICE is tracing INFO.

use std::cell::RefCell;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing::level_filters::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::{fmt, prelude::*, reload, Registry};

/// While the event loop runs, log lines are collected and written once per loop turn: a
/// storm of link events then costs one write(2) per turn instead of two per event. Outside
/// the loop (start-up, shutdown, tools) every line is written at once.
static BUFFERING: AtomicBool = AtomicBool::new(false);
const BUFFER_LIMIT: usize = 64 * 1024;

thread_local! {
    static LINES: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Write the lines collected in this loop turn.
pub fn flush() {
    LINES.with(|l| {
        let mut l = l.borrow_mut();
        if !l.is_empty() {
            let _ = std::io::stderr().lock().write_all(&l);
            l.clear();
        }
    });
}

/// Collect lines until `flush` (true) or write each at once (false, flushing what is held).
pub fn set_buffering(on: bool) {
    BUFFERING.store(on, Ordering::Relaxed);
    if !on {
        flush();
    }
}

#[derive(Clone, Copy)]
struct Stderr;

struct LineSink;

impl Write for LineSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !BUFFERING.load(Ordering::Relaxed) {
            return std::io::stderr().lock().write(buf);
        }
        let full = LINES.with(|l| {
            let mut l = l.borrow_mut();
            l.extend_from_slice(buf);
            l.len() >= BUFFER_LIMIT
        });
        if full {
            flush();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = LineSink;

    fn make_writer(&'a self) -> LineSink {
        LineSink
    }
}

/// The SONiC priority names accepted in `LOGGER|portsyncd` LOGLEVEL, most severe first.
pub const SONIC_LEVELS: [&str; 8] = [
    "EMERG", "ALERT", "CRIT", "ERROR", "WARN", "NOTICE", "INFO", "DEBUG",
];

/// The tracing threshold for a SONiC priority name; `None` for an unknown name.
pub fn sonic_level(name: &str) -> Option<LevelFilter> {
    Some(match name {
        "EMERG" | "ALERT" | "CRIT" | "ERROR" => LevelFilter::ERROR,
        "WARN" => LevelFilter::WARN,
        "NOTICE" => LevelFilter::INFO,
        "INFO" => LevelFilter::DEBUG,
        "DEBUG" => LevelFilter::TRACE,
        _ => return None,
    })
}

/// Changes the threshold of the installed subscriber.
#[derive(Clone)]
pub struct LogControl {
    handle: Option<reload::Handle<LevelFilter, Registry>>,
}

impl LogControl {
    /// Install the global subscriber (once per process) at `level`.
    pub fn init(level: LevelFilter) -> LogControl {
        let (filter, handle) = reload::Layer::new(level);
        let installed = tracing_subscriber::registry()
            .with(filter)
            .with(
                fmt::layer()
                    .with_writer(Stderr)
                    .with_ansi(false)
                    .with_target(false),
            )
            .try_init()
            .is_ok();
        LogControl {
            handle: installed.then_some(handle),
        }
    }

    /// Apply a SONiC LOGLEVEL value. Unknown values log an error and fall back to NOTICE,
    /// as swss-common does.
    pub fn apply_sonic(&self, name: &str) {
        let level = sonic_level(name).unwrap_or_else(|| {
            tracing::error!(
                "Unknown LOGLEVEL {name:?}, expected one of {SONIC_LEVELS:?}; using NOTICE"
            );
            LevelFilter::INFO
        });
        self.set(level);
    }

    pub fn set(&self, level: LevelFilter) {
        if let Some(h) = &self.handle {
            if h.modify(|f| *f = level).is_ok() {
                tracing::debug!("log level set to {level}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sonic_names_map_onto_tracing_levels() {
        let table = [
            ("EMERG", Some(LevelFilter::ERROR)),
            ("ERROR", Some(LevelFilter::ERROR)),
            ("WARN", Some(LevelFilter::WARN)),
            ("NOTICE", Some(LevelFilter::INFO)),
            ("INFO", Some(LevelFilter::DEBUG)),
            ("DEBUG", Some(LevelFilter::TRACE)),
            ("notice", None),
            ("", None),
        ];
        for (name, want) in table {
            assert_eq!(sonic_level(name), want, "{name}");
        }
    }
}
