//! Issue #11 item 4, one writer: the lease in STATE_DB `PORTSYNCD_HEALTH_TABLE|portsyncd`.
//! A second instance next to a live one exits 73 naming the holder and the first keeps
//! syncing; a SIGKILLed holder is taken over at once; a stale lease from another boot/host is
//! taken over and a fresh one (renewed) is refused; an instance whose lease was taken exits 73
//! without writing over the new holder. Real netns, real redis-server, the real binary.

mod common;

use common::lease::*;
use common::sonic::World;
use common::*;
use std::time::{Duration, Instant};

#[tokio::test]
async fn issue11_second_instance_refused() {
    let mut w = World::new().await;
    let mut first = one_running(&mut w, &[]).await;
    let t0 = Instant::now();
    let mut second = w.daemon();
    let status = wait_exit(&mut second, "the second instance to exit").await;
    let took = t0.elapsed();
    eprintln!("second instance refused after {took:?}");
    assert_eq!(status.code(), Some(73), "{}", second.log_text());
    assert!(
        took < Duration::from_secs(10),
        "refused only after {took:?}"
    );
    let log = second.log_text();
    let want = format!(
        "another portsyncd holds the writer lease: pid {} on host ",
        first.pid()
    );
    assert!(log.contains(&want), "{log}");
    assert!(
        log.contains("heartbeat ") && log.contains("boot id "),
        "{log}"
    );
    assert_eq!(log.matches("writer lease").count(), 1, "one line: {log}");
    // The first still holds the lease and keeps syncing.
    first.assert_running();
    assert_eq!(
        hmap(&mut w.state, ROW).await["pid"],
        first.pid().to_string()
    );
    w.ns.ip(&["link", "set", "Ethernet0", "up"]);
    w.wait_row("Ethernet0", sdb("down", "up", 9100)).await;
    first.assert_running();
}

#[tokio::test]
async fn issue11_sigkilled_holder_taken_over() {
    let mut w = World::new().await;
    let mut first = one_running(&mut w, &[]).await;
    first.signal("KILL");
    first.child.wait().expect("reap the killed daemon"); // a supervisor reaps it too
    let t0 = Instant::now();
    let second = w.daemon();
    second.wait_started().await;
    let took = t0.elapsed();
    eprintln!("SIGKILLed holder taken over: READY {took:?} after start");
    // Well inside the stale limit (3 × 5 s): taken because the pid is gone, not by age.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    second
        .wait_log(&format!(
            "writer lease taken over (HolderGone): pid {}",
            first.pid()
        ))
        .await;
    // It syncs: a netdev created now reaches STATE_DB.
    w.pop().await;
    w.ns.add_port("Ethernet4", 9100);
    w.wait_row("Ethernet4", sdb("down", "down", 9100)).await;
    let row = hmap(&mut w.state, ROW).await;
    assert_eq!(row["pid"], second.pid().to_string());
    assert_eq!(row["state"], "running");
}

#[tokio::test]
async fn issue11_stale_lease_from_another_boot_taken_over() {
    let mut w = World::new().await;
    w.seed_s0(1).await;
    let old = redis_ms(&mut w).await - 60_000;
    foreign_lease(&mut w, old, "5000").await;
    let d = w.daemon();
    d.wait_started().await;
    d.wait_log("writer lease taken over (Stale): pid 4242 on host other-host")
        .await;
    let row = hmap(&mut w.state, ROW).await;
    assert_eq!(row["pid"], d.pid().to_string());
    assert_ne!(row["host"], "other-host");
    assert_eq!(
        row["boot_id"],
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .unwrap()
            .trim()
    );
    assert!(row["pidns"].starts_with("pid:["), "{row:?}");
}

