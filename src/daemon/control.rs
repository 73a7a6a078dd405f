//! The operator's live controls: CONFIG_DB `LOGGER|portsyncd` (what `swssloglevel` writes),
//! followed through a keyspace subscription that is retried until it holds, and SIGHUP, which
//! re-reads the settings file (a bad file is rejected and the running settings stay).

use super::*;

impl Loop {
    /// Keyspace notifications for CONFIG_DB `LOGGER|portsyncd` (what swssloglevel writes),
    /// subscribed from a task of their own: a refused or failed subscription is retried with
    /// backoff (0.5 s doubling to 60 s) rather than leaving live levels off for the life of
    /// the process. A late subscription re-reads the level once, so a change made while it
    /// was down is not missed. The connection manager resubscribes after a reconnect.
    pub(super) fn subscribe_logger(
        &mut self,
        tx: tokio::sync::mpsc::UnboundedSender<redis::PushInfo>,
    ) {
        let db = self.store.dbs.config.clone();
        let timeout = self.settings.redis_timeout;
        let pattern = format!("__keyspace@{}__:{}", db.id, db.key("LOGGER", "portsyncd"));
        tokio::spawn(async move {
            let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
            let mut failures = 0u32;
            loop {
                match store::psubscribe(&db, &pattern, timeout, tx.clone()).await {
                    Ok(con) => {
                        if failures > 0 {
                            info!("live log level changes on: subscribed to LOGGER|portsyncd after {failures} failed attempt(s)");
                            let _ = tx.send(redis::PushInfo {
                                kind: redis::PushKind::PMessage,
                                data: Vec::new(),
                            });
                        }
                        // Held for the life of the process.
                        std::future::pending::<()>().await;
                        drop(con);
                    }
                    Err(e) => {
                        failures += 1;
                        let delay =
                            backoff.next(u64::from(std::process::id()) + u64::from(failures));
                        warn!(
                            "live log level changes off: subscribing to LOGGER|portsyncd failed: {e}; retrying in {} ms",
                            delay.as_millis()
                        );
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        });
    }

    pub(super) async fn on_logger_change(&mut self, push: redis::PushInfo) {
        if !matches!(push.kind, redis::PushKind::PMessage) || self.settings.log_level.is_some() {
            return;
        }
        let key = self.store.dbs.config.key("LOGGER", "portsyncd");
        match self.store.hget(true, &key, "LOGLEVEL").await {
            Ok(Some(level)) => self.log.apply_sonic(&level),
            Ok(None) => {}
            Err(e) => warn!("reading LOGGER|portsyncd: {e}"),
        }
    }

    /// SIGHUP: re-read the settings file; a bad file is rejected and the old settings stay.
    pub(super) fn reload(&mut self) {
        let Some(file) = self.config_file.clone() else {
            info!("SIGHUP: no --config file, nothing to reload");
            return;
        };
        match Settings::load(Some(&file), Some(&self.settings.db_config)) {
            Ok(new) => {
                if let Some(l) = &new.log_level {
                    self.log.apply_sonic(l);
                }
                self.settings.log_level = new.log_level;
                self.settings.max_datagrams_per_turn = new.max_datagrams_per_turn;
                self.settings.max_ports_per_flush = new.max_ports_per_flush;
                self.settings.shutdown_flush = new.shutdown_flush;
                self.alert_rows.set_limits(
                    new.alert_resolved_keep,
                    new.alert_resolved.as_millis() as u64,
                );
                if new.alerts != self.settings.alerts {
                    let effects = self.alerts.set_rules(new.alerts.clone());
                    self.apply_alerts(effects);
                    self.settings.alerts = new.alerts;
                }
                info!("SIGHUP: reloaded {}", file.display());
            }
            Err(e) => error!("SIGHUP: keeping the running settings: {e}"),
        }
    }
}
