//! Issue #15 item 1: where APPL_DB and STATE_DB share a Redis instance (SONiC's standard
//! layout) the flush asks the APPL_DB gate and writes STATE_DB in one script call, one round
//! trip instead of two; where STATE_DB lives on an instance of its own, the flush keeps the
//! two steps (the gate script on APPL_DB's instance, then plain commands on STATE_DB's). Both
//! layouts write the same C++-shaped rows, read from MONITOR on each instance.

mod common;

use common::sonic::{World, PORTS};
use common::*;

/// S0 with four ports whose netdevs exist, popped, then Ethernet0 set admin up and down and
/// Ethernet12 removed; returns the daemon.
async fn run_scenario(w: &mut World) -> Daemon {
    w.seed_s0(4).await;
    let d = w.daemon();
    d.wait_started().await;
    w.wait_pending("PortConfigDone").await;
    assert_eq!(w.pop().await, 5);
    for p in PORTS {
        w.ns.add_port(p, 9100);
    }
    for p in PORTS {
        w.wait_row(p, sdb("down", "down", 9100)).await;
    }
    w.ns.ip(&["link", "set", "Ethernet0", "up"]);
    w.wait_row("Ethernet0", sdb("down", "up", 9100)).await;
    w.ns.ip(&["link", "set", "Ethernet0", "down"]);
    w.wait_row("Ethernet0", sdb("down", "down", 9100)).await;
    w.ns.ip(&["link", "del", "Ethernet12"]);
    w.wait_gone("Ethernet12").await;
    d
}

/// STATE_DB `PORT_TABLE|*` commands named `name` in `cmds`.
fn port_rows<'a>(cmds: &'a [Cmd], name: &'a str) -> impl Iterator<Item = &'a Cmd> + 'a {
    cmds.iter().filter(move |c| {
        c.db == 6 && c.args[0].eq_ignore_ascii_case(name) && c.args[1].starts_with("PORT_TABLE|")
    })
}

#[tokio::test]
async fn issue15_one_instance_gates_and_writes_state_db_in_one_script_call() {
    let mut w = World::new().await;
    let d = run_scenario(&mut w).await;
    let mon = w.mon().await;
    mon.assert_state_hsets_are_cpp_shaped();
    let cmds = mon.commands();
    // Every port row write ran inside the flush script, right after its gate's EXISTS in the
    // same call; none was sent on its own.
    let hsets: Vec<&Cmd> = port_rows(&cmds, "HSET").collect();
    assert!(hsets.len() >= 6, "{hsets:?}");
    assert!(hsets.iter().all(|c| c.lua), "{hsets:?}");
    let dels: Vec<&Cmd> = port_rows(&cmds, "DEL").collect();
    assert_eq!(dels.len(), 1, "{dels:?}");
    assert!(dels[0].lua && dels[0].args[1] == "PORT_TABLE|Ethernet12");
    for (i, c) in cmds.iter().enumerate() {
        if c.lua && c.db == 6 && c.args[0] == "HSET" && c.args[1].starts_with("PORT_TABLE|") {
            let port = &c.args[1]["PORT_TABLE|".len()..];
            let call = cmds[..i]
                .iter()
                .rposition(|c| !c.lua)
                .expect("the script call");
            assert!(
                cmds[call].args[0].eq_ignore_ascii_case("EVALSHA"),
                "{:?}",
                cmds[call]
            );
            let gate = format!("PORT_TABLE:{port}");
            assert!(
                cmds[call..i]
                    .iter()
                    .any(|g| g.lua && g.db == 0 && g.args[0] == "EXISTS" && g.args[1] == gate),
                "no gate for {port} in its call: {:?}",
                &cmds[call..=i]
            );
        }
    }
    drop(d);
}

/// A database_config.json like the rig's, with STATE_DB on `state`'s instance.
fn split_config(redis: &Redis, state: &Redis) -> String {
    let text = std::fs::read_to_string(&redis.cfg).unwrap();
    let mut cfg: serde_json::Value = serde_json::from_str(&text).unwrap();
    cfg["INSTANCES"]["redis2"] = serde_json::json!({
        "hostname": "127.0.0.1",
        "port": 0,
        "unix_socket_path": state.socket.display().to_string(),
    });
    cfg["DATABASES"]["STATE_DB"]["instance"] = "redis2".into();
    cfg.to_string()
}

