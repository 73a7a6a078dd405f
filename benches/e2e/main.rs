//! End-to-end benchmark (issues #4, #15): the real daemon (release build) — and, with
//! PORTSYNCD_BENCH_CPP=/path/to/portsyncd, the C++ one back to back in the same sitting — in
//! a private namespace against a private redis-server, ifb ports, IPv6 off, both logging
//! syslog datagrams to a socket the bench drains (`logsink.rs`). Reports, as medians with
//! the spread (min–max) of the runs:
//! * burst drain per size, down and up separately: SIGSTOP the daemon, flip every port,
//!   SIGCONT, time to the keyspace notification of the last port's STATE_DB write (then
//!   every port is checked); daemon CPU per event (schedstat) and log lines per event;
//! * cold start to `PortConfigDone` per size, and VmRSS/VmHWM after the drains;
//! * steady single-flip latency P50/P90/P99/P99.9 (2,000 flips per daemon, interleaved
//!   flip by flip) from the netlink call's return to the STATE_DB keyspace notification;
//! * optionally the floor (PORTSYNCD_BENCH_FLOOR=1) after the 1,024-port drains.
//!
//! Run as root: `cargo bench --bench e2e` (`cargo test --benches` makes one small smoke run
//! instead: 1 run, 16 ports, 100 flips). Knobs: PORTSYNCD_BENCH_RUNS (default 5),
//! PORTSYNCD_BENCH_ONLY (`drain,cold,steady`), PORTSYNCD_BENCH_PORTS (sizes, default
//! 256,1024,4096), PORTSYNCD_BENCH_LOGLEVEL (seeds CONFIG_DB LOGGER|portsyncd, which both
//! daemons read), PORTSYNCD_BENCH_CONFIG (our settings file), PORTSYNCD_BENCH_WRAP and
//! PORTSYNCD_BENCH_PROFILE/_STOP/_PORTS (`profiler.rs`; with PORTSYNCD_BENCH_CPP they apply
//! to both daemons, so e.g. callgrind counts the C++ one's instructions too),
//! PORTSYNCD_BENCH_CPP (and PORTSYNCD_BENCH_CPP_LUA, `cpp.rs`), PORTSYNCD_BENCH_FLOOR.

#[path = "../../tests/common/mod.rs"]
mod common;
mod cpp;
mod floor;
mod logsink;
mod measure;
mod profiler;
mod report;
mod stats;
mod subject;

use measure::{cold_start, drain_once, settle, status_kb, steady, Watch};
use report::{Results, Sized};
use subject::{port, setup, Kind};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number")),
        Err(_) => default,
    }
}

/// The drains of one daemon at one size: `runs` up and `runs` down, alternating.
async fn drains(kind: &Kind, n: u32, runs: usize, s: &mut Sized) {
    let (mut w, d) = setup(kind, n).await;
    s.idle_kb = status_kb(d.pid(), "VmRSS:");
    let last = format!("__keyspace@6__:PORT_TABLE|{}", port(n - 1));
    let mut watch = Watch::new(&w, "STATE_DB", &last).await;
    // The set-up's lines (two per created port) may still be on their way: wait until none
    // has come for 100 ms, so the drains count only their own.
    let mut lines0 = d.log.lines();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if d.log.lines() == lines0 {
            break;
        }
        lines0 = d.log.lines();
    }
    let dropped0 = d.log.dropped();
    let profiler = profiler::Profiler::attach(d.pid(), n);
    for r in 0..runs * 2 {
        // The ports start down: the first drain brings them up.
        let up = r % 2 == 0;
        let x = drain_once(&mut w, &d, &mut watch, n, up).await;
        if x.lost > 0 {
            // Its time and CPU are not a drain of n events: counted as lost instead.
            s.lost += x.lost;
            continue;
        }
        s.ms[usize::from(up)].push(x.ms);
        s.cpu[usize::from(up)].push(x.cpu_us_per_event);
    }
    drop(profiler);
    s.rss_kb = status_kb(d.pid(), "VmRSS:");
    s.hwm_kb = status_kb(d.pid(), "VmHWM:");
    // Over all the drains: a line sent a turn late lands in the next drain's count.
    s.log_lines = d.log.lines() - lines0;
    s.events = u64::from(n) * 2 * runs as u64;
    s.n_ports = u64::from(n);
    s.dropped = d.log.dropped() - dropped0;
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` / `cargo test --benches` probing
    }
    // `cargo bench` passes --bench; `cargo test --benches` does not: then one small smoke run
    // (every part, once, 16 ports, 100 flips) checks the bench works, in seconds.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let runs: usize = if smoke {
        1
    } else {
        env_or("PORTSYNCD_BENCH_RUNS", 5)
    };
    let only = std::env::var("PORTSYNCD_BENCH_ONLY").unwrap_or_else(|_| "drain,cold,steady".into());
    let part = |name: &str| only.split(',').any(|p| p.trim() == name);
    let sizes: Vec<u32> = match std::env::var("PORTSYNCD_BENCH_PORTS") {
        _ if smoke => vec![16],
        Ok(v) => v
            .split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .expect("PORTSYNCD_BENCH_PORTS: port counts")
            })
            .collect(),
        Err(_) => vec![256, 1024, 4096],
    };
    assert!(
        sizes.iter().all(|&n| n > 0),
        "PORTSYNCD_BENCH_PORTS: sizes above 0"
    );
    let kinds = Kind::all();
    let want_floor = floor::wanted();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let who: Vec<&str> = kinds.iter().map(|k| k.label()).collect();
        println!(
            "# portsyncd end-to-end benchmark: {} ({runs} runs per figure; median (min–max)){}\n",
            who.join(" and "),
            if smoke {
                " — smoke run (no --bench: cargo test)"
            } else {
                ""
            }
        );
        let mut res = Results {
            sizes: sizes.clone(),
            at: sizes
                .iter()
                .map(|_| kinds.iter().map(|_| Sized::default()).collect())
                .collect(),
            steady: kinds.iter().map(|_| Vec::new()).collect(),
            kinds: kinds.clone(),
            floor: None,
            steady_floor: Vec::new(),
        };
        if part("steady") {
            settle().await;
            // With the floor: its reader too, flip by flip with the daemons.
            let dir = common::TempDir::new("floor-reader");
            let mut with = kinds.clone();
            if want_floor {
                with.push(Kind::Floor(floor::reader(&dir.0)));
            }
            res.steady = steady(&with, if smoke { 100 } else { 2000 }).await;
            if want_floor {
                res.steady_floor = res.steady.pop().unwrap_or_default();
            }
        }
        for (i, &n) in sizes.iter().enumerate() {
            if part("cold") {
                // Interleaved run by run, so a change in the machine's load hits both.
                for _ in 0..runs {
                    for (k, kind) in kinds.iter().enumerate() {
                        settle().await;
                        let ms = cold_start(kind, n).await;
                        res.at[i][k].cold.push(ms);
                    }
                }
            }
            if part("drain") {
                for (k, kind) in kinds.iter().enumerate() {
                    settle().await;
                    drains(kind, n, runs, &mut res.at[i][k]).await;
                }
                if want_floor && n == 1024 {
                    settle().await;
                    res.floor = Some(floor::run(n, 3));
                }
            }
        }
        res.print_scale();
        let reference = if sizes.contains(&1024) {
            1024
        } else {
            sizes[0]
        };
        res.print_figures(reference);
        res.print_floor(1024);
    });
}
