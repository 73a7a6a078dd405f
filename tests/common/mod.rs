//! Test rig: a private network namespace, a private redis-server on a unix socket (with
//! SONiC's keyspace-notification setting), the real portsyncd binary inside the namespace, a
//! MONITOR capture, and waits with deadlines. Everything is torn down in `Drop`, so a failing
//! test leaves nothing behind. A missing prerequisite fails the test with a clear message.
#![allow(dead_code)]

use portsyncd::dbconfig::{DbConfig, DbLocation};
use portsyncd::lab::database_config_json;
use redis::aio::ConnectionManager;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub mod sonic;

pub const DEADLINE: Duration = Duration::from_secs(15);
static SEQ: AtomicU32 = AtomicU32::new(0);

fn unique(tag: &str) -> String {
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

/// A private network namespace with IPv6 off.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new() -> Netns {
        let name = unique("ns");
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .stderr(Stdio::piped())
            .output();
        match st {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "these tests need root (or CAP_SYS_ADMIN) to create network namespaces: `ip netns add` said: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => panic!("these tests need iproute2 (`ip`): {e}"),
        }
        let ns = Netns { name };
        run(&[
            "ip",
            "netns",
            "exec",
            &ns.name,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
        ]);
        run(&[
            "ip",
            "netns",
            "exec",
            &ns.name,
            "sysctl",
            "-qw",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n <ns> <args>`
    pub fn ip(&self, args: &[&str]) {
        let mut a = vec!["ip", "-n", &self.name];
        a.extend_from_slice(args);
        run(&a);
    }

    /// `ip -n <ns> -batch` with one command per line.
    pub fn batch(&self, lines: &[String]) {
        let dir = TempDir::new("batch");
        let f = dir.0.join("b");
        std::fs::write(&f, lines.join("\n") + "\n").unwrap();
        run(&["ip", "-n", &self.name, "-batch", f.to_str().unwrap()]);
    }

    /// `EthernetN` as a veth whose peer `peerN` (ignored by portsyncd) drives its carrier.
    pub fn add_port(&self, name: &str, mtu: u32) {
        let peer = name.replace("Ethernet", "peer");
        self.ip(&[
            "link",
            "add",
            name,
            "mtu",
            &mtu.to_string(),
            "type",
            "veth",
            "peer",
            "name",
            &peer,
            "mtu",
            &mtu.to_string(),
        ]);
    }

    /// The kernel's view: name → (oper up per IFF_RUNNING, admin up, mtu) for `Ethernet*`.
    pub fn kernel_ports(&self) -> BTreeMap<String, (bool, bool, u32)> {
        let out = Command::new("ip")
            .args(["-n", &self.name, "-j", "link"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut m = BTreeMap::new();
        for l in v.as_array().unwrap() {
            let name = l["ifname"].as_str().unwrap().to_string();
            if !name.starts_with("Ethernet") {
                continue;
            }
            let flags: Vec<&str> = l["flags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap())
                .collect();
            let admin = flags.contains(&"UP");
            // IFF_RUNNING is not printed by `ip`; it is set when up and operstate is UP/UNKNOWN.
            let op = l["operstate"].as_str().unwrap_or("");
            let oper = admin && (op == "UP" || op == "UNKNOWN");
            m.insert(name, (oper, admin, l["mtu"].as_u64().unwrap() as u32));
        }
        m
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

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

    /// Commands sent by a client (not inside scripts) whose name is `name`.
    pub fn named(&self, name: &str) -> Vec<Cmd> {
        self.commands()
            .into_iter()
            .filter(|c| !c.lua && c.args[0].eq_ignore_ascii_case(name))
            .collect()
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

/// The real binary, run inside a namespace; killed on drop. It gets a `NOTIFY_SOCKET` that
/// the rig reads, like systemd would.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
    notes: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _dir: TempDir,
}

impl Daemon {
    pub fn start(ns: &Netns, redis: &Redis) -> Daemon {
        Self::start_args(ns, redis, &[], &[])
    }

    pub fn start_args(ns: &Netns, redis: &Redis, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        Self::start_as(ns, redis, &[], args, env)
    }

    /// Like `start_args`, with `prefix` (e.g. a `setpriv …` command line) between
    /// `ip netns exec` and the binary. The daemon's working directory is its own temp dir.
    pub fn start_as(
        ns: &Netns,
        redis: &Redis,
        prefix: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        let dir = TempDir::new("daemon");
        let log = dir.0.join("portsyncd.log");
        let notify_path = dir.0.join("notify.sock");
        let sock =
            std::os::unix::net::UnixDatagram::bind(&notify_path).expect("bind notify socket");
        // Writable for a daemon that dropped root (the least-privilege test).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&notify_path, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
        let notes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = notes.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                sink.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        });
        let log_target: &[&str] = if args.contains(&"--log-target") {
            &[]
        } else {
            &["--log-target", "stderr"]
        };
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .args(prefix)
            .args([env!("CARGO_BIN_EXE_portsyncd"), "--db-config"])
            .arg(&redis.cfg)
            .args(log_target)
            .args(args)
            .current_dir(&dir.0)
            .env("NOTIFY_SOCKET", &notify_path)
            .envs(env.iter().copied())
            .stderr(std::fs::File::create(&log).unwrap())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn portsyncd");
        Daemon {
            child,
            log,
            notes,
            _dir: dir,
        }
    }

    /// The daemon's working directory.
    pub fn dir(&self) -> &Path {
        &self._dir.0
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn wait_log(&self, needle: &str) {
        wait(
            || async { self.log_text().contains(needle) },
            &format!("log line {needle:?}\n--- log ---\n{}", self.log_text()),
        )
        .await;
    }

    /// Start-up is over (`READY=1`): stale netdevs were enumerated, so netdevs created from
    /// now on are new ones (orchagent waits for this in SONiC too, sonic-buildimage#4821).
    pub async fn wait_started(&self) {
        self.wait_note("READY=1").await;
    }

    /// sd_notify datagrams received so far.
    pub fn notes(&self) -> Vec<String> {
        self.notes.lock().unwrap().clone()
    }

    pub async fn wait_note(&self, needle: &str) {
        wait(
            || async { self.notes().iter().any(|n| n.contains(needle)) },
            &format!(
                "sd_notify {needle:?}; got {:?}\n--- log ---\n{}",
                self.notes(),
                self.log_text()
            ),
        )
        .await;
    }

    pub fn count_log(&self, needle: &str) -> usize {
        self.log_text().matches(needle).count()
    }

    pub fn signal(&self, sig: &str) {
        run(&["kill", &format!("-{sig}"), &self.pid().to_string()]);
    }

    pub fn assert_running(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "portsyncd exited\n{}",
            self.log_text()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- portsyncd log (last 40 lines) ---");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
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
