//! The syslog socket: RFC 3164 datagrams to /dev/log (or `syslog_socket`) that never block the
//! loop. The socket is non-blocking: a line it does not take (rsyslogd's queue is full, or
//! rsyslogd is restarting) waits in a bounded backlog, sent before newer lines on the next
//! send or loop turn (`pump`); a line that does not fit there is dropped and counted
//! (`/metrics`), and the next datagram after the backlog is one `N log lines dropped` line.
//! So a stalled rsyslogd costs lines, never a frozen daemon. A send that fails because the
//! receiver went away (rsyslogd restarted, the socket was replaced) reconnects to the path at
//! once, then at most every `RECONNECT_EVERY` while it stays unreachable. The
//! header — `<PRI>Mmm dd hh:mm:ss portsyncd[pid]: ` in local time, as glibc's `syslog(3)`
//! writes it — is formatted once per second. While the event loop runs, a turn's lines are
//! held (`hold`) and go out together at the end of the turn (`pump`), still one datagram per
//! line, in one `sendmmsg(2)` per `SEND_BATCH` lines: a storm's two lines per event cost one
//! copy each instead of a system call each.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::sys::{send_datagrams, SEND_BATCH};

/// Lines dropped because the socket was full or unreachable, since start.
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Successful reconnects after the receiver went away, since start.
static RECONNECTS: AtomicU64 = AtomicU64::new(0);

/// How often an unreachable socket is tried again (lines in between wait in the backlog).
const RECONNECT_EVERY: Duration = Duration::from_millis(100);
/// Lines kept while the socket does not take them (a burst faster than rsyslogd, a restart);
/// beyond this, lines are dropped and counted. About 150 KiB at the daemon's line lengths.
const BACKLOG_LINES: usize = 1024;

/// Facility LOG_USER (1 << 3), as glibc uses for a process that never called openlog().
const PRIS: [&str; 8] = ["<8>", "<9>", "<10>", "<11>", "<12>", "<13>", "<14>", "<15>"];
/// The drop report's severity: LOG_WARNING.
const WARNING: u8 = 4;
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Lines dropped since start (the `portsyncd_log_lines_dropped_total` metric).
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Reconnects since start (the `portsyncd_syslog_reconnects_total` metric).
pub fn reconnects() -> u64 {
    RECONNECTS.load(Ordering::Relaxed)
}

thread_local! {
    /// `Mmm dd hh:mm:ss portsyncd[pid]: ` and the second it was made for.
    static HEAD: std::cell::RefCell<(u64, String)> =
        const { std::cell::RefCell::new((u64::MAX, String::new())) };
}

/// `Mmm dd hh:mm:ss ` (RFC 3164: day padded with a space, 24-hour clock).
fn stamp(out: &mut String, (mon, day, h, m, s): (usize, u32, u32, u32, u32)) {
    let mon = MONTHS.get(mon).copied().unwrap_or("Jan");
    let _ = write!(out, "{mon} {day:>2} {h:02}:{m:02}:{s:02} ");
}

/// Write `<PRI>Mmm dd hh:mm:ss portsyncd[pid]: ` for syslog severity `severity` (0–7).
pub fn write_header(w: &mut impl std::fmt::Write, severity: u8) -> std::fmt::Result {
    w.write_str(PRIS[usize::from(severity.min(7))])?;
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    HEAD.with(|head| {
        let mut head = head.borrow_mut();
        if head.0 != secs {
            head.0 = secs;
            head.1.clear();
            let local = i64::try_from(secs)
                .ok()
                .and_then(crate::sys::local_time)
                .unwrap_or((0, 1, 0, 0, 0));
            stamp(&mut head.1, local);
            let _ = write!(head.1, "portsyncd[{}]: ", std::process::id());
        }
        w.write_str(&head.1)
    })
}

/// A datagram socket connected to the syslog path, reconnected when the receiver goes away.
pub struct SyslogSocket {
    path: PathBuf,
    conn: Mutex<Conn>,
}

