//! Issue #11 item 4, one writer: the lease in STATE_DB `PORTSYNCD_HEALTH_TABLE|portsyncd`.
//! A second instance next to a live one exits 73 naming the holder and the first keeps
//! syncing; a SIGKILLed holder is taken over at once; a stale lease from another boot/host is
//! taken over and a fresh one (renewed) is refused; an instance whose lease was taken exits 73
//! without writing over the new holder. Real netns, real redis-server, the real binary.

mod common;

use common::sonic::World;
use common::*;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

const ROW: &str = "PORTSYNCD_HEALTH_TABLE|portsyncd";

/// Redis's clock in ms (the lease's clock).
async fn redis_ms(w: &mut World) -> u64 {
    let (s, us): (u64, u64) = q(&mut w.state, &redis::cmd("TIME")).await;
    s * 1000 + us / 1000
}

/// Wait for the daemon to exit; its status.
async fn wait_exit(d: &mut Daemon, what: &str) -> ExitStatus {
    let mut status = None;
    let child = &mut d.child;
    wait(
        || {
            if status.is_none() {
                status = child.try_wait().expect("try_wait");
            }
            std::future::ready(status.is_some())
        },
        what,
    )
    .await;
    status.expect("waited for")
}

/// Ethernet0 and Ethernet4 configured; one daemon (optionally with `args`) started, Ethernet0
/// up and synced.
async fn one_running(w: &mut World, args: &[&str]) -> Daemon {
    w.seed_s0(2).await;
    let d = Daemon::start_args(&w.ns, &w.redis, args, &[]);
    d.wait_started().await;
    w.pop().await;
    w.ns.add_port("Ethernet0", 9100);
    w.wait_row("Ethernet0", sdb("down", "down", 9100)).await;
    d
}

/// A hand-written lease held by a process on another host and boot.
async fn foreign_lease(w: &mut World, heartbeat_ms: u64, interval_ms: &str) {
    hset(
        &mut w.state,
        ROW,
        &[
            ("state", "running"),
            ("pid", "4242"),
            ("host", "other-host"),
            ("boot_id", "00000000-0000-0000-0000-000000000000"),
            ("pidns", "pid:[1]"),
            ("heartbeat_ms", &heartbeat_ms.to_string()),
            ("interval_ms", interval_ms),
        ],
    )
    .await;
}

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

/// The script's compare-and-set: a `take` decided on a row that changed since the look (a
/// second instance took it meanwhile) writes nothing and returns the row as it is now.
#[tokio::test]
async fn issue11_take_writes_nothing_if_the_row_changed_since_the_look() {
    let mut w = World::new().await;
    let script = redis::Script::new(portsyncd::lease::SCRIPT);
    let call = |mode: &str, expect: &str, fv: &[&str]| {
        let mut inv = script.key(ROW);
        inv.arg(mode).arg(expect).arg(fv);
        inv
    };
    // Both look at the absent row: both would take it.
    let (_, _, absent): (i64, u64, Vec<String>) = call("look", "", &[])
        .invoke_async(&mut w.state)
        .await
        .unwrap();
    let token = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        absent[0], absent[1], absent[2], absent[3], absent[4], absent[5]
    );
    let mine = [
        "state", "starting", "pid", "1", "host", "a", "boot_id", "b", "pidns", "n",
    ];
    let (ok, _, _): (i64, u64, Vec<String>) = call("take", &token, &mine)
        .invoke_async(&mut w.state)
        .await
        .unwrap();
    assert_eq!(ok, 1, "the first take of the absent row lands");
    let theirs = [
        "state", "starting", "pid", "2", "host", "c", "boot_id", "d", "pidns", "m",
    ];
    let (ok, now, row): (i64, u64, Vec<String>) = call("take", &token, &theirs)
        .invoke_async(&mut w.state)
        .await
        .unwrap();
    assert_eq!(
        ok, 0,
        "the second take, decided on the same absent row, is refused"
    );
    assert_eq!(&row[..5], ["starting", "1", "a", "b", "n"]);
    let stored = hmap(&mut w.state, ROW).await;
    assert_eq!(stored["pid"], "1");
    let hb: u64 = stored["heartbeat_ms"].parse().unwrap();
    assert!(
        hb <= now && now - hb < 5_000,
        "heartbeat_ms is Redis TIME: {hb} vs {now}"
    );
    // Renewal writes only for the identity the row names.
    let (ok, _, _): (i64, u64, Vec<String>) = call("renew", "2\nc\nd\nm", &["state", "running"])
        .invoke_async(&mut w.state)
        .await
        .unwrap();
    assert_eq!(ok, 0);
    let (ok, _, _): (i64, u64, Vec<String>) = call("renew", "1\na\nb\nn", &["state", "running"])
        .invoke_async(&mut w.state)
        .await
        .unwrap();
    assert_eq!(ok, 1);
    assert_eq!(hmap(&mut w.state, ROW).await["state"], "running");
    // Once the holder wrote `stopped` (its clean exit), a late heartbeat does not revive it.
    let renew = |state: &str| call("renew", "1\na\nb\nn", &["state", state]);
    let (ok, _, _): (i64, u64, Vec<String>) =
        renew("stopped").invoke_async(&mut w.state).await.unwrap();
    assert_eq!(ok, 1);
    let (ok, _, _): (i64, u64, Vec<String>) =
        renew("running").invoke_async(&mut w.state).await.unwrap();
    assert_eq!(ok, 0, "a renewal after the clean exit's row is refused");
    assert_eq!(hmap(&mut w.state, ROW).await["state"], "stopped");
}

