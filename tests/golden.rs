//! Golden scenarios G1–G7 (shared/spec/golden-scenarios.md; G8–G12 are in golden_start.rs)
//! against the real binary, real netlink in a private namespace and a private redis-server. Each test asserts the final
//! Redis state and the command-stream facts the spec states, read from MONITOR. Ports are veth
//! ends (`EthernetN`) whose peers (`peerN`, ignored by portsyncd) drive carrier.

mod common;

use common::sonic::{assert_g1_core_final, pairs, s0_fields, World, PORTS};
use common::*;

async fn g1_core(w: &mut World) -> Daemon {
    w.seed_s0(4).await;
    let d = w.daemon();
    d.wait_started().await;
    w.wait_pending("PortConfigDone").await;
    // Phase A state: every port and PortConfigDone pending, temp hashes with the CONFIG_DB
    // fields in HGETALL order, nothing in PORT_TABLE:* yet.
    let mut want: Vec<String> = PORTS.iter().map(|s| s.to_string()).collect();
    want.push("PortConfigDone".into());
    want.sort();
    assert_eq!(smembers(&mut w.appl, "PORT_TABLE_KEY_SET").await, want);
    for (i, p) in PORTS.iter().enumerate() {
        assert_eq!(
            hgetall(&mut w.appl, &format!("_PORT_TABLE:{p}")).await,
            pairs(&s0_fields(i as u32))
        );
    }
    assert_eq!(
        hmap(&mut w.appl, "_PORT_TABLE:PortConfigDone").await,
        [("count".into(), "4".into())].into()
    );
    assert!(keys(&mut w.appl, "PORT_TABLE:*").await.is_empty());
    assert_eq!(w.mon().await.publishes(), 5);
    // The restore_count written by the cold-start check, and the logger registration.
    assert_eq!(
        hmap(&mut w.state, "WARM_RESTART_TABLE|portsyncd").await,
        [("restore_count".into(), "0".into())].into()
    );
    assert_eq!(
        hgetall(&mut w.config, "LOGGER|portsyncd").await,
        vec![
            ("LOGLEVEL".into(), "NOTICE".into()),
            ("LOGOUTPUT".into(), "SYSLOG".into())
        ]
    );
    // Phase C: pop. Phase D: host interfaces appear admin down.
    assert_eq!(w.pop().await, 5);
    for p in PORTS {
        w.ns.add_port(p, 9100);
    }
    for p in PORTS {
        w.wait_row(p, sdb("down", "down", 9100)).await;
    }
    w.wait_pending("PortInitDone").await;
    d.wait_log("PortInitDone").await;
    assert_eq!(w.pop().await, 1);
    d
}

/// G1-up: admin up, then carrier: BASE (all up/up).
async fn g1_up(w: &mut World) {
    for p in PORTS {
        w.ns.ip(&["link", "set", p, "up"]);
        w.wait_row(p, sdb("down", "up", 9100)).await;
        w.ns.ip(&["link", "set", &p.replace("Ethernet", "peer"), "up"]);
        w.wait_row(p, sdb("up", "up", 9100)).await;
    }
}

async fn base() -> (World, Daemon) {
    let mut w = World::new().await;
    let d = g1_core(&mut w).await;
    g1_up(&mut w).await;
    (w, d)
}

#[tokio::test]
async fn g1_cold_start_four_ports() {
    let mut w = World::new().await;
    let d = g1_core(&mut w).await;
    assert_g1_core_final(&mut w).await;
    g1_up(&mut w).await;
    assert_eq!(
        w.mon().await.publishes(),
        6,
        "no APPL_DB writes for link changes"
    );
    // Every gate check is an APPL_DB EXISTS (run by the gate script, one call per flush),
    // never a STATE_DB read. (The start mode's and the swss watch's reads of the
    // PortConfigDone / PortInitDone markers are plain EXISTS of their own.)
    let gates: Vec<_> = w
        .mon()
        .await
        .commands()
        .into_iter()
        .filter(|c| c.args[0] == "EXISTS" && c.args[1].starts_with("PORT_TABLE:Ethernet"))
        .collect();
    assert!(gates.iter().all(|c| c.lua), "{gates:?}");
    assert!(gates.iter().all(|c| c.db == 0), "{gates:?}");
    assert!(
        gates
            .iter()
            .filter(|c| c.args[1] == "PORT_TABLE:Ethernet0")
            .count()
            >= 3,
        "{gates:?}"
    );
    drop(d);
}

#[tokio::test]
async fn g2_oper_down_then_up() {
    let (mut w, _d) = base().await;
    w.ns.ip(&["link", "set", "peer0", "down"]);
    w.wait_row("Ethernet0", sdb("down", "up", 9100)).await;
    w.ns.ip(&["link", "set", "peer0", "up"]);
    w.wait_row("Ethernet0", sdb("up", "up", 9100)).await;
    assert_eq!(w.mon().await.publishes(), 6);
    w.mon().await.assert_state_hsets_are_cpp_shaped();
}

