//! Log line formats and writers. Three styles share one formatter: a terminal line
//! (`2026-… NOTICE Publish Ethernet0(ok:up) to state db`), a journald line (`<5>Publish …`: the
//! priority prefix systemd parses on stderr, no duplicate timestamp), and a syslog datagram to
//! /dev/log (`<13>Dec  1 20:02:16 portsyncd[42]: :- onMsg: Publish …`: RFC 3164's header, then
//! the C++ daemon's text; see `syslog`). While the event loop runs, a turn's lines are
//! collected and written at its end: stderr lines in one write, syslog datagrams (one per line,
//! on a non-blocking socket) in one `sendmmsg`.

use crate::syslog::SyslogSocket;
use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
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
/// A byte scan for the last `::` (this runs for every line; `rsplit("::")` builds a substring
/// searcher each time: ≈ 700 instructions per event, scripts/callgrind).
fn function(target: &str) -> &str {
    let b = target.as_bytes();
    let mut i = b.len();
    while i >= 2 {
        if b[i - 1] == b':' && b[i - 2] == b':' {
            return &target[i..];
        }
        i -= 1;
    }
    target
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
                write_timestamp(&mut w)?;
                w.write_str(padded(name))?;
            }
            Style::Journald => write!(w, "<{pri}>")?,
            Style::Syslog => {
                crate::syslog::write_header(&mut w, pri)?;
                w.write_str(":- ")?;
                w.write_str(function(meta.target()))?;
                w.write_str(": ")?;
            }
        }
        let _ = ctx;
        SCRATCH.with(|scratch| {
            let mut line = scratch.borrow_mut();
            line.clear();
            event.record(&mut Fields(&mut line));
            write_escaped(&mut w, &line)
        })?;
        if self.0 != Style::Syslog {
            writeln!(w)?;
        }
        Ok(())
    }
}

thread_local! {
    /// One line's message text before escaping (reused: no allocation per line).
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
    /// The RFC 3339 timestamp up to whole seconds, and the second it was made for.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// The message, then any other fields as ` name=value`. Format strings are Display (their
/// Debug is their Display), so nothing is quoted.
struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() != "message" {
            let _ = write!(self.0, " {}=", field.name());
        }
        self.0.push_str(value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = if field.name() == "message" {
            write!(self.0, "{value:?}")
        } else {
            write!(self.0, " {}={value:?}", field.name())
        };
    }
}

/// True for what must not reach a terminal or split a journal entry: C0 controls (newline
/// included), DEL and the C1 range.
fn is_control(c: char) -> bool {
    c < ' ' || ('\u{7f}'..='\u{9f}').contains(&c)
}

/// Write `text` with control characters shown as `\xNN` / `\u{NN}` (netdev names come from
/// the kernel and may carry them). The common case, nothing to escape, is one scan and one
/// copy.
fn write_escaped(w: &mut Writer<'_>, text: &str) -> std::fmt::Result {
    // UTF-8 encodes U+0080..U+009F as 0xC2 0x80..0x9F; any other byte >= 0x80 is not a control.
    // No early exit, so the compiler can check 16 or 32 bytes at a time.
    let clean = !text
        .bytes()
        .fold(false, |hit, b| hit | (b < b' ') | (b == 0x7f) | (b == 0xc2));
    if clean {
        return w.write_str(text);
    }
    for c in text.chars() {
        match c {
            c if c < ' ' || c == '\u{7f}' => write!(w, "\\x{:02x}", c as u32)?,
            c if is_control(c) => write!(w, "\\u{{{:x}}}", c as u32)?,
            c => w.write_char(c)?,
        }
    }
    Ok(())
}

