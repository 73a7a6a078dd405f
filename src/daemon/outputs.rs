//! The loop's output side: launching flushes and taking their results, the alert engine's
//! effects (log lines, STATE_DB `PORTSYNCD_ALERT_TABLE` rows, metrics), and the metrics view.

use super::{FlushDone, Inflight, Loop};
use crate::alerts::{Effect, Facts};
use crate::metrics::View;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::alertview::ALERT_TABLE;

/// Rows written since the last heap trim before the next idle moment trims again.
const TRIM_AFTER: usize = 512;

impl Loop {
    pub(super) fn launch(&mut self) -> Option<Inflight> {
        let flush = self.outbox.take(self.settings.max_ports_per_flush)?;
        self.counters.flushes += 1;
        self.counters.redis_commands += (flush.batch.gated().count()
            + flush.batch.len()
            + flush.rows.len()
            + usize::from(flush.init)) as u64;
        self.metrics.flush_ports.observe(flush.batch.len() as f64);
        // The oldest message in this flush arrived when the pending batch last became non-empty.
        let since = if self.outbox.pending_len() == 0 {
            self.pending_since.take()
        } else {
            self.pending_since
        };
        let mut store = self.store.clone();
        Some(Box::pin(async move {
            let r = store.flush(&flush.batch, flush.init, &flush.rows).await;
            (flush, since, r)
        }))
    }

    pub(super) fn on_flushed(&mut self, (flush, since, result): FlushDone) {
        match result {
            Ok(written) => {
                if let Some(t) = since {
                    self.metrics
                        .event_to_redis
                        .observe(t.elapsed().as_secs_f64());
                }
                for ((name, op), written) in flush.batch.iter().zip(written) {
                    if op.delete {
                        self.counters.state_dels += 1;
                        info!(target: "onMsg", "Delete {name}(ok) from state db");
                    }
                    if let Some(s) = op.set {
                        if written {
                            self.counters.state_sets += 1;
                            self.sync.on_written(name);
                            info!(target: "onMsg", "Publish {name}(ok:{}) to state db", s.oper_str());
                        } else {
                            self.counters.gate_misses += 1;
                            info!(target: "onMsg", "Cannot find {name} in port table");
                        }
                    }
                }
                if flush.init {
                    self.sync.mark_init_sent();
                    info!(target: "main", "PortInitDone");
                }
                // A burst is over: give its freed buffers back (RSS falls back to what the
                // ports and alerts need, rather than staying at the storm's peak).
                self.written_since_trim += flush.batch.len() + flush.rows.len();
                if self.outbox.pending_len() == 0 && self.written_since_trim >= TRIM_AFTER {
                    self.written_since_trim = 0;
                    crate::sys::trim_heap();
                }
                self.backoff.reset();
                self.outbox.recycle(flush.batch);
                if self.outbox.succeeded() {
                    self.counters.redis_recoveries += 1;
                    info!("redis is reachable again: re-dumping links to reconcile STATE_DB");
                    self.start_resync();
                }
                self.check_init();
            }
            Err(e) => {
                self.counters.flush_errors += 1;
                warn!(
                    "redis write failed ({e}); keeping {} port update(s) to retry",
                    flush.batch.len()
                );
                if self.pending_since.is_none() {
                    self.pending_since = since;
                }
                self.outbox.failed(flush);
                let delay = self
                    .backoff
                    .next(u64::from(std::process::id()) ^ self.counters.flush_errors);
                self.retry_at = Some(Instant::now() + delay);
            }
        }
    }

    /// Milliseconds since start, the alert engine's clock.
    pub(super) fn clock_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Periodic evaluation of every alert rule.
    pub(super) fn alert_tick(&mut self) {
        // Awaited ports still in CONFIG_DB, and ports added since start without a netdev.
        let mut awaited: Vec<String> = self
            .sync
            .expected()
            .filter(|p| self.cfg.contains(p))
            .map(str::to_owned)
            .collect();
        let added: Vec<&str> = self.alerts.added_ports().collect();
        if !added.is_empty() {
            let mirrored: rustc_hash::FxHashSet<&str> =
                self.sync.states().map(|(n, _)| n).collect();
            awaited.extend(
                added
                    .into_iter()
                    .filter(|p| self.cfg.contains(p) && !mirrored.contains(p))
                    .map(str::to_owned),
            );
            awaited.sort();
            awaited.dedup();
        }
        let facts = Facts {
            now_ms: self.clock_ms(),
            awaited: &awaited,
            init_sent: self.sync.init_sent(),
        };
        let effects = self.alerts.tick(&facts);
        self.apply_alerts(effects);
    }

    /// Log each alert change and queue its STATE_DB row (kept, marked resolved, when it clears).
    pub(super) fn apply_alerts(&mut self, effects: Vec<Effect>) {
        for e in effects {
            let (a, state) = match &e {
                Effect::Fire(a) => {
                    warn!(
                        "ALERT {} firing for {} ({}): {}",
                        a.rule,
                        a.port,
                        a.severity.as_str(),
                        a.message
                    );
                    (a, "firing")
                }
                Effect::Resolve(a) => {
                    info!("ALERT {} resolved for {}: {}", a.rule, a.port, a.message);
                    (a, "resolved")
                }
            };
            let wall = |mono_ms: u64| (self.started_wall_ms + mono_ms).to_string();
            let key = self
                .store
                .dbs
                .state
                .key(ALERT_TABLE, &format!("{}|{}", a.rule, a.port));
            let fields = vec![
                ("state", state.to_string()),
                ("kind", a.kind.to_string()),
                ("severity", a.severity.as_str().to_string()),
                ("since", wall(a.since_ms)),
                ("updated", wall(self.clock_ms())),
                ("value", a.value.clone()),
                ("message", a.message.clone()),
            ];
            self.outbox.queue_row(key, fields);
        }
    }

    /// Prometheus text for a scrape.
    pub(super) fn render_metrics(&self) -> String {
        let mut ports = [
            ((true, true), 0),
            ((true, false), 0),
            ((false, true), 0),
            ((false, false), 0),
        ];
        for (_, s) in self.sync.states() {
            if let Some(p) = ports
                .iter_mut()
                .find(|((a, o), _)| *a == s.admin_up && *o == s.oper_up)
            {
                p.1 += 1;
            }
        }
        let alerts = self
            .alerts
            .rules()
            .iter()
            .map(|r| {
                let n = self.alerts.firing().filter(|a| a.rule == r.name).count();
                (r.name.clone(), r.severity.as_str(), n as i64)
            })
            .collect();
        self.metrics.render(&View {
            counters: &self.counters,
            ports,
            awaited: self.sync.expected().count(),
            pending: self.outbox.pending_len(),
            init_sent: self.sync.init_sent(),
            alerts,
        })
    }
}
