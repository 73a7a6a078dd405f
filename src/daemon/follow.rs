//! Following swss while the daemon runs (issue #11 item 2). A cold swss start flushes APPL_DB
//! (spec §6.3), so `PortConfigDone` vanishing means orchagent is starting over and waits for
//! a new one. The loop looks for the marker on every heartbeat, and every 200 ms for a while
//! after a keyspace event says `PORT_TABLE:PortInitDone` was deleted (swss's cold stop does
//! that). When it is gone, the cold sequence runs again as a C++ daemon started at that
//! moment would: the netdevs that exist now are listed and brought down first (none of the new
//! ones can exist before orchagent has `PortConfigDone`), then the CONFIG_DB ports and
//! `PortConfigDone` are published, then every port is awaited for a new `PortInitDone`.
//! The Redis part runs as a future of the loop, so netlink keeps being read meanwhile.

use super::Loop;
use crate::error::Result;
use crate::startmode::{Marker, WatchStep};
use crate::startup;
use crate::store;
use std::future::Future;
use std::pin::Pin;
use tokio::time::Instant;
use tracing::{error, info, warn};

/// What the swss task of the loop finished.
pub(super) enum SwssDone {
    /// A `PortConfigDone` check.
    Checked(redis::RedisResult<Marker>),
    /// The cold sequence's Redis part: the configured ports, those already consumed, and the
    /// sets that got an error reply (retried on their own).
    Republished {
        result: Result<(Vec<String>, Vec<String>, store::FailedSets)>,
        began: Instant,
    },
}

pub(super) type SwssTask = Pin<Box<dyn Future<Output = SwssDone>>>;

impl Loop {
    /// Keyspace notifications for APPL_DB `PORT_TABLE:PortInitDone`, on their own connection
    /// (resubscribed after reconnects). Without them the heartbeat check still follows swss,
    /// only more slowly.
    pub(super) async fn subscribe_appl(
        &mut self,
        tx: tokio::sync::mpsc::UnboundedSender<redis::PushInfo>,
    ) -> Option<redis::aio::ConnectionManager> {
        let db = self.store.dbs.appl.clone();
        let pattern = format!(
            "__keyspace@{}__:{}",
            db.id,
            db.key(crate::pst::PORT_TABLE, "PortInitDone")
        );
        match store::psubscribe(&db, &pattern, self.settings.redis_timeout, tx).await {
            Ok(con) => Some(con),
            Err(e) => {
                warn!("APPL_DB PortInitDone notifications unavailable ({e}); swss restarts are noticed on the heartbeat");
                None
            }
        }
    }

    /// A keyspace event on `PORT_TABLE:PortInitDone`: a `del` means swss is stopping cold.
    pub(super) fn on_appl_push(&mut self, push: redis::PushInfo) {
        if !matches!(push.kind, redis::PushKind::PMessage) {
            return;
        }
        let del = push
            .data
            .last()
            .is_some_and(|v| matches!(v, redis::Value::BulkString(b) if b == b"del"));
        if del && self.watch.wants_check() {
            info!("APPL_DB PORT_TABLE:PortInitDone was deleted (swss stopping?): watching for PortConfigDone to vanish");
            let now = self.clock_ms();
            self.watch.on_init_deleted(now);
            self.launch_check();
        }
    }

    /// Whether fast checks are on now (the loop's timer arm).
    pub(super) fn fast_checks(&self) -> bool {
        self.swss_task.is_none() && self.watch.fast(self.clock_ms())
    }

    /// Look for `PortConfigDone`, unless a check or a re-publication is already running.
    pub(super) fn launch_check(&mut self) {
        if self.swss_task.is_some() || !self.watch.wants_check() {
            return;
        }
        let store = self.store.clone();
        self.swss_task = Some(Box::pin(async move {
            SwssDone::Checked(startup::appl_marker(&store, "PortConfigDone").await)
        }));
    }

    pub(super) fn on_swss_done(&mut self, done: SwssDone) {
        match done {
            SwssDone::Checked(Ok(marker)) => {
                if self.watch.on_checked(marker.present()) == WatchStep::Republish {
                    self.republish();
                }
            }
            // Redis is down or restarting: the flush path reports that; look again later.
            SwssDone::Checked(Err(_)) => {}
            SwssDone::Republished { result, began } => match result {
                Ok((names, consumed, failed)) => {
                    let n = names.len();
                    self.park_failed_sets(failed);
                    self.sync
                        .await_again(names.into_iter().filter(|p| !consumed.contains(p)));
                    self.counters.swss_restarts += 1;
                    self.watch.on_republished(true);
                    self.cfg.count_written(n);
                    info!(
                        "swss restart #{} followed: {n} port(s) and PortConfigDone count={n} published again {} ms after it was found missing; awaiting PortInitDone",
                        self.counters.swss_restarts,
                        began.elapsed().as_millis()
                    );
                    self.check_init();
                }
                Err(e) => {
                    error!("publishing the port configuration again failed ({e}); retrying on the next heartbeat");
                    self.watch.on_republished(false);
                }
            },
        }
    }

    /// The cold sequence again: stale netdevs first (synchronously, before anything is
    /// published), then the Redis part as the loop's swss task.
    fn republish(&mut self) {
        let began = Instant::now();
        warn!(
            "swss restarted: APPL_DB has no PortConfigDone; running the cold start sequence again"
        );
        if self.switch_type != "dpu" {
            match startup::stale_netdevs(&mut self.counters.undecodable_links) {
                Ok(stale) => {
                    startup::bring_down(&stale);
                    self.sync.replace_old_interfaces(stale);
                }
                Err(e) => {
                    error!("swss restart: {e}; retrying on the next heartbeat");
                    self.watch.on_republished(false);
                    return;
                }
            }
        }
        let mut store = self.store.clone();
        self.swss_task = Some(Box::pin(async move {
            let result = async {
                let copy = startup::copy_config(&mut store, true).await?;
                let names: Vec<String> = copy.ports.into_iter().map(|(n, _)| n).collect();
                let failed = copy.failed;
                let consumed =
                    startup::consumed(&mut store, names.iter().map(String::as_str)).await?;
                Ok((names, consumed, failed))
            }
            .await;
            SwssDone::Republished { result, began }
        }));
    }
}