#[tokio::test]
async fn g3_admin_down_and_mtu() {
    let (mut w, _d) = base().await;
    w.ns.ip(&["link", "set", "Ethernet4", "down"]);
    w.wait_row("Ethernet4", sdb("down", "down", 9100)).await;
    w.ns.ip(&["link", "set", "Ethernet4", "mtu", "1500"]);
    w.wait_row("Ethernet4", sdb("down", "down", 1500)).await;
    for p in ["Ethernet0", "Ethernet8", "Ethernet12"] {
        assert_eq!(w.row(p).await, sdb("up", "up", 9100));
    }
    assert_eq!(w.mon().await.publishes(), 6);
}

#[tokio::test]
async fn g4_port_deletion_keeps_foreign_fields_until_dellink() {
    let (mut w, _d) = base().await;
    hset(
        &mut w.state,
        "PORT_TABLE|Ethernet12",
        &[
            ("supported_speeds", "100000,40000"),
            ("host_tx_ready", "true"),
        ],
    )
    .await;
    let mut with_extra = sdb("up", "up", 9100);
    with_extra.insert("supported_speeds".into(), "100000,40000".into());
    with_extra.insert("host_tx_ready".into(), "true".into());
    // Row 1: joining and leaving a bridge; the AF_BRIDGE DELLINK carries a master and is ignored.
    w.ns.ip(&["link", "add", "Bridge", "type", "bridge"]);
    w.ns.ip(&["link", "set", "Ethernet12", "master", "Bridge"]);
    w.ns.ip(&["link", "set", "Ethernet12", "nomaster"]);
    // Row 2: admin down; the extra fields are kept.
    w.ns.ip(&["link", "set", "Ethernet12", "down"]);
    let mut down = with_extra.clone();
    down.insert("netdev_oper_status".into(), "down".into());
    down.insert("admin_status".into(), "down".into());
    w.wait_row("Ethernet12", down).await;
    // Row 3: the netdev goes: the whole hash goes.
    w.ns.ip(&["link", "del", "Ethernet12"]);
    w.wait_gone("Ethernet12").await;
    assert_eq!(
        w.state_ports().await,
        [
            "PORT_TABLE|Ethernet0",
            "PORT_TABLE|Ethernet4",
            "PORT_TABLE|Ethernet8"
        ]
    );
    assert!(
        exists(&mut w.appl, "PORT_TABLE:Ethernet12").await,
        "APPL_DB is not portsyncd's to clean"
    );
    assert_eq!(
        hmap(&mut w.appl, "PORT_TABLE:PortConfigDone").await,
        [("count".into(), "4".into())].into()
    );
    // Only the real removal produced a DEL (the bridge DELLINK did not).
    let dels: Vec<_> = w
        .mon()
        .await
        .named("DEL")
        .into_iter()
        .filter(|c| c.db == 6)
        .collect();
    assert_eq!(dels.len(), 1, "{dels:?}");
    assert_eq!(dels[0].args[1], "PORT_TABLE|Ethernet12");
}

#[tokio::test]
async fn g5_ignored_and_probed_interfaces() {
    let (mut w, d) = base().await;
    // eth*, bridges (Bridge, and Vlan1000 as a bridge: this kernel has no vlan/team/dummy), an
    // unconfigured Ethernet96, an Ethernet0.10-named netdev; then Ethernet96 removed.
    w.ns.ip(&[
        "link", "add", "eth5", "type", "veth", "peer", "name", "eth6",
    ]);
    w.ns.ip(&["link", "set", "eth5", "up"]);
    w.ns.ip(&["link", "add", "Bridge", "type", "bridge"]);
    w.ns.ip(&["link", "add", "Vlan1000", "type", "bridge"]);
    w.ns.ip(&["link", "add", "Loopback0", "type", "ifb"]);
    w.ns.ip(&["link", "add", "Ethernet96", "type", "ifb"]);
    d.wait_log("Cannot find Ethernet96 in port table").await;
    w.ns.ip(&["link", "add", "Ethernet0.10", "type", "ifb"]);
    d.wait_log("Cannot find Ethernet0.10 in port table").await;
    w.ns.ip(&["link", "del", "Ethernet96"]);
    d.wait_log("Delete Ethernet96(ok) from state db").await;
    // BASE unchanged; no key created; the DEL was sent without an APPL_DB check.
    assert_eq!(w.state_ports().await.len(), 4);
    for p in PORTS {
        assert_eq!(w.row(p).await, sdb("up", "up", 9100));
    }
    assert!(w
        .mon()
        .await
        .commands()
        .iter()
        .all(|c| !c.args.iter().any(|a| a.contains("eth5")
            || a.contains("Vlan1000")
            || a.contains("Loopback0")
            || a.ends_with("Bridge"))));
    assert!(w
        .mon()
        .await
        .named("DEL")
        .iter()
        .any(|c| c.db == 6 && c.args[1] == "PORT_TABLE|Ethernet96"));
    assert_eq!(w.mon().await.publishes(), 6);
}

