//! End-to-end benchmark (issue #4): the real daemon (release build) in a private namespace
//! against a private redis-server, ifb ports, IPv6 off — the set-up the C++ figures were
//! measured with. Reports, as medians of several runs:
//! * burst drain for 256 / 1,024 / 4,096 ports: SIGSTOP the daemon, flip every port, SIGCONT,
//!   time to the keyspace notification of the last port's STATE_DB write (then every port is
//!   checked), and daemon CPU per event (schedstat);
//! * steady-state latency P50/P90/P99 from the netlink call's return to the STATE_DB keyspace
//!   notification, one port flipped at a time;
//! * cold start to `PortConfigDone` with 1,024 configured ports;
//! * RSS with 4,096 ports.
//!
//! Run as root: `cargo bench --bench e2e`. PORTSYNCD_BENCH_RUNS sets the run count (default
//! 5), PORTSYNCD_BENCH_ONLY picks parts (`drain,cold,steady`), PORTSYNCD_BENCH_PORTS the drain
//! sizes, PORTSYNCD_BENCH_LOGLEVEL seeds CONFIG_DB LOGGER|portsyncd, PORTSYNCD_BENCH_CONFIG passes
//! a settings file to the daemon.

#[path = "../tests/common/mod.rs"]
mod common;

use common::sonic::World;
use common::*;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;

fn port(i: u32) -> String {
    format!("Ethernet{}", i * 4)
}

/// Keyspace notifications of STATE_DB `PORT_TABLE|*`, timestamped on arrival.
struct Watch {
    rx: UnboundedReceiver<redis::PushInfo>,
    _con: redis::aio::ConnectionManager,
}

impl Watch {
    async fn new(w: &World, pattern: &str) -> Watch {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let db = w.redis.db("STATE_DB");
        let mut con = portsyncd::store::connect_push(&db, Duration::from_secs(5), tx)
            .await
            .unwrap();
        con.psubscribe(pattern).await.unwrap();
        Watch { rx, _con: con }
    }

    fn drain(&mut self) {
        while self.rx.try_recv().is_ok() {}
    }

    /// Wait for the next `hset` notification; returns the key.
    async fn next_hset(&mut self) -> String {
        loop {
            let p = tokio::time::timeout(Duration::from_secs(20), self.rx.recv())
                .await
                .expect("notification")
                .unwrap();
            if p.kind != redis::PushKind::PMessage {
                continue;
            }
            let channel: String = redis::from_redis_value(p.data[1].clone()).unwrap();
            let event: String = redis::from_redis_value(p.data[2].clone()).unwrap();
            if event == "hset" {
                return channel
                    .split_once(':')
                    .map(|(_, k)| k.to_string())
                    .unwrap_or(channel);
            }
        }
    }
}

