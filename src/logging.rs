//! Logging: where lines go (journald, syslog, a terminal), SONiC's priority names mapped onto
//! tracing levels, and a handle to change the level live (CONFIG_DB `LOGGER|portsyncd`
//! LOGLEVEL, or SIGHUP).
//! SONiC has NOTICE between WARN and INFO, so the C++ NOTICE lines are logged at tracing INFO,
//! C++ INFO at DEBUG and C++ DEBUG at TRACE; the default threshold NOTICE is tracing INFO.

use crate::logsink::{Sink, SonicFormat, Style};
use tracing::level_filters::LevelFilter;
use tracing_subscriber::{fmt, prelude::*, reload, Registry};

pub use crate::logsink::{flush, set_buffering};

/// The SONiC priority names accepted in `LOGGER|portsyncd` LOGLEVEL, most severe first.
pub const SONIC_LEVELS: [&str; 8] = [
    "EMERG", "ALERT", "CRIT", "ERROR", "WARN", "NOTICE", "INFO", "DEBUG",
];

/// Where log lines go (`--log-target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogTarget {
    /// journald if systemd connected stderr to the journal, a terminal's stderr if there is
    /// one, syslog otherwise (supervisord, as the C++ daemon).
    Auto,
    /// stderr lines with `<N>` priority prefixes, no timestamps (journald adds its own).
    Journald,
    /// Datagrams to /dev/log (`syslog_socket`): RFC 3164 header with `portsyncd[pid]`, then
    /// the C++ `:- fn: msg` text; never blocks, reconnects after rsyslogd restarts.
    Syslog,
    /// Readable, colour-free lines with timestamps and SONiC level names.
    Stderr,
}

impl LogTarget {
    fn style(self) -> Style {
        use std::io::IsTerminal;
        match self {
            LogTarget::Journald => Style::Journald,
            LogTarget::Syslog => Style::Syslog,
            LogTarget::Stderr => Style::Terminal,
            LogTarget::Auto if std::env::var_os("JOURNAL_STREAM").is_some() => Style::Journald,
            LogTarget::Auto if std::io::stderr().is_terminal() => Style::Terminal,
            LogTarget::Auto => Style::Syslog,
        }
    }
}

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
    /// Install the global subscriber (once per process) at `level`, writing to `target`.
    pub fn init(level: LevelFilter, target: LogTarget, syslog: &std::path::Path) -> LogControl {
        let (filter, handle) = reload::Layer::new(level);
        let (sink, style) = Sink::open(target.style(), syslog);
        let installed = tracing_subscriber::registry()
            .with(filter)
            .with(
                fmt::layer()
                    .event_format(SonicFormat(style))
                    .with_writer(sink),
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
