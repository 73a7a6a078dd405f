//! `portsyncd lab`: the self-contained demo. It creates a network namespace with N `Ethernet*`
//! veth ports (peers named `peer*`, which portsyncd ignores), a private redis-server on a unix
//! socket seeded with a CONFIG_DB `PORT` table, an orchagent stand-in that pops `PORT_TABLE`,
//! and the daemon itself inside the namespace; then shows STATE_DB live. Ctrl-C tears it all
//! down. Lab tooling may run `ip`; the daemon never does.

use crate::dbconfig::{DbConfig, DbLocation};
use crate::error::{Error, Result};
use crate::store;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `database_config.json` with the standard ids, all on one unix socket.
pub fn database_config_json(socket: &Path) -> String {
    let dbs = [
        ("APPL_DB", 0, ":"),
        ("ASIC_DB", 1, ":"),
        ("COUNTERS_DB", 2, ":"),
        ("LOGLEVEL_DB", 3, ":"),
        ("CONFIG_DB", 4, "|"),
        ("FLEX_COUNTER_DB", 5, ":"),
        ("STATE_DB", 6, "|"),
    ];
    let body: Vec<String> = dbs
        .iter()
        .map(|(n, id, sep)| {
            format!("\"{n}\":{{\"id\":{id},\"separator\":\"{sep}\",\"instance\":\"redis\"}}")
        })
        .collect();
    format!(
        "{{\"INSTANCES\":{{\"redis\":{{\"hostname\":\"127.0.0.1\",\"port\":0,\"unix_socket_path\":{}}}}},\"DATABASES\":{{{}}},\"VERSION\":\"1.0\"}}\n",
        serde_json::Value::String(socket.display().to_string()),
        body.join(",")
    )
}

fn sh(args: &[&str]) -> Result<()> {
    let st = Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .status();
    match st {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(Error::io(
            args.join(" "),
            std::io::Error::other(format!("exited with {s} (are you root?)")),
        )),
        Err(e) => Err(Error::io(format!("running {}", args[0]), e)),
    }
}

/// Everything the lab started; dropping it tears everything down.
struct Lab {
    ns: String,
    dir: PathBuf,
    children: Vec<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn run(ports: u32, seconds: Option<u64>) -> Result<()> {
    let exe = std::env::current_exe().map_err(|e| Error::io("locating the portsyncd binary", e))?;
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("portsyncd-lab-{pid}"));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let mut lab = Lab {
        ns: format!("portsyncd-lab-{pid}"),
        dir: dir.clone(),
        children: Vec::new(),
    };
    let sock = dir.join("redis.sock");
    let cfg = dir.join("database_config.json");
    std::fs::write(&cfg, database_config_json(&sock))
        .map_err(|e| Error::io("writing database_config.json", e))?;

    let redis = Command::new("redis-server")
        .args(["--port", "0", "--unixsocket"])
        .arg(&sock)
        .args([
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--notify-keyspace-events",
            "AKE",
            "--dir",
        ])
        .arg(&dir)
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| Error::io("starting redis-server (apt-get install redis-server)", e))?;
    lab.children.push(redis);

    sh(&["ip", "netns", "add", &lab.ns])?;
    sh(&[
        "ip",
        "netns",
        "exec",
        &lab.ns,
        "sysctl",
        "-qw",
        "net.ipv6.conf.all.disable_ipv6=1",
    ])?;
    sh(&["ip", "-n", &lab.ns, "link", "set", "lo", "up"])?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("runtime", e))?;
    let config_db = DbConfig::load(&cfg)?.get("CONFIG_DB")?;
    let state_db = DbConfig::load(&cfg)?.get("STATE_DB")?;
    rt.block_on(seed(&config_db, ports))?;

    let log =
        std::fs::File::create(dir.join("portsyncd.log")).map_err(|e| Error::io("log file", e))?;
    lab.children.push(
        Command::new(&exe)
            .args(["--db-config"])
            .arg(&cfg)
            .arg("consume")
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::io("starting the consumer", e))?,
    );
    // The daemon tells us it is ready like it tells systemd: READY=1 on a NOTIFY_SOCKET.
    let notify_path = dir.join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path)
        .map_err(|e| Error::io("binding the notify socket", e))?;
    notify
        .set_read_timeout(Some(Duration::from_secs(15)))
        .map_err(|e| Error::io("notify socket", e))?;
    lab.children.push(
        Command::new("ip")
            .args(["netns", "exec", &lab.ns])
            .arg(&exe)
            .args(["--log-target", "stderr", "--db-config"])
            .arg(&cfg)
            .env("NOTIFY_SOCKET", &notify_path)
            .stderr(log)
            .spawn()
            .map_err(|e| Error::io("starting portsyncd", e))?,
    );
    let mut buf = [0u8; 1024];
    loop {
        let n = notify
            .recv(&mut buf)
            .map_err(|e| Error::io("waiting for portsyncd to be ready (see portsyncd.log)", e))?;
        if String::from_utf8_lossy(&buf[..n]).contains("READY=1") {
            break;
        }
    }
    // orchagent creates the host interfaces after portsyncd is running.
    let mut batch = String::new();
    for i in 0..ports {
        let n = i * 4;
        batch.push_str(&format!("link add Ethernet{n} type veth peer name peer{n}\nlink set peer{n} up\nlink set Ethernet{n} up\n"));
    }
    let file = dir.join("links.batch");
    std::fs::write(&file, batch).map_err(|e| Error::io("writing link batch", e))?;
    sh(&["ip", "-n", &lab.ns, "-batch", &file.display().to_string()])?;

    let end = seconds.map(|s| Instant::now() + Duration::from_secs(s));
    rt.block_on(show(&lab.ns, &dir, &state_db, end))
}

