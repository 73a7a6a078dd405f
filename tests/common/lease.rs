//! Shared by the lease tests: the lease row, Redis's clock, a daemon's exit, one daemon
//! running with a synced port, and a hand-written lease of another host.
#![allow(dead_code)]

use super::sonic::World;
use super::*;
use std::process::ExitStatus;

pub const ROW: &str = "PORTSYNCD_HEALTH_TABLE|portsyncd";

/// Redis's clock in ms (the lease's clock).
pub async fn redis_ms(w: &mut World) -> u64 {
    let (s, us): (u64, u64) = q(&mut w.state, &redis::cmd("TIME")).await;
    s * 1000 + us / 1000
}

/// Wait for the daemon to exit; its status.
pub async fn wait_exit(d: &mut Daemon, what: &str) -> ExitStatus {
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
pub async fn one_running(w: &mut World, args: &[&str]) -> Daemon {
    w.seed_s0(2).await;
    let d = Daemon::start_args(&w.ns, &w.redis, args, &[]);
    d.wait_started().await;
    w.pop().await;
    w.ns.add_port("Ethernet0", 9100);
    w.wait_row("Ethernet0", sdb("down", "down", 9100)).await;
    d
}

/// A hand-written lease held by a process on another host and boot.
pub async fn foreign_lease(w: &mut World, heartbeat_ms: u64, interval_ms: &str) {
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
