//! Issue #11 item 5 and issue #12 item 5: one key that Redis answers with an error reply
//! affects only that key — in the loop's flushes (STATE_DB rows) and at start-up (CONFIG_DB
//! reads, APPL_DB ProducerStateTable sets) — and `PortInitDone` follows spec §2.1 even when a
//! NEWLINK and DELLINK of an awaited port fold into one loop turn. Real namespace, real
//! redis-server, the real binary.

mod common;

use common::sonic::{s0_fields, World, PORTS};
use common::*;

/// A settings file that pins the metrics endpoint (the tests read `/metrics`).
fn metrics_config(dir: &TempDir) -> String {
    let p = dir.0.join("portsyncd.toml");
    std::fs::write(&p, "metrics_listen = \"127.0.0.1:9101\"\n").unwrap();
    p.display().to_string()
}

/// `portsyncd_key_errors_total{reason="<reason>"}` from a scrape (0 when absent).
fn key_errors(ns: &Netns, reason: &str) -> u64 {
    let Some(text) = ns.try_metrics() else {
        return 0;
    };
    let series = format!("portsyncd_key_errors_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

async fn set_string(con: &mut redis::aio::ConnectionManager, key: &str) {
    let _: () = q(con, redis::cmd("SET").arg(key).arg("not a hash")).await;
}

async fn del(con: &mut redis::aio::ConnectionManager, key: &str) {
    let _: i64 = q(con, redis::cmd("DEL").arg(key)).await;
}

async fn key_type(con: &mut redis::aio::ConnectionManager, key: &str) -> String {
    q(con, redis::cmd("TYPE").arg(key)).await
}

#[tokio::test]
async fn issue11_bad_key_isolated() {
    let mut w = World::new().await;
    w.seed_s0(4).await;
    // STATE_DB PORT_TABLE|Ethernet4 is a string: every HSET of it answers WRONGTYPE.
    set_string(&mut w.state, "PORT_TABLE|Ethernet4").await;
    let dir = TempDir::new("cfg");
    let cfg = metrics_config(&dir);
    let mut d = Daemon::start_args(&w.ns, &w.redis, &["--config", &cfg], &[]);
    d.wait_started().await;
    w.wait_pending("PortConfigDone").await;
    w.pop().await;
    for p in PORTS {
        w.ns.add_port(p, 9100);
    }
    // The other ports are written, and PortInitDone is sent: Ethernet4's gate passed.
    for p in ["Ethernet0", "Ethernet8", "Ethernet12"] {
        w.wait_row(p, sdb("down", "down", 9100)).await;
    }
    w.wait_pending("PortInitDone").await;
    d.wait_log("PortInitDone").await;
    // Later flips of the other ports land while Ethernet4 keeps failing.
    w.ns.ip(&["link", "set", "Ethernet0", "up"]);
    w.wait_row("Ethernet0", sdb("down", "up", 9100)).await;
    w.ns.ip(&["link", "set", "Ethernet8", "up"]);
    w.wait_row("Ethernet8", sdb("down", "up", 9100)).await;
    // Ethernet4 is retried on its own: several error replies, counted by reason …
    wait(
        || async { key_errors(&w.ns, "WRONGTYPE") >= 4 },
        "four WRONGTYPE replies counted in /metrics",
    )
    .await;
    assert_eq!(
        key_type(&mut w.state, "PORT_TABLE|Ethernet4").await,
        "string"
    );
    // … but logged once, with the key and the reply.
    let line = "STATE_DB PORT_TABLE|Ethernet4: Redis answered WRONGTYPE";
    assert_eq!(
        d.count_log(line),
        1,
        "one line for the failing key, not one per retry\n{}",
        d.log_text()
    );
    // A whole-flush failure would have been logged as one.
    assert_eq!(d.count_log("redis write failed"), 0, "{}", d.log_text());
    // Healed: the row appears without any new kernel event.
    let before = d.count_log("nlmsg type:");
    let healed = std::time::Instant::now();
    del(&mut w.state, "PORT_TABLE|Ethernet4").await;
    w.wait_row("Ethernet4", sdb("down", "down", 9100)).await;
    println!("HEALED key written {:?} after the fix", healed.elapsed());
    d.wait_log("STATE_DB PORT_TABLE|Ethernet4: written after")
        .await;
    assert_eq!(
        d.count_log("nlmsg type:"),
        before,
        "no kernel event was needed"
    );
    w.mon().await.assert_state_hsets_are_cpp_shaped();
    d.assert_running();
}

#[tokio::test]
async fn issue11_bad_startup_keys_isolated() {
    let mut w = World::new().await;
    w.seed_s0(4).await;
    // CONFIG_DB PORT|Ethernet8 is a string (HGETALL answers WRONGTYPE), and APPL_DB
    // _PORT_TABLE:Ethernet4 is a string (its ProducerStateTable set answers WRONGTYPE).
    del(&mut w.config, "PORT|Ethernet8").await;
    set_string(&mut w.config, "PORT|Ethernet8").await;
    set_string(&mut w.appl, "_PORT_TABLE:Ethernet4").await;
    let dir = TempDir::new("cfg");
    let cfg = metrics_config(&dir);
    let mut d = Daemon::start_args(&w.ns, &w.redis, &["--config", &cfg], &[]);
    d.wait_started().await;
    w.wait_pending("PortConfigDone").await;
    // The unreadable key is skipped and not counted; the failing set is a real port, counted.
    assert_eq!(
        hmap(&mut w.appl, "_PORT_TABLE:PortConfigDone").await,
        [("count".into(), "3".into())].into()
    );
    for (i, p) in [(0, "Ethernet0"), (3, "Ethernet12")] {
        assert_eq!(
            hgetall(&mut w.appl, &format!("_PORT_TABLE:{p}")).await,
            sonic::pairs(&s0_fields(i))
        );
    }
    assert!(!exists(&mut w.appl, "_PORT_TABLE:Ethernet8").await);
    d.wait_log("CONFIG_DB PORT|Ethernet8: WRONGTYPE").await;
    d.wait_log("APPL_DB _PORT_TABLE:Ethernet4: Redis answered WRONGTYPE")
        .await;
    wait(
        || async { key_errors(&w.ns, "WRONGTYPE") >= 3 },
        "the CONFIG_DB key and two failed sets counted in /metrics",
    )
    .await;
    // The set is retried from the loop until it lands.
    del(&mut w.appl, "_PORT_TABLE:Ethernet4").await;
    let c = w.appl.clone();
    wait(
        || {
            let mut c = c.clone();
            async move {
                hgetall(&mut c, "_PORT_TABLE:Ethernet4").await == sonic::pairs(&s0_fields(1))
            }
        },
        "_PORT_TABLE:Ethernet4 written by the retry",
    )
    .await;
    d.wait_log("APPL_DB _PORT_TABLE:Ethernet4: written after")
        .await;
    // The run goes on: the readable ports sync, PortInitDone does not wait for Ethernet8.
    w.pop().await;
    for p in ["Ethernet0", "Ethernet4", "Ethernet12"] {
        w.ns.add_port(p, 9100);
    }
    for p in ["Ethernet0", "Ethernet4", "Ethernet12"] {
        w.wait_row(p, sdb("down", "down", 9100)).await;
    }
    w.wait_pending("PortInitDone").await;
    d.assert_running();
}

#[tokio::test]
async fn issue12_folded_newlink_dellink_clears_awaited_port() {
    let mut w = World::new().await;
    w.seed_s0(3).await; // Ethernet0, 4, 8
    let d = w.daemon();
    d.wait_started().await;
    w.wait_pending("PortConfigDone").await;
    w.pop().await;
    w.ns.add_port("Ethernet0", 9100);
    w.ns.add_port("Ethernet4", 9100);
    w.wait_row("Ethernet0", sdb("down", "down", 9100)).await;
    w.wait_row("Ethernet4", sdb("down", "down", 9100)).await;
    assert!(
        !exists(&mut w.appl, "_PORT_TABLE:PortInitDone").await,
        "Ethernet8 is still awaited"
    );
    // Ethernet8 appears and goes while the daemon is stopped: both messages are queued and
    // read in one turn, where they fold into a delete.
    d.signal("STOP");
    w.ns.ip(&["link", "add", "Ethernet8", "type", "ifb"]);
    w.ns.ip(&["link", "del", "Ethernet8"]);
    d.signal("CONT");
    // C++ clears Ethernet8 on its NEWLINK (its APPL_DB entry exists): PortInitDone goes out.
    w.wait_pending("PortInitDone").await;
    d.wait_log("Delete Ethernet8(ok) from state db").await;
    assert_eq!(
        d.count_log("key:Ethernet8"),
        2,
        "the NEWLINK and DELLINK were both read\n{}",
        d.log_text()
    );
    assert_eq!(
        d.count_log("Publish Ethernet8"),
        0,
        "the messages were not folded into one turn, so this test did not reach its path\n{}",
        d.log_text()
    );
    // The superseded set was never written.
    assert!(!exists(&mut w.state, "PORT_TABLE|Ethernet8").await);
    let hsets = w.mon().await.named("HSET");
    assert!(
        !hsets.iter().any(|c| c.args[1] == "PORT_TABLE|Ethernet8"),
        "{hsets:?}"
    );
}
