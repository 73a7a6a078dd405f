//! Issue #13: the live view of CONFIG_DB `PORT|*`. With `track_port_count`, a port breakout
//! (as the CLI and portmgrd do it) leaves APPL_DB `PortConfigDone count` equal to the CONFIG_DB
//! port count and to `PORT_TABLE:*` keys − 2, so the next warm reboot's `bake()` accepts it
//! (sonic-swss#2989); without it the count is left alone (the C++ contract). Alerts compare
//! with today's CONFIG_DB. Real netns, real redis-server, the real binary.

mod common;

use common::sonic::*;
use common::*;
use std::time::{Duration, Instant};

fn settings(dir: &TempDir, extra: &str) -> String {
    let f = dir.0.join("portsyncd.toml");
    std::fs::write(&f, format!("heartbeat_ms = 200\n{extra}")).unwrap();
    f.to_str().unwrap().to_owned()
}

/// 4 configured ports with netdevs, daemon running, the consumer has popped the
/// configuration and `PortInitDone`.
async fn running(args: &[&str]) -> (World, Daemon) {
    let mut w = World::new().await;
    w.seed_s0(4).await;
    let d = Daemon::start_args(&w.ns, &w.redis, args, &[]);
    d.wait_started().await;
    w.pop().await;
    for i in 1..4 {
        w.ns.ip(&["link", "add", &format!("Ethernet{}", i * 4), "type", "ifb"]);
    }
    w.ns.add_port("Ethernet0", 9100);
    w.wait_pending("PortInitDone").await;
    w.pop().await;
    (w, d)
}

/// Dynamic port breakout of Ethernet0 into Ethernet0..3, as `config interface breakout` writes
/// CONFIG_DB (a burst of DEL and HSETs) and as portmgrd/orchagent leave APPL_DB `PORT_TABLE`.
/// `between` runs in the middle of the burst.
async fn breakout(w: &mut World, between: impl AsyncFnOnce(&mut World)) {
    let _: i64 = q(&mut w.config, redis::cmd("DEL").arg("PORT|Ethernet0")).await;
    let _: i64 = q(&mut w.appl, redis::cmd("DEL").arg("PORT_TABLE:Ethernet0")).await;
    for i in [0, 1] {
        add_lane_port(w, i).await;
    }
    between(w).await;
    for i in [2, 3] {
        add_lane_port(w, i).await;
    }
}

/// One 25G port of the breakout (lane i), in CONFIG_DB and in APPL_DB `PORT_TABLE`.
async fn add_lane_port(w: &mut World, i: u32) {
    let fvs = [
        ("lanes", i.to_string()),
        ("alias", format!("etp1{i}")),
        ("speed", "25000".into()),
        ("mtu", "9100".into()),
        ("admin_status", "up".into()),
    ];
    let f: Vec<(&str, &str)> = fvs.iter().map(|(a, b)| (*a, b.as_str())).collect();
    hset(&mut w.config, &format!("PORT|Ethernet{i}"), &f).await;
    hset(&mut w.appl, &format!("PORT_TABLE:Ethernet{i}"), &f).await;
}

async fn consumed_count(w: &mut World) -> Option<String> {
    hmap(&mut w.appl, "PORT_TABLE:PortConfigDone")
        .await
        .get("count")
        .cloned()
}

/// bake()'s check (spec §1.4): count == PORT_TABLE:* keys − 2.
async fn assert_bake_accepts(w: &mut World, want: usize) {
    let table = keys(&mut w.appl, "PORT_TABLE:*").await;
    let config = keys(&mut w.config, "PORT|*").await;
    assert_eq!(config.len(), want, "{config:?}");
    assert_eq!(consumed_count(w).await, Some(want.to_string()));
    assert_eq!(table.len() - 2, want, "{table:?}");
}

/// Issue #13 / sonic-swss#2989: with `--track-port-count` the count follows the breakout once
/// the burst has settled, and a warm restart after that writes nothing to `_PORT_TABLE`.
#[tokio::test]
async fn issue13_breakout_keeps_port_config_done_count_true() {
    let dir = TempDir::new("cfg");
    let cfg = settings(&dir, "");
    let (mut w, mut d) = running(&["--config", &cfg, "--track-port-count"]).await;
    assert_eq!(consumed_count(&mut w).await.as_deref(), Some("4"));
    breakout(&mut w, async |_| {}).await;
    w.wait_pending("PortConfigDone").await;
    d.wait_log("PortConfigDone count=7 written again").await;
    w.pop().await;
    assert_bake_accepts(&mut w, 7).await;

    // Warm restart of the daemon: the C++ warm path publishes nothing.
    hset(
        &mut w.state,
        "WARM_RESTART_ENABLE_TABLE|system",
        &[("enable", "true")],
    )
    .await;
    d.signal("TERM");
    assert!(d.child.wait().unwrap().success());
    let d2 = Daemon::start_args(
        &w.ns,
        &w.redis,
        &["--config", &cfg, "--track-port-count"],
        &[],
    );
    d2.wait_log("start mode warm").await;
    d2.wait_started().await;
    // The loop checks the count as it starts; its first heartbeat row comes after that.
    let pid = d2.pid().to_string();
    let st = w.state.clone();
    wait(
        || {
            let mut st = st.clone();
            let pid = pid.clone();
            async move {
                hmap(&mut st, "PORTSYNCD_HEALTH_TABLE|portsyncd")
                    .await
                    .get("pid")
                    == Some(&pid)
            }
        },
        "the restarted daemon's heartbeat",
    )
    .await;
    assert!(
        smembers(&mut w.appl, "PORT_TABLE_KEY_SET")
            .await
            .iter()
            .all(|k| k == "PortInitDone"),
        "nothing but the warm PortInitDone is published"
    );
    assert_eq!(
        keys(&mut w.appl, "_PORT_TABLE:PortConfigDone").await,
        Vec::<String>::new()
    );
    assert_bake_accepts(&mut w, 7).await;
}

