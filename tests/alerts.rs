//! Issue #6 end to end: every alert rule kind fires and resolves against the real daemon (the
//! STATE_DB row, the log line and /metrics), and the metrics endpoint serves OpenMetrics text
//! that the reference parser (client_python's) accepts.

mod common;

use common::sonic::{wait_converged, World};
use common::*;
use std::process::{Command, Stdio};

const RULES: &str = r#"
heartbeat_ms = 100
redis_timeout_ms = 500
[[alert]]
kind = "flap"
threshold = 3
window_ms = 2000
severity = "critical"
[[alert]]
kind = "oper_down"
after_ms = 300
[[alert]]
kind = "mtu_mismatch"
after_ms = 300
[[alert]]
kind = "missing_port"
after_ms = 300
severity = "critical"
[[alert]]
kind = "init_stall"
after_ms = 300
[[alert]]
kind = "resync"
threshold = 1
window_ms = 3000
"#;

async fn wait_alert(w: &mut World, d: &Daemon, rule: &str, port: &str, state: &str) {
    let key = format!("PORTSYNCD_ALERT_TABLE|{rule}|{port}");
    let c = w.state.clone();
    wait(
        || {
            let mut c = c.clone();
            let key = key.clone();
            async move { hmap(&mut c, &key).await.get("state").map(String::as_str) == Some(state) }
        },
        &format!("{key} state {state}\n{}", d.log_text()),
    )
    .await;
    let verb = if state == "firing" {
        "firing"
    } else {
        "resolved"
    };
    d.wait_log(&format!("ALERT {rule} {verb} for {port}")).await;
}

