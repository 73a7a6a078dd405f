//! The SONiC side of the rig: the golden file's S0 set-up, the orchagent stand-in's pop
//! (H:POP), and waits on STATE_DB rows.
#![allow(dead_code)]

use super::*;
use portsyncd::dbconfig::DbLocation;

/// A namespace, a Redis with MONITOR running, and connections to the three DBs.
pub struct World {
    pub ns: Netns,
    pub redis: Redis,
    /// None in benchmarks (MONITOR costs Redis more than the daemon does).
    pub mon: Option<Monitor>,
    pub appl: ConnectionManager,
    pub config: ConnectionManager,
    pub state: ConnectionManager,
    pub appl_db: DbLocation,
}

/// S0's CONFIG_DB fields for `EthernetN` (index i), in insertion order.
pub fn s0_fields(i: u32) -> Vec<(String, String)> {
    let n = i * 4;
    vec![
        ("admin_status".into(), "up".into()),
        ("alias".into(), format!("etp{}", i + 1)),
        ("index".into(), i.to_string()),
        (
            "lanes".into(),
            format!("{},{},{},{}", n, n + 1, n + 2, n + 3),
        ),
        ("mtu".into(), "9100".into()),
        ("speed".into(), "100000".into()),
    ]
}

impl World {
    pub async fn new() -> World {
        Self::with_redis(Redis::start()).await
    }

    pub async fn with_redis(redis: Redis) -> World {
        let mon = Some(Monitor::start(&redis));
        Self::assemble(redis, mon).await
    }

    /// No MONITOR: for benchmarks.
    pub async fn bare(redis: Redis) -> World {
        Self::assemble(redis, None).await
    }

    async fn assemble(redis: Redis, mon: Option<Monitor>) -> World {
        let ns = Netns::new();
        let (appl, appl_db) = redis.con("APPL_DB").await;
        let (config, _) = redis.con("CONFIG_DB").await;
        let (state, _) = redis.con("STATE_DB").await;
        World {
            ns,
            redis,
            mon,
            appl,
            config,
            state,
            appl_db,
        }
    }

    /// S0: `count` ports Ethernet0, 4, 8 … in CONFIG_DB, and DEVICE_METADATA without switch_type.
    pub async fn seed_s0(&mut self, count: u32) {
        self.seed_ports(0..count).await;
        hset(
            &mut self.config,
            "DEVICE_METADATA|localhost",
            &[
                ("hostname", "sonic"),
                ("hwsku", "TestSku"),
                ("platform", "x86_64-test"),
                ("type", "ToRRouter"),
            ],
        )
        .await;
    }

    /// CONFIG_DB `PORT|Ethernet<4i>` with S0's fields for every `i`, in one pipeline.
    pub async fn seed_ports(&mut self, indexes: std::ops::Range<u32>) {
        if indexes.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for i in indexes {
            let mut c = redis::cmd("HSET");
            c.arg(format!("PORT|Ethernet{}", i * 4));
            for (f, v) in s0_fields(i) {
                c.arg(f).arg(v);
            }
            pipe.add_command(c).ignore();
        }
        let _: () = pipe
            .query_async(&mut self.config)
            .await
            .expect("seed CONFIG_DB");
    }

