//! Issue #7: hostile and broken input against the real binary — netdev names with shell
//! metacharacters, non-UTF-8 bytes and maximum length; CONFIG_DB ports with binary, huge and
//! thousands of fields; broken database_config.json and sockets; the daemon as a non-root
//! user with only CAP_NET_ADMIN; and memory/pending-write bounds under a 100,000-change burst
//! with a slow Redis.

mod common;

use common::sonic::{s0_fields, wait_converged, World};
use common::*;
use std::process::Command;

/// `Ethernet$(id>x)` is a valid 15-character netdev name; the C++ daemon hands it to `sh`.
#[tokio::test]
async fn issue7_shell_metacharacters_in_a_netdev_name_reach_no_shell() {
    let mut w = World::new().await;
    let evil = "Ethernet$(id>x)";
    assert_eq!(evil.len(), 15);
    let f: Vec<(String, String)> = s0_fields(0);
    let fvs: Vec<(&str, &str)> = f.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    hset(&mut w.config, &format!("PORT|{evil}"), &fvs).await;
    hset(
        &mut w.config,
        "LOGGER|portsyncd",
        &[("LOGLEVEL", "INFO"), ("LOGOUTPUT", "SYSLOG")],
    )
    .await;
    // A stale netdev with that name: cold start brings it down (RTM_SETLINK, no shell).
    w.ns.ip(&["link", "add", evil, "type", "ifb"]);
    w.ns.ip(&["link", "set", evil, "up"]);
    let d = w.daemon();
    d.wait_started().await;
    d.wait_log(&format!("Bring down old interface {evil}("))
        .await;
    wait_sync(
        || !w.ns.kernel_ports()[evil].1,
        "the stale netdev admin down",
    );
    assert!(!d.dir().join("x").exists(), "a shell ran the name");
    // Replaced by a fresh netdev of the same name, it is a normal port.
    w.pop().await;
    w.ns.ip(&["link", "del", evil]);
    w.ns.ip(&["link", "add", evil, "type", "ifb"]);
    w.wait_row(evil, sdb("down", "down", 1500)).await;
    w.wait_pending("PortInitDone").await;
    assert!(!d.dir().join("x").exists());
}

