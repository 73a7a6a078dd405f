//! Golden scenarios G8–G12 (shared/spec/golden-scenarios.md): the start-up variants — stale
//! netdevs on a cold restart, warm restart, zero ports, a port that never appears, and a netdev
//! that appears before orchagent pops — against the real binary, real netlink and Redis.

mod common;

use common::sonic::{assert_g1_core_final, s0_fields, World, PORTS};
use common::*;

/// LOGLEVEL INFO (so the C++ INFO lines such as "Bring down old interface …" show) and the
/// four ports' netdevs up with carrier before the daemon starts.
async fn netdevs_before_start(w: &mut World) {
    hset(
        &mut w.config,
        "LOGGER|portsyncd",
        &[("LOGLEVEL", "INFO"), ("LOGOUTPUT", "SYSLOG")],
    )
    .await;
    for p in PORTS {
        w.ns.add_port(p, 9100);
        w.ns.ip(&["link", "set", p, "up"]);
        w.ns.ip(&["link", "set", &p.replace("Ethernet", "peer"), "up"]);
    }
}

#[tokio::test]
async fn g8_cold_restart_with_stale_netdevs() {
    let mut w = World::new().await;
    w.seed_s0(4).await;
    netdevs_before_start(&mut w).await;
    let d = w.daemon();
    d.wait_started().await;
    w.wait_pending("PortConfigDone").await;
    // Brought admin-down through netlink, and logged (LOGLEVEL INFO shows the C++ INFO lines).
    for p in PORTS {
        d.wait_log(&format!("Bring down old interface {p}(")).await;
    }
    wait_sync(
        || w.ns.kernel_ports().values().all(|(_, admin, _)| !admin),
        "stale netdevs admin down",
    );
    d.wait_log("Ignoring message for old interface Ethernet0")
        .await;
    assert_eq!(
        hgetall(&mut w.config, "LOGGER|portsyncd").await.len(),
        2,
        "no logger HSET when both fields exist"
    );
    w.pop().await;
    // syncd removes the stale netdevs: ignored, no DEL.
    for p in PORTS {
        w.ns.ip(&["link", "del", p]);
    }
    // SAI creates the new host interfaces.
    for p in PORTS {
        w.ns.add_port(p, 9100);
    }
    for p in PORTS {
        w.wait_row(p, sdb("down", "down", 9100)).await;
    }
    w.wait_pending("PortInitDone").await;
    w.pop().await;
    assert_g1_core_final(&mut w).await;
    assert!(
        w.mon().await.named("DEL").iter().all(|c| c.db != 6),
        "no DEL for stale netdevs"
    );
}

async fn seed_warm(w: &mut World, restore_count: Option<&str>) {
    w.seed_s0(4).await;
    hset(
        &mut w.config,
        "LOGGER|portsyncd",
        &[("LOGLEVEL", "NOTICE"), ("LOGOUTPUT", "SYSLOG")],
    )
    .await;
    for (i, p) in PORTS.iter().enumerate() {
        let mut f = s0_fields(i as u32);
        f.push(("oper_status".into(), "up".into()));
        let fvs: Vec<(&str, &str)> = f.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        hset(&mut w.appl, &format!("PORT_TABLE:{p}"), &fvs).await;
        hset(
            &mut w.state,
            &format!("PORT_TABLE|{p}"),
            &[
                ("state", "ok"),
                ("netdev_oper_status", "up"),
                ("admin_status", "up"),
                ("mtu", "9100"),
                ("supported_speeds", "100000"),
            ],
        )
        .await;
    }
    hset(&mut w.appl, "PORT_TABLE:PortConfigDone", &[("count", "4")]).await;
    hset(&mut w.appl, "PORT_TABLE:PortInitDone", &[("lanes", "0")]).await;
    hset(
        &mut w.state,
        "WARM_RESTART_ENABLE_TABLE|system",
        &[("enable", "true")],
    )
    .await;
    match restore_count {
        Some(c) => {
            hset(
                &mut w.state,
                "WARM_RESTART_TABLE|portsyncd",
                &[("restore_count", c)],
            )
            .await
        }
        None => {
            hset(
                &mut w.state,
                "WARM_RESTART_TABLE|portsyncd",
                &[("state", "reconciled")],
            )
            .await
        }
    }
    for p in PORTS {
        w.ns.add_port(p, 9100);
        w.ns.ip(&["link", "set", p, "up"]);
        w.ns.ip(&["link", "set", &p.replace("Ethernet", "peer"), "up"]);
    }
}