    /// The MONITOR capture, complete up to now: a marker command is sent and awaited, so
    /// every command Redis ran before it is in the file.
    pub async fn mon(&mut self) -> &Monitor {
        let token = format!(
            "barrier-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let _: String = q(&mut self.appl, redis::cmd("ECHO").arg(&token)).await;
        let mon = self.mon.as_ref().expect("World::new starts MONITOR");
        wait(
            || async {
                mon.commands()
                    .iter()
                    .any(|c| c.args.len() == 2 && c.args[1] == token)
            },
            "MONITOR to catch up",
        )
        .await;
        mon
    }

    pub fn daemon(&self) -> Daemon {
        Daemon::start(&self.ns, &self.redis)
    }

    /// The daemon with /metrics on 127.0.0.1:9101 (`Daemon::start_with_metrics`).
    pub fn daemon_with_metrics(&self) -> Daemon {
        Daemon::start_with_metrics(&self.ns, &self.redis, "", &[])
    }

    /// H:POP: the orchagent stand-in moves every pending key into `PORT_TABLE:<key>`.
    pub async fn pop(&mut self) -> usize {
        portsyncd::consumer::drain(&mut self.appl, &self.appl_db)
            .await
            .expect("pop")
    }

    pub async fn wait_pending(&mut self, key: &str) {
        let c = self.appl.clone();
        wait(
            || {
                let mut c = c.clone();
                async move {
                    smembers(&mut c, "PORT_TABLE_KEY_SET")
                        .await
                        .iter()
                        .any(|k| k == key)
                }
            },
            &format!("{key} pending in PORT_TABLE_KEY_SET"),
        )
        .await;
    }

    pub async fn row(&mut self, port: &str) -> BTreeMap<String, String> {
        hmap(&mut self.state, &format!("PORT_TABLE|{port}")).await
    }

    /// Wait until STATE_DB `PORT_TABLE|<port>` holds exactly `want`.
    pub async fn wait_row(&mut self, port: &str, want: BTreeMap<String, String>) {
        let c = self.state.clone();
        let key = format!("PORT_TABLE|{port}");
        wait(
            || {
                let mut c = c.clone();
                let (key, want) = (key.clone(), want.clone());
                async move { hmap(&mut c, &key).await == want }
            },
            &format!("{key} == {want:?}"),
        )
        .await;
    }

    pub async fn wait_gone(&mut self, port: &str) {
        let c = self.state.clone();
        let key = format!("PORT_TABLE|{port}");
        wait(
            || {
                let mut c = c.clone();
                let key = key.clone();
                async move { !exists(&mut c, &key).await }
            },
            &format!("{key} deleted"),
        )
        .await;
    }

    /// STATE_DB `PORT_TABLE|*` keys.
    pub async fn state_ports(&mut self) -> Vec<String> {
        keys(&mut self.state, "PORT_TABLE|*").await
    }
}

/// Every mismatch between the kernel's `Ethernet*` links and STATE_DB `PORT_TABLE|*`.
pub async fn mismatches(w: &mut World) -> Vec<String> {
    let kernel = w.ns.kernel_ports();
    let rows_keys = w.state_ports().await;
    let mut pipe = redis::pipe();
    for k in &rows_keys {
        pipe.cmd("HGETALL").arg(k);
    }
    let rows: Vec<BTreeMap<String, String>> = if rows_keys.is_empty() {
        Vec::new()
    } else {
        match pipe.query_async(&mut w.state).await {
            Ok(r) => r,
            Err(e) => return vec![format!("redis: {e}")],
        }
    };
    let rows: BTreeMap<String, BTreeMap<String, String>> = rows_keys
        .iter()
        .map(|k| k["PORT_TABLE|".len()..].to_string())
        .zip(rows)
        .collect();
    let mut out = Vec::new();
    for (name, (oper, admin, mtu)) in &kernel {
        let want = sdb(
            if *oper { "up" } else { "down" },
            if *admin { "up" } else { "down" },
            *mtu,
        );
        match rows.get(name) {
            Some(r) if *r == want => {}
            Some(r) => out.push(format!("{name}: kernel {want:?}, STATE_DB {r:?}")),
            None => out.push(format!("{name}: no STATE_DB row")),
        }
    }
    for name in rows.keys() {
        if !kernel.contains_key(name) {
            out.push(format!(
                "{name}: STATE_DB row for a netdev the kernel does not have"
            ));
        }
    }
    out
}

/// Wait until STATE_DB agrees with the kernel; returns how long that took.
pub async fn wait_converged(w: &mut World, what: &str) -> Duration {
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(30);
    loop {
        let m = mismatches(w).await;
        if m.is_empty() {
            let took = t0.elapsed();
            eprintln!("CONVERGED {what}: {took:?}");
            return took;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {} mismatch(es), e.g. {:?}",
            m.len(),
            &m[..m.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The four ports of the golden set-up S0.
pub const PORTS: [&str; 4] = ["Ethernet0", "Ethernet4", "Ethernet8", "Ethernet12"];

pub fn pairs(v: &[(String, String)]) -> Vec<(String, String)> {
    v.to_vec()
}

/// G1 phase A–E: cold start; returns with BASE-minus-up (all rows down/down/9100) and the daemon running.
/// G1-core's final state (also G8's).
pub async fn assert_g1_core_final(w: &mut World) {
    for (i, p) in PORTS.iter().enumerate() {
        assert_eq!(
            hgetall(&mut w.appl, &format!("PORT_TABLE:{p}")).await,
            pairs(&s0_fields(i as u32))
        );
    }
    assert_eq!(
        hmap(&mut w.appl, "PORT_TABLE:PortConfigDone").await,
        [("count".into(), "4".into())].into()
    );
    assert_eq!(
        hmap(&mut w.appl, "PORT_TABLE:PortInitDone").await,
        [("lanes".into(), "0".into())].into()
    );
    for k in ["PORT_TABLE_KEY_SET", "PORT_TABLE_DEL_SET"] {
        assert!(!exists(&mut w.appl, k).await, "{k} should be absent");
    }
    assert!(keys(&mut w.appl, "_PORT_TABLE:*").await.is_empty());
    assert_eq!(
        w.state_ports().await,
        [
            "PORT_TABLE|Ethernet0",
            "PORT_TABLE|Ethernet12",
            "PORT_TABLE|Ethernet4",
            "PORT_TABLE|Ethernet8"
        ]
    );
    assert_eq!(w.mon().await.publishes(), 6);
    w.mon().await.assert_state_hsets_are_cpp_shaped();
}