/// The socket the subscriber writes to, for `pump` (one per process).
static SOCKET: OnceLock<Arc<SyslogSocket>> = OnceLock::new();

/// Send what waits in the backlog, as far as the socket takes it, then the lines held this
/// turn (once per loop turn).
pub fn pump() {
    if let Some(s) = SOCKET.get() {
        s.pump();
    }
}

struct Conn {
    sock: Option<UnixDatagram>,
    /// When an unreachable path may be tried again.
    retry_at: Option<Instant>,
    /// Lines the socket did not take yet (full, or the receiver away), oldest first.
    backlog: VecDeque<Vec<u8>>,
    /// Drops not yet reported in a line.
    unreported: u64,
    /// Lines held this loop turn, back to back, and where each ends (at most `SEND_BATCH`).
    held: Vec<u8>,
    held_ends: Vec<usize>,
}

/// What became of one datagram.
enum Sent {
    Ok,
    /// Not now: the queue is full or the receiver is away (and reconnecting failed).
    Later,
}

fn connect(path: &Path) -> io::Result<UnixDatagram> {
    let s = UnixDatagram::unbound()?;
    s.connect(path)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

impl SyslogSocket {
    /// Connect to `path`; an error means syslog is not there at all (the caller falls back).
    /// The first socket opened is the one `pump` drains.
    pub fn open(path: &Path) -> io::Result<Arc<SyslogSocket>> {
        let sock = connect(path)?;
        let s = Arc::new(SyslogSocket {
            path: path.to_owned(),
            conn: Mutex::new(Conn {
                sock: Some(sock),
                retry_at: None,
                backlog: VecDeque::new(),
                unreported: 0,
                held: Vec::new(),
                held_ends: Vec::new(),
            }),
        });
        let _ = SOCKET.set(s.clone());
        Ok(s)
    }

    /// Send what waits in the backlog, as far as the socket takes it, then the held lines.
    pub fn pump(&self) {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        c.pump(&self.path);
        c.release(&self.path);
    }

    /// Hold one formatted line until the next `pump` (the end of the loop turn); a full batch
    /// of `SEND_BATCH` lines goes out at once. While older lines wait in the backlog, each
    /// line first tries to send them (as `send` does), so a receiver that is behind is fed as
    /// fast as it reads rather than once per batch, and the backlog does not overflow sooner
    /// than it would without holding. Never blocks.
    pub fn hold(&self, line: &[u8]) {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if !c.backlog.is_empty() {
            c.pump(&self.path);
        }
        c.held.extend_from_slice(line);
        let end = c.held.len();
        c.held_ends.push(end);
        if c.held_ends.len() >= SEND_BATCH {
            c.pump(&self.path);
            c.release(&self.path);
        }
    }

    /// Send one formatted line; never blocks. A line the socket cannot take waits in the
    /// backlog (behind older ones); one that does not fit there is dropped and counted.
    pub fn send(&self, line: &[u8]) {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        c.pump(&self.path);
        if c.backlog.is_empty() {
            if let Sent::Ok = c.deliver(&self.path, line) {
                return;
            }
        }
        c.queue(line);
    }
}

impl Conn {
    fn drop_line(&mut self) {
        self.unreported += 1;
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }

    fn queue(&mut self, line: &[u8]) {
        if self.backlog.len() < BACKLOG_LINES {
            self.backlog.push_back(line.to_vec());
        } else {
            self.drop_line();
        }
    }

    /// Send the backlog, oldest first, `SEND_BATCH` lines per `sendmmsg`, until the socket
    /// stops taking it.
    fn pump(&mut self, path: &Path) {
        while !self.backlog.is_empty() {
            let backlog = std::mem::take(&mut self.backlog);
            let mut lines: [&[u8]; SEND_BATCH] = [&[]; SEND_BATCH];
            let mut n = 0;
            for (slot, line) in lines.iter_mut().zip(&backlog) {
                *slot = line;
                n += 1;
            }
            let sent = self.send_many(path, &lines[..n]);
            self.backlog = backlog;
            self.backlog.drain(..sent);
            if sent < n {
                return;
            }
        }
    }

    /// Send the held lines behind the backlog: with one `sendmmsg` when nothing waits before
    /// them; what the socket does not take joins the backlog (or is dropped and counted).
    fn release(&mut self, path: &Path) {
        if self.held_ends.is_empty() {
            return;
        }
        let held = std::mem::take(&mut self.held);
        let mut ends = std::mem::take(&mut self.held_ends);
        let mut lines: [&[u8]; SEND_BATCH] = [&[]; SEND_BATCH];
        let mut start = 0;
        for (l, &end) in lines.iter_mut().zip(&ends) {
            *l = &held[start..end];
            start = end;
        }
        let lines = &lines[..ends.len()];
        let mut sent = 0;
        if self.backlog.is_empty() && self.report_drops(path) {
            sent = self.send_many(path, lines);
        }
        for line in &lines[sent..] {
            self.queue(line);
        }
        let mut held = held;
        held.clear();
        ends.clear();
        self.held = held;
        self.held_ends = ends;
    }

    /// The drop report if one is due; false if the socket did not take it.
    fn report_drops(&mut self, path: &Path) -> bool {
        if self.unreported == 0 {
            return true;
        }
        let mut note = String::with_capacity(96);
        let _ = write_header(&mut note, WARNING);
        let _ = write!(
            note,
            ":- logsink: {} log lines dropped (syslog socket full or unreachable)",
            self.unreported
        );
        match self.try_send(path, note.as_bytes()) {
            Sent::Ok => {
                self.unreported = 0;
                true
            }
            Sent::Later => false,
        }
    }

    /// Send `lines` in order, as many as the socket takes (one `sendmmsg` per
    /// `SEND_BATCH`); a receiver that went away gets one immediate reconnect. Returns how
    /// many were sent.
    fn send_many(&mut self, path: &Path, lines: &[&[u8]]) -> usize {
        let mut sent = 0;
        let mut reconnected = false;
        while sent < lines.len() {
            if !self.ensure_connected(path) {
                break;
            }
            let Some(s) = &self.sock else {
                break;
            };
            match send_datagrams(std::os::fd::AsFd::as_fd(s), &lines[sent..]) {
                Ok(0) => break,
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // ECONNREFUSED (the receiver closed), ENOTCONN, ENOENT…: the socket is dead.
                Err(_) if reconnected => {
                    self.sock = None;
                    break;
                }
                Err(_) => {
                    self.sock = None;
                    self.retry_at = None;
                    reconnected = true;
                }
            }
        }
        sent
    }

    /// The drop report if one is due, then `line`.
    fn deliver(&mut self, path: &Path, line: &[u8]) -> Sent {
        if !self.report_drops(path) {
            return Sent::Later;
        }
        self.try_send(path, line)
    }

    /// True when there is a socket; otherwise try to connect if the retry time has come.
    fn ensure_connected(&mut self, path: &Path) -> bool {
        if self.sock.is_some() {
            return true;
        }
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return false;
        }
        match connect(path) {
            Ok(s) => {
                self.sock = Some(s);
                self.retry_at = None;
                RECONNECTS.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(_) => {
                self.retry_at = Some(Instant::now() + RECONNECT_EVERY);
                false
            }
        }
    }

    /// Send `buf`. A full queue fails at once; a receiver that went away gets one immediate
    /// reconnect and resend.
    fn try_send(&mut self, path: &Path, buf: &[u8]) -> Sent {
        for _ in 0..2 {
            if !self.ensure_connected(path) {
                return Sent::Later;
            }
            let Some(s) = &self.sock else {
                return Sent::Later;
            };
            match s.send(buf) {
                Ok(_) => return Sent::Ok,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Sent::Later,
                // ECONNREFUSED (the receiver closed), ENOTCONN, ENOENT…: the socket is dead.
                Err(_) => {
                    self.sock = None;
                    self.retry_at = None;
                }
            }
        }
        Sent::Later
    }
}

#[cfg(test)]
#[path = "syslog_tests.rs"]
mod tests;