#[tokio::test]
async fn g9_warm_restart() {
    let mut w = World::new().await;
    seed_warm(&mut w, Some("0")).await;
    let d = w.daemon();
    w.wait_pending("PortInitDone").await;
    d.wait_log("portsyncd doing warm start, restore count 1")
        .await;
    assert_eq!(
        hmap(&mut w.state, "WARM_RESTART_TABLE|portsyncd").await,
        [("restore_count".into(), "1".into())].into()
    );
    assert_eq!(
        smembers(&mut w.appl, "PORT_TABLE_KEY_SET").await,
        ["PortInitDone"]
    );
    assert_eq!(w.mon().await.publishes(), 1);
    w.pop().await;
    for p in PORTS {
        let mut want = sdb("up", "up", 9100);
        want.insert("supported_speeds".into(), "100000".into());
        assert_eq!(w.row(p).await, want);
    }
    // No stale-netdev handling on a warm start: the kernel links are still up.
    assert!(w
        .ns
        .kernel_ports()
        .values()
        .all(|(oper, admin, _)| *oper && *admin));
    assert_eq!(
        hmap(&mut w.appl, "PORT_TABLE:PortInitDone").await,
        [("lanes".into(), "0".into())].into()
    );
    assert_eq!(
        hmap(&mut w.appl, "PORT_TABLE:PortConfigDone").await,
        [("count".into(), "4".into())].into()
    );
    assert!(w
        .mon()
        .await
        .commands()
        .iter()
        .all(|c| !c.args.iter().any(|a| a == "PortConfigDone")));
}

#[tokio::test]
async fn g9_warm_without_restore_count_falls_back_to_cold() {
    let mut w = World::new().await;
    seed_warm(&mut w, None).await;
    let d = w.daemon();
    d.wait_started().await;
    w.wait_pending("PortConfigDone").await;
    d.wait_log("fall back to cold start").await;
    assert_eq!(
        hmap(&mut w.state, "WARM_RESTART_TABLE|portsyncd")
            .await
            .get("restore_count")
            .map(String::as_str),
        Some("0")
    );
    // Cold path: the pre-existing netdevs are stale and brought down.
    wait_sync(
        || w.ns.kernel_ports().values().all(|(_, admin, _)| !admin),
        "stale netdevs admin down",
    );
}

#[tokio::test]
async fn g10_zero_ports_configured() {
    let mut w = World::new().await;
    w.seed_s0(0).await;
    let d = w.daemon();
    w.wait_pending("PortInitDone").await;
    d.wait_log("ConfigDB does not have port information, however ports can be added later on, continuing...").await;
    assert_eq!(
        smembers(&mut w.appl, "PORT_TABLE_KEY_SET").await,
        ["PortConfigDone", "PortInitDone"]
    );
    assert_eq!(
        hmap(&mut w.appl, "_PORT_TABLE:PortConfigDone").await,
        [("count".into(), "0".into())].into()
    );
    assert_eq!(
        hmap(&mut w.appl, "_PORT_TABLE:PortInitDone").await,
        [("lanes".into(), "0".into())].into()
    );
    assert_eq!(w.mon().await.publishes(), 2);
    w.pop().await;
    assert_eq!(
        hmap(&mut w.appl, "PORT_TABLE:PortConfigDone").await,
        [("count".into(), "0".into())].into()
    );
    assert_eq!(
        hmap(&mut w.appl, "PORT_TABLE:PortInitDone").await,
        [("lanes".into(), "0".into())].into()
    );
}

#[tokio::test]
async fn g11_configured_port_never_appears() {
    let mut w = World::new().await;
    w.seed_s0(4).await;
    let d = w.daemon();
    d.wait_started().await;
    w.wait_pending("PortConfigDone").await;
    w.pop().await;
    for p in &PORTS[..3] {
        w.ns.add_port(p, 9100);
        w.wait_row(p, sdb("down", "down", 9100)).await;
    }
    // A later, unrelated message proves the loop moved on without sending PortInitDone.
    w.ns.add_port("Ethernet96", 9100);
    d.wait_log("Cannot find Ethernet96 in port table").await;
    assert!(!exists(&mut w.appl, "PORT_TABLE_KEY_SET").await);
    assert!(!exists(&mut w.appl, "PORT_TABLE:PortInitDone").await);
    assert_eq!(d.count_log("PortInitDone"), 0);
    assert_eq!(w.state_ports().await.len(), 3);
    assert_eq!(w.mon().await.publishes(), 5);
}

