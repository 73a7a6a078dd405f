//! What still has to reach Redis (pure). Link messages fold into the pending `Batch`; at most
//! one flush is in flight; a failed flush goes back *under* whatever arrived since (so the
//! latest state per port wins and per-port DEL/SET order holds), and marks that Redis may have
//! lost writes, which the loop answers with a resync once a flush succeeds again. The pending
//! map is keyed by port, so it is bounded by the number of ports whatever Redis does.

use crate::batch::Batch;
use rustc_hash::FxHashMap;
use std::time::Duration;

/// A STATE_DB row of our own (alerts): key and fields, latest write wins.
pub type Row = (String, Vec<(&'static str, String)>);

/// One flush: the STATE_DB writes of a batch, then `PortInitDone` if `init`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flush {
    pub batch: Batch,
    pub init: bool,
    /// Alert rows, written after the port rows.
    pub rows: Vec<Row>,
}

#[derive(Debug, Default)]
pub struct Outbox {
    pending: Batch,
    init: bool,
    inflight: bool,
    reconcile: bool,
    rows: FxHashMap<String, Vec<(&'static str, String)>>,
    /// An emptied batch kept for its capacity, so the next turn's ports do not regrow it.
    spare: Batch,
}

impl Outbox {
    /// Where the loop folds new link messages.
    pub fn pending_mut(&mut self) -> &mut Batch {
        &mut self.pending
    }

    /// Ports waiting to be sent (not counting the flush in flight).
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    pub fn inflight(&self) -> bool {
        self.inflight
    }

    /// Nothing pending and nothing in flight.
    pub fn idle(&self) -> bool {
        !self.inflight && self.pending.is_empty() && !self.init && self.rows.is_empty()
    }

    /// Queue a row write; a later write of the same key replaces it.
    pub fn queue_row(&mut self, key: String, fields: Vec<(&'static str, String)>) {
        self.rows.insert(key, fields);
    }

    /// Queue `PortInitDone` (sent after everything pending with it).
    pub fn want_init(&mut self) {
        self.init = true;
    }

    pub fn init_queued(&self) -> bool {
        self.init
    }

    /// Start a flush of at most `max` ports if none is in flight and there is work.
    /// `PortInitDone` rides with the flush that empties the pending batch.
    pub fn take(&mut self, max: usize) -> Option<Flush> {
        if self.inflight || (self.pending.is_empty() && !self.init && self.rows.is_empty()) {
            return None;
        }
        self.inflight = true;
        let rest = if self.pending.len() > max.max(1) {
            self.pending.split_off(max.max(1))
        } else {
            std::mem::take(&mut self.spare)
        };
        let batch = std::mem::replace(&mut self.pending, rest);
        let init = self.pending.is_empty() && std::mem::take(&mut self.init);
        let rows = self.rows.drain().collect();
        Some(Flush { batch, init, rows })
    }

    /// The flush landed. Returns true when an earlier failure means a resync is due now.
    pub fn succeeded(&mut self) -> bool {
        self.inflight = false;
        std::mem::take(&mut self.reconcile)
    }

    /// A landed flush's batch, handed back for its capacity.
    pub fn recycle(&mut self, mut batch: Batch) {
        batch.clear();
        self.spare = batch;
    }

    /// The flush failed (possibly after some writes landed): keep it for a retry.
    pub fn failed(&mut self, flush: Flush) {
        self.inflight = false;
        self.pending.merge_older(flush.batch);
        self.init |= flush.init;
        for (key, fields) in flush.rows {
            self.rows.entry(key).or_insert(fields);
        }
        self.reconcile = true;
    }
}

/// Capped exponential backoff with jitter, for retrying Redis.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    cur: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { min, max, cur: min }
    }

    /// The next delay; `entropy` spreads retries of several daemons (any varying number).
    pub fn next(&mut self, entropy: u64) -> Duration {
        let base = self.cur;
        self.cur = (self.cur * 2).min(self.max);
        let jitter_us = (base.as_micros() as u64 / 4).max(1);
        base + Duration::from_micros(entropy % jitter_us)
    }

    pub fn reset(&mut self) {
        self.cur = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::fixtures::UP;

    const MAX: usize = 512;

    #[test]
    fn large_batches_go_out_in_bounded_flushes_with_init_last() {
        let mut o = Outbox::default();
        for i in 0..5 {
            o.pending_mut().set(&format!("Ethernet{i}"), UP);
        }
        o.want_init();
        for (len, init) in [(2, false), (2, false), (1, true)] {
            let f = o.take(2).unwrap();
            assert_eq!((f.batch.len(), f.init), (len, init));
            assert!(!o.succeeded());
        }
        assert!(o.idle());
    }

    #[test]
    fn one_flush_in_flight_and_failures_come_back() {
        let mut o = Outbox::default();
        assert!(o.take(MAX).is_none());
        o.pending_mut().set("Ethernet0", UP);
        let f = o.take(MAX).unwrap();
        assert!(o.take(MAX).is_none(), "only one in flight");
        o.pending_mut().delete("Ethernet0");
        o.failed(f);
        let f = o.take(MAX).unwrap();
        assert_eq!(
            f.batch.iter().next().unwrap().1.set,
            None,
            "the newer delete wins"
        );
        assert!(o.succeeded(), "a failure earlier asks for a resync");
        assert!(o.idle());
    }

    #[test]
    fn init_rides_after_pending_writes() {
        let mut o = Outbox::default();
        o.want_init();
        let f = o.take(MAX).unwrap();
        assert!(f.init && f.batch.is_empty());
        o.failed(f);
        assert!(o.init_queued());
        assert!(o.take(MAX).unwrap().init);
        assert!(o.succeeded());
        assert!(o.idle());
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(50), Duration::from_millis(300));
        let d: Vec<u128> = (0..5).map(|_| b.next(0).as_millis()).collect();
        assert_eq!(d, [50, 100, 200, 300, 300]);
        let j = b.next(7_000);
        assert!(
            j >= Duration::from_millis(300) && j < Duration::from_millis(375),
            "{j:?}"
        );
        b.reset();
        assert_eq!(b.next(0), Duration::from_millis(50));
    }
}