#[tokio::test]
async fn issue15_state_db_on_its_own_instance_keeps_two_steps_and_plain_commands() {
    let redis = Redis::start();
    let state = Redis::start();
    std::fs::write(&redis.cfg, split_config(&redis, &state)).unwrap();
    let state_mon = Monitor::start(&state);
    let mut w = World::with_redis(redis).await;
    let d = run_scenario(&mut w).await;
    // Nothing of STATE_DB on APPL_DB's instance: there, only the gate script's EXISTS.
    let appl_cmds = w.mon().await.commands();
    assert_eq!(port_rows(&appl_cmds, "HSET").count(), 0, "{appl_cmds:?}");
    assert_eq!(port_rows(&appl_cmds, "DEL").count(), 0, "{appl_cmds:?}");
    assert!(appl_cmds
        .iter()
        .any(|c| c.lua && c.args[0] == "EXISTS" && c.args[1] == "PORT_TABLE:Ethernet0"));
    // On STATE_DB's instance, every port row write is a plain command (MONITOR caught up by
    // a marker sent there).
    let _: String = q(&mut w.state, redis::cmd("ECHO").arg("state-barrier")).await;
    wait_sync(
        || {
            state_mon
                .commands()
                .iter()
                .any(|c| c.args.len() == 2 && c.args[1] == "state-barrier")
        },
        "STATE_DB's MONITOR to catch up",
    );
    state_mon.assert_state_hsets_are_cpp_shaped();
    let cmds = state_mon.commands();
    let hsets: Vec<&Cmd> = port_rows(&cmds, "HSET").collect();
    assert!(hsets.len() >= 6, "{hsets:?}");
    assert!(hsets.iter().all(|c| !c.lua), "{hsets:?}");
    let dels: Vec<&Cmd> = port_rows(&cmds, "DEL").collect();
    assert_eq!(dels.len(), 1, "{dels:?}");
    assert!(!dels[0].lua && dels[0].args[1] == "PORT_TABLE|Ethernet12");
    drop(d);
}

/// A burst is flushed as plain commands even on one instance (`flushscript::one_call`): a
/// pipelined `HSET` costs Redis less than one inside the script, and a script would hold Redis
/// for every other client for the whole flush.
#[tokio::test]
async fn issue15_one_instance_sends_a_burst_as_plain_commands() {
    const N: u32 = 64;
    let mut w = World::new().await;
    w.seed_ports(0..N).await;
    let d = w.daemon();
    d.wait_started().await;
    w.pop().await;
    w.ns.add_ifb_ports(N);
    w.wait_pending("PortInitDone").await;
    // Every port set up while the daemon is stopped: one turn reads them all, one flush.
    d.signal("STOP");
    let lines: Vec<String> = (0..N)
        .map(|i| format!("link set Ethernet{} up", i * 4))
        .collect();
    w.ns.batch(&lines);
    d.signal("CONT");
    let c = w.state.clone();
    wait(
        || {
            let mut c = c.clone();
            async move {
                let mut up = 0;
                for i in 0..N {
                    let row = hmap(&mut c, &format!("PORT_TABLE|Ethernet{}", i * 4)).await;
                    up += u32::from(row.get("admin_status").map(String::as_str) == Some("up"));
                }
                up == N
            }
        },
        "every port's row admin up",
    )
    .await;
    let mon = w.mon().await;
    mon.assert_state_hsets_are_cpp_shaped();
    let cmds = mon.commands();
    let up: Vec<&Cmd> = port_rows(&cmds, "HSET")
        .filter(|c| c.args.get(7).map(String::as_str) == Some("up"))
        .collect();
    assert_eq!(up.len(), N as usize, "{up:?}");
    assert!(
        up.iter().all(|c| !c.lua),
        "a burst went through the script: {up:?}"
    );
    drop(d);
}
