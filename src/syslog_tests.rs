//! Tests of the syslog socket: RFC 3164 stamps, a full socket's backlog and drop report, held
//! lines sent at the pump, reconnecting to a replaced socket.
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
fn held_lines_go_out_at_the_pump_in_order_and_what_the_socket_refuses_waits() {
    let path = temp_path("held");
    let r = UnixDatagram::bind(&path).unwrap();
    let s = SyslogSocket::open(&path).unwrap();
    s.hold(b"first");
    s.hold(b"second");
    assert!(
        recv_all(&r).is_empty(),
        "held lines went out before the pump"
    );
    s.pump();
    assert_eq!(recv_all(&r), ["first", "second"]);
    // More than the receiver's queue (net.unix.max_dgram_qlen) and than one batch: the
    // rest waits in the backlog and goes out, in order, at later pumps; none is lost.
    let n = SEND_BATCH * 2 + 5;
    for i in 0..n {
        s.hold(format!("line {i}").as_bytes());
    }
    s.pump();
    let mut got = recv_all(&r);
    assert!(
        got.len() < n,
        "the receiver's queue took every line: nothing to test"
    );
    // The receiver caught up: the next held line first feeds it from the backlog, without
    // waiting for the pump (a slow rsyslogd is fed as fast as it reads).
    s.hold(b"tail");
    let fed = recv_all(&r);
    assert!(!fed.is_empty(), "the backlog waited for the pump");
    got.extend(fed);
    got.extend(drain(&s, &r));
    let mut want: Vec<String> = (0..n).map(|i| format!("line {i}")).collect();
    want.push("tail".into());
    assert_eq!(got, want);
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