#[tokio::test]
async fn issue7_non_utf8_and_maximum_length_names() {
    let mut w = World::new().await;
    let long = "Ethernet1234567"; // IFNAMSIZ - 1
    let f: Vec<(String, String)> = s0_fields(0);
    let fvs: Vec<(&str, &str)> = f.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    hset(&mut w.config, &format!("PORT|{long}"), &fvs).await;
    let mut d = w.daemon();
    d.wait_started().await;
    w.pop().await;
    w.ns.add_ifb_bytes(b"Ethernet\xff\xfe");
    d.wait_log(r#"skipping undecodable link message for ifindex"#)
        .await;
    d.wait_log(r#"name is not UTF-8: "Ethernet\xff\xfe""#).await;
    w.ns.ip(&["link", "add", long, "type", "ifb"]);
    w.wait_row(long, sdb("down", "down", 1500)).await;
    w.wait_pending("PortInitDone").await;
    d.assert_running();
}

#[tokio::test]
async fn issue7_config_db_binary_huge_and_thousands_of_fields_are_copied_verbatim() {
    let mut w = World::new().await;
    let binary: Vec<u8> = (0u8..=255).collect();
    let huge = vec![b'z'; 1 << 20];
    let mut cmd = redis::cmd("HSET");
    cmd.arg("PORT|Ethernet0")
        .arg("alias")
        .arg(&binary[..])
        .arg("description")
        .arg(&huge[..]);
    for i in 0..5000 {
        cmd.arg(format!("f{i}")).arg(i);
    }
    let _: i64 = q(&mut w.config, &cmd).await;
    let d = w.daemon();
    d.wait_started().await;
    w.wait_pending("PortConfigDone").await;
    let got: Vec<(Vec<u8>, Vec<u8>)> = q(
        &mut w.appl,
        redis::cmd("HGETALL").arg("_PORT_TABLE:Ethernet0"),
    )
    .await;
    assert_eq!(got.len(), 5002);
    assert!(got.iter().any(|(f, v)| f == b"alias" && *v == binary));
    assert!(got
        .iter()
        .any(|(f, v)| f == b"description" && v.len() == 1 << 20));
    assert_eq!(
        hmap(&mut w.appl, "_PORT_TABLE:PortConfigDone").await["count"],
        "1"
    );
    drop(d);
}

/// A bad file or socket: a one-line error naming the file, the field and what was expected,
/// and exit code 78 (EX_CONFIG).
#[test]
fn issue7_broken_database_config_exits_78_with_one_line() {
    let dir = TempDir::new("badcfg");
    let file = dir.0.join("database_config.json");
    let not_a_socket = dir.0.join("redis.sock");
    std::fs::write(&not_a_socket, "plain file").unwrap();
    let good = portsyncd::lab::database_config_json(&not_a_socket);
    let cases: Vec<(String, &str)> = vec![
        ("{".into(), "(file): valid JSON"),
        (
            good.replace("\"STATE_DB\"", "\"STATE_DBX\""),
            "DATABASES.STATE_DB: an entry for this database",
        ),
        (
            good.replace("\"separator\":\"|\"", "\"separator\":\"/\""),
            "separator: \":\" or \"|\"",
        ),
        (
            good.replace("\"unix_socket_path\"", "\"socket\""),
            "DATABASES.APPL_DB.instance: an instance with a unix_socket_path",
        ),
        (
            good.clone(),
            "DATABASES.APPL_DB.instance: an instance whose unix_socket_path is a unix socket",
        ),
    ];
    for (text, want) in cases {
        std::fs::write(&file, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_portsyncd"))
            .arg("--db-config")
            .arg(&file)
            .args(["--log-target", "stderr"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{err}");
        assert!(
            err.contains(&file.display().to_string()) && err.contains(want),
            "want {want:?} in {err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
}

/// The daemon as `nobody` with only CAP_NET_ADMIN (ambient) still does the core job,
/// including the cold-start bring-down of a stale netdev.
#[tokio::test]
async fn issue7_least_privilege_nobody_with_cap_net_admin_passes_the_core_scenario() {
    let open = [
        "--save",
        "",
        "--appendonly",
        "no",
        "--unixsocketperm",
        "777",
    ];
    let mut w = World::with_redis(Redis::start_with(&open)).await;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&w.redis.dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    w.seed_s0(2).await;
    w.ns.ip(&["link", "add", "Ethernet99", "type", "ifb"]);
    w.ns.ip(&["link", "set", "Ethernet99", "up"]);
    let setpriv = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all,+net_admin",
        "--ambient-caps=-all,+net_admin",
        "--bounding-set=-all,+net_admin",
        "--",
    ];
    let mut d = Daemon::start_as(&w.ns, &w.redis, &setpriv, &[], &[]);
    d.wait_started().await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.contains("65534")),
        "{status}"
    );
    assert!(
        status.lines().any(|l| l == "CapEff:\t0000000000001000"),
        "{status}"
    );
    wait_sync(
        || !w.ns.kernel_ports()["Ethernet99"].1,
        "stale netdev brought down by the unprivileged daemon",
    );
    w.pop().await;
    for p in ["Ethernet0", "Ethernet4"] {
        w.ns.add_port(p, 9100);
        w.wait_row(p, sdb("down", "down", 9100)).await;
    }
    w.wait_pending("PortInitDone").await;
    w.ns.ip(&["link", "set", "Ethernet0", "up"]);
    w.ns.ip(&["link", "set", "peer0", "up"]);
    w.wait_row("Ethernet0", sdb("up", "up", 9100)).await;
    w.ns.ip(&["link", "del", "Ethernet4"]);
    w.wait_gone("Ethernet4").await;
    d.assert_running();
}

/// The daemon's NETLINK_ROUTE sockets subscribed to link events have nothing queued and no
/// dump running (`/proc/<pid>/net/netlink`: Eth 0, Groups with RTMGRP_LINK, Rmem, Dump).
fn link_socket_drained(pid: i32) -> bool {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/netlink")).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| {
            f.len() >= 7 && f[1] == "0" && u32::from_str_radix(f[3], 16).is_ok_and(|g| g & 1 == 1)
        })
        .collect();
    assert!(!rows.is_empty(), "no link-event socket in:\n{text}");
    rows.iter().all(|f| f[4] == "0" && f[6] == "0")
}

fn vm_kb(pid: i32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// 4,096 ports, 100,000 link changes, Redis frozen meanwhile: the pending map never holds more
/// than one entry per port, memory stays under a fixed bound, and everything lands afterwards.
#[tokio::test]
async fn issue7_bounded_memory_and_pending_writes_under_a_burst_with_redis_frozen() {
    const PORTS: u32 = 4096;
    let mut w = World::bare(Redis::start()).await;
    w.seed_ports(0..PORTS).await;
    let d = w.daemon_with_metrics();
    d.wait_started().await;
    w.pop().await;
    w.ns.add_ifb_ports(PORTS);
    w.wait_pending("PortInitDone").await;
    run(&["kill", "-STOP", &w.redis.pid().to_string()]);
    let rounds = 100_000 / PORTS + 1; // 25 rounds × 4,096 = 102,400 changes
    let mut lines = Vec::new();
    for r in 0..rounds {
        for i in 0..PORTS {
            lines.push(format!(
                "link set Ethernet{} {}",
                i * 4,
                if r % 2 == 0 { "up" } else { "down" }
            ));
        }
    }
    w.ns.batch(&lines);
    // Issue #12 item 7: sample until the drain is over — every change is in the kernel (the
    // batch returned) and the daemon's link socket is empty with no dump running — so the
    // peak is measured where it happens, not at the first non-zero sample.
    let mut max_pending = 0;
    let mut last_pending = 0;
    let pid = d.pid();
    wait(
        || {
            let p = w.ns.metric("portsyncd_pending_ports").unwrap_or(0);
            max_pending = max_pending.max(p);
            last_pending = p;
            let drained = link_socket_drained(pid);
            async move { p > 0 && drained }
        },
        "the daemon to read the whole burst while Redis is frozen",
    )
    .await;
    let hwm_kb = vm_kb(d.pid(), "VmHWM:");
    run(&["kill", "-CONT", &w.redis.pid().to_string()]);
    eprintln!("burst of {} changes over {PORTS} ports, Redis frozen: max pending {max_pending}, VmHWM {hwm_kb} kB", rounds * PORTS);
    // Every port is pending once, except those of the stuck flush that were not changed again
    // after it took them: none when it was launched early in the burst, up to its whole share
    // (max_ports_per_flush, 512) when the burst was read before it went out (seen in full
    // suite runs on a loaded machine: 3,584).
    assert!(
        (u64::from(PORTS) - 512..=u64::from(PORTS)).contains(&last_pending),
        "pending after the drain: {last_pending} (max {max_pending})"
    );
    assert!(
        max_pending <= u64::from(PORTS),
        "pending {max_pending} > ports"
    );
    assert!(
        hwm_kb < 64 * 1024,
        "VmHWM {hwm_kb} kB over the 64 MiB bound"
    );
    wait_converged(&mut w, "after the 100k burst").await;
}
