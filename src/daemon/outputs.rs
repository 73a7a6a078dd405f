//! The loop's output side: launching flushes and taking their results (per-key error replies
//! reported and counted, the keys parked for retry by the outbox), the alert engine's
//! effects (log lines, STATE_DB `PORTSYNCD_ALERT_TABLE` rows, metrics), and the metrics view.

use super::{FlushDone, Inflight, Loop};
use crate::alerts::{Effect, Facts};
use crate::keyretry::{KeyId, Note};
use crate::metrics::Snapshot;
use crate::pst::PORT_TABLE;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::alertview::ALERT_TABLE;

impl Loop {
    pub(super) fn launch(&mut self) -> Option<Inflight> {
        let now = self.clock_ms();
        let mut flush = self
            .outbox
            .take_at(self.settings.max_ports_per_flush, now)?;
        // A folded-away set still asks the gate, but only for a port still awaited.
        let sync = &self.sync;
        flush
            .batch
            .retain_probes(|p| sync.expected().any(|e| e == p));
        self.counters.flushes += 1;
        self.metrics.flush_ports.observe(flush.batch.len() as f64);
        // The oldest message in this flush arrived when the pending batch last became non-empty.
        let since = if self.outbox.pending_len() == 0 {
            self.pending_since.take()
        } else {
            self.pending_since
        };
        let mut store = self.store.clone();
        Some(Box::pin(async move {
            let r = store.flush(&flush).await;
            (flush, since, r)
        }))
    }

    pub(super) fn on_flushed(&mut self, (flush, since, result): FlushDone) {
        match result {
            Ok(reply) => {
                if let Some(t) = since {
                    self.metrics
                        .event_to_redis
                        .observe(t.elapsed().as_secs_f64());
                }
                // What this flush really sent (issue #12 item 8): one gate script call if any
                // port needed it, one DEL or HSET per STATE_DB write (failed or not), the
                // alert rows, and one script call per APPL_DB set and PortInitDone.
                self.counters.redis_commands += u64::from(flush.batch.gated().next().is_some())
                    + flush.rows.len() as u64
                    + flush.appl.len() as u64
                    + u64::from(flush.init);
                let some_failed = !reply.errors.is_empty();
                for (i, ((name, op), &gate)) in flush.batch.iter().zip(&reply.gate).enumerate() {
                    let failed = some_failed && reply.port_failed(i);
                    self.counters.redis_commands +=
                        u64::from(op.delete) + u64::from(op.set.is_some() && gate);
                    // spec §2.1: a port stops being awaited once its gate passed, whatever
                    // its STATE_DB write did (and a folded-away set's gate counts too).
                    if gate {
                        self.sync.on_written(name);
                    }
                    if failed {
                        continue;
                    }
                    if op.delete {
                        self.counters.state_dels += 1;
                        info!(target: "onMsg", "Delete {name}(ok) from state db");
                    }
                    if let Some(s) = op.set {
                        if gate {
                            self.counters.state_sets += 1;
                            info!(target: "onMsg", "Publish {name}(ok:{}) to state db", s.oper_str());
                        } else {
                            self.counters.gate_misses += 1;
                            info!(target: "onMsg", "Cannot find {name} in port table");
                        }
                    }
                }
                // A burst is over: give its freed buffers back (RSS falls back to what the
                // ports and alerts need, rather than staying at the storm's peak).
                self.written_since_trim += flush.batch.len() + flush.rows.len();
                let entropy = u64::from(std::process::id()) ^ self.counters.flushes;
                let settled = self.outbox.settle(flush, &reply, self.clock_ms(), entropy);
                for note in settled.notes {
                    self.on_key_note(note);
                }
                if settled.init_landed {
                    self.sync.mark_init_sent();
                    info!(target: "main", "PortInitDone");
                }
                if crate::shrink::trim_after_flush(
                    self.written_since_trim,
                    self.outbox.pending_len(),
                    self.outbox.rows_len(),
                ) {
                    self.written_since_trim = 0;
                    crate::sys::trim_heap();
                }
                self.backoff.reset();
                if settled.resync {
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

    /// Report a key's error reply (rate-limited by `keyretry`) or its recovery; count every
    /// error reply by its reason.
    pub(super) fn on_key_note(&mut self, note: Note) {
        match note {
            Note::Failed {
                key,
                error,
                attempt,
                retry_in_ms,
                log,
                suppressed,
            } => {
                self.counters.key_error(&error.reason);
                if log {
                    let again = if attempt > 1 {
                        format!(" (still failing: attempt {attempt}, {suppressed} failure(s) not logged since the last line)")
                    } else {
                        String::new()
                    };
                    error!(
                        "{}: Redis answered {} {}{again}; retrying this key alone in {retry_in_ms} ms, other keys are unaffected",
                        self.key_name(&key),
                        error.reason,
                        error.detail
                    );
                }
            }
            Note::Healed { key, attempts } => {
                info!(
                    "{}: written after {attempts} failed attempt(s)",
                    self.key_name(&key)
                );
            }
        }
    }

    /// A failing key as it is named in Redis.
    fn key_name(&self, key: &KeyId) -> String {
        let dbs = &self.store.dbs;
        match key {
            KeyId::State(p) => format!("STATE_DB {}", dbs.state.key(PORT_TABLE, p)),
            KeyId::Row(k) => format!("STATE_DB {k}"),
            KeyId::Appl(k) => format!("APPL_DB _{}", dbs.appl.key(PORT_TABLE, k)),
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
        // A storm's tables were given back: return their pages too.
        if self.alerts.take_shrunk() {
            crate::sys::trim_heap();
        }
        for key in self.alert_rows.expire(facts.now_ms) {
            self.outbox.queue_row(key, Vec::new());
        }
    }

    /// Log each alert change and queue its STATE_DB row (kept, marked resolved, when it clears,
    /// until `alert_rows` expires it: an empty row is a delete).
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
            let expired = self
                .alert_rows
                .on_write(&key, state == "resolved", self.clock_ms());
            self.outbox.queue_row(key, fields);
            for key in expired {
                self.outbox.queue_row(key, Vec::new());
            }
        }
    }

    /// The state a scrape shows (rendered by the endpoint's task, not here).
    pub(super) fn metrics_snapshot(&self) -> Snapshot {
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
        // One pass over the alerts (a storm can leave one firing per port and rule).
        let rules = self.alerts.rules();
        let mut firing = vec![0i64; rules.len()];
        for a in self.alerts.firing() {
            if let Some(i) = rules.iter().position(|r| r.name == a) {
                firing[i] += 1;
            }
        }
        let alerts = rules
            .iter()
            .zip(firing)
            .map(|(r, n)| (r.name.clone(), r.severity.as_str(), n))
            .collect();
        Snapshot {
            counters: self.counters.clone(),
            ports,
            awaited: self.sync.expected().count(),
            pending: self.outbox.pending_len(),
            init_sent: self.sync.init_sent(),
            alerts,
        }
    }
}
