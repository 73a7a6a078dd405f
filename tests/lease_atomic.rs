//! Issue #11 item 4, one writer: the lease script's compare-and-set, two instances started
//! together, and what `portsyncd health` says of the holder (the rest is in tests/lease.rs).
//! The lease lives in STATE_DB `PORTSYNCD_HEALTH_TABLE|portsyncd`.
//! A second instance next to a live one exits 73 naming the holder and the first keeps
//! syncing; a SIGKILLed holder is taken over at once; a stale lease from another boot/host is
//! taken over and a fresh one (renewed) is refused; an instance whose lease was taken exits 73
//! without writing over the new holder. Real netns, real redis-server, the real binary.

mod common;

use common::lease::*;
use common::sonic::World;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

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
