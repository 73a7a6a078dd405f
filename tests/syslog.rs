//! Issue #12 item 1: the syslog target against a real rsyslogd (tests/common/rsyslog.rs).
//! Lines resume after rsyslogd restarts, a stopped rsyslogd never stalls the loop (a 256-port
//! storm converges while it is stopped, and the dropped lines are reported once it runs
//! again), and each datagram has the RFC 3164 header rsyslog parses, then the C++ text.

mod common;

use common::rsyslog::Rsyslog;
use common::sonic::{wait_converged, World};
use common::*;

/// A daemon logging to `rs` (and serving /metrics, for the drop counter).
fn start(w: &World, rs: &Rsyslog, dir: &TempDir) -> Daemon {
    let cfg = dir.0.join("portsyncd.toml");
    std::fs::write(
        &cfg,
        format!(
            "syslog_socket = \"{}\"\nmetrics_listen = \"127.0.0.1:9101\"\n",
            rs.socket.display()
        ),
    )
    .unwrap();
    Daemon::start_args(
        &w.ns,
        &w.redis,
        &["--config", cfg.to_str().unwrap(), "--log-target", "syslog"],
        &[],
    )
}

/// `N` from the latest `N log lines dropped` line, if any.
fn reported_drops(rs: &Rsyslog) -> Vec<u64> {
    rs.lines()
        .iter()
        .filter_map(|l| {
            let (_, tail) = l.msg.split_once(":- logsink: ")?;
            tail.split(' ').next()?.parse().ok()
        })
        .collect()
}

/// Toggle Ethernet0's admin state and wait until STATE_DB shows it (so the daemon has logged).
async fn toggle(w: &mut World, up: bool) {
    let s = if up { "up" } else { "down" };
    w.ns.ip(&["link", "set", "Ethernet0", s]);
    w.wait_row("Ethernet0", sdb("down", s, 9100)).await;
}

#[tokio::test]
async fn issue12_lines_resume_after_rsyslogd_restarts() {
    let mut w = World::new().await;
    w.seed_s0(1).await;
    let mut rs = Rsyslog::start();
    let dir = TempDir::new("syslog");
    let d = start(&w, &rs, &dir);
    d.wait_started().await;
    w.pop().await;
    w.ns.add_port("Ethernet0", 9100);
    rs.wait_msg("Publish Ethernet0(ok:down) to state db").await;

    // A quick restart between two lines: the next line finds the old socket gone and
    // reconnects at once; nothing is lost.
    rs.restart();
    toggle(&mut w, true).await;
    rs.wait_msg("Publish Ethernet0(ok:down) to state db").await;
    assert!(reported_drops(&rs).is_empty(), "{:?}", rs.lines());

    // Down for a while: lines meanwhile wait in the daemon's backlog and go out, in order,
    // once it reconnects (at its next line or loop turn after the start); none is lost.
    rs.stop();
    let before = rs.count("Publish Ethernet0");
    let held_events = 5;
    for i in 0..held_events {
        toggle(&mut w, i % 2 == 1).await;
    }
    rs.restart();
    let later_events = 3;
    for i in 0..later_events {
        toggle(&mut w, i % 2 == 0).await;
    }
    let want = before + held_events + later_events;
    wait(
        || {
            let n = rs.count("Publish Ethernet0");
            async move { n >= want }
        },
        &format!("{want} Publish lines after the restart"),
    )
    .await;
    let lines = rs.lines();
    assert!(reported_drops(&rs).is_empty(), "{lines:?}");
    // In order: the nlmsg lines' admin values alternate as the toggles did.
    let mut admins: Vec<&str> = lines
        .iter()
        .filter_map(|l| {
            l.msg
                .split_once("key:Ethernet0 admin:")
                .map(|(_, t)| &t[..1])
        })
        .collect();
    admins.dedup(); // a toggle can bring two NEWLINKs with the same admin state
    let tail = &admins[admins.len() - (held_events + later_events)..];
    assert_eq!(tail, ["0", "1", "0", "1", "0", "1", "0", "1"], "{lines:?}");
    assert_eq!(w.ns.metric("portsyncd_log_lines_dropped_total"), Some(0));
    assert_eq!(w.ns.metric("portsyncd_syslog_reconnects_total"), Some(2));
    eprintln!(
        "RSYSLOG RESTART: 0 lines lost; {} Publish lines held while rsyslogd was down ({held_events} events) and delivered after the restart, then {later_events} events' lines",
        rs.count("Publish Ethernet0") - before - later_events
    );
    drop(d);
}