/// The C++ contract: without the option the same breakout leaves `PortConfigDone` alone.
#[tokio::test]
async fn issue13_without_tracking_the_count_is_left_alone() {
    let dir = TempDir::new("cfg");
    let cfg = settings(&dir, "");
    let (mut w, d) = running(&["--config", &cfg]).await;
    breakout(&mut w, async |_| {}).await;
    d.wait_log("CONFIG_DB PORT|Ethernet3 added").await;
    // Watch for a whole settle time and a full re-read (6 heartbeats of 200 ms) after it.
    let until = Instant::now() + portsyncd::cfgview::SETTLE + Duration::from_millis(1500);
    while Instant::now() < until {
        assert_eq!(
            smembers(&mut w.appl, "PORT_TABLE_KEY_SET").await,
            Vec::<String>::new()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(consumed_count(&mut w).await.as_deref(), Some("4"));
}

/// A Redis reconnect in the middle of the burst (the daemon's notification connection is
/// killed, so notifications are lost): the periodic re-read still ends with the right count.
#[tokio::test]
async fn issue13_reconnect_during_breakout_still_ends_right() {
    let dir = TempDir::new("cfg");
    let cfg = settings(&dir, "");
    let (mut w, d) = running(&["--config", &cfg, "--track-port-count"]).await;
    breakout(&mut w, async |w: &mut World| {
        let _: i64 = q(
            &mut w.config,
            redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub"),
        )
        .await;
    })
    .await;
    w.wait_pending("PortConfigDone").await;
    d.wait_log("PortConfigDone count=7 written again").await;
    w.pop().await;
    assert_bake_accepts(&mut w, 7).await;
}

/// `config interface mtu` at run time (CONFIG_DB first, then the kernel, as portmgrd does) →
/// no `mtu_mismatch`; the kernel MTU changed without CONFIG_DB → it fires after `after_ms`.
#[tokio::test]
async fn issue13_mtu_mismatch_follows_config_db() {
    let dir = TempDir::new("cfg");
    let cfg = settings(&dir, "[[alert]]\nkind = \"mtu_mismatch\"\nafter_ms = 400\n");
    let (mut w, d) = running(&["--config", &cfg]).await;
    w.wait_row("Ethernet0", sdb("down", "down", 9100)).await;
    hset(&mut w.config, "PORT|Ethernet0", &[("mtu", "1500")]).await;
    d.wait_log("CONFIG_DB PORT|Ethernet0 mtu now Some(1500)")
        .await;
    w.ns.ip(&["link", "set", "Ethernet0", "mtu", "1500"]);
    w.wait_row("Ethernet0", sdb("down", "down", 1500)).await;
    let key = "PORTSYNCD_ALERT_TABLE|mtu_mismatch|Ethernet0";
    let until = Instant::now() + Duration::from_millis(1200);
    while Instant::now() < until {
        assert!(
            !exists(&mut w.state, key).await,
            "mtu_mismatch fired for a configured MTU"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    w.ns.ip(&["link", "set", "Ethernet0", "mtu", "9000"]);
    let st = w.state.clone();
    wait(
        || {
            let mut st = st.clone();
            async move { hmap(&mut st, key).await.get("state").map(String::as_str) == Some("firing") }
        },
        "mtu_mismatch to fire for a kernel-only MTU change",
    )
    .await;
}

/// One CONFIG_DB `PORT|*` key the daemon cannot read (a string, so `HGETALL` answers
/// WRONGTYPE) changed together with a good port: the good port's change still lands at once,
/// not only at the periodic re-read (30 s away with a 5 s heartbeat).
#[tokio::test]
async fn issue13_one_unreadable_config_key_does_not_hide_the_others() {
    let dir = TempDir::new("cfg");
    let f = dir.0.join("portsyncd.toml");
    std::fs::write(&f, "heartbeat_ms = 5000\n").unwrap();
    let (mut w, d) = running(&["--config", f.to_str().unwrap()]).await;
    w.wait_row("Ethernet0", sdb("down", "down", 9100)).await;
    // One transaction: both notifications arrive together, so one fetch carries both keys.
    let _: () = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("PORT|Ethernet96")
        .arg("not a hash")
        .ignore()
        .cmd("HSET")
        .arg("PORT|Ethernet0")
        .arg("mtu")
        .arg("1500")
        .ignore()
        .query_async(&mut w.config)
        .await
        .unwrap();
    d.wait_log("CONFIG_DB PORT|Ethernet0 mtu now Some(1500)")
        .await;
    d.wait_log("reading CONFIG_DB PORT|Ethernet96").await;
}
