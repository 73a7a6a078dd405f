//! The writer lease: one portsyncd writes a set of SONiC tables at a time. The lease is the
//! health row STATE_DB `PORTSYNCD_HEALTH_TABLE|portsyncd` itself (`state`, `pid`, `host`,
//! `boot_id`, `pidns`, `heartbeat_ms`, `interval_ms`). This file owns who may hold it: the pure
//! decision (`decide`, `Watch`), the one Lua script that checks and writes the row atomically
//! with Redis `TIME` as the clock, taking the lease at start-up and renewing it every heartbeat.
//!
//! The decision needs facts Redis cannot see (is the holder's pid alive here?), so it runs in
//! the process and the script is a compare-and-set: it writes only if the row is still exactly
//! the one that was decided about. Two instances starting at once both decide to take an
//! absent row; Redis runs their scripts one after the other and the second finds a changed row.

use crate::error::{Error, Result};
use crate::store::{Store, HEALTH_TABLE};
use std::time::Duration;
use tracing::{info, warn};

/// A lease is stale once its heartbeat is older than this many of the holder's intervals…
pub const STALE_INTERVALS: u64 = 3;
/// …and never sooner than this.
pub const MIN_STALE_MS: u64 = 5_000;
/// How often a starting instance looks at a lease held by someone else.
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// Check-and-write of the lease row, atomic in Redis. KEYS[1] the row; ARGV[1] the mode:
/// `look` (write nothing), `take` (write if the row's token still equals ARGV[2]) or `renew`
/// (write if the row names the identity ARGV[2] and is not `stopped` yet — a heartbeat that
/// lands after the clean exit's row must not revive it — or names nobody); ARGV[3..]
/// field/value pairs to write. A write also sets `heartbeat_ms` from `TIME`. Returns {written, now_ms, row}.
pub const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local row = redis.call('HMGET', KEYS[1], 'state', 'pid', 'host', 'boot_id', 'pidns', 'heartbeat_ms', 'interval_ms')
for i = 1, 7 do if not row[i] then row[i] = '' end end
local ident = row[2] .. '\n' .. row[3] .. '\n' .. row[4] .. '\n' .. row[5]
local ok = (ARGV[1] == 'take' and ARGV[2] == row[1] .. '\n' .. ident .. '\n' .. row[6])
  or (ARGV[1] == 'renew' and ((ARGV[2] == ident and row[1] ~= 'stopped') or row[2] == ''))
if ok then
  local fv = {}
  for i = 3, #ARGV do fv[#fv + 1] = ARGV[i] end
  fv[#fv + 1] = 'heartbeat_ms'
  fv[#fv + 1] = string.format('%d', now)
  redis.call('HSET', KEYS[1], unpack(fv))
end
return {ok and 1 or 0, now, row}
";

/// Which process this is, as the lease records it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    pub pid: String,
    pub host: String,
    pub boot_id: String,
    /// `readlink /proc/self/ns/pid`, e.g. `pid:[4026531836]`.
    pub pidns: String,
}

impl Identity {
    /// This process; a fact that cannot be read is left empty (and then never matches).
    pub fn current() -> Identity {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        Identity {
            pid: std::process::id().to_string(),
            host: read("/proc/sys/kernel/hostname"),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            pidns: std::fs::read_link("/proc/self/ns/pid")
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }

    /// The script's identity string (`renew` compares it with the row's).
    fn token(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}",
            self.pid, self.host, self.boot_id, self.pidns
        )
    }

    /// Same machine boot and same pid namespace: a pid means the same process here.
    pub fn shares_pids_with(&self, other: &Identity) -> bool {
        !self.boot_id.is_empty()
            && !self.pidns.is_empty()
            && self.boot_id == other.boot_id
            && self.pidns == other.pidns
    }

    pub fn fields(&self) -> [(&'static str, &str); 4] {
        [
            ("pid", &self.pid),
            ("host", &self.host),
            ("boot_id", &self.boot_id),
            ("pidns", &self.pidns),
        ]
    }
}

/// The lease fields of the row as found ("" where absent).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Row {
    pub state: String,
    pub id: Identity,
    pub heartbeat_ms: String,
    pub interval_ms: String,
}

