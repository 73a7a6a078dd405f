//! The loop's side of the live CONFIG_DB view (issue #13): keyspace notifications on
//! CONFIG_DB `PORT|*` (on their own connection, resubscribed after reconnects) mark ports to
//! re-read; every `REREAD_EVERY` heartbeats the whole table is read again, since
//! notifications are lost across reconnects. Changes go to the alert engine; with
//! `track_port_count` a settled change of the set of ports rewrites `PortConfigDone
//! {count: N}` through the ProducerStateTable protocol. One Redis task at a time, polled by
//! the loop's `select!` like a flush.

use super::Loop;
use crate::alerts::ConfigChange;
use crate::cfgview::{mtu_of, Change};
use crate::store::{self, Fvs};
use rustc_hash::FxHashMap;
use std::future::Future;
use std::pin::Pin;
use tracing::{info, warn};

/// Heartbeats between full re-reads of CONFIG_DB `PORT|*`.
pub(super) const REREAD_EVERY: u32 = 6;

pub(super) enum CfgDone {
    /// `HGETALL PORT|<name>` of the ports notifications named (empty: the key is gone).
    Fetched(redis::RedisResult<Vec<(String, Fvs)>>),
    /// The whole table.
    Reread(redis::RedisResult<Vec<(String, Option<u32>)>>),
    /// `PortConfigDone {count: n}` written.
    Count(usize, redis::RedisResult<()>),
}

pub(super) type CfgTask = Pin<Box<dyn Future<Output = CfgDone>>>;

impl Loop {
    pub(super) async fn subscribe_config_ports(
        &mut self,
        tx: tokio::sync::mpsc::UnboundedSender<redis::PushInfo>,
    ) -> Option<redis::aio::ConnectionManager> {
        let db = self.store.dbs.config.clone();
        let pattern = format!("__keyspace@{}__:{}", db.id, db.key("PORT", "*"));
        match store::psubscribe(&db, &pattern, self.settings.redis_timeout, tx).await {
            Ok(con) => Some(con),
            Err(e) => {
                warn!("CONFIG_DB PORT notifications unavailable ({e}); the table is re-read every {REREAD_EVERY} heartbeats");
                None
            }
        }
    }

    /// A notification for `PORT|<name>`: re-read that port.
    pub(super) fn on_config_push(&mut self, push: redis::PushInfo) {
        if !matches!(push.kind, redis::PushKind::PMessage) {
            return;
        }
        let prefix = format!(
            "__keyspace@{}__:{}",
            self.store.dbs.config.id,
            self.store.dbs.config.key("PORT", "")
        );
        let channel = push.data.get(1).and_then(|v| match v {
            redis::Value::BulkString(b) => std::str::from_utf8(b).ok(),
            _ => None,
        });
        if let Some(name) = channel.and_then(|c| c.strip_prefix(prefix.as_str())) {
            self.cfg_dirty.insert(name.to_owned());
            self.launch_cfg();
        }
    }

    /// Start the next CONFIG_DB task if none runs: a due count, else dirty ports.
    pub(super) fn launch_cfg(&mut self) {
        if self.cfg_task.is_some() {
            return;
        }
        let mut store = self.store.clone();
        if self.settings.track_port_count && self.cfg_dirty.is_empty() {
            if let Some(n) = self.cfg.count_due(self.clock_ms()) {
                self.cfg_task = Some(Box::pin(async move {
                    let fvs = vec![(b"count".to_vec(), n.to_string().into_bytes())];
                    // An error reply to the one set fails it like a lost connection would.
                    let r = store
                        .producer_sets(&[("PortConfigDone".into(), fvs)])
                        .await
                        .and_then(|failed| match failed.into_iter().next() {
                            None => Ok(()),
                            Some((_, e)) => Err(redis::RedisError::from((
                                redis::ErrorKind::Io,
                                "PortConfigDone",
                                format!("{} {}", e.reason, e.detail),
                            ))),
                        });
                    CfgDone::Count(n, r)
                }));
                return;
            }
        }
        if self.cfg_dirty.is_empty() {
            return;
        }
        let names: Vec<String> = self.cfg_dirty.drain().collect();
        let keys: Vec<String> = names
            .iter()
            .map(|n| store.dbs.config.key("PORT", n))
            .collect();
        self.cfg_task = Some(Box::pin(async move {
            // One unreadable key (WRONGTYPE, a bad reply) drops only its own row, which keeps
            // its last view until the periodic re-read; the other ports' changes still land.
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for k in &keys {
                pipe.cmd("HGETALL").arg(k);
            }
            let r: redis::RedisResult<Vec<redis::Value>> =
                pipe.query_async(&mut store.config).await;
            CfgDone::Fetched(r.map(|all| {
                names
                    .into_iter()
                    .zip(all)
                    .filter_map(|(name, v)| match redis::from_redis_value::<Fvs>(v) {
                        Ok(fvs) => Some((name, fvs)),
                        Err(e) => {
                            warn!("reading CONFIG_DB PORT|{name}: {e}; kept its last view");
                            None
                        }
                    })
                    .collect()
            }))
        }));
    }

