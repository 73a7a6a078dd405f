//! The loop's own counters (no global registry): what happened since start. The loop logs a
//! summary at shutdown; the metrics endpoint and the health check read the same struct.

/// Plain counters, owned and updated by the event loop.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counters {
    /// Link messages decoded (dump replies and events), by type.
    pub link_messages: u64,
    pub newlinks: u64,
    pub dellinks: u64,
    /// Messages acted on (folded into a batch).
    pub accepted: u64,
    /// Messages ignored: name filter, team kind, DELLINK with master, stale ifindex.
    pub ignored_name: u64,
    pub ignored_team: u64,
    pub ignored_master_del: u64,
    pub ignored_old: u64,
    /// Datagrams or messages that could not be decoded.
    pub malformed: u64,
    /// ENOBUFS reports from the kernel.
    pub overruns: u64,
    /// Completed resyncs after an overflow or a Redis outage (not the start-up dump).
    pub resyncs: u64,
    /// Extra dumps because messages were lost during a resync dump.
    pub redumps: u64,
    /// Ports whose row a resync changed (state differed from what we had mirrored, or vanished).
    pub resync_corrected: u64,
    /// Flushes sent, and how many failed (each failure is retried).
    pub flushes: u64,
    pub flush_errors: u64,
    /// Flushes that succeeded after a failure (Redis came back).
    pub redis_recoveries: u64,
    /// Redis commands sent by flushes (gate checks, row writes, scripts).
    pub redis_commands: u64,
    /// STATE_DB rows written / deleted, and sets dropped because APPL_DB had no row.
    pub state_sets: u64,
    pub state_dels: u64,
    pub gate_misses: u64,
    /// Link messages and dumped links skipped because they could not be decoded (e.g. a name
    /// that is not UTF-8), start-up included.
    pub undecodable_links: u64,
    /// Times swss restarted cold under this daemon and the cold sequence ran again.
    pub swss_restarts: u64,
    /// Error replies to single commands (the key is retried on its own), by the reply's first
    /// word (`WRONGTYPE`, `OOM` …); at most `KEY_ERROR_REASONS` reasons, then `other`.
    pub key_errors: std::collections::BTreeMap<String, u64>,
}

/// Distinct reasons kept in `Counters::key_errors` (bounds the metric's label set).
pub const KEY_ERROR_REASONS: usize = 16;

impl Counters {
    /// Count one error reply.
    pub fn key_error(&mut self, reason: &str) {
        let known = self.key_errors.contains_key(reason);
        let reason = if known || self.key_errors.len() < KEY_ERROR_REASONS {
            reason
        } else {
            "other"
        };
        *self.key_errors.entry(reason.to_owned()).or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_error_reasons_are_bounded() {
        let mut c = Counters::default();
        for i in 0..40 {
            c.key_error(&format!("R{i}"));
        }
        c.key_error("R0");
        assert_eq!(c.key_errors.len(), KEY_ERROR_REASONS + 1);
        assert_eq!(c.key_errors["R0"], 2);
        assert_eq!(c.key_errors["other"], 40 - KEY_ERROR_REASONS as u64);
    }
}