#[tokio::test]
async fn g6_port_added_after_startup() {
    let (mut w, d) = base().await;
    w.ns.add_port("Ethernet16", 1500);
    d.wait_log("Cannot find Ethernet16 in port table").await;
    assert!(w.row("Ethernet16").await.is_empty());
    // portmgrd's ProducerStateTable set, then orchagent's pop.
    let fvs: Vec<(Vec<u8>, Vec<u8>)> = s0_fields(4)
        .into_iter()
        .map(|(a, b)| (a.into_bytes(), b.into_bytes()))
        .collect();
    let sha: String = portsyncd::pst::load_cmd()
        .query_async(&mut w.appl)
        .await
        .unwrap();
    let _: () = portsyncd::pst::set_cmd(&sha, &w.appl_db, "PORT_TABLE", "Ethernet16", &fvs)
        .query_async(&mut w.appl)
        .await
        .unwrap();
    w.pop().await;
    w.ns.ip(&["link", "set", "Ethernet16", "mtu", "9100"]);
    w.wait_row("Ethernet16", sdb("down", "down", 9100)).await;
    assert_eq!(
        d.count_log("PortInitDone"),
        1,
        "PortInitDone is sent once per process"
    );
    assert_eq!(
        hmap(&mut w.appl, "PORT_TABLE:PortConfigDone").await,
        [("count".into(), "4".into())].into()
    );
    assert_eq!(
        w.mon().await.publishes(),
        7,
        "6 from portsyncd, 1 from the portmgrd stand-in"
    );
}

/// G7 with the deliberate difference of issue #3 item 4: a rename deletes the old row.
#[tokio::test]
async fn g7_rename_cleans_up_stale_row_issue3() {
    let (mut w, d) = base().await;
    w.ns.ip(&["link", "set", "Ethernet8", "down"]);
    w.wait_row("Ethernet8", sdb("down", "down", 9100)).await;
    w.ns.ip(&["link", "set", "Ethernet8", "name", "Ethernet8_old"]);
    w.wait_gone("Ethernet8").await;
    d.wait_log("Cannot find Ethernet8_old in port table").await;
    assert!(w.row("Ethernet8_old").await.is_empty());
    w.ns.ip(&["link", "set", "Ethernet8_old", "name", "swp8"]);
    w.ns.ip(&["link", "set", "swp8", "name", "Ethernet8"]);
    w.wait_row("Ethernet8", sdb("down", "down", 9100)).await;
    assert_eq!(w.mon().await.publishes(), 6);
}

/// Spec §3.2: the ProducerStateTable script publishes only when SADD added the key; a second
/// set of a pending key merges fields into the temp hash and publishes nothing.
#[tokio::test]
async fn producer_script_publishes_only_for_a_new_pending_key() {
    let mut w = World::new().await;
    let sha: String = portsyncd::pst::load_cmd()
        .query_async(&mut w.appl)
        .await
        .unwrap();
    let set = |fvs: &[(&str, &str)]| {
        let fvs: Vec<(Vec<u8>, Vec<u8>)> = fvs
            .iter()
            .map(|(f, v)| (f.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
        portsyncd::pst::set_cmd(&sha, &w.appl_db, "PORT_TABLE", "Ethernet0", &fvs)
    };
    let (a, b) = (set(&[("speed", "100000")]), set(&[("mtu", "9100")]));
    let _: () = a.query_async(&mut w.appl).await.unwrap();
    let _: () = b.query_async(&mut w.appl).await.unwrap();
    assert_eq!(w.mon().await.publishes(), 1);
    assert_eq!(
        hgetall(&mut w.appl, "_PORT_TABLE:Ethernet0").await,
        vec![
            ("speed".into(), "100000".into()),
            ("mtu".into(), "9100".into())
        ]
    );
    let lua: Vec<Vec<String>> = w
        .mon()
        .await
        .commands()
        .into_iter()
        .filter(|c| c.lua)
        .map(|c| c.args)
        .collect();
    assert_eq!(lua[0], ["SADD", "PORT_TABLE_KEY_SET", "Ethernet0"]);
    assert_eq!(lua[1], ["HSET", "_PORT_TABLE:Ethernet0", "speed", "100000"]);
    assert_eq!(lua[2], ["PUBLISH", "PORT_TABLE_CHANNEL@0", "G"]);
    assert_eq!(lua[3], ["SADD", "PORT_TABLE_KEY_SET", "Ethernet0"]);
    assert_eq!(lua[4], ["HSET", "_PORT_TABLE:Ethernet0", "mtu", "9100"]);
    assert_eq!(lua.len(), 5);
    w.pop().await;
    assert_eq!(hmap(&mut w.appl, "PORT_TABLE:Ethernet0").await.len(), 2);
}