/// Two instances started at the same moment: exactly one runs; the other is refused at
/// start-up (it never reports READY) rather than losing the lease later.
#[tokio::test]
async fn issue11_two_started_together_one_writer() {
    let mut w = World::new().await;
    w.seed_s0(1).await;
    let mut a = w.daemon();
    let mut b = w.daemon();
    let mut exited = None;
    wait(
        || {
            if exited.is_none() {
                if let Some(s) = a.child.try_wait().unwrap() {
                    exited = Some(("a", s));
                } else if let Some(s) = b.child.try_wait().unwrap() {
                    exited = Some(("b", s));
                }
            }
            std::future::ready(exited.is_some())
        },
        "one of two instances started together to exit",
    )
    .await;
    let (loser, status) = exited.unwrap();
    let (lost, won) = if loser == "a" {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    assert_eq!(status.code(), Some(73), "{}", lost.log_text());
    assert!(
        lost.log_text()
            .contains("another portsyncd holds the writer lease"),
        "{}",
        lost.log_text()
    );
    assert!(
        !lost.notes().iter().any(|n| n.contains("READY=1")),
        "refused before start-up, not after: {:?}",
        lost.notes()
    );
    won.wait_started().await;
    won.assert_running();
    assert_eq!(hmap(&mut w.state, ROW).await["pid"], won.pid().to_string());
}

/// `portsyncd health -v` in the namespace: (exit code, stdout).
fn health(w: &World) -> (i32, String) {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &w.ns.name,
            env!("CARGO_BIN_EXE_portsyncd"),
            "--db-config",
        ])
        .arg(&w.redis.cfg)
        .args(["health", "-v"])
        .output()
        .expect("run portsyncd health");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The health check names the holder, and sees at once (not after 3 intervals) that a
/// holder in its own pid namespace was killed.
#[tokio::test]
async fn issue11_health_names_the_holder_and_sees_it_killed() {
    let mut w = World::new().await;
    let mut d = one_running(&mut w, &[]).await;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let alive = format!("pid {} on {} alive, heartbeat", d.pid(), host.trim());
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (_, out) = health(&w);
        if out.contains(&alive) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "health never said {alive:?}: {out}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    d.signal("KILL");
    d.child.wait().expect("reap");
    let (code, out) = health(&w);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!(
            "pid {} on {} is gone (killed?)",
            d.pid(),
            host.trim()
        )),
        "{out}"
    );
}