impl Row {
    /// From the script's seven values, in its HMGET order.
    pub fn from_values(v: &[String]) -> Row {
        let f = |i: usize| v.get(i).cloned().unwrap_or_default();
        Row {
            state: f(0),
            id: Identity {
                pid: f(1),
                host: f(2),
                boot_id: f(3),
                pidns: f(4),
            },
            heartbeat_ms: f(5),
            interval_ms: f(6),
        }
    }

    /// The script's `take` token: the row exactly as decided about.
    fn token(&self) -> String {
        format!("{}\n{}\n{}", self.state, self.id.token(), self.heartbeat_ms)
    }

    /// Milliseconds since the last heartbeat, by the Redis clock.
    pub fn age_ms(&self, now_ms: u64) -> Option<u64> {
        self.heartbeat_ms
            .parse::<u64>()
            .ok()
            .map(|at| now_ms.saturating_sub(at))
    }

    /// Older than this, the holder's loop is not ticking: 3 of its intervals, at least 5 s.
    pub fn stale_after_ms(&self) -> u64 {
        let every = self.interval_ms.parse::<u64>().unwrap_or(MIN_STALE_MS);
        every.saturating_mul(STALE_INTERVALS).max(MIN_STALE_MS)
    }

    /// "pid 42 on host sonic (boot id …, pid:[…]), state running, heartbeat 1.2s ago"
    pub fn describe(&self, now_ms: u64) -> String {
        let age = match self.age_ms(now_ms) {
            Some(a) => format!("{:.1}s ago", a as f64 / 1e3),
            None => "never".into(),
        };
        format!(
            "pid {} on host {} (boot id {}, {}), state {}, heartbeat {age}",
            self.id.pid, self.id.host, self.id.boot_id, self.id.pidns, self.state
        )
    }
}

/// Why a lease may be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Free {
    /// No row, or a row that names no process.
    Absent,
    /// Its holder exited cleanly (`state` is neither `running` nor `starting`).
    NotRunning,
    /// It names this process.
    Ours,
    /// `running` but without a readable heartbeat.
    Malformed,
    /// The heartbeat is older than the stale limit.
    Stale,
    /// Same boot and pid namespace, and no live process has the holder's pid.
    HolderGone,
}

/// The lease rule. `alive(pid)` is asked only when the holder shares our pid namespace.
pub fn decide(row: &Row, now_ms: u64, me: &Identity, alive: impl Fn(&str) -> bool) -> Option<Free> {
    if row.id.pid.is_empty() {
        return Some(Free::Absent);
    }
    if row.state != "running" && row.state != "starting" {
        return Some(Free::NotRunning);
    }
    if row.id == *me {
        return Some(Free::Ours);
    }
    let Some(age) = row.age_ms(now_ms) else {
        return Some(Free::Malformed);
    };
    if age > row.stale_after_ms() {
        return Some(Free::Stale);
    }
    if me.shares_pids_with(&row.id) && !alive(&row.id.pid) {
        return Some(Free::HolderGone);
    }
    None // held by a live instance
}

/// A starting instance watching a lease that someone else holds.
#[derive(Debug, Default)]
pub struct Watch {
    first: Option<(u64, String)>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Wait,
    Refuse,
}

impl Watch {
    /// One more look at a held lease. Refuse once the holder is seen renewing it (its loop is
    /// running: it is not just stopping), or after its stale limit has passed since the first
    /// look (a bound; a lease not renewed for that long is stale and taken before this).
    pub fn step(&mut self, row: &Row, now_ms: u64) -> Step {
        let (since, hb) = self
            .first
            .get_or_insert_with(|| (now_ms, row.heartbeat_ms.clone()));
        if *hb != row.heartbeat_ms || now_ms.saturating_sub(*since) > row.stale_after_ms() + 1000 {
            Step::Refuse
        } else {
            Step::Wait
        }
    }
}

