//! The SONiC side of the rig: the golden file's S0 set-up, the orchagent stand-in's pop
//! (H:POP), and waits on STATE_DB rows.
#![allow(dead_code)]

use super::*;

/// A namespace, a Redis with MONITOR running, and connections to the three DBs.
pub struct World {
    pub ns: Netns,
    pub redis: Redis,
    pub mon: Monitor,
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
        let ns = Netns::new();
        let redis = Redis::start();
        let mon = Monitor::start(&redis);
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
        for i in 0..count {
            let f = s0_fields(i);
            let fvs: Vec<(&str, &str)> = f.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            hset(&mut self.config, &format!("PORT|Ethernet{}", i * 4), &fvs).await;
        }
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

    pub fn daemon(&self) -> Daemon {
        Daemon::start(&self.ns, &self.redis)
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