#[tokio::test]
async fn issue6_every_rule_kind_fires_and_resolves() {
    let mut w = World::new().await;
    w.seed_s0(3).await; // Ethernet0, 4, 8; CONFIG_DB mtu 9100
    let dir = TempDir::new("alerts");
    let cfg = dir.0.join("portsyncd.toml");
    std::fs::write(
        &cfg,
        format!("metrics_listen = \"127.0.0.1:9101\"\n{RULES}"),
    )
    .unwrap();
    let d = Daemon::start_args(&w.ns, &w.redis, &["--config", cfg.to_str().unwrap()], &[]);
    d.wait_started().await;
    w.pop().await;
    w.ns.add_port("Ethernet0", 9100);
    w.ns.add_port("Ethernet4", 9100);

    // missing_port and init_stall: Ethernet8's netdev never appears (yet).
    wait_alert(&mut w, &d, "missing_port", "Ethernet8", "firing").await;
    wait_alert(&mut w, &d, "init_stall", "-", "firing").await;
    let row = hmap(&mut w.state, "PORTSYNCD_ALERT_TABLE|init_stall|-").await;
    assert!(row["message"].contains("awaiting Ethernet8"), "{row:?}");
    assert_eq!(row["severity"], "warning");
    let m = w.ns.metrics();
    assert!(
        m.contains(r#"portsyncd_alerts_firing{rule="missing_port",severity="critical"} 1"#),
        "{m}"
    );

    // flap: four oper transitions of Ethernet0 within the window; then the window passes.
    w.ns.ip(&["link", "set", "Ethernet0", "up"]);
    for _ in 0..2 {
        w.ns.ip(&["link", "set", "peer0", "up"]);
        w.wait_row("Ethernet0", sdb("up", "up", 9100)).await;
        w.ns.ip(&["link", "set", "peer0", "down"]);
        w.wait_row("Ethernet0", sdb("down", "up", 9100)).await;
    }
    wait_alert(&mut w, &d, "flap", "Ethernet0", "firing").await;
    assert!(w
        .ns
        .metrics()
        .contains(r#"portsyncd_alerts_firing{rule="flap",severity="critical"} 1"#));
    wait_alert(&mut w, &d, "flap", "Ethernet0", "resolved").await;

    // oper_down: Ethernet0 is admin up with its carrier down since the last flip.
    wait_alert(&mut w, &d, "oper_down", "Ethernet0", "firing").await;
    w.ns.ip(&["link", "set", "peer0", "up"]);
    wait_alert(&mut w, &d, "oper_down", "Ethernet0", "resolved").await;

    // mtu_mismatch: kernel MTU against CONFIG_DB's 9100.
    w.ns.ip(&["link", "set", "Ethernet4", "mtu", "1500"]);
    wait_alert(&mut w, &d, "mtu_mismatch", "Ethernet4", "firing").await;
    w.ns.ip(&["link", "set", "Ethernet4", "mtu", "9100"]);
    wait_alert(&mut w, &d, "mtu_mismatch", "Ethernet4", "resolved").await;

    // The missing port appears: both resolve, PortInitDone goes out.
    w.ns.add_port("Ethernet8", 9100);
    wait_alert(&mut w, &d, "missing_port", "Ethernet8", "resolved").await;
    wait_alert(&mut w, &d, "init_stall", "-", "resolved").await;
    w.wait_pending("PortInitDone").await;

    // resync: two Redis recoveries (each reconciles with a dump) within the window. A CLIENT
    // KILL only makes a flush fail if it lands before the daemon's connection notices, so
    // each recovery kills and writes until a write has failed (issue #12 item 7).
    let mut mtu = 9100;
    for i in 0..2 {
        let deadline = std::time::Instant::now() + DEADLINE;
        let failed = d.count_log("redis write failed");
        while d.count_log("redis write failed") == failed {
            assert!(
                std::time::Instant::now() < deadline,
                "no flush failed after CLIENT KILLs\n{}",
                d.log_text()
            );
            let _: i64 = q(
                &mut w.config,
                redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal"),
            )
            .await;
            mtu = if mtu == 9100 { 9000 } else { 9100 };
            w.ns.ip(&["link", "set", "Ethernet4", "mtu", &mtu.to_string()]);
            w.wait_row("Ethernet4", sdb("down", "down", mtu)).await;
        }
        d.wait_log(&format!("resync #{} complete", i + 1)).await;
    }
    if mtu != 9100 {
        w.ns.ip(&["link", "set", "Ethernet4", "mtu", "9100"]);
        w.wait_row("Ethernet4", sdb("down", "down", 9100)).await;
    }
    wait_alert(&mut w, &d, "resync", "-", "firing").await;
    wait_alert(&mut w, &d, "resync", "-", "resolved").await;
    wait_converged(&mut w, "after the alert scenario").await;

    // `portsyncd alerts` lists what is firing (nothing now) and, with --all, the history.
    let out = Command::new(env!("CARGO_BIN_EXE_portsyncd"))
        .arg("--db-config")
        .arg(&w.redis.cfg)
        .args(["alerts", "--all", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 6, "{v}");
    let out = Command::new(env!("CARGO_BIN_EXE_portsyncd"))
        .arg("--db-config")
        .arg(&w.redis.cfg)
        .arg("alerts")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "no firing alerts"
    );
}

#[tokio::test]
async fn issue6_metrics_parse_as_openmetrics_and_count_what_happened() {
    let mut w = World::new().await;
    w.seed_s0(2).await;
    let d = w.daemon_with_metrics();
    d.wait_started().await;
    w.pop().await;
    w.ns.add_port("Ethernet0", 9100);
    w.ns.add_port("Ethernet4", 9100);
    w.wait_pending("PortInitDone").await;
    w.ns.ip(&["link", "add", "eth9", "type", "ifb"]);
    d.wait_log("Publish Ethernet4").await;
    let text = w.ns.metrics();
    for want in [
        "portsyncd_build_info{version=",
        "portsyncd_port_init_done 1",
        r#"portsyncd_ports{admin="down",oper="down"} 2"#,
        r#"portsyncd_state_db_writes_total{op="hset"} 2"#,
        "portsyncd_event_to_redis_seconds_count",
        "portsyncd_flush_ports_bucket",
    ] {
        assert!(text.contains(want), "{want} missing in\n{text}");
    }
    // `promtool check metrics` reads only the classic text format (it rejects OpenMetrics'
    // `info` type); client_python's OpenMetrics parser is strict about the 1.0 format.
    let mut p = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families as parse\nprint(len(list(parse(sys.stdin.read()))))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("these tests need /usr/bin/python3");
    use std::io::Write;
    p.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = p.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "OpenMetrics parser (python3-prometheus-client, scripts/deps installs it): {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Anything but GET /metrics is a 404.
    let st = Command::new("ip")
        .args([
            "netns",
            "exec",
            &w.ns.name,
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://127.0.0.1:9101/",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&st.stdout), "404");
    let st = Command::new("ip")
        .args([
            "netns",
            "exec",
            &w.ns.name,
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{content_type}",
        ])
        .arg("http://127.0.0.1:9101/metrics")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&st.stdout),
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
}

/// `portsyncd_*` names used in a monitoring asset.
fn names_used(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("portsyncd_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out.sort();
    out.dedup();
    out
}

#[tokio::test]
async fn issue6_dashboard_and_rules_use_only_exported_metrics() {
    let mut w = World::new().await;
    w.seed_s0(1).await;
    let d = w.daemon_with_metrics();
    d.wait_started().await;
    let text = w.ns.metrics();
    // Sample names, and declared families (a family with no series yet still has its TYPE line).
    let mut exported: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    exported.extend(
        text.lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next()),
    );
    for asset in [
        "packaging/monitoring/portsyncd-dashboard.json",
        "packaging/monitoring/portsyncd-rules.yml",
    ] {
        let body = std::fs::read_to_string(asset).unwrap();
        if asset.ends_with(".json") {
            serde_json::from_str::<serde_json::Value>(&body).expect("dashboard is valid JSON");
        }
        let used = names_used(&body);
        assert!(used.len() >= 5, "{asset}: {used:?}");
        for name in used {
            assert!(
                exported.contains(&name.as_str()),
                "{asset} uses {name}, which /metrics does not export"
            );
        }
    }
}

/// Issue #12 item 4: resolved alert rows expire — at most `alert_resolved_keep` of them, for
/// at most `alert_resolved_ms` — so name churn cannot grow STATE_DB without bound; a firing
/// row is never expired.
#[tokio::test]
async fn issue12_resolved_alert_rows_expire_by_count_and_age() {
    let mut w = World::new().await;
    w.seed_s0(4).await; // Ethernet0, 4, 8, 12
    let dir = TempDir::new("alertrows");
    let cfg = dir.0.join("portsyncd.toml");
    std::fs::write(
        &cfg,
        "heartbeat_ms = 100\nalert_resolved_keep = 2\nalert_resolved_ms = 5000\n\
         [[alert]]\nkind = \"oper_down\"\nafter_ms = 0\n",
    )
    .unwrap();
    let d = Daemon::start_args(&w.ns, &w.redis, &["--config", cfg.to_str().unwrap()], &[]);
    d.wait_started().await;
    w.pop().await;
    // Admin up, carrier down (the veth peer is down): oper_down fires for all four.
    for i in [0, 4, 8, 12] {
        let p = format!("Ethernet{i}");
        w.ns.add_port(&p, 9100);
        w.ns.ip(&["link", "set", &p, "up"]);
    }
    for i in [0, 4, 8, 12] {
        wait_alert(&mut w, &d, "oper_down", &format!("Ethernet{i}"), "firing").await;
    }
    // Three come up one after the other and resolve; Ethernet12 stays down (firing).
    for i in [0, 4, 8] {
        w.ns.ip(&["link", "set", &format!("peer{i}"), "up"]);
        d.wait_log(&format!("ALERT oper_down resolved for Ethernet{i}:"))
            .await;
    }
    let rows = |w: &World| {
        let c = w.state.clone();
        move || {
            let mut c = c.clone();
            async move {
                let mut out = Vec::new();
                for k in keys(&mut c, "PORTSYNCD_ALERT_TABLE|oper_down|*").await {
                    let state = hmap(&mut c, &k).await.get("state").cloned();
                    out.push((k, state.unwrap_or_default()));
                }
                out
            }
        }
    };
    let get = rows(&w);
    let firing = (
        "PORTSYNCD_ALERT_TABLE|oper_down|Ethernet12".to_string(),
        "firing".to_string(),
    );
    // Count bound: the oldest resolved row (Ethernet0) goes as soon as a third resolves.
    wait(
        || {
            let get = get.clone();
            let firing = firing.clone();
            async move {
                get().await
                    == vec![
                        firing.clone(),
                        (
                            "PORTSYNCD_ALERT_TABLE|oper_down|Ethernet4".into(),
                            "resolved".into(),
                        ),
                        (
                            "PORTSYNCD_ALERT_TABLE|oper_down|Ethernet8".into(),
                            "resolved".into(),
                        ),
                    ]
            }
        },
        "two resolved rows kept (Ethernet4, Ethernet8) and the firing one",
    )
    .await;
    // Age bound: 5 s after resolving, the rest go; the firing row stays.
    wait(
        || {
            let get = get.clone();
            let firing = firing.clone();
            async move { get().await == vec![firing] }
        },
        "resolved rows expired by age, firing row kept",
    )
    .await;
    let h = hmap(&mut w.state, "PORTSYNCD_ALERT_TABLE|oper_down|Ethernet12").await;
    assert_eq!(h["state"], "firing", "{h:?}");
}

/// Issue #15: a storm that fires the flap rule for every port at once — 300 ports, more than
/// the 128 alert rows a flush carries (`outbox::ROWS_PER_FLUSH`), so the rows go out over
/// several flushes — lands every row, firing, and the log line of each.
#[tokio::test]
async fn issue15_a_storm_of_flap_alerts_lands_every_row() {
    const PORTS: u32 = 300;
    let mut w = World::new().await;
    w.seed_ports(0..PORTS).await;
    let dir = TempDir::new("alerts");
    let cfg = dir.0.join("portsyncd.toml");
    std::fs::write(
        &cfg,
        "[[alert]]\nkind = \"flap\"\nthreshold = 1\nwindow_ms = 600000\n",
    )
    .unwrap();
    let d = Daemon::start_args(&w.ns, &w.redis, &["--config", cfg.to_str().unwrap()], &[]);
    d.wait_started().await;
    w.pop().await;
    w.ns.add_ifb_ports(PORTS);
    let last = format!("Ethernet{}", (PORTS - 1) * 4);
    w.wait_row(&last, sdb("down", "down", 1500)).await;
    // Two oper transitions of every port (ifb: oper follows admin), each storm awaited. The
    // second is made while the daemon is stopped, so it reads the storm in full turns and
    // the alerts of 256 ports fire in one turn.
    for (verb, oper) in [("up", "up"), ("down", "down")] {
        let lines: Vec<String> = (0..PORTS)
            .map(|i| format!("link set Ethernet{} {verb}", i * 4))
            .collect();
        let pid = d.pid().to_string();
        if verb == "down" {
            run(&["kill", "-STOP", &pid]);
        }
        w.ns.batch(&lines);
        if verb == "down" {
            run(&["kill", "-CONT", &pid]);
        }
        w.wait_row(&last, sdb(oper, verb, 1500)).await;
    }
    let c = w.state.clone();
    wait(
        || {
            let mut c = c.clone();
            async move {
                let keys = keys(&mut c, "PORTSYNCD_ALERT_TABLE|flap|*").await;
                let mut firing = 0;
                for k in &keys {
                    firing += usize::from(
                        hmap(&mut c, k).await.get("state").map(String::as_str) == Some("firing"),
                    );
                }
                firing == PORTS as usize
            }
        },
        &format!("{PORTS} firing flap rows\n{}", d.log_text()),
    )
    .await;
    d.wait_log(&format!("ALERT flap firing for {last}")).await;
    let logged = d.log_text().matches("ALERT flap firing for ").count();
    assert_eq!(logged, PORTS as usize, "one ALERT line per port");
}
