//! The syslog socket: RFC 3164 datagrams to /dev/log (or `syslog_socket`) that never block the
//! loop. The socket is non-blocking: a line it does not take (rsyslogd's queue is full, or
//! rsyslogd is restarting) waits in a bounded backlog, sent before newer lines on the next
//! send or loop turn (`pump`); a line that does not fit there is dropped and counted
//! (`/metrics`), and the next datagram after the backlog is one `N log lines dropped` line.
//! So a stalled rsyslogd costs lines, never a frozen daemon. A send that fails because the
//! receiver went away (rsyslogd restarted, the socket was replaced) reconnects to the path at
//! once, then at most every `RECONNECT_EVERY` while it stays unreachable. The
//! header — `<PRI>Mmm dd hh:mm:ss portsyncd[pid]: ` in local time, as glibc's `syslog(3)`
//! writes it — is formatted once per second; per line the cost is one lock and one send(2)
//! (plus a copy while the backlog is in use).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

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

/// Send what waits in the backlog, as far as the socket takes it (once per loop turn).
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
            }),
        });
        let _ = SOCKET.set(s.clone());
        Ok(s)
    }

    /// Send what waits in the backlog, as far as the socket takes it.
    pub fn pump(&self) {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        c.pump(&self.path);
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

    /// Send the backlog, oldest first, until the socket stops taking it; then the drop report
    /// if one is due and nothing waits any more.
    fn pump(&mut self, path: &Path) {
        while let Some(line) = self.backlog.pop_front() {
            if let Sent::Later = self.try_send(path, &line) {
                self.backlog.push_front(line);
                return;
            }
        }
    }

    /// The drop report if one is due, then `line`.
    fn deliver(&mut self, path: &Path, line: &[u8]) -> Sent {
        if self.unreported > 0 {
            let mut note = String::with_capacity(96);
            let _ = write_header(&mut note, WARNING);
            let _ = write!(
                note,
                ":- logsink: {} log lines dropped (syslog socket full or unreachable)",
                self.unreported
            );
            match self.try_send(path, note.as_bytes()) {
                Sent::Ok => self.unreported = 0,
                Sent::Later => return Sent::Later,
            }
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
mod tests {
    use super::*;

    #[test]
    fn stamps_follow_rfc3164() {
        let table = [
            ((0, 1, 0, 0, 0), "Jan  1 00:00:00 "),
            ((11, 31, 23, 59, 59), "Dec 31 23:59:59 "),
            ((1, 9, 7, 5, 3), "Feb  9 07:05:03 "),
        ];
        for (t, want) in table {
            let mut s = String::new();
            stamp(&mut s, t);
            assert_eq!(s, want, "{t:?}");
        }
        let mut h = String::new();
        write_header(&mut h, 5).unwrap();
        assert!(h.starts_with("<13>"), "{h}");
        assert!(
            h.ends_with(&format!(" portsyncd[{}]: ", std::process::id())),
            "{h}"
        );
        assert_eq!(
            h.len(),
            "<13>".len() + 16 + format!("portsyncd[{}]: ", std::process::id()).len()
        );
    }

    fn temp_path(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pst-syslog-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("log.sock")
    }

    fn recv_all(r: &UnixDatagram) -> Vec<String> {
        r.set_nonblocking(true).unwrap();
        let mut buf = vec![0u8; 4096];
        let mut out = Vec::new();
        while let Ok(n) = r.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    }

    /// Pump and receive until nothing more arrives (the queue is empty before each pump, so
    /// a pump that sends nothing means the backlog is empty).
    fn drain(s: &SyslogSocket, r: &UnixDatagram) -> Vec<String> {
        let mut out = recv_all(r);
        loop {
            s.pump();
            let got = recv_all(r);
            if got.is_empty() {
                return out;
            }
            out.extend(got);
        }
    }

    #[test]
    fn a_full_socket_backlogs_then_drops_lines_and_the_next_one_through_reports_them() {
        let path = temp_path("full");
        let r = UnixDatagram::bind(&path).unwrap();
        let s = SyslogSocket::open(&path).unwrap();
        let before = dropped();
        let t0 = Instant::now();
        // Far more than the socket queue (net.unix.max_dgram_qlen) and the backlog hold.
        for i in 0..5000 {
            s.send(format!("line {i}").as_bytes());
        }
        assert!(t0.elapsed() < Duration::from_secs(2), "sending blocked");
        let lost = dropped() - before;
        assert!(lost > 0 && lost < 5000 - BACKLOG_LINES as u64, "{lost}");
        let queued = drain(&s, &r);
        assert_eq!(queued.len() as u64, 5000 - lost);
        // Oldest first, nothing reordered: the lines that got through are the first ones.
        for (i, l) in queued.iter().enumerate() {
            assert_eq!(l, &format!("line {i}"));
        }
        s.send(b"after");
        let next = drain(&s, &r);
        assert_eq!(next.len(), 2, "{next:?}");
        assert!(next[0].starts_with("<12>"), "{next:?}");
        assert!(
            next[0].ends_with(&format!(
                ":- logsink: {lost} log lines dropped (syslog socket full or unreachable)"
            )),
            "{next:?}"
        );
        assert_eq!(next[1], "after");
    }

    #[test]
    fn a_replaced_socket_is_reconnected_and_lines_meanwhile_wait() {
        let path = temp_path("replaced");
        let r = UnixDatagram::bind(&path).unwrap();
        let s = SyslogSocket::open(&path).unwrap();
        s.send(b"one");
        assert_eq!(recv_all(&r), ["one"]);
        drop(r);
        std::fs::remove_file(&path).unwrap();
        let r = UnixDatagram::bind(&path).unwrap();
        s.send(b"two");
        assert_eq!(recv_all(&r), ["two"]);
        // Gone for a while: the line waits (no blocking, no error), then goes out first.
        drop(r);
        std::fs::remove_file(&path).unwrap();
        s.send(b"waited");
        let r = UnixDatagram::bind(&path).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        while got.is_empty() {
            assert!(Instant::now() < deadline, "never reconnected");
            s.pump();
            got = recv_all(&r);
            std::thread::sleep(Duration::from_millis(20));
        }
        s.send(b"three");
        got.extend(recv_all(&r));
        assert_eq!(got, ["waited", "three"]);
    }
}