#[tokio::test]
async fn g12_netdev_before_orchagent_pop() {
    let mut w = World::new().await;
    w.seed_s0(4).await;
    let d = w.daemon();
    d.wait_started().await;
    w.wait_pending("PortConfigDone").await;
    w.ns.add_port("Ethernet0", 9100);
    d.wait_log("Cannot find Ethernet0 in port table").await;
    w.pop().await;
    for p in &PORTS[1..] {
        w.ns.add_port(p, 9100);
        w.wait_row(p, sdb("down", "down", 9100)).await;
    }
    // Ethernet0 is still awaited: no row and no PortInitDone until its next NEWLINK.
    assert!(w.row("Ethernet0").await.is_empty());
    assert!(!exists(&mut w.appl, "PORT_TABLE_KEY_SET").await);
    w.ns.ip(&["link", "set", "Ethernet0", "mtu", "1500"]);
    w.wait_row("Ethernet0", sdb("down", "down", 1500)).await;
    w.wait_pending("PortInitDone").await;
    assert_eq!(w.mon().await.publishes(), 6);
}

/// Issue #4: start-up sends the ProducerStateTable sets in chunks with two in flight; across
/// chunks the order must hold — every port's set before `PortConfigDone`, which carries the
/// full count.
#[tokio::test]
async fn issue4_chunked_startup_keeps_port_config_done_last() {
    let n = 700;
    let mut w = World::new().await;
    w.seed_ports(0..n).await;
    let d = w.daemon();
    d.wait_started().await;
    w.wait_pending("PortConfigDone").await;
    let keys: Vec<String> = w
        .mon()
        .await
        .named("EVALSHA")
        .iter()
        .filter_map(|c| {
            let g = c.args.iter().position(|a| a == "G")?;
            c.args.get(g + 1).cloned()
        })
        .collect();
    assert_eq!(
        keys.len(),
        n as usize + 1,
        "one set per port, then PortConfigDone"
    );
    assert_eq!(keys.last().map(String::as_str), Some("PortConfigDone"));
    assert!(keys[..n as usize].iter().all(|k| k.starts_with("Ethernet")));
    assert_eq!(
        hmap(&mut w.appl, "_PORT_TABLE:PortConfigDone").await["count"],
        n.to_string()
    );
    drop(d);
}

/// Issue #12 item 7, spec §1.2 step 9b: on `switch_type = dpu` a cold start skips the
/// stale-netdev logic — existing `Ethernet*` netdevs are not brought down and their messages
/// are not ignored as old: they are mirrored and PortInitDone follows.
#[tokio::test]
async fn issue12_dpu_cold_start_brings_no_netdev_down() {
    let mut w = World::new().await;
    w.seed_s0(4).await;
    hset(
        &mut w.config,
        "DEVICE_METADATA|localhost",
        &[("switch_type", "dpu")],
    )
    .await;
    // LOGLEVEL INFO: the C++ INFO line "Bring down old interface …" would show.
    netdevs_before_start(&mut w).await;
    let d = w.daemon();
    d.wait_started().await;
    d.wait_log("switch_type dpu").await;
    w.wait_pending("PortConfigDone").await;
    // The start-up dump's messages went to the gate (orchagent had not popped yet, as G12)
    // instead of being ignored as old interfaces.
    for p in PORTS {
        d.wait_log(&format!("Cannot find {p} in port table")).await;
    }
    w.pop().await;
    // The next change of each pre-existing netdev is written.
    for p in PORTS {
        w.ns.ip(&["link", "set", p, "mtu", "9000"]);
    }
    for p in PORTS {
        w.wait_row(p, sdb("up", "up", 9000)).await;
    }
    w.wait_pending("PortInitDone").await;
    assert!(
        w.ns.kernel_ports().values().all(|(_, admin, _)| *admin),
        "a netdev was brought down on a dpu: {:?}",
        w.ns.kernel_ports()
    );
    let log = d.log_text();
    assert!(!log.contains("Bring down old interface"), "{log}");
    assert!(!log.contains("Ignoring message for old interface"), "{log}");
}