/// `2026-11-27T02:29:25.123456Z` (UTC): the part up to the second is formatted once per
/// second.
fn write_timestamp(w: &mut Writer<'_>) -> std::fmt::Result {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    SECOND.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.0 != now.as_secs() {
            cache.0 = now.as_secs();
            cache.1 = utc_seconds(now.as_secs());
        }
        w.write_str(&cache.1)?;
        // `.uuuuuuZ` without core::fmt's padding machinery (this runs for every line).
        let mut frac = *b".000000Z";
        let mut us = now.subsec_micros();
        for d in frac[1..7].iter_mut().rev() {
            *d = b'0' + (us % 10) as u8;
            us /= 10;
        }
        w.write_str(std::str::from_utf8(&frac).unwrap_or(".000000Z"))
    })
}

/// ` NAME   ` as the terminal style shows it: the level name left-aligned in six columns.
fn padded(name: &str) -> &'static str {
    match name {
        "ERROR" => " ERROR  ",
        "WARN" => " WARN   ",
        "NOTICE" => " NOTICE ",
        "INFO" => " INFO   ",
        _ => " DEBUG  ",
    }
}

/// `YYYY-MM-DDTHH:MM:SS` for seconds since the Unix epoch (proleptic Gregorian calendar).
fn utc_seconds(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a 400-year era's years.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3_600,
        rem / 60 % 60,
        rem % 60
    )
}

/// While the event loop runs, lines are collected and written once per loop turn: a storm of
/// link events then costs one write(2) per turn instead of two per event.
static BUFFERING: AtomicBool = AtomicBool::new(false);
const BUFFER_LIMIT: usize = 64 * 1024;

thread_local! {
    static LINES: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Write the lines collected in this loop turn (and what waits for the syslog socket).
pub fn flush() {
    crate::syslog::pump();
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
    Syslog(Arc<SyslogSocket>),
}

impl Sink {
    /// Open the sink for `style`; syslog falls back to terminal lines on stderr when the
    /// socket cannot be reached at start (once connected, it reconnects by itself).
    pub fn open(style: Style, syslog: &std::path::Path) -> (Sink, Style) {
        if style == Style::Syslog {
            if let Ok(s) = SyslogSocket::open(syslog) {
                return (Sink::Syslog(s), Style::Syslog);
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
            // One event, one datagram; a full syslog queue backlogs or drops (and counts)
            // the line rather than stalling the loop. While the loop runs, the turn's lines
            // go out together at its end (`flush`).
            Sink::Syslog(s) if BUFFERING.load(Ordering::Relaxed) => {
                s.hold(buf);
                Ok(buf.len())
            }
            Sink::Syslog(s) => {
                s.send(buf);
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
        assert_eq!(function("portsyncd::daemon::inputs"), "inputs");
        assert_eq!(function("a:b"), "a:b");
        assert_eq!(function("x::"), "");
        assert_eq!(function(""), "");
    }

    #[test]
    fn utc_timestamps_match_the_calendar() {
        let table = [
            (0, "1970-01-01T00:00:00"),
            (951_782_400, "2000-02-29T00:00:00"),
            (1_709_251_199, "2024-02-29T23:59:59"),
            (1_795_746_565, "2026-11-27T02:29:25"),
            (4_107_542_400, "2100-03-01T00:00:00"),
        ];
        for (secs, want) in table {
            assert_eq!(utc_seconds(secs), want, "{secs}");
        }
    }

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        let table = [
            (
                "Publish Ethernet0(ok:up) to state db",
                "Publish Ethernet0(ok:up) to state db",
            ),
            ("eth\u{1b}[31m", "eth\\x1b[31m"),
            ("a\nb\tc\u{7f}", "a\\x0ab\\x09c\\x7f"),
            ("c1\u{9b}x", "c1\\u{9b}x"),
            ("caf\u{e9} \u{a0}ok", "caf\u{e9} \u{a0}ok"),
        ];
        for (text, want) in table {
            let mut out = String::new();
            write_escaped(&mut Writer::new(&mut out), text).unwrap();
            assert_eq!(out, want, "{text:?}");
        }
    }
}