#[tokio::test]
async fn issue12_a_stopped_rsyslogd_does_not_stall_a_storm() {
    const PORTS: u32 = 256;
    let mut w = World::new().await;
    w.seed_ports(0..PORTS).await;
    let rs = Rsyslog::start();
    let dir = TempDir::new("syslog");
    let d = start(&w, &rs, &dir);
    d.wait_started().await;
    w.wait_pending("PortConfigDone").await;
    w.pop().await;
    w.ns.add_ifb_ports(PORTS);
    w.wait_pending("PortInitDone").await;
    w.pop().await;
    wait_converged(&mut w, "initial").await;
    rs.wait_msg("PortInitDone").await;

    rs.pause();
    let mut lines = Vec::new();
    for r in 0..4 {
        for i in 0..PORTS {
            let s = if r % 2 == 0 { "up" } else { "down" };
            lines.push(format!("link set Ethernet{} {s}", i * 4));
        }
    }
    lines.push("link set Ethernet0 up".into());
    w.ns.batch(&lines);
    let took = wait_converged(&mut w, "storm with rsyslogd stopped").await;
    let dropped =
        w.ns.metric("portsyncd_log_lines_dropped_total")
            .expect("/metrics answers while rsyslogd is stopped");
    assert!(dropped > 0, "a stopped rsyslogd dropped nothing?");

    rs.resume();
    // Flip Ethernet0 until its Publish line lands after the drop report.
    let deadline = std::time::Instant::now() + DEADLINE;
    let mut up = true;
    loop {
        let got = rs.lines();
        // Until every drop counted on /metrics was reported, and a line came after the last
        // report (rsyslogd's queue is short: right after SIGCONT it can still overflow).
        let note = got
            .iter()
            .rposition(|l| l.msg.contains("log lines dropped"));
        let reported: u64 = reported_drops(&rs).iter().sum();
        let total = w.ns.metric("portsyncd_log_lines_dropped_total");
        if total == Some(reported)
            && note.is_some_and(|n| {
                got[n..]
                    .iter()
                    .any(|l| l.msg.contains(":- onMsg: Publish Ethernet0("))
            })
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no drop report and line after SIGCONT: {:?}",
            &got[got.len().saturating_sub(5)..]
        );
        up = !up;
        w.ns.ip(&["link", "set", "Ethernet0", if up { "up" } else { "down" }]);
        wait_converged(&mut w, "a flip after SIGCONT").await;
    }
    let total = w.ns.metric("portsyncd_log_lines_dropped_total").unwrap();
    let reports = reported_drops(&rs);
    eprintln!(
        "RSYSLOG SIGSTOP: {} link changes converged in {took:?} with rsyslogd stopped; {total} lines dropped, reported after SIGCONT as {reports:?}",
        lines.len()
    );
}

#[tokio::test]
async fn issue12_syslog_lines_have_the_rfc3164_header_and_the_cpp_text() {
    let mut w = World::new().await;
    w.seed_s0(1).await;
    let rs = Rsyslog::start();
    let dir = TempDir::new("syslog");
    let d = start(&w, &rs, &dir);
    d.wait_started().await;
    w.pop().await;
    w.ns.add_port("Ethernet0", 9100);
    let l = rs
        .wait_msg(":- onMsg: nlmsg type:16 key:Ethernet0 admin:0")
        .await;
    let pid = d.pid().to_string();
    // What rsyslog parsed out of the header: user.notice, our tag and pid, our timestamp.
    assert_eq!(l.pri, "13", "{l:?}");
    assert_eq!(l.severity, "notice", "{l:?}");
    assert_eq!(l.tag, format!("portsyncd[{pid}]:"), "{l:?}");
    assert_eq!(l.procid, pid, "{l:?}");
    // The datagram as sent: `<13>Mmm dd hh:mm:ss portsyncd[pid]: :- onMsg: nlmsg …`.
    let (stamp, rest) = l.raw["<13>".len()..].split_at(15);
    assert!(l.raw.starts_with("<13>"), "{l:?}");
    assert_eq!(
        l.reported, stamp,
        "rsyslog took the header's timestamp: {l:?}"
    );
    let today = std::process::Command::new("date")
        .arg("+%b %e")
        .output()
        .unwrap();
    let today = String::from_utf8_lossy(&today.stdout)
        .trim_end()
        .to_string();
    assert!(
        stamp.starts_with(&today),
        "{stamp:?} is not today ({today:?})"
    );
    let b = stamp.as_bytes();
    assert!(
        b[6] == b' ' && b[9] == b':' && b[12] == b':' && stamp[7..9].parse::<u8>().is_ok(),
        "{stamp:?} is not `Mmm dd hh:mm:ss`"
    );
    assert!(
        rest.starts_with(&format!(
            " portsyncd[{pid}]: :- onMsg: nlmsg type:16 key:Ethernet0 admin:0 oper:0 addr:"
        )),
        "{l:?}"
    );
    let p = rs.wait_msg("Publish Ethernet0(ok:down) to state db").await;
    assert_eq!(
        p.msg.trim_start(),
        ":- onMsg: Publish Ethernet0(ok:down) to state db"
    );
    assert!(
        rs.lines().iter().any(|l| l.msg.trim_start()
            == ":- handlePortConfigFromConfigDB: Getting port configuration from ConfigDB..."),
        "{:?}",
        rs.lines()
    );
}
