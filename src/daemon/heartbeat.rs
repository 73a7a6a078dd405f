//! What the loop tells operators about itself: the one-line status (`STATUS=` for systemd,
//! the heartbeat log), and every heartbeat the health row in STATE_DB, which is also the
//! writer lease (renewed by a script, off the loop's task so a stalled Redis cannot hold it up).

use super::*;

impl Loop {
    /// The one-line status for systemd (`systemctl status`) and the periodic heartbeat.
    pub(super) fn status(&self) -> String {
        let (up, down) = self.sync.oper_counts();
        let redis = if self.retry_at.is_some()
            || self.outbox.pending_len() > 0 && self.counters.flush_errors > 0
        {
            "retrying"
        } else {
            "ok"
        };
        let last = match self.last_event {
            Some(t) => format!("{}s ago", t.elapsed().as_secs()),
            None => "none yet".into(),
        };
        format!(
            "{} start, ports {} (oper up {up}, down {down}), awaiting {}, PortInitDone {}, redis {redis}, last event {last}, resyncs {}, swss restarts {}, alerts firing {}",
            self.mode.as_str(),
            up + down,
            self.sync.expected().count(),
            if self.sync.init_sent() { "sent" } else { "pending" },
            self.counters.resyncs,
            self.counters.swss_restarts,
            self.alerts.firing().count()
        )
    }

    /// The loop is alive: tell systemd (WATCHDOG=1, STATUS=) and write the heartbeat row that
    /// `portsyncd health` reads, renewing the writer lease. The Redis write runs as its own
    /// task so a stalled Redis cannot hold up the loop; a lost lease comes back as an input.
    pub(super) fn heartbeat(&mut self) {
        self.notifier.alive(&self.status());
        let fields = self.health_fields("running");
        let mut store = self.store.clone();
        let (lease, lost) = (self.lease.clone(), self.lease_lost.clone());
        tokio::spawn(async move {
            let fv: Vec<(&str, &str)> = fields.iter().map(|(f, v)| (*f, v.as_str())).collect();
            if let Ok(Renewal::Lost(holder)) = lease.renew(&mut store, &fv).await {
                if let Some(tx) = lost {
                    let _ = tx.send(holder);
                }
            }
        });
    }

    pub(super) fn health_fields(&self, state: &str) -> Vec<(&'static str, String)> {
        let (up, down) = self.sync.oper_counts();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        vec![
            ("state", state.to_string()),
            ("pid", std::process::id().to_string()),
            ("version", env!("CARGO_PKG_VERSION").to_string()),
            ("heartbeat_ms", now_ms.to_string()),
            (
                "interval_ms",
                self.settings.heartbeat.as_millis().to_string(),
            ),
            ("ports", (up + down).to_string()),
            ("oper_up", up.to_string()),
            ("oper_down", down.to_string()),
            ("awaiting", self.sync.expected().count().to_string()),
            ("init_done", self.sync.init_sent().to_string()),
            ("resyncs", self.counters.resyncs.to_string()),
            ("flush_errors", self.counters.flush_errors.to_string()),
            ("start_mode", self.mode.as_str().to_string()),
            ("swss_restarts", self.counters.swss_restarts.to_string()),
        ]
    }
}
