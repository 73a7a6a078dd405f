//! Log line formats and writers. Three styles share one formatter: a terminal line
//! (`2026-… NOTICE Publish Ethernet0(ok:up) to state db`), a journald line (`<5>Publish …`: the
//! priority prefix systemd parses on stderr, no duplicate timestamp), and a syslog datagram to
//! /dev/log (`<13>portsyncd: :- onMsg: Publish …`, the C++ daemon's shape). While the event loop
//! runs, stderr lines are collected and written once per loop turn.

use std::cell::RefCell;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Terminal,
    Journald,
    Syslog,
}

/// syslog severity and SONiC name for a tracing level (NOTICE is tracing INFO).
pub fn sonic_priority(level: Level) -> (u8, &'static str) {
    match level {
        Level::ERROR => (3, "ERROR"),
        Level::WARN => (4, "WARN"),
        Level::INFO => (5, "NOTICE"),
        Level::DEBUG => (6, "INFO"),
        Level::TRACE => (7, "DEBUG"),
    }
}

/// The C++ function name shown in `:- fn:`: an explicit target, or the module's last segment.
fn function(target: &str) -> &str {
    target.rsplit("::").next().unwrap_or(target)
}

pub struct SonicFormat(pub Style);

impl<S, N> FormatEvent<S, N> for SonicFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let (pri, name) = sonic_priority(*meta.level());
        match self.0 {
            Style::Terminal => {
                SystemTime.format_time(&mut w)?;
                write!(w, " {name:<6} ")?;
            }
            Style::Journald => write!(w, "<{pri}>")?,
            // Facility LOG_USER (1 << 3), like glibc's default for a process that never
            // called openlog().
            Style::Syslog => write!(
                w,
                "<{}>portsyncd: :- {}: ",
                8 + pri,
                function(meta.target())
            )?,
        }
        ctx.field_format().format_fields(w.by_ref(), event)?;
        if self.0 != Style::Syslog {
            writeln!(w)?;
        }
        Ok(())
    }
}

/// While the event loop runs, lines are collected and written once per loop turn: a storm of
/// link events then costs one write(2) per turn instead of two per event.
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

/// Collect stderr lines until `flush` (true), or write each at once (false, flushing first).
pub fn set_buffering(on: bool) {
    BUFFERING.store(on, Ordering::Relaxed);
    if !on {
        flush();
    }
}

/// Where formatted lines go.
#[derive(Clone)]
pub enum Sink {
    Stderr,
    Syslog(Arc<UnixDatagram>),
}

impl Sink {
    /// Open the sink for `style`; syslog falls back to terminal lines on stderr when /dev/log
    /// cannot be reached.
    pub fn open(style: Style, syslog: &std::path::Path) -> (Sink, Style) {
        if style == Style::Syslog {
            if let Ok(s) = UnixDatagram::unbound() {
                if s.connect(syslog).is_ok() {
                    return (Sink::Syslog(Arc::new(s)), Style::Syslog);
                }
            }
            return (Sink::Stderr, Style::Terminal);
        }
        (Sink::Stderr, style)
    }
}

pub struct SinkWriter(Sink);

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &self.0 {
            Sink::Syslog(s) => {
                // One event, one datagram; a full syslog buffer drops the line rather than
                // stalling the loop.
                let _ = s.send(buf);
                Ok(buf.len())
            }
            Sink::Stderr if !BUFFERING.load(Ordering::Relaxed) => {
                std::io::stderr().lock().write(buf)
            }
            Sink::Stderr => {
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
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Sink {
    type Writer = SinkWriter;

    fn make_writer(&'a self) -> SinkWriter {
        SinkWriter(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_follow_sonic_names() {
        assert_eq!(sonic_priority(Level::INFO), (5, "NOTICE"));
        assert_eq!(sonic_priority(Level::WARN), (4, "WARN"));
        assert_eq!(sonic_priority(Level::TRACE), (7, "DEBUG"));
        assert_eq!(function("portsyncd::daemon"), "daemon");
        assert_eq!(function("onMsg"), "onMsg");
    }
}
