//! One measurement each, for either daemon: a burst drain (SIGSTOP, flip every port,
//! SIGCONT → the last port's STATE_DB write, then every port checked), the steady
//! single-flip latency (netlink call return → keyspace notification), and cold start to
//! `PortConfigDone`; plus the /proc readings (schedstat CPU, VmRSS/VmHWM) they use.

use crate::common::sonic::World;
use crate::common::*;
use crate::subject::{port, setup, Kind, Subject};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;

/// Keyspace notifications of STATE_DB `PORT_TABLE|*`, timestamped on arrival.
pub struct Watch {
    rx: UnboundedReceiver<redis::PushInfo>,
    _con: redis::aio::ConnectionManager,
}

impl Watch {
    pub async fn new(w: &World, db: &str, pattern: &str) -> Watch {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let db = w.redis.db(db);
        let mut con = portsyncd::store::connect_push(&db, Duration::from_secs(5), tx)
            .await
            .unwrap();
        con.psubscribe(pattern).await.unwrap();
        Watch { rx, _con: con }
    }

    pub fn drain(&mut self) {
        while self.rx.try_recv().is_ok() {}
    }

    /// Wait for the next `event` notification (e.g. `hset`); returns the key.
    pub async fn next(&mut self, event: &str, what: &str) -> String {
        loop {
            let p = tokio::time::timeout(Duration::from_secs(30), self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no {event} notification within 30 s: {what}"))
                .unwrap();
            if p.kind != redis::PushKind::PMessage {
                continue;
            }
            let channel: String = redis::from_redis_value(p.data[1].clone()).unwrap();
            let got: String = redis::from_redis_value(p.data[2].clone()).unwrap();
            if got == event {
                return channel
                    .split_once(':')
                    .map(|(_, k)| k.to_string())
                    .unwrap_or(channel);
            }
        }
    }
}

/// CPU time (ns) of every thread of `pid`, user + kernel, from schedstat.
pub fn schedstat_ns(pid: i32) -> u64 {
    let mut total = 0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let s = std::fs::read_to_string(t.unwrap().path().join("schedstat")).unwrap_or_default();
        total += s
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

pub fn status_kb(pid: i32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub struct Drain {
    pub ms: f64,
    pub cpu_us_per_event: f64,
    /// Ports whose STATE_DB row did not follow the flip (0: the drain is complete).
    pub lost: u64,
}

/// One drain: all `n` ports flipped while the daemon is stopped.
pub async fn drain_once(w: &mut World, d: &Subject, watch: &mut Watch, n: u32, up: bool) -> Drain {
    d.signal("STOP");
    let verb = if up { "up" } else { "down" };
    let lines: Vec<String> = (0..n)
        .map(|i| format!("link set {} {verb}", port(i)))
        .collect();
    w.ns.batch(&lines);
    watch.drain();
    let cpu0 = schedstat_ns(d.pid());
    let t0 = Instant::now();
    d.signal("CONT");
    // The kernel queues the flips in port order and the daemon writes in arrival order, so
    // the last port's write ends the drain; every other port is checked afterwards. A daemon
    // that lost events (its netlink socket overflowed and it does not resync: the C++ one with
    // thousands of ports) never writes it: after 1 s nearly without CPU and without that write the
    // drain ends, and the ports STATE_DB has behind the kernel are its lost events.
    let pid = d.pid();
    let (mut window_cpu, mut ticks) = (schedstat_ns(pid), 0);
    let hard = Instant::now() + Duration::from_secs(120);
    loop {
        let tick = Duration::from_millis(100);
        if tokio::time::timeout(tick, watch.next("hset", "the last port's write"))
            .await
            .is_ok()
        {
            break;
        }
        // Idle: under 10 ms of CPU in a 1 s window (the C++ daemon's select loops wake up
        // every second, so its CPU time never stands quite still).
        ticks += 1;
        if ticks == 10 {
            let c = schedstat_ns(pid);
            if c - window_cpu < 10_000_000 {
                break;
            }
            (window_cpu, ticks) = (c, 0);
        }
        assert!(
            Instant::now() < hard,
            "a {n}-port drain still busy after 120 s"
        );
    }
    let last = Instant::now();
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe.hget(format!("PORT_TABLE|{}", port(i)), "admin_status");
    }
    let admin: Vec<Option<String>> = pipe.query_async(&mut w.state).await.unwrap();
    let behind = (0..n)
        .filter(|&i| admin[i as usize].as_deref() != Some(verb))
        .count();
    // Let the daemon finish the turn and its log lines (ours may send them a turn or a
    // retry later) before reading its CPU time: nothing moves for 30 ms.
    let mut seen = (schedstat_ns(d.pid()), d.log.lines());
    loop {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let now = (schedstat_ns(d.pid()), d.log.lines());
        if now == seen {
            break;
        }
        seen = now;
    }
    let cpu = seen.0;
    Drain {
        ms: (last - t0).as_secs_f64() * 1e3,
        cpu_us_per_event: (cpu - cpu0) as f64 / 1e3 / f64::from(n),
        lost: behind as u64,
    }
}

/// `samples` flips of one port per daemon (after 50 warm-up flips), one at a time and
/// interleaved — a flip on the first daemon's port, then on the next one's — so a change in
/// the (shared) machine's load lands on every daemon alike; latencies in µs, sorted, per kind.
pub async fn steady(kinds: &[Kind], samples: usize) -> Vec<Vec<f64>> {
    struct One {
        _w: World,
        _d: Subject,
        ns: std::fs::File,
        ifindex: u32,
        watch: Watch,
        lat: Vec<f64>,
    }
    let mut all = Vec::new();
    for kind in kinds {
        let (w, d) = setup(kind, 64).await;
        let ns = std::fs::File::open(format!("/run/netns/{}", w.ns.name)).unwrap();
        enter(&ns);
        let links = portsyncd::netlink::list_links().unwrap();
        let ifindex = links.iter().find(|(_, n)| n == "Ethernet0").unwrap().0;
        let watch = Watch::new(&w, "STATE_DB", "__keyspace@6__:PORT_TABLE|Ethernet0").await;
        all.push(One {
            _w: w,
            _d: d,
            ns,
            ifindex,
            watch,
            lat: Vec::with_capacity(samples),
        });
    }
    for i in 0..samples + 50 {
        for one in all.iter_mut() {
            // This thread's netns: the flip's netlink socket is made in it.
            enter(&one.ns);
            one.watch.drain();
            portsyncd::netlink::set_admin(one.ifindex, i % 2 == 0).unwrap();
            let t0 = Instant::now();
            one.watch.next("hset", "Ethernet0's STATE_DB write").await;
            if i >= 50 {
                one.lat.push(t0.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
    all.into_iter()
        .map(|mut one| {
            one.lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
            one.lat
        })
        .collect()
}

fn enter(ns: &std::fs::File) {
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns (run as root)");
}

/// Daemon start → the keyspace notification of `PortConfigDone`, `n` ports in CONFIG_DB, ms.
pub async fn cold_start(kind: &Kind, n: u32) -> f64 {
    let mut w = World::bare(Redis::start()).await;
    w.seed_ports(0..n).await;
    let mut watch = Watch::new(&w, "APPL_DB", "__keyspace@0__:_PORT_TABLE:PortConfigDone").await;
    let t0 = Instant::now();
    let d = Subject::start(kind, &w, false);
    watch.next("hset", "PortConfigDone").await;
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    drop(d);
    ms
}

/// Before each measurement: wait (up to 60 s) for the kernel to finish tearing down the
/// previous part's namespace (thousands of netdevs, in the background on the `netns`
/// workqueue: its worker is named `kworker/…+netns` while it runs), then up to 5 s for the
/// machine to be nearly idle (it is shared: this gives up rather than wait for others).
pub async fn settle() {
    let deadline = Instant::now() + Duration::from_secs(60);
    while netns_cleanup_running() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fn cpu() -> (u64, u64) {
        let s = std::fs::read_to_string("/proc/stat").unwrap();
        let v: Vec<u64> = s
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        (v.iter().sum(), v[3] + v.get(4).copied().unwrap_or(0))
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let (t0, i0) = cpu();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (t1, i1) = cpu();
        if t1 > t0 && (i1 - i0) as f64 / (t1 - t0) as f64 >= 0.9 {
            return;
        }
    }
}

/// A kernel worker is running a `netns` work item (cleanup_net).
fn netns_cleanup_running() -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten().any(|p| {
        std::fs::read_to_string(p.path().join("comm"))
            .is_ok_and(|c| c.starts_with("kworker/") && c.trim_end().ends_with("+netns"))
    })
}
