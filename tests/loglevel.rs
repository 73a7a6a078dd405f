//! Issue #12 items 4 and 7: live log levels. CONFIG_DB `LOGGER|portsyncd LOGLEVEL` changed at
//! run time (what `swssloglevel` writes) changes which lines the running daemon writes, and a
//! refused first subscription to its keyspace notifications is retried rather than leaving
//! live levels off for the life of the process.

mod common;

use common::sonic::World;
use common::*;

const LOGGER: &str = "LOGGER|portsyncd";

/// How many times the daemon has read `LOGGER|portsyncd LOGLEVEL` (MONITOR).
async fn level_reads(w: &mut World) -> usize {
    w.mon()
        .await
        .named("HGET")
        .iter()
        .filter(|c| c.args.get(1).map(String::as_str) == Some(LOGGER))
        .count()
}

/// Set LOGLEVEL and wait until the daemon has read it back: its loop applies the level right
/// after that read, before it handles any later netlink message.
async fn set_level(w: &mut World, level: &str) {
    let before = level_reads(w).await;
    hset(&mut w.config, LOGGER, &[("LOGLEVEL", level)]).await;
    let deadline = std::time::Instant::now() + DEADLINE;
    while level_reads(w).await <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon never read LOGLEVEL {level}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn issue12_live_loglevel_change_shows_and_hides_lines() {
    let mut w = World::new().await;
    w.seed_s0(2).await; // Ethernet0, Ethernet4
    let d = w.daemon();
    d.wait_started().await;
    w.pop().await;
    // NOTICE (the default): the per-message lines are written.
    w.ns.add_port("Ethernet0", 9100);
    d.wait_log("nlmsg type:16 key:Ethernet0 ").await;

    // DEBUG: a debug line appears.
    assert_eq!(d.count_log("log level set to trace"), 0, "{}", d.log_text());
    set_level(&mut w, "DEBUG").await;
    d.wait_log("log level set to trace").await;

    // ERROR: Ethernet4 appears and is written, but its NOTICE line is not.
    set_level(&mut w, "ERROR").await;
    w.ns.add_port("Ethernet4", 9100);
    w.wait_row("Ethernet4", sdb("down", "down", 9100)).await;

    // NOTICE again: the next change of Ethernet0 is logged. Lines are written in order, so
    // once this one is there, any line about Ethernet4 would be too.
    set_level(&mut w, "NOTICE").await;
    let seen = d.count_log("key:Ethernet0 ");
    w.ns.ip(&["link", "set", "Ethernet0", "mtu", "9000"]);
    wait_sync(
        || d.count_log("key:Ethernet0 ") > seen,
        "a NOTICE line after LOGLEVEL went back to NOTICE",
    );
    assert_eq!(
        d.count_log("key:Ethernet4 "),
        0,
        "a NOTICE line was written at LOGLEVEL ERROR:\n{}",
        d.log_text()
    );
}

#[tokio::test]
async fn issue12_refused_logger_subscription_is_retried() {
    let mut w = World::new().await;
    w.seed_s0(1).await;
    // The default user may publish the ProducerStateTable channel but not subscribe to the
    // LOGGER keyspace pattern: the daemon's first PSUBSCRIBE is refused (NOPERM).
    let acl = |rules: &[&str]| {
        let mut c = redis::cmd("ACL");
        c.arg("SETUSER").arg("default");
        for r in rules {
            c.arg(*r);
        }
        c
    };
    let _: String = q(
        &mut w.config,
        &acl(&["resetchannels", "&PORT_TABLE_CHANNEL@*"]),
    )
    .await;
    let d = w.daemon();
    d.wait_started().await;
    w.pop().await;
    d.wait_log("live log level changes off: subscribing to LOGGER|portsyncd failed")
        .await;
    // A level set while the subscription is down is picked up once it succeeds.
    hset(&mut w.config, LOGGER, &[("LOGLEVEL", "DEBUG")]).await;
    let _: String = q(&mut w.config, &acl(&["allchannels"])).await;
    d.wait_log("live log level changes on: subscribed to LOGGER|portsyncd after")
        .await;
    d.wait_log("log level set to trace").await;
    // And later changes arrive live.
    set_level(&mut w, "ERROR").await;
    w.ns.add_port("Ethernet0", 9100);
    w.wait_row("Ethernet0", sdb("down", "down", 9100)).await;
    set_level(&mut w, "NOTICE").await;
    w.ns.ip(&["link", "set", "Ethernet0", "mtu", "9000"]);
    d.wait_log("nlmsg type:16 key:Ethernet0 ").await;
    assert_eq!(
        d.count_log("key:Ethernet0 "),
        1,
        "the line written at ERROR, or none after NOTICE:\n{}",
        d.log_text()
    );
}