async fn seed(db: &DbLocation, ports: u32) -> Result<()> {
    let mut con = wait_redis(db).await?;
    for i in 0..ports {
        let n = i * 4;
        let lanes = format!("{},{},{},{}", n, n + 1, n + 2, n + 3);
        let _: i64 = redis::cmd("HSET")
            .arg(db.key("PORT", &format!("Ethernet{n}")))
            .arg(&[
                "lanes",
                &lanes,
                "alias",
                &format!("etp{}", i + 1),
                "speed",
                "100000",
                "admin_status",
                "up",
                "mtu",
                "9100",
                "index",
                &i.to_string(),
            ])
            .query_async(&mut con)
            .await
            .map_err(|e| Error::redis("seeding CONFIG_DB", e))?;
    }
    Ok(())
}

async fn wait_redis(db: &DbLocation) -> Result<redis::aio::ConnectionManager> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store::connect(db, Duration::from_secs(1)).await {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() > deadline => {
                return Err(Error::redis("connecting to the lab redis", e))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn show(ns: &str, dir: &Path, db: &DbLocation, end: Option<Instant>) -> Result<()> {
    let mut con = wait_redis(db).await?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| Error::io("SIGINT", e))?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::io("SIGTERM", e))?;
    loop {
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(db.key("PORT_TABLE", "*"))
            .query_async(&mut con)
            .await
            .unwrap_or_default();
        keys.sort_by_key(|k| {
            k.trim_start_matches("PORT_TABLE|Ethernet")
                .parse::<u32>()
                .unwrap_or(u32::MAX)
        });
        let mut out =
            String::from("\x1b[2J\x1b[Hportsyncd lab — STATE_DB PORT_TABLE (Ctrl-C to quit)\n\n");
        out.push_str(&format!(
            "{:<14} {:<6} {:<10} {:<8} {}\n",
            "port", "state", "oper", "admin", "mtu"
        ));
        for k in &keys {
            let h: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
                .arg(k)
                .query_async(&mut con)
                .await
                .unwrap_or_default();
            let g = |f: &str| h.get(f).cloned().unwrap_or_else(|| "-".into());
            out.push_str(&format!(
                "{:<14} {:<6} {:<10} {:<8} {}\n",
                k.strip_prefix("PORT_TABLE|").unwrap_or(k),
                g("state"),
                g("netdev_oper_status"),
                g("admin_status"),
                g("mtu")
            ));
        }
        out.push_str(&format!(
            "\nTry, in another terminal:\n  ip netns exec {ns} ip link set Ethernet0 down     # admin down\n  ip netns exec {ns} ip link set peer4 down         # Ethernet4 loses carrier (oper down)\n  ip netns exec {ns} ip link set Ethernet8 mtu 9100\n  ip netns exec {ns} ip link del Ethernet12         # row deleted\n  tail -f {}/portsyncd.log\n",
            dir.display()
        ));
        print!("{out}");
        let _ = std::io::stdout().flush();
        if end.is_some_and(|e| Instant::now() >= e) {
            return Ok(());
        }
        tokio::select! {
            _ = int.recv() => return Ok(()),
            _ = term.recv() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}