fn schedstat_ns(pid: i32) -> u64 {
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

fn status_kb(pid: i32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `n` configured ifb ports, created, written and popped, daemon started.
async fn setup(n: u32) -> (World, Daemon) {
    let mut w = World::bare(Redis::start()).await;
    w.seed_ports(0..n).await;
    if let Ok(level) = std::env::var("PORTSYNCD_BENCH_LOGLEVEL") {
        hset(
            &mut w.config,
            "LOGGER|portsyncd",
            &[("LOGLEVEL", &level), ("LOGOUTPUT", "SYSLOG")],
        )
        .await;
    }
    let cfg = std::env::var("PORTSYNCD_BENCH_CONFIG").ok();
    let args: Vec<&str> = match &cfg {
        Some(cfg) => vec!["--config", cfg],
        None => vec![],
    };
    // e.g. "valgrind --tool=callgrind --collect-atstart=no": instruction counts, which do not
    // move with the machine's noise (see Profiler for switching collection on and off).
    let wrap = std::env::var("PORTSYNCD_BENCH_WRAP").unwrap_or_default();
    let prefix: Vec<&str> = wrap.split_whitespace().collect();
    let d = Daemon::start_as(&w.ns, &w.redis, &prefix, &args, &[]);
    d.wait_started().await;
    w.pop().await;
    let lines: Vec<String> = (0..n)
        // The MTU CONFIG_DB has, so mtu_mismatch has nothing to say during the bench.
        .map(|i| format!("link add {} mtu 9100 type ifb", port(i)))
        .collect();
    w.ns.batch(&lines);
    w.wait_pending("PortInitDone").await;
    w.pop().await;
    (w, d)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Drain {
    ms: f64,
    cpu_us_per_event: f64,
}

/// One drain: all `n` ports flipped while the daemon is stopped.
async fn drain_once(w: &mut World, d: &Daemon, watch: &mut Watch, n: u32, up: bool) -> Drain {
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
    // the last port's write ends the drain; every other port is checked afterwards.
    watch.next_hset().await;
    let last = Instant::now();
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe.hget(format!("PORT_TABLE|{}", port(i)), "admin_status");
    }
    let admin: Vec<Option<String>> = pipe.query_async(&mut w.state).await.unwrap();
    let behind: Vec<String> = (0..n)
        .filter(|&i| admin[i as usize].as_deref() != Some(verb))
        .map(port)
        .collect();
    assert!(
        behind.is_empty(),
        "the last port's write landed before these ports' (not {verb}): {behind:?}"
    );
    // Let the daemon finish the turn (its log lines) before reading its CPU time.
    let mut cpu = schedstat_ns(d.pid());
    loop {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let c = schedstat_ns(d.pid());
        if c == cpu {
            break;
        }
        cpu = c;
    }
    Drain {
        ms: (last - t0).as_secs_f64() * 1e3,
        cpu_us_per_event: (cpu - cpu0) as f64 / 1e3 / f64::from(n),
    }
}

/// `PORTSYNCD_BENCH_PROFILE="perf record -g -o /tmp/p.data -p {pid}"` runs that command
/// around the drains of `PORTSYNCD_BENCH_PROFILE_PORTS` ports (default 1,024) only, so a
/// profile or a syscall count (`strace -c -p {pid}`) covers the drains and nothing else.
/// `PORTSYNCD_BENCH_PROFILE_STOP` runs after the drains, before the first command gets
/// SIGINT (e.g. `callgrind_control -i off {pid}; callgrind_control -d {pid}`).
struct Profiler(std::process::Child, i32);

impl Profiler {
    fn attach(pid: i32, n: u32) -> Option<Profiler> {
        let cmd = std::env::var("PORTSYNCD_BENCH_PROFILE").ok()?;
        let ports = std::env::var("PORTSYNCD_BENCH_PROFILE_PORTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1024);
        if n != ports {
            return None;
        }
        let cmd = cmd.replace("{pid}", &pid.to_string());
        let child = std::process::Command::new("sh")
            .args(["-c", &format!("exec {cmd}")])
            .spawn()
            .expect("starting the profiler");
        // Give it time to attach (perf and strace print nothing useful to wait on).
        std::thread::sleep(Duration::from_millis(500));
        Some(Profiler(child, pid))
    }
}

impl Drop for Profiler {
    fn drop(&mut self) {
        if let Ok(stop) = std::env::var("PORTSYNCD_BENCH_PROFILE_STOP") {
            let stop = stop.replace("{pid}", &self.1.to_string());
            let _ = std::process::Command::new("sh")
                .args(["-c", &stop])
                .status();
        }
        let _ = std::process::Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn enter_netns(ns: &Netns) {
    let f = std::fs::File::open(format!("/run/netns/{}", ns.name)).unwrap();
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns (run as root)");
}

async fn steady(samples: usize) -> Vec<f64> {
    let (w, d) = setup(64).await;
    enter_netns(&w.ns);
    let links = portsyncd::netlink::list_links().unwrap();
    let ifindex = links.iter().find(|(_, n)| n == "Ethernet0").unwrap().0;
    let mut watch = Watch::new(&w, "__keyspace@6__:PORT_TABLE|Ethernet0").await;
    let mut lat = Vec::with_capacity(samples);
    for i in 0..samples + 50 {
        watch.drain();
        portsyncd::netlink::set_admin(ifindex, i % 2 == 0).unwrap();
        let t0 = Instant::now();
        watch.next_hset().await;
        if i >= 50 {
            lat.push(t0.elapsed().as_secs_f64() * 1e6);
        }
    }
    drop(d);
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    lat
}

async fn cold_start(n: u32) -> f64 {
    let mut w = World::bare(Redis::start()).await;
    w.seed_ports(0..n).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let db = w.redis.db("APPL_DB");
    let mut con = portsyncd::store::connect_push(&db, Duration::from_secs(5), tx)
        .await
        .unwrap();
    con.psubscribe("__keyspace@0__:_PORT_TABLE:PortConfigDone")
        .await
        .unwrap();
    let t0 = Instant::now();
    let d = w.daemon();
    loop {
        let p = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("PortConfigDone")
            .unwrap();
        if p.kind == redis::PushKind::PMessage {
            break;
        }
    }
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    drop(d);
    ms
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` / `cargo test --benches` probing
    }
    let runs: usize = std::env::var("PORTSYNCD_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!("# portsyncd end-to-end benchmark ({runs} runs per figure, medians)\n");
        // PORTSYNCD_BENCH_ONLY=drain|cold|steady (comma-separated) runs only those parts;
        // PORTSYNCD_BENCH_PORTS=1024 sets the drain sizes (profiling runs).
        let only = std::env::var("PORTSYNCD_BENCH_ONLY").unwrap_or_else(|_| "drain,cold,steady".into());
        let part = |name: &str| only.split(',').any(|p| p.trim() == name);
        let mut figures: Vec<String> = Vec::new();
        if part("steady") {
            settle().await;
            let lat = steady(2000).await;
            figures.push(format!(
                "| steady latency, netlink call → STATE_DB notification (2,000 flips) | P50 {:.0} µs, P90 {:.0} µs, P99 {:.0} µs |",
                percentile(&lat, 0.5),
                percentile(&lat, 0.9),
                percentile(&lat, 0.99)
            ));
        }
        if part("cold") {
            let mut starts: Vec<f64> = Vec::new();
            for _ in 0..runs {
                settle().await;
                starts.push(cold_start(1024).await);
            }
            let (lo, hi) = (
                starts.iter().copied().fold(f64::MAX, f64::min),
                starts.iter().copied().fold(0.0, f64::max),
            );
            let cold = median(&mut starts);
            figures.push(format!("| cold start to PortConfigDone, 1,024 ports | {cold:.1} ms (runs {lo:.1}–{hi:.1}) |"));
        }
        if !figures.is_empty() {
            println!("| figure | value |\n|---|---|");
            for f in figures.drain(..) {
                println!("{f}");
            }
            println!();
        }
        if part("drain") {
            let mut rss_line = None;
            println!("| ports | drain (ms) | events/s | daemon CPU per event (µs) |");
            println!("|---|---|---|---|");
            let sizes: Vec<u32> = match std::env::var("PORTSYNCD_BENCH_PORTS") {
                Ok(v) => v.split(',').map(|n| n.trim().parse().expect("PORTSYNCD_BENCH_PORTS: port counts")).collect(),
                Err(_) => vec![256, 1024, 4096],
            };
            for &n in &sizes {
                settle().await;
                let (mut w, d) = setup(n).await;
                let idle_kb = status_kb(d.pid(), "VmRSS:");
                let last = format!("__keyspace@6__:PORT_TABLE|{}", port(n - 1));
                let mut watch = Watch::new(&w, &last).await;
                let (mut ms, mut cpu) = (Vec::new(), Vec::new());
                let profiler = Profiler::attach(d.pid(), n);
                for r in 0..runs * 2 {
                    let x = drain_once(&mut w, &d, &mut watch, n, r % 2 == 0).await;
                    ms.push(x.ms);
                    cpu.push(x.cpu_us_per_event);
                }
                drop(profiler);
                let m = median(&mut ms);
                println!("| {n} | {m:.2} | {:.0} | {:.2} |", f64::from(n) / m * 1e3, median(&mut cpu));
                if n == 4096 {
                    let mb = |kb: u64| kb as f64 / 1024.0;
                    rss_line = Some(format!(
                        "| RSS with 4,096 ports | idle after start-up {:.1} MB; after the drains VmRSS {:.1} MB, VmHWM {:.1} MB |",
                        mb(idle_kb),
                        mb(status_kb(d.pid(), "VmRSS:")),
                        mb(status_kb(d.pid(), "VmHWM:"))
                    ));
                }
            }
            if let Some(line) = rss_line {
                println!("\n| figure | value |\n|---|---|\n{line}");
            }
        }
    });
}

/// Wait (up to 15 s) until the machine is nearly idle: the kernel tears down a previous
/// part's namespace (thousands of netdevs) in the background, and that work would land in
/// the next measurement.
async fn settle() {
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
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let (t0, i0) = cpu();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (t1, i1) = cpu();
        if t1 > t0 && (i1 - i0) as f64 / (t1 - t0) as f64 >= 0.9 {
            return;
        }
    }
}
