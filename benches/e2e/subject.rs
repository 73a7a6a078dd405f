//! The daemon under test — ours or the C++ one — started the same way for both: in the
//! bench's namespace, against its private Redis, logging syslog datagrams to the bench's
//! socket (`LogSink`), wrapped in PORTSYNCD_BENCH_WRAP when asked. And `setup`: `n`
//! configured ifb ports, created in one `ip -batch` once the daemon is in its loop, written
//! and popped, PortInitDone seen.

use crate::common::sonic::World;
use crate::common::*;
use crate::cpp::CppDaemon;
use crate::logsink::LogSink;
use std::path::PathBuf;

#[derive(Clone, Debug)]
pub enum Kind {
    Ours,
    Cpp(PathBuf),
    /// The floor's mode-1 reader (`floor::reader`): steady latency only.
    Floor(PathBuf),
}

impl Kind {
    pub fn label(&self) -> &'static str {
        match self {
            Kind::Ours => "portsyncd",
            Kind::Cpp(_) => "C++",
            Kind::Floor(_) => "floor",
        }
    }

    /// The daemons to measure: the C++ one first when PORTSYNCD_BENCH_CPP names it, then ours.
    pub fn all() -> Vec<Kind> {
        let mut v = Vec::new();
        if let Some(p) = std::env::var_os("PORTSYNCD_BENCH_CPP").filter(|p| !p.is_empty()) {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "PORTSYNCD_BENCH_CPP={}: no such file (the C++ portsyncd binary)",
                p.display()
            );
            v.push(Kind::Cpp(std::fs::canonicalize(p).unwrap()));
        }
        v.push(Kind::Ours);
        v
    }
}

enum Proc {
    /// Our daemon, and the temp dir holding its settings file.
    Ours(Daemon, #[allow(dead_code)] TempDir),
    Cpp(CppDaemon),
    Floor(std::process::Child),
}

pub struct Subject {
    proc: Proc,
    pub log: LogSink,
}

impl Subject {
    /// Start the daemon; `wrap` puts PORTSYNCD_BENCH_WRAP (e.g. valgrind) in front of it.
    pub fn start(kind: &Kind, w: &World, wrap: bool) -> Subject {
        let log = LogSink::start(&w.ns);
        let wrap = if wrap {
            std::env::var("PORTSYNCD_BENCH_WRAP").unwrap_or_default()
        } else {
            String::new()
        };
        let prefix: Vec<&str> = wrap.split_whitespace().collect();
        let proc = match kind {
            Kind::Ours => {
                let dir = TempDir::new("settings");
                let cfg = dir.0.join("portsyncd.toml");
                std::fs::write(&cfg, settings(&log)).unwrap();
                let cfg = cfg.display().to_string();
                let args = ["--log-target", "syslog", "--config", &cfg];
                Proc::Ours(Daemon::start_as(&w.ns, &w.redis, &prefix, &args, &[]), dir)
            }
            Kind::Cpp(bin) => Proc::Cpp(CppDaemon::start(&w.ns, &w.redis, bin, &prefix, &log.path)),
            Kind::Floor(bin) => Proc::Floor(
                std::process::Command::new("ip")
                    .args(["netns", "exec", &w.ns.name])
                    .arg(bin)
                    .arg("1")
                    .arg(&w.redis.socket)
                    .spawn()
                    .expect("start the floor's reader"),
            ),
        };
        Subject { proc, log }
    }

    pub fn pid(&self) -> i32 {
        match &self.proc {
            Proc::Ours(d, _) => d.pid(),
            Proc::Cpp(d) => d.pid(),
            Proc::Floor(c) => c.id() as i32,
        }
    }

    pub fn signal(&self, sig: &str) {
        match &self.proc {
            Proc::Ours(d, _) => d.signal(sig),
            Proc::Cpp(d) => d.signal(sig),
            Proc::Floor(c) => {
                let _ = std::process::Command::new("kill")
                    .arg(format!("-{sig}"))
                    .arg(c.id().to_string())
                    .status();
            }
        }
    }

    /// Start-up is over: netdevs created from now on are new ones to both daemons.
    pub async fn wait_started(&mut self) {
        match &mut self.proc {
            Proc::Ours(d, _) => d.wait_started().await,
            Proc::Cpp(d) => d.wait_started().await,
            // Bound to the link group, then connected to Redis: its fd 4 is the Redis socket.
            Proc::Floor(c) => {
                let fd = format!("/proc/{}/fd/4", c.id());
                wait_sync(
                    || std::path::Path::new(&fd).exists(),
                    "the floor's reader to connect to Redis",
                );
            }
        }
    }
}

/// Our settings file: the bench's syslog socket, then PORTSYNCD_BENCH_CONFIG's file (unless
/// that names its own socket).
fn settings(log: &LogSink) -> String {
    let extra = std::env::var("PORTSYNCD_BENCH_CONFIG")
        .map(|p| {
            std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("PORTSYNCD_BENCH_CONFIG={p}: {e}"))
        })
        .unwrap_or_default();
    if extra.contains("syslog_socket") {
        return extra;
    }
    let sock = toml_string(&log.path.display().to_string());
    format!("syslog_socket = {sock}\n{extra}")
}

fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

pub fn port(i: u32) -> String {
    format!("Ethernet{}", i * 4)
}

/// `n` configured ifb ports, created, written and popped, daemon started.
pub async fn setup(kind: &Kind, n: u32) -> (World, Subject) {
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
    let mut d = Subject::start(kind, &w, true);
    d.wait_started().await;
    let floor = matches!(kind, Kind::Floor(_));
    if !floor {
        w.pop().await;
    }
    let lines: Vec<String> = (0..n)
        // The MTU CONFIG_DB has, so mtu_mismatch has nothing to say during the bench.
        .map(|i| format!("link add {} mtu 9100 type ifb", port(i)))
        .collect();
    w.ns.batch(&lines);
    if !floor {
        w.wait_pending("PortInitDone").await;
        w.pop().await;
    }
    (w, d)
}

impl Drop for Subject {
    fn drop(&mut self) {
        if let Proc::Floor(c) = &mut self.proc {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
