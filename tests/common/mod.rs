//! Test rig: a private network namespace, a private redis-server on a unix socket (with
//! SONiC's keyspace-notification setting), the real portsyncd binary inside the namespace, a
//! MONITOR capture, and waits with deadlines. Everything is torn down in `Drop`, so a failing
//! test leaves nothing behind. A missing prerequisite fails the test with a clear message.
#![allow(dead_code)]

use redis::aio::ConnectionManager;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

mod daemon;
pub mod lease;
mod netns;
mod redis_server;
pub mod rsyslog;
pub mod sonic;
mod watchers;

pub use daemon::Daemon;
pub use netns::Netns;
#[allow(unused_imports)]
pub use redis_server::{Cmd, Monitor, Redis};
#[allow(unused_imports)]
pub use watchers::{KeyspaceWatch, LinkWatch};

pub const DEADLINE: Duration = Duration::from_secs(15);
static SEQ: AtomicU32 = AtomicU32::new(0);

pub(crate) fn unique(tag: &str) -> String {
    format!(
        "pst{}-{}-{tag}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// Run a command; panic with its stderr if it fails.
pub fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", args[0]));
    assert!(
        out.status.success(),
        "`{}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// A temp directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(unique(tag));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Wait for an async condition, panicking with `what` at the deadline.
pub async fn wait<F, Fut>(mut cond: F, what: &str)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if cond().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn wait_sync(mut cond: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Run a harness command, retrying while the connection comes back (tests restart Redis and
/// kill its clients on purpose).
pub async fn q<T: redis::FromRedisValue>(con: &mut ConnectionManager, cmd: &redis::Cmd) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match cmd.query_async(con).await {
            Ok(v) => return v,
            Err(e) if Instant::now() < deadline && transient(&e) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("redis: {e}"),
        }
    }
}

fn transient(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}

/// HGETALL as ordered pairs.
pub async fn hgetall(con: &mut ConnectionManager, key: &str) -> Vec<(String, String)> {
    q(con, redis::cmd("HGETALL").arg(key)).await
}

pub async fn hmap(con: &mut ConnectionManager, key: &str) -> BTreeMap<String, String> {
    hgetall(con, key).await.into_iter().collect()
}

pub async fn exists(con: &mut ConnectionManager, key: &str) -> bool {
    q(con, redis::cmd("EXISTS").arg(key)).await
}

pub async fn keys(con: &mut ConnectionManager, pattern: &str) -> Vec<String> {
    let mut k: Vec<String> = q(con, redis::cmd("KEYS").arg(pattern)).await;
    k.sort();
    k
}

pub async fn smembers(con: &mut ConnectionManager, key: &str) -> Vec<String> {
    let mut k: Vec<String> = q(con, redis::cmd("SMEMBERS").arg(key)).await;
    k.sort();
    k
}

pub async fn hset(con: &mut ConnectionManager, key: &str, fvs: &[(&str, &str)]) {
    let mut c = redis::cmd("HSET");
    c.arg(key);
    for (f, v) in fvs {
        c.arg(*f).arg(*v);
    }
    let _: i64 = q(con, &c).await;
}

/// The STATE_DB fields portsyncd writes, as (oper, admin, mtu).
pub fn sdb(oper: &str, admin: &str, mtu: u32) -> BTreeMap<String, String> {
    [
        ("state", "ok"),
        ("netdev_oper_status", oper),
        ("admin_status", admin),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .chain([("mtu".to_string(), mtu.to_string())])
    .collect()
}