    /// Every `REREAD_EVERY` heartbeats: the whole table (notifications may have been lost).
    pub(super) fn reread_config(&mut self) {
        self.cfg_ticks += 1;
        if self.cfg_ticks < REREAD_EVERY || self.cfg_task.is_some() {
            self.launch_cfg();
            return;
        }
        self.cfg_ticks = 0;
        let mut store = self.store.clone();
        self.cfg_task = Some(Box::pin(async move {
            CfgDone::Reread(store.config_mtus().await)
        }));
    }

    pub(super) fn on_cfg_done(&mut self, done: CfgDone) {
        let now = self.clock_ms();
        let changes: Vec<Change> = match done {
            CfgDone::Fetched(Ok(rows)) => rows
                .into_iter()
                .filter_map(|(name, fvs)| {
                    let now_cfg = (!fvs.is_empty()).then(|| mtu_of(&fvs));
                    self.cfg.set_port(&name, now_cfg, now)
                })
                .collect(),
            CfgDone::Reread(Ok(rows)) => {
                let all: FxHashMap<String, Option<u32>> = rows.into_iter().collect();
                let changes = self.cfg.replace(all, now);
                // The re-read's replies are freed: return their pages (RSS otherwise stays at
                // what the re-read needed, every 30 s).
                crate::sys::trim_heap();
                changes
            }
            CfgDone::Fetched(Err(e)) | CfgDone::Reread(Err(e)) => {
                warn!("reading CONFIG_DB PORT: {e}; re-read on a later heartbeat");
                Vec::new()
            }
            CfgDone::Count(n, Ok(())) => {
                info!("PortConfigDone count={n} written again: CONFIG_DB has {n} port(s) (track_port_count)");
                self.cfg.count_written(n);
                Vec::new()
            }
            CfgDone::Count(n, Err(e)) => {
                warn!("writing PortConfigDone count={n}: {e}; retried after the settle time");
                self.cfg.count_failed(now);
                Vec::new()
            }
        };
        for change in changes {
            match &change {
                Change::Added(p, mtu) => info!("CONFIG_DB PORT|{p} added (mtu {mtu:?})"),
                Change::Removed(p) => info!("CONFIG_DB PORT|{p} removed"),
                Change::Mtu(p, mtu) => info!("CONFIG_DB PORT|{p} mtu now {mtu:?}"),
            }
            let (port, c) = match change {
                Change::Added(p, mtu) => (p, ConfigChange::Added(mtu)),
                Change::Removed(p) => (p, ConfigChange::Removed),
                Change::Mtu(p, mtu) => (p, ConfigChange::Mtu(mtu)),
            };
            let current = self.sync.states().find(|(n, _)| *n == port).map(|(_, s)| s);
            let effects = self.alerts.on_config(&port, c, current, self.clock_ms());
            self.apply_alerts(effects);
        }
        self.launch_cfg();
    }

    /// When the set of CONFIG_DB ports settles (the loop's timer arm), with tracking on.
    pub(super) fn cfg_settles_at(&self) -> Option<tokio::time::Instant> {
        if !self.settings.track_port_count || self.cfg_task.is_some() {
            return None;
        }
        let ms = self.cfg.settles_at()?;
        Some(self.started + std::time::Duration::from_millis(ms))
    }
}
