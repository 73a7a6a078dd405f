//! Issue #5: what an operator relies on — sd_notify over a real NOTIFY_SOCKET, `portsyncd
//! health` exit codes for real conditions, the journald and syslog line shapes, and one
//! daemon per ASIC namespace writing only its own ports.

mod common;

use common::sonic::{s0_fields, wait_converged, World};
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

fn write(dir: &TempDir, name: &str, text: &str) -> String {
    let p = dir.0.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// `ip netns exec <ns> portsyncd --db-config <cfg> [extra] health -v`: (exit code, stdout).
fn health(ns: &Netns, cfg: &std::path::Path, extra: &[&str]) -> (i32, String) {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            env!("CARGO_BIN_EXE_portsyncd"),
            "--db-config",
        ])
        .arg(cfg)
        .args(extra)
        .args(["health", "-v"])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

async fn wait_health(ns: &Netns, cfg: &std::path::Path, extra: &[&str], code: i32) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (rc, out) = health(ns, cfg, extra);
        if rc == code {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "health never returned {code}; last {rc}: {out}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two configured ports, both created; the daemon running with `toml`.
async fn two_ports(w: &mut World, toml: &str, dir: &TempDir) -> Daemon {
    w.seed_s0(2).await;
    let cfg = write(dir, "portsyncd.toml", toml);
    let d = Daemon::start_args(&w.ns, &w.redis, &["--config", &cfg], &[]);
    d.wait_started().await;
    w.pop().await;
    for p in ["Ethernet0", "Ethernet4"] {
        w.ns.add_port(p, 9100);
    }
    w.wait_pending("PortInitDone").await;
    w.pop().await;
    wait_converged(w, "two ports").await;
    d
}

#[tokio::test]
async fn issue5_sd_notify_ready_status_watchdog_stopping_in_order() {
    let mut w = World::new().await;
    w.seed_s0(1).await;
    let mut d = Daemon::start_args(&w.ns, &w.redis, &[], &[("WATCHDOG_USEC", "200000")]);
    d.wait_started().await;
    d.wait_note("WATCHDOG=1").await;
    d.signal("TERM");
    assert_eq!(d.child.wait().unwrap().code(), Some(0));
    d.wait_note("STOPPING=1").await;
    let notes = d.notes();
    assert!(
        notes[0].contains("READY=1") && notes[0].contains("STATUS=cold start, ports 0"),
        "{notes:?}"
    );
    let first_watchdog = notes.iter().position(|n| n.contains("WATCHDOG=1")).unwrap();
    assert!(first_watchdog > 0, "{notes:?}");
    assert!(notes.last().unwrap().contains("STOPPING=1"), "{notes:?}");
    assert!(
        notes.iter().filter(|n| n.contains("STATUS=")).count() >= 2,
        "{notes:?}"
    );
}

#[tokio::test]
async fn issue5_health_exit_codes_follow_real_conditions() {
    let mut w = World::new().await;
    let dir = TempDir::new("health");
    let mut d = two_ports(&mut w, "heartbeat_ms = 200\n", &dir).await;
    let cfg = w.redis.cfg.clone();

    // 0 OK: alive, in sync, PortInitDone sent.
    let out = wait_health(&w.ns, &cfg, &[], 0).await;
    assert!(
        out.starts_with("PORTSYNCD Ok - ") && out.contains("in sync"),
        "{out}"
    );

    // 1 WARNING: drift injected into STATE_DB.
    hset(
        &mut w.state,
        "PORT_TABLE|Ethernet0",
        &[("netdev_oper_status", "up")],
    )
    .await;
    let out = wait_health(&w.ns, &cfg, &[], 1).await;
    assert!(out.contains("drift: Ethernet0: kernel oper down"), "{out}");
    hset(
        &mut w.state,
        "PORT_TABLE|Ethernet0",
        &[("netdev_oper_status", "down")],
    )
    .await;
    wait_health(&w.ns, &cfg, &[], 0).await;

    // 2 CRITICAL: the loop is not ticking (daemon frozen), then the daemon stopped.
    d.signal("STOP");
    let out = wait_health(&w.ns, &cfg, &[], 2).await;
    assert!(out.contains("loop not ticking"), "{out}");
    d.signal("CONT");
    wait_health(&w.ns, &cfg, &[], 0).await;
    d.signal("TERM");
    d.child.wait().unwrap();
    let out = wait_health(&w.ns, &cfg, &[], 2).await;
    assert!(out.contains("stopped"), "{out}");

    // 2 CRITICAL: Redis down.
    w.redis.stop();
    let out = wait_health(&w.ns, &cfg, &[], 2).await;
    assert!(out.contains("unreachable"), "{out}");

    // 3 UNKNOWN: the check cannot read its configuration.
    let (rc, out) = health(
        &w.ns,
        std::path::Path::new("/nonexistent/database_config.json"),
        &[],
    );
    assert_eq!(rc, 3, "{out}");
    assert!(
        out.starts_with("PORTSYNCD UNKNOWN - /nonexistent/database_config.json"),
        "{out}"
    );
}

#[tokio::test]
async fn issue5_health_json_is_machine_readable() {
    let mut w = World::new().await;
    let dir = TempDir::new("hjson");
    let _d = two_ports(&mut w, "", &dir).await;
    let cfg = w.redis.cfg.clone();
    wait_health(&w.ns, &cfg, &[], 0).await;
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &w.ns.name,
            env!("CARGO_BIN_EXE_portsyncd"),
            "--db-config",
        ])
        .arg(&cfg)
        .args(["health", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "OK");
    assert!(v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "drift" && c["status"] == "OK"));
}