/// A live holder elsewhere renews its lease; the starting instance sees that and gives up.
#[tokio::test]
async fn issue11_fresh_lease_from_another_host_refused() {
    let mut w = World::new().await;
    w.seed_s0(1).await;
    let now = redis_ms(&mut w).await;
    foreign_lease(&mut w, now, "1000").await;
    let mut state = w.state.clone();
    let renewer = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let (s, us): (u64, u64) = q(&mut state, &redis::cmd("TIME")).await;
            let ms = (s * 1000 + us / 1000).to_string();
            hset(&mut state, ROW, &[("heartbeat_ms", &ms)]).await;
        }
    });
    let t0 = Instant::now();
    let mut d = w.daemon();
    let status = wait_exit(&mut d, "the refused instance to exit").await;
    let took = t0.elapsed();
    eprintln!("fresh foreign lease refused after {took:?}");
    renewer.abort();
    // It renews every 300 ms: seen at once, long before its 5 s stale limit.
    assert!(took < Duration::from_secs(3), "refused only after {took:?}");
    assert_eq!(status.code(), Some(73), "{}", d.log_text());
    assert!(
        d.log_text().contains(
            "another portsyncd holds the writer lease: pid 4242 on host other-host (boot id 00000000-0000-0000-0000-000000000000, pid:[1]), state running, heartbeat "
        ),
        "{}",
        d.log_text()
    );
    let row = hmap(&mut w.state, ROW).await;
    assert_eq!(
        row["host"], "other-host",
        "the refused instance wrote nothing"
    );
    assert!(
        !exists(&mut w.appl, "_PORT_TABLE:PortConfigDone").await
            && !exists(&mut w.state, "WARM_RESTART_TABLE|portsyncd").await,
        "nothing written to APPL_DB or STATE_DB before the lease"
    );
}

/// A holder elsewhere that stopped renewing (fresh when we start) is waited for, not refused:
/// once its heartbeat is older than its stale limit (3 × 1 s, at least 5 s) it is taken over.
#[tokio::test]
async fn issue11_unrenewed_lease_from_another_host_taken_over_once_stale() {
    let mut w = World::new().await;
    w.seed_s0(1).await;
    let now = redis_ms(&mut w).await;
    foreign_lease(&mut w, now, "1000").await;
    let t0 = Instant::now();
    let d = w.daemon();
    d.wait_started().await;
    let took = t0.elapsed();
    eprintln!("unrenewed foreign lease taken over after {took:?}");
    assert!(
        took >= Duration::from_millis(4_500),
        "taken too early: {took:?}"
    );
    d.wait_log("writer lease taken over (Stale): pid 4242")
        .await;
    assert_eq!(hmap(&mut w.state, ROW).await["pid"], d.pid().to_string());
}

/// Another instance takes the lease while this one runs (it was frozen past the stale limit,
/// or an operator forced it): the next renewal finds it, and the daemon exits 73 through its
/// shutdown path without writing over the new holder's row.
#[tokio::test]
async fn issue11_lease_taken_while_running_exits_73() {
    let mut w = World::new().await;
    let dir = TempDir::new("lease");
    let cfg = dir.0.join("portsyncd.toml");
    std::fs::write(&cfg, "heartbeat_ms = 300\n").unwrap();
    let mut d = one_running(&mut w, &["--config", cfg.to_str().unwrap()]).await;
    let now = redis_ms(&mut w).await;
    foreign_lease(&mut w, now, "5000").await;
    let status = wait_exit(&mut d, "the daemon that lost its lease to exit").await;
    assert_eq!(status.code(), Some(73), "{}", d.log_text());
    let log = d.log_text();
    assert!(
        log.contains("writer lease lost, shutting down: now held by pid 4242 on host other-host"),
        "{log}"
    );
    let row = hmap(&mut w.state, ROW).await;
    assert_eq!(row["pid"], "4242", "{row:?}");
    assert_eq!(
        row["state"], "running",
        "not overwritten with stopped: {row:?}"
    );
}

/// A clean stop writes `state=stopped`; the next start takes the lease without waiting.
#[tokio::test]
async fn issue11_restart_after_clean_stop_takes_the_lease_at_once() {
    let mut w = World::new().await;
    let mut first = one_running(&mut w, &[]).await;
    first.signal("TERM");
    let status = wait_exit(&mut first, "the first instance to stop").await;
    assert_eq!(status.code(), Some(0), "{}", first.log_text());
    assert_eq!(hmap(&mut w.state, ROW).await["state"], "stopped");
    let t0 = Instant::now();
    let second = w.daemon();
    second.wait_started().await;
    eprintln!(
        "restart after clean stop: READY {:?} after start",
        t0.elapsed()
    );
    second.wait_log("writer lease taken (NotRunning)").await;
    assert!(t0.elapsed() < Duration::from_secs(5));
}