/// Is there a live (not zombie) process with this pid in our pid namespace?
pub fn pid_alive(pid: &str) -> bool {
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the last ')' (the command name may contain one).
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].trim_start().chars().next())
            .is_some_and(|s| s != 'Z' && s != 'X'),
        Err(_) => false,
    }
}

/// The lease this process holds; cheap to clone into the heartbeat task.
#[derive(Debug, Clone)]
pub struct Lease {
    pub me: Identity,
    key: String,
    script: std::sync::Arc<redis::Script>,
}

/// What a renewal found.
#[derive(Debug)]
pub enum Renewal {
    Renewed,
    /// Someone else holds the row now: who, in words.
    Lost(String),
}

impl Lease {
    async fn call(
        &self,
        store: &mut Store,
        mode: &str,
        expect: &str,
        fields: &[(&str, &str)],
    ) -> redis::RedisResult<(bool, u64, Row)> {
        let mut inv = self.script.key(&self.key);
        inv.arg(mode).arg(expect);
        for (f, v) in fields {
            inv.arg(*f).arg(*v);
        }
        let (ok, now, row): (i64, u64, Vec<String>) = inv.invoke_async(&mut store.state).await?;
        Ok((ok == 1, now, Row::from_values(&row)))
    }

    /// Take the lease before anything else is written (`state=starting`), waiting while a
    /// holder that may be stopping has not shown it is alive. Refusal is `Error::Lease` (73).
    pub async fn acquire(store: &mut Store, interval: Duration) -> Result<Lease> {
        let lease = Lease {
            me: Identity::current(),
            key: store.dbs.state.key(HEALTH_TABLE, "portsyncd"),
            script: std::sync::Arc::new(redis::Script::new(SCRIPT)),
        };
        let interval = interval.as_millis().to_string();
        let mut fields = vec![("state", "starting"), ("interval_ms", interval.as_str())];
        fields.extend(lease.me.fields());
        let rerr = |e| Error::redis("taking the writer lease", e);
        let mut watch = Watch::default();
        let (_, mut now, mut row) = lease.call(store, "look", "", &[]).await.map_err(rerr)?;
        loop {
            match decide(&row, now, &lease.me, pid_alive) {
                Some(why) => {
                    let (ok, n, r) = lease
                        .call(store, "take", &row.token(), &fields)
                        .await
                        .map_err(rerr)?;
                    if ok {
                        if why != Free::Absent && why != Free::NotRunning {
                            warn!("writer lease taken over ({why:?}): {}", row.describe(now));
                        } else {
                            info!("writer lease taken ({why:?})");
                        }
                        return Ok(lease);
                    }
                    (now, row) = (n, r); // changed under us: decide again on what is there now
                    continue;
                }
                None if watch.step(&row, now) == Step::Refuse => {
                    return Err(Error::Lease {
                        holder: row.describe(now),
                    })
                }
                None => {}
            }
            tokio::time::sleep(LOOK_EVERY).await;
            (_, now, row) = lease.call(store, "look", "", &[]).await.map_err(rerr)?;
        }
    }

    /// Write the health row if it still names this process (or nobody).
    pub async fn renew(
        &self,
        store: &mut Store,
        fields: &[(&str, &str)],
    ) -> redis::RedisResult<Renewal> {
        let mut all: Vec<(&str, &str)> = fields
            .iter()
            .filter(|(f, _)| *f != "heartbeat_ms" && *f != "pid")
            .copied()
            .collect();
        all.extend(self.me.fields());
        let (ok, now, row) = self.call(store, "renew", &self.me.token(), &all).await?;
        Ok(if ok {
            Renewal::Renewed
        } else {
            Renewal::Lost(row.describe(now))
        })
    }
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;