#[tokio::test]
async fn issue5_journald_lines_carry_priorities_and_no_timestamps() {
    let mut w = World::new().await;
    w.seed_s0(1).await;
    let d = Daemon::start_args(&w.ns, &w.redis, &["--log-target", "journald"], &[]);
    d.wait_started().await;
    w.pop().await;
    w.ns.add_port("Ethernet0", 9100);
    d.wait_log("<5>Publish Ethernet0(ok:down) to state db")
        .await;
    assert!(d
        .log_text()
        .contains("<5>Getting port configuration from ConfigDB..."));
    assert!(
        d.log_text().lines().all(|l| l.starts_with('<')),
        "{}",
        d.log_text()
    );
}

#[tokio::test]
async fn issue5_syslog_datagrams_have_the_cpp_shape() {
    let mut w = World::new().await;
    w.seed_s0(1).await;
    let dir = TempDir::new("syslog");
    let sock_path = dir.0.join("log.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let cfg = write(
        &dir,
        "portsyncd.toml",
        &format!("syslog_socket = \"{}\"\n", sock_path.display()),
    );
    let d = Daemon::start_args(
        &w.ns,
        &w.redis,
        &["--config", &cfg, "--log-target", "syslog"],
        &[],
    );
    d.wait_started().await;
    w.pop().await;
    w.ns.add_port("Ethernet0", 9100);
    // `<13>Mmm dd hh:mm:ss portsyncd[pid]: ` (RFC 3164, tests/syslog.rs checks it), then the
    // C++ text.
    let tag = format!(" portsyncd[{}]: ", d.pid());
    let text = |l: &String| {
        l.starts_with("<13>")
            .then(|| l.split_once(tag.as_str()).map(|(_, t)| t.to_string()))
            .flatten()
    };
    let want = ":- onMsg: Publish Ethernet0(ok:down) to state db";
    let deadline = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 8192];
    while !seen
        .iter()
        .any(|l: &String| text(l).as_deref() == Some(want))
    {
        assert!(Instant::now() < deadline, "no {want:?} in {seen:?}");
        if let Ok(n) = sock.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    assert!(
        seen.iter().any(|l| text(l).as_deref()
            == Some(
                ":- handlePortConfigFromConfigDB: Getting port configuration from ConfigDB..."
            )),
        "{seen:?}"
    );
}

#[tokio::test]
async fn issue5_one_instance_per_asic_namespace_writes_only_its_own_ports() {
    let mut a = World::new().await;
    let mut b = World::new().await;
    a.seed_s0(2).await; // Ethernet0, Ethernet4
    for i in 2..4 {
        let f = s0_fields(i);
        let fvs: Vec<(&str, &str)> = f.iter().map(|(x, y)| (x.as_str(), y.as_str())).collect();
        hset(&mut b.config, &format!("PORT|Ethernet{}", i * 4), &fvs).await; // Ethernet8, Ethernet12
    }
    let dir = TempDir::new("global");
    let global = write(
        &dir,
        "database_global.json",
        &format!(
            r#"{{"INCLUDES":[{{"include":"{}","namespace":"asic0"}},{{"include":"{}","namespace":"asic1"}}],"VERSION":"1.0"}}"#,
            a.redis.cfg.display(),
            b.redis.cfg.display()
        ),
    );
    let da = Daemon::start_args(
        &a.ns,
        &a.redis,
        &["--namespace", "asic0", "--db-global", &global],
        &[],
    );
    let db = Daemon::start_args(
        &b.ns,
        &b.redis,
        &["--namespace", "asic1", "--db-global", &global],
        &[],
    );
    da.wait_started().await;
    db.wait_started().await;
    a.pop().await;
    b.pop().await;
    for p in ["Ethernet0", "Ethernet4"] {
        a.ns.add_port(p, 9100);
    }
    for p in ["Ethernet8", "Ethernet12", "Ethernet0"] {
        b.ns.add_port(p, 9100); // asic1's Ethernet0 is not in asic1's CONFIG_DB
    }
    a.wait_pending("PortInitDone").await;
    b.wait_pending("PortInitDone").await;
    db.wait_log("Cannot find Ethernet0 in port table").await;
    assert_eq!(
        a.state_ports().await,
        ["PORT_TABLE|Ethernet0", "PORT_TABLE|Ethernet4"]
    );
    assert_eq!(
        b.state_ports().await,
        ["PORT_TABLE|Ethernet12", "PORT_TABLE|Ethernet8"]
    );
}
