//! A private redis-server on a unix socket (SONiC's keyspace-notification setting), and a
//! MONITOR capture of everything it runs.
#![allow(dead_code)]

use super::*;
use portsyncd::dbconfig::{DbConfig, DbLocation};
use portsyncd::lab::database_config_json;
use std::process::{Child, Command, Stdio};

/// A private redis-server on a unix socket, killed on drop.
pub struct Redis {
    pub dir: TempDir,
    pub socket: PathBuf,
    pub cfg: PathBuf,
    child: Child,
}

impl Redis {
    pub fn start() -> Redis {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Redis {
        let dir = TempDir::new("redis");
        let socket = dir.0.join("redis.sock");
        let cfg = dir.0.join("database_config.json");
        std::fs::write(&cfg, database_config_json(&socket)).unwrap();
        let child = Self::spawn(&dir.0, &socket, extra);
        let r = Redis {
            dir,
            socket,
            cfg,
            child,
        };
        r.wait_up();
        r
    }

    fn spawn(dir: &Path, socket: &Path, extra: &[&str]) -> Child {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", "0", "--unixsocket"])
            .arg(socket)
            .args([
                "--unixsocketperm",
                "700",
                "--notify-keyspace-events",
                "AKE",
                "--dir",
            ])
            .arg(dir);
        if extra.is_empty() {
            cmd.args(["--save", "", "--appendonly", "no"]);
        }
        cmd.args(extra).stdout(Stdio::null());
        cmd.spawn().unwrap_or_else(|e| {
            panic!("these tests need redis-server on PATH (apt-get install redis-server): {e}")
        })
    }

    fn wait_up(&self) {
        let deadline = Instant::now() + DEADLINE;
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not open {}",
                self.socket.display()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kill -9 (the socket path stays reserved for `restart`).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }

    /// Kill -9 and start again with the same directory and arguments.
    pub fn restart(&mut self, extra: &[&str]) {
        self.stop();
        self.child = Self::spawn(&self.dir.0, &self.socket, extra);
        self.wait_up();
    }

    pub fn db(&self, name: &str) -> DbLocation {
        DbConfig::load(&self.cfg).unwrap().get(name).unwrap()
    }

    pub async fn con(&self, name: &str) -> (ConnectionManager, DbLocation) {
        let db = self.db(name);
        let con = portsyncd::store::connect(&db, Duration::from_secs(5))
            .await
            .expect("connect to test redis");
        (con, db)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `redis-cli MONITOR`, captured to a file.
pub struct Monitor {
    file: PathBuf,
    child: Child,
    _dir: TempDir,
}

/// STATE_DB's number in the rig's database_config.json.
pub const STATE_DB: u32 = 6;

/// One MONITOR line: the DB, whether it ran inside a script, and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub db: u32,
    pub lua: bool,
    pub args: Vec<String>,
}

impl Monitor {
    pub fn start(redis: &Redis) -> Monitor {
        let dir = TempDir::new("mon");
        let file = dir.0.join("monitor.log");
        let out = std::fs::File::create(&file).unwrap();
        let child = Command::new("redis-cli")
            .arg("-s")
            .arg(&redis.socket)
            .arg("monitor")
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("these tests need redis-cli (apt-get install redis-tools): {e}")
            });
        let m = Monitor {
            file,
            child,
            _dir: dir,
        };
        wait_sync(
            || {
                std::fs::read_to_string(&m.file)
                    .map(|s| s.starts_with("OK"))
                    .unwrap_or(false)
            },
            "MONITOR to start",
        );
        m
    }

    pub fn commands(&self) -> Vec<Cmd> {
        let text = std::fs::read_to_string(&self.file).unwrap_or_default();
        text.lines().filter_map(parse_monitor_line).collect()
    }

    /// Commands named `name` sent by a client, or run on STATE_DB by a script: the daemon's
    /// STATE_DB writes, which its flush runs inside one script call when APPL_DB and STATE_DB
    /// share an instance (the ProducerStateTable scripts' commands, on APPL_DB, stay out).
    pub fn named(&self, name: &str) -> Vec<Cmd> {
        self.commands()
            .into_iter()
            .filter(|c| (!c.lua || c.db == STATE_DB) && c.args[0].eq_ignore_ascii_case(name))
            .collect()
    }

    /// Like `named`, only commands a client sent itself (none from a script).
    pub fn sent(&self, name: &str) -> Vec<Cmd> {
        self.named(name).into_iter().filter(|c| !c.lua).collect()
    }

    pub fn publishes(&self) -> usize {
        self.commands()
            .iter()
            .filter(|c| {
                c.args[0] == "PUBLISH"
                    && c.args.get(1).map(String::as_str) == Some("PORT_TABLE_CHANNEL@0")
            })
            .count()
    }

    /// Every STATE_DB `PORT_TABLE|*` HSET is the one 4-field command in the C++ field order.
    pub fn assert_state_hsets_are_cpp_shaped(&self) {
        for c in self.named("HSET") {
            if c.db == 6 && c.args[1].starts_with("PORT_TABLE|") {
                assert_eq!(c.args.len(), 10, "{c:?}");
                assert_eq!(
                    [&c.args[2], &c.args[3], &c.args[4], &c.args[6], &c.args[8]],
                    ["state", "ok", "netdev_oper_status", "admin_status", "mtu"],
                    "{c:?}"
                );
            }
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_monitor_line(line: &str) -> Option<Cmd> {
    let open = line.find('[')?;
    let close = line[open..].find(']')? + open;
    let inside = &line[open + 1..close];
    let mut parts = inside.splitn(2, ' ');
    let db: u32 = parts.next()?.parse().ok()?;
    let lua = parts.next() == Some("lua");
    let mut args = Vec::new();
    let mut chars = line[close + 1..].chars().peekable();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut s = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        s.push(n);
                    }
                }
                '"' => break,
                c => s.push(c),
            }
        }
        args.push(s);
    }
    (!args.is_empty()).then_some(Cmd { db, lua, args })
}
